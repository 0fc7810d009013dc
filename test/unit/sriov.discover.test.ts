// VF discovery: what an operator sees of a node's SR-IOV NICs, read from a sysfs tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discoverPfs, discoverVfs, findVf, type CommandRunner } from '../../src/sriov/index.js';
import { SysfsTree } from '../helpers/sysfs.js';

/** Two NUMA nodes; ens1f0 (node 0) has VFs on iavf, vfio-pci and none; ens2f0 (node 1) has none
 *  created; eth0 is a virtio NIC without SR-IOV. */
function twoPfHost(t: { after: (fn: () => void) => void }): SysfsTree {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.numaNode(0, { cpus: '0-3' }).numaNode(1, { cpus: '4-7' });
  tree.pf({
    name: 'ens1f0',
    pci: '0000:3b:00.0',
    numaNode: 0,
    totalVfs: 64,
    vfs: [
      { driver: 'iavf', netdev: 'ens1f0v0', mac: '52:54:00:aa:00:00', iommuGroup: 40 },
      { driver: 'iavf', netdev: 'ens1f0v1', mac: '52:54:00:aa:00:01', iommuGroup: 41 },
      { driver: 'vfio-pci', nativeDriver: 'iavf', iommuGroup: 42 },
      { driver: null, nativeDriver: 'iavf', iommuGroup: 43 },
    ],
  });
  tree.pf({ name: 'ens2f0', pci: '0000:af:00.0', numaNode: 1, totalVfs: 8, vfs: [], operState: 'down' });
  tree.pciDevice('0000:00:03.0', { vendor: '1af4', device: '1000', driver: 'virtio-pci' });
  tree.netdev('0000:00:03.0', 'eth0', { mac: '02:fc:00:00:00:01' });
  return tree;
}

test('discovery lists each SR-IOV PF with its VF counts, driver and NUMA node, and skips NICs without SR-IOV', async (t) => {
  const tree = twoPfHost(t);
  const pfs = await discoverPfs({ root: tree.root });
  assert.deepEqual(
    pfs.map((p) => [p.name, p.pciAddress, p.driver, p.numaNode, p.totalVfs, p.numVfs, p.vfs.length, p.operState]),
    [
      ['ens1f0', '0000:3b:00.0', 'ice', 0, 64, 4, 4, 'up'],
      ['ens2f0', '0000:af:00.0', 'ice', 1, 8, 0, 0, 'down'],
    ],
  );
  assert.equal(pfs[0]!.vendor, '8086');
  assert.equal(pfs[0]!.device, '1592');
});

test('each VF carries its PCI address, index, ids, driver, NUMA node, netdev MAC and IOMMU group', async (t) => {
  const tree = twoPfHost(t);
  const vfs = await discoverVfs({ root: tree.root });
  assert.deepEqual(
    vfs.map((v) => [v.pciAddress, v.pfName, v.vfIndex, v.vendor, v.device, v.driver, v.numaNode, v.netdev, v.mac, v.macSource, v.iommuGroup]),
    [
      ['0000:3c:02.0', 'ens1f0', 0, '8086', '1889', 'iavf', 0, 'ens1f0v0', '52:54:00:aa:00:00', 'netdev', 40],
      ['0000:3c:02.1', 'ens1f0', 1, '8086', '1889', 'iavf', 0, 'ens1f0v1', '52:54:00:aa:00:01', 'netdev', 41],
      ['0000:3c:02.2', 'ens1f0', 2, '8086', '1889', 'vfio-pci', 0, null, null, null, 42],
      ['0000:3c:02.3', 'ens1f0', 3, '8086', '1889', null, 0, null, null, null, 43],
    ],
  );
  assert.equal(vfs[0]!.pfPciAddress, '0000:3b:00.0');
});

test('VFs without a netdev get their MAC from the PF\'s VF table when a command runner is given', async (t) => {
  const tree = twoPfHost(t);
  const calls: string[] = [];
  const runner: CommandRunner = async (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    // the shape `ip -j link show dev ens1f0` prints for a PF with VFs (iproute2 6.x)
    const vfinfo = [0, 1, 2, 3].map((vf) => ({ vf, link_type: 'ether', address: vf === 2 ? '52:54:00:BB:00:02' : '00:00:00:00:00:00', spoofchk: true }));
    return { code: 0, stdout: JSON.stringify([{ ifindex: 4, ifname: 'ens1f0', address: '3c:fd:fe:00:00:01', vfinfo_list: vfinfo }]), stderr: '' };
  };
  const vfs = await discoverVfs({ root: tree.root, runner });
  assert.deepEqual(calls, ['ip -j link show dev ens1f0'], 'only the PF with MAC-less VFs is asked');
  assert.equal(vfs[2]!.mac, '52:54:00:bb:00:02');
  assert.equal(vfs[2]!.macSource, 'pf');
  assert.equal(vfs[3]!.mac, null, 'an all-zero MAC in the VF table means "not set"');
  assert.equal(vfs[0]!.macSource, 'netdev', 'a netdev MAC is kept');
});

test('numa_node -1 reads as node 0 on a one-node host and as unknown on a multi-node host', async (t) => {
  const one = SysfsTree.create();
  t.after(() => one.cleanup());
  one.numaNode(0, { cpus: '0-1' });
  one.pf({ name: 'p0', pci: '0000:01:00.0', vfs: [{ driver: 'iavf' }] }); // numa_node -1
  assert.equal((await discoverVfs({ root: one.root }))[0]!.numaNode, 0);

  const two = SysfsTree.create();
  t.after(() => two.cleanup());
  two.numaNode(0, { cpus: '0-1' }).numaNode(1, { cpus: '2-3' });
  two.pf({ name: 'p0', pci: '0000:01:00.0', vfs: [{ driver: 'iavf' }] });
  assert.equal((await discoverVfs({ root: two.root }))[0]!.numaNode, null);
});

test('a switchdev representor sharing the PF\'s PCI device does not replace the PF\'s own netdev', async (t) => {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.pf({ name: 'enp1s0f0np0', pci: '0000:01:00.0', physPortName: 'p0', vfs: [{ driver: 'mlx5_core' }] });
  tree.netdev('0000:01:00.0', 'eth5', { physPortName: 'pf0vf0' }); // a VF representor
  tree.netdev('0000:01:00.0', 'aaa_pf0', { physPortName: 'pf0' }); // the PF representor, sorts first
  const pfs = await discoverPfs({ root: tree.root });
  assert.deepEqual(pfs.map((p) => p.name), ['enp1s0f0np0']);
});

test('findVf looks a VF up by PCI address; a host without SR-IOV has no PFs', async (t) => {
  const tree = twoPfHost(t);
  assert.equal((await findVf('0000:3c:02.1', { root: tree.root }))?.vfIndex, 1);
  assert.equal(await findVf('0000:3c:07.0', { root: tree.root }), null);
  const empty = SysfsTree.create();
  t.after(() => empty.cleanup());
  assert.deepEqual(await discoverPfs({ root: empty.root }), []);
});
