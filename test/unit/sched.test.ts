// The core scheduler's policy (pure) and its loop over an in-memory counter source; the real
// engine's moves are tested in test/integration/coresched.dpdk.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreScheduler, directionLoads, plan, variation, type DirectionLoad, type SchedRelay, type WorkerLoad } from '../../src/sched/index.js';
import type { DirectionCounters, RelayStats, WorkerInfo } from '../../src/engine/types.js';
import { silentLogger } from '../../src/util/log.js';

const opts = { sensitivity: 0.25, globalNuma: false, minLoad: 0.05 };
const dir = (relayId: number, direction: 'vfToVm' | 'vmToVf', cpu: number, mpps: number, extra: Partial<DirectionLoad> = {}): DirectionLoad => ({
  relayId, relay: `relay-${relayId}`, direction, cpu, numaNode: 0, pps: mpps * 1e6, bps: mpps * 1e6 * 64, movable: true, ...extra,
});
const w = (cpu: number, busy: number, numaNode = 0): WorkerLoad => ({ cpu, numaNode, busy });

test('a worker\'s measured busy time is split among its directions by their rates', () => {
  const loads = directionLoads([dir(1, 'vfToVm', 1, 3), dir(2, 'vfToVm', 1, 1), dir(1, 'vmToVf', 2, 0)], [w(1, 0.8), w(2, 0.1)]);
  assert.ok(Math.abs(loads[0]! - 0.6) < 1e-9 && Math.abs(loads[1]! - 0.2) < 1e-9, String(loads));
  assert.equal(loads[2], 0, 'no packets: no load, whatever the worker says');
  assert.equal(variation([1, 1]), 0);
  assert.equal(variation([0, 0]), 0);
  assert.equal(variation([1, 0]), 1);
});

test('skewed load: the busiest worker gives a direction to the idle one', () => {
  const dirs = [dir(1, 'vfToVm', 1, 2), dir(2, 'vfToVm', 1, 2), dir(1, 'vmToVf', 2, 0), dir(2, 'vmToVf', 2, 0)];
  const [g] = plan(dirs, [w(1, 1), w(2, 0)], opts);
  assert.equal(g!.moves.length, 1);
  assert.deepEqual({ ...g!.moves[0], load: undefined }, { relayId: g!.moves[0]!.relayId, relay: g!.moves[0]!.relay, direction: 'vfToVm', from: 1, to: 2, load: undefined });
  assert.equal(g!.cvBefore, 1);
  assert.ok(g!.cvAfter < 1e-9, `balanced after: ${g!.cvAfter}`);
});

test('balanced, idle, pinned and below-sensitivity cases stay put', () => {
  const even = [dir(1, 'vfToVm', 1, 1), dir(2, 'vfToVm', 2, 1)];
  assert.equal(plan(even, [w(1, 0.5), w(2, 0.5)], opts)[0]!.kept, 'balanced');
  const skew = [dir(1, 'vfToVm', 1, 1), dir(2, 'vfToVm', 1, 1)];
  assert.equal(plan(skew, [w(1, 0.02), w(2, 0)], opts)[0]!.kept, 'idle', 'below minLoad nothing moves');
  const pinned = skew.map((d) => ({ ...d, movable: false }));
  assert.equal(plan(pinned, [w(1, 1), w(2, 0)], opts)[0]!.moves.length, 0);
  // 0.6 vs 0.4: cv 0.2 -> a move (0.3) would give 0.4/0.6; cv 0.2 either way: not worth it
  const slight = [dir(1, 'vfToVm', 1, 3), dir(2, 'vfToVm', 2, 2)];
  assert.notEqual(plan(slight, [w(1, 0.6), w(2, 0.4)], opts)[0]!.moves.length, 1);
  // one heavy direction alone cannot be split
  assert.equal(plan([dir(1, 'vfToVm', 1, 5)], [w(1, 1), w(2, 0)], opts)[0]!.kept, 'balanced');
  // a higher sensitivity needs a bigger improvement
  const three = [dir(1, 'vfToVm', 1, 1), dir(2, 'vfToVm', 1, 1), dir(3, 'vfToVm', 2, 1)];
  assert.equal(plan(three, [w(1, 0.6), w(2, 0.3)], opts)[0]!.kept, 'balanced', '0.3 + 0.3 vs 0.3: a move only swaps the sides');
  const small = [dir(1, 'vfToVm', 1, 2.5), dir(2, 'vfToVm', 1, 1), dir(3, 'vfToVm', 2, 1)];
  const g = plan(small, [w(1, 0.7), w(2, 0.45)], opts)[0]!;
  assert.equal(g.kept, 'not-enough', `cv ${g.cvBefore} -> ${g.cvAfter} is less than 0.25 better`);
  assert.equal(plan(small, [w(1, 0.7), w(2, 0.45)], { ...opts, sensitivity: 0.05 })[0]!.moves.length, 1);
  assert.equal(plan(skew, [w(1, 1), w(2, 0)], { ...opts, sensitivity: 1 })[0]!.kept, 'not-enough');
  assert.equal(plan(skew, [w(1, 1), w(2, 0)], { ...opts, sensitivity: 0.99 })[0]!.moves.length, 1);
});

test('NUMA-local unless global: a relay stays on its node\'s workers', () => {
  const dirs = [dir(1, 'vfToVm', 1, 2), dir(2, 'vfToVm', 1, 2)];
  const ws = [w(1, 1, 0), w(3, 0, 1)];
  const local = plan(dirs, ws, opts);
  assert.deepEqual(local.map((g) => [g.numaNode, g.kept]), [[0, 'single-worker'], [1, 'single-worker']]);
  const global = plan(dirs, ws, { ...opts, globalNuma: true });
  assert.equal(global.length, 1);
  assert.equal(global[0]!.numaNode, -1);
  assert.deepEqual(global[0]!.moves.map((m) => [m.from, m.to]), [[1, 3]]);
  // four workers, one loaded with four directions: two leave, to different workers
  const four = [1, 2, 3, 4].map((id) => dir(id, 'vfToVm', 1, 1));
  const g = plan(four, [w(1, 1), w(2, 0), w(3, 0), w(4, 0)], opts)[0]!;
  assert.equal(g.moves.length, 3);
  assert.deepEqual(new Set(g.moves.map((m) => m.to)), new Set([2, 3, 4]));
});

// The loop over counters that grow as a skewed load would make them.
const zero = (): DirectionCounters => ({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, droppedQueueFullPackets: 0, droppedQueueFullBytes: 0, droppedNotConnectedPackets: 0, droppedNotConnectedBytes: 0 });

test('the loop measures between evaluations, moves through move(), reports each move', async () => {
  const relays: SchedRelay[] = [
    { id: 1, name: 'a', numaNode: 0, cpus: { vfToVm: 0, vmToVf: 1 }, pinned: false },
    { id: 2, name: 'b', numaNode: 0, cpus: { vfToVm: 0, vmToVf: 1 }, pinned: false },
  ];
  const stats = new Map<number, RelayStats>(relays.map((r) => [r.id, { id: r.id, vfToVm: zero(), vmToVf: zero(), queues: [] }]));
  const workers: WorkerInfo[] = [0, 1].map((cpu) => ({ cpu, lcore: cpu, numaNode: 0, directions: 2, busyCycles: 0, idleCycles: 0, packets: 0, dropped: 0, entries: 2, hotEntries: 2, wakeups: 0 }));
  const advance = (): void => {
    for (const s of stats.values()) {
      s.vfToVm.rxPackets += 1e6;
      s.vfToVm.txPackets += 1e6;
      s.vfToVm.rxBytes += 64e6;
      s.vfToVm.txBytes += 64e6;
    }
    // CPU 0 polls both loaded directions: busy; CPU 1 idles
    workers[0]!.busyCycles += 1e9;
    workers[1]!.idleCycles += 1e9;
  };
  const moved: unknown[] = [];
  const calls: unknown[] = [];
  const sched = new CoreScheduler({
    ...opts,
    intervalMs: 3_600_000,
    logger: silentLogger(),
    relays: () => relays,
    stats: (id) => structuredClone(stats.get(id)),
    workers: () => structuredClone(workers),
    move: async (name, cpus) => {
      calls.push([name, cpus]);
      relays.find((r) => r.name === name)!.cpus = cpus;
    },
    onMove: (m) => moved.push([m.relay, m.direction, m.from, m.to]),
  });
  sched.start();
  advance();
  const groups = await sched.tick();
  await sched.stop();
  assert.equal(groups[0]!.cvBefore, 1);
  assert.equal(calls.length, 1);
  const [name, cpus] = calls[0] as [string, { vfToVm: number; vmToVf: number }];
  assert.deepEqual(cpus, { vfToVm: 1, vmToVf: 1 });
  assert.deepEqual(moved, [[name, 'vfToVm', 0, 1]]);
  assert.equal(sched.moves, 1);
  // a relay whose move fails is reported and not counted
  relays.forEach((r) => (r.cpus = { vfToVm: 0, vmToVf: 1 }));
  const failing = new CoreScheduler({
    ...opts, intervalMs: 3_600_000, logger: silentLogger(), relays: () => relays,
    stats: (id) => structuredClone(stats.get(id)), workers: () => structuredClone(workers),
    move: () => Promise.reject(new Error('busy')),
  });
  failing.start();
  advance();
  await failing.tick();
  await failing.stop();
  assert.equal(failing.moves, 0);
});
