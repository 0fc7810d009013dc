// The pool policy tests run under: the default pool with the DPDK virtual devices that stand in
// for VFs, which a test node's agent allows (its kubernetes.allowVirtualDevices).

/** DPDK virtual devices that stand in for VFs in tests (a test node's agent opts in to them). */
export const TEST_VIRTUAL_DEVICES = ['net_tap', 'net_af_packet', 'net_null'];

/** A VirtioForwarderPolicy for the default pool with the tests' VF stand-ins, for `namespaces`. */
export function testPoolPolicy(namespaces: string[], o: { name?: string; resourceName?: string; socket?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    apiVersion: 'vio4wd.io/v1alpha1',
    kind: 'VirtioForwarderPolicy',
    metadata: { name: o.name ?? 'test-vhostuser' },
    spec: {
      resourceName: o.resourceName ?? 'vio4wd.io/vhostuser',
      namespaces,
      vfs: { virtualDevices: TEST_VIRTUAL_DEVICES },
      ...(o.socket ? { socket: o.socket } : {}),
    },
  };
}
