// The cluster as the operator's placement sees it, read from its informer caches: the nodes
// that can take relays (with their agent's VF report) and the relays assigned to each, counting
// the operator's own picks (reservations) that the caches do not show yet.
import type { V1Node } from '@kubernetes/client-node';
import { objectKey, type Cache, type VirtioForwarderNode, type VirtioRelay } from '../kube/index.js';
import { normalizeVf, usedByKey, type AssignedRelay, type PlacementNode } from './placement.js';
import type { AgentLiveness } from './liveness.js';

/** A node picked for a relay whose patch the informer may not show yet. */
export interface Reservation {
  node: string;
  vfs: string[];
  /** resourceVersion the patch was conditioned on: a cached copy at it predates the patch. */
  preRv: string;
}

/** spec.nodeName, with "" read as unset. */
export function nodeOf(r: VirtioRelay): string | undefined {
  return r.spec?.nodeName || undefined;
}

function nodeReady(node: V1Node): boolean {
  const c = node.status?.conditions?.find((x) => x.type === 'Ready');
  return !c || c.status === 'True'; // no condition yet: a node without a kubelet report
}

/** Nodes as placement sees them: every core Node, with its agent's report if it has one. */
export function placementNodes(nodes: Cache<V1Node>, vfns: Cache<VirtioForwarderNode>, liveness: AgentLiveness): PlacementNode[] {
  const out: PlacementNode[] = [];
  for (const node of nodes.list()) {
    const name = node.metadata?.name;
    if (!name) continue;
    const vfn = vfns.get(name);
    const st = vfn?.status;
    let unavailable: string | undefined;
    if (!vfn) unavailable = 'no vio4wd agent';
    else if (node.metadata?.deletionTimestamp) unavailable = 'node being deleted';
    else if (node.spec?.unschedulable) unavailable = 'node cordoned';
    else if (!nodeReady(node)) unavailable = 'node not Ready';
    else if (st?.engine?.up !== true) unavailable = 'engine not up';
    else if (liveness.stale(name)) unavailable = 'agent not reporting';
    out.push({
      name,
      ...(unavailable ? { unavailable } : {}),
      vfs: (st?.vfs ?? []).map(normalizeVf),
      ...(st?.relays?.total !== undefined ? { reportedRelays: st.relays.total } : {}),
    });
  }
  return out;
}

/** Relays on nodes: from the cache, plus reservations the cache does not show yet (reservations
 *  that are no longer needed are dropped from the map). */
export function assignedRelays(relays: Cache<VirtioRelay>, vfns: Cache<VirtioForwarderNode>, reservations: Map<string, Reservation>): AssignedRelay[] {
  const reportedOn = new Map<string, Set<string>>();
  const reported = (node: string): Set<string> => {
    let s = reportedOn.get(node);
    if (!s) {
      s = new Set((vfns.get(node)?.status?.vfs ?? []).flatMap((vf) => (vf.usedBy ? [usedByKey(vf.usedBy)] : [])));
      reportedOn.set(node, s);
    }
    return s;
  };
  const out: AssignedRelay[] = [];
  for (const r of relays.list()) {
    let node = nodeOf(r);
    const res = reservations.size ? reservations.get(objectKey(r)) : undefined;
    if (!node && !res) continue;
    const key = objectKey(r);
    let reserved: string[] | undefined;
    if (res) {
      if (r.metadata.resourceVersion === res.preRv || node === res.node) {
        node = res.node;
        reserved = res.vfs;
        // the node reports the relay (or it needs no VF): the guess is not needed any more
        if (nodeOf(r) === res.node && (res.vfs.length === 0 || reported(res.node).has(key))) {
          reservations.delete(key);
          reserved = undefined;
        }
      } else {
        reservations.delete(key); // moved or cleared since
      }
    }
    if (!node || !r.spec) continue;
    out.push({
      key,
      node,
      vf: r.spec.vf,
      ...(r.spec.numaNode !== undefined ? { numaNode: r.spec.numaNode } : {}),
      ...(reserved ? { reserved } : {}),
    });
  }
  return out;
}

/** What of an agent's report can make room for a relay that did not fit: its engine being up and
 *  its VFs (which, who uses them). Its counts (relays.total, written every few seconds while relays
 *  come) cannot, so a change in them alone retries nothing. */
export function agentRoomKey(vfn: VirtioForwarderNode): string {
  const st = vfn.status;
  const vfs = (st?.vfs ?? []).map((v) => `${v.pciAddress}|${v.pfName ?? ''}|${v.vfIndex ?? ''}|${v.vendor ?? ''}|${v.device ?? ''}|${v.numaNode ?? ''}|${v.usedBy ?? ''}`);
  return `${st?.engine?.up === true ? 'up' : 'down'};${vfs.join(',')}`;
}

/** What of a core Node placement reads: being deleted, cordoned, Ready, its labels (pool policies). */
export function nodeRoomKey(node: V1Node): string {
  const labels = Object.entries(node.metadata?.labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const deleting = node.metadata?.deletionTimestamp ? 'deleting' : '';
  return `${deleting};${node.spec?.unschedulable ? 'cordoned' : ''};${nodeReady(node) ? 'ready' : ''};${JSON.stringify(labels)}`;
}
