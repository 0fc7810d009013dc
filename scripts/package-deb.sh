#!/bin/bash
# Builds vio4wd_<version>_amd64.deb: the drop-in for virtio-forwarder's package on a Debian
# host. Self-contained: the app (dist/, production node_modules, the native engine), the Node.js
# it runs on, the DPDK build it links (with the drivers the container image ships) and the
# shared libraries those need beyond a minimal Debian (libnuma, libibverbs, ...), next to DPDK.
# Installs /usr/bin/vio4wd, the systemd unit vio4wd.service with its pre-start checks, and an
# example /etc/default/virtioforwarder (written at install only when there is none).
#
#   scripts/package-deb.sh [--out DIR]      (after scripts/bootstrap: needs dist/, native/build)
#
# Takes about a minute on 2 cores (most of it compressing ~100 MB).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
out=$ROOT/build
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done
say() { echo "[package-deb] $*"; }
die() { echo "[package-deb] $*" >&2; exit 1; }

version=$(node -p "require('$ROOT/package.json').version")
# shellcheck disable=SC1091
. "$ROOT/native/dpdk.env" 2>/dev/null || die "native/dpdk.env missing: run scripts/bootstrap first"
[[ -f $ROOT/native/build/vio4wd.node ]] || die "native/build/vio4wd.node missing: run scripts/bootstrap first"
[[ -f $ROOT/dist/cli/main.js ]] || die "dist/ missing: run scripts/bootstrap (or npx tsc -p tsconfig.json) first"
PMDS=(net_vhost net_tap net_af_packet net_bond net_null net_iavf net_i40e net_ice net_ixgbe net_mlx5)

stage=$(mktemp -d "${TMPDIR:-/tmp}/vio4wd-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
app=$stage/usr/lib/vio4wd
mkdir -p "$app/native/build" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/share/vio4wd" "$stage/usr/share/doc/vio4wd" "$stage/DEBIAN"

say "app and production node_modules"
cp -a "$ROOT/bin" "$ROOT/dist" "$ROOT/proto" "$ROOT/package.json" "$ROOT/package-lock.json" "$app/"
cp "$ROOT/native/build/vio4wd.node" "$app/native/build/"
cp -a "$ROOT/node_modules" "$app/"
(cd "$app" && npm prune --omit=dev --omit=optional --offline --no-audit --no-fund --loglevel=error)
rm -f "$app/package-lock.json"
find "$app" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete
rm -rf "$app/node_modules/zeromq/build/darwin" "$app/node_modules/zeromq/build/win32" "$app/node_modules/zeromq/build/linux/arm64" \
  "$app"/node_modules/zeromq/build/linux/x64/node/musl-* "$app/node_modules/zeromq/src" "$app/node_modules/zeromq/script" \
  "$app/node_modules/node-addon-api" "$app/node_modules/node-api-headers"
strip -o "$app/node" "$(command -v node)"

say "DPDK runtime files ($DPDK_PREFIX): ${PMDS[*]}"
"$ROOT/scripts/build-dpdk.sh" runtime "$DPDK_PREFIX" "$stage" "${PMDS[@]}" >/dev/null

# the shared libraries of every ELF file here that a minimal Debian lacks: copied next to DPDK,
# whose libraries and the engine find them through their RUNPATH ($DPDK_PREFIX/lib)
say "bundling the shared libraries a minimal Debian lacks"
base_libs='^(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux-x86-64|linux-vdso|libz|libresolv)\.so'
mapfile -t elfs < <(find "$stage" -type f \( -name '*.so*' -o -name '*.node' -o -path "$app/node" \))
declare -A seen=()
for f in "${elfs[@]}"; do
  LD_LIBRARY_PATH="$stage$DPDK_PREFIX/lib" ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
  [[ $name =~ $base_libs ]] && continue
  [[ $path == "$stage"* || -n ${seen[$name]:-} ]] && continue
  [[ -e $stage$DPDK_PREFIX/lib/$name ]] && continue
  seen[$name]=1
  cp -L "$path" "$stage$DPDK_PREFIX/lib/$name"
done

say "command, service, settings"
cat >"$stage/usr/bin/vio4wd" <<'EOF'
#!/bin/sh
# vio4wd with the Node.js it was packaged with
exec /usr/lib/vio4wd/node /usr/lib/vio4wd/bin/vio4wd.js "$@"
EOF
chmod 0755 "$stage/usr/bin/vio4wd"
install -m 0644 "$ROOT/packaging/systemd/vio4wd.service" "$stage/lib/systemd/system/vio4wd.service"
install -m 0755 "$ROOT/packaging/vio4wd-pre-start" "$app/vio4wd-pre-start"
install -m 0644 "$ROOT/packaging/virtioforwarder" "$stage/usr/share/vio4wd/virtioforwarder"
install -m 0644 "$ROOT/README.md" "$stage/usr/share/doc/vio4wd/README.md"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: vio4wd
Version: $version
Architecture: amd64
Maintainer: vio4wd developers <vio4wd@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.36), libstdc++6, libgcc-s1
Recommends: iproute2
Provides: virtio-forwarder
Conflicts: virtio-forwarder
Replaces: virtio-forwarder
Section: net
Priority: optional
Description: virtio-forwarder compatible DPDK relay between SR-IOV VFs and vhost-user sockets
 vio4wd gives virtual machines a virtio NIC backed by an SR-IOV virtual function. This package
 runs it as a drop-in for virtio-forwarder: the same /etc/default/virtioforwarder, command line
 and ZeroMQ control endpoints, as the systemd service vio4wd.service.
EOF
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # keep a settings file virtio-forwarder left behind; else start from the example
  [ -e /etc/default/virtioforwarder ] || install -m 0644 /usr/share/vio4wd/virtioforwarder /etc/default/virtioforwarder
  ldconfig
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
EOF
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
  ldconfig
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/vio4wd_${version}_amd64.deb
dpkg-deb --root-owner-group -Zgzip -z6 --build "$stage" "$deb" >/dev/null
say "built $deb ($(du -h "$deb" | cut -f1))"
