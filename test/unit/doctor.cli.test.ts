// `vio4wd doctor` as a user runs it: one line per check, a summary, --json for machines, exit
// status 1 on any FAIL. Runs the CLI from source (tsx) against built host trees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import type { DoctorReport } from '../../src/doctor/index.js';
import { SysfsTree } from '../helpers/sysfs.js';

const ENTRY = "import { main } from './src/cli/main.ts'; process.exitCode = await main(['node', 'vio4wd', ...process.argv.slice(1)]);";

function vio4wd(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A small host that passes everything but the SR-IOV/CPU checks, which only WARN. */
function devHost(t: { after: (fn: () => void) => void }): SysfsTree {
  const tree = SysfsTree.create();
  t.after(() => tree.cleanup());
  tree.dpdk({ pcVersion: '22.11.11', ealAbi: 23 });
  tree.numaNode(0, { cpus: '0-1', hugepages: { total: 512, free: 512 } });
  tree.mounts('nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0');
  tree.maxMapCount(65530);
  tree.cmdline('root=/dev/vda1 intel_iommu=on iommu=pt');
  tree.iommuGroups(0, 1);
  tree.pciDriver('vfio-pci');
  tree.cpus({ online: '0-1' });
  return tree;
}

test('human output: one PASS/WARN/FAIL line per check with its fix, then a summary; exit 0 without FAIL', (t) => {
  const tree = devHost(t);
  const r = vio4wd('doctor', '--root', tree.root);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^PASS {2}dpdk +DPDK 22\.11\.11/);
  assert.match(r.stdout, /^WARN {2}sriov +no SR-IOV PF found.* -- fix: /m);
  assert.match(r.stdout, /^WARN {2}cpus +no isolated CPUs/m);
  assert.equal(lines.at(-1), `7 passed, 2 warnings, 0 failed (root ${tree.root})`);
  assert.equal(lines.length, 10);
});

test('--json: the report as JSON, exit 1 when a check FAILs', (t) => {
  const tree = devHost(t);
  rmSync(tree.abs('proc/mounts'));
  // 1024 relays: four pools of 256 queue pairs and 1024 relays' structures, 734 pages, more than
  // the 512 the host has
  const r = vio4wd('doctor', '--root', tree.root, '--json', '--relays', '1024');
  assert.equal(r.status, 1, r.stderr);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assert.equal(report.relays, 1024);
  assert.equal(report.hugepagesNeededPerNode, 734);
  assert.deepEqual(report.checks.filter((c) => c.status === 'FAIL').map((c) => c.id), ['hugepages.node0', 'hugetlbfs']);
  assert.deepEqual(report.summary, { pass: 5, warn: 2, fail: 2 });
});

test('--relays must be a count', (t) => {
  const tree = devHost(t);
  const r = vio4wd('doctor', '--root', tree.root, '--relays', 'lots');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--relays <n>' argument 'lots' is invalid\. give a whole number from 0 to 1024/);
});

test('--config sizes hugepages for the relays in the agent config; --relays wins over it', (t) => {
  const tree = devHost(t);
  const config = tree.abs('agent.yaml');
  const relay = (id: number) => `  - id: ${id}\n    vf: { devargs: "net_tap_vf${id},iface=vf${id}" }\n`;
  writeFileSync(config, `engine:\n  workerCpus: [1]\nrelays:\n${Array.from({ length: 300 }, (_, i) => relay(i + 1)).join('')}`);
  let report = JSON.parse(vio4wd('doctor', '--root', tree.root, '--json', '--config', config).stdout) as DoctorReport;
  assert.equal(report.relays, 300);
  assert.equal(report.relaysFrom, config);
  // 300 queue pairs outgrow the default pool (256): a second pool, 360 pages
  assert.equal(report.hugepagesNeededPerNode, 360);
  report = JSON.parse(vio4wd('doctor', '--root', tree.root, '--json', '--config', config, '--relays', '2').stdout) as DoctorReport;
  assert.equal(report.relays, 2);
  assert.equal(report.hugepagesNeededPerNode, 177);

  // the config's pool step and rings count: one pool of 64 queue pairs of 64 + 64 descriptors
  // each (a fifth of the default's mbufs per pair), five of them for 300 relays
  writeFileSync(config, `engine:\n  workerCpus: [1]\n  poolQueuePairs: 64\n  rxDescriptors: 64\n  txDescriptors: 64\nrelays:\n${Array.from({ length: 300 }, (_, i) => relay(i + 1)).join('')}`);
  report = JSON.parse(vio4wd('doctor', '--root', tree.root, '--json', '--config', config).stdout) as DoctorReport;
  assert.equal(report.hugepagesNeededPerNode, 98);

  writeFileSync(config, 'relays:\n  - id: 1\n');
  const bad = vio4wd('doctor', '--root', tree.root, '--config', config);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /relays\[0\]/, 'the config error names the field');
});
