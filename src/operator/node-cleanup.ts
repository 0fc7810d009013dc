// The operator's second controller, over nodes: marks the VirtioForwarderNode of a node whose
// agent stopped renewing its Lease (every condition Unknown, reason AgentNotReporting, as the
// node lifecycle controller does for a kubelet), and deletes the VirtioForwarderNode of a node
// that no longer exists (its agent went with it). Keys are node names.
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import {
  ConflictError,
  NotFoundError,
  WorkQueue,
  agentNotReporting,
  markedNotReporting,
  type Cache,
  type HandlerResult,
  type VirtioForwarderNode,
  type VirtioForwarderNodeClient,
  type WorkQueueObserver,
} from '../kube/index.js';
import type { SchedulerCounters } from './relay-controller.js';
import { AgentLiveness } from './liveness.js';

export interface NodeCleanupOptions {
  /** Metrics of the work queue. */
  queueObserver?: WorkQueueObserver;
  api: { nodes: Pick<VirtioForwarderNodeClient, 'delete' | 'patchStatus'> };
  vfns: Cache<VirtioForwarderNode>;
  nodes: Cache<V1Node>;
  logger: Logger;
  counters: SchedulerCounters;
  concurrency?: number;
  /** A VirtioForwarderNode whose Node is missing, and whose deletion this process did not see,
   *  is deleted once it is this old (default 60 s): an agent may publish just before its Node
   *  reaches our cache. */
  orphanGraceMs?: number;
  /** Which agents renew their node Lease (shared with RelayController). */
  liveness?: AgentLiveness;
  /** Namespace of the agents' Leases (for messages). */
  leaseNamespace?: string;
}

export class NodeCleanupController {
  readonly queue: WorkQueue;
  private readonly liveness: AgentLiveness;
  /** Nodes this process saw deleted: their VirtioForwarderNodes go at once. */
  private readonly deletedNodes = new Set<string>();
  /** node -> the Lease renewTime it was marked AgentNotReporting for: once per silence, so an
   *  agent that still writes its status (but cannot renew its Lease) is not fought over */
  private readonly marked = new Map<string, number | undefined>();
  private ready = false;
  private stopped = false;

  constructor(private readonly o: NodeCleanupOptions) {
    this.liveness = o.liveness ?? new AgentLiveness();
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

  /** Its VirtioForwarderNode changed, or its Lease appeared or was renewed after a silence. */
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
    if (!vfn) return;
    if (this.o.nodes.get(name)) return this.checkLease(name, vfn);
    if (!this.deletedNodes.has(name)) {
      const created = Date.parse(String(vfn.metadata.creationTimestamp ?? ''));
      const wait = (Number.isNaN(created) ? 0 : created) + (this.o.orphanGraceMs ?? 60_000) - Date.now();
      if (wait > 0) return { requeueAfterMs: wait };
    }
    if (!(await this.o.api.nodes.delete(name, vfn.metadata.uid))) return;
    this.o.counters.nodesCleanedUp++;
    this.o.logger.info({ node: name }, 'deleted the VirtioForwarderNode of a node that no longer exists');
  }

  /** Looks again when the Lease would run out; marks the node when it has. */
  private async checkLease(name: string, vfn: VirtioForwarderNode): Promise<HandlerResult> {
    const remaining = this.liveness.remainingMs(name);
    if (remaining === undefined) return; // no Lease (yet): nothing to judge
    if (remaining > 0) {
      this.marked.delete(name);
      return { requeueAfterMs: remaining + 50 };
    }
    const renewedAt = this.liveness.renewedAt(name);
    if (this.marked.has(name) && this.marked.get(name) === renewedAt) return;
    if (markedNotReporting(vfn.status?.conditions)) {
      this.marked.set(name, renewedAt);
      return;
    }
    const lease = `${this.o.leaseNamespace ? `${this.o.leaseNamespace}/` : ''}${name}`;
    const last = renewedAt ? new Date(renewedAt).toISOString() : 'never';
    const message = `the vio4wd agent stopped renewing its Lease ${lease} (last renewed ${last}): what this status says may no longer hold`;
    try {
      await this.o.api.nodes.patchStatus(name, { conditions: agentNotReporting(vfn.status?.conditions, message, new Date()) }, { ...(vfn.metadata.resourceVersion ? { resourceVersion: vfn.metadata.resourceVersion } : {}) });
    } catch (err) {
      if (err instanceof NotFoundError) return;
      if (err instanceof ConflictError) return { requeueAfterMs: 500 }; // the agent wrote meanwhile: look again
      throw err;
    }
    this.marked.set(name, renewedAt);
    this.o.counters.agentsNotReporting++;
    this.o.logger.warn({ node: name, lastRenewed: last }, 'agent not reporting: its node Lease was not renewed in time; conditions set Unknown');
  }
}
