// Pool policy: what a VirtioRelay may get on a node, decided from the admin's
// VirtioForwarderPolicies and the node agent's own allowances. Pure functions (no I/O), so the
// node agent enforces them and the operator or a DRA driver can reuse them.
import type { VirtioForwarderPolicy, VirtioForwarderPolicySpec, VirtioRelaySpec } from '../kube/crd-schemas.js';
import { allowedVirtualDriver, vfInPool as vfInPoolLocal, type VfPool } from '../util/vf-pool.js';
import { vfLimitsOf, type VfLimits, type WrittenVfLimits } from './vf-settings.js';

export { allowedVirtualDriver, vfInPool, type VfPool } from '../util/vf-pool.js';
export * from './vf-settings.js';

/** The pool a VirtioRelay without spec.resourceName lands in. */
export const DEFAULT_POOL = 'vio4wd.io/vhostuser';

/** Condition/status reason for everything this module refuses. */
export const POLICY_DENIED = 'PolicyDenied';

/** What the node agent's own configuration allows at all, whatever the policies say. */
export interface NodeAllowances {
  /** DPDK virtual-device drivers (devargs) Kubernetes relays may use on this node; [] = none. */
  virtualDevices: readonly string[];
}

/** How the relay's own directory and socket are owned (names resolved on the node). */
export interface SocketOwnership {
  owner?: string;
  group?: string;
  /** 0o750 or 0o2770 */
  directoryMode: number;
  /** 0o660 or 0o600 */
  perm: number;
}

export type PolicyDecision =
  | { allowed: true; policy: string; pool: VfPool; socket: SocketOwnership }
  | { allowed: false; message: string };

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** Kubernetes label-selector semantics; an absent selector selects everything. */
export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const vals = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !vals.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && vals.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an operator this code does not know selects nothing
    }
  }
  return true;
}

/** The policies that define `pool` on a node with these labels. */
export function policiesForPool(policies: readonly VirtioForwarderPolicy[], pool: string, nodeLabels: Record<string, string>): VirtioForwarderPolicy[] {
  return policies
    .filter((p) => p.spec?.resourceName === pool && selectorMatches(p.spec.nodeSelector as LabelSelector | undefined, nodeLabels))
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
}

/**
 * Decides whether a VirtioRelay of `namespace` may run on this node: its pool must be defined
 * here by exactly one policy that lists the namespace, its devargs driver must be allowed by the
 * policy and the node, and its queues and MTU within the policy's limits. Which VF it finally
 * gets is checked where the VF is resolved (vfInPool), before anything is probed.
 */
export function decide(
  input: { namespace: string; spec: VirtioRelaySpec },
  policies: readonly VirtioForwarderPolicy[],
  nodeLabels: Record<string, string>,
  node: NodeAllowances,
): PolicyDecision {
  const poolName = input.spec.resourceName ?? DEFAULT_POOL;
  const matching = policiesForPool(policies, poolName, nodeLabels);
  if (matching.length === 0) {
    return { allowed: false, message: `spec.resourceName: no VirtioForwarderPolicy defines pool ${poolName} on this node: ask the cluster admin for a policy, or name a pool that exists here` };
  }
  if (matching.length > 1) {
    const names = matching.map((p) => p.metadata.name).join(', ');
    return { allowed: false, message: `spec.resourceName: pool ${poolName} is defined on this node by more than one VirtioForwarderPolicy (${names}): the cluster admin must make their nodeSelectors disjoint` };
  }
  const policy = matching[0]!;
  const p: VirtioForwarderPolicySpec = policy.spec;
  const pname = policy.metadata.name ?? '?';
  if (!p.namespaces.includes('*') && !p.namespaces.includes(input.namespace)) {
    return { allowed: false, message: `spec.resourceName: namespace ${input.namespace} may not use pool ${poolName} (VirtioForwarderPolicy ${pname} spec.namespaces)` };
  }
  const s = input.spec;
  const queues = s.queues ?? 1;
  if (p.limits?.maxQueues !== undefined && queues > p.limits.maxQueues) {
    return { allowed: false, message: `spec.queues: ${queues} exceeds the pool's limit of ${p.limits.maxQueues} (VirtioForwarderPolicy ${pname} spec.limits.maxQueues)` };
  }
  if (p.limits?.maxMtu !== undefined && s.mtu !== undefined && s.mtu > p.limits.maxMtu) {
    return { allowed: false, message: `spec.mtu: ${s.mtu} exceeds the pool's limit of ${p.limits.maxMtu} (VirtioForwarderPolicy ${pname} spec.limits.maxMtu)` };
  }
  const virtualDevices = (p.vfs.virtualDevices ?? []).filter((d) => node.virtualDevices.includes(d));
  if (s.vf.devargs !== undefined) {
    const fromPolicy = p.vfs.virtualDevices ?? [];
    if (!allowedVirtualDriver(s.vf.devargs, fromPolicy)) {
      return { allowed: false, message: `spec.vf.devargs: pool ${poolName} may not use this virtual device (VirtioForwarderPolicy ${pname} allows ${fromPolicy.length ? fromPolicy.join(', ') : 'none'})` };
    }
    if (!allowedVirtualDriver(s.vf.devargs, virtualDevices)) {
      return { allowed: false, message: 'spec.vf.devargs: this node allows no such virtual device (the agent\'s kubernetes.allowVirtualDevices does not list it): use a VF' };
    }
  }
  const pool = poolOf(poolName, pname, p, virtualDevices);
  const sock = p.socket ?? {};
  const socket: SocketOwnership = {
    ...(sock.owner !== undefined ? { owner: sock.owner } : {}),
    ...(sock.group !== undefined ? { group: sock.group } : {}),
    directoryMode: parseInt(sock.directoryMode ?? '2770', 8),
    perm: parseInt(sock.perm ?? '0660', 8),
  };
  return { allowed: true, policy: pname, pool, socket };
}

/** The VFs a policy's pool may draw on, with the virtual devices the node leaves it. */
function poolOf(name: string, policy: string, p: VirtioForwarderPolicySpec, virtualDevices: string[]): VfPool {
  return {
    name,
    policy,
    pfNames: [...(p.vfs.pfNames ?? [])],
    pciAddresses: (p.vfs.pciAddresses ?? []).map((a) => a.toLowerCase()),
    devices: (p.vfs.devices ?? []).map((d) => ({ vendor: d.vendor.toLowerCase(), device: d.device.toLowerCase() })),
    virtualDevices,
  };
}

export type DeviceDecision = { allowed: true; policy: string; limits: { maxQueues?: number; maxMtu?: number }; namespaces: string[] } | { allowed: false; message: string };

/**
 * Decides whether a relay's VF may be offered as a DRA device of `poolName` on this node: exactly
 * one policy must define the pool here, and the VF must be one the pool may draw on (its PF,
 * address or ids), or, for a DPDK virtual device, a driver both the policy and the node allow.
 * The same rules decide() applies to a VirtioRelay's VF.
 */
export function decideDevice(
  poolName: string,
  vf: { pciAddress?: string; pfName?: string; vendor?: string; device?: string; devargs?: string },
  policies: readonly VirtioForwarderPolicy[],
  nodeLabels: Record<string, string>,
  node: NodeAllowances,
): DeviceDecision {
  const matching = policiesForPool(policies, poolName, nodeLabels);
  if (matching.length === 0) return { allowed: false, message: `no VirtioForwarderPolicy defines pool ${poolName} on this node` };
  if (matching.length > 1) return { allowed: false, message: `pool ${poolName} is defined on this node by more than one VirtioForwarderPolicy (${matching.map((p) => p.metadata.name).join(', ')})` };
  const policy = matching[0]!;
  const pname = policy.metadata.name ?? '?';
  const p = policy.spec;
  const limits = { ...(p.limits?.maxQueues !== undefined ? { maxQueues: p.limits.maxQueues } : {}), ...(p.limits?.maxMtu !== undefined ? { maxMtu: p.limits.maxMtu } : {}) };
  const namespaces = [...p.namespaces];
  if (vf.devargs !== undefined) {
    const allowed = (p.vfs.virtualDevices ?? []).filter((d) => node.virtualDevices.includes(d));
    if (!allowedVirtualDriver(vf.devargs, allowed)) return { allowed: false, message: `virtual device "${vf.devargs}" is not allowed in pool ${poolName} (VirtioForwarderPolicy ${pname} spec.vfs.virtualDevices and the agent's kubernetes.allowVirtualDevices)` };
    return { allowed: true, policy: pname, limits, namespaces };
  }
  if (!vf.pciAddress) return { allowed: false, message: 'the relay has no VF yet' };
  const pool = poolOf(poolName, pname, p, []);
  if (!vfInPoolLocal(vf as { pciAddress: string }, pool)) return { allowed: false, message: `VF ${vf.pciAddress} is not one pool ${poolName} may draw on (VirtioForwarderPolicy ${pname} spec.vfs)` };
  return { allowed: true, policy: pname, limits, namespaces };
}

/**
 * The limits for a relay of `pool` on this node: its VirtioForwarderPolicy's spec.limits when
 * exactly one policy defines the pool here; the node admin's (agent config sriov.vfLimits) when
 * none does (relays of the agent's own config, agents outside a cluster); the defaults when two do.
 */
export function vfLimitsFor(pool: string, policies: readonly VirtioForwarderPolicy[], nodeLabels: Record<string, string>, node: WrittenVfLimits | undefined): VfLimits {
  const matching = policiesForPool(policies, pool, nodeLabels);
  if (matching.length === 1) {
    const p = matching[0]!;
    return vfLimitsOf(p.spec.limits, `VirtioForwarderPolicy ${p.metadata.name ?? '?'} spec.limits`, 'the cluster admin');
  }
  if (matching.length > 1) {
    const names = matching.map((p) => p.metadata.name).join(', ');
    return { ...vfLimitsOf(undefined, `VirtioForwarderPolicy ${names}`, 'the cluster admin'), note: `pool ${pool} is defined on this node by more than one VirtioForwarderPolicy (${names}): the cluster admin must make their nodeSelectors disjoint` };
  }
  return vfLimitsOf(node, 'the agent config\'s sriov.vfLimits', 'the node admin');
}
