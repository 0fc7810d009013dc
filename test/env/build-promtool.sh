#!/usr/bin/env bash
# Builds Prometheus's promtool (module github.com/prometheus/prometheus $PROMTOOL_VERSION, wrapper
# module test/env/promtool) into $VIO4WD_CACHE/promtool/$PROMTOOL_VERSION/promtool, for the tests
# that check and unit-test the chart's alerting rules (promtool check rules / test rules). Does
# nothing when that binary is there and was built from the same go.mod/go.sum. Cold: about
# 6 minutes on 2 cores (downloads included); needs Go >= 1.26.7 (the module's go line).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/promtool
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if [[ -x $PROMTOOL_BIN && -f $PROMTOOL_BIN.stamp && $(cat "$PROMTOOL_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.26.7)"
mkdir -p "$(dirname "$PROMTOOL_BIN")" "$GOMODCACHE" "$GOCACHE"
tlog "building promtool (Prometheus $PROMTOOL_VERSION) from Go modules (about 6 min on 2 cores when nothing is cached)"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$PROMTOOL_BIN.tmp" github.com/prometheus/prometheus/cmd/promtool) \
  || tdie "go build of promtool failed (see above)"
mv "$PROMTOOL_BIN.tmp" "$PROMTOOL_BIN"
echo "$stamp" > "$PROMTOOL_BIN.stamp"
tlog "built $PROMTOOL_BIN in $(( $(date +%s) - t0 )) s"
