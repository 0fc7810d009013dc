#!/usr/bin/env bash
# Generates KubeVirt $KUBEVIRT_VERSION's CustomResourceDefinitions from its Go module (program in
# test/env/kubevirt-crds) into $VIO4WD_CACHE/kubevirt/$KUBEVIRT_VERSION/crds.yaml. Does nothing
# when that file is there and was made from the same sources. Cold: about 4 minutes on 2 cores.
# Install them with `kubectl create -f` or `kubectl apply --server-side -f`: three are too big
# for client-side apply's last-applied annotation.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mod=$TESTENV_DIR/kubevirt-crds
stamp=$(stamp_of "$mod/go.mod" "$mod/go.sum" "$mod/main.go" "${BASH_SOURCE[0]}")
if [[ -s $KUBEVIRT_CRDS && -f $KUBEVIRT_CRDS.stamp && $(cat "$KUBEVIRT_CRDS.stamp") == "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null || tdie "no go toolchain on PATH (install Go >= 1.24)"
out_dir=$(dirname "$KUBEVIRT_CRDS")
mkdir -p "$out_dir" "$GOMODCACHE" "$GOCACHE"
tlog "generating KubeVirt $KUBEVIRT_VERSION CRDs from its Go module (about 4 min on 2 cores when nothing is cached)"
t0=$(date +%s)
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out_dir/kubevirt-crds" .) \
  || tdie "go build of test/env/kubevirt-crds failed (see above)"
"$out_dir/kubevirt-crds" > "$KUBEVIRT_CRDS.tmp" || tdie "kubevirt-crds failed (see above)"
n=$(grep -c '^kind: CustomResourceDefinition$' "$KUBEVIRT_CRDS.tmp" || true)
(( n >= 10 )) || tdie "kubevirt-crds wrote $n CRDs, expected 17"
mv "$KUBEVIRT_CRDS.tmp" "$KUBEVIRT_CRDS"
echo "$stamp" > "$KUBEVIRT_CRDS.stamp"
tlog "wrote $n KubeVirt CRDs to $KUBEVIRT_CRDS in $(( $(date +%s) - t0 )) s"
