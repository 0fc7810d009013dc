# profiles: test image
# DPDK rebuilt from Debian's own source package with room for more ethdev ports.
# Debian's build has RTE_MAX_ETHPORTS=32, and every relay needs one port for its VF, so one
# engine on it carries at most 32 relays; vio4wd promises 256 and more. scripts/build-dpdk.sh
# (the same recipe as the image's, see the Dockerfile) builds the installed libdpdk-dev's version
# with -Dmax_ethports=$VIO4WD_DPDK_MAX_PORTS (default 1024) once (10-17 min on 2 cores), with
# the files in $VIO4WD_CACHE/dpdk-<version>-ports<N> and the prefix DPDK compiles in,
# /opt/vio4wd-dpdk/<version>-ports<N>, a link to them; native/ links against it (native/dpdk.env).
# VIO4WD_DPDK_MAX_PORTS=32 (or empty) keeps Debian's own DPDK, with its 32-relay limit.
# VIO4WD_DPDK_VERSION=<Debian version> builds another source package than the installed
# libdpdk-dev's, e.g. trixie's DPDK 24.11 (24.11.8-0+deb13u1; the engine builds against 22.11
# and 24.11): scripts/build-dpdk.sh finds it in bookworm's and trixie's deb-src lists.
want=${VIO4WD_DPDK_MAX_PORTS-1024}
envfile="$ROOT/native/dpdk.env"
if [[ -z $want || $want -le 32 ]]; then
  [[ -f $envfile ]] && { rm -f "$envfile"; say "dpdk: back to Debian's DPDK (32 ports)"; }
else
  ver=${VIO4WD_DPDK_VERSION:-}
  [[ -n $ver ]] || ver=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null) || fail "libdpdk-dev is not installed" "run scripts/bootstrap without VIO4WD_DPDK_MAX_PORTS first"
  upstream=${ver%%-*}
  prefix="/opt/vio4wd-dpdk/$upstream-ports$want"
  store="$VIO4WD_CACHE/dpdk-$upstream-ports$want"
  # shellcheck disable=SC2046
  apt_need $("$ROOT/scripts/build-dpdk.sh" deps)
  # builds only when the prefix lacks this recipe's build (then prints the prefix at once)
  "$ROOT/scripts/build-dpdk.sh" build --version "$ver" --max-ports "$want" --store "$store" --src "$VIO4WD_CACHE/dpdk-src" >/dev/null ||
    fail "DPDK build with $want ethdev ports (scripts/build-dpdk.sh)" "read the error above; rerun scripts/bootstrap to retry (the source stays in $VIO4WD_CACHE/dpdk-src)"
  line="DPDK_PREFIX=$prefix"
  [[ $(cat "$envfile" 2>/dev/null) == "$line" ]] || echo "$line" > "$envfile"
  say "dpdk: ok ($prefix -> $store, $want ethdev ports)"
  unset ver upstream prefix store line
fi
unset want envfile
