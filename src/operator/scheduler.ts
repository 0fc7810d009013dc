// The cluster operator's control loop: gives VirtioRelays without spec.nodeName a node with a
// free matching VF (placement.ts decides), moves relays off deleted nodes when they asked for
// it, and cleans up after deleted nodes. Runs only in the elected leader (see operator.ts).
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import {
  FINALIZER,
  GROUP,
  NODE_PLURAL,
  RELAY_PLURAL,
  ResilientInformer,
  VERSION,
  WorkQueue,
  httpStatus,
  kubeErrorMessage,
  mergePatch,
  recordEvent,
  relayListFn,
  type KubeClients,
  type VirtioForwarderNode,
  type VirtioRelay,
  type VirtioRelayStatus,
} from '../kube/index.js';
import { normalizeVf, placeRelay, usedByKey, type AssignedRelay, type PlacementNode } from './placement.js';

/** Annotation the operator writes with the VF(s) it counted for a relay (a hint for the agent). */
export const SCHEDULED_VF_ANNOTATION = 'vio4wd.io/scheduled-vf';
export const COMPONENT = 'vio4wd-operator';

export interface SchedulerOptions {
  clients: KubeClients;
  logger: Logger;
  /** Shown as the source host of events (the operator replica's identity). */
  identity: string;
  concurrency?: number;
  /** Unschedulable relays are retried when nodes change, and at least this often (default 60 s). */
  retryPendingMs?: number;
  /** A VirtioForwarderNode whose Node is missing, and whose deletion this process did not see,
   *  is deleted once it is this old (default 60 s): an agent may publish just before its Node
   *  reaches our cache. */
  orphanGraceMs?: number;
  /** A node whose agent has not changed its VirtioForwarderNode's heartbeatTime for this long
   *  (this process's clock, so skew does not matter) gets no new relays (default 150 s: five
   *  missed 30 s heartbeats). */
  staleAfterMs?: number;
}

export interface SchedulerCounters {
  scheduled: number;
  failedScheduling: number;
  rescheduled: number;
  nodeLost: number;
  finalizersRemoved: number;
  nodesCleanedUp: number;
}

/** A node picked for a relay whose patch the informer may not show yet. */
interface Reservation {
  node: string;
  vfs: string[];
  /** resourceVersion the patch was conditioned on: a cached copy at it predates the patch. */
  preRv: string;
}

/** The relay changed under us (409): requeued with backoff. */
class ConflictError extends Error {
  readonly code = 'ECONFLICT';
}

const RELAY = 'relay:';
const VFN = 'vfn:';

function relayKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** spec.nodeName, with "" read as unset. */
function nodeOf(r: VirtioRelay): string | undefined {
  return r.spec?.nodeName || undefined;
}

function nodeReady(node: V1Node): boolean {
  const c = node.status?.conditions?.find((x) => x.type === 'Ready');
  return !c || c.status === 'True'; // no condition yet: a node without a kubelet report
}

export class Scheduler {
  private readonly log: Logger;
  private readonly relays: ResilientInformer<VirtioRelay>;
  private readonly vfns: ResilientInformer<VirtioForwarderNode>;
  private readonly nodes: ResilientInformer<V1Node>;
  private readonly queue: WorkQueue;
  private readonly reservations = new Map<string, Reservation>();
  /** relay key -> last FailedScheduling message recorded as an event */
  private readonly lastFailure = new Map<string, string>();
  /** uid@node of relays already reported NodeLost */
  private readonly nodeLostNoted = new Set<string>();
  /** Nodes this process saw deleted: their VirtioForwarderNodes go at once. */
  private readonly deletedNodes = new Set<string>();
  /** node -> heartbeatTime last seen and when it changed (local clock) */
  private readonly heartbeats = new Map<string, { time: string; seenAt: number }>();
  private ready = false;
  private stopped = false;
  readonly counters: SchedulerCounters = { scheduled: 0, failedScheduling: 0, rescheduled: 0, nodeLost: 0, finalizersRemoved: 0, nodesCleanedUp: 0 };

  constructor(private readonly o: SchedulerOptions) {
    this.log = o.logger.child({ component: 'operator' });
    this.queue = new WorkQueue((k) => this.reconcile(k), { concurrency: o.concurrency ?? 8, logger: this.log, maxDelayMs: 30_000 });
    const { kc, custom, core } = o.clients;
    this.relays = new ResilientInformer<VirtioRelay>(kc, {
      path: `/apis/${GROUP}/${VERSION}/${RELAY_PLURAL}`,
      list: relayListFn(custom),
      logger: this.log,
      onAdd: (r) => this.enqueueRelay(r),
      onUpdate: (r) => this.enqueueRelay(r),
      onDelete: (r) => {
        const key = relayKey(r);
        this.reservations.delete(key);
        this.lastFailure.delete(key);
        this.enqueuePending(); // its VF may be free now
      },
    });
    this.vfns = new ResilientInformer<VirtioForwarderNode>(kc, {
      path: `/apis/${GROUP}/${VERSION}/${NODE_PLURAL}`,
      list: async () => (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: NODE_PLURAL })) as never,
      logger: this.log,
      onAdd: (n) => this.agentChanged(n),
      onUpdate: (n) => this.agentChanged(n),
      onDelete: (n) => {
        this.heartbeats.delete(n.metadata.name ?? '');
        this.enqueuePending();
      },
    });
    this.nodes = new ResilientInformer<V1Node>(kc, {
      path: '/api/v1/nodes',
      list: () => core.listNode(),
      logger: this.log,
      onAdd: (n) => {
        if (n.metadata?.name) this.deletedNodes.delete(n.metadata.name);
        this.enqueuePending();
      },
      onUpdate: () => this.enqueuePending(),
      onDelete: (n) => this.nodeDeleted(n.metadata?.name),
    });
  }

  /** Starts the watches; resolves when all three caches are filled and the queue runs. */
  async start(): Promise<void> {
    await Promise.all([this.relays.start(), this.vfns.start(), this.nodes.start()]);
    await Promise.all([this.relays.synced(), this.vfns.synced(), this.nodes.synced()]);
    if (this.stopped) return;
    this.ready = true;
    for (const r of this.relays.list()) this.queue.add(RELAY + relayKey(r));
    for (const n of this.vfns.list()) this.queue.add(VFN + (n.metadata.name ?? ''));
    this.log.info({ relays: this.relays.list().length, nodes: this.nodes.list().length, agents: this.vfns.list().length }, 'scheduler started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    this.queue.stop();
    await Promise.all([this.relays.stop(), this.vfns.stop(), this.nodes.stop()]);
  }

  /** Resolves when no key is queued or being worked on (tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Relays waiting for a node. */
  pendingCount(): number {
    return this.relays.list().filter((r) => !nodeOf(r) && !r.metadata.deletionTimestamp && !this.reservations.has(relayKey(r))).length;
  }

  private enqueueRelay(r: VirtioRelay): void {
    if (this.ready) this.queue.add(RELAY + relayKey(r));
  }

  private enqueuePending(): void {
    if (!this.ready) return;
    for (const r of this.relays.list()) if (!nodeOf(r)) this.queue.add(RELAY + relayKey(r));
  }

  private agentChanged(vfn: VirtioForwarderNode): void {
    const name = vfn.metadata.name;
    if (!name) return;
    const time = String(vfn.status?.heartbeatTime ?? '');
    if (this.heartbeats.get(name)?.time !== time) this.heartbeats.set(name, { time, seenAt: Date.now() });
    if (!this.ready) return;
    if (name) this.queue.add(VFN + name);
    this.enqueuePending();
  }

  private nodeDeleted(name: string | undefined): void {
    if (!name) return;
    this.deletedNodes.add(name);
    if (!this.ready) return;
    this.log.info({ node: name }, 'node deleted');
    for (const r of this.relays.list()) if (nodeOf(r) === name) this.queue.add(RELAY + relayKey(r));
    this.queue.add(VFN + name);
    this.enqueuePending();
  }

  private async reconcile(key: string): Promise<void | { requeueAfterMs: number }> {
    if (this.stopped) return;
    try {
      if (key.startsWith(VFN)) return await this.reconcileAgentNode(key.slice(VFN.length));
      return await this.reconcileRelay(key.slice(RELAY.length));
    } catch (err) {
      if (err instanceof NotFound) return; // deleted meanwhile: its delete event follows
      throw err;
    }
  }

  private async reconcileRelay(key: string): Promise<void | { requeueAfterMs: number }> {
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
        await this.event(obj, 'Normal', 'FinalizerRemoved', `${why}, so no agent will clean up: removed finalizer ${FINALIZER} to let the deletion finish`);
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
  private async schedule(obj: VirtioRelay, key: string): Promise<void | { requeueAfterMs: number }> {
    const relay = { key, vf: obj.spec.vf, ...(obj.spec.numaNode !== undefined ? { numaNode: obj.spec.numaNode } : {}) };
    // from here to the reservation nothing awaits: concurrent reconciles see each other's picks
    const result = placeRelay(relay, this.placementNodes(), this.assignedRelays());
    if (!result.ok) {
      this.reservations.delete(key);
      await this.unschedulable(obj, key, result.message);
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
      if (err instanceof Invalid) {
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
    await this.event(obj, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${result.node}${vfText}`);
    // Scheduled until the agent writes its own status; conditioned on our patch's version, so
    // an agent that was faster is never overwritten
    await this.writeStatus(updated, { phase: 'Scheduled', message: `assigned to node ${result.node}; waiting for its agent` }, true);
  }

  private async unschedulable(obj: VirtioRelay, key: string, message: string): Promise<void> {
    if (this.lastFailure.get(key) !== message) {
      this.lastFailure.set(key, message);
      this.counters.failedScheduling++;
      this.log.info({ relay: key, reason: message }, 'cannot schedule');
      await this.event(obj, 'Warning', 'FailedScheduling', message);
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
      await this.event(obj, 'Normal', 'Rescheduled', `node ${nodeName} does not exist; moving the relay to another node (reschedule: OnNodeLoss)`);
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
      await this.event(obj, 'Warning', 'NodeLost', message);
    }
    this.nodeLostNoted.add(noted);
    // its agent is gone with the node: nobody else will say so in status
    if (obj.status?.phase !== 'Failed' || obj.status?.message !== message) await this.writeStatus(obj, { phase: 'Failed', message });
  }

  /** Deletes the VirtioForwarderNode of a node that no longer exists. */
  private async reconcileAgentNode(name: string): Promise<void | { requeueAfterMs: number }> {
    const vfn = this.vfns.get(name);
    if (!vfn || this.nodes.get(name)) return;
    if (!this.deletedNodes.has(name)) {
      const created = Date.parse(String(vfn.metadata.creationTimestamp ?? ''));
      const wait = (Number.isNaN(created) ? 0 : created) + (this.o.orphanGraceMs ?? 60_000) - Date.now();
      if (wait > 0) return { requeueAfterMs: wait };
    }
    try {
      await this.o.clients.custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: NODE_PLURAL,
        name,
        body: { preconditions: { uid: vfn.metadata.uid } },
      });
    } catch (err) {
      const code = httpStatus(err);
      if (code === 404 || code === 409) return; // gone already, or a new one of the same name
      throw new Error(`deleting VirtioForwarderNode ${name}: ${kubeErrorMessage(err)}`, { cause: err });
    }
    this.counters.nodesCleanedUp++;
    this.log.info({ node: name }, 'deleted the VirtioForwarderNode of a node that no longer exists');
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
    const hb = this.heartbeats.get(node);
    return hb !== undefined && Date.now() - hb.seenAt > (this.o.staleAfterMs ?? 150_000);
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
      const key = relayKey(r);
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

  /** Merge patch guarded by the cached resourceVersion; 409 -> ConflictError (requeue). */
  private async patchRelay(obj: VirtioRelay, body: { metadata?: Record<string, unknown>; spec?: Record<string, unknown> }): Promise<VirtioRelay> {
    const patch = { ...body, metadata: { ...(body.metadata ?? {}), resourceVersion: obj.metadata.resourceVersion } };
    try {
      return (await this.o.clients.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: obj.metadata.namespace!, plural: RELAY_PLURAL, name: obj.metadata.name!, body: patch },
        mergePatch,
      )) as VirtioRelay;
    } catch (err) {
      const code = httpStatus(err);
      if (code === 409) throw new ConflictError(`${relayKey(obj)} changed meanwhile; retrying with the current version`);
      if (code === 404) throw new NotFound();
      if (code === 422) throw new Invalid(kubeErrorMessage(err));
      throw new Error(`patching VirtioRelay ${relayKey(obj)}: ${kubeErrorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Merge-patches status through the status subresource, conditioned on obj's resourceVersion.
   * bestEffort: a conflict means someone (the agent) wrote since, and wins.
   */
  private async writeStatus(obj: VirtioRelay, status: Record<string, unknown> & Partial<Pick<VirtioRelayStatus, 'phase' | 'message'>>, bestEffort = false): Promise<void> {
    try {
      await this.o.clients.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace: obj.metadata.namespace!,
          plural: RELAY_PLURAL,
          name: obj.metadata.name!,
          body: { metadata: { resourceVersion: obj.metadata.resourceVersion }, status },
        },
        mergePatch,
      );
    } catch (err) {
      const code = httpStatus(err);
      if (code === 404) return;
      if (code === 409) {
        if (bestEffort) return;
        throw new ConflictError(`${relayKey(obj)} changed meanwhile; retrying with the current version`);
      }
      throw new Error(`status update of VirtioRelay ${relayKey(obj)}: ${kubeErrorMessage(err)}`, { cause: err });
    }
  }

  private event(obj: VirtioRelay, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    return recordEvent(
      this.o.clients.core,
      this.log,
      COMPONENT,
      this.o.identity,
      {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'VirtioRelay',
        name: obj.metadata.name!,
        namespace: obj.metadata.namespace!,
        ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
      },
      type,
      reason,
      message,
    );
  }
}

class Invalid extends Error {
  readonly code = 'EINVAL';
}

class NotFound extends Error {
  readonly code = 'ENOTFOUND';
  constructor() {
    super('the VirtioRelay was deleted');
  }
}
