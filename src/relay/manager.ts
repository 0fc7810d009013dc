// RelayManager: the node's one source of desired relay state. Relays arrive from static config,
// ZeroMQ port control or Kubernetes; each is reconciled into the engine on its own serial
// chain, with retries and backoff, so one failing relay never disturbs the others.
import { EventEmitter } from 'node:events';
import { mkdir, rmdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { Logger } from '../util/log.js';
import { ValidationError, VioError, errorCode, errorMessage } from '../util/errors.js';
import { isMacAddress, isPciAddress } from '../util/identifiers.js';
import { MAX_BOND_MEMBERS, MAX_DEVARGS, MAX_QUEUES, MAX_RELAYS, MAX_SOCKET_PATH, MTU_MAX, MTU_MIN } from '../util/limits.js';
import type { EngineEvent, RelayConfig, RelayInfo, VfSource } from '../engine/types.js';
import type { RelaySpec, RelayStatus, RelayVf, RelayView } from './types.js';
import { deriveReady, initialConditions, phaseFor, setCondition } from './conditions.js';
import { Reason, isPermanent, isSocketReason, reasonForCode } from './reasons.js';
import { allowedVirtualDriver, virtualDeviceDenied } from './pool.js';
import { prepareRelayDir } from './socketdir.js';

/** The part of the engine facade RelayManager drives (src/engine/Engine implements it). */
export interface RelayEngine {
  addRelay(cfg: RelayConfig): Promise<RelayInfo>;
  removeRelay(id: number): Promise<void>;
  setRelayCpus(id: number, cpus: { vfToVm: number; vmToVf: number }): Promise<unknown>;
  /** Attaches a VF to a relay that lost its own, keeping the vhost-user side. Without it the
   *  manager re-adds the whole relay after a VF loss (the guest's socket is closed). */
  attachVf?(id: number, vf: VfSource): Promise<RelayInfo>;
  /** Takes a relay's VF away, keeping the vhost-user side and the guest. */
  detachVf?(id: number): Promise<RelayInfo>;
  relay(id: number): RelayInfo | undefined;
  on(event: 'event', listener: (e: EngineEvent) => void): unknown;
  off(event: 'event', listener: (e: EngineEvent) => void): unknown;
}

export interface ResolvedVf {
  vf: VfSource;
  /** PCI address(es) or devargs, as status shows them. */
  display: string;
  numaNode?: number;
}

/** Turns a relay's VF (address, selector or devargs) into what the engine attaches, and prepares
 *  real VFs (driver binding, MAC). src/sriov provides the host implementation. */
export interface VfResolver {
  resolve(relayName: string, vf: RelayVf, opts: { mac?: string }): Promise<ResolvedVf>;
  release(relayName: string): void;
}

export interface RelayDefaults {
  /** Directory for sockets of relays that give no socketPath. */
  socketDir: string;
  /** File name with exactly one %u for the relay id (virtio-forwarder's pattern). */
  socketNamePattern: string;
  mode: 'client' | 'server';
  queues: number;
  resourceName: string;
  owner?: number;
  group?: number;
  perm?: number;
  /** Each relay without a socketPath gets a directory of its own, <socketDir>/<relay name>/,
   *  (0750, or 2770 with a group) instead of sharing socketDir: for an agent whose device plugin
   *  mounts a relay's socket directory into a pod. */
  relayDirs?: boolean;
  mergeableRxBuffers?: boolean;
  tso?: boolean;
  /** VF MTU of relays that give none (virtio-forwarder's VIRTIOFWD_JUMBO: 9000). */
  mtu?: number;
}

export interface RelayManagerOptions {
  engine: RelayEngine;
  logger: Logger;
  defaults?: Partial<RelayDefaults>;
  resolver?: VfResolver;
  /** Backoff for retries after a failed attach. */
  retry?: { initialMs: number; maxMs: number };
  /** Backoff for re-attaching a lost VF (default: retry's, at most 5 s apart). */
  vfRetry?: { initialMs: number; maxMs: number };
  /** Largest relay id + 1. */
  maxRelays?: number;
}

export const DEFAULT_RELAY_DEFAULTS: RelayDefaults = {
  socketDir: '/tmp/virtio-forwarder',
  socketNamePattern: 'virtio-forwarder%u.sock',
  mode: 'server',
  queues: 1,
  resourceName: 'vio4wd.io/vhostuser',
};

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

interface Entry {
  spec: RelaySpec;
  id: number;
  socketPath: string;
  status: RelayStatus;
  /** The engine holds this relay, with the config whose key is appliedKey. */
  attached: boolean;
  appliedKey: string;
  appliedCpus?: string;
  attempt: number;
  retryTimer?: NodeJS.Timeout;
  /** The VF was taken away on request (port control REMOVE); the vhost-user side stays and no
   *  VF is re-attached until one is given (releaseVf / replaceVf). */
  vfReleased?: { since: string };
  /** The engine lost (and detached) the VF; the vhost-user side is still there. */
  vfLost?: { cause: string; since: string; lastError?: string };
  vfAttempt: number;
  chain: Promise<void>;
  removed: boolean;
  failed: boolean;
  /** JSON of the status last emitted. */
  emitted?: string;
  /** The guest's dirty-page logging is on: a live migration is in progress. */
  dirtyLog?: boolean;
  /** A deferred observe() (see MIGRATION_QUIET_MS). */
  observeTimer?: NodeJS.Timeout;
  /** The MAC a pod's network attachment (vio4wd-cni) programmed on the VF; wins over spec.mac. */
  attachedMac?: string;
  /** The VF's own MAC as the engine reported it at attach. */
  vfMac?: string;
}

/**
 * While a guest is live-migrating, the vhost-user events of its relay are taken into the status
 * this much later (coalesced): the source's events come in the migration's downtime, when QEMU
 * needs every cycle of a core it may share with the agent to send the guest's last state.
 */
export const MIGRATION_QUIET_MS = 100;

export class RelayManager extends EventEmitter implements RelayView {
  private readonly engine: RelayEngine;
  private readonly log: Logger;
  private readonly defaults: RelayDefaults;
  private readonly resolver: VfResolver | undefined;
  private readonly retry: { initialMs: number; maxMs: number };
  private readonly vfRetry: { initialMs: number; maxMs: number };
  private readonly maxRelays: number;
  private readonly entries = new Map<string, Entry>();
  private readonly byId = new Map<number, Entry>();
  private closed = false;
  private readonly onEngineEvent = (e: EngineEvent): void => this.handleEngineEvent(e);

  constructor(opts: RelayManagerOptions) {
    super();
    this.engine = opts.engine;
    this.log = opts.logger.child({ component: 'relay' });
    this.defaults = { ...DEFAULT_RELAY_DEFAULTS, ...stripUndefined(opts.defaults ?? {}) };
    this.resolver = opts.resolver;
    this.retry = opts.retry ?? { initialMs: 1000, maxMs: 60_000 };
    this.vfRetry = opts.vfRetry ?? { initialMs: this.retry.initialMs, maxMs: Math.min(this.retry.maxMs, 5000) };
    this.maxRelays = opts.maxRelays ?? MAX_RELAYS;
    this.engine.on('event', this.onEngineEvent);
  }

  list(): RelayStatus[] {
    return [...this.entries.values()].map((e) => cloneStatus(e.status));
  }

  get(name: string): RelayStatus | undefined {
    const e = this.entries.get(name);
    return e ? cloneStatus(e.status) : undefined;
  }

  getById(id: number): RelayStatus | undefined {
    const e = this.byId.get(id);
    return e ? cloneStatus(e.status) : undefined;
  }

  spec(name: string): RelaySpec | undefined {
    const e = this.entries.get(name);
    return e ? structuredClone(e.spec) : undefined;
  }

  /**
   * Adds or updates a relay's desired state and starts reconciling it. Throws ValidationError
   * for a spec that cannot be tracked at all (bad field, id or socket taken by another relay);
   * everything that can only be found out by trying (VF missing, out of memory) shows up as
   * phase Failed with a reason, retried with backoff.
   */
  apply(input: RelaySpec): RelayStatus {
    if (this.closed) throw new VioError('ESHUTDOWN', 'relay manager is shutting down');
    const spec = normalizeSpec(input, this.defaults);
    const existing = this.entries.get(spec.name);
    const id = spec.id ?? existing?.id ?? this.freeId();
    if (id < 0 || id >= this.maxRelays) {
      throw new ValidationError('id', `relay id ${id} is out of range: use 0..${this.maxRelays - 1}`);
    }
    const other = this.byId.get(id);
    if (other && other.spec.name !== spec.name) {
      throw new ValidationError('id', `relay id ${id} is already used by relay "${other.spec.name}": pick another id or remove that relay`);
    }
    const socketPath = this.socketPathFor(spec, id);
    for (const e of this.entries.values()) {
      if (e.spec.name !== spec.name && e.socketPath === socketPath) {
        throw new ValidationError('vhostUser.socketPath', `socket ${socketPath} is already used by relay "${e.spec.name}": give this relay its own socket path`);
      }
    }
    if (existing && !existing.removed) {
      if (JSON.stringify(existing.spec) === JSON.stringify(spec) && existing.id === id) return cloneStatus(existing.status);
      if (existing.id !== id) this.byId.delete(existing.id);
      existing.spec = spec;
      existing.id = id;
      existing.socketPath = socketPath;
      existing.status.id = id;
      existing.status.socketPath = socketPath;
      this.refreshStaticStatus(existing);
      this.byId.set(id, existing);
      existing.attempt = 0;
      this.schedule(existing);
      return cloneStatus(existing.status);
    }
    const now = new Date().toISOString();
    const entry: Entry = {
      spec,
      id,
      socketPath,
      attached: false,
      appliedKey: '',
      attempt: 0,
      vfAttempt: 0,
      chain: existing?.chain ?? Promise.resolve(),
      removed: false,
      failed: false,
      status: {
        name: spec.name,
        id,
        origin: spec.origin,
        phase: 'Pending',
        conditions: initialConditions(now),
        socketPath,
        mode: spec.vhostUser.mode,
        queues: spec.queues ?? this.defaults.queues,
        numaNode: spec.numaNode ?? 0,
        resourceName: spec.resourceName ?? this.defaults.resourceName,
        healthy: false,
      },
    };
    this.refreshStaticStatus(entry);
    this.entries.set(spec.name, entry);
    this.byId.set(id, entry);
    this.log.info({ relay: spec.name, id, origin: spec.origin, socket: socketPath }, 'relay added');
    this.emitChange(entry);
    this.schedule(entry);
    return cloneStatus(entry.status);
  }

  /** Removes a relay: detaches it from the engine, then forgets it. Resolves when it is gone. */
  async remove(name: string): Promise<boolean> {
    const entry = this.entries.get(name);
    if (!entry || entry.removed) return false;
    entry.removed = true;
    clearTimeout(entry.retryTimer);
    clearTimeout(entry.observeTimer);
    entry.status.phase = 'Terminating';
    this.emitChange(entry);
    entry.chain = entry.chain.then(() => this.detach(entry)).catch((err: unknown) => {
      this.log.error({ relay: name, err: errorMessage(err) }, 'relay removal failed in the engine');
    });
    await entry.chain;
    if (this.entries.get(name) === entry) {
      this.entries.delete(name);
      if (this.byId.get(entry.id) === entry) this.byId.delete(entry.id);
      this.resolver?.release(name);
      // a directory of its own (relayDirs) goes with the relay; rmdir leaves one still in use
      if (this.defaults.relayDirs && !entry.spec.vhostUser.socketPath) await rmdir(dirname(entry.socketPath)).catch(() => undefined);
      this.log.info({ relay: name, id: entry.id }, 'relay removed');
      this.emit('removed', name);
    }
    return true;
  }

  /**
   * Takes the relay's VF away and keeps the relay: its socket and the guest's connection stay,
   * the guest's packets are dropped (counted as not connected) until replaceVf() gives it a VF.
   * This is virtio-forwarder's port control REMOVE. False when it had no VF.
   */
  async releaseVf(name: string): Promise<boolean> {
    const entry = this.entries.get(name);
    if (!entry || entry.removed) throw new VioError('ENOENT', `no relay named "${name}"`);
    if (!this.engine.detachVf) throw new VioError('ENOTSUP', 'this engine cannot detach a VF alone');
    const detachVf = this.engine.detachVf.bind(this.engine);
    let changed = false;
    entry.chain = entry.chain.then(async () => {
      if (entry.vfReleased || entry.removed || !entry.attached) return;
      clearTimeout(entry.retryTimer);
      entry.retryTimer = undefined;
      await detachVf(entry.id);
      entry.vfReleased = { since: new Date().toISOString() };
      entry.vfLost = undefined;
      entry.failed = false;
      entry.status.pciAddress = undefined;
      this.resolver?.release(name);
      changed = true;
      this.log.info({ relay: name, id: entry.id }, 'VF detached on request: the socket and the guest stay');
      this.observe(entry);
    });
    await entry.chain;
    // a relay the engine does not hold (its attach failed) has no socket to keep: it goes
    if (!changed && !entry.attached && !entry.vfReleased && !entry.removed) return this.remove(name);
    return changed;
  }

  /**
   * Gives a relay whose VF was released (releaseVf) a VF, in place: the guest stays connected
   * and forwarding resumes (port control ADD on a relay number that has a socket). Rejects, and
   * leaves the relay without a VF, when the VF cannot be attached.
   */
  async replaceVf(name: string, vf: RelayVf): Promise<RelayStatus> {
    const entry = this.entries.get(name);
    if (!entry || entry.removed) throw new VioError('ENOENT', `no relay named "${name}"`);
    if (!this.engine.attachVf) throw new VioError('ENOTSUP', 'this engine cannot attach a VF alone');
    const attachVf = this.engine.attachVf.bind(this.engine);
    let failure: unknown;
    entry.chain = entry.chain.then(async () => {
      if (!entry.vfReleased || !entry.attached) {
        failure = new VioError('EBUSY', `relay ${entry.id} has a VF: REMOVE it first`);
        return;
      }
      const spec: RelaySpec = { ...entry.spec, vf: { ...vf } };
      try {
        const resolved = await this.resolveVf(spec, entry.attachedMac);
        const info = await attachVf(entry.id, resolved.vf).catch((err: unknown) => {
          this.resolver?.release(name);
          throw err;
        });
        entry.spec = spec;
        entry.appliedKey = configKey(entry);
        entry.vfReleased = undefined;
        entry.status.pciAddress = resolved.display;
        entry.vfMac = info.mac;
        entry.status.mac = entry.attachedMac ?? spec.mac?.toLowerCase() ?? info.mac;
        this.log.info({ relay: name, id: entry.id, vf: resolved.display, port: info.portName }, 'VF attached in place: the guest stays connected');
        this.observe(entry);
      } catch (err) {
        failure = err;
      }
    });
    await entry.chain;
    if (failure) throw failure;
    return cloneStatus(entry.status);
  }

  /**
   * Records the MAC a pod's network attachment programmed on the relay's VF (undefined: the
   * attachment is gone). status.mac shows it, and a VF resolved again (re-attach after loss)
   * gets it instead of spec.mac. Programming the VF itself is the caller's job (src/sriov).
   */
  setAttachedMac(name: string, mac: string | undefined): RelayStatus {
    const entry = this.entries.get(name);
    if (!entry || entry.removed) throw new VioError('ENOENT', `no relay named "${name}"`);
    entry.attachedMac = mac?.toLowerCase();
    entry.status.mac = entry.attachedMac ?? entry.spec.mac?.toLowerCase() ?? entry.vfMac;
    this.emitChange(entry);
    return cloneStatus(entry.status);
  }

  /** Moves a relay's directions to other worker CPUs (core scheduling). */
  setCpus(name: string, cpus: number[]): RelayStatus {
    const entry = this.entries.get(name);
    if (!entry || entry.removed) throw new VioError('ENOENT', `no relay named "${name}"`);
    entry.spec.cpus = [...cpus];
    this.schedule(entry);
    return cloneStatus(entry.status);
  }

  /** Resolves once every queued reconcile step has run (tests and orderly shutdown). */
  async settled(): Promise<void> {
    let chains: Promise<void>[];
    do {
      chains = [...this.entries.values()].map((e) => e.chain);
      await Promise.all(chains);
    } while ([...this.entries.values()].some((e, i) => e.chain !== chains[i]));
  }

  /** Detaches every relay (clean shutdown); the manager accepts nothing afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.keys()].map((n) => this.remove(n)));
    this.engine.off('event', this.onEngineEvent);
  }

  private freeId(): number {
    // virtio-forwarder numbers relays from 1
    for (let id = 1; id < this.maxRelays; id++) if (!this.byId.has(id)) return id;
    throw new VioError('ENOSPC', `all ${this.maxRelays - 1} relay ids are in use`);
  }

  private socketPathFor(spec: RelaySpec, id: number): string {
    const v = spec.vhostUser;
    if (v.socketPath) return v.socketPath;
    const file = this.defaults.socketNamePattern.replace('%u', String(id));
    const dir = v.socketDir ?? this.defaults.socketDir;
    return this.defaults.relayDirs ? join(dir, spec.name, file) : join(dir, file);
  }

  private refreshStaticStatus(entry: Entry): void {
    const s = entry.status;
    const spec = entry.spec;
    s.mode = spec.vhostUser.mode;
    s.queues = spec.queues ?? this.defaults.queues;
    s.resourceName = spec.resourceName ?? this.defaults.resourceName;
    s.mac = entry.attachedMac ?? spec.mac?.toLowerCase() ?? s.mac;
    s.mtu = spec.mtu ?? this.defaults.mtu;
    s.ident = spec.ident;
    if (spec.numaNode !== undefined) s.numaNode = spec.numaNode;
    if (spec.generation !== undefined) s.observedGeneration = spec.generation;
  }

  private schedule(entry: Entry): void {
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    entry.chain = entry.chain
      .then(() => this.reconcile(entry))
      .catch((err: unknown) => this.log.error({ relay: entry.spec.name, err: errorMessage(err) }, 'reconcile crashed'));
  }

  private async reconcile(entry: Entry): Promise<void> {
    if (entry.removed || this.closed) return;
    const key = configKey(entry);
    if (entry.attached && entry.appliedKey === key) {
      if (entry.vfLost) await this.reattachVf(entry);
      await this.applyCpus(entry);
      this.observe(entry);
      return;
    }
    if (entry.attached) await this.detach(entry);
    await this.attach(entry, key);
  }

  private async attach(entry: Entry, key: string): Promise<void> {
    const { spec } = entry;
    const now = () => new Date().toISOString();
    entry.failed = false;
    entry.status.phase = 'Configuring';
    this.emitChange(entry);
    try {
      const resolved = await this.resolveVf(spec, entry.attachedMac);
      entry.status.pciAddress = resolved.display;
      if (resolved.numaNode !== undefined && spec.numaNode === undefined) entry.status.numaNode = resolved.numaNode;
      await this.ensureSocketDir(entry);
      const cfg = this.engineConfig(entry, resolved);
      const info = await this.engine.addRelay(cfg);
      entry.attached = true;
      entry.appliedKey = key;
      entry.appliedCpus = cpusKey(cfg.cpus);
      entry.attempt = 0;
      entry.vfLost = undefined;
      entry.vfReleased = undefined;
      entry.vfAttempt = 0;
      entry.status.numaNode = info.numaNode;
      entry.vfMac = info.mac;
      entry.status.mac = entry.attachedMac ?? spec.mac?.toLowerCase() ?? info.mac;
      entry.status.cpus = { ...info.cpus };
      this.log.info({ relay: spec.name, id: entry.id, port: info.portName, socket: info.socketPath }, 'relay attached');
      this.observe(entry);
    } catch (err) {
      const code = errorCode(err) ?? 'EIO';
      const reason = reasonForCode(code);
      const message = errorMessage(err);
      entry.failed = true;
      const t = now();
      const c = entry.status.conditions;
      if (isSocketReason(reason)) {
        setCondition(c, 'SocketReady', 'False', reason, message, t);
      } else {
        setCondition(c, 'VFAttached', 'False', reason, message, t);
      }
      setCondition(c, 'GuestConnected', 'False', Reason.NotAttached, 'relay is not attached', t);
      this.updateDerived(entry);
      const permanent = isPermanent(code);
      this.log.warn({ relay: spec.name, id: entry.id, code, reason, err: message, retry: !permanent }, 'relay attach failed');
      if (!permanent) this.retryLater(entry);
    }
  }

  /** Schedules the next attempt with exponential backoff: of attaching the relay, or (vf) of
   *  re-attaching its lost VF, each with its own policy and attempt count. */
  private retryLater(entry: Entry, vf = false): void {
    const policy = vf ? this.vfRetry : this.retry;
    const attempt = vf ? entry.vfAttempt++ : entry.attempt++;
    const delay = Math.min(policy.maxMs, policy.initialMs * 2 ** attempt);
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => this.schedule(entry), delay);
  }

  private async detach(entry: Entry): Promise<void> {
    if (!entry.attached) return;
    try {
      await this.engine.removeRelay(entry.id);
    } catch (err) {
      // ENOENT: the engine no longer has it (e.g. VF removed); nothing left to release
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    entry.attached = false;
    entry.appliedKey = '';
    entry.vfLost = undefined;
    const t = new Date().toISOString();
    setCondition(entry.status.conditions, 'VFAttached', 'False', Reason.Detached, 'relay detached from the engine', t);
    setCondition(entry.status.conditions, 'SocketReady', 'False', Reason.Detached, 'socket closed', t);
    setCondition(entry.status.conditions, 'GuestConnected', 'False', Reason.Detached, 'relay detached', t);
    this.updateDerived(entry);
  }

  private async applyCpus(entry: Entry): Promise<void> {
    const want = this.wantedCpus(entry.spec);
    if (!want || cpusKey(want) === entry.appliedCpus) return;
    const cur = this.engine.relay(entry.id)?.cpus;
    const next = { vfToVm: want.vfToVm ?? cur?.vfToVm ?? 0, vmToVf: want.vmToVf ?? cur?.vmToVf ?? 0 };
    await this.engine.setRelayCpus(entry.id, next);
    entry.appliedCpus = cpusKey(want);
    entry.status.cpus = next;
    this.log.info({ relay: entry.spec.name, cpus: next }, 'relay moved to other workers');
  }

  /** Reads the engine's view of an attached relay into conditions. */
  private observe(entry: Entry): void {
    const info = this.engine.relay(entry.id);
    const t = new Date().toISOString();
    const c = entry.status.conditions;
    if (!info) {
      setCondition(c, 'VFAttached', 'False', Reason.NotAttached, 'the engine does not hold this relay', t);
      this.updateDerived(entry);
      return;
    }
    entry.status.cpus = { ...info.cpus };
    const vf = entry.status.pciAddress ?? info.portName;
    if (info.vfAttached === false && entry.vfReleased) {
      setCondition(c, 'VFAttached', 'False', Reason.NoVF, `no VF since ${entry.vfReleased.since} (removed by port control); the guest stays connected, its packets are dropped until a VF is added`, t);
    } else if (info.vfAttached === false) {
      // the engine detached the VF (lost, or detached by hand): re-attach it with backoff
      if (!entry.vfLost) this.vfGone(entry, info.vfLoss ?? 'detached');
      const lost = entry.vfLost!;
      const last = lost.lastError ? `; last attempt: ${lost.lastError}` : '';
      setCondition(c, 'VFAttached', 'False', Reason.VFRemoved, `VF ${vf} is gone (${lost.cause}) since ${lost.since}; the guest stays connected, its packets are dropped until the VF is back (re-attaching with backoff${last})`, t);
    } else if (info.linkUp) {
      setCondition(c, 'VFAttached', 'True', Reason.Attached, `VF ${vf} attached as DPDK port ${info.portId}`, t);
    } else {
      setCondition(c, 'VFAttached', 'False', Reason.LinkDown, `VF ${vf} is attached but its link is down`, t);
    }
    if (info.mode === 'server') {
      setCondition(c, 'SocketReady', 'True', Reason.Listening, `listening on ${info.socketPath}`, t);
    } else {
      setCondition(c, 'SocketReady', 'True', Reason.Connecting, `connecting to ${info.socketPath} (the VM side creates it); reconnects when it goes away`, t);
    }
    const [status, reason, message] = guestCondition(info);
    const prev = c.find((x) => x.type === 'GuestConnected');
    const was = prev ? `${prev.status}/${prev.reason}` : '';
    setCondition(c, 'GuestConnected', status, reason, message, t);
    if (was !== `${status}/${reason}`) this.log.info({ relay: entry.spec.name, id: entry.id, guestConnected: status, reason }, message);
    this.updateDerived(entry);
  }

  /** Marks the VF lost and schedules its re-attach (the engine keeps the vhost-user side). */
  private vfGone(entry: Entry, cause: string): void {
    entry.vfLost = { cause, since: new Date().toISOString() };
    entry.failed = true;
    entry.vfAttempt = 0;
    this.log.warn({ relay: entry.spec.name, id: entry.id, cause, reason: Reason.VFRemoved }, 'VF lost: the guest stays connected, re-attaching the VF when it is back');
    this.retryLater(entry, true);
  }

  /** One attempt to give a relay whose VF was lost its VF back (resolved again: a real VF may
   *  need its driver binding and MAC again). */
  private async reattachVf(entry: Entry): Promise<void> {
    const lost = entry.vfLost;
    if (!lost || !this.engine.attachVf) return;
    try {
      const resolved = await this.resolveVf(entry.spec, entry.attachedMac);
      entry.status.pciAddress = resolved.display;
      const info = await this.engine.attachVf(entry.id, resolved.vf);
      entry.vfLost = undefined;
      entry.vfAttempt = 0;
      entry.failed = false;
      entry.vfMac = info.mac;
      entry.status.mac = entry.attachedMac ?? entry.spec.mac?.toLowerCase() ?? info.mac;
      this.log.info({ relay: entry.spec.name, id: entry.id, port: info.portName, lostSince: lost.since }, 'VF re-attached: forwarding again');
    } catch (err) {
      lost.lastError = errorMessage(err);
      this.log.debug({ relay: entry.spec.name, id: entry.id, err: lost.lastError, attempt: entry.vfAttempt }, 'VF not back yet');
      this.retryLater(entry, true);
    }
  }

  private updateDerived(entry: Entry): void {
    const t = new Date().toISOString();
    const ready = deriveReady(entry.status.conditions, t);
    entry.status.healthy = ready && entry.attached;
    const configuring = !entry.failed && !entry.attached;
    entry.status.phase = phaseFor(ready, entry.failed, entry.removed, configuring);
    this.emitChange(entry);
  }

  private handleEngineEvent(e: EngineEvent): void {
    const entry = this.byId.get(e.relayId);
    if (!entry || entry.removed || !entry.attached) return;
    const relay = entry.spec.name;
    switch (e.type) {
      case 'vf-removed':
        if (!this.engine.attachVf) {
          this.vfRemovedWholeRelay(entry);
          return;
        }
        if (!entry.vfLost) this.vfGone(entry, e.cause ?? 'unplugged');
        break;
      case 'dirty-log':
        entry.dirtyLog = e.on;
        this.log.info({ relay, id: entry.id, dirtyLogging: e.on }, e.on ? 'live migration of the guest started (dirty-page logging on)' : 'dirty-page logging off');
        break;
      case 'vring-state':
      case 'guest-disconnected':
      case 'vhost-connection':
        if (entry.dirtyLog || (e.type === 'guest-disconnected' && e.departure === 'migrating-out')) {
          if (e.type === 'guest-disconnected') entry.dirtyLog = false;
          entry.observeTimer ??= setTimeout(() => {
            entry.observeTimer = undefined;
            if (!entry.removed && entry.attached) this.observe(entry);
          }, MIGRATION_QUIET_MS);
          return;
        }
        break;
      case 'link':
        this.log.info({ relay, id: entry.id, up: e.up }, e.up ? 'VF link up' : 'VF link down');
        break;
      default:
        break;
    }
    this.observe(entry);
  }

  /** VF loss with an engine that cannot re-attach a VF alone: detach the relay, re-add it with
   *  backoff until the VF is back (the guest's socket is closed meanwhile). */
  private vfRemovedWholeRelay(entry: Entry): void {
    const t = new Date().toISOString();
    entry.failed = true;
    setCondition(entry.status.conditions, 'VFAttached', 'False', Reason.VFRemoved, 'the VF was removed from the host; reattaching when it comes back', t);
    this.updateDerived(entry);
    this.log.warn({ relay: entry.spec.name, id: entry.id }, 'VF removed');
    entry.chain = entry.chain
      .then(() => this.detach(entry))
      .then(() => {
        entry.failed = true;
        setCondition(entry.status.conditions, 'VFAttached', 'False', Reason.VFRemoved, 'the VF was removed from the host; reattaching when it comes back', new Date().toISOString());
        this.updateDerived(entry);
        this.retryLater(entry);
      })
      .catch((err: unknown) => this.log.error({ relay: entry.spec.name, err: errorMessage(err) }, 'detach after VF removal failed'));
  }

  /** `attachedMac`: a pod attachment's MAC, which a re-resolved VF must keep. */
  private async resolveVf(spec: RelaySpec, attachedMac?: string): Promise<ResolvedVf> {
    const vf = spec.vf;
    if (this.resolver) return this.resolver.resolve(spec.name, vf, { mac: attachedMac ?? spec.mac });
    if (vf.devargs) {
      if (vf.pool && !allowedVirtualDriver(vf.devargs, vf.pool.virtualDevices)) throw virtualDeviceDenied(vf.pool);
      return { vf: { devargs: vf.devargs }, display: vf.devargs };
    }
    if (vf.pool && vf.pciAddresses?.length) throw new VioError('EPERM', `pool ${vf.pool.name}: this agent has no VF discovery to check ${vf.pciAddresses.join(',')} against the pool`);
    if (vf.pciAddresses?.length) {
      return {
        vf: { pciAddresses: vf.pciAddresses, bondMode: vf.bondMode, bondName: vf.bondName },
        display: vf.pciAddresses.join(','),
      };
    }
    throw new VioError('EINVAL', 'vf.selector needs VF discovery, which this agent was started without');
  }

  private async ensureSocketDir(entry: Entry): Promise<void> {
    const dir = dirname(entry.socketPath);
    const own = entry.spec.vhostUser.directory;
    if (own) {
      await prepareRelayDir(dir, own);
      return;
    }
    const managed = !entry.spec.vhostUser.socketPath;
    if (managed && this.defaults.relayDirs) {
      await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
      const v = entry.spec.vhostUser;
      const uid = typeof v.owner === 'number' ? v.owner : (this.defaults.owner ?? 0);
      const gid = typeof v.group === 'number' ? v.group : this.defaults.group;
      await prepareRelayDir(dir, { uid, gid: gid ?? 0, mode: gid !== undefined ? 0o2770 : 0o750 });
      return;
    }
    if (managed) {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      return;
    }
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) throw new VioError('ENOENT', `socket directory ${dir} is not a directory`);
    } catch (err) {
      if (err instanceof VioError) throw err;
      throw new VioError('ENOENT', `socket directory ${dir} does not exist: create it or fix vhostUser.socketPath`);
    }
  }

  private wantedCpus(spec: RelaySpec): { vfToVm?: number; vmToVf?: number } | undefined {
    const cpus = spec.cpus;
    if (!cpus || cpus.length === 0) return undefined;
    return { vfToVm: cpus[0], vmToVf: cpus[1] ?? cpus[0] };
  }

  private engineConfig(entry: Entry, resolved: ResolvedVf): RelayConfig {
    const { spec } = entry;
    const v = spec.vhostUser;
    const cfg: RelayConfig = {
      id: entry.id,
      vf: resolved.vf,
      socketPath: entry.socketPath,
      mode: v.mode,
      queues: spec.queues ?? this.defaults.queues,
    };
    if (spec.guestQueues !== undefined) cfg.vhostQueues = Math.max(spec.guestQueues, cfg.queues);
    const owner = typeof v.owner === 'number' ? v.owner : this.defaults.owner;
    const group = typeof v.group === 'number' ? v.group : this.defaults.group;
    const perm = v.perm !== undefined ? parseInt(v.perm, 8) : this.defaults.perm;
    if (owner !== undefined) cfg.socketOwner = owner;
    if (group !== undefined) cfg.socketGroup = group;
    if (perm !== undefined) cfg.socketPerm = perm;
    const mtu = spec.mtu ?? this.defaults.mtu;
    if (mtu !== undefined) cfg.mtu = mtu;
    if (this.defaults.mergeableRxBuffers !== undefined) cfg.mergeableRxBuffers = this.defaults.mergeableRxBuffers;
    if (this.defaults.tso !== undefined) cfg.tso = this.defaults.tso;
    const numa = spec.numaNode ?? resolved.numaNode;
    if (numa !== undefined) cfg.numaNode = numa;
    const cpus = this.wantedCpus(spec);
    if (cpus) cfg.cpus = cpus;
    return cfg;
  }

  /** Emits 'change' when the status differs from what was last emitted. */
  private emitChange(entry: Entry): void {
    if (this.entries.get(entry.spec.name) !== entry) return;
    const snapshot = JSON.stringify(entry.status);
    if (snapshot === entry.emitted) return;
    entry.emitted = snapshot;
    this.emit('change', cloneStatus(entry.status));
  }
}

/**
 * GuestConnected from the engine's view: how the guest arrived (MigratedIn after a live
 * migration), a migration in progress (MigrationInProgress: dirty-page logging on), and how it
 * left (MigratingOut: it stopped with dirty-page logging on, the source side of a live
 * migration; it stays so until the next guest). The agent counts migrations from these reasons.
 */
export function guestCondition(info: RelayInfo): ['True' | 'False', Reason, string] {
  if (info.guestConnected) {
    const q = `${info.enabledQueues} vring(s) enabled`;
    if (info.guestFeatures?.dirtyLogging) return ['True', Reason.MigrationInProgress, `guest connected, live migration in progress (dirty-page logging on), ${q}`];
    switch (info.guestArrival) {
      case 'migrated-in':
        return ['True', Reason.MigratedIn, `guest arrived by live migration, ${q}`];
      case 'reconnected':
        return ['True', Reason.GuestConnected, `guest reconnected with its vrings restored, ${q}`];
      case 'resumed':
        return ['True', Reason.GuestConnected, `guest resumed, ${q}`];
      default:
        return ['True', Reason.GuestConnected, `guest connected, ${q}`];
    }
  }
  if (info.guestDeparture === 'migrating-out') {
    return info.socketConnected
      ? ['False', Reason.MigratingOut, 'the guest stopped here with dirty-page logging on: it is being live-migrated away (its source QEMU still holds the socket)']
      : ['False', Reason.MigratingOut, 'the guest left this relay by live migration (the source QEMU closed the socket); waiting for a guest'];
  }
  if (info.socketConnected) return ['False', Reason.WaitingForGuest, 'a VM is connected to the socket, its virtio device is not running (booting, stopped or waiting for an incoming migration)'];
  return ['False', Reason.WaitingForGuest, 'no guest on the socket yet'];
}

/** Checks and fills a spec; every error names the field and the fix. */
export function normalizeSpec(input: RelaySpec, defaults: RelayDefaults = DEFAULT_RELAY_DEFAULTS): RelaySpec {
  const spec = structuredClone(input);
  if (!NAME_RE.test(spec.name ?? '')) {
    throw new ValidationError('name', `"${spec.name}" is not a valid relay name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`);
  }
  if (spec.id !== undefined && (!Number.isInteger(spec.id) || spec.id < 0)) {
    throw new ValidationError('id', `${spec.id} is not a relay id: use a whole number >= 0`);
  }
  const vf = spec.vf ?? {};
  const sources = [vf.pciAddresses?.length ? 1 : 0, vf.selector ? 1 : 0, vf.devargs ? 1 : 0].reduce((a, b) => a + b, 0);
  if (sources !== 1) {
    throw new ValidationError('vf', 'give exactly one of vf.pciAddress(es), vf.selector or vf.devargs');
  }
  if ((vf.pciAddresses?.length ?? 0) > MAX_BOND_MEMBERS) {
    throw new ValidationError('vf.pciAddresses', `${vf.pciAddresses!.length} VFs: a bond has at most ${MAX_BOND_MEMBERS}`);
  }
  if (vf.devargs !== undefined && vf.devargs.length > MAX_DEVARGS) {
    throw new ValidationError('vf.devargs', `${vf.devargs.length} characters: the engine takes devargs of at most ${MAX_DEVARGS}`);
  }
  for (const [i, a] of (vf.pciAddresses ?? []).entries()) {
    if (!isPciAddress(a)) throw new ValidationError(`vf.pciAddresses[${i}]`, `"${a}" is not a PCI address: use the form 0000:03:00.1`);
  }
  if (vf.bondMode !== undefined && (!Number.isInteger(vf.bondMode) || vf.bondMode < 0 || vf.bondMode > 6)) {
    throw new ValidationError('vf.bondMode', `${vf.bondMode} is not a bond mode: use 0..6`);
  }
  spec.vhostUser = { ...spec.vhostUser, mode: spec.vhostUser?.mode ?? defaults.mode };
  const v = spec.vhostUser;
  if (v.mode !== 'client' && v.mode !== 'server') {
    throw new ValidationError('vhostUser.mode', `"${String(v.mode)}" is not a mode: use client or server`);
  }
  if (v.socketPath !== undefined && !isAbsolute(v.socketPath)) {
    throw new ValidationError('vhostUser.socketPath', `"${v.socketPath}" must be an absolute path`);
  }
  if (v.socketPath !== undefined && Buffer.byteLength(v.socketPath) > MAX_SOCKET_PATH) {
    throw new ValidationError('vhostUser.socketPath', `${v.socketPath} is ${Buffer.byteLength(v.socketPath)} bytes, more than a unix socket path takes (${MAX_SOCKET_PATH}): use a shorter name or socket directory`);
  }
  if (v.socketDir !== undefined && !isAbsolute(v.socketDir)) {
    throw new ValidationError('vhostUser.socketDir', `"${v.socketDir}" must be an absolute path`);
  }
  for (const k of ['owner', 'group'] as const) {
    const o = v[k];
    if (typeof o === 'string' && /^\d+$/.test(o)) v[k] = Number(o);
    else if (typeof o === 'string') throw new ValidationError(`vhostUser.${k}`, `"${o}" must be resolved to a number before the relay is applied (the agent does it through NSS)`);
  }
  if (v.perm !== undefined && !/^0?[0-7]{3}$/.test(v.perm)) {
    throw new ValidationError('vhostUser.perm', `"${v.perm}" is not a permission: use octal digits like 0660`);
  }
  if (spec.guestQueues !== undefined && (!Number.isInteger(spec.guestQueues) || spec.guestQueues < 1 || spec.guestQueues > MAX_QUEUES)) {
    throw new ValidationError('guestQueues', `${spec.guestQueues} is out of range: use 1..${MAX_QUEUES}`);
  }
  if (spec.queues !== undefined && (!Number.isInteger(spec.queues) || spec.queues < 1 || spec.queues > MAX_QUEUES)) {
    throw new ValidationError('queues', `${spec.queues} queue pairs is out of range: use 1..${MAX_QUEUES}`);
  }
  if (spec.mac !== undefined && !isMacAddress(spec.mac)) {
    throw new ValidationError('mac', `"${spec.mac}" is not a MAC address: use the form 52:54:00:12:34:56`);
  }
  if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < MTU_MIN || spec.mtu > MTU_MAX)) {
    throw new ValidationError('mtu', `${spec.mtu} is out of range: use ${MTU_MIN}..${MTU_MAX}`);
  }
  if (spec.resourceName !== undefined && !/^[a-z0-9.-]+\/[a-zA-Z0-9._-]+$/.test(spec.resourceName)) {
    throw new ValidationError('resourceName', `"${spec.resourceName}" is not a resource name: use vio4wd.io/<pool>`);
  }
  for (const [i, c] of (spec.cpus ?? []).entries()) {
    if (!Number.isInteger(c) || c < 0) throw new ValidationError(`cpus[${i}]`, `${c} is not a CPU number`);
  }
  if ((spec.cpus?.length ?? 0) > 2) throw new ValidationError('cpus', 'give one CPU (both directions) or two (VF->VM, VM->VF)');
  return spec;
}

function configKey(entry: Entry): string {
  const s = entry.spec;
  // CPUs are applied live, everything else needs a re-attach
  // a pool that changes (an admin edits the policy) is checked at the next attach and does
  // not interrupt a running relay
  return JSON.stringify([{ ...s.vf, pool: undefined }, s.vhostUser, entry.socketPath, s.queues, s.guestQueues, s.mtu, s.mac, s.numaNode]);
}

function cpusKey(c: { vfToVm?: number; vmToVf?: number } | undefined): string {
  return c ? `${c.vfToVm ?? '-'}/${c.vmToVf ?? '-'}` : '';
}

function cloneStatus(s: RelayStatus): RelayStatus {
  return structuredClone(s);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

