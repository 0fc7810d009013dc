// Every control operation end to end against a server that speaks virtio-forwarder's ZeroMQ
// protocol (runControlScenario): each request check and the reply rules.
import assert from 'node:assert/strict';
import { join } from 'node:path';
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
  type ControlEndpoints,
  type EndpointName,
  type PortControlRequest,
  type PortControlResponse,
  type RelayState,
  type StatsRequest,
  type WireMessages,
} from '../../../src/control/index.js';
import { decodeReply, rawRequest, type ResponseName } from './replies.js';

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

export const pciWire = (p: string): { domain: number; bus: number; slot: number; function: number } => {
  const a = parsePci(p);
  assert.ok(a, `${p} is not a PCI address`);
  return a;
};

export function expectOk(res: PortControlResponse, what: string): void {
  assert.equal(res.status, PStatus.OK, `${what}: expected OK, got ERROR ${res.error_code !== undefined ? errnoName(res.error_code) : ''} ${res.error_code_source ?? ''}`);
}

export function expectError(res: PortControlResponse, errno: string | string[], what: string, source?: RegExp): void {
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
