# profiles: test image
# Podman (from Debian) for the container image test (test/integration/image.podman.test.ts):
# `podman build --isolation chroot` works here although containers cannot run. Base images cannot
# be pulled, so scripts/podman-base-images.sh makes debian:bookworm-slim (debootstrap, cached
# under $VIO4WD_CACHE/images) and node:26-bookworm-slim (the project's Node 26 from npm) locally.
# The first run also builds the vio4wd image once, so that podman's layer cache holds the slow
# layers (Debian packages, npm ci) and the test only redoes what changed. It hands the Dockerfile
# this machine's DPDK build (step dpdk) with --build-context dpdk=..., as the test does, so DPDK
# is not compiled a second time.
# First run: about 4-6 minutes; afterwards well under a second.

"$ROOT/scripts/podman-base-images.sh" || fail "local base images (scripts/podman-base-images.sh)" \
  "read the error above; rerun scripts/podman-base-images.sh alone to retry only this step"
if ! podman image exists localhost/vio4wd:test; then
  say "podman: building the vio4wd image once to fill the layer cache (a few minutes)"
  podman_args=()
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && podman_args+=(--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt)
  podman_dpdk=$(sed -n 's/^DPDK_PREFIX=//p' "$ROOT/native/dpdk.env" 2>/dev/null || true)
  if [[ $podman_dpdk =~ ^/opt/vio4wd-dpdk/([0-9.]+)-ports([0-9]+)$ && -f $podman_dpdk/.complete ]]; then
    podman_args+=(--build-context "dpdk=$(readlink -f "$podman_dpdk")" --build-arg "DPDK_VERSION=${BASH_REMATCH[1]}" --build-arg "DPDK_MAX_PORTS=${BASH_REMATCH[2]}")
  else
    say "podman: no DPDK build of step dpdk to hand in; the image build compiles DPDK itself (10-17 minutes more)"
  fi
  (cd "$ROOT" && podman build --isolation chroot --pull=never --layers "${podman_args[@]}" -t localhost/vio4wd:test . >/tmp/vio4wd-bootstrap-image.log 2>&1) \
    || fail "podman build of the vio4wd image (log: /tmp/vio4wd-bootstrap-image.log)" \
      "read the log; the image test (node scripts/run-tests.mjs image.podman) builds it again and shows the failing step"
  unset podman_args podman_dpdk
fi
say "podman: ok ($(podman --version | awk '{print $3}'), base images and vio4wd image cached)"
