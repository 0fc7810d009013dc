// What a user reads when a relay's VF cannot be had on a node (status message of a Failed relay,
// port control's error): the field at fault, what the node has, and the fix, for a node without
// VFs, a selector nothing free matches, an address that is no VF, and a VF on a kernel driver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostVfResolver } from '../../src/agent/vf-resolver.js';
import { silentLogger } from '../../src/util/log.js';
import { SysfsTree } from '../helpers/sysfs.js';

type T = { after: (fn: () => void) => void };

function resolver(t: T, vfs: { driver: string | null }[]): { r: HostVfResolver; addrs: string[] } {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  const addrs = vfs.length > 0 ? tree.pf({ name: 'ens1f0', pci: '0000:3b:00.0', numaNode: 0, vfs }) : [];
  return { r: new HostVfResolver({ sysRoot: tree.root, setMac: false, logger: silentLogger() }), addrs };
}

test('a node without VFs: the selector is named, and how to create VFs', async (t) => {
  const { r } = resolver(t, []);
  await assert.rejects(r.resolve('vm1', { selector: { pfName: 'ens1f0' } }, {}), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ENODEV');
    assert.match(e.message, /^vf\.selector: no free VF on this node matches pfName=ens1f0 \(0 VF\(s\) found, 0 in use\): this node has no SR-IOV VFs: create them \(echo 8 > \/sys\/class\/net\/<pf>\/device\/sriov_numvfs/);
    return true;
  });
});

test('every matching VF taken: the counts and the ways out', async (t) => {
  const { r, addrs } = resolver(t, [{ driver: 'vfio-pci' }]);
  const first = await r.resolve('vm1', { selector: { pfName: 'ens1f0' } }, {});
  assert.deepEqual(first.vf.pciAddresses, [addrs[0]]);
  await assert.rejects(r.resolve('vm2', { selector: { pfName: 'ens1f0' } }, {}), /: vf\.selector: no free VF on this node matches pfName=ens1f0 \(1 VF\(s\) found, 1 in use\): free a VF of another relay, create more VFs \(sriov_numvfs\), or widen the selector/);
});

test('an address that is no VF, and a VF on a kernel driver, name the field and the fix', async (t) => {
  const { r, addrs } = resolver(t, [{ driver: 'iavf' }]);
  await assert.rejects(r.resolve('vm1', { pciAddresses: ['0000:05:08.1'] }, {}), /vf\.pciAddress: VF 0000:05:08\.1 is not on this node \(no such PCI device, or not a VF\): check the address \(lspci -D/);
  await assert.rejects(r.resolve('vm1', { pciAddresses: [addrs[0]!] }, {}), new RegExp(`VF ${addrs[0]!.replace('.', '\\.')} is bound to iavf, which DPDK cannot use: bind it to vfio-pci \\(sriov\\.bindVfio in the agent config, or VIRTIOFWD_BIND_VFIO_PCI\\)`));
});
