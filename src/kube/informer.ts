// A list-watch cache of Kubernetes objects that survives apiserver restarts.
import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type KubernetesListObject } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { kubeErrorMessage } from './client.js';

/** What a controller reads from an informer: the cached objects (a test gives a Map-backed one). */
export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): T[];
}

export interface InformerOptions<T extends KubernetesObject> {
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  logger: Logger;
  onAdd?: (obj: T) => void;
  onUpdate?: (obj: T) => void;
  onDelete?: (obj: T) => void;
}

/**
 * A list-watch cache that resumes from its last resourceVersion after a dropped watch, relists
 * after 410 Gone, and restarts with backoff when the apiserver is unreachable (client-node's
 * ListWatch stops on such errors).
 */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private stopped = false;
  private backoffMs = 250;
  private timer: NodeJS.Timeout | undefined;
  private syncedOnce = false;
  private readonly syncWaiters: (() => void)[] = [];

  constructor(
    kc: KubeConfig,
    private readonly opts: InformerOptions<T>,
  ) {
    // the cache is synced once a list has succeeded and its items are in: ListWatch adds them
    // right after the list resolves, so mark it on the next turn of the event loop (the watch
    // that follows may still be starting, or failing while the apiserver initializes)
    const list = async (): Promise<KubernetesListObject<T>> => {
      const l = await opts.list();
      setImmediate(() => this.markSynced());
      return l;
    };
    this.lw = new ListWatch<T>(opts.path, new Watch(kc), list, false, opts.labelSelector, opts.fieldSelector);
    if (opts.onAdd) this.lw.on('add', opts.onAdd);
    if (opts.onUpdate) this.lw.on('update', opts.onUpdate);
    if (opts.onDelete) this.lw.on('delete', opts.onDelete);
    this.lw.on('error', (err?: unknown) => this.restartLater(err));
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    this.lw.start().then(
      () => {
        if (this.lw.latestResourceVersion()) this.backoffMs = 250;
      },
      (e: unknown) => this.restartLater(e),
    );
    await this.synced();
  }

  /** Resolves after the first successful list. */
  synced(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get hasSynced(): boolean {
    return this.syncedOnce;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): T[] {
    return [...this.lw.list(namespace)];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.lw.stop();
  }

  private markSynced(): void {
    if (this.syncedOnce) return;
    this.syncedOnce = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
    this.opts.logger.warn({ path: this.opts.path, err: kubeErrorMessage(err), retryInMs: delay }, 'watch failed; restarting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.stopped) return;
      this.lw.start().then(
        () => {
          if (this.lw.latestResourceVersion()) this.backoffMs = 250;
        },
        (e: unknown) => this.restartLater(e),
      );
    }, delay);
  }
}
