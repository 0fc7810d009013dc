// Where a VirtioRelay should run, as pure functions of what the cluster reports: the nodes' VF
// lists (from VirtioForwarderNodes) and the relays already assigned to each node. The scheduler
// feeds these from its informer caches and in-memory reservations.
import { compileVfSelector, type VfIdentity, type VfMatcher } from '../util/vf-selector.js';
import { errorMessage } from '../util/errors.js';
import type { VirtioForwarderNodeStatus, VirtioRelaySpec } from '../kube/index.js';

/** A VF as a node reports it, normalized. */
export interface PlacementVf extends VfIdentity {
  /** namespace/name of the relay that uses it, or another owner; null when free. */
  usedBy: string | null;
}

export interface PlacementNode {
  name: string;
  /** Set when the node takes no new relays, saying why (e.g. "engine not up"). */
  unavailable?: string;
  vfs: PlacementVf[];
  /** Relays the node's agent reports (it may run relays that are not VirtioRelays). */
  reportedRelays?: number;
}

export type VfRequest = VirtioRelaySpec['vf'];

export interface PlacementRelay {
  /** namespace/name */
  key: string;
  vf: VfRequest;
  numaNode?: number;
}

/** A relay that runs on, or was just scheduled to, a node. */
export interface AssignedRelay extends PlacementRelay {
  node: string;
  /** VFs the scheduler picked for it (a reservation) while the node has not reported it. */
  reserved?: string[];
}

export interface NodeUsage {
  name: string;
  /** Relays on the node, for spreading. */
  relays: number;
  /** VFs nobody uses or claims, by PCI address. */
  free: Map<string, PlacementVf>;
  /** VFs that relays assigned to the node hold or will take: PCI address -> relay key. */
  claims: Map<string, string>;
}

export interface Placement {
  ok: true;
  node: string;
  /** VFs the relay will get (empty for devargs relays). */
  vfs: string[];
  /** NUMA node of those VFs, null when unknown or none. */
  numaNode: number | null;
}

export interface Unschedulable {
  ok: false;
  /** For the FailedScheduling event and status.message. */
  message: string;
}

/** A VF list entry of a VirtioForwarderNode, with defaults for what the agent left out. */
export function normalizeVf(vf: NonNullable<VirtioForwarderNodeStatus['vfs']>[number]): PlacementVf {
  return {
    pciAddress: vf.pciAddress.toLowerCase(),
    pfName: vf.pfName ?? '',
    vfIndex: vf.vfIndex ?? -1,
    vendor: (vf.vendor ?? '').toLowerCase().replace(/^0x/, ''),
    device: (vf.device ?? '').toLowerCase().replace(/^0x/, ''),
    numaNode: typeof vf.numaNode === 'number' && vf.numaNode >= 0 ? vf.numaNode : null,
    usedBy: vf.usedBy ? vf.usedBy : null,
  };
}

/** usedBy names a relay as namespace/name; accept the agent's relay name (namespace.name) too. */
export function usedByKey(usedBy: string): string {
  if (usedBy.includes('/')) return usedBy;
  const dot = usedBy.indexOf('.');
  return dot > 0 ? `${usedBy.slice(0, dot)}/${usedBy.slice(dot + 1)}` : usedBy;
}

function vfOrder(a: VfIdentity, b: VfIdentity): number {
  return a.pfName.localeCompare(b.pfName) || a.vfIndex - b.vfIndex || a.pciAddress.localeCompare(b.pciAddress);
}

function addresses(vf: VfRequest): string[] {
  if (vf.pciAddress) return [vf.pciAddress.toLowerCase()];
  if (vf.pciAddresses) return vf.pciAddresses.map((a) => a.toLowerCase());
  return [];
}

function matcherOf(vf: VfRequest): VfMatcher | null {
  return vf.selector ? compileVfSelector(vf.selector, 'spec.vf.selector') : null;
}

/**
 * Which VFs of a node are free, counting relays the node has not reported yet: a reported relay
 * holds the VF whose usedBy names it; otherwise it claims the VFs it names, else its reservation,
 * else (selector relays) the VF the agent would pick: the same order as pickFreeVf.
 */
export function nodeUsage(node: PlacementNode, assigned: readonly AssignedRelay[]): NodeUsage {
  const free = new Map<string, PlacementVf>();
  const claims = new Map<string, string>();
  const reported = new Set<string>();
  for (const vf of node.vfs) {
    if (vf.usedBy === null) free.set(vf.pciAddress, vf);
    else {
      claims.set(vf.pciAddress, usedByKey(vf.usedBy));
      reported.add(usedByKey(vf.usedBy));
    }
  }
  const mine = assigned.filter((a) => a.node === node.name);
  // named VFs first, then reservations, then selectors: a guess never takes a VF someone named
  const rank = (a: AssignedRelay): number => (addresses(a.vf).length > 0 ? 0 : a.reserved?.length ? 1 : 2);
  const ordered = [...mine].sort((a, b) => rank(a) - rank(b) || a.key.localeCompare(b.key));
  const take = (pci: string, key: string): void => {
    if (free.delete(pci)) claims.set(pci, key);
  };
  for (const a of ordered) {
    if (reported.has(a.key)) continue;
    const named = addresses(a.vf);
    if (named.length > 0) {
      for (const pci of named) take(pci, a.key);
      continue;
    }
    const reserved = (a.reserved ?? []).filter((pci) => free.has(pci));
    if (reserved.length > 0) {
      for (const pci of reserved) take(pci, a.key);
      continue;
    }
    let m: VfMatcher | null;
    try {
      m = matcherOf(a.vf);
    } catch {
      continue; // an invalid selector takes nothing: the agent fails that relay
    }
    if (!m) continue; // devargs: no VF
    const pick = [...free.values()]
      .filter((vf) => m.matches(vf) && (a.numaNode === undefined || vf.numaNode === a.numaNode))
      .sort(vfOrder)[0];
    if (pick) take(pick.pciAddress, a.key);
  }
  return { name: node.name, relays: Math.max(mine.length, node.reportedRelays ?? 0), free, claims };
}

/** What a relay asks for, in words: "VF matching selector pfName=ens1f0 on NUMA node 1". */
export function describeRequest(relay: Pick<PlacementRelay, 'vf' | 'numaNode'>): string {
  const vf = relay.vf;
  let what: string;
  if (vf.pciAddress) what = `VF ${vf.pciAddress.toLowerCase()}`;
  else if (vf.pciAddresses) what = `VFs ${vf.pciAddresses.map((a) => a.toLowerCase()).join(', ')}`;
  else if (vf.selector) {
    const s = vf.selector as Record<string, unknown>;
    const parts = ['pfName', 'vendor', 'device', 'vfIndexRange', 'pciAddress'].filter((k) => s[k] !== undefined).map((k) => `${k}=${String(s[k])}`);
    what = `VF matching selector ${parts.join(',')}`;
  } else what = `node for devargs ${vf.devargs ?? '?'}`;
  return relay.numaNode === undefined ? what : `${what} on NUMA node ${relay.numaNode}`;
}

interface Fit {
  vfs: PlacementVf[];
  /** Free VFs that would fit the relay: the node's room for more like it. */
  headroom: number;
}

function fit(relay: PlacementRelay, node: PlacementNode, usage: NodeUsage, matcher: VfMatcher | null): Fit | string {
  const want = relay.numaNode;
  const isFree = (pci: string): boolean => usage.free.has(pci) || usage.claims.get(pci) === relay.key;
  const named = addresses(relay.vf);
  if (named.length > 0) {
    const vfs: PlacementVf[] = [];
    for (const pci of named) {
      const vf = node.vfs.find((v) => v.pciAddress === pci);
      if (!vf) return named.length > 1 ? 'not all VFs on the node' : 'VF not on the node';
      if (!isFree(pci)) return 'VF in use';
      if (want !== undefined && vf.numaNode !== want) return 'VF on another NUMA node';
      vfs.push(vf);
    }
    return { vfs, headroom: 1 };
  }
  if (matcher) {
    const matching = node.vfs.filter((vf) => matcher.matches(vf));
    if (matching.length === 0) return 'no matching VF';
    const free = matching.filter((vf) => isFree(vf.pciAddress));
    if (free.length === 0) return 'all matching VFs in use';
    const local = want === undefined ? free : free.filter((vf) => vf.numaNode === want);
    if (local.length === 0) return `no free matching VF on NUMA node ${want}`;
    // the NUMA node with the most free matching VFs: keeps the others for relays that need them
    const byNuma = new Map<number | null, PlacementVf[]>();
    for (const vf of local) byNuma.set(vf.numaNode, [...(byNuma.get(vf.numaNode) ?? []), vf]);
    const groups = [...byNuma.entries()].sort(
      ([na, a], [nb, b]) => b.length - a.length || (na === null ? 1 : 0) - (nb === null ? 1 : 0) || (na ?? 0) - (nb ?? 0),
    );
    const best = groups[0]![1].sort(vfOrder)[0]!;
    return { vfs: [best], headroom: local.length };
  }
  return { vfs: [], headroom: 0 }; // devargs: any node with a running engine
}

/**
 * One view of the cluster for placing many relays: each node's usage is worked out once (from
 * the relays assigned to it), and each placement is counted in before the next, so a pass over
 * a burst of relays costs the cluster's size once, not once per relay.
 */
export class PlacementSnapshot {
  private readonly byNode = new Map<string, AssignedRelay[]>();
  private readonly full = new Map<string, PlacementNode>();
  private readonly usages = new Map<string, NodeUsage>();
  /** node name -> its place in name order (ties between equal nodes go to the first) */
  private readonly rank = new Map<string, number>();

  /** nodes: as they report (before a pool policy narrows them); assigned: the relays on them. */
  constructor(nodes: readonly PlacementNode[], assigned: readonly AssignedRelay[]) {
    for (const n of nodes) this.full.set(n.name, n);
    [...this.full.keys()].sort((a, b) => a.localeCompare(b)).forEach((name, i) => this.rank.set(name, i));
    for (const a of assigned) {
      const list = this.byNode.get(a.node);
      if (list) list.push(a);
      else this.byNode.set(a.node, [a]);
    }
  }

  usage(node: PlacementNode): NodeUsage {
    let u = this.usages.get(node.name);
    if (!u) {
      u = nodeUsage(this.full.get(node.name) ?? node, this.byNode.get(node.name) ?? []);
      this.usages.set(node.name, u);
    }
    return u;
  }

  /**
   * Picks a node for a relay: among nodes (as a pool policy left them) that can take it, the one
   * with the fewest relays, then the most room for more like it, then by name. Unschedulable
   * says what is missing, and why each node was passed over. A pick is counted in at once.
   */
  place(relay: PlacementRelay, nodes: readonly PlacementNode[]): Placement | Unschedulable {
    let matcher: VfMatcher | null;
    try {
      matcher = matcherOf(relay.vf);
    } catch (err) {
      return { ok: false, message: errorMessage(err) };
    }
    const want = describeRequest(relay);
    const missing = relay.vf.devargs !== undefined ? `no node can run the relay (${want})` : `no node has a free ${want}`;
    if (nodes.length === 0) return { ok: false, message: `${missing}: no node runs the vio4wd agent` };
    const why = new Map<string, number>();
    let best: { node: string; load: number; headroom: number; vfs: PlacementVf[] } | undefined;
    const rank = (n: PlacementNode): number => this.rank.get(n.name) ?? Infinity;
    for (const node of [...nodes].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name))) {
      if (node.unavailable) {
        why.set(node.unavailable, (why.get(node.unavailable) ?? 0) + 1);
        continue;
      }
      const usage = this.usage(node);
      const f = fit(relay, node, usage, matcher);
      if (typeof f === 'string') {
        why.set(f, (why.get(f) ?? 0) + 1);
        continue;
      }
      const better = !best || usage.relays < best.load || (usage.relays === best.load && f.headroom > best.headroom);
      if (better) best = { node: node.name, load: usage.relays, headroom: f.headroom, vfs: f.vfs };
    }
    if (!best) {
      const reasons = [...why.entries()].sort(([a, x], [b, y]) => y - x || a.localeCompare(b)).map(([r, n]) => `${n} ${r}`);
      return { ok: false, message: `${missing} (0/${nodes.length} nodes available: ${reasons.join(', ')})` };
    }
    // counted in: the node has one relay more, and its VFs are taken
    const u = this.usages.get(best.node)!;
    u.relays++;
    for (const vf of best.vfs) {
      u.free.delete(vf.pciAddress);
      u.claims.set(vf.pciAddress, relay.key);
    }
    const numas = new Set(best.vfs.map((v) => v.numaNode));
    return {
      ok: true,
      node: best.node,
      vfs: best.vfs.map((v) => v.pciAddress),
      numaNode: numas.size === 1 ? [...numas][0]! : null,
    };
  }
}

/** One relay placed against the cluster as it is (PlacementSnapshot.place). */
export function placeRelay(relay: PlacementRelay, nodes: readonly PlacementNode[], assigned: readonly AssignedRelay[]): Placement | Unschedulable {
  return new PlacementSnapshot(nodes, assigned).place(relay, nodes);
}
