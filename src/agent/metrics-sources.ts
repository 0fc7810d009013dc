// What the agent's metrics read: relays, engine counters and memory, readiness, the node's
// hugepages and (in a cluster) the pod of each relay.
import type { Logger } from '../util/log.js';
import { GIT_COMMIT, VERSION } from '../util/version.js';
import type { Engine } from '../engine/index.js';
import type { RelayManager } from '../relay/index.js';
import type { MetricsSources } from '../metrics/index.js';
import type { ResolvedConfig } from './config/load.js';
import { hugepages } from './host.js';

export async function metricsSources(
  c: ResolvedConfig,
  engine: Engine,
  relays: RelayManager,
  state: { up: () => boolean; ready: () => boolean },
  log: Logger,
): Promise<MetricsSources> {
  const sources: MetricsSources = {
    relays: () => relays.list(),
    stats: (id) => (engine.relay(id) ? engine.stats(id) : undefined),
    engineUp: state.up,
    memory: () => {
      const m = engine.memory();
      return {
        hugepageBytes: m.hugepageBytes,
        mbufsInUse: m.mempools.reduce((a, p) => a + p.inUse, 0),
        mbufsTotal: m.mempools.reduce((a, p) => a + p.size, 0),
      };
    },
    settings: () => (state.up() ? engine.settings() : undefined),
    ready: state.ready,
    workers: () => engine.workers(),
    tscHz: () => engine.tscHz(),
    buildInfo: () => ({ version: VERSION, commit: GIT_COMMIT, dpdk: engine.version().dpdk, node: process.versions.node }),
    hugepages: () => hugepages(c.sriov.sysRoot),
  };
  if (c.metrics.podResourcesSocket) {
    // gRPC loads only here: a standalone agent does without it
    const { RelayPodJoin } = await import('./pod-resources.js');
    const join = new RelayPodJoin(c.metrics.podResourcesSocket);
    let warned = false;
    sources.relayPods = async () => {
      const pods = await join.pods();
      if (join.lastError && !warned) log.warn({ err: join.lastError }, 'no relay-to-pod join (vio4wd_relay_pod_info): kubelet pod-resources API not reachable');
      warned = !!join.lastError;
      return { ok: !join.lastError, pods };
    };
  }
  return sources;
}
