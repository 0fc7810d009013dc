// Where one relay is in its life, as one explicit type rather than a set of flags: the manager
// moves an entry from phase to phase, and the status phase users see is derived from it.
import type { Reason } from './reasons.js';
import type { VfLoss } from './conditions.js';
import type { RelayPhase } from './types.js';

/** What was given to the engine: the config (configKey) and the worker CPUs (cpusKey). */
export interface Applied {
  appliedKey: string;
  appliedCpus: string;
}

export type RelayState =
  /** known, nothing tried yet */
  | { phase: 'pending' }
  /** not in the engine: an attach is on its way (or the relay was just detached for a new one) */
  | { phase: 'configuring' }
  /** in the engine, forwarding as far as the engine is concerned */
  | ({ phase: 'attached' } & Applied)
  /** in the engine without its VF (unplugged, or detached); the guest stays connected while
   *  the VF is re-attached with backoff */
  | ({ phase: 'vf-lost'; lost: VfLoss } & Applied)
  /** in the engine without a VF because port control REMOVEd it; the socket and the guest stay
   *  and no VF is re-attached until one is given (releaseVf / replaceVf) */
  | ({ phase: 'vf-released'; since: string } & Applied)
  /** the attach failed; retried with backoff unless permanent (the spec itself is wrong) */
  | { phase: 'failed'; reason: Reason; permanent: boolean }
  /** being removed; attached: the engine still holds it */
  | { phase: 'removing'; attached: boolean };

export type StatePhase = RelayState['phase'];

/** The engine holds the relay (with or without its VF). */
export function isAttached(s: RelayState): boolean {
  return holdsConfig(s) || (s.phase === 'removing' && s.attached);
}

/** The engine holds the relay with a config (appliedKey) that may be kept. */
export function holdsConfig(s: RelayState): s is Extract<RelayState, Applied> {
  return s.phase === 'attached' || s.phase === 'vf-lost' || s.phase === 'vf-released';
}

/** The state after the engine let go of the relay (detach done). */
export function afterDetach(s: RelayState): RelayState {
  if (s.phase === 'removing') return { phase: 'removing', attached: false };
  if (s.phase === 'vf-lost') return { phase: 'failed', reason: 'VFRemoved', permanent: false };
  if (s.phase === 'failed') return s;
  return { phase: 'configuring' };
}

/**
 * The phase status shows: Terminating while removed, Failed after a failed attach or a lost VF,
 * Ready when the conditions say so, Pending while attached but not ready (e.g. link down),
 * Configuring before the engine holds it.
 */
export function statusPhase(s: RelayState, ready: boolean): RelayPhase {
  if (s.phase === 'removing') return 'Terminating';
  if (s.phase === 'failed' || s.phase === 'vf-lost') return 'Failed';
  if (ready) return 'Ready';
  return isAttached(s) ? 'Pending' : 'Configuring';
}
