// The bookkeeping under RelayManager: the relays by name and id, the serial chain each one is
// reconciled on (with backoff), and the 'change' events that tell other roles about a status.
// RelayManager (manager.ts) adds what reconciling means.
import { EventEmitter } from 'node:events';
import type { Logger } from '../util/log.js';
import { VioError, errorMessage } from '../util/errors.js';
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
  /** A pod attachment's queue pairs and MTU (a DRA claim's): they win over the spec's. */
  attachConfig?: AttachConfig;
}

/** What a pod attachment may set on the relay it holds, beside the VF's MAC. */
export interface AttachConfig {
  /** queue pairs the relay serves and offers the guest */
  queues?: number;
  /** the VF's MTU */
  mtu?: number;
}

/** The spec the engine gets: the relay's own, with its pod attachment's queues and MTU. */
export function effectiveSpec(entry: Entry): RelaySpec {
  const o = entry.attachConfig;
  if (!o) return entry.spec;
  return { ...entry.spec, ...(o.queues !== undefined ? { queues: o.queues, guestQueues: o.queues } : {}), ...(o.mtu !== undefined ? { mtu: o.mtu } : {}) };
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

  /** The specs of the relays, as applied (what another agent needs to run them). */
  specs(): RelaySpec[] {
    return this.relays.values().map((e) => structuredClone(e.spec));
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

  /**
   * Gives the relay its pod attachment's queue pairs and MTU (undefined: back to its own spec)
   * and resolves once the relay is attached again with them; rejects with the attach failure.
   * The status keeps the relay's own values: they are what the relay offers a pool.
   */
  async setAttachConfig(name: string, o: AttachConfig | undefined): Promise<RelayStatus> {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    const next = o && (o.queues !== undefined || o.mtu !== undefined) ? { ...o } : undefined;
    if (JSON.stringify(next) !== JSON.stringify(entry.attachConfig)) {
      entry.attachConfig = next;
      entry.attempt = 0;
      this.schedule(entry);
    }
    return this.attached(name, 20_000);
  }

  /**
   * Resolves when the relay's queued steps have run and it is healthy (VF attached, socket
   * ready); rejects at once when its attach failed (with the reason), or after timeoutMs.
   */
  async attached(name: string, timeoutMs: number): Promise<RelayStatus> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const entry = this.relays.get(name);
      if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `relay "${name}" is gone`);
      await entry.chain;
      const why = (): string => entry.status.conditions.filter((x) => x.status !== 'True' && x.type !== 'GuestConnected' && x.type !== 'Ready').map((x) => `${x.type} ${x.reason}: ${x.message}`).join('; ');
      if (entry.state.phase === 'failed') throw new VioError('EIO', `relay "${name}" did not attach: ${why() || entry.status.phase}`);
      if (entry.status.healthy) return structuredClone(entry.status);
      if (Date.now() > end) throw new VioError('ETIMEDOUT', `relay "${name}" is not ready after ${timeoutMs} ms: ${why() || entry.status.phase}`);
      await new Promise((r) => setTimeout(r, 100));
    }
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
