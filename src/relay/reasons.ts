// The reasons of a relay's conditions, as constants: RelayManager writes them, and whoever reads
// a condition (the agent's migration metric, ZeroMQ port control, the node reconciler's events,
// the device plugin) compares against the same constants instead of retyping the words.
import type { ErrorCode } from '../util/errors.js';

export const Reason = {
  /** not reconciled yet */
  Pending: 'Pending',
  // VFAttached
  Attached: 'Attached',
  LinkDown: 'LinkDown',
  /** the VF was unplugged or detached; the vhost-user side stays */
  VFRemoved: 'VFRemoved',
  NotAttached: 'NotAttached',
  /** port control REMOVE took the VF away; the socket and the guest stay until a VF is added */
  NoVF: 'NoVF',
  Detached: 'Detached',
  VFNotFound: 'VFNotFound',
  VFInUse: 'VFInUse',
  OutOfHugepages: 'OutOfHugepages',
  InvalidSpec: 'InvalidSpec',
  EngineError: 'EngineError',
  EngineNotStarted: 'EngineNotStarted',
  /** the relay's pool (VirtioForwarderPolicy) does not allow this VF or virtual device */
  PolicyDenied: 'PolicyDenied',
  // SocketReady
  Listening: 'Listening',
  Connecting: 'Connecting',
  SocketDirMissing: 'SocketDirMissing',
  AlreadyInUse: 'AlreadyInUse',
  // GuestConnected
  GuestConnected: 'GuestConnected',
  WaitingForGuest: 'WaitingForGuest',
  /** a guest that arrived by live migration */
  MigratedIn: 'MigratedIn',
  /** dirty-page logging on: a live migration is running */
  MigrationInProgress: 'MigrationInProgress',
  /** the guest left by live migration */
  MigratingOut: 'MigratingOut',
  // Ready
  RelayReady: 'RelayReady',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** The reason of a failed attach, by the error's code (what the engine or resolver threw). */
const REASON_BY_CODE: Partial<Record<string, Reason>> = {
  ENODEV: Reason.VFNotFound,
  ENOENT: Reason.SocketDirMissing,
  EEXIST: Reason.AlreadyInUse,
  ENOMEM: Reason.OutOfHugepages,
  EINVAL: Reason.InvalidSpec,
  ENOTSTARTED: Reason.EngineNotStarted,
  EBUSY: Reason.VFInUse,
  EPERM: Reason.PolicyDenied,
};

export function reasonForCode(code: string | undefined): Reason {
  return (code !== undefined ? REASON_BY_CODE[code] : undefined) ?? Reason.EngineError;
}

/** The errno-style code a failed attach is reported with (ZeroMQ port control's replies). */
const CODE_BY_REASON: Partial<Record<string, ErrorCode>> = {
  [Reason.VFNotFound]: 'ENODEV',
  [Reason.OutOfHugepages]: 'ENOMEM',
  [Reason.AlreadyInUse]: 'EEXIST',
};

export function codeForReason(reason: string | undefined): ErrorCode {
  return (reason !== undefined ? CODE_BY_REASON[reason] : undefined) ?? 'EIO';
}

/** Codes of attach errors that retrying the same spec will not cure. */
export function isPermanent(code: string | undefined): boolean {
  return code === 'EINVAL' || code === 'EPERM';
}

/** A failure reason that belongs to the socket rather than the VF. */
export function isSocketReason(reason: Reason): boolean {
  return reason === Reason.SocketDirMissing || reason === Reason.AlreadyInUse;
}
