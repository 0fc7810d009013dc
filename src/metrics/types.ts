// What the agent's metrics read at scrape time: the sources the agent wires in.
import type { RelayStats, WorkerInfo } from '../engine/types.js';
import type { RelayStatus } from '../relay/types.js';

export interface MetricsSources {
  relays(): RelayStatus[];
  /** Engine counters of a relay by id, undefined when the engine does not hold it. */
  stats(id: number): RelayStats | undefined;
  /** Engine health: true while the engine runs. */
  engineUp(): boolean;
  /** Hugepage bytes mapped and mbufs in use, when known. */
  memory?(): { hugepageBytes: number; mbufsInUse: number; mbufsTotal: number } | undefined;
  /** The engine's idle sweep period (what it runs with), when it runs. */
  settings?(): { idleSweepMicros: number } | undefined;
  /** Ready for /readyz: started and the configured relays reconciled once. */
  ready(): boolean;
  /** The poll-mode workers' load counters, and the TSC rate their cycle counts are in. */
  workers?(): WorkerInfo[];
  tscHz?(): number;
  /** What runs: vio4wd's version and git commit, DPDK's and Node's versions. */
  buildInfo?(): BuildInfo;
  /** Hugepages of the node per NUMA node and page size (sysfs), read at scrape time. */
  hugepages?(): Promise<{ numaNode: number; pageSizeKiB: number; total: number; free: number }[]>;
  /** The pod using each relay (kubelet's pod-resources), by `${resourceName}/${relayName}`;
   *  ok false when kubelet could not be asked. */
  relayPods?(): Promise<{ ok: boolean; pods: Map<string, { namespace: string; pod: string; container: string }> }>;
}

export interface BuildInfo {
  version: string;
  commit: string;
  dpdk: string;
  node: string;
}
