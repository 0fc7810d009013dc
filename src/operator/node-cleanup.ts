// The operator's second controller: deletes the VirtioForwarderNode of a node that no longer
// exists (its agent went with it). Keys are node names.
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { WorkQueue, type Cache, type HandlerResult, type VirtioForwarderNode, type VirtioForwarderNodeClient, type WorkQueueObserver } from '../kube/index.js';
import type { SchedulerCounters } from './relay-controller.js';

export interface NodeCleanupOptions {
  /** Metrics of the work queue. */
  queueObserver?: WorkQueueObserver;
  api: { nodes: Pick<VirtioForwarderNodeClient, 'delete'> };
  vfns: Cache<VirtioForwarderNode>;
  nodes: Cache<V1Node>;
  logger: Logger;
  counters: SchedulerCounters;
  concurrency?: number;
  /** A VirtioForwarderNode whose Node is missing, and whose deletion this process did not see,
   *  is deleted once it is this old (default 60 s): an agent may publish just before its Node
   *  reaches our cache. */
  orphanGraceMs?: number;
}

export class NodeCleanupController {
  readonly queue: WorkQueue;
  /** Nodes this process saw deleted: their VirtioForwarderNodes go at once. */
  private readonly deletedNodes = new Set<string>();
  private ready = false;
  private stopped = false;

  constructor(private readonly o: NodeCleanupOptions) {
    this.queue = new WorkQueue((k) => this.reconcile(k), {
      concurrency: o.concurrency ?? 8,
      logger: o.logger,
      maxDelayMs: 30_000,
      ...(o.queueObserver ? { observer: o.queueObserver } : {}),
    });
  }

  /** Looks at every VirtioForwarderNode once (the caches are synced). */
  start(): void {
    if (this.stopped) return;
    this.ready = true;
    for (const n of this.o.vfns.list()) this.queue.add(n.metadata.name ?? '');
  }

  stop(): void {
    this.stopped = true;
    this.ready = false;
    this.queue.stop();
  }

  agentChanged(name: string): void {
    if (this.ready) this.queue.add(name);
  }

  nodeAdded(name: string): void {
    this.deletedNodes.delete(name);
  }

  nodeDeleted(name: string): void {
    this.deletedNodes.add(name);
    if (this.ready) this.queue.add(name);
  }

  private async reconcile(name: string): Promise<HandlerResult> {
    if (this.stopped) return;
    const vfn = this.o.vfns.get(name);
    if (!vfn || this.o.nodes.get(name)) return;
    if (!this.deletedNodes.has(name)) {
      const created = Date.parse(String(vfn.metadata.creationTimestamp ?? ''));
      const wait = (Number.isNaN(created) ? 0 : created) + (this.o.orphanGraceMs ?? 60_000) - Date.now();
      if (wait > 0) return { requeueAfterMs: wait };
    }
    if (!(await this.o.api.nodes.delete(name, vfn.metadata.uid))) return;
    this.o.counters.nodesCleanedUp++;
    this.o.logger.info({ node: name }, 'deleted the VirtioForwarderNode of a node that no longer exists');
  }
}
