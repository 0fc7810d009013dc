// The cluster operator's control loops, run only in the elected leader (see operator.ts): one
// set of caches (VirtioRelays, VirtioForwarderNodes, Nodes, the agents' node Leases) feeding two
// controllers with a work queue each: RelayController places relays on nodes whose agent renews
// its Lease, NodeCleanupController marks nodes whose agent stopped renewing it and deletes the
// VirtioForwarderNodes of deleted nodes.
import type { V1Lease, V1Node } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { EventRecorder, ResilientInformer, nodeLeaseInformer, resources, type KubeClients, type VirtioForwarderNode, type VirtioForwarderPolicy, type VirtioRelay, type WorkQueueObserver } from '../kube/index.js';
import { NodeCleanupController, type NodeCleanupOptions } from './node-cleanup.js';
import { RelayController, type RelayControllerOptions, type SchedulerCounters } from './relay-controller.js';
import { AgentLiveness } from './liveness.js';

export { SCHEDULED_VF_ANNOTATION, type SchedulerCounters } from './relay-controller.js';
/** Events' source and the field manager of the operator's writes. */
export const COMPONENT = 'vio4wd-operator';

export interface SchedulerOptions extends Pick<RelayControllerOptions, 'retryPendingMs'>, Pick<NodeCleanupOptions, 'orphanGraceMs'> {
  clients: KubeClients;
  /** Namespace of the agents' node Leases (the release namespace; default "default"). */
  leaseNamespace?: string;
  /** An agent whose Lease's renewTime has not moved for this long is not reporting (default: the
   *  Lease's leaseDurationSeconds, 40 s with the agent's defaults). */
  staleAfterMs?: number;
  logger: Logger;
  /** Shown as the source host of events (the operator replica's identity). */
  identity: string;
  /** Keys each controller processes at the same time. */
  concurrency?: number;
  /** Metrics of each controller's work queue. */
  queueObservers?: (name: 'relays' | 'node-cleanup') => WorkQueueObserver;
}

export class Scheduler {
  private readonly log: Logger;
  private readonly relays: ResilientInformer<VirtioRelay>;
  private readonly vfns: ResilientInformer<VirtioForwarderNode>;
  private readonly nodes: ResilientInformer<V1Node>;
  private readonly leases: ResilientInformer<V1Lease>;
  private readonly policies: ResilientInformer<VirtioForwarderPolicy>;
  private readonly liveness: AgentLiveness;
  private readonly placement: RelayController;
  private readonly cleanup: NodeCleanupController;
  private stopped = false;
  readonly counters: SchedulerCounters = { scheduled: 0, failedScheduling: 0, rescheduled: 0, nodeLost: 0, finalizersRemoved: 0, nodesCleanedUp: 0, agentsNotReporting: 0 };

  constructor(o: SchedulerOptions) {
    this.log = o.logger.child({ component: 'operator' });
    const api = resources(o.clients, COMPONENT);
    const events = new EventRecorder(o.clients.core, this.log, COMPONENT, o.identity);
    this.relays = api.relays.informer({
      logger: this.log,
      onAdd: (r) => this.placement.relayChanged(r),
      onUpdate: (r) => this.placement.relayChanged(r),
      onDelete: (r) => this.placement.relayDeleted(r),
    });
    this.vfns = api.nodes.informer({
      logger: this.log,
      onAdd: (n) => this.agentChanged(n),
      onUpdate: (n) => this.agentChanged(n),
      onDelete: (n) => this.placement.agentDeleted(n),
    });
    // a new or changed pool policy may make room for a pending relay
    this.policies = api.policies.informer({
      logger: this.log,
      onAdd: () => this.placement.enqueuePending(),
      onUpdate: () => this.placement.enqueuePending(),
      onDelete: () => this.placement.enqueuePending(),
    });
    this.liveness = new AgentLiveness(o.staleAfterMs);
    const leaseNamespace = o.leaseNamespace ?? 'default';
    const leaseSeen = (l: V1Lease): void => {
      // a renewal after a silence (or a new Lease): room for relays again, and a new deadline
      if (this.liveness.observe(l) && l.metadata?.name) {
        this.placement.enqueuePending();
        this.cleanup.agentChanged(l.metadata.name);
      }
    };
    this.leases = nodeLeaseInformer(o.clients, leaseNamespace, {
      logger: this.log,
      onAdd: leaseSeen,
      onUpdate: leaseSeen,
      onDelete: (l) => l.metadata?.name && this.liveness.forget(l.metadata.name),
    });
    this.nodes = new ResilientInformer<V1Node>(o.clients.kc, {
      path: '/api/v1/nodes',
      list: () => o.clients.core.listNode(),
      logger: this.log,
      onAdd: (n) => {
        if (n.metadata?.name) this.cleanup.nodeAdded(n.metadata.name);
        this.placement.nodeChanged(n);
      },
      onUpdate: (n) => this.placement.nodeChanged(n),
      onDelete: (n) => this.nodeDeleted(n.metadata?.name),
    });
    const shared = {
      api,
      logger: this.log,
      relays: this.relays,
      vfns: this.vfns,
      nodes: this.nodes,
      policies: this.policies,
      counters: this.counters,
      liveness: this.liveness,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    };
    this.placement = new RelayController({
      ...shared,
      events,
      ...(o.retryPendingMs !== undefined ? { retryPendingMs: o.retryPendingMs } : {}),
      ...(o.queueObservers ? { queueObserver: o.queueObservers('relays') } : {}),
    });
    this.cleanup = new NodeCleanupController({
      ...shared,
      leaseNamespace,
      ...(o.orphanGraceMs !== undefined ? { orphanGraceMs: o.orphanGraceMs } : {}),
      ...(o.queueObservers ? { queueObserver: o.queueObservers('node-cleanup') } : {}),
    });
  }

  /** Starts the watches; resolves when all three caches are filled and the queues run. */
  async start(): Promise<void> {
    await Promise.all([this.relays.start(), this.vfns.start(), this.nodes.start(), this.leases.start(), this.policies.start()]);
    await Promise.all([this.relays.synced(), this.vfns.synced(), this.nodes.synced(), this.leases.synced(), this.policies.synced()]);
    if (this.stopped) return;
    this.placement.start();
    this.cleanup.start();
    this.log.info({ relays: this.relays.list().length, nodes: this.nodes.list().length, agents: this.vfns.list().length }, 'scheduler started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.placement.stop();
    this.cleanup.stop();
    await Promise.all([this.relays.stop(), this.vfns.stop(), this.nodes.stop(), this.leases.stop(), this.policies.stop()]);
  }

  /** Resolves when neither controller has a key queued or being worked on (tests). */
  async idle(): Promise<void> {
    do await Promise.all([this.placement.queue.idle(), this.cleanup.queue.idle()]);
    while (this.placement.queue.length > 0 || this.cleanup.queue.length > 0);
  }

  /** Relays waiting for a node. */
  pendingCount(): number {
    return this.placement.pendingCount();
  }

  /** Nodes (with a VirtioForwarderNode) whose agent has not renewed its node Lease in time. */
  notReportingCount(): number {
    return this.vfns.list().filter((v) => v.metadata.name && this.nodes.get(v.metadata.name) && this.liveness.stale(v.metadata.name)).length;
  }

  private agentChanged(vfn: VirtioForwarderNode): void {
    const name = vfn.metadata.name;
    if (!name) return;
    this.placement.agentChanged(vfn);
    this.cleanup.agentChanged(name);
  }

  private nodeDeleted(name: string | undefined): void {
    if (!name) return;
    this.cleanup.nodeDeleted(name);
    this.placement.nodeDeleted(name);
  }
}
