# profiles: demo test image
# The Debian packages of the active profiles, from scripts/packages.tsv (rows deb:<package>).
pkgs=()
while IFS=$'\t' read -r src profs _progs; do
  [[ $src == deb:* ]] || continue
  profile_wants "$profs" && pkgs+=("${src#deb:}")
done < <(grep -v '^#' "$ROOT/scripts/packages.tsv")
apt_need "${pkgs[@]}"
say "packages: ok (${#pkgs[@]} Debian packages for $VIO4WD_PROFILES)"
unset pkgs src profs _progs
