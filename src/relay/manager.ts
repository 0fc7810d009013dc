// RelayManager: the node's one source of desired relay state. Relays arrive from static config,
// ZeroMQ port control or Kubernetes; each is reconciled into the engine on its own serial
// chain, with retries and backoff, so one failing relay never disturbs the others. A relay's
// life is one RelayState (state.ts); its spec is checked in spec.ts, its conditions computed in
// conditions.ts.
import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VioError, errorCode, errorMessage } from '../util/errors.js';
import { MAX_RELAYS } from '../util/limits.js';
import type { EngineEvent } from '../engine/types.js';
import type { RelaySpec, RelayStatus, RelayVf } from './types.js';
import { DEFAULT_RELAY_DEFAULTS, type RelayDefaults, type RelayEngine, type RelayManagerOptions, type VfResolver } from './contracts.js';
import { attachFailed, detached, observeEngine, setCondition } from './conditions.js';
import { Reason, isPermanent, reasonForCode } from './reasons.js';
import { configKey, cpusKey, engineConfig, normalizeSpec, socketPathFor, wantedCpus } from './spec.js';
import { ensureSocketDir, initialStatus, refreshStatus, resolveVf } from './prepare.js';
import { afterDetach, holdsConfig, isAttached, type RelayState } from './state.js';
import { RelayStore, effectiveSpec, type Entry } from './store.js';

/**
 * While a guest is live-migrating, the vhost-user events of its relay are taken into the status
 * this much later (coalesced): the source's events come in the migration's downtime, when QEMU
 * needs every cycle of a core it may share with the agent to send the guest's last state.
 */
export const MIGRATION_QUIET_MS = 100;

const now = (): string => new Date().toISOString();

export class RelayManager extends RelayStore {
  private readonly engine: RelayEngine;
  private readonly defaults: RelayDefaults;
  private readonly resolver: VfResolver | undefined;
  private closed = false;
  private readonly onEngineEvent = (e: EngineEvent): void => this.handleEngineEvent(e);

  constructor(opts: RelayManagerOptions) {
    const retry = opts.retry ?? { initialMs: 1000, maxMs: 60_000 };
    const vfRetry = opts.vfRetry ?? { initialMs: retry.initialMs, maxMs: Math.min(retry.maxMs, 5000) };
    super(opts.logger.child({ component: 'relay' }), opts.maxRelays ?? MAX_RELAYS, retry, vfRetry);
    this.engine = opts.engine;
    this.defaults = { ...DEFAULT_RELAY_DEFAULTS, ...stripUndefined(opts.defaults ?? {}) };
    this.resolver = opts.resolver;
    this.engine.on('event', this.onEngineEvent);
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
    const existing = this.relays.get(spec.name);
    const id = spec.id ?? existing?.id ?? this.relays.freeId();
    const socketPath = socketPathFor(spec, id, this.defaults);
    this.relays.checkClaim(spec.name, id, socketPath);
    if (existing && existing.state.phase !== 'removing') {
      if (JSON.stringify(existing.spec) === JSON.stringify(spec) && existing.id === id) return structuredClone(existing.status);
      const previousId = existing.id;
      existing.spec = spec;
      existing.id = id;
      existing.socketPath = socketPath;
      existing.status.id = id;
      existing.status.socketPath = socketPath;
      refreshStatus(existing.status, existing.spec, this.defaults, existing.attachedMac);
      this.relays.set(existing, previousId);
      existing.attempt = 0;
      this.schedule(existing);
      return structuredClone(existing.status);
    }
    const entry: Entry = {
      spec,
      id,
      socketPath,
      state: { phase: 'pending' },
      attempt: 0,
      vfAttempt: 0,
      // a relay of the same name still being removed: this one starts after it is gone
      chain: existing?.chain ?? Promise.resolve(),
      status: initialStatus(spec, id, socketPath, this.defaults),
    };
    this.relays.set(entry);
    this.log.info({ relay: spec.name, id, origin: spec.origin, socket: socketPath }, 'relay added');
    this.emitChange(entry);
    this.schedule(entry);
    return structuredClone(entry.status);
  }

  /** Removes a relay from the engine, then forgets it (`handover`: its directory stays, docs/upgrade.md). */
  async remove(name: string, opts: { handover?: boolean } = {}): Promise<boolean> {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') return false;
    entry.state = { phase: 'removing', attached: isAttached(entry.state) };
    this.cancelRetry(entry);
    clearTimeout(entry.observeTimer);
    entry.status.phase = 'Terminating';
    this.emitChange(entry);
    entry.chain = entry.chain.then(() => this.detach(entry)).catch((err: unknown) => {
      this.log.error({ relay: name, err: errorMessage(err) }, 'relay removal failed in the engine');
    });
    await entry.chain;
    if (this.relays.delete(entry)) {
      this.resolver?.release(name);
      // a directory of its own (relayDirs) goes with the relay; rmdir leaves one still in use
      if (this.defaults.relayDirs && !opts.handover && !entry.spec.vhostUser.socketPath) await rmdir(dirname(entry.socketPath)).catch(() => undefined);
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
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    let changed = false;
    entry.chain = entry.chain.then(async () => {
      const s = entry.state;
      if (s.phase !== 'attached' && s.phase !== 'vf-lost') return;
      this.cancelRetry(entry);
      await this.engine.detachVf(entry.id);
      this.setState(entry, { phase: 'vf-released', appliedKey: s.appliedKey, appliedCpus: s.appliedCpus, since: now() });
      entry.status.pciAddress = undefined;
      this.resolver?.release(name);
      changed = true;
      this.log.info({ relay: name, id: entry.id }, 'VF detached on request: the socket and the guest stay');
      this.observe(entry);
    });
    await entry.chain;
    // a relay the engine does not hold (its attach failed) has no socket to keep: it goes
    const after = entry.state as RelayState;
    if (!changed && !isAttached(after) && after.phase !== 'removing') return this.remove(name);
    return changed;
  }

  /**
   * Gives a relay whose VF was released (releaseVf) a VF, in place: the guest stays connected
   * and forwarding resumes (port control ADD on a relay number that has a socket). Rejects, and
   * leaves the relay without a VF, when the VF cannot be attached.
   */
  async replaceVf(name: string, vf: RelayVf): Promise<RelayStatus> {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    let failure: unknown;
    entry.chain = entry.chain.then(async () => {
      const s = entry.state;
      if (s.phase !== 'vf-released') {
        failure = new VioError('EBUSY', `relay ${entry.id} has a VF: REMOVE it first`);
        return;
      }
      const spec: RelaySpec = { ...entry.spec, vf: { ...vf } };
      try {
        const resolved = await resolveVf(spec, this.resolver, entry.attachedMac);
        const info = await this.engine.attachVf(entry.id, resolved.vf).catch((err: unknown) => {
          this.resolver?.release(name);
          throw err;
        });
        entry.spec = spec;
        this.setState(entry, { phase: 'attached', appliedKey: configKey(spec, entry.socketPath), appliedCpus: s.appliedCpus });
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
    return structuredClone(entry.status);
  }

  /**
   * Records the MAC a pod's network attachment programmed on the relay's VF (undefined: the
   * attachment is gone). status.mac shows it, and a VF resolved again (re-attach after loss)
   * gets it instead of spec.mac. Programming the VF itself is the caller's job (src/sriov).
   */
  setAttachedMac(name: string, mac: string | undefined): RelayStatus {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    entry.attachedMac = mac?.toLowerCase();
    entry.status.mac = entry.attachedMac ?? entry.spec.mac?.toLowerCase() ?? entry.vfMac;
    this.emitChange(entry);
    return structuredClone(entry.status);
  }

  /** Moves a relay's directions to other worker CPUs (core scheduling). */
  setCpus(name: string, cpus: number[]): RelayStatus {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    entry.spec.cpus = [...cpus];
    this.schedule(entry);
    return structuredClone(entry.status);
  }

  /** Moves an attached relay's directions now (the core scheduler): no new pin, so a relay
   *  without one stays free to move; an overridden pin takes the new CPUs. */
  async moveCpus(name: string, cpus: { vfToVm: number; vmToVf: number }): Promise<void> {
    const entry = this.relays.get(name);
    if (!entry || entry.state.phase === 'removing') throw new VioError('ENOENT', `no relay named "${name}"`);
    const step = entry.chain.then(async () => {
      const s = entry.state;
      if (!holdsConfig(s)) throw new VioError('EAGAIN', `relay ${entry.id} is not in the engine (phase ${entry.status.phase})`);
      await this.engine.setRelayCpus(entry.id, cpus);
      const now = this.engine.relay(entry.id)?.cpus ?? cpus;
      if (entry.spec.cpus) [entry.spec.cpus, s.appliedCpus] = [[now.vfToVm, now.vmToVf], cpusKey(now)];
      entry.status.cpus = { ...now };
      this.emitChange(entry);
    });
    entry.chain = step.catch(() => undefined);
    await step;
  }

  /** Detaches every relay (clean shutdown); the manager accepts nothing afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRetries();
    await Promise.all(this.relays.values().map((e) => this.remove(e.spec.name)));
    this.engine.off('event', this.onEngineEvent);
  }

  /** One step toward the spec: re-attach a lost VF, move CPUs, or (re)attach the relay. */
  protected async reconcile(entry: Entry): Promise<void> {
    if (entry.state.phase === 'removing' || this.closed) return;
    const key = configKey(effectiveSpec(entry), entry.socketPath);
    const s = entry.state;
    if (holdsConfig(s) && s.appliedKey === key) {
      if (s.phase === 'vf-lost') await this.reattachVf(entry);
      await this.applyCpus(entry);
      this.observe(entry);
      return;
    }
    if (isAttached(s)) await this.detach(entry);
    await this.attach(entry, key);
  }

  private async attach(entry: Entry, key: string): Promise<void> {
    const spec = effectiveSpec(entry);
    this.setState(entry, { phase: 'configuring' });
    entry.status.phase = 'Configuring';
    this.emitChange(entry);
    try {
      // vf.none: a socket made up front, without a VF until port control ADDs one
      const resolved = spec.vf.none ? undefined : await resolveVf(spec, this.resolver, entry.attachedMac);
      entry.status.pciAddress = resolved?.display;
      if (resolved?.numaNode !== undefined && spec.numaNode === undefined) entry.status.numaNode = resolved.numaNode;
      await ensureSocketDir(entry.socketPath, spec, this.defaults);
      const cfg = engineConfig(spec, entry.id, entry.socketPath, resolved, this.defaults);
      const info = await this.engine.addRelay(cfg);
      const applied = { appliedKey: key, appliedCpus: cpusKey(cfg.cpus) };
      this.setState(entry, resolved ? { phase: 'attached', ...applied } : { phase: 'vf-released', ...applied, since: now() });
      entry.attempt = 0;
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
      const permanent = isPermanent(code);
      this.setState(entry, { phase: 'failed', reason, permanent });
      attachFailed(entry.status.conditions, reason, message, now());
      this.updateDerived(entry);
      this.log.warn({ relay: spec.name, id: entry.id, code, reason, err: message, retry: !permanent }, 'relay attach failed');
      if (!permanent) this.retryLater(entry);
    }
  }

  private async detach(entry: Entry): Promise<void> {
    if (!isAttached(entry.state)) return;
    try {
      await this.engine.removeRelay(entry.id);
    } catch (err) {
      // ENOENT: the engine no longer has it (e.g. VF removed); nothing left to release
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    this.setState(entry, afterDetach(entry.state));
    detached(entry.status.conditions, now());
    this.updateDerived(entry);
  }

  private async applyCpus(entry: Entry): Promise<void> {
    const s = entry.state;
    const want = wantedCpus(entry.spec);
    if (!holdsConfig(s) || !want || cpusKey(want) === s.appliedCpus) return;
    const cur = this.engine.relay(entry.id)?.cpus;
    const next = { vfToVm: want.vfToVm ?? cur?.vfToVm ?? 0, vmToVf: want.vmToVf ?? cur?.vmToVf ?? 0 };
    await this.engine.setRelayCpus(entry.id, next);
    s.appliedCpus = cpusKey(want);
    entry.status.cpus = next;
    this.log.info({ relay: entry.spec.name, cpus: next }, 'relay moved to other workers');
  }

  /** Reads the engine's view of an attached relay into conditions. */
  private observe(entry: Entry): void {
    const info = this.engine.relay(entry.id);
    const c = entry.status.conditions;
    if (!info) {
      setCondition(c, 'VFAttached', 'False', Reason.NotAttached, 'the engine does not hold this relay', now());
      this.updateDerived(entry);
      return;
    }
    entry.status.cpus = { ...info.cpus };
    // the engine detached the VF (lost, or detached by hand): re-attach it with backoff
    if (info.vfAttached === false && entry.state.phase === 'attached') this.vfGone(entry, info.vfLoss ?? 'detached');
    const st = entry.state;
    const prev = observeEngine(c, info, entry.status.pciAddress ?? info.portName, st.phase === 'vf-lost' ? st.lost : undefined, now(), st.phase === 'vf-released' ? st.since : undefined);
    const guest = c.find((x) => x.type === 'GuestConnected')!;
    if (prev?.status !== guest.status || prev?.reason !== guest.reason) {
      this.log.info({ relay: entry.spec.name, id: entry.id, guestConnected: guest.status, reason: guest.reason }, guest.message);
    }
    this.updateDerived(entry);
  }

  /** Marks the VF lost and schedules its re-attach (the engine keeps the vhost-user side). */
  private vfGone(entry: Entry, cause: string): void {
    const s = entry.state;
    if (s.phase !== 'attached') return;
    this.setState(entry, { phase: 'vf-lost', appliedKey: s.appliedKey, appliedCpus: s.appliedCpus, lost: { cause, since: now() } });
    entry.vfAttempt = 0;
    this.log.warn({ relay: entry.spec.name, id: entry.id, cause, reason: Reason.VFRemoved }, 'VF lost: the guest stays connected, re-attaching the VF when it is back');
    this.retryLater(entry, true);
  }

  /** One attempt to give a relay whose VF was lost its VF back (resolved again: a real VF may
   *  need its driver binding and MAC again). */
  private async reattachVf(entry: Entry): Promise<void> {
    const s = entry.state;
    if (s.phase !== 'vf-lost') return;
    try {
      const resolved = await resolveVf(entry.spec, this.resolver, entry.attachedMac);
      entry.status.pciAddress = resolved.display;
      const info = await this.engine.attachVf(entry.id, resolved.vf);
      this.setState(entry, { phase: 'attached', appliedKey: s.appliedKey, appliedCpus: s.appliedCpus });
      entry.vfAttempt = 0;
      entry.vfMac = info.mac;
      entry.status.mac = entry.attachedMac ?? entry.spec.mac?.toLowerCase() ?? info.mac;
      this.log.info({ relay: entry.spec.name, id: entry.id, port: info.portName, lostSince: s.lost.since }, 'VF re-attached: forwarding again');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') {
        // the engine dropped the whole relay: attach it anew (the guest has to reconnect)
        this.setState(entry, { phase: 'failed', reason: Reason.VFRemoved, permanent: false });
        this.log.warn({ relay: entry.spec.name, id: entry.id }, 'the engine no longer holds the relay; attaching it again');
        this.retryLater(entry);
        return;
      }
      s.lost.lastError = errorMessage(err);
      this.log.debug({ relay: entry.spec.name, id: entry.id, err: s.lost.lastError, attempt: entry.vfAttempt }, 'VF not back yet');
      this.retryLater(entry, true);
    }
  }

  private handleEngineEvent(e: EngineEvent): void {
    const entry = this.relays.getById(e.relayId);
    if (!entry || entry.state.phase === 'removing' || !isAttached(entry.state)) return;
    const relay = entry.spec.name;
    switch (e.type) {
      case 'vf-removed':
        this.vfGone(entry, e.cause ?? 'unplugged');
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
            if (entry.state.phase !== 'removing' && isAttached(entry.state)) this.observe(entry);
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
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
