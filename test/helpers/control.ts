// Drives virtio-forwarder's ZeroMQ control protocol against any server that speaks it: the
// control server with MemoryBackend in tests, or the real agent (runControlScenario,
// runControlFuzz). Every reply is decoded as the protocol requires (proto2: a missing required
// field throws) and checked with verify.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Request } from 'zeromq';
import {
  CoreSchedRequest_Op,
  CoreSchedResponse_Status,
  ConfigResponse_Status,
  PortControlRequest_Op as Op,
  PortControlResponse_Status as PStatus,
  StatsResponse_Status,
  codec,
  errnoName,
  parsePci,
  toNumber,
  type AddSocketRequest,
  type AddVfRequest,
  type ControlBackend,
  type ControlEndpoints,
  type EndpointName,
  type PortChange,
  type PortControlRequest,
  type PortControlResponse,
  type RelayCpu,
  type RelaySnapshot,
  type RelayState,
  type RemoveSocketRequest,
  type RemoveVfRequest,
  type StatsRequest,
  type WireMessages,
} from '../../src/control/index.js';
import { VioError } from '../../src/util/errors.js';

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

// ---------------------------------------------------------------------------------------------
// Reply checks shared by the scenario and the fuzzer.

type ResponseName =
  | 'virtioforwarder.PortControlResponse'
  | 'virtioforwarder.StatsResponse'
  | 'virtioforwarder.CoreSchedResponse'
  | 'virtioforwarder.ConfigResponse';

export const RESPONSE_OF: Record<EndpointName, ResponseName> = {
  portControl: 'virtioforwarder.PortControlResponse',
  stats: 'virtioforwarder.StatsResponse',
  coreSched: 'virtioforwarder.CoreSchedResponse',
  config: 'virtioforwarder.ConfigResponse',
};

export const REQUEST_OF: Record<EndpointName, keyof WireMessages> = {
  portControl: 'virtioforwarder.PortControlRequest',
  stats: 'virtioforwarder.StatsRequest',
  coreSched: 'virtioforwarder.CoreSchedRequest',
  config: 'virtioforwarder.ConfigRequest',
};

/** Decodes a reply as the protocol requires and checks it is complete (proto2 IsInitialized). */
export function decodeReply<K extends ResponseName>(name: K, bytes: Uint8Array): WireMessages[K] {
  const c = codec(name);
  const msg = c.decode(bytes); // throws on a missing required field
  assert.equal(c.verify(msg), null, `${name} fails verify`);
  // Every required field must be on the wire itself, not just a default filled in on decode.
  assertRequiredPresent(c.type, msg as object, name);
  return msg;
}

function assertRequiredPresent(type: ReturnType<typeof codec>['type'], msg: object, where: string): void {
  for (const f of type.fieldsArray) {
    const v = (msg as Record<string, unknown>)[f.name];
    if (f.required) assert.ok(Object.prototype.hasOwnProperty.call(msg, f.name), `${where}.${f.name} is required but missing`);
    if (f.resolvedType && 'fieldsArray' in f.resolvedType && v !== undefined && v !== null) {
      const sub = f.resolvedType as ReturnType<typeof codec>['type'];
      for (const item of f.repeated ? (v as object[]) : [v as object]) assertRequiredPresent(sub, item, `${where}.${f.name}`);
    }
  }
}

/**
 * A client for the scenario: every reply's raw bytes go through decodeReply (re-encoding a
 * decoded message would hide a missing field: protobufjs writes required fields regardless).
 */
class CheckingClient {
  constructor(private readonly endpoints: ControlEndpoints, private readonly timeoutMs: number) {}

  address(name: EndpointName): string {
    const a = this.endpoints[name];
    assert.ok(a, `no ${name} endpoint given`);
    return a;
  }

  private async call<K extends ResponseName>(ep: EndpointName, res: K, req: Uint8Array, extraMs = 0): Promise<WireMessages[K]> {
    return decodeReply(res, await rawRequest(this.address(ep), req, this.timeoutMs + extraMs));
  }

  /** Not verified before sending: the scenario sends invalid requests on purpose. */
  portControl(req: PortControlRequest): Promise<PortControlResponse> {
    return this.call('portControl', 'virtioforwarder.PortControlResponse', codec('virtioforwarder.PortControlRequest').type.encode(req).finish());
  }

  stats(req: StatsRequest = {}): Promise<WireMessages['virtioforwarder.StatsResponse']> {
    return this.call('stats', 'virtioforwarder.StatsResponse', codec('virtioforwarder.StatsRequest').encode(req), req.delay ?? 0);
  }

  coreSched(req: WireMessages['virtioforwarder.CoreSchedRequest']): Promise<WireMessages['virtioforwarder.CoreSchedResponse']> {
    return this.call('coreSched', 'virtioforwarder.CoreSchedResponse', codec('virtioforwarder.CoreSchedRequest').encode(req));
  }

  config(): Promise<WireMessages['virtioforwarder.ConfigResponse']> {
    return this.call('config', 'virtioforwarder.ConfigResponse', codec('virtioforwarder.ConfigRequest').encode({}));
  }
}

const pciWire = (p: string): { domain: number; bus: number; slot: number; function: number } => {
  const a = parsePci(p);
  assert.ok(a, `${p} is not a PCI address`);
  return a;
};

function expectOk(res: PortControlResponse, what: string): void {
  assert.equal(res.status, PStatus.OK, `${what}: expected OK, got ERROR ${res.error_code !== undefined ? errnoName(res.error_code) : ''} ${res.error_code_source ?? ''}`);
}

function expectError(res: PortControlResponse, errno: string | string[], what: string, source?: RegExp): void {
  const want = Array.isArray(errno) ? errno : [errno];
  assert.equal(res.status, PStatus.ERROR, `${what}: expected ERROR ${want.join('|')}, got OK`);
  const got = res.error_code !== undefined ? errnoName(res.error_code) : 'none';
  assert.ok(want.includes(got), `${what}: error_code ${got}, expected ${want.join('|')} (${res.error_code_source ?? ''})`);
  if (source) assert.match(res.error_code_source ?? '', source, `${what}: error_code_source`);
}

export interface ControlScenarioOptions {
  /** PCI addresses of VFs the server can attach: 1 for the basics, 3 for bonds and sockets too. */
  vfs: string[];
  /** A relay number that is free on the server. */
  relayId: number;
  /** A second free relay number, for the bond (default relayId + 1). */
  bondRelayId?: number;
  /** Exercise bonds (default: when 3 VFs are given). */
  bonds?: boolean;
  /** Exercise ADD_SOCK/REMOVE_SOCK with a socket in this directory (dynamic sockets on). */
  dynamicSocketDir?: string;
  /** The server's relay-number bound (default 1024). */
  maxRelays?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

/**
 * Every control operation end to end, each request check, and the reply rules, against the
 * server at `endpoints` (portControl and stats needed; coreSched and config when given).
 * Leaves the server as it found it. Returns the names of the steps that ran.
 */
export async function runControlScenario(endpoints: ControlEndpoints, o: ControlScenarioOptions): Promise<string[]> {
  const steps: string[] = [];
  const step = (name: string): void => {
    steps.push(name);
    o.log?.(name);
  };
  const client = new CheckingClient(endpoints, o.timeoutMs ?? 5000);
  const maxRelays = o.maxRelays ?? 1024;
  const vf = o.vfs[0] as string;
  const id = o.relayId;
  const stats = async (req: StatsRequest = {}): Promise<RelayState[]> => {
    const res = await client.stats(req);
    assert.equal(res.status, StatsResponse_Status.OK, 'stats status');
    return res.relay ?? [];
  };

  try {
    step('stats: the relay number is free');
    const before = await stats({ relay: [id] });
    assert.ok(before.every((r) => !r.active && !r.vf), `relay ${id} must be free before the scenario`);

    step('ADD one VF');
    expectOk(await client.portControl({ op: Op.ADD, virtio_id: id, pci_addrs: [pciWire(vf)] }), 'ADD');
    step('ADD again, conditional (the default): OK, nothing changes');
    expectOk(await client.portControl({ op: Op.ADD, virtio_id: id, pci_addrs: [pciWire(vf)] }), 'conditional ADD');
    step('ADD again, conditional=false: EEXIST');
    expectError(await client.portControl({ op: Op.ADD, virtio_id: id, pci_addrs: [pciWire(vf)], conditional: false }), 'EEXIST', 'unconditional ADD');

    step('stats: the relay reports its VF and socket');
    const [r] = await stats({ relay: [id] });
    assert.ok(r, `relay ${id} missing from stats`);
    assert.equal(r.id, id);
    assert.ok(r.vf?.pci_addr_str?.includes(vf), `relay ${id} VF: ${r.vf?.pci_addr_str}`);
    const socket = r.vhost.vhost_socket_name;
    assert.ok(socket.startsWith('/'), `relay ${id} socket name: "${socket}"`);

    step('QUERY_PCI: the socket leads to the VF');
    const q = await client.portControl({ op: Op.QUERY_PCI, vhost_path: socket });
    expectOk(q, 'QUERY_PCI');
    assert.ok(q.query_string?.includes(vf), `QUERY_PCI answered ${q.query_string}`);

    step('stats with delay: rates measured over it are finite and not negative');
    const [rated] = await stats({ relay: [id], delay: 100 });
    assert.ok(rated);
    for (const d of [rated.vf_to_vm, rated.vm_to_vf] as unknown as Record<string, number>[]) {
      for (const [k, v] of Object.entries(d)) if (k.includes('_rate_')) assert.ok(Number.isFinite(v) && v >= 0, `${k}=${v}`);
    }

    step('stats: relay numbers out of range are left out');
    const ranged = await stats({ relay: [maxRelays + 7, id, 0xffffffff] });
    assert.deepEqual(ranged.map((x) => x.id), [id]);

    step('stats: every relay, and include_inactive=false');
    assert.ok((await stats()).some((x) => x.id === id));
    assert.ok((await stats({ include_inactive: false })).every((x) => x.active));

    if (endpoints.coreSched) {
      step('core scheduling: GET_EAL_CORES lists worker cores');
      const cores = await client.coreSched({ op: CoreSchedRequest_Op.GET_EAL_CORES });
      assert.equal(cores.status, CoreSchedResponse_Status.OK, `GET_EAL_CORES: ${cores.error_code_source ?? ''}`);
      assert.ok((cores.eal_cores ?? []).length > 0);
      const up = r.cpu?.vf_to_vm ?? (cores.eal_cores?.[0] as number);
      const down = r.cpu?.vm_to_vf ?? up;
      step('core scheduling: UPDATE with the relay\'s own CPUs is accepted');
      const upd = await client.coreSched({ op: CoreSchedRequest_Op.UPDATE, relay_cpu_map: [{ relay_number: id, vf2virtio_cpu: up, virtio2vf_cpu: down }] });
      assert.equal(upd.status, CoreSchedResponse_Status.OK, `UPDATE: ${upd.error_code_source ?? ''}`);
      step('core scheduling: UPDATE for a relay number out of range: EINVAL');
      const bad = await client.coreSched({ op: CoreSchedRequest_Op.UPDATE, relay_cpu_map: [{ relay_number: maxRelays, vf2virtio_cpu: up, virtio2vf_cpu: down }] });
      assert.equal(bad.status, CoreSchedResponse_Status.ERROR);
      assert.equal(errnoName(bad.error_code ?? 0), 'EINVAL');
    }
    if (endpoints.config) {
      step('config: the relay CPU map includes the relay');
      const cfg = await client.config();
      assert.equal(cfg.status, ConfigResponse_Status.OK);
      assert.ok((cfg.relay_cpu_map ?? []).some((e) => e.relay_number === id), 'relay_cpu_map lacks the relay');
    }

    step('request checks: ADD without virtio_id');
    expectError(await client.portControl({ op: Op.ADD, pci_addrs: [pciWire(vf)] }), 'EINVAL', 'ADD without virtio_id', /virtio_id/);
    step('request checks: REMOVE without virtio_id');
    expectError(await client.portControl({ op: Op.REMOVE, pci_addrs: [pciWire(vf)] }), 'EINVAL', 'REMOVE without virtio_id', /virtio_id/);
    step('request checks: REMOVE with several PCI addresses and no bond name');
    expectError(await client.portControl({ op: Op.REMOVE, virtio_id: id, pci_addrs: [pciWire('0000:00:01.0'), pciWire('0000:00:01.1')] }), 'EINVAL', 'REMOVE bond without name', /name/);
    step('request checks: REMOVE_SOCK with several PCI addresses and no bond name');
    expectError(await client.portControl({ op: Op.REMOVE_SOCK, vhost_path: '/tmp/x.sock', pci_addrs: [pciWire('0000:00:01.0'), pciWire('0000:00:01.1')] }), 'EINVAL', 'REMOVE_SOCK bond without name', /name/);
    step('request checks: QUERY_PCI without vhost_path');
    expectError(await client.portControl({ op: Op.QUERY_PCI }), 'EINVAL', 'QUERY_PCI without vhost_path', /vhost_path/);
    step('request checks: ADD with a relay number out of range');
    expectError(await client.portControl({ op: Op.ADD, virtio_id: maxRelays, pci_addrs: [pciWire(vf)] }), 'EINVAL', 'ADD out of range', /virtio_id/);
    step('request checks: unknown op');
    // proto2 enums are closed: an unknown value leaves the required op unset (EBADMSG).
    expectError(await client.portControl({ op: 9 as Op }), ['EINVAL', 'EBADMSG'], 'unknown op', /op/);
    step('request checks: bytes that are no PortControlRequest get an error reply');
    const raw = await rawRequest(client.address('portControl'), Buffer.from('garbag\xe9'), o.timeoutMs);
    const garbage = decodeReply('virtioforwarder.PortControlResponse', raw);
    assert.equal(garbage.status, PStatus.ERROR);

    if (o.bonds ?? o.vfs.length >= 3) {
      const [, b1, b2] = o.vfs as [string, string, string];
      const bid = o.bondRelayId ?? id + 1;
      step('ADD a bond of two VFs with a name and mode');
      expectOk(await client.portControl({ op: Op.ADD, virtio_id: bid, pci_addrs: [pciWire(b1), pciWire(b2)], name: `net_bonding_vio${bid}`, mode: 1 }), 'ADD bond');
      const [br] = await stats({ relay: [bid] });
      assert.ok(br?.vf?.pci_addr_str?.includes(b1) && br.vf.pci_addr_str.includes(b2), `bond relay VF: ${br?.vf?.pci_addr_str}`);
      step('REMOVE the bond by name');
      expectOk(await client.portControl({ op: Op.REMOVE, virtio_id: bid, name: `net_bonding_vio${bid}` }), 'REMOVE bond');
      assert.ok((await stats({ relay: [bid] })).every((x) => !x.vf), 'bond still listed after REMOVE');
    }

    if (o.dynamicSocketDir) {
      const sockVf = o.vfs[2] ?? o.vfs[1] ?? vf;
      const path = join(o.dynamicSocketDir, `vio4wd-scenario-${process.pid}.sock`);
      step('ADD_SOCK pairs a socket with a VF (virtio_id ignored)');
      expectOk(await client.portControl({ op: Op.ADD_SOCK, vhost_path: path, pci_addrs: [pciWire(sockVf)], virtio_id: 99 }), 'ADD_SOCK');
      const qs = await client.portControl({ op: Op.QUERY_PCI, vhost_path: path });
      expectOk(qs, 'QUERY_PCI dynamic');
      assert.ok(qs.query_string?.includes(sockVf));
      step('REMOVE_SOCK unpairs it');
      expectOk(await client.portControl({ op: Op.REMOVE_SOCK, vhost_path: path, pci_addrs: [pciWire(sockVf)] }), 'REMOVE_SOCK');
      expectError(await client.portControl({ op: Op.QUERY_PCI, vhost_path: path }), 'ENOENT', 'QUERY_PCI after REMOVE_SOCK');
    }

    step('REMOVE the VF');
    expectOk(await client.portControl({ op: Op.REMOVE, virtio_id: id, pci_addrs: [pciWire(vf)] }), 'REMOVE');
    step('REMOVE again, conditional: OK; conditional=false: ENOENT');
    expectOk(await client.portControl({ op: Op.REMOVE, virtio_id: id, pci_addrs: [pciWire(vf)] }), 'conditional REMOVE');
    expectError(await client.portControl({ op: Op.REMOVE, virtio_id: id, pci_addrs: [pciWire(vf)], conditional: false }), 'ENOENT', 'unconditional REMOVE');
    step('QUERY_PCI for a socket no relay serves: ENOENT');
    expectError(await client.portControl({ op: Op.QUERY_PCI, vhost_path: socket }), 'ENOENT', 'QUERY_PCI after REMOVE');
    step('stats: the relay is gone');
    assert.ok((await stats({ relay: [id] })).every((x) => !x.active && !x.vf));
  } finally {
    // Best effort, so a failed run does not leave relays on a shared server.
    const quiet = (req: PortControlRequest): Promise<unknown> => client.portControl(req).catch(() => undefined);
    await quiet({ op: Op.REMOVE, virtio_id: id, pci_addrs: [pciWire(vf)] });
    if (o.bonds ?? o.vfs.length >= 3) await quiet({ op: Op.REMOVE, virtio_id: o.bondRelayId ?? id + 1, name: `net_bonding_vio${o.bondRelayId ?? id + 1}` });
    if (o.dynamicSocketDir) {
      const sockVf = o.vfs[2] ?? o.vfs[1] ?? vf;
      await quiet({ op: Op.REMOVE_SOCK, vhost_path: join(o.dynamicSocketDir, `vio4wd-scenario-${process.pid}.sock`), pci_addrs: [pciWire(sockVf)] });
    }
  }
  return steps;
}

/** One raw round trip (any frames), for tests that send what a normal client would not. */
export async function rawRequest(address: string, frames: Uint8Array | Uint8Array[], timeoutMs = 5000): Promise<Buffer> {
  const sock = new Request({ linger: 0, sendTimeout: timeoutMs, receiveTimeout: timeoutMs });
  try {
    sock.connect(address);
    await sock.send(Array.isArray(frames) ? frames : [frames]);
    const reply = await sock.receive();
    assert.equal(reply.length, 1, 'the reply must be one frame');
    return reply[0] as Buffer;
  } finally {
    sock.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: malformed, truncated, oversized, multi-part and hostile requests.

/** mulberry32: small seeded PRNG, so a failing run can be repeated with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type FuzzKind =
  | 'random'
  | 'truncated'
  | 'bitflip'
  | 'wrong-type'
  | 'huge-repeated'
  | 'oversized'
  | 'multipart'
  | 'empty'
  | 'hostile';

export interface FuzzCase {
  endpoint: EndpointName;
  kind: FuzzKind;
  frames: Uint8Array[];
  /** huge-repeated: how many entries the repeated field has. */
  items?: number;
}

function validRequest(ep: EndpointName, rnd: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rnd() * n);
  const pci = (): { domain: number; bus: number; slot: number; function: number } => ({ domain: 0, bus: int(256), slot: int(32), function: int(8) });
  switch (ep) {
    case 'portControl':
      return codec('virtioforwarder.PortControlRequest').encode({
        op: int(5) as Op,
        pci_addrs: Array.from({ length: int(3) }, pci),
        virtio_id: int(64),
        conditional: rnd() < 0.5,
        ...(rnd() < 0.3 ? { name: 'net_bonding_fuzz', mode: int(7) } : {}),
        ...(rnd() < 0.5 ? { vhost_path: `/tmp/fuzz-${int(10)}.sock` } : {}),
      });
    case 'stats':
      return codec('virtioforwarder.StatsRequest').encode({ relay: Array.from({ length: int(5) }, () => int(2048)), include_inactive: rnd() < 0.5, delay: int(3) });
    case 'coreSched':
      return codec('virtioforwarder.CoreSchedRequest').encode({
        op: int(2) as CoreSchedRequest_Op,
        relay_cpu_map: Array.from({ length: int(3) }, () => ({ relay_number: int(2048) - 8, vf2virtio_cpu: int(4) - 1, virtio2vf_cpu: int(4) })),
      });
    case 'config':
      return codec('virtioforwarder.ConfigRequest').encode({});
  }
}

function hugeRepeated(ep: EndpointName, n: number): Uint8Array {
  switch (ep) {
    case 'portControl':
      return codec('virtioforwarder.PortControlRequest').encode({ op: Op.ADD, virtio_id: 1, pci_addrs: Array.from({ length: n }, (_, i) => ({ domain: 0, bus: i & 0xff, slot: 0, function: 0 })) });
    case 'stats':
      return codec('virtioforwarder.StatsRequest').encode({ relay: Array.from({ length: n }, (_, i) => i) });
    case 'coreSched':
      return codec('virtioforwarder.CoreSchedRequest').encode({ op: CoreSchedRequest_Op.UPDATE, relay_cpu_map: Array.from({ length: n }, (_, i) => ({ relay_number: i, vf2virtio_cpu: 0, virtio2vf_cpu: 0 })) });
    case 'config': {
      // Unknown repeated field 7 (length-delimited), many times.
      const parts: number[] = [];
      for (let i = 0; i < n; i++) parts.push(0x3a, 1, 0x41);
      return Uint8Array.from(parts);
    }
  }
}

function hostile(rnd: () => number): Uint8Array {
  const pick = Math.floor(rnd() * 6);
  switch (pick) {
    case 0: // varint that never ends
      return Uint8Array.from([0x08, ...Array(20).fill(0xff)]);
    case 1: // length prefix far beyond the message
      return Uint8Array.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    case 2: // deeply nested start-groups
      return new Uint8Array(3000).fill(0x0b);
    case 3: // end-group without start
      return Uint8Array.from([0x08, 0x00, 0x0c]);
    case 4: // string field with invalid UTF-8 and NUL bytes
      return Uint8Array.from([0x08, 0x02, 0x3a, 0x06, 0x2f, 0x00, 0xc3, 0x28, 0xff, 0xfe]);
    default: // wire type 6/7 (invalid)
      return Uint8Array.from([0x0e, 0x01, 0x0f]);
  }
}

/** Builds `count` fuzz cases over the given endpoints, deterministically from `seed`. */
export function fuzzCases(endpoints: EndpointName[], count: number, seed: number, maxRequestBytes = 4096): FuzzCase[] {
  const rnd = prng(seed);
  const kinds: FuzzKind[] = ['random', 'random', 'truncated', 'bitflip', 'wrong-type', 'huge-repeated', 'oversized', 'multipart', 'empty', 'hostile'];
  const out: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const endpoint = endpoints[i % endpoints.length] as EndpointName;
    const kind = kinds[Math.floor(rnd() * kinds.length)] as FuzzKind;
    let frames: Uint8Array[];
    switch (kind) {
      case 'random': {
        const b = new Uint8Array(Math.floor(rnd() * 300));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
        frames = [b];
        break;
      }
      case 'truncated': {
        const v = validRequest(endpoint, rnd);
        frames = [v.subarray(0, Math.floor(rnd() * v.length))];
        break;
      }
      case 'bitflip': {
        const v = Uint8Array.from(validRequest(endpoint, rnd));
        if (v.length) for (let j = 0; j < 1 + Math.floor(rnd() * 3); j++) v[Math.floor(rnd() * v.length)]! ^= 1 << Math.floor(rnd() * 8);
        frames = [v];
        break;
      }
      case 'wrong-type': {
        const others = (['portControl', 'stats', 'coreSched', 'config'] as EndpointName[]).filter((e) => e !== endpoint);
        frames = [validRequest(others[Math.floor(rnd() * others.length)] as EndpointName, rnd)];
        break;
      }
      case 'huge-repeated': {
        const n = 500 + Math.floor(rnd() * 20000);
        frames = [hugeRepeated(endpoint, n)];
        out.push({ endpoint, kind, frames, items: n });
        continue;
      }
      case 'oversized': {
        const b = new Uint8Array(maxRequestBytes + 1 + Math.floor(rnd() * 200_000));
        b[0] = 0x08;
        frames = [b];
        break;
      }
      case 'multipart':
        frames = Array.from({ length: 2 + Math.floor(rnd() * 4) }, () => validRequest(endpoint, rnd));
        break;
      case 'empty':
        frames = [new Uint8Array(0)];
        break;
      case 'hostile':
        frames = [hostile(rnd)];
        break;
    }
    out.push({ endpoint, kind, frames });
  }
  return out;
}

export interface FuzzLimits {
  /** The server's per-endpoint request size limits. */
  maxRequestBytes: Record<EndpointName, number>;
  /** The server's relay-number bound (stats and core scheduling lists above it are refused). */
  maxRelays: number;
  /** Bond members per port-control request. */
  maxBondMembers: number;
}

/**
 * True when the request is one a server must refuse: not one frame, too big, not decodable,
 * or a repeated field longer than the server takes.
 */
export function mustRefuse(c: FuzzCase, limits: FuzzLimits): boolean {
  if (c.frames.length !== 1) return true;
  const f = c.frames[0] as Uint8Array;
  if (f.length > limits.maxRequestBytes[c.endpoint]) return true;
  if (c.items !== undefined) {
    if (c.endpoint === 'portControl' && c.items > limits.maxBondMembers) return true;
    if ((c.endpoint === 'stats' || c.endpoint === 'coreSched') && c.items > limits.maxRelays) return true;
  }
  try {
    codec(REQUEST_OF[c.endpoint]).decode(f);
    return false;
  } catch {
    return true;
  }
}

/** Whether a decoded reply says "error" for its endpoint. */
export function isErrorReply(endpoint: EndpointName, reply: Record<string, unknown>): boolean {
  switch (endpoint) {
    case 'portControl':
      return reply.status === PStatus.ERROR;
    case 'coreSched':
      return reply.status === CoreSchedResponse_Status.ERROR;
    case 'stats':
      return reply.status !== StatsResponse_Status.OK;
    case 'config':
      return reply.status !== ConfigResponse_Status.OK;
  }
}

export interface FuzzReport {
  sent: number;
  replies: number;
  refused: number;
  byKind: Record<string, number>;
}

/**
 * Sends every case over one REQ socket per endpoint (lock-step: a missing reply fails the run)
 * and checks each reply decodes completely; requests that cannot be parsed must get an error.
 */
export async function runControlFuzz(
  endpoints: ControlEndpoints,
  cases: FuzzCase[],
  opts: FuzzLimits & { timeoutMs?: number },
): Promise<FuzzReport> {
  const report: FuzzReport = { sent: 0, replies: 0, refused: 0, byKind: {} };
  const byEndpoint = new Map<EndpointName, FuzzCase[]>();
  for (const c of cases) {
    if (!endpoints[c.endpoint]) continue;
    byEndpoint.set(c.endpoint, [...(byEndpoint.get(c.endpoint) ?? []), c]);
  }
  await Promise.all(
    [...byEndpoint].map(async ([ep, list]) => {
      const sock = new Request({ linger: 0, sendTimeout: opts.timeoutMs ?? 10_000, receiveTimeout: opts.timeoutMs ?? 10_000 });
      sock.connect(endpoints[ep] as string);
      try {
        for (const [i, c] of list.entries()) {
          report.sent++;
          report.byKind[c.kind] = (report.byKind[c.kind] ?? 0) + 1;
          await sock.send(c.frames);
          let frames: Buffer[];
          try {
            frames = await sock.receive();
          } catch (err) {
            throw new Error(`${ep} case ${i} (${c.kind}, ${c.frames.map((f) => f.length).join('+')} bytes): no reply: ${(err as Error).message}`, { cause: err });
          }
          assert.equal(frames.length, 1, `${ep} case ${i}: reply must be one frame`);
          const reply = decodeReply(RESPONSE_OF[ep], frames[0] as Buffer) as unknown as Record<string, unknown>;
          report.replies++;
          if (mustRefuse(c, opts)) {
            assert.ok(isErrorReply(ep, reply), `${ep} case ${i} (${c.kind}) is not a valid request but the reply says OK`);
            report.refused++;
          }
        }
      } finally {
        sock.close();
      }
    }),
  );
  return report;
}

/** Counter values of a relay from a stats reply, as numbers (for assertions). */
export function counters(r: RelayState): { upRx: number; upTx: number; downRx: number; downTx: number } {
  return {
    upRx: toNumber(r.vf_to_vm.pkts_rx_from_vf),
    upTx: toNumber(r.vf_to_vm.pkts_tx_to_vm),
    downRx: toNumber(r.vm_to_vf.pkts_rx_from_vm),
    downTx: toNumber(r.vm_to_vf.pkts_tx_to_vf),
  };
}
