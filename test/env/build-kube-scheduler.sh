#!/usr/bin/env bash
# Builds kube-scheduler $KUBE_VERSION from Go modules (wrapper module test/env/scheduler) into
# $VIO4WD_CACHE/kube/$KUBE_VERSION/kube-scheduler, for the DRA tests (the scheduler allocates
# ResourceClaims from the agent's ResourceSlices). Does nothing when that binary is there and was
# built from the same go.mod/go.sum. Cold: about 1 minute on 2 cores when kube-apiserver was built
# first (they share nearly all modules and packages: measured 53 s), about 7 minutes from nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/scheduler
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if [[ -x $KUBE_SCHEDULER_BIN && -f $KUBE_SCHEDULER_BIN.stamp && $(cat "$KUBE_SCHEDULER_BIN.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
mkdir -p "$KUBE_CACHE" "$GOMODCACHE" "$GOCACHE"
tlog "building kube-scheduler $KUBE_VERSION from Go modules (about 1 min after kube-apiserver, 7 min from nothing)"
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$KUBE_SCHEDULER_BIN.tmp" k8s.io/kubernetes/cmd/kube-scheduler) \
  || tdie "go build of kube-scheduler failed (see above)"
mv "$KUBE_SCHEDULER_BIN.tmp" "$KUBE_SCHEDULER_BIN"
echo "$stamp" > "$KUBE_SCHEDULER_BIN.stamp"
tlog "built $KUBE_SCHEDULER_BIN in $(( $(date +%s) - t0 )) s"
