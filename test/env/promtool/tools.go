//go:build tools

// Wrapper module that builds Prometheus's promtool (check rules, test rules) from its published
// Go module for the tests of the chart's alerting rules. Built by test/env/build-promtool.sh.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
