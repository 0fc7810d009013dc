// Which agents are alive, from their node Leases (src/kube/node-lease.ts): an agent is not
// reporting once its Lease's renewTime has not moved for the Lease's duration (or staleAfterMs).
// Judged by this process's clock from when it saw renewTime change, as leader election does, so
// clock skew between nodes and the operator does not matter.
import type { V1Lease } from '@kubernetes/client-node';

/** Lease duration assumed when a Lease gives none (the agent's default: 4 x 10 s). */
export const DEFAULT_STALE_AFTER_MS = 40_000;

interface Seen {
  /** renewTime in ms (a change is a renewal) */
  renewMs: number;
  /** Date.now() when renewTime last changed */
  seenAt: number;
  staleAfterMs: number;
}

export class AgentLiveness {
  private readonly seen = new Map<string, Seen>();

  /** staleAfterMs: a fixed limit; default each Lease's leaseDurationSeconds. */
  constructor(private readonly staleAfterMs?: number) {}

  /** Records a Lease as seen (added or changed). True when its node was not reporting before
   *  (or unknown) and is now: room for relays again. */
  observe(lease: V1Lease, now = Date.now()): boolean {
    const name = lease.metadata?.name;
    if (!name) return false;
    const t = lease.spec?.renewTime as unknown; // a Date from a list, a string from a watch
    const renewMs = t instanceof Date ? t.getTime() : Date.parse(String(t ?? ''));
    const prev = this.seen.get(name);
    const wasStale = !prev || this.remainingMs(name, now)! <= 0;
    const duration = lease.spec?.leaseDurationSeconds;
    const staleAfterMs = this.staleAfterMs ?? (duration ? duration * 1000 : DEFAULT_STALE_AFTER_MS);
    if (prev && prev.renewMs === renewMs) {
      prev.staleAfterMs = staleAfterMs;
      return false;
    }
    this.seen.set(name, { renewMs: Number.isNaN(renewMs) ? 0 : renewMs, seenAt: now, staleAfterMs });
    return wasStale;
  }

  forget(name: string): void {
    this.seen.delete(name);
  }

  /** ms until the agent counts as not reporting (<= 0: it does); undefined: no Lease seen. */
  remainingMs(name: string, now = Date.now()): number | undefined {
    const s = this.seen.get(name);
    return s ? s.seenAt + s.staleAfterMs - now : undefined;
  }

  /** Not reporting: a Lease seen, and not renewed in time. A node without a Lease is not judged. */
  stale(name: string, now = Date.now()): boolean {
    const r = this.remainingMs(name, now);
    return r !== undefined && r <= 0;
  }

  /** The renewTime (ms) last seen for a node's Lease. */
  renewedAt(name: string): number | undefined {
    return this.seen.get(name)?.renewMs;
  }
}
