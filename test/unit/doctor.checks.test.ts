// Each doctor check against host trees built for it: PASS on a well-prepared host, and the WARN
// and FAIL a user meets on a host that misses the step (with the fix in the line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { runDoctor, type CheckResult } from '../../src/doctor/index.js';
import { SysfsTree } from '../helpers/sysfs.js';

type T = { after: (fn: () => void) => void };

/** A server prepared the way the docs say: 2 NUMA nodes, 1024 free 2 MiB pages on each, one
 *  hugetlbfs, IOMMU in passthrough, vfio-pci loaded, an SR-IOV PF with VFs, isolated CPUs. */
function preparedHost(t: T): SysfsTree {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.dpdk({ pcVersion: '22.11.11', debVersion: '22.11.11-0+deb12u1', ealAbi: 23 });
  tree.numaNode(0, { cpus: '0-3', hugepages: { total: 1024, free: 1024 } });
  tree.numaNode(1, { cpus: '4-7', hugepages: { total: 1024, free: 1000 } });
  tree.file('sys/devices/system/node/has_memory', '0-1');
  tree.mounts('nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0');
  tree.file('proc/meminfo', 'MemTotal: 65536000 kB\nHugepagesize:       2048 kB\n');
  tree.maxMapCount(65530);
  tree.osRelease('6.1.0-18-amd64');
  tree.cmdline('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro intel_iommu=on iommu=pt isolcpus=2-3,6-7 nohz_full=2-3,6-7 rcu_nocbs=2-3,6-7');
  tree.cpus({ online: '0-7', isolated: '2-3,6-7', nohzFull: '2-3,6-7' });
  tree.pciDriver('vfio-pci');
  tree.pf({
    name: 'ens1f0',
    pci: '0000:3b:00.0',
    numaNode: 0,
    vfs: [
      { driver: 'vfio-pci', iommuGroup: 40 },
      { driver: 'vfio-pci', iommuGroup: 41 },
      { driver: 'iavf', netdev: 'ens1f0v2', mac: '52:54:00:00:00:02', iommuGroup: 42 },
      { driver: null, nativeDriver: 'iavf', iommuGroup: 43 },
    ],
  });
  return tree;
}

async function results(tree: SysfsTree, relays = 1): Promise<CheckResult[]> {
  return (await runDoctor({ root: tree.root, relays })).checks;
}

async function one(tree: SysfsTree, id: string, relays = 1): Promise<CheckResult> {
  const r = (await results(tree, relays)).find((c) => c.id === id);
  assert.ok(r, `no result ${id}`);
  return r;
}

function expect(r: CheckResult, status: CheckResult['status'], message: RegExp, fix?: RegExp): void {
  assert.equal(r.status, status, `${r.id}: ${r.message}`);
  assert.match(r.message, message);
  if (fix) assert.match(r.fix ?? '', fix);
  if (status !== 'PASS') assert.ok(r.fix, `${r.id} ${status} comes with a fix`);
}

test('a prepared host passes every check', async (t) => {
  const report = await runDoctor({ root: preparedHost(t).root });
  assert.deepEqual(
    report.checks.filter((c) => c.status !== 'PASS').map((c) => `${c.id}: ${c.message}`),
    [],
  );
  assert.deepEqual(report.checks.map((c) => c.id), ['dpdk', 'hugepages.node0', 'hugepages.node1', 'hugetlbfs', 'max_map_count', 'iommu', 'vfio-pci', 'sriov.ens1f0', 'cpus', 'numa']);
});

// --- dpdk ---------------------------------------------------------------------------------------

test('dpdk PASS: the version comes from libdpdk.pc', async (t) => {
  const r = await one(preparedHost(t), 'dpdk');
  expect(r, 'PASS', /^DPDK 22\.11\.11 \(\/usr\/lib\/x86_64-linux-gnu\/pkgconfig\/libdpdk\.pc, runtime \/usr\/lib\/x86_64-linux-gnu\/librte_eal\.so\.23\)/);
  assert.equal(r.details?.version, '22.11.11');
});

test('dpdk WARN: runtime package without development files, or a DPDK older than 22.11', async (t) => {
  const tree = preparedHost(t);
  rmSync(tree.abs('usr/lib/x86_64-linux-gnu/pkgconfig'), { recursive: true });
  expect(await one(tree, 'dpdk'), 'WARN', /DPDK runtime 22\.11\.11 \(Debian package dpdk\) but no libdpdk\.pc/, /apt-get install libdpdk-dev/);
  rmSync(tree.abs('var/lib/dpkg'), { recursive: true });
  expect(await one(tree, 'dpdk'), 'WARN', /DPDK runtime 22\.11 \(ABI 23\)/);
  tree.dpdk({ pcVersion: '21.11.6' });
  expect(await one(tree, 'dpdk'), 'WARN', /DPDK 21\.11\.6 .*older than 22\.11/);
});

test('dpdk FAIL: no DPDK at all', async (t) => {
  const tree = preparedHost(t);
  rmSync(tree.abs('usr'), { recursive: true });
  rmSync(tree.abs('var'), { recursive: true });
  expect(await one(tree, 'dpdk'), 'FAIL', /no DPDK found/, /apt-get install dpdk libdpdk-dev/);
});

// --- hugepages ----------------------------------------------------------------------------------

test('hugepages PASS: free pages on each node against the relays\' need', async (t) => {
  const r = await one(preparedHost(t), 'hugepages.node1', 4);
  // one mbuf pool (256 queue pairs, 148,224 mbufs, 337 MiB with its ring), EAL 8 MiB, 4 relays
  // of ~100 KiB and 8 MiB of heap slack: 177 pages (1 to 80 relays: the same)
  expect(r, 'PASS', /^node1: 1000 of 1024 2 MiB hugepages free \(2000 MiB\); 4 relays need 177 per node$/);
  assert.deepEqual(r.details, { node: 1, pageSizeKb: 2048, total: 1024, free: 1000, needed: 177 });
});

test('hugepages WARN: one node short while another has enough', async (t) => {
  const tree = preparedHost(t);
  tree.numaNode(1, { cpus: '4-7', hugepages: { total: 16, free: 10 } });
  const all = await results(tree);
  expect(all.find((c) => c.id === 'hugepages.node0')!, 'PASS', /node0/);
  expect(all.find((c) => c.id === 'hugepages.node1')!, 'WARN', /node1: 10 of 16 .*remote memory/, /echo 183 > \/sys\/devices\/system\/node\/node1\/hugepages\/hugepages-2048kB\/nr_hugepages/);
});

test('hugepages FAIL: no node has what 300 relays need (two pools of 256 queue pairs: 360 pages)', async (t) => {
  const tree = preparedHost(t);
  tree.numaNode(0, { cpus: '0-3', hugepages: { total: 200, free: 200 } });
  tree.numaNode(1, { cpus: '4-7', hugepages: { total: 200, free: 180 } });
  const all = await results(tree, 300);
  expect(all.find((c) => c.id === 'hugepages.node0')!, 'FAIL', /200 of 200 .*300 relays need 360 per node: no NUMA node has enough/, /echo 360 >/);
  expect(all.find((c) => c.id === 'hugepages.node1')!, 'FAIL', /no NUMA node has enough/);
});

test('hugepages FAIL: a kernel without 2 MiB pages; without NUMA nodes the global pool counts', async (t) => {
  const tree = preparedHost(t);
  rmSync(tree.abs('sys/devices/system/node'), { recursive: true });
  expect(await one(tree, 'hugepages'), 'PASS', /^host: 2024 of 2048 2 MiB hugepages free/);
  rmSync(tree.abs('sys/kernel/mm/hugepages'), { recursive: true });
  expect(await one(tree, 'hugepages'), 'FAIL', /no 2 MiB hugepages/);
});

// --- hugetlbfs ----------------------------------------------------------------------------------

test('hugetlbfs PASS: one mount of 2 MiB pages', async (t) => {
  expect(await one(preparedHost(t), 'hugetlbfs'), 'PASS', /^hugetlbfs at \/dev\/hugepages \(2 MiB\)$/);
});

test('hugetlbfs FAIL: two mounts at one path deadlock DPDK', async (t) => {
  const tree = preparedHost(t);
  tree.mounts('nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0', 'hugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0');
  expect(await one(tree, 'hugetlbfs'), 'FAIL', /2 hugetlbfs mounts at \/dev\/hugepages \(2 MiB, 2 MiB\): the lower mount is hidden, and DPDK deadlocks/, /umount \/dev\/hugepages/);
  tree.mounts('nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0', 'nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=1G 0 0');
  expect(await one(tree, 'hugetlbfs'), 'FAIL', /2 hugetlbfs mounts at \/dev\/hugepages \(2 MiB, 1 GiB\): DPDK deadlocks at start-up: EAL flock\(\)s/);
});

test('hugetlbfs FAIL: none mounted; WARN: only 1 GiB pages mounted', async (t) => {
  const tree = preparedHost(t);
  tree.mounts();
  expect(await one(tree, 'hugetlbfs'), 'FAIL', /no hugetlbfs mounted/, /mount -t hugetlbfs -o pagesize=2M nodev \/dev\/hugepages/);
  tree.mounts('nodev /mnt/huge\\0401G hugetlbfs rw,pagesize=1024M 0 0');
  expect(await one(tree, 'hugetlbfs'), 'WARN', /\/mnt\/huge 1G \(1 GiB\) but none for 2 MiB pages/);
});

// --- max_map_count ------------------------------------------------------------------------------

test('max_map_count PASS at twice the page count, WARN below that, FAIL below the page count', async (t) => {
  const tree = preparedHost(t); // 2048 pages in all
  expect(await one(tree, 'max_map_count'), 'PASS', /^vm\.max_map_count 65530 for 2048 hugepages \(needs >= 4096\)$/);
  tree.maxMapCount(3000);
  expect(await one(tree, 'max_map_count'), 'WARN', /below twice the page count \(4096\)/, /sysctl -w vm\.max_map_count=65530/);
  tree.numaNode(0, { cpus: '0-3', hugepages: { total: 40000, free: 40000 } });
  expect(await one(tree, 'max_map_count'), 'FAIL', /3000 for 41024 hugepages: below the page count/, /sysctl -w vm\.max_map_count=82048/);
});

// --- iommu --------------------------------------------------------------------------------------

test('iommu PASS: groups present and iommu=pt', async (t) => {
  expect(await one(preparedHost(t), 'iommu'), 'PASS', /IOMMU on, passthrough mode \(intel_iommu=on iommu=pt; 4 groups\)/);
});

test('iommu WARN: on but translating (no iommu=pt)', async (t) => {
  const tree = preparedHost(t);
  tree.cmdline('root=/dev/sda1 intel_iommu=on');
  expect(await one(tree, 'iommu'), 'WARN', /not in passthrough mode/, /add iommu=pt/);
});

test('iommu FAIL with VFs present, WARN on a host without VFs, when the IOMMU is off', async (t) => {
  const tree = preparedHost(t);
  tree.cmdline('root=/dev/sda1');
  rmSync(tree.abs('sys/kernel/iommu_groups'), { recursive: true });
  expect(await one(tree, 'iommu'), 'FAIL', /IOMMU off.*no IOMMU options.*cannot take this host's VFs/, /intel_iommu=on iommu=pt/);
  rmSync(tree.abs('sys/class/net/ens1f0'));
  expect(await one(tree, 'iommu'), 'WARN', /IOMMU off.*DPDK virtual devices only/);
});

// --- vfio-pci -----------------------------------------------------------------------------------

test('vfio-pci PASS when loaded, WARN when only installed', async (t) => {
  const tree = preparedHost(t);
  expect(await one(tree, 'vfio-pci'), 'PASS', /vfio-pci loaded \(2 devices bound\)/);
  rmSync(tree.abs('sys/bus/pci/drivers/vfio-pci'), { recursive: true });
  tree.vfioModuleFile('6.1.0-18-amd64');
  expect(await one(tree, 'vfio-pci'), 'WARN', /available \(\/lib\/modules\/6\.1\.0-18-amd64\/.*vfio-pci\.ko\.xz\) but not loaded/, /modprobe vfio-pci/);
});

test('vfio-pci FAIL when missing on a host with VFs, WARN without VFs', async (t) => {
  const tree = preparedHost(t);
  rmSync(tree.abs('sys/bus/pci/drivers/vfio-pci'), { recursive: true });
  expect(await one(tree, 'vfio-pci'), 'FAIL', /neither loaded nor installed for kernel 6\.1\.0-18-amd64: this host's VFs cannot/);
  rmSync(tree.abs('sys/class/net/ens1f0'));
  expect(await one(tree, 'vfio-pci'), 'WARN', /DPDK virtual devices still work/);
});

// --- sriov --------------------------------------------------------------------------------------

test('sriov PASS: each PF with its VF count and the driver of each VF', async (t) => {
  const r = await one(preparedHost(t), 'sriov.ens1f0');
  expect(r, 'PASS', /^ens1f0 \(0000:3b:00\.0, ice, NUMA 0\): 4 of 64 VFs; vfio-pci: VF 0-1; iavf: VF 2; unbound: VF 3$/);
  assert.deepEqual((r.details?.vfs as { driver: string | null }[]).map((v) => v.driver), ['vfio-pci', 'vfio-pci', 'iavf', null]);
});

test('sriov WARN: no SR-IOV PF, a PF without VFs, a PF whose link is down', async (t) => {
  const tree = preparedHost(t);
  tree.pf({ name: 'ens2f0', pci: '0000:af:00.0', numaNode: 1, totalVfs: 8 });
  tree.pf({ name: 'ens3f0', pci: '0000:d8:00.0', numaNode: 1, operState: 'down', vfs: [{ driver: 'iavf', iommuGroup: 60 }] });
  const all = await results(tree);
  expect(all.find((c) => c.id === 'sriov.ens2f0')!, 'WARN', /0 of 8 VFs created/, /echo 8 > \/sys\/class\/net\/ens2f0\/device\/sriov_numvfs/);
  expect(all.find((c) => c.id === 'sriov.ens3f0')!, 'WARN', /PF link is down, so its VFs pass no traffic/, /ip link set ens3f0 up/);

  const bare = SysfsTree.create();
  t.after(() => bare.cleanup());
  expect(await one(bare, 'sriov'), 'WARN', /no SR-IOV PF found/, /sriov_numvfs/);
});

test('sriov FAIL: sriov_numvfs promises more VFs than exist', async (t) => {
  const tree = preparedHost(t);
  tree.file('sys/devices/pci0000:00/0000:3b:00.0/sriov_numvfs', 8);
  expect(await one(tree, 'sriov.ens1f0'), 'FAIL', /sriov_numvfs says 8 but 4 VFs exist/, /dmesg/);
});

// --- cpus ---------------------------------------------------------------------------------------

test('cpus PASS: isolated CPUs with nohz_full, housekeeping CPUs left', async (t) => {
  expect(await one(preparedHost(t), 'cpus'), 'PASS', /^isolated CPUs 2-3,6-7 \(nohz_full 2-3,6-7\); housekeeping CPUs 0-1,4-5$/);
});

test('cpus WARN: nothing isolated, or isolated without nohz_full', async (t) => {
  const tree = preparedHost(t);
  tree.cmdline('root=/dev/sda1 intel_iommu=on iommu=pt isolcpus=domain,managed_irq,2-3');
  rmSync(tree.abs('sys/devices/system/cpu/isolated'));
  rmSync(tree.abs('sys/devices/system/cpu/nohz_full'));
  expect(await one(tree, 'cpus'), 'WARN', /isolated CPUs 2-3, but 2-3 still get the scheduler tick/, /nohz_full=2-3/);
  tree.cpus({ online: '0-7', isolated: '' });
  tree.cmdline('root=/dev/sda1');
  expect(await one(tree, 'cpus'), 'WARN', /no isolated CPUs \(online 0-7\)/, /isolcpus=/);
});

test('cpus FAIL: every CPU isolated, none left for housekeeping', async (t) => {
  const tree = preparedHost(t);
  tree.cpus({ online: '0-7', isolated: '0-7', nohzFull: '0-7' });
  expect(await one(tree, 'cpus'), 'FAIL', /every online CPU \(0-7\) is isolated/, /at least one CPU per NUMA node/);
});

// --- numa ---------------------------------------------------------------------------------------

test('numa PASS: the layout, nodes with their CPUs', async (t) => {
  const r = await one(preparedHost(t), 'numa');
  expect(r, 'PASS', /^2 NUMA nodes: node0 CPUs 0-3; node1 CPUs 4-7$/);
  assert.deepEqual(r.details?.nodes, [
    { node: 0, cpus: '0-3', isolated: '2-3' },
    { node: 1, cpus: '4-7', isolated: '6-7' },
  ]);
});

test('numa WARN: VFs on a node that has no isolated CPU while another node has some', async (t) => {
  const tree = preparedHost(t);
  tree.cpus({ online: '0-7', isolated: '6-7', nohzFull: '6-7' });
  expect(await one(tree, 'numa'), 'WARN', /VFs of ens1f0 sit on node0, which has no isolated CPU/, /isolate CPUs on node0/);
});
