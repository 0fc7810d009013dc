// The core scheduler's loop: every interval it reads the relays' counters and the workers'
// busy/idle cycles, plans (plan.ts) and moves relay directions between worker CPUs through the
// engine's hand-over (the old worker lets go of a queue before the new one polls it: no packet
// is lost, the rings hold what arrives meanwhile).
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { RelayStats, WorkerInfo } from '../engine/types.js';
import { DIRECTIONS, plan, type DirectionLoad, type GroupPlan, type Move, type PlanOptions, type WorkerLoad } from './plan.js';

/** virtio-forwarder's defaults (vio4wd_core_scheduler): 5 s, sensitivity 0.25, NUMA-local. */
export const CORE_SCHED_DEFAULTS = { intervalSeconds: 5, sensitivity: 0.25, globalNuma: false, minLoad: 0.05 } as const;

export interface SchedRelay {
  id: number;
  name: string;
  numaNode: number;
  cpus: { vfToVm: number; vmToVf: number };
  /** Pinned: counted on its workers, never moved. */
  pinned: boolean;
}

export interface CoreSchedulerOptions extends PlanOptions {
  intervalMs: number;
  /** Relays the engine polls now. */
  relays(): SchedRelay[];
  stats(id: number): RelayStats | undefined;
  workers(): WorkerInfo[];
  /** Moves a relay's directions (RelayManager.moveCpus). */
  move(name: string, cpus: { vfToVm: number; vmToVf: number }): Promise<void>;
  logger: Logger;
  /** After every move that was made (metrics, events). */
  onMove?(m: Move): void;
  /** After every evaluation. */
  onPlan?(p: GroupPlan[]): void;
}

interface Sample {
  at: number;
  workers: Map<number, { busy: number; idle: number }>;
  relays: Map<number, { [d in 'vfToVm' | 'vmToVf']: { pkts: number; bytes: number } }>;
}

export class CoreScheduler {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private last: Sample | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  /** Moves made since start. */
  moves = 0;
  /** The last evaluation. */
  lastPlan: GroupPlan[] = [];

  constructor(private readonly o: CoreSchedulerOptions) {
    this.log = o.logger.child({ component: 'core-scheduler' });
  }

  start(): void {
    this.log.info({ intervalMs: this.o.intervalMs, sensitivity: this.o.sensitivity, globalNuma: this.o.globalNuma, minLoad: this.o.minLoad }, 'core scheduler started: relays move between worker CPUs by measured load');
    this.last = this.sample();
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.arm();
      });
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private sample(): Sample {
    const workers = new Map(this.o.workers().map((w) => [w.cpu, { busy: w.busyCycles, idle: w.idleCycles }]));
    const relays: Sample['relays'] = new Map();
    for (const r of this.o.relays()) {
      const s = this.o.stats(r.id);
      if (!s) continue;
      const d = (c: RelayStats['vfToVm']) => ({ pkts: (c.rxPackets + c.txPackets) / 2, bytes: (c.rxBytes + c.txBytes) / 2 });
      relays.set(r.id, { vfToVm: d(s.vfToVm), vmToVf: d(s.vmToVf) });
    }
    return { at: performance.now(), workers, relays };
  }

  /** One evaluation: measure since the last one, plan, move. Resolves after the moves. */
  async tick(): Promise<GroupPlan[]> {
    try {
      return await this.evaluate();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'core scheduler: evaluation failed');
      return [];
    }
  }

  private async evaluate(): Promise<GroupPlan[]> {
    const prev = this.last;
    const now = this.sample();
    this.last = now;
    if (!prev) return [];
    const dt = (now.at - prev.at) / 1000;
    if (dt <= 0) return [];
    const workers: WorkerLoad[] = this.o.workers().map((w) => {
      const a = prev.workers.get(w.cpu);
      const b = now.workers.get(w.cpu)!;
      const busy = a ? b.busy - a.busy : 0;
      const idle = a ? b.idle - a.idle : 0;
      return { cpu: w.cpu, numaNode: w.numaNode, busy: busy + idle > 0 ? busy / (busy + idle) : 0 };
    });
    const byId = new Map<number, SchedRelay>();
    const dirs: DirectionLoad[] = [];
    for (const r of this.o.relays()) {
      const a = prev.relays.get(r.id);
      const b = now.relays.get(r.id);
      if (!a || !b) continue; // new since the last sample: measured next time
      byId.set(r.id, r);
      for (const d of DIRECTIONS) {
        // counters start again when a relay is attached anew
        const pkts = Math.max(0, b[d].pkts - a[d].pkts);
        const bytes = Math.max(0, b[d].bytes - a[d].bytes);
        dirs.push({ relayId: r.id, relay: r.name, direction: d, cpu: r.cpus[d], numaNode: r.numaNode, pps: pkts / dt, bps: bytes / dt, movable: !r.pinned });
      }
    }
    const groups = plan(dirs, workers, this.o);
    this.lastPlan = groups;
    for (const g of groups) {
      const fields = { numaNode: g.numaNode, cpus: g.cpus, load: g.before.map(round), variation: round(g.cvBefore) };
      if (!g.moves.length) {
        this.log.debug({ ...fields, kept: g.kept, planned: round(g.cvAfter) }, 'core scheduler: worker CPUs still sufficiently balanced');
        continue;
      }
      this.log.info({ ...fields, after: g.after.map(round), variationAfter: round(g.cvAfter), moves: g.moves.length }, 'core scheduler: moving relays between worker CPUs');
    }
    const moves = groups.flatMap((g) => g.moves);
    // one engine call per relay (both directions at once)
    const perRelay = new Map<number, Move[]>();
    for (const m of moves) perRelay.set(m.relayId, [...(perRelay.get(m.relayId) ?? []), m]);
    for (const [id, ms] of perRelay) {
      const r = byId.get(id)!;
      const cpus = { ...r.cpus };
      for (const m of ms) cpus[m.direction] = m.to;
      try {
        await this.o.move(r.name, cpus);
      } catch (err) {
        this.log.warn({ relay: r.name, id, cpus, err: errorMessage(err) }, 'core scheduler: relay not moved');
        continue;
      }
      for (const m of ms) {
        this.moves++;
        this.log.info({ relay: m.relay, id, direction: m.direction, fromCpu: m.from, toCpu: m.to, load: round(m.load) }, 'relay moved to another worker CPU by the core scheduler');
        this.o.onMove?.(m);
      }
    }
    this.o.onPlan?.(groups);
    // the next interval measures the new layout
    if (moves.length) this.last = this.sample();
    return groups;
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
