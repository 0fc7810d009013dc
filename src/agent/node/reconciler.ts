// The node agent's Kubernetes loop: VirtioRelays scheduled to this node become relays in
// RelayManager; their status, events and finalizers follow what the relay does. It also
// keeps the node's Lease and VirtioForwarderNode (publisher.ts).
import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import type { RelaySpec, RelayStatus } from '../../relay/types.js';
import {
  EventReason,
  FINALIZER,
  NotFoundError,
  WorkQueue,
  type HandlerResult,
  type KubeClients,
  type VirtioRelay,
  type VirtioRelayStatus,
  type WorkQueueObserver,
} from '../../kube/index.js';
import { RelayCheckpoint, checkpointPathFor, restoreCheckpoint, type CheckpointEntry } from './checkpoint.js';
import { failedStatus, sameStatus, toCrStatus } from './status.js';
import { nodeKube, type NodeKube, type NodePolicyView, type NodePublisherView, type RelayCache } from './kube.js';
import { AGENT_COMPONENT, SOCKET_FILE, macTakenBy, relayName, relaySpecOf } from './relay-spec.js';
import type { NodeInventory } from './publisher.js';
import type { PluginState } from './conditions.js';
import { pinSocketRoot, prepareSocketRoot, removeRelayDir, socketRootRisk } from '../../relay/socketdir.js';

/** What the reconciler needs from RelayManager. */
export interface NodeRelays {
  apply(spec: RelaySpec): RelayStatus;
  remove(name: string): Promise<boolean>;
  get(name: string): RelayStatus | undefined;
  list(): RelayStatus[];
  on(event: 'change', listener: (s: RelayStatus) => void): unknown;
  off(event: 'change', listener: (s: RelayStatus) => void): unknown;
}

export interface NodeReconcilerOptions {
  /** The apiserver: either clients (the agent) or a NodeKube (a unit test's fixture). */
  clients?: KubeClients;
  kube?: NodeKube;
  nodeName: string;
  relays: NodeRelays;
  logger: Logger;
  /** The agent's socket root: each relay gets its own directory under it (never a path a
   *  VirtioRelay names). */
  socketDir: string;
  /** DPDK virtual-device drivers VirtioRelays may use on this node at all (the agent config's
   *  kubernetes.allowVirtualDevices); default none. */
  allowVirtualDevices?: readonly string[];
  /** Remount the agent's own view of the socket root nosymfollow (kubernetes.nosymfollowSocketRoot). */
  nosymfollowSocketRoot?: boolean;
  /** The node's inventory for VirtioForwarderNode (VFs, hugepages, workers, engine). */
  nodeStatus: () => Promise<NodeInventory>;
  /** The device plugin's pools and whether kubelet has them; leave out when it is off. */
  devicePlugins?: () => readonly PluginState[] | undefined;
  /** Namespace of the node's Lease, named after the node (the agent's namespace; default "default"). */
  leaseNamespace?: string;
  /** Seconds between renewals of the node's Lease (default 10). */
  leaseRenewSeconds?: number;
  /** Seconds between looks at the node's inventory, written only when it changed (default: the
   *  Lease's renew interval). */
  refreshSeconds?: number;
  concurrency?: number;
  /**
   * A relay on its way to Ready for the first time on this node is not written in its passing
   * phases (Pending, Configuring): its VirtioRelay gets one status write, when it is Ready (or
   * Failed). One still on its way after this long is written as it is (default 3000 ms).
   */
  transientHoldMs?: number;
  /**
   * File where the relays this node runs for VirtioRelays are kept (written after every change).
   * An agent that starts again, e.g. after a crash, runs them from here at once, before the
   * apiserver has answered, and reconciles them with the VirtioRelays once it has. Default:
   * `<socketDir>/.vio4wd-relays.json`; null: none.
   */
  checkpointPath?: string | null;
  /** Metrics of the work queue. */
  queueObserver?: WorkQueueObserver;
  /**
   * The checkpoint's relays, already applied to `relays` by the caller (the agent does it before
   * it loads the Kubernetes client): taken as restored instead of reading the file again.
   */
  restored?: CheckpointEntry[];
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export class NodeReconciler {
  private readonly log: Logger;
  private readonly informer: RelayCache;
  private readonly policy: NodePolicyView;
  private readonly queue: WorkQueue;
  private readonly kube: NodeKube;
  /** relay name -> its VirtioRelay key and the spec applied for it (what the checkpoint holds;
   *  no spec for a relay found in the manager at start and not yet reconciled) */
  private readonly owned = new Map<string, { key: string; spec?: RelaySpec }>();
  private readonly lastPhase = new Map<string, string>();
  private readonly lastGuest = new Map<string, boolean>();
  /** relay name -> when its first passing phase was held back (transientHoldMs) */
  private readonly heldSince = new Map<string, number>();
  /** The node's Lease and VirtioForwarderNode. */
  readonly publisher: NodePublisherView;
  private stopped = false;
  /** a handover to another agent is in progress (docs/upgrade.md) */
  private paused = false;
  private readonly checkpoint: RelayCheckpoint | undefined;
  private readonly onRelayChange = (s: RelayStatus): void => {
    // the engine's word on a relay already applied (Ready, failed, a guest): its status write
    // goes ahead of the first looks at relays still waiting in a burst
    const key = this.owned.get(s.name)?.key;
    if (key) this.queue.add(key, { first: true });
    this.publisher.changed();
  };

  constructor(private readonly o: NodeReconcilerOptions) {
    this.log = o.logger.child({ component: 'node-reconciler', node: o.nodeName });
    const checkpointPath = o.checkpointPath === null ? undefined : (o.checkpointPath ?? checkpointPathFor(o.socketDir));
    if (checkpointPath) {
      this.checkpoint = new RelayCheckpoint(checkpointPath, o.nodeName, this.log, () => this.entries());
    }
    if (o.kube) this.kube = o.kube;
    else if (o.clients) this.kube = nodeKube({ clients: o.clients, nodeName: o.nodeName, component: AGENT_COMPONENT, virtualDevices: o.allowVirtualDevices ?? [], logger: this.log });
    else throw new Error('NodeReconciler: give clients or kube');
    this.publisher = this.kube.nodePublisher({
      inventory: o.nodeStatus,
      relays: () => o.relays.list(),
      ...(o.devicePlugins ? { devicePlugins: o.devicePlugins } : {}),
      leaseNamespace: o.leaseNamespace ?? 'default',
      ...(o.leaseRenewSeconds !== undefined ? { leaseRenewSeconds: o.leaseRenewSeconds } : {}),
      ...(o.refreshSeconds !== undefined ? { refreshSeconds: o.refreshSeconds } : {}),
    });
    this.queue = new WorkQueue((k) => this.reconcile(k), {
      concurrency: o.concurrency ?? 16,
      logger: this.log,
      maxDelayMs: 10_000,
      ...(o.queueObserver ? { observer: o.queueObserver } : {}),
    });
    const enqueue = (obj: VirtioRelay) => this.queue.add(keyOf(obj.metadata.namespace ?? '', obj.metadata.name ?? ''));
    // a policy (or the node's labels) changed: every relay of this node is checked again
    this.policy = this.kube.policy(() => {
      if (!this.informer.hasSynced) return;
      for (const obj of this.informer.list()) enqueue(obj);
    });
    this.informer = this.kube.relayCache({ onAdd: enqueue, onUpdate: enqueue, onDelete: enqueue });
  }

  async start(): Promise<void> {
    this.o.relays.on('change', this.onRelayChange);
    await prepareSocketRoot(this.o.socketDir);
    const risk = this.o.nosymfollowSocketRoot ? await pinSocketRoot(this.o.socketDir) : await socketRootRisk(this.o.socketDir);
    if (risk) this.log.warn({ socketDir: this.o.socketDir }, risk);
    await this.restoreCheckpoint();
    await this.policy.start();
    await this.informer.start();
    await this.informer.synced();
    // relays from an earlier life of this agent whose objects are gone
    for (const s of this.o.relays.list()) {
      if (s.origin !== 'kubernetes') continue;
      const [ns, ...rest] = s.name.split('.');
      const key = keyOf(ns ?? '', rest.join('.'));
      if (!this.owned.has(s.name)) this.owned.set(s.name, { key });
      this.queue.add(key);
    }
    await this.publisher.start();
    this.log.info({ relays: this.informer.list().length }, 'watching VirtioRelays for this node');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.publisher.stop();
    await this.checkpoint?.flush();
    this.o.relays.off('change', this.onRelayChange);
    this.queue.stop();
    await this.informer.stop();
    await this.policy.stop();
  }

  /** Runs the relays of the checkpoint (see checkpointPath); the informer's first list then
   *  reconciles each of them like any other (a VirtioRelay deleted meanwhile removes its relay). */
  private async restoreCheckpoint(): Promise<void> {
    if (!this.checkpoint) return;
    const entries = this.o.restored ?? (await restoreCheckpoint(this.o.relays, this.checkpoint.path, this.o.nodeName, this.log));
    for (const { key, spec } of entries) this.owned.set(spec.name, { key, spec });
  }

  private scheduleCheckpoint(): void {
    this.checkpoint?.schedule();
  }

  /** The relays this node runs for VirtioRelays, with their keys (the checkpoint's entries). */
  entries(): CheckpointEntry[] {
    return [...this.owned.values()].flatMap((x) => (x.spec ? [{ key: x.key, spec: structuredClone(x.spec) }] : []));
  }

  /** A handover (docs/upgrade.md): no relay is applied or removed, nothing written, until
   *  resume(); the checkpoint keeps every relay meanwhile. */
  pause(): void {
    this.paused = true;
    this.publisher.hold(true);
  }

  resume(): void {
    this.paused = false;
    this.publisher.hold(false);
    for (const { key } of this.owned.values()) this.queue.add(key);
  }

  /** Resolves when the queue is empty (tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async reconcile(key: string): Promise<HandlerResult> {
    if (this.stopped) return;
    if (this.paused) return { requeueAfterMs: 500 };
    // before the first list, a missing object means nothing (relays restored from the checkpoint
    // change meanwhile): start() queues every relay of this node once the informer has synced
    if (!this.informer.hasSynced) return;
    const [namespace, name] = key.split('/') as [string, string];
    const rname = relayName(namespace, name);
    const obj = this.informer.get(name, namespace);

    if (!obj) {
      // deleted, or moved to another node: nothing of it may stay here
      if (this.owned.has(rname) || this.o.relays.get(rname)?.origin === 'kubernetes') {
        await this.removeRelay(rname);
        this.log.info({ relay: key }, 'VirtioRelay gone from this node; relay removed');
      }
      return;
    }

    if (obj.metadata.deletionTimestamp) {
      if (!obj.metadata.finalizers?.includes(FINALIZER)) return;
      await this.removeRelay(rname);
      await this.kube.event(obj, 'Normal', EventReason.RelayRemoved, `relay ${rname} removed from node ${this.o.nodeName}; socket directory deleted`);
      await this.patchMeta(obj, { finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) });
      return;
    }

    // the pool policy first: a denied relay gets nothing on this node, not even a finalizer
    const decision = this.policy.decide(namespace, obj.spec);
    const allowed = decision.allowed ? await relaySpecOf(obj, rname, decision, this.o.socketDir) : decision;
    const macTaken = 'allowed' in allowed || !allowed.mac ? undefined : macTakenBy(this.o.relays.list(), rname, namespace, allowed.mac);
    const spec = macTaken ? { allowed: false as const, message: macTaken } : allowed;
    if ('allowed' in spec) {
      if (this.owned.has(rname) || this.o.relays.get(rname)?.origin === 'kubernetes') {
        // the admin revoked it (policy or node labels changed): it stops here
        await this.removeRelay(rname);
        this.log.warn({ relay: key, err: spec.message }, 'relay removed: its pool policy no longer allows it');
      }
      await this.deny(obj, rname, spec.message);
      return;
    }

    let current = obj;
    if (!current.metadata.finalizers?.includes(FINALIZER)) {
      // guard the relay and its socket before creating them
      const patched = await this.patchMeta(current, { finalizers: [...(current.metadata.finalizers ?? []), FINALIZER] });
      if (!patched) return; // deleted meanwhile: its delete event brings us back
      current = patched;
    }

    let status: RelayStatus | undefined;
    try {
      // a relay of this name that is not a VirtioRelay's (a DRA claim's for a free VF, the
      // config's) is another owner's: never taken over (its guest would get this VF)
      const other = this.o.relays.get(rname);
      if (other && other.origin !== 'kubernetes') throw new Error(`relay name ${rname} is taken on this node by a relay of origin ${other.origin} (${other.origin === 'dra' ? 'a DRA claim\'s relay for a free VF' : 'the agent\'s own'}): rename the VirtioRelay or use another namespace`);
      status = this.o.relays.apply(spec);
      this.owned.set(rname, { key, spec });
      this.scheduleCheckpoint();
    } catch (err) {
      // the relay cannot even be tracked (e.g. its socket or id clashes): Failed, with why
      const message = errorMessage(err);
      await this.writeStatus(current, failedStatus(current, this.o.nodeName, EventReason.InvalidSpec, message));
      if (this.lastPhase.get(rname) !== 'Failed') {
        this.lastPhase.set(rname, 'Failed');
        await this.kube.event(current, 'Warning', EventReason.InvalidSpec, message);
      }
      return;
    }
    status = this.o.relays.get(rname) ?? status;
    // its change to Ready (or Failed) queues it again, and that is the write
    const hold = this.holdFor(current, status);
    if (hold > 0) return { requeueAfterMs: hold };
    await this.writeStatus(current, toCrStatus(status, current, this.o.nodeName));
    await this.emitTransitions(current, status);
  }

  /** How much longer a relay's passing phase stays unwritten (transientHoldMs); 0: write now. */
  private holdFor(obj: VirtioRelay, s: RelayStatus): number {
    // only before this node's first write: a relay that ran here shows each change at once
    const passing = (s.phase === 'Pending' || s.phase === 'Configuring') && obj.status?.nodeName !== this.o.nodeName;
    if (!passing) {
      this.heldSince.delete(s.name);
      return 0;
    }
    const now = performance.now();
    const since = this.heldSince.get(s.name) ?? now;
    this.heldSince.set(s.name, since);
    const left = since + (this.o.transientHoldMs ?? 3000) - now;
    if (left > 0) return Math.ceil(left);
    this.heldSince.delete(s.name);
    return 0;
  }

  /** Failed with reason PolicyDenied (and one event), nothing else. */
  private async deny(obj: VirtioRelay, rname: string, message: string): Promise<void> {
    await this.writeStatus(obj, failedStatus(obj, this.o.nodeName, EventReason.PolicyDenied, message));
    if (this.lastPhase.get(rname) !== `Failed:${EventReason.PolicyDenied}:${message}`) {
      this.lastPhase.set(rname, `Failed:${EventReason.PolicyDenied}:${message}`);
      await this.kube.event(obj, 'Warning', EventReason.PolicyDenied, message);
    }
  }

  private async removeRelay(rname: string): Promise<void> {
    const st = this.o.relays.get(rname);
    await this.o.relays.remove(rname);
    if (this.owned.delete(rname)) this.scheduleCheckpoint();
    this.lastPhase.delete(rname);
    this.lastGuest.delete(rname);
    this.heldSince.delete(rname);
    if (st?.socketPath) {
      const dir = st.socketPath.slice(0, st.socketPath.lastIndexOf('/'));
      // never node's rm -r: the pod that had the directory may have left links in it
      if (dir.endsWith(`/${rname}`) && (await removeRelayDir(dir, SOCKET_FILE))) this.log.info({ relay: rname, dir }, 'relay directory held more than its socket: removed without following links');
    }
  }

  /** Patches the finalizers; undefined when the object is already gone (404). */
  private async patchMeta(obj: VirtioRelay, meta: { finalizers: string[] }): Promise<VirtioRelay | undefined> {
    // conditioned on the resourceVersion: a 409 requeues with fresh data
    try {
      return await this.kube.patchRelay(obj, { metadata: { finalizers: meta.finalizers } });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  private async writeStatus(obj: VirtioRelay, status: VirtioRelayStatus): Promise<void> {
    if (sameStatus(obj.status, status)) return;
    await this.kube.patchRelayStatus(obj, status);
  }

  private async emitTransitions(obj: VirtioRelay, s: RelayStatus): Promise<void> {
    const prev = this.lastPhase.get(s.name);
    if (prev !== s.phase) {
      this.lastPhase.set(s.name, s.phase);
      const ready = s.conditions.find((c) => c.type === 'Ready');
      // Ready is the status' news (condition Ready, reason RelayReady): an Event per relay
      // would double the agent's writes; failures get one, for kubectl describe
      if (s.phase === 'Failed') {
        await this.kube.event(obj, 'Warning', ready?.reason ?? EventReason.RelayFailed, ready?.message ?? 'relay failed');
      }
    }
    const guest = s.conditions.some((c) => c.type === 'GuestConnected' && c.status === 'True');
    if ((this.lastGuest.get(s.name) ?? false) !== guest) {
      this.lastGuest.set(s.name, guest);
      await this.kube.event(obj, 'Normal', guest ? EventReason.GuestConnected : EventReason.GuestDisconnected, guest ? `a guest connected to ${s.socketPath}` : 'the guest disconnected');
    }
  }
}
