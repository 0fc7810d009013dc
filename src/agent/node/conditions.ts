// The VirtioForwarderNode conditions from what the agent knows of its node (pure: the
// publisher merges them with the previous ones, which keeps their lastTransitionTime).
import { NodeConditionReason as R, NodeConditionType as T, type NodeConditionInput, type VirtioForwarderNodeStatus } from '../../kube/index.js';

/** What a pool's device plugin told: registered with kubelet or not. */
export interface PluginState {
  resourceName: string;
  registered: boolean;
}

export interface NodeFacts {
  engine: VirtioForwarderNodeStatus['engine'];
  hugepages: VirtioForwarderNodeStatus['hugepages'];
  /** Pools served by the device plugin; undefined: the device plugin is off. */
  devicePlugin?: readonly PluginState[] | undefined;
}

export function nodeConditionInputs(f: NodeFacts): NodeConditionInput[] {
  const out: NodeConditionInput[] = [];
  const up = f.engine?.up === true;
  out.push(
    up
      ? { type: T.EngineRunning, status: 'True', reason: R.EngineStarted, message: `DPDK ${f.engine?.dpdkVersion ?? '?'} engine running` }
      : { type: T.EngineRunning, status: 'False', reason: R.EngineStopped, message: f.engine?.message || 'the DPDK engine does not run' },
  );
  out.push(hugepagesCondition(f.hugepages ?? []));
  let plugin: NodeConditionInput | undefined;
  if (f.devicePlugin) {
    const pools = [...f.devicePlugin].sort((a, b) => a.resourceName.localeCompare(b.resourceName));
    const missing = pools.filter((p) => !p.registered).map((p) => p.resourceName);
    plugin =
      pools.length === 0
        ? { type: T.DevicePluginRegistered, status: 'True', reason: R.NoPools, message: 'no relays yet, so no pool to offer to kubelet' }
        : missing.length
          ? { type: T.DevicePluginRegistered, status: 'False', reason: R.NotRegistered, message: `not registered with kubelet: ${missing.join(', ')} (is kubelet running, and its device-plugins directory mounted?)` }
          : { type: T.DevicePluginRegistered, status: 'True', reason: R.Registered, message: `registered with kubelet: ${pools.map((p) => p.resourceName).join(', ')}` };
    out.push(plugin);
  }
  if (!up) out.push({ type: T.Ready, status: 'False', reason: R.EngineNotRunning, message: 'the DPDK engine does not run: no relay forwards on this node' });
  else if (plugin?.status === 'False') out.push({ type: T.Ready, status: 'False', reason: R.DevicePluginNotRegistered, message: `kubelet cannot place pods on this node's relays: ${plugin.message}` });
  else out.push({ type: T.Ready, status: 'True', reason: R.AgentReady, message: 'the agent serves relays on this node' });
  return out;
}

function hugepagesCondition(pages: NonNullable<VirtioForwarderNodeStatus['hugepages']>): NodeConditionInput {
  // per page size, summed over NUMA nodes; the counts are in the status (hugepages)
  const bySize = new Map<number, { total: number; free: number }>();
  for (const p of pages) {
    const s = bySize.get(p.pageSizeKiB ?? 0) ?? { total: 0, free: 0 };
    s.total += p.total ?? 0;
    s.free += p.free ?? 0;
    bySize.set(p.pageSizeKiB ?? 0, s);
  }
  const sizes = [...bySize.entries()].filter(([, s]) => s.total > 0).sort(([a], [b]) => a - b);
  if (!sizes.length) return { type: T.HugepagesAvailable, status: 'False', reason: R.NoHugepages, message: 'no hugepages reserved on this node' };
  const names = (list: typeof sizes) => list.map(([kib]) => (kib >= 1024 * 1024 ? `${kib / 1024 / 1024}Gi` : `${kib / 1024}Mi`)).join(', ');
  const free = sizes.filter(([, s]) => s.free > 0);
  if (!free.length) return { type: T.HugepagesAvailable, status: 'False', reason: R.HugepagesExhausted, message: `no ${names(sizes)} hugepage free on this node` };
  return { type: T.HugepagesAvailable, status: 'True', reason: R.HugepagesFree, message: `${names(free)} hugepages free` };
}
