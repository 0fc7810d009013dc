# shellcheck shell=bash
# The Go the test control plane's module builds (test/env/*/go.mod) need, in one place: sourced by
# scripts/bootstrap.d/68-go.sh (which fetches a Go when the machine's is older) and test/env/lib.sh
# (which puts the fetched one on PATH). Sourced, not run.

# GO_MIN: the newest `go` line of the modules (promtool's 1.26.7 today; kube-apiserver and etcd
# need 1.24), unless VIO4WD_GO_MIN says otherwise.
GO_MIN=${VIO4WD_GO_MIN:-$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$(dirname "${BASH_SOURCE[0]}")"/*/go.mod | sort -V | tail -n1)}

# go_at_least [GO [MIN]]: whether the go binary GO (default: `go` on PATH) reports a version of
# MIN (default: GO_MIN) or newer, compared as dotted versions (1.26.10 is newer than 1.26.7).
go_at_least() {
  local go=${1:-go} min=${2:-$GO_MIN} v
  v=$("$go" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  [[ $(printf '%s\n%s\n' "$min" "$v" | sort -V | head -n1) == "$min" ]]
}
