// The core scheduler's policy, as pure functions: how loaded each relay direction and each worker
// is, and which directions to move so that the workers' loads even out. virtio-forwarder's
// vio4wd_core_scheduler decides the same way (a direction is a unit; the coefficient of
// variation of the workers' loads must drop by more than the sensitivity), but estimates load
// from packet and byte rates alone; here the rates only split each worker's measured busy time
// among its directions, and the fewest directions move.

export type Direction = 'vfToVm' | 'vmToVf';
export const DIRECTIONS: readonly Direction[] = ['vfToVm', 'vmToVf'];

/** One polled relay direction over the last interval. */
export interface DirectionLoad {
  relayId: number;
  relay: string;
  direction: Direction;
  /** Worker CPU that polls it now. */
  cpu: number;
  /** The relay's NUMA node (its workers should be local to it). */
  numaNode: number;
  /** Packets and bytes per second through it: (received + sent) / 2, as virtio-forwarder. */
  pps: number;
  bps: number;
  /** False: pinned, the scheduler leaves it where it is (it still counts toward its worker). */
  movable: boolean;
}

export interface WorkerLoad {
  cpu: number;
  numaNode: number;
  /** Share of the interval its poll passes moved packets, 0..1 (measured, TSC cycles). */
  busy: number;
}

/**
 * Cost of a direction from its rates, in relative units: virtio-forwarder's linear model
 * (about 0.08 per Mpps plus 0.00009 per MB/s). Used only to split a worker's measured busy time
 * among its directions, so its scale does not matter.
 */
export function rateCost(pps: number, bps: number): number {
  return 8e-2 * pps * 1e-6 + 9e-5 * bps * 1e-6;
}

/**
 * Load of every direction, in cores (0..1 each): the measured busy share of its worker, split in
 * proportion to the directions' rate costs. A worker that moved nothing has load 0.
 */
export function directionLoads(dirs: readonly DirectionLoad[], workers: readonly WorkerLoad[]): number[] {
  const cost = dirs.map((d) => rateCost(d.pps, d.bps));
  const sum = new Map<number, number>();
  dirs.forEach((d, i) => sum.set(d.cpu, (sum.get(d.cpu) ?? 0) + cost[i]!));
  const busy = new Map(workers.map((w) => [w.cpu, Math.min(1, Math.max(0, w.busy))]));
  return dirs.map((d, i) => {
    const total = sum.get(d.cpu) ?? 0;
    return total > 0 ? ((busy.get(d.cpu) ?? 0) * cost[i]!) / total : 0;
  });
}

/** Coefficient of variation (stddev / mean) of the loads; 0 when nothing is loaded. */
export function variation(loads: readonly number[]): number {
  if (!loads.length) return 0;
  const mu = loads.reduce((a, b) => a + b, 0) / loads.length;
  if (mu <= 0) return 0;
  const v = loads.reduce((a, b) => a + (b - mu) ** 2, 0) / loads.length;
  return Math.sqrt(v) / mu;
}

export interface PlanOptions {
  /** Move only when the variation drops by more than this (virtio-forwarder's sensitivity,
   *  default 0.25; 0 = any improvement). */
  sensitivity: number;
  /** Balance over all workers instead of within each NUMA node. */
  globalNuma: boolean;
  /** Leave the workers alone while the busiest is below this share of a core: moving idle
   *  relays buys nothing. */
  minLoad: number;
}

export interface Move {
  relayId: number;
  relay: string;
  direction: Direction;
  from: number;
  to: number;
  /** Its load, in cores. */
  load: number;
}

export interface GroupPlan {
  /** NUMA node of the group; -1 when balanced globally. */
  numaNode: number;
  cpus: number[];
  /** Worker loads (cores) now and after the moves, by cpus[] order. */
  before: number[];
  after: number[];
  cvBefore: number;
  cvAfter: number;
  /** Empty when the group stays as it is. */
  moves: Move[];
  /** Why it stays: 'balanced', 'idle' (below minLoad), 'not-enough' (the best plan does not
   *  beat the sensitivity), 'single-worker'. */
  kept?: 'balanced' | 'idle' | 'not-enough' | 'single-worker';
}

/**
 * Plans the moves for one interval. Within each group (a NUMA node's workers, or all), moves
 * one direction at a time from the busiest worker to the least busy, always the one that makes
 * the pair's larger load smallest, while that helps; the plan is kept only when the variation
 * of the group's worker loads drops by more than the sensitivity.
 */
export function plan(dirs: readonly DirectionLoad[], workers: readonly WorkerLoad[], o: PlanOptions): GroupPlan[] {
  const loads = directionLoads(dirs, workers);
  const groups = new Map<number, WorkerLoad[]>();
  for (const w of workers) {
    const k = o.globalNuma ? -1 : w.numaNode;
    groups.set(k, [...(groups.get(k) ?? []), w]);
  }
  const out: GroupPlan[] = [];
  for (const [numaNode, ws] of [...groups].sort((a, b) => a[0] - b[0])) {
    const cpus = ws.map((w) => w.cpu);
    const idx = new Map(cpus.map((c, i) => [c, i]));
    // the directions its workers poll; a relay whose NUMA node has no worker in this group
    // may not move here (its worker was chosen across nodes: leave it)
    const mine = dirs.map((d, i) => ({ d, i })).filter(({ d }) => idx.has(d.cpu));
    const before = cpus.map(() => 0);
    for (const { d, i } of mine) before[idx.get(d.cpu)!]! += loads[i]!;
    const cur = [...before];
    const at = new Map(mine.map(({ i, d }) => [i, d.cpu]));
    const base: Omit<GroupPlan, 'moves' | 'after' | 'cvAfter'> = { numaNode, cpus, before, cvBefore: variation(before) };
    if (cpus.length < 2) {
      out.push({ ...base, after: before, cvAfter: base.cvBefore, moves: [], kept: 'single-worker' });
      continue;
    }
    if (Math.max(...before) < o.minLoad) {
      out.push({ ...base, after: before, cvAfter: base.cvBefore, moves: [], kept: 'idle' });
      continue;
    }
    const localOk = (d: DirectionLoad, cpu: number): boolean => o.globalNuma || ws.find((w) => w.cpu === cpu)!.numaNode === d.numaNode || !ws.some((w) => w.numaNode === d.numaNode);
    // each direction moves at most once per interval, so the loop ends
    const moved = new Set<number>();
    for (;;) {
      let hi = 0;
      let lo = 0;
      cur.forEach((l, k) => {
        if (l > cur[hi]!) hi = k;
        if (l < cur[lo]!) lo = k;
      });
      const gap = cur[hi]! - cur[lo]!;
      let best: { i: number; worst: number } | undefined;
      for (const { d, i } of mine) {
        if (!d.movable || moved.has(i) || at.get(i) !== cpus[hi] || loads[i]! <= 0 || loads[i]! >= gap) continue;
        if (!localOk(d, cpus[lo]!)) continue;
        const worst = Math.max(cur[hi]! - loads[i]!, cur[lo]! + loads[i]!);
        if (!best || worst < best.worst) best = { i, worst };
      }
      if (!best) break;
      moved.add(best.i);
      at.set(best.i, cpus[lo]!);
      cur[hi]! -= loads[best.i]!;
      cur[lo]! += loads[best.i]!;
    }
    const cvAfter = variation(cur);
    const moves: Move[] = mine
      .filter(({ i, d }) => at.get(i) !== d.cpu)
      .map(({ d, i }) => ({ relayId: d.relayId, relay: d.relay, direction: d.direction, from: d.cpu, to: at.get(i)!, load: loads[i]! }));
    if (!moves.length) out.push({ ...base, after: before, cvAfter: base.cvBefore, moves: [], kept: 'balanced' });
    else if (cvAfter + o.sensitivity >= base.cvBefore) out.push({ ...base, after: before, cvAfter, moves: [], kept: 'not-enough' });
    else out.push({ ...base, after: cur, cvAfter, moves });
  }
  return out;
}
