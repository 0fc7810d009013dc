#!/usr/bin/env bash
# Builds Prometheus's promtool (module github.com/prometheus/prometheus $PROMTOOL_VERSION, wrapper
# module test/env/promtool) into $VIO4WD_CACHE/promtool/$PROMTOOL_VERSION/promtool, for the tests
# that check and unit-test the chart's alerting rules (promtool check rules / test rules). Does
# nothing when that binary is there and was built from the same go.mod/go.sum. Cold: about
# 6 minutes on 2 cores (downloads included); needs the Go of the module's go line (go_build_cached
# in lib.sh says which, and which Go it builds with).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_build_cached "$PROMTOOL_BIN" "$TESTENV_DIR/promtool" github.com/prometheus/prometheus/cmd/promtool "-s -w" \
  "promtool (Prometheus $PROMTOOL_VERSION)" "about 6 min"
