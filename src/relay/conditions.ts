// Kubernetes-style conditions for relays: set one, keep lastTransitionTime when nothing changed.
import type { Condition, ConditionType, RelayPhase } from './types.js';
import { Reason } from './reasons.js';

export const CONDITION_TYPES: readonly ConditionType[] = ['VFAttached', 'SocketReady', 'GuestConnected', 'Ready'];

export function initialConditions(now: string): Condition[] {
  return CONDITION_TYPES.map((type) => ({ type, status: 'Unknown', reason: Reason.Pending, message: 'not reconciled yet', lastTransitionTime: now }));
}

/** Sets one condition in place; returns true when status, reason or message changed. */
export function setCondition(
  conditions: Condition[],
  type: ConditionType,
  status: Condition['status'],
  reason: Reason,
  message: string,
  now: string,
): boolean {
  const c = conditions.find((x) => x.type === type);
  if (!c) {
    conditions.push({ type, status, reason, message, lastTransitionTime: now });
    return true;
  }
  if (c.status === status && c.reason === reason && c.message === message) return false;
  if (c.status !== status) c.lastTransitionTime = now;
  c.status = status;
  c.reason = reason;
  c.message = message;
  return true;
}

export function conditionTrue(conditions: Condition[], type: ConditionType): boolean {
  return conditions.some((c) => c.type === type && c.status === 'True');
}

/** Ready = the relay can serve a guest: VF attached and socket ready (the guest may come later). */
export function deriveReady(conditions: Condition[], now: string): boolean {
  const vf = conditions.find((c) => c.type === 'VFAttached');
  const sock = conditions.find((c) => c.type === 'SocketReady');
  if (vf?.status === 'True' && sock?.status === 'True') {
    setCondition(conditions, 'Ready', 'True', Reason.RelayReady, 'VF attached and vhost-user socket ready', now);
    return true;
  }
  const blocker = vf?.status !== 'True' ? vf : sock;
  setCondition(conditions, 'Ready', 'False', blocker?.reason ?? Reason.Pending, blocker?.message ?? 'waiting', now);
  return false;
}

export function phaseFor(ready: boolean, failed: boolean, terminating: boolean, configuring: boolean): RelayPhase {
  if (terminating) return 'Terminating';
  if (failed) return 'Failed';
  if (ready) return 'Ready';
  return configuring ? 'Configuring' : 'Pending';
}
