// The agent's Prometheus registry. Every series is read at scrape time from the sources (relay
// list, engine counters, sysfs): one helper, `scraped`, turns a reader into a metric.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DirectionCounters, VfPortCounters, WorkerInfo } from '../engine/types.js';
import type { RelayPhase } from '../relay/types.js';
import type { MetricsSources } from './types.js';

const PHASES: RelayPhase[] = ['Pending', 'Configuring', 'Ready', 'Failed', 'Terminating'];

type Dir = 'vf_to_vm' | 'vm_to_vf';

/** One series of a scrape: its labels and value (undefined: no sample this time). */
type Sample<L extends string> = readonly [Record<L, string>, number | undefined];
type Samples<L extends string> = Iterable<Sample<L>>;

/**
 * Registers a metric whose samples `read` yields at each scrape: a counter's totals as the
 * engine counts them, or a gauge's values. A labelled metric is emptied first, so series of
 * relays (workers, ...) that are gone go with them.
 */
function scraped<L extends string>(
  registry: Registry,
  kind: 'counter' | 'gauge',
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => Samples<L> | Promise<Samples<L>>,
): void {
  const record = (m: Counter<L> | Gauge<L>, samples: Samples<L>): void => {
    if (labelNames.length > 0) m.reset();
    for (const [labels, v] of samples) {
      if (v === undefined) continue;
      if (m instanceof Counter) m.inc(labels, v);
      else m.set(labels, v);
    }
  };
  function collect(this: Counter<L> | Gauge<L>): void | Promise<void> {
    const s = read();
    return s instanceof Promise ? s.then((x) => record(this, x)) : record(this, s);
  }
  const config = { name, help, labelNames, registers: [registry], collect };
  if (kind === 'counter') new Counter<L>(config);
  else new Gauge<L>(config);
}

const scaleMicros = (us: number | undefined): number | undefined => (us === undefined ? undefined : us / 1e6);

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly migrations: Counter<'relay' | 'direction'>;
  private readonly coreSchedMoves: Counter<'relay' | 'direction'>;
  private readonly coreSchedVariation: Gauge<'numa_node'>;

  constructor(private readonly src: MetricsSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'vio4wd_process_' });
    this.relayMetrics(r);
    this.vfMetrics(r);
    this.workerMetrics(r);
    this.engineMetrics(r);
    this.nodeMetrics(r);
    this.coreSchedMoves = new Counter({
      name: 'vio4wd_core_sched_moves_total',
      help: 'Relay directions the core scheduler moved to another worker CPU (by load)',
      labelNames: ['relay', 'direction'] as const,
      registers: [r],
    });
    this.coreSchedVariation = new Gauge({
      name: 'vio4wd_core_sched_load_variation',
      help: "Coefficient of variation of the worker CPUs' loads at the core scheduler's last evaluation, per NUMA node (-1: all workers); it moves relays when that drops by more than its sensitivity",
      labelNames: ['numa_node'] as const,
      registers: [r],
    });
    this.migrations = new Counter({
      name: 'vio4wd_relay_migrations_total',
      help: 'Live migrations seen on a relay: out = the guest left with dirty logging on, in = a migrated guest arrived',
      labelNames: ['relay', 'direction'] as const,
      registers: [r],
    });
  }

  /** A relay direction the core scheduler moved to another worker CPU. */
  countCoreSchedMove(relay: string, direction: 'vfToVm' | 'vmToVf'): void {
    this.coreSchedMoves.inc({ relay, direction: direction === 'vfToVm' ? 'vf_to_vm' : 'vm_to_vf' });
  }

  /** The core scheduler's last measure of imbalance, per NUMA node (-1: all workers). */
  setCoreSchedVariation(groups: { numaNode: number; variation: number }[]): void {
    for (const g of groups) this.coreSchedVariation.set({ numa_node: String(g.numaNode) }, g.variation);
  }

  countMigration(relay: string, direction: 'in' | 'out'): void {
    this.migrations.inc({ relay, direction });
  }

  /** A removed relay's series go with it (the other metrics follow the relay list anyway). */
  forgetRelay(relay: string): void {
    for (const direction of ['in', 'out'] as const) this.migrations.remove({ relay, direction });
    for (const direction of ['vf_to_vm', 'vm_to_vf'] as const) this.coreSchedMoves.remove({ relay, direction });
  }

  /** Each relay the engine holds, with its counters. */
  private *relayStats() {
    for (const s of this.src.relays()) {
      const st = this.src.stats(s.id);
      if (st) yield { relay: s.name, id: String(s.id), st };
    }
  }

  /** The relays' packet counters, their phases and guests. */
  private relayMetrics(r: Registry): void {
    const src = this.src;
    const dirs = (st: { vfToVm: DirectionCounters; vmToVf: DirectionCounters }): [Dir, DirectionCounters][] => [
      ['vf_to_vm', st.vfToVm],
      ['vm_to_vf', st.vmToVf],
    ];
    const perDir = (name: string, help: string, pick: (c: DirectionCounters) => number) =>
      scraped(r, 'counter', name, help, ['relay', 'id', 'direction'], () =>
        [...this.relayStats()].flatMap(({ relay, id, st }) => dirs(st).map(([direction, c]) => [{ relay, id, direction }, pick(c)] as const)),
      );
    perDir('vio4wd_relay_rx_packets_total', 'Packets received from the source side of the direction (VF for vf_to_vm, VM for vm_to_vf)', (c) => c.rxPackets);
    perDir('vio4wd_relay_rx_bytes_total', 'Bytes received from the source side of the direction', (c) => c.rxBytes);
    perDir('vio4wd_relay_tx_packets_total', 'Packets sent to the far side of the direction', (c) => c.txPackets);
    perDir('vio4wd_relay_tx_bytes_total', 'Bytes sent to the far side of the direction', (c) => c.txBytes);
    scraped(
      r,
      'counter',
      'vio4wd_relay_queue_tx_packets_total',
      'Packets sent to the far side, per queue pair: vf_to_vm by VF rx queue, vm_to_vf by guest tx queue',
      ['relay', 'id', 'queue', 'direction'],
      () =>
        [...this.relayStats()].flatMap(({ relay, id, st }) =>
          st.queues
            // queue 0 always; others once they carried something (a relay may offer 32)
            .filter((q) => q.queue === 0 || q.vfToVm.txPackets !== 0 || q.vmToVf.txPackets !== 0)
            .flatMap((q) => dirs(q).map(([direction, c]) => [{ relay, id, queue: String(q.queue), direction }, c.txPackets] as const)),
        ),
    );
    scraped(
      r,
      'counter',
      'vio4wd_relay_dropped_packets_total',
      'Packets dropped: queue_full = the far queue was full, not_connected = the far side was not connected',
      ['relay', 'id', 'direction', 'reason'],
      () =>
        [...this.relayStats()].flatMap(({ relay, id, st }) =>
          dirs(st).flatMap(([direction, c]) => [
            [{ relay, id, direction, reason: 'queue_full' }, c.droppedQueueFullPackets] as const,
            [{ relay, id, direction, reason: 'not_connected' }, c.droppedNotConnectedPackets] as const,
          ]),
        ),
    );
    scraped(r, 'gauge', 'vio4wd_relay_phase', 'Relay phase (1 for the current phase)', ['relay', 'id', 'phase'], () =>
      src.relays().flatMap((s) => PHASES.map((phase) => [{ relay: s.name, id: String(s.id), phase }, s.phase === phase ? 1 : 0] as const)),
    );
    scraped(r, 'gauge', 'vio4wd_relay_guest_connected', '1 when a guest is connected to the relay socket', ['relay', 'id'], () =>
      src.relays().map((s) => {
        const c = s.conditions.find((x) => x.type === 'GuestConnected');
        return [{ relay: s.name, id: String(s.id) }, c?.status === 'True' ? 1 : 0] as const;
      }),
    );
    scraped(r, 'gauge', 'vio4wd_relays', 'Relays on this node by phase', ['phase'], () => {
      const all = src.relays();
      return PHASES.map((phase) => [{ phase }, all.filter((s) => s.phase === phase).length] as const);
    });
    if (src.relayPods) {
      const relayPods = src.relayPods.bind(src);
      // both gauges ask; the source answers both from one List (cached for a few seconds)
      scraped(
        r,
        'gauge',
        'vio4wd_relay_pod_info',
        "Always 1: the pod (and container) kubelet gave the relay's device to, from kubelet's pod-resources API (pod_* labels: Prometheus's own namespace and pod labels name the agent)",
        ['relay', 'id', 'pod_namespace', 'pod_name', 'pod_container'],
        async () => {
          const last = await relayPods();
          return src.relays().flatMap((s) => {
            const p = last.pods.get(`${s.resourceName}/${s.name}`);
            return p ? [[{ relay: s.name, id: String(s.id), pod_namespace: p.namespace, pod_name: p.pod, pod_container: p.container }, 1] as const] : [];
          });
        },
      );
      scraped(r, 'gauge', 'vio4wd_pod_resources_up', "1 when kubelet's pod-resources API answered the last List (vio4wd_relay_pod_info is empty otherwise)", [], async () => [
        [{}, (await relayPods()).ok ? 1 : 0],
      ]);
    }
  }

  /** The VF's own counters (its driver's), per relay: what the NIC did before the relay. */
  private vfMetrics(r: Registry): void {
    const vfs = () => [...this.relayStats()].flatMap(({ relay, id, st }) => (st.vf ? [{ l: { relay, id }, vf: st.vf }] : []));
    const perVf = (name: string, help: string, pick: (v: VfPortCounters) => number) => scraped(r, 'counter', name, help, ['relay', 'id'], () => vfs().map(({ l, vf }) => [l, pick(vf)] as const));
    perVf('vio4wd_vf_rx_packets_total', "Packets the relay's VF received (its driver's count)", (v) => v.rxPackets);
    perVf('vio4wd_vf_tx_packets_total', "Packets the relay's VF sent (its driver's count)", (v) => v.txPackets);
    perVf('vio4wd_vf_rx_bytes_total', "Bytes the relay's VF received", (v) => v.rxBytes);
    perVf('vio4wd_vf_tx_bytes_total', "Bytes the relay's VF sent", (v) => v.txBytes);
    scraped(
      r,
      'counter',
      'vio4wd_vf_dropped_packets_total',
      "Packets the relay's VF dropped, by its driver's count: direction rx, reason missed = its rx ring was full (the relay did not read in time), no_mbuf = no buffer to refill the ring, error = bad frames; direction tx, reason error = send errors",
      ['relay', 'id', 'direction', 'reason'],
      () =>
        vfs().flatMap(({ l, vf }) => [
          [{ ...l, direction: 'rx', reason: 'missed' }, vf.rxMissed] as const,
          [{ ...l, direction: 'rx', reason: 'no_mbuf' }, vf.rxNoMbuf] as const,
          [{ ...l, direction: 'rx', reason: 'error' }, vf.rxErrors] as const,
          [{ ...l, direction: 'tx', reason: 'error' }, vf.txErrors] as const,
        ]),
    );
  }

  /** The poll-mode workers' load. */
  private workerMetrics(r: Registry): void {
    const src = this.src;
    if (!src.workers) return;
    const workers = src.workers.bind(src);
    const hz = src.tscHz ? src.tscHz.bind(src) : () => 0;
    const perWorker = (name: string, help: string, pick: (w: WorkerInfo) => number | undefined, kind: 'counter' | 'gauge' = 'counter') =>
      scraped(r, kind, name, help, ['cpu'], () => workers().map((w) => [{ cpu: String(w.cpu) }, pick(w)] as const));
    const seconds = (cycles: number): number | undefined => {
      const h = hz();
      return h > 0 ? cycles / h : undefined;
    };
    perWorker('vio4wd_worker_busy_seconds_total', 'Time the poll-mode worker spent in polls that moved packets (TSC-measured, per poll pass)', (w) => seconds(w.busyCycles));
    perWorker('vio4wd_worker_idle_seconds_total', 'Time the poll-mode worker spent in polls that found no packet', (w) => seconds(w.idleCycles));
    perWorker('vio4wd_worker_busy_cycles_total', 'TSC cycles of polls that moved packets (packets per busy cycle = rate(packets) / rate(busy cycles))', (w) => w.busyCycles);
    perWorker('vio4wd_worker_packets_total', 'Packets the worker received from VFs and guests', (w) => w.packets);
    perWorker('vio4wd_worker_dropped_packets_total', "Packets the worker received and dropped (the far side's queue full, or not connected)", (w) => w.dropped);
    perWorker('vio4wd_worker_relay_directions', 'Relay directions (VF->VM, VM->VF) the worker polls', (w) => w.directions, 'gauge');
    perWorker('vio4wd_worker_hot_entries', 'Queue entries the worker polls on every pass (the rest are idle: swept within the idle sweep period, or parked)', (w) => w.hotEntries, 'gauge');
    perWorker('vio4wd_worker_wakeups_total', 'Idle queue entries that found packets and were polled on every pass again', (w) => w.wakeups);
  }

  /** The engine's health, memory and build. */
  private engineMetrics(r: Registry): void {
    const src = this.src;
    scraped(r, 'gauge', 'vio4wd_engine_up', '1 while the DPDK engine runs', [], () => [[{}, src.engineUp() ? 1 : 0]]);
    if (src.memory) {
      const mem = src.memory.bind(src);
      for (const [name, help, pick] of [
        ['vio4wd_engine_hugepage_bytes', 'Hugepage memory mapped by the engine', 'hugepageBytes'],
        ['vio4wd_engine_mbufs_in_use', 'Packet buffers in use across the engine mempools', 'mbufsInUse'],
        ['vio4wd_engine_mbufs_capacity', 'Packet buffers the engine mempools hold (in use or free)', 'mbufsTotal'],
      ] as const) {
        scraped(r, 'gauge', name, help, [], () => [[{}, mem()?.[pick]]]);
      }
    }
    if (src.settings) {
      const settings = src.settings.bind(src);
      scraped(r, 'gauge', 'vio4wd_engine_idle_sweep_seconds', 'The idle sweep period the engine runs with (engine.idleSweepMicros): the longest a waking idle queue waits for its first poll; 0 polls every queue on every pass', [], () => [[{}, scaleMicros(settings()?.idleSweepMicros)]]);
    }
    if (src.buildInfo) {
      const info = src.buildInfo.bind(src);
      scraped(r, 'gauge', 'vio4wd_build_info', 'Always 1; the labels say which vio4wd (version, git commit), DPDK and Node.js run', ['version', 'commit', 'dpdk_version', 'node_version'], () => {
        const b = info();
        return [[{ version: b.version, commit: b.commit, dpdk_version: b.dpdk, node_version: b.node }, 1]];
      });
    }
  }

  /** The node's hugepages. */
  private nodeMetrics(r: Registry): void {
    const src = this.src;
    if (!src.hugepages) return;
    const hp = src.hugepages.bind(src);
    const size = (kib: number): string => (kib % 1048576 === 0 ? `${kib / 1048576}Gi` : kib % 1024 === 0 ? `${kib / 1024}Mi` : `${kib}Ki`);
    for (const [name, help, pick] of [
      ['vio4wd_node_hugepages_capacity_bytes', 'Hugepage memory the node has (nr_hugepages x page size), per NUMA node and page size', 'total'],
      ['vio4wd_node_hugepages_free_bytes', 'Hugepage memory nobody holds yet (free_hugepages x page size): what VMs and the engine can still get', 'free'],
    ] as const) {
      scraped(r, 'gauge', name, help, ['numa', 'page_size'], async () =>
        (await hp()).map((h) => [{ numa: String(h.numaNode), page_size: size(h.pageSizeKiB) }, h[pick] * h.pageSizeKiB * 1024] as const),
      );
    }
  }
}
