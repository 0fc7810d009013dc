# Podman (from Debian) for the container image test (test/integration/image.podman.test.ts):
# `podman build --isolation chroot` works here although containers cannot run. Base images cannot
# be pulled, so scripts/podman-base-images.sh makes debian:bookworm-slim (debootstrap, cached
# under $VIO4WD_CACHE/images) and node:20-bookworm-slim (this machine's Node 20) locally.
# The first run also builds the vio4wd image once, so that podman's layer cache holds the slow
# layers (Debian packages, npm ci) and the test only redoes what changed.
# First run: about 4-6 minutes; afterwards about a second.
apt_need podman debootstrap uidmap
"$ROOT/scripts/podman-base-images.sh" || fail "local base images (scripts/podman-base-images.sh)" \
  "read the error above; rerun scripts/podman-base-images.sh alone to retry only this step"
if ! podman image exists localhost/vio4wd:test; then
  say "podman: building the vio4wd image once to fill the layer cache (a few minutes)"
  podman_ca=()
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && podman_ca=(--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt)
  (cd "$ROOT" && podman build --isolation chroot --pull=never --layers "${podman_ca[@]}" -t localhost/vio4wd:test . >/tmp/vio4wd-bootstrap-image.log 2>&1) \
    || fail "podman build of the vio4wd image (log: /tmp/vio4wd-bootstrap-image.log)" \
      "read the log; the image test (node scripts/run-tests.mjs image.podman) builds it again and shows the failing step"
  unset podman_ca
fi
say "podman: ok ($(podman --version | awk '{print $3}'), base images and vio4wd image cached)"
