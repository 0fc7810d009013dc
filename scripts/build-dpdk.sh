#!/usr/bin/env bash
# DPDK rebuilt from Debian's own source package with room for more ethdev ports.
# Debian's build has RTE_MAX_ETHPORTS=32, and every relay's VF is one ethdev port, so one engine
# on it carries at most 32 relays; vio4wd promises 256 and more. One recipe for the machine and
# the image, so that both are the same build:
#   scripts/bootstrap.d/35-dpdk.sh  builds it for this machine (files under $VIO4WD_CACHE)
#   Dockerfile, stage dpdk          builds it for the image, or finds it already built in the
#                                   stage's base image (scripts/podman-base-images.sh makes one
#                                   from this machine's build, so the image costs no second build)
#
# It is always installed at the prefix /opt/vio4wd-dpdk/<version>-ports<N>, because DPDK compiles
# its prefix in (EAL loads its drivers from <prefix>/lib/dpdk/pmds-<ABI>: 23.0 for 22.11, 25.0
# for 24.11). On a machine, --store
# keeps the files elsewhere (the cache) and makes the prefix a symbolic link to them.
#
#   build-dpdk.sh build [--max-ports N] [--version VERSION] [--store DIR] [--src DIR]
#                       [--install-deps] [--clean]
#       Builds (once: 10-17 minutes on 2 cores) unless <prefix>/.complete holds this recipe's
#       key; prints the prefix. VERSION: Debian's (22.11.11-0+deb12u1, 24.11.8-0+deb13u1) or
#       upstream (22.11.11, then Debian's source of it); default: the installed libdpdk-dev's.
#       The source comes from bookworm (22.11) or trixie (24.11: bookworm has no DPDK 24.11, and
#       trixie's source package builds on bookworm); trixie's deb-src entry lives in apt state of
#       this script's own (under the source directory), so the machine's apt sources stay as
#       they are.
#       --install-deps  apt-get the build dependencies and Debian's deb-src entry (containers)
#       --clean         remove the source and build trees afterwards
#   build-dpdk.sh deps
#       The Debian packages the build needs (scripts/bootstrap installs them with apt_need).
#   build-dpdk.sh runtime PREFIX DEST DRIVER...
#       Copies what a DPDK application needs at run time into DEST (same paths under it): the
#       libraries, and of the drivers only DRIVER... (e.g. net_vhost net_iavf), the buses and
#       mempool every process needs and the drivers these need; plus an ld.so.conf.d entry.
set -euo pipefail

say() { printf '[build-dpdk] %s\n' "$*" >&2; }
die() { printf '[build-dpdk] FAILED: %s\n' "$*" >&2; exit 1; }

PREFIX_ROOT=/opt/vio4wd-dpdk
# bump when the build below changes in a way the key does not show
RECIPE=2
# the drivers built: the VFs' (Intel, NVIDIA, Netronome, Broadcom), bonding, and the virtual devices
# that stand in for VFs in tests; an image ships only some of them (runtime). From 23.07 on,
# net/nfp needs common/nfp (drivers_of adds it).
DRIVERS=bus/pci,bus/vdev,bus/auxiliary,mempool/ring,common/iavf,common/mlx5,net/iavf,net/i40e,net/ice,net/ixgbe,net/e1000,net/mlx5,net/nfp,net/bnxt,net/af_packet,net/bonding,net/memif,net/null,net/ring,net/tap,net/vhost,net/virtio
DISABLE_LIBS=flow_classify,kni,gpudev,jobstats,latencystats,pipeline,port,table,node,pdump,bitratestats,cfgfile
# the toolchain, and the optional libraries DPDK's meson finds (the ones Debian's own build uses
# for these parts: NUMA, libbsd, libfdt, jansson, libpcap and libelf for bpf, rdma-core for mlx5,
# OpenSSL): the same set on a machine and in the image, so both detect the same features
BUILD_DEPS=(gcc make pkg-config meson ninja-build python3-pyelftools dpkg-dev xz-utils patchelf
  libnuma-dev libbsd-dev libfdt-dev libjansson-dev libpcap-dev libelf-dev libibverbs-dev libssl-dev)
# the drivers every DPDK process here needs, whatever else it ships
BASE_DRIVERS=(bus_pci bus_vdev mempool_ring)

# the drivers of an upstream version (22.11.11, 24.11.8)
drivers_of() {
  local major=${1%%.*}
  if ((major >= 23)); then echo "${DRIVERS/common\/mlx5,/common/mlx5,common/nfp,}"; else echo "$DRIVERS"; fi
}

# apt-get/apt-cache on Debian's deb-src entries of bookworm and trixie, with apt state of this
# script's own in $APT_DIR (the machine's sources and lists are not touched): apt_src update,
# apt_src showsrc dpdk, apt_src source --download-only dpdk=V
APT_DIR=""
apt_src() {
  local tool=apt-get
  [[ $1 == showsrc ]] && tool=apt-cache
  "$tool" -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
    -o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache="$APT_DIR/cache" -o APT::Sandbox::User=root "$@"
}
apt_src_init() {
  APT_DIR=$1
  mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates trixie trixie-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security trixie-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$APT_DIR/sources.list.d/debian-src.sources"
}

# Every library and driver of the build finds the others in the prefix: EAL dlopen()s the drivers,
# and a driver's own dependencies that are not loaded yet (librte_security, librte_gso, ...) are
# looked up by the driver's RUNPATH, else in ld.so's default paths, where Debian's DPDK (32 ports)
# would answer. Idempotent; $prefix/.runpath records that it was done.
set_runpath() {
  local prefix=$1 rp="$1/lib" f n=0
  [[ $(cat "$prefix/.runpath" 2>/dev/null) == "$rp" ]] && return 0
  command -v patchelf >/dev/null || die "patchelf not found: install ${BUILD_DEPS[*]}"
  for f in "$prefix"/lib/librte_*.so.*.* "$prefix"/lib/dpdk/pmds-*/librte_*.so.*.*; do
    [[ -L $f || ! -f $f ]] && continue
    [[ $(patchelf --print-rpath "$f") == "$rp" ]] || patchelf --set-rpath "$rp" "$f" || die "patchelf --set-rpath $rp $f"
    n=$((n + 1))
  done
  printf '%s' "$rp" >"$prefix/.runpath"
  say "RUNPATH $rp set on $n libraries and drivers"
}

cmd_build() {
  local max_ports=1024 version="" store="" src="" install_deps=0 clean=0
  while (($#)); do
    case $1 in
      --max-ports) max_ports=$2; shift 2 ;;
      --version) version=$2; shift 2 ;;
      --store) store=$2; shift 2 ;;
      --src) src=$2; shift 2 ;;
      --install-deps) install_deps=1; shift ;;
      --clean) clean=1; shift ;;
      *) die "unknown option $1 (see the top of $0)" ;;
    esac
  done
  [[ $max_ports =~ ^[0-9]+$ ]] && ((max_ports >= 2 && max_ports <= 65535)) || die "--max-ports $max_ports: give a number 2..65535"
  if [[ -z $version ]]; then
    version=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null) ||
      die "no --version given and libdpdk-dev is not installed: pass --version (e.g. 22.11.11-0+deb12u1)"
  fi
  local upstream=${version%%-*}
  upstream=${upstream#*:}
  # an upstream version only (22.11.11): Debian's source package of it, found once apt knows it
  local want_src=$version
  [[ $version == *-* ]] || want_src=""
  local prefix="$PREFIX_ROOT/$upstream-ports$max_ports"
  local drivers
  drivers=$(drivers_of "$upstream")
  local rest="max_ethports $max_ports recipe $RECIPE drivers $drivers disable_libs $DISABLE_LIBS"
  # done already? (.complete holds "dpdk <Debian version> <rest>")
  built() {
    local made
    made=$(cat "$prefix/.complete" 2>/dev/null) || return 1
    if [[ -n $want_src ]]; then [[ $made == "dpdk $want_src $rest" ]]; else [[ $made == "dpdk $upstream-"*" $rest" ]]; fi
  }
  if built; then
    set_runpath "$prefix"
    echo "$prefix"
    return 0
  fi
  [[ -e $prefix/.complete ]] && say "$prefix was built by another recipe ($(head -c 120 "$prefix/.complete")); building again"

  if ((install_deps)); then
    say "installing the build dependencies"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update: check access to the Debian mirror"
    apt-get install -y -qq --no-install-recommends "${BUILD_DEPS[@]}" >/dev/null || die "apt-get install ${BUILD_DEPS[*]}"
  fi
  local p
  for p in meson ninja dpkg-source gcc pkg-config; do command -v $p >/dev/null || die "$p not found: install ${BUILD_DEPS[*]}"; done

  # Debian's source package (orig tarball + Debian's patches), unpacked once
  src=${src:-$(mktemp -d /tmp/dpdk-src.XXXXXX)}
  mkdir -p "$src"
  # one build at a time in a source directory (two bootstraps at once): the second waits, then
  # finds the first one's build
  exec 9>"$src/.lock"
  if ! flock -n 9; then
    say "another build-dpdk.sh is building in $src; waiting for it"
    flock 9
  fi
  if built; then
    echo "$prefix"
    return 0
  fi
  local dsc
  dsc=$(ls "$src"/dpdk_"${want_src:-$upstream-}"*.dsc 2>/dev/null | head -n1 || true)
  if [[ -z $dsc ]]; then
    apt_src_init "$src/apt"
    say "looking up Debian's dpdk source packages (bookworm, trixie)"
    apt_src update -qq >/dev/null 2>"$src/apt-update.log" ||
      { cat "$src/apt-update.log" >&2; die "apt-get update (deb-src of bookworm and trixie): check access to the Debian mirror"; }
    local have
    have=$(apt_src showsrc dpdk 2>/dev/null | awk '/^Version:/ {print $2}' | sort -u | tr '\n' ' ')
    if [[ -z $want_src ]]; then
      want_src=$(apt_src showsrc dpdk 2>/dev/null | awk -v u="$upstream" '/^Version:/ && index($2, u "-") == 1 {print $2; exit}')
      [[ -n $want_src ]] || die "Debian has no dpdk source of $upstream (it has: $have); pass one of those (--version, or --build-arg DPDK_VERSION=<its part before the dash>)"
    fi
    (cd "$src" && apt_src source -qq --download-only "dpdk=$want_src" >"$src/apt-source.log" 2>&1) ||
      { grep -E '^(E|W):' "$src/apt-source.log" >&2 || true
        die "apt-get source dpdk=$want_src failed (Debian lists: $have): the archive may have moved on or not serve these files (see above); pass a listed version (--version, or --build-arg DPDK_VERSION=...)"; }
    dsc="$src/dpdk_${want_src#*:}.dsc"
  fi
  want_src=${dsc##*/dpdk_}
  want_src=${want_src%.dsc}
  local tree="$src/dpdk-$want_src"
  if [[ ! -f $tree/.unpacked ]]; then
    rm -rf "$tree"
    (cd "$src" && dpkg-source -q -x "$dsc" "$tree" >/dev/null 2>&1) || die "unpacking $dsc failed: remove $src and retry"
    touch "$tree/.unpacked"
  fi

  # where the files go: the prefix itself, or (--store) a fresh directory the prefix links to,
  # swapped in only when complete, so programs using the previous build are not disturbed
  local dest=$prefix
  if [[ -n $store ]]; then
    dest="$store.tmp"
    rm -rf "$dest"
    mkdir -p "$dest" "$PREFIX_ROOT"
    [[ -L $prefix || ! -e $prefix ]] || die "$prefix exists and is not a link: remove it"
    ln -sfn "$dest" "$prefix"
  else
    rm -rf "$prefix"
    mkdir -p "$prefix"
  fi
  local build="$src/build-$max_ports"
  say "building DPDK $want_src with max_ethports=$max_ports into $prefix (takes 10-17 minutes on 2 cores, once)"
  rm -rf "$build"
  (cd "$tree" && meson setup "$build" --prefix="$prefix" --libdir=lib --default-library=shared \
    -Dplatform=generic -Dmax_ethports="$max_ports" -Denable_drivers="$drivers" -Dtests=false -Ddisable_apps='*' \
    -Ddisable_libs="$DISABLE_LIBS" >"$src/meson-setup.log" 2>&1) ||
    { tail -n 20 "$src/meson-setup.log" >&2; die "meson setup (log: $build/meson-logs/meson-log.txt)"; }
  nice -n 10 ninja -C "$build" install >"$src/build-$max_ports.log" 2>&1 ||
    { tail -n 30 "$src/build-$max_ports.log" >&2; die "DPDK build (log: $src/build-$max_ports.log)"; }
  grep -q "^#define RTE_MAX_ETHPORTS $max_ports\$" "$prefix/include/rte_build_config.h" ||
    die "the build's rte_build_config.h does not say RTE_MAX_ETHPORTS $max_ports"
  set_runpath "$prefix"
  printf 'dpdk %s %s' "$want_src" "$rest" >"$prefix/.complete"
  if [[ -n $store ]]; then
    rm -rf "$store.old"
    [[ ! -e $store ]] || mv "$store" "$store.old"
    mv "$dest" "$store"
    ln -sfn "$store" "$prefix"
    rm -rf "$store.old"
  fi
  # the build tree is not reused (a build starts afresh); the log stays
  rm -rf "$build"
  if ((clean)); then rm -rf "$src"; fi
  echo "$prefix"
}

# soname (librte_x.so.23) -> the drivers (librte_*.so.N.M in the pmds directory) a file needs
needed_drivers() {
  readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(librte_[a-z0-9_]*\)\.so\..*\].*/\1/p'
}

cmd_runtime() {
  (($# >= 2)) || die "usage: build-dpdk.sh runtime PREFIX DEST DRIVER..."
  local prefix=${1%/} dest=${2%/}
  shift 2
  command -v readelf >/dev/null || die "readelf not found: install binutils"
  # a build handed in from elsewhere (the image's --build-context dpdk=...) must be this recipe's
  local made
  made=$(cat "$prefix/.complete" 2>/dev/null) || die "$prefix has no .complete: not a finished build of scripts/build-dpdk.sh"
  local made_ver=${made#dpdk }
  made_ver=${made_ver%% *}
  made_ver=${made_ver#*:}
  [[ $made == "dpdk "*" recipe $RECIPE drivers $(drivers_of "$made_ver") disable_libs $DISABLE_LIBS" ]] ||
    die "$prefix was built by another recipe of scripts/build-dpdk.sh ($made): rebuild it (scripts/bootstrap), or build the image without --build-context dpdk=..."
  local pmds
  pmds=$(cd "$prefix/lib" && ls -d dpdk/pmds-*) || die "no lib/dpdk/pmds-* in $prefix: not a DPDK build"
  local abi=${pmds#dpdk/pmds-}
  mkdir -p "$dest$prefix/lib/$pmds" "$dest/etc/ld.so.conf.d"
  # every library (regular files in lib/; the drivers there are links into the pmds directory)
  local f base
  for f in "$prefix"/lib/librte_*.so."$abi"; do
    [[ -L $f ]] && continue
    base=${f%.*}
    cp -a "$f" "$base" "$dest$prefix/lib/"
  done
  # drivers: those asked for, the base ones, and what they need, transitively
  local -A want=()
  local queue=("${BASE_DRIVERS[@]}" "$@") d n
  while ((${#queue[@]})); do
    d=${queue[0]}
    queue=("${queue[@]:1}")
    [[ -n ${want[$d]:-} ]] && continue
    f="$prefix/lib/$pmds/librte_$d.so.$abi"
    [[ -f $f ]] || die "driver $d is not in this DPDK build; it has: $(cd "$prefix/lib/$pmds" && ls *."$abi" | sed "s/^librte_//; s/\.so\.$abi\$//" | tr '\n' ' ')"
    want[$d]=1
    for n in $(needed_drivers "$f"); do
      n=${n#librte_}
      [[ -f $prefix/lib/$pmds/librte_$n.so.$abi ]] && queue+=("$n")
    done
  done
  for d in "${!want[@]}"; do
    base="librte_$d.so.${abi%%.*}"
    cp -a "$prefix/lib/$pmds/librte_$d.so.$abi" "$prefix/lib/$pmds/$base" "$dest$prefix/lib/$pmds/"
    cp -a "$prefix/lib/librte_$d.so.$abi" "$prefix/lib/$base" "$dest$prefix/lib/"
  done
  # the drivers' own dependencies on each other resolve through ld.so.cache (dlopen ignores the
  # application's rpath)
  echo "$prefix/lib" >"$dest/etc/ld.so.conf.d/vio4wd-dpdk.conf"
  local libs=("$dest$prefix"/lib/librte_*.so."$abi")
  say "runtime files of $prefix in $dest: ${#libs[@]} libraries (with the drivers), drivers: $(printf '%s\n' "${!want[@]}" | sort | tr '\n' ' ')"
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  deps) echo "${BUILD_DEPS[*]}" ;;
  runtime) shift; cmd_runtime "$@" ;;
  *) die "usage: build-dpdk.sh build|deps|runtime ... (see the top of $0)" ;;
esac
