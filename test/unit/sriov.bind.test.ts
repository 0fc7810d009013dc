// Binding a VF to vfio-pci, against a sysfs tree whose fake kernel reacts to the writes as Linux
// does (driver_override, unbind, drivers_probe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindVfToVfio, bindVfDriver, discoverVfs } from '../../src/sriov/index.js';
import { VioError } from '../../src/util/errors.js';
import { SysfsTree, fakeKernel, type FakeKernelOptions } from '../helpers/sysfs.js';

const VF = '0000:3c:02.0';

function host(t: { after: (fn: () => void) => void }, opts: { vfio?: boolean; iommu?: boolean; driver?: string | null } = {}): SysfsTree {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.numaNode(0, { cpus: '0-3' });
  tree.pf({
    name: 'ens1f0',
    pci: '0000:3b:00.0',
    vfs: [{ driver: opts.driver === undefined ? 'iavf' : opts.driver, nativeDriver: 'iavf', netdev: opts.driver === null ? undefined : 'ens1f0v0', iommuGroup: opts.iommu === false ? null : 40 }],
  });
  if (opts.vfio !== false) tree.pciDriver('vfio-pci');
  return tree;
}

function kernel(tree: SysfsTree, opts: FakeKernelOptions = {}) {
  return fakeKernel(tree, opts);
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VioError, `expected a VioError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

test('a VF on iavf ends up on vfio-pci: override written, unbound, probed, and discovery sees it', async (t) => {
  const tree = host(t);
  const k = kernel(tree);
  const r = await bindVfToVfio(VF, { root: tree.root, write: k.write });
  assert.deepEqual(r, { pciAddress: VF, driver: 'vfio-pci', previousDriver: 'iavf', changed: true });
  assert.deepEqual(
    k.log.map(([p, v]) => `${p} <- ${v}`),
    [
      `sys/bus/pci/devices/${VF}/driver_override <- vfio-pci`,
      `sys/bus/pci/drivers/iavf/unbind <- ${VF}`,
      `sys/bus/pci/drivers_probe <- ${VF}`,
    ],
  );
  const vf = (await discoverVfs({ root: tree.root }))[0]!;
  assert.equal(vf.driver, 'vfio-pci');
  assert.equal(vf.driverOverride, 'vfio-pci');
  assert.equal(tree.link('sys/bus/pci/drivers/vfio-pci/' + VF), VF, 'the driver lists the device');
  assert.equal(tree.link('sys/bus/pci/drivers/iavf/' + VF), null, 'the old driver no longer does');
});

test('binding is idempotent: a VF already on vfio-pci is left alone', async (t) => {
  const tree = host(t, { driver: 'vfio-pci' });
  const k = kernel(tree);
  const r = await bindVfToVfio(VF, { root: tree.root, write: k.write });
  assert.equal(r.changed, false);
  assert.deepEqual(k.log, []);
});

test('an unbound VF is probed straight away (no unbind)', async (t) => {
  const tree = host(t, { driver: null });
  const k = kernel(tree);
  const r = await bindVfToVfio(VF, { root: tree.root, write: k.write });
  assert.equal(r.previousDriver, null);
  assert.ok(!k.log.some(([p]) => p.endsWith('/unbind')));
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), 'vfio-pci');
});

test('binding back to the kernel driver works the same way (driver_override names it)', async (t) => {
  const tree = host(t, { driver: 'vfio-pci' });
  tree.pciDriver('iavf');
  const r = await bindVfDriver(VF, 'iavf', { root: tree.root, write: kernel(tree).write });
  assert.equal(r.previousDriver, 'vfio-pci');
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), 'iavf');
});

test('vfio-pci not loaded: clear error naming modprobe, and nothing is written', async (t) => {
  const tree = host(t, { vfio: false });
  const k = kernel(tree);
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: k.write }), 'ENODRIVER', /vfio-pci is not loaded.*modprobe vfio-pci/);
  assert.deepEqual(k.log, []);
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), 'iavf', 'the VF keeps its driver');
});

test('VF without an IOMMU group: error says to turn the IOMMU on, nothing is written', async (t) => {
  const tree = host(t, { iommu: false });
  const k = kernel(tree);
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: k.write }), 'ENOIOMMU', /no IOMMU group.*intel_iommu=on iommu=pt/);
  assert.deepEqual(k.log, []);
});

test('VF without an IOMMU group binds when vfio runs in unsafe no-IOMMU mode', async (t) => {
  const tree = host(t, { iommu: false });
  tree.file('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'Y');
  const r = await bindVfToVfio(VF, { root: tree.root, write: kernel(tree).write });
  assert.equal(r.driver, 'vfio-pci');
});

test('unbind write fails: EUNBIND with the driver\'s name, VF left on its driver with no override', async (t) => {
  const tree = host(t);
  const k = kernel(tree, { unbind: 'error' });
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: k.write }), 'EUNBIND', /unbinding 0000:3c:02\.0 from iavf failed: EBUSY/);
  assert.ok(!k.log.some(([p]) => p.endsWith('drivers_probe')));
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), 'iavf');
  assert.equal(tree.read(`${tree.devicePath(VF)}/driver_override`), '(null)', 'driver_override cleared again');
});

test('unbind accepted but the driver kept the VF: EUNBIND', async (t) => {
  const tree = host(t);
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: kernel(tree, { unbind: 'ignored' }).write }), 'EUNBIND', /still bound to iavf/);
  assert.equal(tree.read(`${tree.devicePath(VF)}/driver_override`), '(null)');
});

test('vfio-pci refuses the VF: EBIND, and the VF goes back to its old driver', async (t) => {
  const tree = host(t);
  const k = kernel(tree, { refuse: 'vfio-pci' });
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: k.write }), 'EBIND', /bound to no driver instead of vfio-pci after probing; check dmesg for vfio-pci's reason\. It is back on iavf\./);
  assert.ok(k.log.some(([p]) => p === 'sys/bus/pci/drivers/vfio-pci/bind'), 'the driver\'s bind file was tried after drivers_probe');
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), 'iavf');
  assert.equal(tree.read(`${tree.devicePath(VF)}/driver_override`), '(null)');
});

test('bind did not take and nothing probes any more: EBIND says the VF is left without a driver', async (t) => {
  const tree = host(t);
  await rejectsWith(bindVfToVfio(VF, { root: tree.root, write: kernel(tree, { probe: 'ignored' }).write }), 'EBIND', /It is now bound to no driver \(it was on iavf\)/);
  assert.equal(tree.link(`${tree.devicePath(VF)}/driver`), null);
});

test('unknown VF address and malformed address are refused before any write', async (t) => {
  const tree = host(t);
  const k = kernel(tree);
  await rejectsWith(bindVfToVfio('0000:3c:07.0', { root: tree.root, write: k.write }), 'ENOVF', /no PCI device 0000:3c:07\.0/);
  await assert.rejects(bindVfToVfio('3c:2.0', { root: tree.root, write: k.write }), /pciAddress: "3c:2\.0" is not a PCI address; write it as DDDD:BB:DD\.F/);
  assert.deepEqual(k.log, []);
});
