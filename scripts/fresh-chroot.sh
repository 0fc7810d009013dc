#!/usr/bin/env bash
# Tries the README's commands as a new user would, on a fresh Debian bookworm: a minbase rootfs
# (debootstrap) sharing this host's kernel, with nothing of the project installed and an empty
# VIO4WD_CACHE; only the host's Node.js and npm (what a machine starts from), git, and the host's CA
# certificates and npm settings (so the chroot reaches the package registries as the host does).
# A fresh clone of the given branch goes to /root/vio4wd in it; each command runs there, timed.
#
#   scripts/fresh-chroot.sh [--branch B] [--keep] [--dir DIR] -- 'npm run demo' ['npm test' ...]
#
# --keep keeps the rootfs (and its cache) for another run; without it, it is removed at the end.
# Hugepages, network namespaces and QEMU work in it as on the host (they are the host kernel's).
# Needs root. The rootfs tarball of scripts/podman-base-images.sh is reused when there is one.
set -euo pipefail

say() { printf '[fresh] %s\n' "$*" >&2; }
die() { printf '[fresh] FAILED: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
branch=$(git -C "$ROOT" rev-parse --abbrev-ref HEAD)
keep=0
R=/var/tmp/vio4wd-fresh
while (($#)); do
  case $1 in
    --branch) branch=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dir) R=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see the top of $0)" ;;
  esac
done
(($#)) || set -- 'npm run demo'
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mounts)"

unmount_all() { for m in run dev sys proc ""; do umount -R "$R/root/$m" 2>/dev/null || true; done; }
cleanup() { unmount_all; ((keep)) || rm -rf "$R"; }
trap cleanup EXIT

if [[ ! -x $R/root/usr/bin/git ]]; then
  rm -rf "$R"; mkdir -p "$R/root"
  cache=${VIO4WD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vio4wd}
  tar=$(ls "$cache"/images/debian-bookworm-slim-*.tar 2>/dev/null | head -n1 || true)
  if [[ -n $tar ]]; then
    say "rootfs from $tar"
    tar -C "$R/root" -xf "$tar"
  else
    say "debootstrap bookworm (minbase) into $R/root (a few minutes)"
    debootstrap --variant=minbase bookworm "$R/root" http://deb.debian.org/debian >"$R/debootstrap.log" 2>&1 || die "debootstrap (log: $R/debootstrap.log)"
  fi
  node=$(readlink -f "$(command -v node)")
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  say "adding the host's node $("$node" --version) and npm, git, CA certificates"
  cp "$node" "$R/root/usr/bin/node"
  mkdir -p "$R/root/usr/lib/node_modules"
  cp -a "$npm_dir" "$R/root/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$R/root/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$R/root/usr/bin/npx"
  cp /etc/resolv.conf "$R/root/etc/resolv.conf"
  cp -a /usr/local/share/ca-certificates/. "$R/root/usr/local/share/ca-certificates/" 2>/dev/null || true
  [[ -f $HOME/.npmrc ]] && cp "$HOME/.npmrc" "$R/root/root/.npmrc"
  chroot "$R/root" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null && update-ca-certificates >/dev/null' ||
    die "installing git and ca-certificates in the rootfs"
fi
# the rootfs is a mount point of its own (ip netns makes / a slave mount), with the host's kernel
# file systems, and a /run of its own
mountpoint -q "$R/root" || { mount --bind "$R/root" "$R/root"; mount --make-private "$R/root"; }
mountpoint -q "$R/root/proc" || mount -t proc proc "$R/root/proc"
mountpoint -q "$R/root/sys" || mount --rbind /sys "$R/root/sys"
mountpoint -q "$R/root/dev" || mount --rbind /dev "$R/root/dev"
mountpoint -q "$R/root/run" || mount -t tmpfs tmpfs "$R/root/run"
mkdir -p "$R/root/run/netns"; chmod 1777 "$R/root/tmp"

rm -rf "$R/root/root/vio4wd"
git clone -q -b "$branch" "$ROOT" "$R/root/root/vio4wd"
say "clone of $branch ($(git -C "$R/root/root/vio4wd" rev-parse --short HEAD)) in /root/vio4wd"
# the host's environment for TLS and registries, nothing else
envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb)
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE PIP_CERT GOPROXY GOSUMDB GOFLAGS; do
  [[ -n ${!v:-} ]] && envs+=("$v=${!v}")
done
rc=0
for cmd in "$@"; do
  say "running: $cmd"
  t0=$(date +%s)
  chroot "$R/root" env -i "${envs[@]}" bash -c "cd /root/vio4wd && $cmd" || rc=$?
  say "$cmd: exit $rc after $(( $(date +%s) - t0 )) s"
  ((rc == 0)) || break
done
exit "$rc"
