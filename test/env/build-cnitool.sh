#!/usr/bin/env bash
# Builds cnitool, containernetworking/cni's command-line driver of libcni, at $CNI_VERSION from
# its Go module (wrapper module test/env/cnitool) into $CNITOOL_BIN, for the vio4wd-cni tests.
# Does nothing when that binary is there and was built from the same go.mod/go.sum.
# Cold: about 20 s on 2 cores (one small module); cached: instant.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/cnitool
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if [[ -x $CNITOOL_BIN && -f $CNITOOL_BIN.stamp && $(cat "$CNITOOL_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
mkdir -p "$(dirname "$CNITOOL_BIN")" "$GOMODCACHE" "$GOCACHE"
tlog "building cnitool $CNI_VERSION from Go modules (about 20 s on 2 cores when nothing is cached)"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$CNITOOL_BIN.tmp" github.com/containernetworking/cni/cnitool) \
  || tdie "go build of cnitool failed (see above)"
mv "$CNITOOL_BIN.tmp" "$CNITOOL_BIN"
echo "$stamp" > "$CNITOOL_BIN.stamp"
tlog "built $CNITOOL_BIN in $(( $(date +%s) - t0 )) s"
