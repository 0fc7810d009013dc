// Kubernetes-style conditions for relays, as pure functions of what the engine reports: set one
// (keeping lastTransitionTime when nothing changed), derive Ready, read the engine's view of a
// relay and of its guest.
import type { RelayInfo } from '../engine/types.js';
import type { Condition, ConditionType } from './types.js';
import { Reason, isSocketReason } from './reasons.js';

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

/**
 * GuestConnected from the engine's view: how the guest arrived (MigratedIn after a live
 * migration), a migration in progress (MigrationInProgress: dirty-page logging on), and how it
 * left (MigratingOut: it stopped with dirty-page logging on, the source side of a live
 * migration; it stays so until the next guest). The agent counts migrations from these reasons.
 */
export function guestCondition(info: RelayInfo): ['True' | 'False', Reason, string] {
  if (info.guestConnected) {
    const q = `${info.enabledQueues} vring(s) enabled`;
    if (info.guestFeatures?.dirtyLogging) return ['True', Reason.MigrationInProgress, `guest connected, live migration in progress (dirty-page logging on), ${q}`];
    switch (info.guestArrival) {
      case 'migrated-in':
        return ['True', Reason.MigratedIn, `guest arrived by live migration, ${q}`];
      case 'reconnected':
        return ['True', Reason.GuestConnected, `guest reconnected with its vrings restored, ${q}`];
      case 'resumed':
        return ['True', Reason.GuestConnected, `guest resumed, ${q}`];
      default:
        return ['True', Reason.GuestConnected, `guest connected, ${q}`];
    }
  }
  if (info.guestDeparture === 'migrating-out') {
    return info.socketConnected
      ? ['False', Reason.MigratingOut, 'the guest stopped here with dirty-page logging on: it is being live-migrated away (its source QEMU still holds the socket)']
      : ['False', Reason.MigratingOut, 'the guest left this relay by live migration (the source QEMU closed the socket); waiting for a guest'];
  }
  if (info.socketConnected) return ['False', Reason.WaitingForGuest, 'a VM is connected to the socket, its virtio device is not running (booting, stopped or waiting for an incoming migration)'];
  return ['False', Reason.WaitingForGuest, 'no guest on the socket yet'];
}

/** A lost VF as the relay's state keeps it. */
export interface VfLoss {
  cause: string;
  since: string;
  lastError?: string;
}

/**
 * Sets VFAttached, SocketReady and GuestConnected from the engine's view of an attached relay.
 * vf: how status names the VF; lost: the VF loss being worked on, if any; releasedSince: when
 * port control took the VF away, if it did. Returns the
 * GuestConnected condition as it was before (for logging a change).
 */
export function observeEngine(c: Condition[], info: RelayInfo, vf: string, lost: VfLoss | undefined, now: string, releasedSince?: string): Condition | undefined {
  if (info.vfAttached === false && releasedSince !== undefined) {
    setCondition(c, 'VFAttached', 'False', Reason.NoVF, `no VF since ${releasedSince} (removed by port control); the guest stays connected, its packets are dropped until a VF is added`, now);
  } else if (info.vfAttached === false && lost) {
    const last = lost.lastError ? `; last attempt: ${lost.lastError}` : '';
    setCondition(c, 'VFAttached', 'False', Reason.VFRemoved, `VF ${vf} is gone (${lost.cause}) since ${lost.since}; the guest stays connected, its packets are dropped until the VF is back (re-attaching with backoff${last})`, now);
  } else if (info.linkUp) {
    setCondition(c, 'VFAttached', 'True', Reason.Attached, `VF ${vf} attached as DPDK port ${info.portId}`, now);
  } else {
    setCondition(c, 'VFAttached', 'False', Reason.LinkDown, `VF ${vf} is attached but its link is down`, now);
  }
  if (info.mode === 'server') {
    setCondition(c, 'SocketReady', 'True', Reason.Listening, `listening on ${info.socketPath}`, now);
  } else {
    setCondition(c, 'SocketReady', 'True', Reason.Connecting, `connecting to ${info.socketPath} (the VM side creates it); reconnects when it goes away`, now);
  }
  const prev = c.find((x) => x.type === 'GuestConnected');
  const before = prev ? { ...prev } : undefined;
  const [status, reason, message] = guestCondition(info);
  setCondition(c, 'GuestConnected', status, reason, message, now);
  return before;
}

/** An attach that failed with `reason`: the VF's condition or, for socket reasons, the socket's. */
export function attachFailed(c: Condition[], reason: Reason, message: string, now: string): void {
  setCondition(c, isSocketReason(reason) ? 'SocketReady' : 'VFAttached', 'False', reason, message, now);
  setCondition(c, 'GuestConnected', 'False', Reason.NotAttached, 'relay is not attached', now);
}

/** The engine no longer holds the relay. */
export function detached(c: Condition[], now: string): void {
  setCondition(c, 'VFAttached', 'False', Reason.Detached, 'relay detached from the engine', now);
  setCondition(c, 'SocketReady', 'False', Reason.Detached, 'socket closed', now);
  setCondition(c, 'GuestConnected', 'False', Reason.Detached, 'relay detached', now);
}

