// The ZeroMQ control server's backend: virtio-forwarder's port control, stats and core
// scheduling expressed as RelayManager operations and engine reads.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { VioError } from '../util/errors.js';
import { DROP_IN_GUEST_QUEUES } from './config/envfile.js';
import { codeForReason, Reason, type RelayManager } from '../relay/index.js';
import { vfwdStates } from './vfwd-states.js';
import type { RelaySpec, RelayStatus } from '../relay/types.js';
import type { DirectionCounters, RelayStats, WorkerInfo } from '../engine/types.js';
import type {
  AddSocketRequest,
  AddVfRequest,
  ControlBackend,
  DirectionSnapshot,
  PortChange,
  RelayCpu,
  RelaySnapshot,
  RemoveSocketRequest,
  RemoveVfRequest,
  WorkerSnapshot,
} from '../control/index.js';

export interface StatsSource {
  stats(id: number): RelayStats | undefined;
  workers(): WorkerInfo[];
}

export interface AgentControlOptions {
  relays: RelayManager;
  engine: StatsSource;
  /** Default vhost-user mode of relays added over ZeroMQ. */
  mode: 'client' | 'server';
  /** Allow ADD_SOCK / REMOVE_SOCK (VIRTIOFWD_DYNAMIC_SOCKETS). */
  dynamicSockets: boolean;
  /** Worker CPUs by relay id (VIRTIOFWD_CPU_PINS). */
  cpuPins: Record<number, number[]>;
}

function sameVfs(status: RelayStatus | undefined, spec: RelaySpec | undefined, pciAddrs: string[]): boolean {
  const have = spec?.vf.pciAddresses ?? (status?.pciAddress ? status.pciAddress.split(',') : []);
  return have.length === pciAddrs.length && have.every((a, i) => a.toLowerCase() === pciAddrs[i]!.toLowerCase());
}

export class AgentControlBackend implements ControlBackend {
  /** Relay ids whose VF a port control REMOVE is taking away. */
  private readonly releasing = new Set<number>();
  /** Relays a core scheduling UPDATE placed (virtio-forwarder's core pinner or its scheduler
   *  script): the built-in scheduler leaves them where that client put them. */
  readonly placedByUpdate = new Set<string>();
  /** a handover gives the relays to a new agent (docs/upgrade.md): changes are refused */
  private frozen = false;
  /** changes in progress (a handover waits for them before it lists the relays) */
  private readonly changing = new Set<Promise<unknown>>();
  constructor(private readonly o: AgentControlOptions) {
    o.relays.on('removed', (name) => this.placedByUpdate.delete(name));
  }

  /**
   * Refuses every relay change from now on (EAGAIN: retry; the new agent answers on the same
   * endpoints once it has the relays), after the changes in progress end (at most `waitMs`).
   */
  async freeze(waitMs = 3000): Promise<void> {
    this.frozen = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.changing]), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** The handover was given up: changes are taken again. */
  thaw(): void {
    this.frozen = false;
  }

  private change<T>(f: () => Promise<T>): Promise<T> {
    if (this.frozen) {
      return Promise.reject(new VioError('EAGAIN', 'a handover to a new agent (an upgrade) is in progress on this node: nothing was changed; retry in a few seconds, the new agent answers on the same endpoint'));
    }
    const p = f();
    this.changing.add(p);
    void p.finally(() => this.changing.delete(p)).catch(() => undefined);
    return p;
  }

  addVf(req: AddVfRequest): Promise<PortChange> {
    return this.change(() => this.doAddVf(req));
  }

  private async doAddVf(req: AddVfRequest): Promise<PortChange> {
    const mgr = this.o.relays;
    const existing = mgr.getById(req.virtioId);
    const vf = { pciAddresses: req.pciAddrs, ...(req.bondMode !== undefined ? { bondMode: req.bondMode } : {}), ...(req.bondName ? { bondName: req.bondName } : {}) };
    if (existing && !existing.pciAddress && isVfReleased(existing)) {
      // the relay's VF was REMOVEd: the new VF goes in under the same socket, the guest stays
      this.checkVfsFree(req.pciAddrs);
      await mgr.replaceVf(existing.name, vf);
      return 'changed';
    }
    if (existing) {
      if (sameVfs(existing, mgr.spec(existing.name), req.pciAddrs)) return 'unchanged';
      throw new VioError('EBUSY', `relay ${req.virtioId} already relays ${existing.pciAddress ?? 'another VF'}: REMOVE it first, or use another virtio_id`);
    }
    this.checkVfsFree(req.pciAddrs);
    const pins = this.o.cpuPins[req.virtioId];
    mgr.apply({
      name: `relay-${req.virtioId}`,
      id: req.virtioId,
      origin: 'zmq',
      vf,
      vhostUser: { mode: this.o.mode },
      // virtio-forwarder follows the guest's queue count: offer all, serve what it enables
      guestQueues: DROP_IN_GUEST_QUEUES,
      ...(pins ? { cpus: pins } : {}),
    });
    await this.attachedOrUndo(`relay-${req.virtioId}`);
    return 'changed';
  }

  /**
   * Port control answers with the attach result, as virtio-forwarder does: a VF that cannot be
   * attached is an error reply, and nothing is left behind.
   */
  private async attachedOrUndo(name: string): Promise<void> {
    const mgr = this.o.relays;
    await mgr.settled();
    const s = mgr.get(name);
    if (s?.phase !== 'Failed') return;
    const why = s.conditions.find((c) => c.status === 'False' && c.type !== 'GuestConnected' && c.type !== 'Ready');
    await mgr.remove(name);
    throw new VioError(codeForReason(why?.reason), why?.message ?? 'the relay could not be attached');
  }

  removeVf(req: RemoveVfRequest): Promise<PortChange> {
    return this.change(() => this.doRemoveVf(req));
  }

  private async doRemoveVf(req: RemoveVfRequest): Promise<PortChange> {
    const mgr = this.o.relays;
    const existing = mgr.getById(req.virtioId);
    if (!existing || isVfReleased(existing)) return 'unchanged';
    const spec = mgr.spec(existing.name);
    if (req.pciAddrs.length && !sameVfs(existing, spec, req.pciAddrs)) {
      throw new VioError('ENODEV', `relay ${req.virtioId} relays ${existing.pciAddress ?? 'no VF'}, not ${req.pciAddrs.join(',')}`);
    }
    if (req.bondName && spec?.vf.bondName && spec.vf.bondName !== req.bondName) {
      throw new VioError('ENODEV', `relay ${req.virtioId} has bond ${spec.vf.bondName}, not ${req.bondName}`);
    }
    // as virtio-forwarder: only the VF goes; the socket and the guest's connection stay, so
    // that another VF can be ADDed under the running VM. Meanwhile the stats say DPDK_REMOVING1.
    this.releasing.add(existing.id);
    try {
      return (await mgr.releaseVf(existing.name)) ? 'changed' : 'unchanged';
    } finally {
      this.releasing.delete(existing.id);
    }
  }

  addSocket(req: AddSocketRequest): Promise<PortChange> {
    return this.change(() => this.doAddSocket(req));
  }

  private async doAddSocket(req: AddSocketRequest): Promise<PortChange> {
    this.requireDynamic();
    const mgr = this.o.relays;
    const existing = mgr.list().find((s) => s.socketPath === req.vhostPath);
    if (existing) {
      if (sameVfs(existing, mgr.spec(existing.name), req.pciAddrs)) return 'unchanged';
      throw new VioError('EBUSY', `socket ${req.vhostPath} is already paired with ${existing.pciAddress ?? 'another VF'}: REMOVE_SOCK it first`);
    }
    if (!req.pciAddrs.length) throw new VioError('EINVAL', 'pci_addrs: ADD_SOCK needs the VF(s) to pair with the socket');
    this.checkVfsFree(req.pciAddrs);
    mgr.apply({
      name: socketRelayName(req.vhostPath),
      origin: 'zmq',
      vf: { pciAddresses: req.pciAddrs, ...(req.bondMode !== undefined ? { bondMode: req.bondMode } : {}), ...(req.bondName ? { bondName: req.bondName } : {}) },
      vhostUser: { mode: this.o.mode, socketPath: req.vhostPath },
      guestQueues: DROP_IN_GUEST_QUEUES,
    });
    await this.attachedOrUndo(socketRelayName(req.vhostPath));
    return 'changed';
  }

  removeSocket(req: RemoveSocketRequest): Promise<PortChange> {
    return this.change(() => this.doRemoveSocket(req));
  }

  private async doRemoveSocket(req: RemoveSocketRequest): Promise<PortChange> {
    this.requireDynamic();
    const mgr = this.o.relays;
    const existing = mgr.list().find((s) => s.socketPath === req.vhostPath);
    if (!existing) return 'unchanged';
    if (req.pciAddrs.length && !sameVfs(existing, mgr.spec(existing.name), req.pciAddrs)) {
      throw new VioError('ENODEV', `socket ${req.vhostPath} is paired with ${existing.pciAddress ?? 'no VF'}, not ${req.pciAddrs.join(',')}`);
    }
    await mgr.remove(existing.name);
    return 'changed';
  }

  queryPci(vhostPath: string): string | undefined {
    return this.o.relays.list().find((s) => s.socketPath === vhostPath)?.pciAddress;
  }

  relayStates(ids?: readonly number[]): RelaySnapshot[] {
    const all = this.o.relays.list();
    const wanted = ids ? all.filter((s) => ids.includes(s.id)) : all;
    return wanted.map((s) => this.snapshot(s));
  }

  relayCpuMap(): RelayCpu[] {
    return this.o.relays
      .list()
      .filter((s) => s.cpus)
      .map((s) => ({ relay: s.id, vfToVmCpu: s.cpus!.vfToVm, vmToVfCpu: s.cpus!.vmToVf }))
      .sort((a, b) => a.relay - b.relay);
  }

  updateCpuMap(map: RelayCpu[]): Promise<void> {
    return this.change(() => this.doUpdateCpuMap(map));
  }

  private async doUpdateCpuMap(map: RelayCpu[]): Promise<void> {
    const workers = new Set(this.o.engine.workers().map((w) => w.cpu));
    const mgr = this.o.relays;
    // check everything first: an UPDATE is applied whole or not at all
    const moves = map.map((m) => {
      const s = mgr.getById(m.relay);
      if (!s) throw new VioError('ENOENT', `relay ${m.relay} does not exist`);
      for (const cpu of [m.vfToVmCpu, m.vmToVfCpu]) {
        if (!workers.has(cpu)) throw new VioError('EINVAL', `CPU ${cpu} runs no worker: use one of ${[...workers].join(', ')}`);
      }
      return { name: s.name, cpus: [m.vfToVmCpu, m.vmToVfCpu] };
    });
    for (const m of moves) {
      mgr.setCpus(m.name, m.cpus);
      this.placedByUpdate.add(m.name);
    }
    await mgr.settled();
  }

  ealCores(): number[] {
    return this.o.engine.workers().map((w) => w.cpu);
  }

  workers(): WorkerSnapshot[] {
    return this.o.engine.workers().map((w) => ({
      cpu: w.cpu,
      directions: w.directions,
      busyCycles: w.busyCycles,
      idleCycles: w.idleCycles,
      packets: w.packets,
      dropped: w.dropped,
    }));
  }

  private snapshot(s: RelayStatus): RelaySnapshot {
    const st = this.o.engine.stats(s.id);
    const w = vfwdStates(s, this.releasing.has(s.id));
    const dir = (active: boolean, state: string, c: DirectionCounters | undefined, cpu: number | undefined): DirectionSnapshot => ({
      active,
      state,
      ...(c ? { counters: { ...c } } : {}),
      ...(cpu !== undefined ? { cpu } : {}),
    });
    return {
      id: s.id,
      active: w.active,
      ...(s.ident ? { ident: s.ident } : {}),
      socketPath: s.socketPath,
      ...(s.pciAddress ? { pciAddress: s.pciAddress } : {}),
      numaNode: s.numaNode,
      vfToVm: dir(w.vfActive, w.vf, st?.vfToVm, s.cpus?.vfToVm),
      vmToVf: dir(w.vmActive, w.vm, st?.vmToVf, s.cpus?.vmToVf),
      ...(st?.vf ? { vf: { ...st.vf } } : {}),
    };
  }

  private checkVfsFree(pciAddrs: string[]): void {
    for (const s of this.o.relays.list()) {
      const held = s.pciAddress?.split(',') ?? [];
      const clash = pciAddrs.find((a) => held.includes(a));
      if (clash) throw new VioError('EBUSY', `VF ${clash} is already used by relay ${s.id} (${s.name})`);
    }
  }

  private requireDynamic(): void {
    if (!this.o.dynamicSockets) {
      throw new VioError('EPERM', 'dynamic sockets are off (the relay sockets are made at start, as virtio-forwarder makes them without VIRTIOFWD_DYNAMIC_SOCKETS): set VIRTIOFWD_DYNAMIC_SOCKETS=y (control.dynamicSockets: true) to use ADD_SOCK/REMOVE_SOCK');
    }
  }
}

/** The relay's VF was taken away by REMOVE (its socket stays). */
function isVfReleased(s: RelayStatus): boolean {
  return s.conditions.some((c) => c.type === 'VFAttached' && c.reason === Reason.NoVF);
}

/** A stable relay name for a dynamic socket path. */
export function socketRelayName(path: string): string {
  const base = basename(path).replace(/\.sock$/, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'socket';
  const h = createHash('sha1').update(path).digest('hex').slice(0, 8);
  return `sock-${base}-${h}`;
}
