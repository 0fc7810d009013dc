// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
// take the Lease when it is free or its holder stopped renewing, renew it while leading, give
// it up on shutdown. Expiry is judged by the local clock from when this process last saw the
// Lease change, so clock skew between replicas does not matter.
import { EventEmitter } from 'node:events';
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { httpStatus, kubeErrorMessage } from './client.js';

export interface LeaderElectorOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  logger: Logger;
  /** How long a Lease holds without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** How often the leader renews (default 2 s). */
  renewIntervalMs?: number;
  /** The leader gives up when it could not renew for this long (default 10 s, < lease duration). */
  renewDeadlineMs?: number;
  /** How often a candidate tries to take the Lease (default 2 s). */
  retryIntervalMs?: number;
}

/** Events: 'started' (now leading), 'stopped' (no longer leading), 'leader' (holder seen, identity). */
export class LeaderElector extends EventEmitter {
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly deadlineMs: number;
  private readonly retryMs: number;
  private leading = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> = Promise.resolve();
  private lastRenew = 0;
  /** The Lease record as last seen, and when (local clock). */
  private observed: { record: string; at: number } | undefined;
  private holder: string | undefined;
  private failing = false;

  constructor(private readonly o: LeaderElectorOptions) {
    super();
    this.log = o.logger.child({ lease: `${o.namespace}/${o.name}`, identity: o.identity });
    this.leaseMs = o.leaseDurationMs ?? 15_000;
    this.renewMs = o.renewIntervalMs ?? 2_000;
    this.deadlineMs = Math.min(o.renewDeadlineMs ?? 10_000, this.leaseMs - this.renewMs);
    this.retryMs = o.retryIntervalMs ?? 2_000;
    if (this.deadlineMs <= 0) throw new Error('leader election: lease duration must be longer than the renew interval');
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get identity(): string {
    return this.o.identity;
  }

  /** Holder of the Lease as last seen (undefined when free or not seen yet). */
  get currentLeader(): string | undefined {
    return this.holder;
  }

  /** Starts campaigning; resolves after the first attempt. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.tick = this.step();
    await this.tick;
  }

  /** Stops campaigning; a leader first says 'stopped', then frees the Lease for the others. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    await this.tick;
    this.setLeading(false);
    // also when a last attempt took the Lease after stop() began: release checks the holder
    if (opts.release ?? true) await this.release();
  }

  private schedule(): void {
    if (!this.running) return;
    const base = this.leading ? this.renewMs : this.retryMs;
    // jitter keeps candidates from hitting the Lease in step
    const delay = this.leading ? base : base * (1 + Math.random() * 0.2);
    this.timer = setTimeout(() => {
      this.tick = this.step();
    }, delay);
  }

  private async step(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (this.failing) this.log.info('lease reachable again');
      this.failing = false;
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading && this.running) this.setLeading(true);
      } else if (this.leading) {
        this.log.warn('lost the lease to another holder');
        this.setLeading(false);
      }
    } catch (err) {
      // warn once per outage, not every try
      const level = this.failing ? 'debug' : 'warn';
      this.failing = true;
      this.log[level]({ err: kubeErrorMessage(err) }, this.leading ? 'could not renew the lease' : 'could not read or take the lease');
      if (this.leading && Date.now() - this.lastRenew > this.deadlineMs) {
        this.log.error({ renewDeadlineMs: this.deadlineMs }, 'renew deadline passed; stepping down');
        this.setLeading(false);
      }
    }
    this.schedule();
  }

  private setLeading(v: boolean): void {
    if (this.leading === v) return;
    this.leading = v;
    if (v) {
      this.holder = this.o.identity;
      this.log.info('became the leader');
      this.emit('started');
    } else {
      this.log.info('stopped leading');
      this.emit('stopped');
    }
  }

  private spec(prev: V1Lease['spec'] | undefined, now: string): NonNullable<V1Lease['spec']> {
    const mine = prev?.holderIdentity === this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseMs / 1000)),
      // V1MicroTime: client-node passes these through as given
      acquireTime: (mine && prev?.acquireTime ? prev.acquireTime : now) as unknown as Date,
      renewTime: now as unknown as Date,
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (mine || !prev ? 0 : 1),
    };
  }

  /** True when this process holds the Lease after the call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const api = this.o.coordination;
    const { namespace, name } = this.o;
    const now = microTime(new Date());
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      try {
        await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: this.spec(undefined, now) } });
      } catch (e) {
        if (httpStatus(e) === 409) return false; // another replica created it first
        throw e;
      }
      this.observe(this.o.identity, now);
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity || undefined;
    this.observe(holder, String(spec.renewTime ?? ''), spec.leaseDurationSeconds);
    if (holder && holder !== this.o.identity && !this.expired(spec.leaseDurationSeconds)) return false;
    if (holder && holder !== this.o.identity) this.log.info({ previous: holder }, 'lease expired; taking it over');
    try {
      // replace carries metadata.resourceVersion: a 409 means someone else wrote first
      await api.replaceNamespacedLease({ name, namespace, body: { metadata: lease.metadata!, spec: this.spec(spec, now) } });
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
    this.observe(this.o.identity, now);
    return true;
  }

  private observe(holder: string | undefined, renewTime: string, durationSeconds?: number): void {
    const record = `${holder ?? ''}|${renewTime}|${durationSeconds ?? ''}`;
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    if (holder !== this.holder) {
      this.holder = holder;
      if (holder) this.emit('leader', holder);
    }
  }

  private expired(durationSeconds: number | undefined): boolean {
    const ms = (durationSeconds ?? this.leaseMs / 1000) * 1000;
    return !this.observed || this.observed.at + ms < Date.now();
  }

  /** Gives the Lease up so another replica need not wait for it to expire. */
  private async release(): Promise<void> {
    const api = this.o.coordination;
    const { namespace, name } = this.o;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = microTime(new Date());
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: lease.metadata!,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now as unknown as Date, acquireTime: now as unknown as Date },
        },
      });
      this.holder = undefined;
      this.log.info('released the lease');
    } catch (err) {
      this.log.warn({ err: kubeErrorMessage(err) }, 'could not release the lease; it expires on its own');
    }
  }
}

/** RFC 3339 with microseconds, as the apiserver's MicroTime parses it. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
