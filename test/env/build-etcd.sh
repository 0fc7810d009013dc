#!/usr/bin/env bash
# Builds etcd $ETCD_VERSION from Go modules (wrapper module test/env/etcd) into
# $VIO4WD_CACHE/etcd/$ETCD_VERSION/etcd. Does nothing when that binary is there and was built
# from the same go.mod/go.sum. Cold: about 2 minutes on 2 cores.
# (Why not Debian's etcd-server 3.4.23: see test/env/etcd/go.mod.)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/etcd
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if [[ -x $ETCD_BIN && -f $ETCD_BIN.stamp && $(cat "$ETCD_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
mkdir -p "$(dirname "$ETCD_BIN")" "$GOMODCACHE" "$GOCACHE"
tlog "building etcd $ETCD_VERSION from Go modules (about 2 min on 2 cores when nothing is cached)"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN.tmp" go.etcd.io/etcd/server/v3) \
  || tdie "go build of etcd failed (see above)"
mv "$ETCD_BIN.tmp" "$ETCD_BIN"
echo "$stamp" > "$ETCD_BIN.stamp"
tlog "built $ETCD_BIN in $(( $(date +%s) - t0 )) s"
