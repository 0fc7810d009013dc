# profiles: test
# A Go toolchain for the Go-module builds of the test control plane (kube-apiserver, etcd and
# KubeVirt's CRDs, test/env/): the machine's `go` when it is GO_MIN or newer (test/env/go.sh), otherwise
# Go $VIO4WD_GO_VERSION from the Go module proxy (module golang.org/toolchain, the same download the
# go command's GOTOOLCHAIN makes), fetched with Debian's Go 1.19 unpacked into the cache (never
# installed system-wide: bookworm's Go is too old to build these modules itself). Cached under
# $VIO4WD_CACHE/go-toolchain/; first run about 30 s (about 80 MB), afterwards instant.
# GO_MIN (the newest go line of test/env/*/go.mod) and go_at_least
# shellcheck source=test/env/go.sh
source "$ROOT/test/env/go.sh"
go_min=$GO_MIN
go_want=${VIO4WD_GO_VERSION:-1.27.3}
go_tc="$VIO4WD_CACHE/go-toolchain/go$go_want"
if command -v go >/dev/null && go_at_least "$(command -v go)" "$go_min"; then
  say "go: ok ($(go env GOVERSION) on PATH)"
elif [[ -x $go_tc/bin/go ]] && go_at_least "$go_tc/bin/go" "$go_min"; then
  export PATH="$go_tc/bin:$PATH"
  say "go: ok ($(go env GOVERSION), $go_tc)"
else
  say "go: no Go >= $go_min on PATH; fetching Go $go_want from the Go module proxy (about 30 s, once)"
  go_tmp=$(mktemp -d "$VIO4WD_CACHE/go-fetch.XXXXXX")
  ( cd "$go_tmp" && apt-get download -q golang-1.19-go >/dev/null 2>&1 ) || {
    apt-get update -qq >/dev/null && ( cd "$go_tmp" && apt-get download -q golang-1.19-go >/dev/null 2>&1 ); } ||
    fail "apt-get download golang-1.19-go (the bootstrapper that fetches Go $go_want)" "check the machine's Debian mirror access"
  dpkg -x "$go_tmp"/golang-1.19-go_*.deb "$go_tmp/deb"
  go_old="$go_tmp/deb/usr/lib/go-1.19"
  ( cd "$go_tmp" && env -u GOFLAGS -u GOTOOLCHAIN GOROOT="$go_old" GOMODCACHE="$go_tmp/mod" GOFLAGS=-modcacherw \
      "$go_old/bin/go" mod download golang.org/toolchain@v0.0.1-go$go_want.linux-amd64 ) ||
    fail "fetching Go $go_want (module golang.org/toolchain@v0.0.1-go$go_want.linux-amd64)" \
      "check access to the Go module proxy (go env GOPROXY), or install Go >= $go_min and put it on PATH"
  rm -rf "$go_tc"
  mkdir -p "$(dirname "$go_tc")"
  mv "$go_tmp/mod/golang.org/toolchain@v0.0.1-go$go_want.linux-amd64" "$go_tc"
  chmod -R u+w "$go_tc"
  # module zips carry no file modes: the toolchain's programs need their execute bits back
  find "$go_tc/bin" "$go_tc/pkg/tool" -type f -exec chmod +x {} +
  rm -rf "$go_tmp"
  go_at_least "$go_tc/bin/go" "$go_min" || fail "the fetched Go in $go_tc does not run" "remove $go_tc and rerun scripts/bootstrap"
  export PATH="$go_tc/bin:$PATH"
  say "go: ok ($(go env GOVERSION), $go_tc)"
fi
unset go_min go_want go_tc go_tmp go_old GO_MIN
unset -f go_at_least
