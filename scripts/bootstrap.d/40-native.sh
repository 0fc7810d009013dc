# profiles: demo test
# The native relay engine (native/build/vio4wd.node): C over Debian's DPDK plus the Node-API
# binding. make is incremental, so this takes a moment when nothing changed.

pkg-config --exists libdpdk || fail "DPDK development files (pkg-config libdpdk) missing" "apt-get install libdpdk-dev (the packages step installs it)"
make -s -C "$ROOT/native" >/dev/null || fail "native engine build (make -C native)" "run 'make -C native' to see the compiler errors"
say "native: ok (native/build/vio4wd.node)"
