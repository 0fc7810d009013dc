// The node's VirtioForwarderNode and Lease. Liveness is the Lease alone (renewTime moved every
// renew interval); the status (inventory, relay counts, conditions) is compared with the object
// as the apiserver has it (a watch of this one object) and written only when it differs, as a
// merge patch of the fields that changed. So a node at rest costs the apiserver one small Lease
// update per interval, and the operator's watch of VirtioForwarderNodes stays quiet.
import type { Logger } from '../../util/log.js';
import type { RelayStatus } from '../../relay/types.js';
import {
  NodeLease,
  NotFoundError,
  kubeErrorMessage,
  mergeConditions,
  type KubeClients,
  type Resources,
  type ResilientInformer,
  type VirtioForwarderNode,
  type VirtioForwarderNodeStatus,
} from '../../kube/index.js';
import { nodeConditionInputs, type PluginState } from './conditions.js';

/** What the agent reports of its node; relay counts, conditions and generation are added here. */
export type NodeInventory = Pick<VirtioForwarderNodeStatus, 'vfs' | 'hugepages' | 'workerCpus' | 'engine'>;

export interface NodePublisherOptions {
  clients: KubeClients;
  api: Resources;
  nodeName: string;
  logger: Logger;
  fieldManager: string;
  inventory: () => Promise<NodeInventory>;
  relays: () => RelayStatus[];
  /** Pools of the device plugin and whether kubelet has them; undefined: device plugin off. */
  devicePlugins?: () => readonly PluginState[] | undefined;
  /** Namespace of the node's Lease (the agent's). */
  leaseNamespace: string;
  /** Seconds between Lease renewals (default 10). */
  leaseRenewSeconds?: number;
  /** Seconds between looks at the inventory (written only when it changed); default the renew interval. */
  refreshSeconds?: number;
  /** Seconds at least between two writes for relay changes (default 5): relays that start
   *  together (a burst of VirtioRelays) change the counts in one write, not one each. */
  coalesceSeconds?: number;
}

export class NodePublisher {
  readonly lease: NodeLease;
  private readonly log: Logger;
  private readonly informer: ResilientInformer<VirtioForwarderNode>;
  /** The object as the apiserver last showed it (watch or a write's answer, the newer). */
  private current: VirtioForwarderNode | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** a handover is in progress: the status waits (the relays are moving), the Lease does not */
  private held = false;
  /** performance.now() of the last status write */
  private lastWrite = -Infinity;
  /** Status writes done (tests, bench). */
  writes = 0;

  constructor(private readonly o: NodePublisherOptions) {
    this.log = o.logger;
    this.lease = new NodeLease({
      clients: o.clients,
      namespace: o.leaseNamespace,
      nodeName: o.nodeName,
      logger: o.logger,
      fieldManager: o.fieldManager,
      ...(o.leaseRenewSeconds !== undefined ? { renewSeconds: o.leaseRenewSeconds } : {}),
    });
    const seen = (obj: VirtioForwarderNode): void => {
      this.observe(obj);
      this.changed(); // someone else wrote it (the operator's AgentNotReporting): level it again
    };
    this.informer = o.api.nodes.informer({
      fieldSelector: `metadata.name=${o.nodeName}`,
      logger: o.logger,
      onAdd: seen,
      onUpdate: seen,
      onDelete: () => {
        this.current = undefined;
        this.changed();
      },
    });
  }

  /** Takes the Lease, then watches the object and publishes the status once. */
  async start(): Promise<void> {
    await this.renewLease();
    await this.informer.start();
    await this.informer.synced();
    this.current = this.informer.get(this.o.nodeName) ?? this.current;
    await this.publish();
    const every = (this.o.refreshSeconds ?? this.lease.renewMs / 1000) * 1000;
    const refresh = (): void => {
      this.refreshTimer = setTimeout(() => {
        void this.publish().finally(() => !this.stopped && refresh());
      }, every);
    };
    refresh();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.leaseTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.soon);
    await this.running;
    await this.informer.stop();
  }

  /** Holds the status writes (a handover: relay counts would drop as the relays leave) or lets
   *  them go again (the handover was given up), with one publish then. */
  hold(on: boolean): void {
    this.held = on;
    if (!on) this.changed();
  }

  /** Something in the status may have changed: publish within a second, or coalesceSeconds
   *  after the last write if that is later. */
  changed(): void {
    if (this.soon || this.stopped || this.held) return;
    const wait = Math.max(1000, this.lastWrite + (this.o.coalesceSeconds ?? 5) * 1000 - performance.now());
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.publish();
    }, wait);
  }

  private async renewLease(): Promise<void> {
    if (this.stopped) return;
    const ok = await this.lease.renew();
    if (this.stopped) return;
    // after a failure, again soon (kubelet backs off to 7 s); else at the interval
    this.leaseTimer = setTimeout(() => void this.renewLease(), ok ? this.lease.renewMs : Math.min(this.lease.renewMs, 2000));
  }

  /** One publish at a time; a request meanwhile runs once more after it. */
  publish(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.publishOnce();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async publishOnce(): Promise<void> {
    if (this.stopped || this.held) return;
    try {
      let cur = this.current;
      if (!cur) {
        cur = await this.o.api.nodes.create(this.o.nodeName);
        this.observe(cur);
      }
      const status = await this.desired(cur);
      const patch = mergePatchOf(cur.status ?? {}, status);
      if (patch === undefined) return;
      this.lastWrite = performance.now();
      this.observe(await this.o.api.nodes.patchStatus(this.o.nodeName, patch));
      this.writes++;
    } catch (err) {
      this.log.warn({ err: kubeErrorMessage(err) }, 'could not publish VirtioForwarderNode; retrying');
      if (err instanceof NotFoundError) this.current = undefined; // deleted: create it again
      this.changed();
    }
  }

  private async desired(cur: VirtioForwarderNode): Promise<VirtioForwarderNodeStatus> {
    const inv = await this.o.inventory();
    const relays = this.o.relays();
    const generation = cur.metadata.generation;
    const devicePlugin = this.o.devicePlugins?.();
    const inputs = nodeConditionInputs({ engine: inv.engine, hugepages: inv.hugepages, ...(devicePlugin ? { devicePlugin } : {}) });
    return {
      ...inv,
      relays: {
        total: relays.length,
        ready: relays.filter((r) => r.phase === 'Ready').length,
        failed: relays.filter((r) => r.phase === 'Failed').length,
      },
      conditions: mergeConditions(cur.status?.conditions, inputs, generation, new Date()),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  }

  /** Keeps the newer of what we have and obj (resourceVersions of one object only grow). */
  private observe(obj: VirtioForwarderNode): void {
    const cur = this.current?.metadata.resourceVersion;
    const next = obj.metadata.resourceVersion;
    if (cur && next && /^\d+$/.test(cur) && /^\d+$/.test(next) && BigInt(next) < BigInt(cur)) return;
    this.current = obj;
  }
}

/**
 * A JSON merge patch (RFC 7386) that turns from into to: only the fields that differ, null for
 * those gone; arrays whole. undefined when nothing differs.
 */
export function mergePatchOf(from: unknown, to: unknown): unknown {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(from) || !isObj(to)) return canonical(from) === canonical(to) ? undefined : to;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(to)) {
    if (v === undefined) continue;
    if (!(k in from) || from[k] === undefined) {
      out[k] = v;
      continue;
    }
    const d = mergePatchOf(from[k], v);
    if (d !== undefined) out[k] = d;
  }
  for (const k of Object.keys(from)) if (from[k] !== undefined && (!(k in to) || to[k] === undefined)) out[k] = null;
  return Object.keys(out).length ? out : undefined;
}

/** JSON with object keys sorted: the apiserver hands objects back with their keys in order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}
