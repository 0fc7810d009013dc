#!/usr/bin/env bash
# Builds kube-apiserver $KUBE_VERSION from Go modules (wrapper module test/env/apiserver) into
# $VIO4WD_CACHE/kube/$KUBE_VERSION/kube-apiserver. Does nothing when that binary is there and
# was built from the same go.mod/go.sum. Cold: about 7 minutes on 2 cores (downloads included).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/apiserver
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if [[ -x $KUBE_APISERVER_BIN && -f $KUBE_APISERVER_BIN.stamp && $(cat "$KUBE_APISERVER_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
mkdir -p "$KUBE_CACHE" "$GOMODCACHE" "$GOCACHE"
tlog "building kube-apiserver $KUBE_VERSION from Go modules (about 7 min on 2 cores when nothing is cached)"
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$KUBE_APISERVER_BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver) \
  || tdie "go build of kube-apiserver failed (see above)"
mv "$KUBE_APISERVER_BIN.tmp" "$KUBE_APISERVER_BIN"
echo "$stamp" > "$KUBE_APISERVER_BIN.stamp"
tlog "built $KUBE_APISERVER_BIN in $(( $(date +%s) - t0 )) s"
