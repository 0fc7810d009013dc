// The control endpoints' logic without ZeroMQ: virtio-forwarder's request checks, conditional
// requests, errno replies, stats rates over the delay, relay filtering, core scheduling, and
// error replies that always decode completely.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validatePortControl, servePortControl, portControlEndpoint } from '../../src/control/portControl.js';
import { serveStats, statsEndpoint } from '../../src/control/stats.js';
import { serveCoreSched, serveConfig, coreSchedEndpoint, configEndpoint } from '../../src/control/cpus.js';
import type { HandlerContext, EndpointHandler, RejectReason } from '../../src/control/handler.js';
import type { ControlBackend, PortChange, RelaySnapshot } from '../../src/control/types.js';
import { codec } from '../../src/control/proto.js';
import { errnoName, errnoOf } from '../../src/control/errno.js';
import { PortControlRequest_Op as Op, type PortControlRequest } from '../../src/control/wire.gen.js';
import { silentLogger } from '../../src/util/log.js';
import { VioError, ValidationError } from '../../src/util/errors.js';

const LIMITS = { maxRelays: 64, maxBondMembers: 8 };
const pci = (bus: number, fn = 0): { domain: number; bus: number; slot: number; function: number } => ({ domain: 0, bus, slot: 0, function: fn });

function refused(req: PortControlRequest, field: RegExp, errno = 'EINVAL'): void {
  assert.throws(
    () => validatePortControl(req, LIMITS),
    (e: { code: string; source: string; message: string }) => {
      assert.equal(e.code, errno, e.message);
      assert.match(`${e.source} ${e.message}`, field);
      return true;
    },
  );
}

test('ADD and REMOVE need virtio_id, in range', () => {
  refused({ op: Op.ADD, pci_addrs: [pci(5)] }, /virtio_id/);
  refused({ op: Op.REMOVE, pci_addrs: [pci(5)] }, /virtio_id/);
  refused({ op: Op.ADD, virtio_id: 64, pci_addrs: [pci(5)] }, /virtio_id.*out of range 0\.\.63/);
  const ok = validatePortControl({ op: Op.ADD, virtio_id: 0, pci_addrs: [pci(5, 1)] }, LIMITS);
  assert.deepEqual(ok.op, { kind: 'addVf', req: { virtioId: 0, pciAddrs: ['0000:05:00.1'] } });
  assert.equal(ok.conditional, true);
});

test('ADD needs a PCI address; REMOVE needs an address or a bond name', () => {
  refused({ op: Op.ADD, virtio_id: 1 }, /pci_addrs/);
  refused({ op: Op.REMOVE, virtio_id: 1 }, /pci_addrs.*bond/);
  const byName = validatePortControl({ op: Op.REMOVE, virtio_id: 1, name: 'net_bonding0' }, LIMITS);
  assert.deepEqual(byName.op, { kind: 'removeVf', req: { virtioId: 1, pciAddrs: [], bondName: 'net_bonding0' } });
});

test('REMOVE and REMOVE_SOCK with several PCI addresses need a bond name', () => {
  refused({ op: Op.REMOVE, virtio_id: 1, pci_addrs: [pci(5), pci(6)] }, /name/);
  refused({ op: Op.REMOVE_SOCK, vhost_path: '/tmp/a.sock', pci_addrs: [pci(5), pci(6)] }, /name/);
  const v = validatePortControl({ op: Op.REMOVE_SOCK, vhost_path: '/tmp/a.sock', pci_addrs: [pci(5), pci(6)], name: 'b0' }, LIMITS);
  assert.equal(v.op.kind, 'removeSocket');
});

test('a bond: name optional on ADD, mode defaults to active-backup, name with one VF refused', () => {
  const v = validatePortControl({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(6)], name: 'net_bonding_a', mode: 4 }, LIMITS);
  assert.deepEqual(v.op, { kind: 'addVf', req: { virtioId: 2, pciAddrs: ['0000:05:00.0', '0000:06:00.0'], bondName: 'net_bonding_a', bondMode: 4 } });
  const d = validatePortControl({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(6)] }, LIMITS);
  assert.deepEqual(d.op, { kind: 'addVf', req: { virtioId: 2, pciAddrs: ['0000:05:00.0', '0000:06:00.0'], bondMode: 1 } });
  refused({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5)], name: 'b' }, /name.*two or more/);
  refused({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(6)], mode: 7 }, /mode 7/);
  refused({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(5)] }, /listed twice/);
  refused({ op: Op.ADD, virtio_id: 2, pci_addrs: Array.from({ length: 9 }, (_, i) => pci(i)) }, /at most 8/, 'E2BIG');
  const single = validatePortControl({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5)], mode: 3 }, LIMITS);
  assert.match(single.warnings.join(), /mode ignored/);
});

test('PCI addresses out of range are refused with the index named', () => {
  refused({ op: Op.ADD, virtio_id: 1, pci_addrs: [pci(5), { domain: 0, bus: 300, slot: 0, function: 0 }] }, /pci_addrs\[1\].*bus 300/);
  refused({ op: Op.ADD, virtio_id: 1, pci_addrs: [{ domain: 0, bus: 0, slot: 32, function: 0 }] }, /slot 32/);
  refused({ op: Op.ADD, virtio_id: 1, pci_addrs: [{ domain: 0x10000, bus: 0, slot: 0, function: 0 }] }, /domain/);
  refused({ op: Op.ADD, virtio_id: 1, pci_addrs: [{ domain: 0, bus: 0, slot: 0, function: 8 }] }, /function 8/);
});

test('socket operations need vhost_path and ignore virtio_id with a warning', () => {
  refused({ op: Op.ADD_SOCK, pci_addrs: [pci(5)] }, /vhost_path/);
  refused({ op: Op.ADD_SOCK, vhost_path: 'relative.sock', pci_addrs: [pci(5)] }, /absolute/);
  refused({ op: Op.ADD_SOCK, vhost_path: `/${'x'.repeat(107)}`, pci_addrs: [pci(5)] }, /107 bytes/);
  refused({ op: Op.ADD_SOCK, vhost_path: '/tmp/a.sock' }, /pci_addrs/);
  const v = validatePortControl({ op: Op.ADD_SOCK, vhost_path: '/tmp/a.sock', pci_addrs: [pci(5)], virtio_id: 7 }, LIMITS);
  assert.deepEqual(v.op, { kind: 'addSocket', req: { vhostPath: '/tmp/a.sock', pciAddrs: ['0000:05:00.0'] } });
  assert.match(v.warnings.join(), /virtio_id ignored/);
  const r = validatePortControl({ op: Op.REMOVE_SOCK, vhost_path: '/tmp/a.sock', pci_addrs: [pci(5)], virtio_id: 7 }, LIMITS);
  assert.match(r.warnings.join(), /virtio_id ignored/);
});

test('QUERY_PCI needs vhost_path; unknown ops are refused', () => {
  refused({ op: Op.QUERY_PCI }, /vhost_path/);
  assert.deepEqual(validatePortControl({ op: Op.QUERY_PCI, vhost_path: '/tmp/s' }, LIMITS).op, { kind: 'queryPci', vhostPath: '/tmp/s' });
  refused({ op: 5 as Op }, /unknown operation 5/);
  refused({ op: -1 as Op }, /unknown operation/);
});

test('conditional=false is read from the request', () => {
  assert.equal(validatePortControl({ op: Op.ADD, virtio_id: 1, pci_addrs: [pci(5)], conditional: false }, LIMITS).conditional, false);
});

// --- handlers with a scripted backend --------------------------------------------------------

function ctx(backend: Partial<ControlBackend>, clock = { t: 0 }): HandlerContext {
  const fail = (): never => {
    throw new Error('not expected');
  };
  return {
    backend: { addVf: fail, removeVf: fail, addSocket: fail, removeSocket: fail, queryPci: fail, relayStates: fail, relayCpuMap: fail, updateCpuMap: fail, ealCores: fail, ...backend },
    log: silentLogger(),
    maxRelays: 64,
    maxBondMembers: 8,
    maxStatsDelayMs: 10_000,
    now: () => clock.t,
    sleep: async (ms) => {
      clock.t += ms;
    },
  };
}

const ADD: PortControlRequest = { op: Op.ADD, virtio_id: 3, pci_addrs: [pci(5)] };

test('conditional requests: unchanged is OK; unconditional: EEXIST on add, ENOENT on remove', async () => {
  const unchanged = ctx({ addVf: (): PortChange => 'unchanged', removeVf: (): PortChange => 'unchanged' });
  assert.deepEqual(await servePortControl(ADD, unchanged), { status: 1 });
  const strict = await servePortControl({ ...ADD, conditional: false }, unchanged);
  assert.equal(strict.status, 0);
  assert.equal(errnoName(strict.error_code as number), 'EEXIST');
  assert.match(strict.error_code_source ?? '', /^addVf: relay 3 already has 0000:05:00.0/);
  const rm = await servePortControl({ op: Op.REMOVE, virtio_id: 3, pci_addrs: [pci(5)], conditional: false }, unchanged);
  assert.equal(errnoName(rm.error_code as number), 'ENOENT');
  const changed = ctx({ addVf: (): PortChange => 'changed' });
  assert.deepEqual(await servePortControl({ ...ADD, conditional: false }, changed), { status: 1 });
});

test('backend failures become errno replies naming the call and the reason', async () => {
  const c = ctx({
    addVf: () => {
      throw new VioError('ENODEV', 'no VF at 0000:05:00.0');
    },
  });
  const r = await servePortControl(ADD, c);
  assert.equal(r.status, 0);
  assert.equal(errnoName(r.error_code as number), 'ENODEV');
  assert.equal(r.error_code_source, 'addVf: no VF at 0000:05:00.0');
  assert.equal(errnoOf(new ValidationError('x', 'y')), 22);
  assert.equal(errnoOf(Object.assign(new Error('x'), { errno: -13 })), 13);
  assert.equal(errnoName(errnoOf(new Error('plain'))), 'EIO');
});

test('QUERY_PCI answers the VF of the socket, ENOENT when none', async () => {
  const c = ctx({ queryPci: (p) => (p === '/run/s1' ? '0000:05:00.0' : undefined) });
  assert.deepEqual(await servePortControl({ op: Op.QUERY_PCI, vhost_path: '/run/s1' }, c), { status: 1, query_string: '0000:05:00.0' });
  const none = await servePortControl({ op: Op.QUERY_PCI, vhost_path: '/run/s2' }, c);
  assert.equal(errnoName(none.error_code as number), 'ENOENT');
});

function snap(id: number, packets: number, active = true): RelaySnapshot {
  return {
    id,
    active,
    socketPath: `/tmp/vf${id}.sock`,
    pciAddress: `0000:0${id}:00.0`,
    numaNode: 1,
    vfToVm: { active, state: active ? 'READY' : 'ADDED', cpu: 2, counters: { rxPackets: packets, rxBytes: packets * 100, txPackets: packets, txBytes: packets * 100 } },
    vmToVf: { active, state: 'READY', cpu: 3, counters: { rxPackets: packets * 2, txPackets: packets * 2 } },
  };
}

test('stats: rates are the counter change over the delay, sampled twice', async () => {
  let calls = 0;
  const clock = { t: 1000 };
  const c = ctx({ relayStates: () => [snap(1, ++calls === 1 ? 1000 : 1500)] }, clock);
  const res = await serveStats({ relay: [], delay: 250, include_inactive: true }, c);
  assert.equal(calls, 2);
  const r = res.relay?.[0];
  assert.ok(r);
  assert.equal(r.vf_to_vm.pkt_rate_rx_from_vf, 2000); // 500 packets / 0.25 s
  assert.equal(r.vf_to_vm.byte_rate_tx_to_vm, 200_000);
  assert.equal(r.vm_to_vf.pkt_rate_tx_to_vf, 4000);
  assert.equal(r.vm_to_vf.byte_rate_tx_to_vf, 0); // no byte counters in that direction
  assert.equal(Number(r.vf_to_vm.pkts_rx_from_vf), 1500);
  assert.deepEqual(r.cpu, { vf_to_vm: 2, vm_to_vf: 3 });
  assert.equal(r.socket_id, 1);
  assert.equal(r.vhost.vhost_socket_name, '/tmp/vf1.sock');
  assert.equal(r.vf?.pci_addr_str, '0000:01:00.0');
  // the reply encodes with every required field
  assert.doesNotThrow(() => codec('virtioforwarder.StatsResponse').encode(res));
});

test('stats: delay 0 samples once, rates 0; counters going backwards give rate 0', async () => {
  let calls = 0;
  const c = ctx({ relayStates: () => [snap(1, 10 - calls++)] });
  const once = await serveStats({ delay: 0 }, c);
  assert.equal(calls, 1);
  assert.equal(once.relay?.[0]?.vf_to_vm.pkt_rate_rx_from_vf, 0);
  const back = await serveStats({ delay: 100 }, c);
  assert.equal(back.relay?.[0]?.vf_to_vm.pkt_rate_rx_from_vf, 0);
});

test('stats: out-of-range relay numbers are left out, unknown in-range ones reported inactive', async () => {
  let asked: readonly number[] | undefined;
  const c = ctx({
    relayStates: (ids) => {
      asked = ids;
      return [snap(1, 5), snap(2, 5, false)].filter((s) => !ids || ids.includes(s.id));
    },
  });
  const res = await serveStats({ relay: [64, 2, 1000, 1, 7] }, c);
  assert.deepEqual(asked, [2, 1, 7]);
  assert.deepEqual(res.relay?.map((r) => [r.id, r.active]), [[2, false], [1, true], [7, false]]);
  const empty = res.relay?.[2];
  assert.equal(empty?.vhost.vhost_socket_name, 'NONE', 'virtio-forwarder\'s word for no socket');
  assert.equal(empty?.vf_to_vm.internal_state, 'DPDK_UNINIT');
  assert.equal(empty?.vm_to_vf.internal_state, 'VIRTIO_UNINIT');
  const active = await serveStats({ relay: [2, 1, 7], include_inactive: false }, c);
  assert.deepEqual(active.relay?.map((r) => r.id), [1]);
  const all = await serveStats({}, c);
  assert.equal(asked, undefined);
  assert.deepEqual(all.relay?.map((r) => r.id), [1, 2]);
  const allActive = await serveStats({ include_inactive: false }, c);
  assert.deepEqual(allActive.relay?.map((r) => r.id), [1]);
});

test('stats: too many relays is E2BIG, too long a delay is EBADR, backend failure ENOMEM', async () => {
  const c = ctx({
    relayStates: () => {
      throw new Error('engine gone');
    },
  });
  assert.equal((await serveStats({ relay: Array.from({ length: 65 }, (_, i) => i) }, c)).status, 413);
  assert.equal((await serveStats({ delay: 10_001 }, c)).status, 400);
  assert.equal((await serveStats({}, c)).status, 500);
});

test('stats: a backend that returns junk values still yields a complete reply', async () => {
  const c = ctx({
    relayStates: () => [
      { id: 4, active: true, socketPath: '/s', numaNode: -1, vfToVm: { active: true, state: '', counters: { rxPackets: -5, txPackets: NaN, rxBytes: 1.5 } }, vmToVf: { active: false, state: 'X', cpu: -1 } },
    ],
  });
  const res = await serveStats({ delay: 0 }, c);
  const r = res.relay?.[0];
  assert.equal(r?.socket_id, 0);
  assert.equal(r?.vf_to_vm.internal_state, 'DPDK_READY');
  assert.equal(r?.vf_to_vm.pkts_rx_from_vf, undefined);
  assert.equal(r?.vf_to_vm.bytes_rx_from_vf, 1);
  assert.equal(r?.cpu, undefined);
  assert.doesNotThrow(() => codec('virtioforwarder.StatsResponse').encode(res));
});

test('core scheduling: UPDATE validates the map, GET_EAL_CORES lists cores', async () => {
  let got: unknown;
  const c = ctx({ updateCpuMap: (m) => void (got = m), ealCores: () => [1, 3] });
  assert.deepEqual(await serveCoreSched({ op: 0, relay_cpu_map: [{ relay_number: 2, vf2virtio_cpu: 1, virtio2vf_cpu: 3 }] }, c), { status: 1, eal_cores: [] });
  assert.deepEqual(got, [{ relay: 2, vfToVmCpu: 1, vmToVfCpu: 3 }]);
  const bad = await serveCoreSched({ op: 0, relay_cpu_map: [{ relay_number: 64, vf2virtio_cpu: 1, virtio2vf_cpu: 3 }] }, c);
  assert.equal(errnoName(bad.error_code as number), 'EINVAL');
  assert.match(bad.error_code_source ?? '', /relay_cpu_map\[0\]\.relay_number/);
  const neg = await serveCoreSched({ op: 0, relay_cpu_map: [{ relay_number: 1, vf2virtio_cpu: -1, virtio2vf_cpu: 3 }] }, c);
  assert.match(neg.error_code_source ?? '', /vf2virtio_cpu/);
  assert.deepEqual(await serveCoreSched({ op: 1 }, c), { status: 1, eal_cores: [1, 3] });
  const unknown = await serveCoreSched({ op: 7 as 0 }, c);
  assert.equal(errnoName(unknown.error_code as number), 'EINVAL');
  const none = await serveCoreSched({ op: 1 }, ctx({ ealCores: () => [] }));
  assert.equal(errnoName(none.error_code as number), 'ENODEV');
  const busy = await serveCoreSched(
    { op: 0, relay_cpu_map: [{ relay_number: 1, vf2virtio_cpu: 1, virtio2vf_cpu: 1 }] },
    ctx({
      updateCpuMap: () => {
        throw new VioError('EBUSY', 'relay 1 is moving');
      },
    }),
  );
  assert.equal(errnoName(busy.error_code as number), 'EBUSY');
  assert.equal(busy.error_code_source, 'updateCpuMap: relay 1 is moving');
});

test('config: the relay CPU map', async () => {
  const c = ctx({ relayCpuMap: () => [{ relay: 1, vfToVmCpu: 2, vmToVfCpu: 3 }] });
  assert.deepEqual(await serveConfig({}, c), { status: 0, relay_cpu_map: [{ relay_number: 1, vf2virtio_cpu: 2, virtio2vf_cpu: 3 }] });
});

const ENDPOINTS: [EndpointHandler, keyof import('../../src/control/wire.gen.js').WireMessages][] = [
  [portControlEndpoint, 'virtioforwarder.PortControlResponse'],
  [statsEndpoint, 'virtioforwarder.StatsResponse'],
  [coreSchedEndpoint, 'virtioforwarder.CoreSchedResponse'],
  [configEndpoint, 'virtioforwarder.ConfigResponse'],
];

test('every endpoint\'s error reply decodes with its required fields, for every reason', () => {
  for (const [h, res] of ENDPOINTS) {
    for (const reason of ['malformed', 'oversized', 'timeout', 'internal'] as RejectReason[]) {
      const msg = codec(res).decode(h.reject(reason, 'detail')) as { status: number };
      assert.ok(Object.prototype.hasOwnProperty.call(msg, 'status'), `${h.name} ${reason}`);
    }
  }
});

test('undecodable bytes get an error reply from every endpoint', async () => {
  const c = ctx({});
  const garbage = Uint8Array.from([0x0a, 0xff, 0xff]);
  const pc = codec('virtioforwarder.PortControlResponse').decode(await portControlEndpoint.handle(garbage, c));
  assert.equal(pc.status, 0);
  assert.equal(errnoName(pc.error_code as number), 'EBADMSG');
  assert.equal(codec('virtioforwarder.StatsResponse').decode(await statsEndpoint.handle(garbage, c)).status, 400);
  assert.equal(codec('virtioforwarder.CoreSchedResponse').decode(await coreSchedEndpoint.handle(garbage, c)).status, 0);
  assert.equal(codec('virtioforwarder.ConfigResponse').decode(await configEndpoint.handle(garbage, c)).status, 400);
});

test('stats, vio4wd extension: VF counters and workers only when asked, busy share over the delay', async () => {
  const clock = { t: 0 };
  let sample = 0;
  const vf = { rxPackets: 100, txPackets: 90, rxBytes: 6400, txBytes: 5760, rxMissed: 7, rxErrors: 1, txErrors: 2, rxNoMbuf: 3 };
  const c = ctx(
    {
      relayStates: () => [{ ...snap(1, 10), vf }],
      // between the samples: 300 busy and 700 idle cycles, 60 packets
      workers: () => (sample++ % 2 === 0 ? [{ cpu: 1, directions: 2, busyCycles: 1000, idleCycles: 9000, packets: 40, dropped: 4 }] : [{ cpu: 1, directions: 2, busyCycles: 1300, idleCycles: 9700, packets: 100, dropped: 5 }]),
    },
    clock,
  );
  const plain = await serveStats({ delay: 100 }, c);
  assert.equal(plain.worker, undefined, 'a virtio-forwarder client gets no extension fields');
  assert.equal(plain.relay?.[0]?.vf_port, undefined);
  assert.equal(sample, 0, 'workers are not read unless asked for');

  const ext = await serveStats({ delay: 100, vio4wd_extended: true }, c);
  assert.deepEqual(ext.relay?.[0]?.vf_port, { rx_packets: 100, tx_packets: 90, rx_bytes: 6400, tx_bytes: 5760, rx_missed: 7, rx_errors: 1, tx_errors: 2, rx_nombuf: 3 });
  const w = ext.worker?.[0];
  assert.ok(w);
  assert.equal(w.cpu, 1);
  assert.equal(w.directions, 2);
  assert.ok(Math.abs((w.busy_ratio ?? 0) - 0.3) < 1e-9, `busy ${w.busy_ratio}`);
  assert.equal(w.pkt_rate, 600); // 60 packets in 0.1 s
  assert.equal(w.cycles_per_pkt, 5); // 300 busy cycles / 60 packets
  assert.equal(Number(w.dropped), 5);
  // since start (delay 0): 1300 / 11000 busy
  const now = await serveStats({ vio4wd_extended: true }, c);
  assert.ok(Math.abs((now.worker?.[0]?.busy_ratio ?? 0) - 1000 / 10000) < 1e-9);
  assert.doesNotThrow(() => codec('virtioforwarder.StatsResponse').encode(ext));
});

test('a bond name reaches DPDK as a device name: characters its devargs parsing reads are refused', () => {
  for (const name of ['net_bonding0,mode=4', 'a=b', 'two words', 'x/y', 'net\nbonding']) {
    assert.throws(() => validatePortControl({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(6)], name }, LIMITS), /name.*may hold only letters, digits/, JSON.stringify(name));
  }
  assert.equal(validatePortControl({ op: Op.ADD, virtio_id: 2, pci_addrs: [pci(5), pci(6)], name: 'net_bonding-a.1' }, LIMITS).op.kind, 'addVf');
});
