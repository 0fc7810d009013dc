// RelayReconciler: the engine side of RelayManager. It turns a relay's desired spec into the
// engine's state, one step at a time on the relay's serial chain (attach, detach, move CPUs,
// re-attach a lost VF), and reads what the engine reports back (its events, its view of a relay)
// into the relay's conditions. RelayStore (store.ts) keeps the relays and their chains; the
// requests that change the desired state are RelayManager's (manager.ts).
import { errorCode, errorMessage } from '../util/errors.js';
import { MAX_RELAYS } from '../util/limits.js';
import type { EngineEvent } from '../engine/types.js';
import { DEFAULT_RELAY_DEFAULTS, type RelayDefaults, type RelayEngine, type RelayManagerOptions, type VfResolver } from './contracts.js';
import { attachFailed, detached, observeEngine, setCondition } from './conditions.js';
import { Reason, isPermanent, reasonForCode } from './reasons.js';
import { configKey, cpusKey, engineConfig, wantedCpus } from './spec.js';
import { ensureSocketDir, resolveVf } from './prepare.js';
import { afterDetach, holdsConfig, isAttached } from './state.js';
import { RelayStore, effectiveSpec, type Entry } from './store.js';

/**
 * While a guest is live-migrating, the vhost-user events of its relay are taken into the status
 * this much later (coalesced): the source's events come in the migration's downtime, when QEMU
 * needs every cycle of a core it may share with the agent to send the guest's last state.
 */
export const MIGRATION_QUIET_MS = 100;

export const now = (): string => new Date().toISOString();

export abstract class RelayReconciler extends RelayStore {
  protected readonly engine: RelayEngine;
  protected readonly defaults: RelayDefaults;
  protected readonly resolver: VfResolver | undefined;
  protected closed = false;
  protected readonly onEngineEvent = (e: EngineEvent): void => this.handleEngineEvent(e);

  constructor(opts: RelayManagerOptions) {
    const retry = opts.retry ?? { initialMs: 1000, maxMs: 60_000 };
    const vfRetry = opts.vfRetry ?? { initialMs: retry.initialMs, maxMs: Math.min(retry.maxMs, 5000) };
    super(opts.logger.child({ component: 'relay' }), opts.maxRelays ?? MAX_RELAYS, retry, vfRetry);
    this.engine = opts.engine;
    this.defaults = { ...DEFAULT_RELAY_DEFAULTS, ...stripUndefined(opts.defaults ?? {}) };
    this.resolver = opts.resolver;
    this.engine.on('event', this.onEngineEvent);
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

  protected async detach(entry: Entry): Promise<void> {
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
  protected observe(entry: Entry): void {
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
