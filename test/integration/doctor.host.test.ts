// `vio4wd doctor --json` on this very machine, through the installed command (bin/vio4wd.js ->
// dist/): it must report the DPDK version pkg-config reports and the hugepage numbers in /sys.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { DoctorReport } from '../../src/doctor/index.js';

before(() => {
  // bin/vio4wd.js runs the compiled CLI: compile the current sources first. tsc writes dist/
  // even when some file has a type error; only errors on the doctor's own path stop this test.
  const r = spawnSync('npm', ['run', 'build'], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  const ours = out.split('\n').filter((l) => /^src\/(doctor|sriov|cli|util)\//.test(l));
  assert.deepEqual(ours, [], `npm run build failed on the doctor's sources:\n${out}`);
  if (r.status !== 0) console.error(`note: npm run build reported errors elsewhere; dist/ was still written:\n${out}`);
  assert.ok(existsSync('dist/cli/commands/doctor.js'), `npm run build wrote no dist/cli/commands/doctor.js:\n${out}`);
});

const nodes = () => readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n));
const hp = (node: string, f: string) => Number(readFileSync(`/sys/devices/system/node/${node}/hugepages/hugepages-2048kB/${f}`, 'utf8'));
const sample = () => Object.fromEntries(nodes().map((n) => [n, { total: hp(n, 'nr_hugepages'), free: hp(n, 'free_hugepages') }]));

function doctor(): { status: number | null; report: DoctorReport } {
  const r = spawnSync('bin/vio4wd.js', ['doctor', '--json'], { encoding: 'utf8' });
  assert.equal(r.stderr, '');
  return { status: r.status, report: JSON.parse(r.stdout) as DoctorReport };
}

test('doctor reports the real DPDK version and exits 1 exactly when something FAILs', () => {
  const { status, report } = doctor();
  const pkgConfig = execFileSync('pkg-config', ['--modversion', 'libdpdk'], { encoding: 'utf8' }).trim();
  const dpdk = report.checks.find((c) => c.id === 'dpdk')!;
  assert.equal(dpdk.details?.version, pkgConfig);
  assert.match(dpdk.message, new RegExp(`^DPDK ${pkgConfig.replace(/\./g, '\\.')} `));
  assert.equal(status, report.summary.fail > 0 ? 1 : 0);
  assert.equal(report.summary.pass + report.summary.warn + report.summary.fail, report.checks.length);
});

test('doctor reports each NUMA node\'s 2 MiB hugepages as /sys has them', () => {
  // other tests on this machine may take or give back pages meanwhile: compare a run that had
  // the same numbers in /sys before and after it
  for (let attempt = 0; ; attempt++) {
    const pre = sample();
    const { report } = doctor();
    const post = sample();
    if (JSON.stringify(pre) !== JSON.stringify(post) && attempt < 5) continue;
    assert.deepEqual(pre, post, 'hugepage numbers kept changing during 5 runs');
    for (const [node, { total, free }] of Object.entries(pre)) {
      const r = report.checks.find((c) => c.id === `hugepages.${node}`);
      assert.ok(r, `no hugepages result for ${node}`);
      assert.equal(r.details?.total, total, `${node} total`);
      assert.equal(r.details?.free, free, `${node} free`);
      assert.equal(r.status, free >= report.hugepagesNeededPerNode ? 'PASS' : r.status === 'WARN' ? 'WARN' : 'FAIL');
      assert.match(r.message, new RegExp(`^${node}: ${free} of ${total} 2 MiB hugepages free`));
    }
    break;
  }
});

test('doctor does not claim an IOMMU or SR-IOV the machine lacks', () => {
  const { report } = doctor();
  const groups = readdirSync('/sys/kernel/iommu_groups').length;
  const iommu = report.checks.find((c) => c.id === 'iommu')!;
  assert.equal(iommu.details?.groups, groups);
  if (groups === 0) assert.notEqual(iommu.status, 'PASS');
  const pfs = readdirSync('/sys/class/net').filter((n) => {
    try {
      readFileSync(`/sys/class/net/${n}/device/sriov_totalvfs`);
      return true;
    } catch {
      return false;
    }
  });
  const sriov = report.checks.filter((c) => c.id === 'sriov' || c.id.startsWith('sriov.'));
  if (pfs.length === 0) assert.deepEqual(sriov.map((c) => [c.id, c.status]), [['sriov', 'WARN']]);
  else assert.deepEqual(sriov.map((c) => c.id).sort(), pfs.map((p) => `sriov.${p}`).sort());
});
