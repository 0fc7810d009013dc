// A small in-memory agent for tests of the control server alone (the real agent implements
// ControlBackend on top of RelayManager and the engine).
import { join } from 'node:path';
import {
  type AddSocketRequest,
  type AddVfRequest,
  type ControlBackend,
  type PortChange,
  type RelayCpu,
  type RelaySnapshot,
  type RemoveSocketRequest,
  type RemoveVfRequest,
} from '../../../src/control/index.js';
import { VioError } from '../../../src/util/errors.js';

// ---------------------------------------------------------------------------------------------
// A small in-memory agent for tests of the control server alone (the real agent implements
// ControlBackend on top of RelayManager and the engine).

interface MemRelay {
  pciAddrs: string[];
  bondName?: string;
  socketPath: string;
  dynamic: boolean;
  cpus: { up: number; down: number };
  samples: number;
}

export class MemoryBackend implements ControlBackend {
  readonly relays = new Map<number, MemRelay>();
  /** Every call, in order, for assertions: [method, argument]. */
  readonly calls: [string, unknown][] = [];

  constructor(
    private readonly opts: { vfs: string[]; socketDir: string; cores?: number[]; maxRelays?: number },
  ) {}

  private owner(pci: string): number | undefined {
    for (const [id, r] of this.relays) if (r.pciAddrs.includes(pci)) return id;
    return undefined;
  }

  private checkVfs(pciAddrs: string[], forId?: number): void {
    for (const p of pciAddrs) {
      if (!this.opts.vfs.includes(p)) throw new VioError('ENODEV', `no VF at ${p}`);
      const o = this.owner(p);
      if (o !== undefined && o !== forId) throw new VioError('EBUSY', `${p} is already relayed by relay ${o}`);
    }
  }

  private same(r: MemRelay, pciAddrs: string[]): boolean {
    return r.pciAddrs.length === pciAddrs.length && pciAddrs.every((p) => r.pciAddrs.includes(p));
  }

  addVf(req: AddVfRequest): PortChange {
    this.calls.push(['addVf', req]);
    const r = this.relays.get(req.virtioId);
    if (r) {
      if (this.same(r, req.pciAddrs)) return 'unchanged';
      throw new VioError('EBUSY', `relay ${req.virtioId} already relays ${r.pciAddrs.join(',')}; remove it first`);
    }
    this.checkVfs(req.pciAddrs);
    this.relays.set(req.virtioId, {
      pciAddrs: req.pciAddrs,
      ...(req.bondName ? { bondName: req.bondName } : {}),
      socketPath: join(this.opts.socketDir, `virtio-forwarder${req.virtioId}.sock`),
      dynamic: false,
      cpus: { up: 1, down: 1 },
      samples: 0,
    });
    return 'changed';
  }

  removeVf(req: RemoveVfRequest): PortChange {
    this.calls.push(['removeVf', req]);
    const r = this.relays.get(req.virtioId);
    if (!r) return 'unchanged';
    const match = req.bondName !== undefined ? r.bondName === req.bondName : this.same(r, req.pciAddrs);
    if (!match) throw new VioError('EINVAL', `relay ${req.virtioId} relays ${r.bondName ?? r.pciAddrs.join(',')}, not that`);
    this.relays.delete(req.virtioId);
    return 'changed';
  }

  addSocket(req: AddSocketRequest): PortChange {
    this.calls.push(['addSocket', req]);
    for (const r of this.relays.values()) {
      if (r.socketPath !== req.vhostPath) continue;
      if (this.same(r, req.pciAddrs)) return 'unchanged';
      throw new VioError('EBUSY', `${req.vhostPath} is paired with ${r.pciAddrs.join(',')}`);
    }
    this.checkVfs(req.pciAddrs);
    let id = 0;
    while (this.relays.has(id)) id++;
    this.relays.set(id, {
      pciAddrs: req.pciAddrs,
      ...(req.bondName ? { bondName: req.bondName } : {}),
      socketPath: req.vhostPath,
      dynamic: true,
      cpus: { up: 1, down: 1 },
      samples: 0,
    });
    return 'changed';
  }

  removeSocket(req: RemoveSocketRequest): PortChange {
    this.calls.push(['removeSocket', req]);
    for (const [id, r] of this.relays) {
      if (r.socketPath === req.vhostPath) {
        this.relays.delete(id);
        return 'changed';
      }
    }
    return 'unchanged';
  }

  queryPci(vhostPath: string): string | undefined {
    for (const r of this.relays.values()) if (r.socketPath === vhostPath) return r.pciAddrs.join(',');
    return undefined;
  }

  /** Each sample moves 1000 packets (64 bytes each) up and 500 down, so rates are not zero. */
  relayStates(ids?: readonly number[]): RelaySnapshot[] {
    const out: RelaySnapshot[] = [];
    for (const [id, r] of this.relays) {
      if (ids && !ids.includes(id)) continue;
      r.samples++;
      const up = r.samples * 1000;
      const down = r.samples * 500;
      out.push({
        id,
        active: true,
        socketPath: r.socketPath,
        pciAddress: r.pciAddrs.join(','),
        numaNode: 0,
        vfToVm: { active: true, state: 'DPDK_READY', cpu: r.cpus.up, counters: { rxPackets: up, rxBytes: up * 64, txPackets: up, txBytes: up * 64, droppedQueueFullPackets: 0, droppedNotConnectedPackets: 0 } },
        vmToVf: { active: true, state: 'VIRTIO_READY', cpu: r.cpus.down, counters: { rxPackets: down, rxBytes: down * 64, txPackets: down, txBytes: down * 64 } },
      });
    }
    return out;
  }

  relayCpuMap(): RelayCpu[] {
    return [...this.relays].map(([id, r]) => ({ relay: id, vfToVmCpu: r.cpus.up, vmToVfCpu: r.cpus.down }));
  }

  updateCpuMap(map: RelayCpu[]): void {
    this.calls.push(['updateCpuMap', map]);
    const cores = this.ealCores();
    for (const e of map) {
      const r = this.relays.get(e.relay);
      if (!r) throw new VioError('ENOENT', `no relay ${e.relay}`);
      if (!cores.includes(e.vfToVmCpu) || !cores.includes(e.vmToVfCpu)) throw new VioError('EINVAL', `CPUs ${e.vfToVmCpu}/${e.vmToVfCpu} are not worker cores (${cores.join(',')})`);
    }
    for (const e of map) {
      const r = this.relays.get(e.relay) as MemRelay;
      r.cpus = { up: e.vfToVmCpu, down: e.vmToVfCpu };
    }
  }

  ealCores(): number[] {
    return this.opts.cores ?? [1];
  }
}
