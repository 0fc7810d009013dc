// RelayManager: the node's one source of desired relay state. Relays arrive from static config,
// ZeroMQ port control or Kubernetes; each is reconciled into the engine on its own serial
// chain, with retries and backoff, so one failing relay never disturbs the others. This file
// holds the requests that change a relay's desired state (apply, remove, VF release/replace,
// CPUs, attachment MAC); carrying them out in the engine is RelayReconciler's (reconcile.ts),
// the bookkeeping RelayStore's (store.ts). A relay's life is one RelayState (state.ts); its
// spec is checked in spec.ts, its conditions computed in conditions.ts.
import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VioError, errorMessage } from '../util/errors.js';
import type { RelaySpec, RelayStatus, RelayVf } from './types.js';
import { configKey, cpusKey, normalizeSpec, socketPathFor } from './spec.js';
import { initialStatus, refreshStatus, resolveVf } from './prepare.js';
import { holdsConfig, isAttached, type RelayState } from './state.js';
import type { Entry } from './store.js';
import { RelayReconciler, now } from './reconcile.js';

export { MIGRATION_QUIET_MS } from './reconcile.js';

export class RelayManager extends RelayReconciler {
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
}
