#!/usr/bin/env bash
# Builds kube-scheduler $KUBE_VERSION from Go modules (wrapper module test/env/scheduler) into
# $VIO4WD_CACHE/kube/$KUBE_VERSION/kube-scheduler (go_build_k8s in lib.sh), for the DRA tests (the
# scheduler allocates ResourceClaims from the agent's ResourceSlices). Does nothing when that
# binary is there and was built from the same go.mod/go.sum. Cold: about 1 minute after
# kube-apiserver (53 s measured), about 7 minutes from nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_build_k8s kube-scheduler
