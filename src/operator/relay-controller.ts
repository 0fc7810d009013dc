// The operator's first controller: gives VirtioRelays without spec.nodeName a node with a free
// matching VF (placement.ts decides), moves relays off deleted nodes when they asked for it, and
// removes the finalizer of deleted relays that no agent will clean up. Keys are namespace/name.
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import {
  ConflictError,
  EventReason,
  FINALIZER,
  InvalidError,
  NotFoundError,
  WorkQueue,
  objectKey,
  type Cache,
  type EventRecorder,
  type HandlerResult,
  type WorkQueueObserver,
  type RelayPatch,
  type VirtioRelayClient,
  type VirtioForwarderNode,
  type VirtioForwarderPolicy,
  type VirtioRelay,
  type VirtioRelayStatus,
} from '../kube/index.js';
import type { Placement, Unschedulable } from './placement.js';
import { AgentLiveness } from './liveness.js';
import { applyPoolPolicy } from './pool-policy.js';
import { PlacementView, agentRoomKey, nodeOf, nodeRoomKey, type Reservation } from './cluster-view.js';

/** Annotation the operator writes with the VF(s) it counted for a relay (a hint for the agent). */
export const SCHEDULED_VF_ANNOTATION = 'vio4wd.io/scheduled-vf';

export interface SchedulerCounters {
  scheduled: number;
  failedScheduling: number;
  rescheduled: number;
  nodeLost: number;
  finalizersRemoved: number;
  nodesCleanedUp: number;
  agentsNotReporting: number;
}

export interface RelayControllerOptions {
  /** Metrics of the work queue. */
  queueObserver?: WorkQueueObserver;
  api: { relays: Pick<VirtioRelayClient, 'patch' | 'patchStatus'> };
  events: Pick<EventRecorder, 'relay'>;
  relays: Cache<VirtioRelay>;
  vfns: Cache<VirtioForwarderNode>;
  nodes: Cache<V1Node>;
  /** The admin's VirtioForwarderPolicies: a relay goes only where its pool is defined for it. */
  policies: Cache<VirtioForwarderPolicy>;
  logger: Logger;
  counters: SchedulerCounters;
  /** Keys reconciled at the same time (default 32): relays waiting for a node are placed
   *  together in one pass over the cluster, and their patches are this many in flight at most. */
  concurrency?: number;
  /** A relay placed without a status gets phase Scheduled only when its agent has written none
   *  this long after (default 5000 ms): a running agent's own write (Ready) comes first and makes
   *  that write needless. One with a status already (Pending) is told at once. */
  scheduledStatusAfterMs?: number;
  /** Unschedulable relays are retried when nodes change, and at least this often (default 60 s). */
  retryPendingMs?: number;
  /** Which agents renew their node Lease (shared with NodeCleanupController); default one of
   *  its own. A node whose agent does not gets no new relays. */
  liveness?: AgentLiveness;
}

/** A relay waiting in the current placement pass. */
type Placing = { obj: VirtioRelay; key: string; done: (r: Promise<HandlerResult>) => void };

export class RelayController {
  readonly queue: WorkQueue;
  private readonly log: Logger;
  private readonly relays: Cache<VirtioRelay>;
  private readonly nodes: Cache<V1Node>;
  private readonly counters: SchedulerCounters;
  private readonly reservations = new Map<string, Reservation>();
  /** relay key -> last FailedScheduling message recorded: the relays that did not fit, the only
   *  ones a change elsewhere (enqueuePending) has to try again */
  private readonly lastFailure = new Map<string, string>();
  /** node name -> what placement last saw of its agent's report / its Node (agentRoomKey, nodeRoomKey) */
  private readonly agentRoom = new Map<string, string>();
  private readonly nodeRoom = new Map<string, string>();
  /** uid@node of relays already reported NodeLost */
  private readonly nodeLostNoted = new Set<string>();
  /** relay key -> when it was placed without a status (scheduledStatusAfterMs) */
  private readonly placedAt = new Map<string, number>();
  /** relays to place in the next pass */
  private placing: Placing[] = [];
  private readonly view: PlacementView;
  private ready = false;
  private stopped = false;

  constructor(private readonly o: RelayControllerOptions) {
    this.log = o.logger;
    this.relays = o.relays;
    this.nodes = o.nodes;
    this.counters = o.counters;
    this.view = new PlacementView(o.relays, o.vfns, o.nodes, o.liveness ?? new AgentLiveness(), this.reservations);
    this.queue = new WorkQueue((k) => this.reconcile(k), {
      concurrency: o.concurrency ?? 32,
      logger: this.log,
      maxDelayMs: 30_000,
      ...(o.queueObserver ? { observer: o.queueObserver } : {}),
    });
  }

  /** Looks at every relay once (the caches are synced). */
  start(): void {
    if (this.stopped) return;
    this.ready = true;
    for (const r of this.relays.list()) this.queue.add(objectKey(r));
  }

  stop(): void {
    this.stopped = true;
    this.ready = false;
    this.queue.stop();
  }

  /** Relays waiting for a node. */
  pendingCount(): number {
    return this.relays.list().filter((r) => !nodeOf(r) && !r.metadata.deletionTimestamp && !this.reservations.has(objectKey(r))).length;
  }

  /** Only a relay without a node, being deleted, or on a node that is gone is queued: not the
   *  agents' many status updates, which relays waiting for a node would queue behind. */
  relayChanged(r: VirtioRelay): void {
    const [key, node] = [objectKey(r), nodeOf(r)];
    this.view.relayChanged(key, node);
    if (!this.ready) return;
    // its agent wrote a status: no Scheduled to write, so no look after scheduledStatusAfterMs
    if (r.status?.phase && this.placedAt.delete(key)) this.queue.forget(key);
    if (node === undefined || r.metadata.deletionTimestamp || this.nodes.get(node) === undefined) this.queue.add(key);
  }

  relayDeleted(r: VirtioRelay): void {
    const key = objectKey(r);
    this.reservations.delete(key);
    this.lastFailure.delete(key);
    this.placedAt.delete(key);
    this.enqueuePending(); // its VF may be free now
  }

  /** An agent's report: room for relays that did not fit only if its engine or VFs changed. */
  agentChanged(vfn?: VirtioForwarderNode): void {
    const name = vfn?.metadata.name;
    if (vfn && name) {
      const key = agentRoomKey(vfn);
      if (this.agentRoom.get(name) === key) return;
      this.agentRoom.set(name, key);
    }
    this.enqueuePending();
  }

  agentDeleted(vfn: VirtioForwarderNode): void {
    if (vfn.metadata.name) this.agentRoom.delete(vfn.metadata.name);
  }

  /** A core Node was added or changed: room only when what placement reads of it changed. */
  nodeChanged(node: V1Node): void {
    const name = node.metadata?.name;
    if (name) {
      const key = nodeRoomKey(node);
      if (this.nodeRoom.get(name) === key) return;
      this.nodeRoom.set(name, key);
    }
    this.enqueuePending();
  }

  nodeDeleted(name: string): void {
    this.nodeRoom.delete(name);
    if (!this.ready) return;
    this.log.info({ node: name }, 'node deleted');
    for (const r of this.relays.list()) if (nodeOf(r) === name) this.queue.add(objectKey(r));
    this.enqueuePending();
  }

  /** Relays that did not fit get another try (the others without a node are queued already). */
  enqueuePending(): void {
    this.view.invalidate(); // what made room for them changes the view too
    if (!this.ready) return;
    for (const key of this.lastFailure.keys()) {
      const [namespace, name] = key.split('/') as [string, string];
      const r = this.relays.get(name, namespace);
      if (!r) this.lastFailure.delete(key);
      else if (!nodeOf(r)) this.queue.add(key);
    }
  }

  private async reconcile(key: string): Promise<HandlerResult> {
    if (this.stopped) return;
    try {
      return await this.reconcileRelay(key);
    } catch (err) {
      if (err instanceof NotFoundError) return; // deleted meanwhile: its delete event follows
      throw err;
    }
  }

  private async reconcileRelay(key: string): Promise<HandlerResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const obj = this.relays.get(name, namespace);
    if (!obj) {
      this.reservations.delete(key);
      this.lastFailure.delete(key);
      this.placedAt.delete(key);
      return;
    }
    const nodeName = nodeOf(obj);
    const nodeGone = nodeName !== undefined && this.nodes.get(nodeName) === undefined;

    if (obj.metadata.deletionTimestamp) {
      // the operator adds the agent's finalizer when it places a relay; no agent will remove it
      // from a relay whose node is gone (or that has none), and none has to while no agent has
      // reported the relay (an agent that took it meanwhile removes it when the object goes)
      const unreported = nodeName !== undefined && obj.status?.nodeName !== nodeName;
      if (obj.metadata.finalizers?.includes(FINALIZER) && (nodeName === undefined || nodeGone || unreported)) {
        await this.patchRelay(obj, { metadata: { finalizers: obj.metadata.finalizers.filter((f) => f !== FINALIZER) } });
        this.counters.finalizersRemoved++;
        const why = nodeName === undefined ? 'the relay has no node' : nodeGone ? `node ${nodeName} does not exist` : `no agent has reported the relay on node ${nodeName}`;
        this.log.info({ relay: key, node: nodeName }, 'removed the finalizer of a deleted relay without an agent');
        await this.o.events.relay(obj, 'Normal', EventReason.FinalizerRemoved, `${why}, so no agent will clean up: removed finalizer ${FINALIZER} to let the deletion finish`);
      }
      return;
    }

    if (nodeName !== undefined) {
      if (nodeGone) return this.nodeLost(obj, key, nodeName);
      return this.tellScheduled(obj, key, nodeName);
    }

    const res = this.reservations.get(key);
    if (res && obj.metadata.resourceVersion === res.preRv) return; // our patch is on its way to the cache
    return this.schedule(obj, key);
  }

  /** Joins the next placement pass: the relays reconciled meanwhile are placed together. */
  private schedule(obj: VirtioRelay, key: string): Promise<HandlerResult> {
    return new Promise((done) => {
      this.placing.push({ obj, key, done: (r) => done(r) });
      if (this.placing.length === 1) setImmediate(() => this.placePass());
    });
  }

  /** One view of the cluster for every relay of the pass; each pick reserved before the next. */
  private placePass(): void {
    const batch = this.placing;
    this.placing = [];
    if (this.stopped) {
      for (const p of batch) p.done(Promise.resolve());
      return;
    }
    const { nodes, snapshot } = this.view.current();
    const policies = this.o.policies.list();
    const labels = (n: string): Record<string, string> => this.nodes.get(n)?.metadata?.labels ?? {};
    for (const { obj, key, done } of batch) {
      try {
        const relay = { key, vf: obj.spec.vf, ...(obj.spec.numaNode !== undefined ? { numaNode: obj.spec.numaNode } : {}) };
        const allowed = applyPoolPolicy(nodes, { namespace: obj.metadata.namespace ?? '', spec: obj.spec }, policies, labels);
        const result = snapshot.place(relay, allowed.nodes);
        if (result.ok) this.reservations.set(key, { node: result.node, vfs: result.vfs, preRv: obj.metadata.resourceVersion ?? '' });
        else this.reservations.delete(key);
        done(this.placed(obj, key, result, allowed.denial));
      } catch (err) {
        done(Promise.reject(err instanceof Error ? err : new Error(String(err)))); // that key retries with backoff
      }
    }
  }

  /** Writes a pass's pick: spec.nodeName (and the finalizer the agent would add), or Pending. */
  private async placed(obj: VirtioRelay, key: string, result: Placement | Unschedulable, denial: string | undefined): Promise<HandlerResult> {
    if (!result.ok) {
      await this.unschedulable(obj, key, denial ? `${result.message}; ${denial}` : result.message);
      return { requeueAfterMs: this.o.retryPendingMs ?? 60_000 };
    }
    const finalizers = obj.metadata.finalizers ?? [];
    let updated: VirtioRelay;
    try {
      // the agent's finalizer comes with the node (it guards what the agent will make there):
      // one write instead of two; the agent adds it itself to a relay placed by hand
      updated = await this.patchRelay(obj, {
        metadata: {
          annotations: { [SCHEDULED_VF_ANNOTATION]: result.vfs.length ? result.vfs.join(',') : null },
          ...(finalizers.includes(FINALIZER) ? {} : { finalizers: [...finalizers, FINALIZER] }),
        },
        spec: { nodeName: result.node },
      });
    } catch (err) {
      this.reservations.delete(key);
      this.view.invalidate(); // it counted the pick in
      if (err instanceof InvalidError) {
        // e.g. nodeName "" set by the user, which CEL keeps from changing
        await this.unschedulable(obj, key, `cannot assign node ${result.node}: ${err.message}`);
        return { requeueAfterMs: this.o.retryPendingMs ?? 60_000 };
      }
      throw err;
    }
    this.counters.scheduled++;
    this.lastFailure.delete(key);
    const vfText = result.vfs.length ? ` with VF ${result.vfs.join(', ')}${result.numaNode !== null ? ` (NUMA node ${result.numaNode})` : ''}` : '';
    this.log.info({ relay: key, node: result.node, vfs: result.vfs, numaNode: result.numaNode }, 'scheduled');
    void this.o.events.relay(obj, 'Normal', EventReason.Scheduled, `Successfully assigned ${key} to ${result.node}${vfText}`);
    if (!obj.status?.phase) {
      this.placedAt.set(key, performance.now());
      return this.tellScheduled(updated, key, result.node);
    }
    // it said Pending (or its lost node's state): that no longer holds
    await this.writeStatus(updated, { phase: 'Scheduled', message: `assigned to node ${result.node}; waiting for its agent` }, true);
  }

  /** Phase Scheduled for a relay placed without a status, once scheduledStatusAfterMs passed
   *  without its agent's; conditioned on the version read, so an agent's write is never undone. */
  private async tellScheduled(obj: VirtioRelay, key: string, node: string): Promise<HandlerResult> {
    const at = this.placedAt.get(key);
    if (at === undefined) return;
    if (obj.status?.phase) {
      this.placedAt.delete(key);
      return;
    }
    const left = at + (this.o.scheduledStatusAfterMs ?? 5000) - performance.now();
    if (left > 0) return { requeueAfterMs: Math.ceil(left) };
    this.placedAt.delete(key);
    await this.writeStatus(obj, { phase: 'Scheduled', message: `assigned to node ${node}; waiting for its agent` }, true);
  }

  private async unschedulable(obj: VirtioRelay, key: string, message: string): Promise<void> {
    if (this.lastFailure.get(key) !== message) {
      this.lastFailure.set(key, message);
      this.counters.failedScheduling++;
      this.log.info({ relay: key, reason: message }, 'cannot schedule');
      await this.o.events.relay(obj, 'Warning', EventReason.FailedScheduling, message);
    }
    if (obj.status?.phase !== 'Pending' || obj.status?.message !== message) {
      await this.writeStatus(obj, { phase: 'Pending', message });
    }
  }

  private async nodeLost(obj: VirtioRelay, key: string, nodeName: string): Promise<void> {
    if (obj.spec.reschedule === 'OnNodeLoss') {
      const updated = await this.patchRelay(obj, { metadata: { annotations: { [SCHEDULED_VF_ANNOTATION]: null } }, spec: { nodeName: null } });
      this.reservations.delete(key);
      this.counters.rescheduled++;
      this.log.info({ relay: key, node: nodeName }, 'node gone; rescheduling');
      await this.o.events.relay(obj, 'Normal', EventReason.Rescheduled, `node ${nodeName} does not exist; moving the relay to another node (reschedule: OnNodeLoss)`);
      // what the lost node's agent reported no longer holds
      await this.writeStatus(
        updated,
        {
          phase: 'Pending',
          message: `node ${nodeName} does not exist; waiting for another node`,
          nodeName: null,
          pciAddress: null,
          socketPath: null,
          socketMode: null,
          relayId: null,
          deviceId: null,
          numaNode: null,
          mac: null,
          guestConnected: null,
          conditions: null,
        },
        true,
      );
      return;
    }
    const message = `node ${nodeName} does not exist; the relay stays assigned to it (reschedule: Never). Delete it, or set spec.reschedule to OnNodeLoss to move it`;
    const noted = `${obj.metadata.uid ?? key}@${nodeName}`;
    if (!this.nodeLostNoted.has(noted) && obj.status?.message !== message) {
      this.nodeLostNoted.add(noted);
      this.counters.nodeLost++;
      this.log.warn({ relay: key, node: nodeName }, 'node gone; relay stays (reschedule: Never)');
      await this.o.events.relay(obj, 'Warning', EventReason.NodeLost, message);
    }
    this.nodeLostNoted.add(noted);
    // its agent is gone with the node: nobody else will say so in status
    if (obj.status?.phase !== 'Failed' || obj.status?.message !== message) await this.writeStatus(obj, { phase: 'Failed', message });
  }

  /** Merge patch conditioned on the cached resourceVersion (a 409 requeues with backoff). */
  private patchRelay(obj: VirtioRelay, body: RelayPatch): Promise<VirtioRelay> {
    return this.o.api.relays.patch(obj, body);
  }

  /**
   * Merge-patches status, conditioned on obj's resourceVersion.
   * bestEffort: a conflict means someone (the agent) wrote since, and wins.
   */
  private async writeStatus(obj: VirtioRelay, status: Record<string, unknown> & Partial<Pick<VirtioRelayStatus, 'phase' | 'message'>>, bestEffort = false): Promise<void> {
    try {
      await this.o.api.relays.patchStatus(obj, status, { guard: true });
    } catch (err) {
      if (bestEffort && err instanceof ConflictError) return;
      throw err;
    }
  }
}
