# DPDK 22.11 rebuilt from Debian's own source package with room for more ethdev ports.
# Debian's build has RTE_MAX_ETHPORTS=32, and every relay needs one port for its VF, so one
# engine on it carries at most 32 relays; vio4wd promises 256 and more. This step builds the
# same DPDK version (the libraries, the VF drivers and the virtual devices the tests use) with
# -Dmax_ethports=$VIO4WD_DPDK_MAX_PORTS (default 1024) into $VIO4WD_CACHE/dpdk-<version>-ports<N>
# (once: 10-17 min on 2 cores, then cached), and native/ links against it (native/dpdk.env).
# VIO4WD_DPDK_MAX_PORTS=32 (or empty) keeps Debian's own DPDK, with its 32-relay limit.
want=${VIO4WD_DPDK_MAX_PORTS-1024}
envfile="$ROOT/native/dpdk.env"
if [[ -z $want || $want -le 32 ]]; then
  [[ -f $envfile ]] && { rm -f "$envfile"; say "dpdk: back to Debian's DPDK (32 ports)"; }
else
  ver=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null) || fail "libdpdk-dev is not installed" "run scripts/bootstrap without VIO4WD_DPDK_MAX_PORTS first"
  upstream=${ver%%-*}
  prefix="$VIO4WD_CACHE/dpdk-$upstream-ports$want"
  if [[ ! -f $prefix/.complete ]]; then
    apt_need meson ninja-build python3-pyelftools libnuma-dev dpkg-dev
    src="$VIO4WD_CACHE/dpdk-src"
    mkdir -p "$src"
    if [[ ! -d $src/dpdk-$upstream ]]; then
      if [[ ! -f $src/dpdk_$ver.dsc ]]; then
        list=/etc/apt/sources.list.d/vio4wd-src.sources
        if [[ ! -f $list ]]; then
          printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$list"
          apt-get update -qq >/dev/null || fail "apt-get update (deb-src)" "check the Debian mirror"
        fi
        (cd "$src" && apt-get source -qq --download-only "dpdk=$ver" >/dev/null 2>&1) || fail "apt-get source dpdk=$ver" "check the deb-src entry in $list"
      fi
      (cd "$src" && dpkg-source -q -x "dpdk_$ver.dsc" "dpdk-$upstream" >/dev/null 2>&1) || fail "unpack dpdk_$ver.dsc" "remove $src and rerun"
    fi
    say "dpdk: building $upstream with max_ethports=$want into $prefix (takes minutes, once)"
    drivers=bus/pci,bus/vdev,bus/auxiliary,mempool/ring,common/iavf,common/mlx5,net/iavf,net/i40e,net/ice,net/ixgbe,net/e1000,net/mlx5,net/nfp,net/bnxt,net/af_packet,net/bonding,net/memif,net/null,net/ring,net/tap,net/vhost,net/virtio
    rm -rf "$src/build-$want"
    (cd "$src/dpdk-$upstream" && meson setup "$src/build-$want" --prefix="$prefix" --libdir=lib --default-library=shared \
        -Dplatform=generic -Dmax_ethports="$want" -Denable_drivers="$drivers" -Dtests=false -Ddisable_apps='*' \
        -Ddisable_libs=flow_classify,kni,gpudev,jobstats,latencystats,pipeline,port,table,node,pdump,bitratestats,cfgfile >/dev/null) \
      || fail "meson setup for DPDK" "see $src/build-$want/meson-logs/meson-log.txt"
    nice -n 10 ninja -C "$src/build-$want" install >"$src/build-$want.log" 2>&1 || fail "DPDK build" "see $src/build-$want.log"
    touch "$prefix/.complete"
  fi
  printf 'DPDK_PREFIX=%s\n' "$prefix" > "$envfile"
  say "dpdk: ok ($prefix, $want ethdev ports)"
fi
