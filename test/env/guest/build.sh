#!/usr/bin/env bash
# Builds the vio4wd test guest from Debian packages only: the kernel (vmlinuz of Debian's
# cloud kernel package) and a gzip'd cpio initramfs with busybox-static, the virtio-net and
# virtio-pci modules, ethtool (for multiqueue) and the init script beside this file.
#
# Usage: build.sh OUT_DIR KERNEL_PKG BUSYBOX_PKG
#   KERNEL_PKG/BUSYBOX_PKG are Debian package names (resolved by the caller, see
#   scripts/bootstrap.d/60-guest.sh). Writes OUT_DIR/{vmlinuz,initrd.img,manifest.json}.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR KERNEL_PKG BUSYBOX_PKG}
kpkg=${2:?kernel package name missing}
bbpkg=${3:?busybox package name missing}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/vio4wd-guest-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt's _apt user downloads into it

# Modules the guest needs for a virtio NIC on PCI; their dependencies are added below.
want_modules=(virtio_pci virtio_net)
# Userland beyond busybox: ethtool (ethtool -L for multiqueue) and the libraries it links.
extra_pkgs=(ethtool libmnl0 libc6)

download() { (cd "$work" && apt-get download -q "$kpkg" "$bbpkg" "${extra_pkgs[@]}" >/dev/null 2>"$work/apt.err"); }
if ! download; then
  # stale package lists name versions the mirror no longer has
  apt-get update -qq >/dev/null 2>&1 || true
  download || { cat "$work/apt.err" >&2; echo "build.sh: apt-get download failed" >&2; exit 1; }
fi
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/x"
done

kver=$(basename "$(ls -d "$work"/x/lib/modules/*/ | head -1)")
vmlinuz="$work/x/boot/vmlinuz-$kver"
[[ -f $vmlinuz ]] || { echo "build.sh: $kpkg has no /boot/vmlinuz-$kver" >&2; exit 1; }
mdir="$work/x/lib/modules/$kver"

# --- initramfs tree
r="$work/root"
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib64,lib/x86_64-linux-gnu,lib/modules}
cp "$work/x/bin/busybox" "$r/bin/busybox"
cp "$here/init" "$r/init"
cp "$here/vio4wd-ping" "$r/bin/vio4wd-ping"
chmod 755 "$r/init" "$r/bin/busybox" "$r/bin/vio4wd-ping"
ln -s busybox "$r/bin/sh"

# ethtool with exactly the libraries it needs (all from the Debian packages above)
cp "$work/x/sbin/ethtool" "$r/sbin/ethtool"
lib="$work/x/lib/x86_64-linux-gnu"
cp -L "$lib/ld-linux-x86-64.so.2" "$lib/libc.so.6" "$lib/libm.so.6" "$r/lib/x86_64-linux-gnu/"
cp -L "$work/x/usr/lib/x86_64-linux-gnu/libmnl.so.0" "$r/lib/x86_64-linux-gnu/"
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/lib64/ld-linux-x86-64.so.2"

# Modules in load order: resolve 'depends' from each module's .modinfo (depth first).
declare -A seen=()
order=()
modpath() { # name -> path relative to $mdir (module names use _ and - interchangeably)
  local n=${1//-/_} p
  p=$(find "$mdir/kernel" \( -name "$n.ko" -o -name "${n//_/-}.ko" \) | head -1)
  [[ -n $p ]] || { echo "build.sh: module $1 not found in $kpkg" >&2; exit 1; }
  echo "${p#"$mdir"/}"
}
add_module() {
  local n=${1//-/_} p d
  [[ -n ${seen[$n]:-} ]] && return 0
  seen[$n]=1
  p=$(modpath "$n")
  for d in $(modinfo -F depends "$mdir/$p" | tr ',' ' '); do add_module "$d"; done
  order+=("$p")
}
for m in "${want_modules[@]}"; do add_module "$m"; done
for p in "${order[@]}"; do
  mkdir -p "$r/lib/modules/$(dirname "$p")"
  cp "$mdir/$p" "$r/lib/modules/$p"
  echo "$p"
done > "$r/etc/modules.order"

bbver=$(dpkg-deb -f "$work"/"$bbpkg"_*.deb Version)
kpkgver=$(dpkg-deb -f "$work"/"$kpkg"_*.deb Version)
printf 'kernel=%s %s (%s)\nbusybox=%s\n' "$kpkg" "$kpkgver" "$kver" "$bbver" > "$r/etc/vio4wd-guest-release"

mkdir -p "$out"
cp "$vmlinuz" "$out/vmlinuz"
(cd "$r" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -6 > "$out/initrd.img"
cat > "$out/manifest.json" <<JSON
{
  "kernelPackage": "$kpkg",
  "kernelPackageVersion": "$kpkgver",
  "kernelRelease": "$kver",
  "busyboxVersion": "$bbver",
  "modules": [$(printf '"%s",' "${order[@]}" | sed 's/,$//')],
  "vmlinuz": "vmlinuz",
  "initrd": "initrd.img"
}
JSON
echo "built guest: kernel $kver, busybox $bbver, modules ${order[*]}"
