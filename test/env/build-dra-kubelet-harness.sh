#!/usr/bin/env bash
# Builds test/env/dra-kubelet-harness (kubelet $KUBE_VERSION's own DRA manager and plugin manager,
# plus the CDI library) into $VIO4WD_CACHE/kube/$KUBE_VERSION/dra-kubelet-harness (go_build_k8s in
# lib.sh), for the DRA kubelet-plugin tests. Does nothing when that binary is there and was built
# from the same sources. Cold: about 40 s after kube-apiserver (33 s measured), about 7 minutes
# from nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_build_k8s dra-kubelet-harness
