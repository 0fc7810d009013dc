// Wires the core scheduler (src/sched) to the engine, the relay manager and the metrics.
import type { Logger } from '../util/log.js';
import type { Engine } from '../engine/index.js';
import type { RelayManager } from '../relay/index.js';
import type { AgentMetrics } from '../metrics/index.js';
import { CoreScheduler, type SchedRelay } from '../sched/index.js';
import type { ResolvedConfig } from './config/load.js';

export function startCoreScheduler(
  c: ResolvedConfig['coreScheduler'],
  deps: {
    engine: Engine;
    relays: RelayManager;
    metrics: AgentMetrics | undefined;
    logger: Logger;
    /** Relays a ZeroMQ core scheduling UPDATE placed: an outside balancer's (virtio-forwarder's
     *  scheduler script) or an admin's (its core pinner). This one does not move them, so the
     *  two never undo each other's moves. */
    external?: ReadonlySet<string>;
  },
): CoreScheduler {
  const { engine, relays, metrics } = deps;
  const logger = c.logLevel ? deps.logger.child({}, { level: c.logLevel }) : deps.logger;
  const sched = new CoreScheduler({
    intervalMs: c.intervalSeconds * 1000,
    sensitivity: c.sensitivity,
    globalNuma: c.globalNuma,
    minLoad: c.minLoad,
    logger,
    relays: () => {
      const out: SchedRelay[] = [];
      for (const s of relays.list()) {
        const info = engine.relay(s.id);
        if (!info) continue;
        const pinned = (deps.external?.has(s.name) ?? false) || (!c.movePinned && (relays.spec(s.name)?.cpus?.length ?? 0) > 0);
        out.push({ id: s.id, name: s.name, numaNode: info.numaNode, cpus: { ...info.cpus }, pinned });
      }
      return out;
    },
    stats: (id) => (engine.relay(id) ? engine.stats(id) : undefined),
    workers: () => engine.workers(),
    move: async (name, cpus) => {
      await relays.moveCpus(name, cpus);
    },
    onMove: (m) => metrics?.countCoreSchedMove(m.relay, m.direction),
    onPlan: (groups) => metrics?.setCoreSchedVariation(groups.map((g) => ({ numaNode: g.numaNode, variation: g.cvBefore }))),
  });
  sched.start();
  return sched;
}
