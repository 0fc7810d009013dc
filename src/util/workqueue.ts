// A keyed work queue with per-key exponential backoff, as controllers use: a key is queued at
// most once, is never processed by two workers at a time, and one failing key never blocks the
// others. Shared by the Kubernetes controllers (src/kube re-exports it) and RelayManager's
// retries (src/relay/store.ts).
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';

export interface WorkQueueOptions {
  /** Keys processed at the same time. */
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  logger?: Logger;
  /** Told about adds, waits, work and retries (metrics; see ./workqueue-metrics.ts). */
  observer?: WorkQueueObserver;
}

/** What a work queue reports, as client-go's workqueue metrics provider. Seconds throughout. */
export interface WorkQueueObserver {
  /** A key was queued (not counted when it was queued already). */
  added(): void;
  /** Keys waiting now (queued, not being processed). */
  depth(n: number): void;
  /** A key waited this long between being queued and being processed. */
  waited(seconds: number): void;
  /** Its handler ran this long. */
  worked(seconds: number): void;
  /** A key failed and will be retried after a backoff. */
  retried(): void;
}

/** What a handler returns: nothing (done) or a delay after which to look again. */
export type HandlerResult = void | { requeueAfterMs: number };

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  /** Keys added again while being processed: run once more afterwards (true: at the front). */
  private readonly dirty = new Map<string, boolean>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** When each queued key was queued (performance.now()), for the wait time. */
  private readonly since = new Map<string, number>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly handler: (key: string) => Promise<HandlerResult>,
    private readonly opts: WorkQueueOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 8;
    this.baseDelayMs = opts.baseDelayMs ?? 50;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
  }

  /** Queues a key (once). first: ahead of the keys waiting (moved there if it waits already),
   *  for a change that finishes work already begun, which a burst of new keys should not delay. */
  add(key: string, o: { first?: boolean } = {}): void {
    if (this.stopped) return;
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.set(key, this.dirty.get(key) === true || o.first === true);
      return;
    }
    if (this.queued.has(key)) {
      if (o.first && this.queue[0] !== key) {
        this.queue.splice(this.queue.indexOf(key), 1);
        this.queue.unshift(key);
      }
      return;
    }
    this.queued.add(key);
    if (o.first) this.queue.unshift(key);
    else this.queue.push(key);
    this.since.set(key, performance.now());
    this.opts.observer?.added();
    this.opts.observer?.depth(this.queue.length);
    this.pump();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (this.queued.has(key) || this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, t);
  }

  /** Drops a key's pending delayed add and its place in the queue (a run in progress finishes). */
  forget(key: string): void {
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t);
      this.timers.delete(key);
    }
    this.dirty.delete(key);
    if (!this.queued.delete(key)) return;
    this.queue.splice(this.queue.indexOf(key), 1);
    this.since.delete(key);
    this.opts.observer?.depth(this.queue.length);
    this.pump();
  }

  /** Backoff for a key that failed n times in a row. */
  delayFor(key: string): number {
    const n = this.failures.get(key) ?? 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
  }

  get length(): number {
    return this.queue.length + this.running;
  }

  /** Resolves when nothing is queued or running (timers may still be pending). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.since.clear();
    this.opts.observer?.depth(0);
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      const at = this.since.get(key);
      this.since.delete(key);
      if (this.opts.observer) {
        if (at !== undefined) this.opts.observer.waited((performance.now() - at) / 1000);
        this.opts.observer.depth(this.queue.length);
      }
      this.active.add(key);
      this.running++;
      void this.process(key);
    }
    if (this.queue.length === 0 && this.running === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  private async process(key: string): Promise<void> {
    let retryAfter: number | undefined;
    const t0 = performance.now();
    try {
      const r = await this.handler(key);
      this.failures.delete(key);
      if (r && r.requeueAfterMs >= 0) retryAfter = r.requeueAfterMs;
    } catch (err) {
      retryAfter = this.delayFor(key);
      this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
      this.opts.observer?.retried();
      this.opts.logger?.warn({ key, err: errorMessage(err), retryInMs: retryAfter }, 'reconcile failed; will retry');
    } finally {
      this.opts.observer?.worked((performance.now() - t0) / 1000);
      this.active.delete(key);
      this.running--;
    }
    const again = this.dirty.get(key);
    if (again !== undefined) {
      this.dirty.delete(key);
      this.add(key, { first: again });
    } else if (retryAfter !== undefined) this.addAfter(key, retryAfter);
    this.pump();
  }
}
