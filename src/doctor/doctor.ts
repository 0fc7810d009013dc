// `vio4wd doctor`: checks a host against the pitfalls virtio-forwarder users hit, and formats
// the report for people (one line per result) or machines (JSON).
import { discoverPfs } from '../sriov/index.js';
import { ValidationError } from '../util/errors.js';
import { Host } from './host.js';
import { hugepagesForRelays } from './sizing.js';
import type { Check, CheckResult, DoctorOptions, DoctorReport } from './types.js';
import { checkDpdk } from './checks/dpdk.js';
import { checkHugepages } from './checks/hugepages.js';
import { checkHugetlbfs } from './checks/hugetlbfs.js';
import { checkMaxMapCount } from './checks/maxmap.js';
import { checkIommu } from './checks/iommu.js';
import { checkVfio } from './checks/vfio.js';
import { checkSriov } from './checks/sriov.js';
import { checkCpus } from './checks/cpus.js';
import { checkNuma } from './checks/numa.js';
import { MAX_RELAYS } from '../util/limits.js';

/** In report order. */
export const CHECKS: readonly { name: string; check: Check }[] = [
  { name: 'dpdk', check: checkDpdk },
  { name: 'hugepages', check: checkHugepages },
  { name: 'hugetlbfs', check: checkHugetlbfs },
  { name: 'max_map_count', check: checkMaxMapCount },
  { name: 'iommu', check: checkIommu },
  { name: 'vfio-pci', check: checkVfio },
  { name: 'sriov', check: checkSriov },
  { name: 'cpus', check: checkCpus },
  { name: 'numa', check: checkNuma },
];

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const root = opts.root ?? '/';
  const relays = opts.relays ?? 1;
  if (!Number.isInteger(relays) || relays < 0 || relays > MAX_RELAYS) {
    throw new ValidationError('--relays', `${relays} is not a relay count; give a whole number from 0 to ${MAX_RELAYS}`);
  }
  const needed = (opts.hugepagesForRelays ?? hugepagesForRelays)(relays);
  const pfs = await discoverPfs({ root });
  const ctx = { host: new Host(root), relays, hugepagesNeeded: needed, pfs, hasVfs: pfs.some((pf) => pf.vfs.length > 0) };
  const checks: CheckResult[] = [];
  for (const { name, check } of CHECKS) {
    try {
      checks.push(...check(ctx));
    } catch (err) {
      // a check that breaks on an odd host must not hide the others
      checks.push({ id: name, status: 'WARN', message: `check failed to run: ${err instanceof Error ? err.message : String(err)}`, fix: 'report this as a vio4wd bug' });
    }
  }
  const count = (s: string) => checks.filter((c) => c.status === s).length;
  return {
    root,
    relays,
    relaysFrom: opts.relaysFrom ?? (opts.relays === undefined ? 'default' : 'option'),
    hugepagesNeededPerNode: needed,
    checks,
    summary: { pass: count('PASS'), warn: count('WARN'), fail: count('FAIL') },
  };
}

export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const lines = report.checks.map((c) => `${c.status}  ${c.id.padEnd(width)}  ${c.message}${c.fix ? ` -- fix: ${c.fix}` : ''}`);
  const { pass, warn, fail } = report.summary;
  lines.push(`${pass} passed, ${warn} warnings, ${fail} failed${report.root !== '/' ? ` (root ${report.root})` : ''}`);
  return lines.join('\n') + '\n';
}

export function exitStatus(report: DoctorReport): number {
  return report.summary.fail > 0 ? 1 : 0;
}
