// The cluster as the operator's placement sees it, read from its informer caches: the nodes
// that can take relays (with their agent's VF report) and the relays assigned to each, counting
// the operator's own picks (reservations) that the caches do not show yet.
import type { V1Node } from '@kubernetes/client-node';
import { objectKey, type Cache, type VirtioForwarderNode, type VirtioRelay } from '../kube/index.js';
import { PlacementSnapshot, normalizeVf, usedByKey, type AssignedRelay, type PlacementNode } from './placement.js';
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

/**
 * The placement view (nodes and PlacementSnapshot) kept from one placement pass to the next, so a
 * burst placed a few relays per pass does not rebuild it from every relay each time (3 ms at 6,400
 * relays and 100 nodes, per pass). It is built again when something may have changed room
 * (invalidate: an agent's VFs or engine, a Node, a Lease, a relay deleted or moved, a failed
 * placement), and at least every maxAgeMs (an agent's Lease running out is no event).
 */
export class PlacementView {
  private built: { nodes: PlacementNode[]; snapshot: PlacementSnapshot; at: number; nodeOf: Map<string, string> } | undefined;

  constructor(
    private readonly relays: Cache<VirtioRelay>,
    private readonly vfns: Cache<VirtioForwarderNode>,
    private readonly nodes: Cache<V1Node>,
    private readonly liveness: AgentLiveness,
    private readonly reservations: Map<string, Reservation>,
    private readonly maxAgeMs = 1000,
  ) {}

  current(): { nodes: PlacementNode[]; snapshot: PlacementSnapshot } {
    const now = performance.now();
    if (!this.built || now - this.built.at > this.maxAgeMs) {
      const nodes = placementNodes(this.nodes, this.vfns, this.liveness);
      const assigned = assignedRelays(this.relays, this.vfns, this.reservations);
      this.built = { nodes, snapshot: new PlacementSnapshot(nodes, assigned), at: now, nodeOf: new Map(assigned.map((a) => [a.key, a.node])) };
    }
    return this.built;
  }

  invalidate(): void {
    this.built = undefined;
  }

  /** A relay's update: the view holds while it has the relay where it is (or is to be: a pick of
   *  the view's whose patch has landed, a new relay without a node); else it is built again. */
  relayChanged(key: string, node: string | undefined): void {
    if (!this.built) return;
    const known = this.built.nodeOf.get(key) ?? this.reservations.get(key)?.node;
    if (known !== node) this.invalidate();
  }
}
