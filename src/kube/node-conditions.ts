// VirtioForwarderNode conditions: their types and reasons (constants a user can search for, as
// the event reasons in events.ts), and the merge that keeps lastTransitionTime while a
// condition's status holds. The agent sets them (src/agent/node/conditions.ts); the operator sets
// them all Unknown when the agent's Lease goes unrenewed, as the node lifecycle controller does
// for a kubelet.
import type { VirtioForwarderNodeStatus } from './crd-schemas.js';

export const NodeConditionType = {
  /** the DPDK engine runs */
  EngineRunning: 'EngineRunning',
  /** the node has hugepages free (VMs' shared memory, new NUMA pools) */
  HugepagesAvailable: 'HugepagesAvailable',
  /** every pool's device plugin is registered with kubelet (only with the device plugin on) */
  DevicePluginRegistered: 'DevicePluginRegistered',
  /** the agent serves relays on this node: engine running, device plugin (if on) registered */
  Ready: 'Ready',
} as const;
export type NodeConditionType = (typeof NodeConditionType)[keyof typeof NodeConditionType];

/** Reasons of VirtioForwarderNode conditions (CamelCase words a user can search for). */
export const NodeConditionReason = {
  /** Ready: the agent serves relays */
  AgentReady: 'AgentReady',
  /** Ready: the engine does not run (EngineRunning says why) */
  EngineNotRunning: 'EngineNotRunning',
  /** Ready: a pool's device plugin is not registered with kubelet */
  DevicePluginNotRegistered: 'DevicePluginNotRegistered',
  /** EngineRunning */
  EngineStarted: 'EngineStarted',
  EngineStopped: 'EngineStopped',
  /** HugepagesAvailable */
  HugepagesFree: 'HugepagesFree',
  HugepagesExhausted: 'HugepagesExhausted',
  NoHugepages: 'NoHugepages',
  /** DevicePluginRegistered */
  Registered: 'Registered',
  NoPools: 'NoPools',
  NotRegistered: 'NotRegistered',
  /** operator: every condition Unknown, the agent's Lease was not renewed in time */
  AgentNotReporting: 'AgentNotReporting',
} as const;
export type NodeConditionReason = (typeof NodeConditionReason)[keyof typeof NodeConditionReason];

export type NodeCondition = NonNullable<VirtioForwarderNodeStatus['conditions']>[number];

/** A condition as computed, before its lastTransitionTime and observedGeneration are known. */
export interface NodeConditionInput {
  type: NodeConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: NodeConditionReason;
  message: string;
}

/**
 * The conditions to write: next's, each with the lastTransitionTime of prev's condition of the
 * same type when its status did not change (else now), and observedGeneration when known.
 */
export function mergeConditions(prev: readonly NodeCondition[] | undefined, next: readonly NodeConditionInput[], generation: number | undefined, now: Date): NodeCondition[] {
  return next.map((c) => {
    const old = prev?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  });
}

/** prev's conditions (the agent's types when there are none) all Unknown, with reason AgentNotReporting. */
export function agentNotReporting(prev: readonly NodeCondition[] | undefined, message: string, now: Date): NodeCondition[] {
  const types = prev?.length ? prev.map((c) => c.type as NodeConditionType) : [NodeConditionType.EngineRunning, NodeConditionType.HugepagesAvailable, NodeConditionType.Ready];
  const generation = prev?.find((c) => c.observedGeneration !== undefined)?.observedGeneration;
  return mergeConditions(
    prev,
    types.map((type) => ({ type, status: 'Unknown', reason: NodeConditionReason.AgentNotReporting, message })),
    generation,
    now,
  );
}

/** True when every condition is Unknown for reason AgentNotReporting (the operator's mark). */
export function markedNotReporting(conditions: readonly NodeCondition[] | undefined): boolean {
  return !!conditions?.length && conditions.every((c) => c.status === 'Unknown' && c.reason === NodeConditionReason.AgentNotReporting);
}
