// An in-memory stand-in for the engine facade, for tests of pure control logic (RelayManager,
// reconcilers), with the whole RelayEngine contract including attachVf. Tests against the real
// DPDK engine live in test/integration/engine.*.
import { EventEmitter } from 'node:events';
import type { RelayEngine } from '../../src/relay/index.js';
import type { EngineEvent, RelayConfig, RelayInfo, VfSource } from '../../src/engine/types.js';
import { VioError, type ErrorCode } from '../../src/util/errors.js';

export class MemEngine extends EventEmitter implements RelayEngine {
  relays = new Map<number, RelayInfo>();
  configs = new Map<number, RelayConfig>();
  failDevargs = new Map<string, ErrorCode>(); // devargs -> error code
  calls: string[] = [];
  /** attachVf finds no VF (it is still gone). */
  vfMissing = false;
  attachCalls = 0;
  async addRelay(cfg: RelayConfig): Promise<RelayInfo> {
    this.calls.push(`add ${cfg.id}`);
    const code = cfg.vf?.devargs ? this.failDevargs.get(cfg.vf.devargs) : undefined;
    if (code) throw new VioError(code, `relay ${cfg.id}: cannot attach ${cfg.vf?.devargs}`);
    if (this.relays.has(cfg.id)) throw new VioError('EEXIST', `relay ${cfg.id} exists`);
    const info: RelayInfo = {
      id: cfg.id, socketPath: cfg.socketPath, mode: cfg.mode, queues: cfg.queues, vhostQueues: cfg.vhostQueues ?? cfg.queues, numaNode: cfg.numaNode ?? 0,
      portId: cfg.vf ? cfg.id : -1, portName: cfg.vf ? cfg.vf.devargs ?? 'pci' : '', mac: '02:00:00:00:00:01', linkUp: !!cfg.vf,
      guestConnected: false, enabledQueues: 0, ...(cfg.vf ? {} : { vfAttached: false }), cpus: { vfToVm: cfg.cpus?.vfToVm ?? 1, vmToVf: cfg.cpus?.vmToVf ?? 1 },
    };
    this.relays.set(cfg.id, info);
    this.configs.set(cfg.id, cfg);
    return { ...info };
  }
  /** Gives a relay whose VF was lost a VF again; fails with ENODEV while vfMissing, and as
   *  addRelay does for failDevargs. */
  async attachVf(id: number, vf: VfSource): Promise<RelayInfo> {
    this.attachCalls++;
    const r = this.relays.get(id);
    if (!r) throw new VioError('ENOENT', `no relay ${id}`);
    if (this.vfMissing) throw new VioError('ENODEV', `relay ${id}: vf: rte_dev_probe("${vf.devargs}") failed`);
    const code = vf.devargs ? this.failDevargs.get(vf.devargs) : undefined;
    if (code) throw new VioError(code, `relay ${id}: cannot attach ${vf.devargs}`);
    r.vfAttached = true;
    r.linkUp = true;
    r.portId = id;
    delete r.vfLoss;
    return { ...r };
  }
  /** Takes a relay's VF away on request (port control REMOVE); the relay and its socket stay. */
  async detachVf(id: number): Promise<RelayInfo> {
    const r = this.relays.get(id);
    if (!r) throw new VioError('ENOENT', `no relay ${id}`);
    r.vfAttached = false;
    r.linkUp = false;
    r.portId = -1;
    return { ...r };
  }
  /** The VF of a relay disappears: the engine detaches it, keeps the socket, and says so. */
  loseVf(id: number): void {
    const r = this.relays.get(id)!;
    r.vfAttached = false;
    r.vfLoss = 'interface-gone';
    r.linkUp = false;
    r.portId = -1;
    this.emit('event', { type: 'vf-removed', relayId: id, cause: 'interface-gone' });
  }
  async removeRelay(id: number): Promise<void> {
    this.calls.push(`rm ${id}`);
    if (!this.relays.delete(id)) throw new VioError('ENOENT', `no relay ${id}`);
  }
  async setRelayCpus(id: number, cpus: { vfToVm: number; vmToVf: number }): Promise<void> {
    const r = this.relays.get(id);
    if (!r) throw new VioError('ENOENT', `no relay ${id}`);
    r.cpus = { ...cpus };
  }
  relay(id: number): RelayInfo | undefined {
    const r = this.relays.get(id);
    return r ? { ...r } : undefined;
  }
  fire(e: EngineEvent): void {
    const r = this.relays.get(e.relayId);
    if (r && e.type === 'guest-connected') { r.guestConnected = true; r.enabledQueues = 2; }
    if (r && e.type === 'guest-disconnected') { r.guestConnected = false; r.enabledQueues = 0; }
    if (r && e.type === 'link') r.linkUp = e.up;
    this.emit('event', e);
  }
}
