// The bookkeeping under RelayManager: the relays by name and id, the serial chain each one is
// reconciled on (with backoff), and the 'change' events that tell other roles about a status.
// RelayManager (manager.ts) adds what reconciling means.
import { EventEmitter } from 'node:events';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { deriveReady } from './conditions.js';
import { isAttached, statusPhase, type RelayState } from './state.js';
import { RelayTable } from './table.js';
import { WorkQueue } from '../util/workqueue.js';
import type { RelaySpec, RelayStatus, RelayView } from './types.js';

export interface Entry {
  spec: RelaySpec;
  id: number;
  socketPath: string;
  status: RelayStatus;
  state: RelayState;
  /** Attempts of attaching the relay / re-attaching its lost VF, for the backoff. */
  attempt: number;
  vfAttempt: number;
  chain: Promise<void>;
  /** JSON of the status last emitted. */
  emitted?: string;
  /** The guest's dirty-page logging is on: a live migration is in progress. */
  dirtyLog?: boolean;
  /** A deferred observe() (see MIGRATION_QUIET_MS). */
  observeTimer?: NodeJS.Timeout;
  /** The MAC a pod's network attachment (vio4wd-cni) programmed on the VF; wins over spec.mac. */
  attachedMac?: string;
  /** The VF's own MAC as the engine reported it at attach. */
  vfMac?: string;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export abstract class RelayStore extends EventEmitter implements RelayView {
  protected readonly relays: RelayTable<Entry>;
  /** The retries: a relay's name is added after its backoff; taking it schedules the relay's
   *  next reconcile step on its chain (which keeps the steps of one relay in order). */
  private readonly retries: WorkQueue;

  constructor(
    protected readonly log: Logger,
    maxRelays: number,
    /** backoff of attaching a relay, and of re-attaching a lost VF */
    private readonly retry: Backoff,
    private readonly vfRetry: Backoff,
  ) {
    super();
    this.relays = new RelayTable(maxRelays);
    this.retries = new WorkQueue(
      async (name) => {
        const entry = this.relays.get(name);
        if (entry) this.schedule(entry);
      },
      { concurrency: maxRelays, logger: log },
    );
  }

  /** One reconcile step of a relay; runs on the relay's chain. */
  protected abstract reconcile(entry: Entry): Promise<void>;

  list(): RelayStatus[] {
    return this.relays.values().map((e) => structuredClone(e.status));
  }

  get(name: string): RelayStatus | undefined {
    const e = this.relays.get(name);
    return e ? structuredClone(e.status) : undefined;
  }

  getById(id: number): RelayStatus | undefined {
    const e = this.relays.getById(id);
    return e ? structuredClone(e.status) : undefined;
  }

  spec(name: string): RelaySpec | undefined {
    const e = this.relays.get(name);
    return e ? structuredClone(e.spec) : undefined;
  }

  /** Resolves once every queued reconcile step has run (tests and orderly shutdown). */
  async settled(): Promise<void> {
    let chains: Promise<void>[];
    do {
      chains = this.relays.values().map((e) => e.chain);
      await Promise.all(chains);
    } while (this.relays.values().some((e, i) => e.chain !== chains[i]));
  }

  protected schedule(entry: Entry): void {
    this.cancelRetry(entry);
    entry.chain = entry.chain
      .then(() => this.reconcile(entry))
      .catch((err: unknown) => this.log.error({ relay: entry.spec.name, err: errorMessage(err) }, 'reconcile crashed'));
  }

  /** Schedules the next attempt with exponential backoff: of attaching the relay, or (vf) of
   *  re-attaching its lost VF, each with its own policy and attempt count. */
  protected retryLater(entry: Entry, vf = false): void {
    const policy = vf ? this.vfRetry : this.retry;
    const attempt = vf ? entry.vfAttempt++ : entry.attempt++;
    const delay = Math.min(policy.maxMs, policy.initialMs * 2 ** attempt);
    this.retries.forget(entry.spec.name);
    this.retries.addAfter(entry.spec.name, delay);
  }

  /** Drops a pending retry of the relay (it is being scheduled, removed or given up). */
  protected cancelRetry(entry: Entry): void {
    this.retries.forget(entry.spec.name);
  }

  /** No retry runs after this (the manager is closing). */
  protected stopRetries(): void {
    this.retries.stop();
  }

  /** Moves a relay to its next state; a relay being removed stays so (an attach that was on its
   *  way only tells whether the engine now holds it). */
  protected setState(entry: Entry, next: RelayState): void {
    entry.state = entry.state.phase === 'removing' ? { phase: 'removing', attached: isAttached(next) } : next;
  }

  protected updateDerived(entry: Entry): void {
    const ready = deriveReady(entry.status.conditions, new Date().toISOString());
    entry.status.healthy = ready && isAttached(entry.state);
    entry.status.phase = statusPhase(entry.state, ready);
    this.emitChange(entry);
  }

  /** Emits 'change' when the status differs from what was last emitted. */
  protected emitChange(entry: Entry): void {
    if (this.relays.get(entry.spec.name) !== entry) return;
    const snapshot = JSON.stringify(entry.status);
    if (snapshot === entry.emitted) return;
    entry.emitted = snapshot;
    this.emit('change', structuredClone(entry.status));
  }
}
