// The doctor's report: one result per check (some checks give one per NUMA node or per PF).
import type { PhysicalFunction } from '../sriov/index.js';
import type { Host } from './host.js';

export type Status = 'PASS' | 'WARN' | 'FAIL';

export interface CheckResult {
  /** Stable id: "dpdk", "hugepages.node0", "sriov.ens1f0", ... */
  id: string;
  status: Status;
  /** What was found, in one sentence. */
  message: string;
  /** What to do about a WARN or FAIL. */
  fix?: string;
  /** Numbers and names behind the message, for --json readers. */
  details?: Record<string, unknown>;
}

export interface DoctorOptions {
  /** Directory holding proc/, sys/, usr/ ... (default "/"). */
  root?: string;
  /** Relays the host must have hugepages for (default 1). */
  relays?: number;
  /** Where that number came from ("--relays", a config file, "default"), echoed in the report. */
  relaysFrom?: string;
  /** 2 MiB hugepages one NUMA node needs for n relays (default: hugepagesForRelays). */
  hugepagesForRelays?: (relays: number) => number;
}

export interface DoctorContext {
  host: Host;
  relays: number;
  hugepagesNeeded: number;
  pfs: PhysicalFunction[];
  /** True when some PF has VFs: missing IOMMU/vfio-pci then stops relays, not just a plan. */
  hasVfs: boolean;
}

export type Check = (ctx: DoctorContext) => CheckResult[];

export interface DoctorReport {
  root: string;
  relays: number;
  relaysFrom: string;
  hugepagesNeededPerNode: number;
  checks: CheckResult[];
  summary: { pass: number; warn: number; fail: number };
}
