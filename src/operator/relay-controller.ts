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
import { normalizeVf, placeRelay, usedByKey, type AssignedRelay, type PlacementNode } from './placement.js';
import { AgentLiveness } from './liveness.js';
import { applyPoolPolicy } from './pool-policy.js';

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
  concurrency?: number;
  /** Unschedulable relays are retried when nodes change, and at least this often (default 60 s). */
  retryPendingMs?: number;
  /** Which agents renew their node Lease (shared with NodeCleanupController); default one of
   *  its own. A node whose agent does not gets no new relays. */
  liveness?: AgentLiveness;
}

/** A node picked for a relay whose patch the informer may not show yet. */
interface Reservation {
  node: string;
  vfs: string[];
  /** resourceVersion the patch was conditioned on: a cached copy at it predates the patch. */
  preRv: string;
}

/** spec.nodeName, with "" read as unset. */
function nodeOf(r: VirtioRelay): string | undefined {
  return r.spec?.nodeName || undefined;
}

function nodeReady(node: V1Node): boolean {
  const c = node.status?.conditions?.find((x) => x.type === 'Ready');
  return !c || c.status === 'True'; // no condition yet: a node without a kubelet report
}

export class RelayController {
  readonly queue: WorkQueue;
  private readonly log: Logger;
  private readonly relays: Cache<VirtioRelay>;
  private readonly vfns: Cache<VirtioForwarderNode>;
  private readonly nodes: Cache<V1Node>;
  private readonly counters: SchedulerCounters;
  private readonly reservations = new Map<string, Reservation>();
  /** relay key -> last FailedScheduling message recorded as an event */
  private readonly lastFailure = new Map<string, string>();
  /** uid@node of relays already reported NodeLost */
  private readonly nodeLostNoted = new Set<string>();
  private readonly liveness: AgentLiveness;
  private ready = false;
  private stopped = false;

  constructor(private readonly o: RelayControllerOptions) {
    this.log = o.logger;
    this.relays = o.relays;
    this.vfns = o.vfns;
    this.nodes = o.nodes;
    this.counters = o.counters;
    this.liveness = o.liveness ?? new AgentLiveness();
    this.queue = new WorkQueue((k) => this.reconcile(k), {
      concurrency: o.concurrency ?? 8,
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

  relayChanged(r: VirtioRelay): void {
    if (this.ready) this.queue.add(objectKey(r));
  }

  relayDeleted(r: VirtioRelay): void {
    const key = objectKey(r);
    this.reservations.delete(key);
    this.lastFailure.delete(key);
    this.enqueuePending(); // its VF may be free now
  }

  /** A VirtioForwarderNode was added or changed (an agent writes it only when something
   *  changed): maybe room for pending relays. */
  agentChanged(): void {
    this.enqueuePending();
  }

  agentDeleted(): void {
    this.enqueuePending();
  }

  nodeDeleted(name: string): void {
    if (!this.ready) return;
    this.log.info({ node: name }, 'node deleted');
    for (const r of this.relays.list()) if (nodeOf(r) === name) this.queue.add(objectKey(r));
    this.enqueuePending();
  }

  /** Relays without a node get another try. */
  enqueuePending(): void {
    if (!this.ready) return;
    for (const r of this.relays.list()) if (!nodeOf(r)) this.queue.add(objectKey(r));
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
      return;
    }
    const nodeName = nodeOf(obj);
    const nodeGone = nodeName !== undefined && this.nodes.get(nodeName) === undefined;

    if (obj.metadata.deletionTimestamp) {
      // no agent will remove the finalizer of a relay whose node is gone (or that has none)
      if (obj.metadata.finalizers?.includes(FINALIZER) && (nodeName === undefined || nodeGone)) {
        await this.patchRelay(obj, { metadata: { finalizers: obj.metadata.finalizers.filter((f) => f !== FINALIZER) } });
        this.counters.finalizersRemoved++;
        const why = nodeName ? `node ${nodeName} does not exist` : 'the relay has no node';
        this.log.info({ relay: key, node: nodeName }, 'removed the finalizer of a deleted relay without an agent');
        await this.o.events.relay(obj, 'Normal', EventReason.FinalizerRemoved, `${why}, so no agent will clean up: removed finalizer ${FINALIZER} to let the deletion finish`);
      }
      return;
    }

    if (nodeName !== undefined) {
      if (nodeGone) return this.nodeLost(obj, key, nodeName);
      return;
    }

    const res = this.reservations.get(key);
    if (res && obj.metadata.resourceVersion === res.preRv) return; // our patch is on its way to the cache
    return this.schedule(obj, key);
  }

  /** Places a relay without a node: reserve synchronously, then write spec.nodeName. */
  private async schedule(obj: VirtioRelay, key: string): Promise<HandlerResult> {
    const relay = { key, vf: obj.spec.vf, ...(obj.spec.numaNode !== undefined ? { numaNode: obj.spec.numaNode } : {}) };
    // from here to the reservation nothing awaits: concurrent reconciles see each other's picks
    const allowed = applyPoolPolicy(this.placementNodes(), { namespace: obj.metadata.namespace ?? '', spec: obj.spec }, this.o.policies.list(), (n) => this.nodes.get(n)?.metadata?.labels ?? {});
    const result = placeRelay(relay, allowed.nodes, this.assignedRelays());
    if (!result.ok) {
      this.reservations.delete(key);
      await this.unschedulable(obj, key, allowed.denial ? `${result.message}; ${allowed.denial}` : result.message);
      return { requeueAfterMs: this.o.retryPendingMs ?? 60_000 };
    }
    const preRv = obj.metadata.resourceVersion ?? '';
    this.reservations.set(key, { node: result.node, vfs: result.vfs, preRv });
    let updated: VirtioRelay;
    try {
      updated = await this.patchRelay(obj, {
        metadata: { annotations: { [SCHEDULED_VF_ANNOTATION]: result.vfs.length ? result.vfs.join(',') : null } },
        spec: { nodeName: result.node },
      });
    } catch (err) {
      this.reservations.delete(key);
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
    await this.o.events.relay(obj, 'Normal', EventReason.Scheduled, `Successfully assigned ${key} to ${result.node}${vfText}`);
    // Scheduled until the agent writes its own status; conditioned on our patch's version, so
    // an agent that was faster is never overwritten
    await this.writeStatus(updated, { phase: 'Scheduled', message: `assigned to node ${result.node}; waiting for its agent` }, true);
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

  /** Nodes as placement sees them: every core Node, with its agent's report if it has one. */
  private placementNodes(): PlacementNode[] {
    const out: PlacementNode[] = [];
    for (const node of this.nodes.list()) {
      const name = node.metadata?.name;
      if (!name) continue;
      const vfn = this.vfns.get(name);
      const st = vfn?.status;
      let unavailable: string | undefined;
      if (!vfn) unavailable = 'no vio4wd agent';
      else if (node.metadata?.deletionTimestamp) unavailable = 'node being deleted';
      else if (node.spec?.unschedulable) unavailable = 'node cordoned';
      else if (!nodeReady(node)) unavailable = 'node not Ready';
      else if (st?.engine?.up !== true) unavailable = 'engine not up';
      else if (this.stale(name)) unavailable = 'agent not reporting';
      out.push({
        name,
        ...(unavailable ? { unavailable } : {}),
        vfs: (st?.vfs ?? []).map(normalizeVf),
        ...(st?.relays?.total !== undefined ? { reportedRelays: st.relays.total } : {}),
      });
    }
    return out;
  }

  private stale(node: string): boolean {
    return this.liveness.stale(node);
  }

  /** Relays on nodes: from the cache, plus reservations the cache does not show yet. */
  private assignedRelays(): AssignedRelay[] {
    const reportedOn = new Map<string, Set<string>>();
    const reported = (node: string): Set<string> => {
      let s = reportedOn.get(node);
      if (!s) {
        s = new Set((this.vfns.get(node)?.status?.vfs ?? []).flatMap((vf) => (vf.usedBy ? [usedByKey(vf.usedBy)] : [])));
        reportedOn.set(node, s);
      }
      return s;
    };
    const out: AssignedRelay[] = [];
    for (const r of this.relays.list()) {
      const key = objectKey(r);
      let node = nodeOf(r);
      let reserved: string[] | undefined;
      const res = this.reservations.get(key);
      if (res) {
        if (r.metadata.resourceVersion === res.preRv || node === res.node) {
          node = res.node;
          reserved = res.vfs;
          // the node reports the relay (or it needs no VF): the guess is not needed any more
          if (nodeOf(r) === res.node && (res.vfs.length === 0 || reported(res.node).has(key))) {
            this.reservations.delete(key);
            reserved = undefined;
          }
        } else {
          this.reservations.delete(key); // moved or cleared since
        }
      }
      if (!node || !r.spec) continue;
      out.push({
        key,
        node,
        vf: r.spec.vf,
        ...(r.spec.numaNode !== undefined ? { numaNode: r.spec.numaNode } : {}),
        ...(reserved ? { reserved } : {}),
      });
    }
    return out;
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
