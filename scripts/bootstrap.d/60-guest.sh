# profiles: demo test
# The test guest: QEMU from Debian, plus a Debian kernel and a busybox initramfs built by
# test/env/guest/build.sh, cached under $VIO4WD_CACHE/guest/<version-key>/ with a 'current'
# link that test/helpers/guest.ts reads. Rebuilt only when a package version or the build
# scripts change.


guest_cache="$VIO4WD_CACHE/guest"
guest_src="$ROOT/test/env/guest"
# VIO4WD_GUEST_KERNEL_PKG picks another kernel package (default: Debian's cloud kernel, small
# and with virtio-net/virtio-pci as modules).
guest_kmeta=${VIO4WD_GUEST_KERNEL_PKG:-linux-image-cloud-amd64}
# candidate versions of every package the image is made of, in one apt-cache call
guest_versions() {
  apt-cache show --no-all-versions "$guest_kmeta" busybox-static ethtool libmnl0 libc6 2>/dev/null |
    awk '/^Package:/ {p=$2} /^Version:/ {print p, $2} /^Depends:/ && p ~ /^linux-image/ {print p, $0}'
}
# apt-cache takes about a second here (no package cache: Dir::Cache::pkgcache ""), so its answer is
# kept, keyed by what it depends on: the package lists, apt's sources and preferences, the dpkg
# status and the package names asked for. Any apt-get update or install changes that key.
guest_apt_key=$( { echo "$guest_kmeta"; stat -c '%n %s %Y' /var/lib/apt/lists/* /var/lib/dpkg/status \
  /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences /etc/apt/preferences.d/* 2>/dev/null || true; } | sha256sum | cut -c1-16)
guest_apt_file="$guest_cache/apt-versions-$guest_apt_key"
if [[ -s $guest_apt_file ]]; then
  guest_vers=$(<"$guest_apt_file")
else
  guest_vers=$(guest_versions)
fi
if ! grep -q "^$guest_kmeta " <<<"$guest_vers" || ! grep -q '^busybox-static ' <<<"$guest_vers"; then
  apt-get update -qq >/dev/null || fail "apt-get update" "check the machine's Debian mirror access"
  guest_vers=$(guest_versions)
  grep -q "^$guest_kmeta " <<<"$guest_vers" || fail "Debian package $guest_kmeta not found" \
    "set VIO4WD_GUEST_KERNEL_PKG to a linux-image package that 'apt-cache show' knows"
elif [[ ! -s $guest_apt_file ]]; then
  mkdir -p "$guest_cache"
  find "$guest_cache" -maxdepth 1 -name 'apt-versions-*' -delete
  printf '%s\n' "$guest_vers" > "$guest_apt_file"
fi
# a metapackage (linux-image-cloud-amd64) points at the versioned image package
guest_kpkg=$(awk -v m="$guest_kmeta" '$1==m && $2=="Depends:" {for (i=3;i<=NF;i++) if ($i ~ /^linux-image-[0-9]/) {print $i; exit}}' <<<"$guest_vers")
guest_kpkg=${guest_kpkg:-$guest_kmeta}
guest_key=$( { echo "$guest_vers"; find "$guest_src" -type f ! -name "*.md" | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
if [[ ! -f $guest_cache/$guest_key/manifest.json ]]; then
  say "guest: building kernel+initramfs ($guest_kpkg, key $guest_key; about 10-30 s)"
  mkdir -p "$guest_cache"
  rm -rf "$guest_cache/$guest_key.tmp"
  "$guest_src/build.sh" "$guest_cache/$guest_key.tmp" "$guest_kpkg" busybox-static >/dev/null \
    || fail "guest image build (test/env/guest/build.sh)" \
      "run it by hand to see the error: test/env/guest/build.sh /tmp/vio4wd-guest $guest_kpkg busybox-static"
  rm -rf "$guest_cache/$guest_key"
  mv "$guest_cache/$guest_key.tmp" "$guest_cache/$guest_key"
  # older builds are no longer referenced
  find "$guest_cache" -mindepth 1 -maxdepth 1 -type d ! -name "$guest_key" -exec rm -rf {} +
fi
if [[ $(readlink "$guest_cache/current" 2>/dev/null) != "$guest_key" ]]; then
  ln -sfn "$guest_key" "$guest_cache/current"
fi
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing" "apt-get install qemu-system-x86"
say "guest: ok ($guest_cache/current -> $guest_key)"
unset guest_cache guest_src guest_kmeta guest_vers guest_kpkg guest_key guest_apt_key guest_apt_file
unset -f guest_versions
