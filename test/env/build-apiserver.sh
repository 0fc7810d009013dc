#!/usr/bin/env bash
# Builds kube-apiserver $KUBE_VERSION from Go modules (wrapper module test/env/apiserver) into
# $VIO4WD_CACHE/kube/$KUBE_VERSION/kube-apiserver (go_build_k8s in lib.sh). Does nothing when that
# binary is there and was built from the same go.mod/go.sum. Cold: about 7 minutes on 2 cores.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_build_k8s kube-apiserver
