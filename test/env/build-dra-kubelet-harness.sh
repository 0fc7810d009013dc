#!/usr/bin/env bash
# Builds test/env/dra-kubelet-harness (kubelet $KUBE_VERSION's own DRA manager and plugin manager,
# plus the CDI library) into $VIO4WD_CACHE/kube/$KUBE_VERSION/dra-kubelet-harness, for the DRA
# kubelet-plugin tests. Does nothing when that binary is there and was built from the same
# sources. Cold: about 40 s on 2 cores after kube-apiserver (shared modules and packages; measured
# 33 s), about 7 minutes from nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/dra-kubelet-harness
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "$mod/main.go" "${BASH_SOURCE[0]}")
if [[ -x $DRA_HARNESS_BIN && -f $DRA_HARNESS_BIN.stamp && $(cat "$DRA_HARNESS_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
mkdir -p "$KUBE_CACHE" "$GOMODCACHE" "$GOCACHE"
tlog "building dra-kubelet-harness (kubelet $KUBE_VERSION's DRA manager) from Go modules (under a minute after kube-apiserver)"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$DRA_HARNESS_BIN.tmp" .) \
  || tdie "go build of dra-kubelet-harness failed (see above)"
mv "$DRA_HARNESS_BIN.tmp" "$DRA_HARNESS_BIN"
echo "$stamp" > "$DRA_HARNESS_BIN.stamp"
tlog "built $DRA_HARNESS_BIN in $(( $(date +%s) - t0 )) s"
