# profiles: demo test
# Benchmark parts (bench/, not needed by the tests): OVS-DPDK, the reference DUT of
# ../shared/tools/relaybench. Only with VIO4WD_BENCH=1.
if [[ ${VIO4WD_BENCH:-} == 1 ]]; then
  apt_need openvswitch-switch-dpdk
  say "bench: ok (openvswitch-switch-dpdk)"
fi
