// The .proto as virtio-forwarder's clients see it: every tag, rule and default of the protocol,
// proto2 required-field behaviour, and wire types derived from the .proto (not hand-written).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { codec, has, loadWireRoot } from '../../src/control/proto.js';
import { generateWireTypes, WIRE_TYPES_FILE } from '../../src/control/protogen.js';
import { formatPci, parsePci } from '../../src/control/pci.js';

// [message, field, tag, rule, type, default] from virtio-forwarder's protocol description.
const FIELDS: [string, string, number, 'required' | 'optional' | 'repeated', string, unknown?][] = [
  ['PortControlRequest', 'op', 1, 'required', 'Op'],
  ['PortControlRequest', 'pci_addrs', 2, 'repeated', 'PciAddress'],
  ['PortControlRequest', 'virtio_id', 3, 'optional', 'uint32'],
  ['PortControlRequest', 'conditional', 4, 'optional', 'bool', true],
  ['PortControlRequest', 'name', 5, 'optional', 'string'],
  ['PortControlRequest', 'mode', 6, 'optional', 'uint32'],
  ['PortControlRequest', 'vhost_path', 7, 'optional', 'string'],
  ['PortControlRequest.PciAddress', 'domain', 1, 'required', 'uint32'],
  ['PortControlRequest.PciAddress', 'bus', 2, 'required', 'uint32'],
  ['PortControlRequest.PciAddress', 'slot', 3, 'required', 'uint32'],
  ['PortControlRequest.PciAddress', 'function', 4, 'required', 'uint32'],
  ['PortControlResponse', 'status', 4, 'required', 'Status'],
  ['PortControlResponse', 'error_code', 5, 'optional', 'int32'],
  ['PortControlResponse', 'error_code_source', 6, 'optional', 'string'],
  ['PortControlResponse', 'query_string', 7, 'optional', 'string'],
  ['StatsRequest', 'relay', 1, 'repeated', 'uint32'],
  ['StatsRequest', 'include_inactive', 2, 'optional', 'bool', true],
  ['StatsRequest', 'delay', 3, 'optional', 'uint32', 0],
  ['StatsResponse', 'status', 1, 'required', 'Status'],
  ['StatsResponse', 'relay', 2, 'repeated', 'RelayState'],
  ['RelayState', 'id', 1, 'required', 'uint32'],
  ['RelayState', 'active', 2, 'required', 'bool'],
  ['RelayState', 'ident', 3, 'optional', 'string'],
  ['RelayState', 'cpu', 4, 'optional', 'CPU'],
  ['RelayState', 'vhost', 5, 'required', 'VHOST'],
  ['RelayState', 'vf', 6, 'optional', 'VF'],
  ['RelayState', 'vf_to_vm', 7, 'required', 'VFtoVM'],
  ['RelayState', 'vm_to_vf', 8, 'required', 'VMtoVF'],
  ['RelayState', 'socket_id', 9, 'required', 'uint32'],
  ['RelayState.CPU', 'vf_to_vm', 1, 'optional', 'int32'],
  ['RelayState.CPU', 'vm_to_vf', 2, 'optional', 'int32'],
  ['RelayState.VHOST', 'vhost_socket_name', 1, 'required', 'string'],
  ['RelayState.VF', 'pci_addr_str', 1, 'optional', 'string'],
  ['ConfigResponse', 'status', 1, 'required', 'Status'],
  ['ConfigResponse', 'relay_cpu_map', 5, 'repeated', 'RelayCPU'],
  ['ConfigResponse.RelayCPU', 'relay_number', 1, 'required', 'int32'],
  ['ConfigResponse.RelayCPU', 'vf2virtio_cpu', 2, 'required', 'int32'],
  ['ConfigResponse.RelayCPU', 'virtio2vf_cpu', 3, 'required', 'int32'],
  ['CoreSchedRequest', 'op', 1, 'required', 'Op'],
  ['CoreSchedRequest', 'relay_cpu_map', 2, 'repeated', 'RelayCPU'],
  ['CoreSchedRequest.RelayCPU', 'relay_number', 1, 'required', 'int32'],
  ['CoreSchedRequest.RelayCPU', 'vf2virtio_cpu', 2, 'required', 'int32'],
  ['CoreSchedRequest.RelayCPU', 'virtio2vf_cpu', 3, 'required', 'int32'],
  ['CoreSchedResponse', 'status', 4, 'required', 'Status'],
  ['CoreSchedResponse', 'error_code', 5, 'optional', 'int32'],
  ['CoreSchedResponse', 'error_code_source', 6, 'optional', 'string'],
  ['CoreSchedResponse', 'eal_cores', 7, 'repeated', 'uint32'],
];

const DIRECTIONS: [string, string[]][] = [
  ['VFtoVM', ['pkts_rx_from_vf', 'bytes_rx_from_vf', 'pkts_tx_to_vm', 'bytes_tx_to_vm', 'pkts_dropped_vm_queue_full', 'bytes_dropped_vm_queue_full', 'pkts_dropped_vm_not_connected', 'bytes_dropped_vm_not_connected', 'pkt_rate_rx_from_vf', 'byte_rate_rx_from_vf', 'pkt_rate_tx_to_vm', 'byte_rate_tx_to_vm']],
  ['VMtoVF', ['pkts_rx_from_vm', 'bytes_rx_from_vm', 'pkts_tx_to_vf', 'bytes_tx_to_vf', 'pkts_dropped_vf_queue_full', 'bytes_dropped_vf_queue_full', 'pkts_dropped_vf_not_connected', 'bytes_dropped_vf_not_connected', 'pkt_rate_rx_from_vm', 'byte_rate_rx_from_vm', 'pkt_rate_tx_to_vf', 'byte_rate_tx_to_vf']],
];
for (const [msg, names] of DIRECTIONS) {
  FIELDS.push([`RelayState.${msg}`, 'active', 1, 'required', 'bool'], [`RelayState.${msg}`, 'internal_state', 2, 'required', 'string']);
  names.forEach((n, i) => FIELDS.push([`RelayState.${msg}`, n, i + 3, i < 8 ? 'optional' : 'required', i < 8 ? 'uint64' : 'float']));
}

test('the .proto has every tag, rule, type and default of virtio-forwarder\'s protocol', () => {
  const root = loadWireRoot();
  for (const [msg, field, tag, rule, type, dflt] of FIELDS) {
    const t = root.lookupType(`virtioforwarder.${msg}`);
    const f = t.fields[field];
    assert.ok(f, `${msg}.${field} missing`);
    assert.equal(f.id, tag, `${msg}.${field} tag`);
    assert.equal(f.required ? 'required' : f.repeated ? 'repeated' : 'optional', rule, `${msg}.${field} rule`);
    assert.equal(f.type, type, `${msg}.${field} type`);
    if (dflt !== undefined) assert.equal(f.options?.default, dflt, `${msg}.${field} default`);
  }
  assert.equal(root.lookupType('virtioforwarder.StatsRequest').fields.relay?.packed, true, 'StatsRequest.relay is packed');
  // Every field of the protocol, and no other below tag 100 (vio4wd's extensions start there).
  const count = (name: string): number => root.lookupType(`virtioforwarder.${name}`).fieldsArray.filter((f) => f.id < 100).length;
  for (const msg of new Set(FIELDS.map((f) => f[0]))) {
    assert.equal(count(msg), FIELDS.filter((f) => f[0] === msg).length, `${msg} has extra fields`);
  }
  assert.equal(count('ConfigRequest'), 0);
  assert.equal((root.lookupType('virtioforwarder.PortControlRequest').parent as unknown as { name: string }).name, 'virtioforwarder');
});

test("vio4wd's extension fields use tags from 100 and are never required", () => {
  const root = loadWireRoot();
  const ext: [string, string][] = [];
  for (const name of ['StatsRequest', 'StatsResponse', 'RelayState']) {
    for (const f of root.lookupType(`virtioforwarder.${name}`).fieldsArray) if (f.id >= 100) ext.push([name, f.name]);
  }
  assert.deepEqual(ext, [['StatsRequest', 'vio4wd_extended'], ['StatsResponse', 'worker'], ['RelayState', 'vf_port']]);
  for (const [msg, field] of ext) {
    const f = root.lookupType(`virtioforwarder.${msg}`).fields[field]!;
    assert.equal(f.required, false, `${msg}.${field} must not be required: old clients do not send it`);
  }
  // a virtio-forwarder client's request (no tag 100) decodes with the extension off
  const req = root.lookupType('virtioforwarder.StatsRequest');
  const got = req.toObject(req.decode(req.encode({ relay: [1] }).finish()), { defaults: true }) as { vio4wd_extended: boolean };
  assert.equal(got.vio4wd_extended, false);
});

test('enums carry the protocol\'s numbers', () => {
  const root = loadWireRoot();
  const e = (n: string): Record<string, number> => ({ ...root.lookupEnum(`virtioforwarder.${n}`).values });
  assert.deepEqual(e('PortControlRequest.Op'), { ADD: 0, REMOVE: 1, ADD_SOCK: 2, REMOVE_SOCK: 3, QUERY_PCI: 4 });
  assert.deepEqual(e('PortControlResponse.Status'), { ERROR: 0, OK: 1 });
  assert.deepEqual(e('StatsResponse.Status'), { OK: 0, EBADR: 400, E2BIG: 413, ENOMEM: 500 });
  assert.deepEqual(e('ConfigResponse.Status'), { OK: 0, EBADR: 400 });
  assert.deepEqual(e('CoreSchedRequest.Op'), { UPDATE: 0, GET_EAL_CORES: 1 });
  assert.deepEqual(e('CoreSchedResponse.Status'), { ERROR: 0, OK: 1 });
});

test('wire.gen.ts is what the .proto generates (types derived, not written twice)', () => {
  assert.equal(readFileSync(WIRE_TYPES_FILE, 'utf8'), generateWireTypes(), 'stale: run npx tsx src/control/protogen.ts');
});

test('bytes on the wire match proto2 encoding by hand', () => {
  // status OK at tag 4, varint: 0x20 0x01
  assert.deepEqual([...codec('virtioforwarder.PortControlResponse').encode({ status: 1 })], [0x20, 0x01]);
  // packed relay list: tag 1 wire type 2, length 3, values 1 2 3
  assert.deepEqual([...codec('virtioforwarder.StatsRequest').encode({ relay: [1, 2, 3] })], [0x0a, 0x03, 0x01, 0x02, 0x03]);
  // op ADD, one PCI address 0000:05:08.1, virtio_id 3
  const req = codec('virtioforwarder.PortControlRequest').encode({ op: 0, pci_addrs: [{ domain: 0, bus: 5, slot: 8, function: 1 }], virtio_id: 3 });
  assert.deepEqual([...req], [0x08, 0x00, 0x12, 0x08, 0x08, 0x00, 0x10, 0x05, 0x18, 0x08, 0x20, 0x01, 0x18, 0x03]);
});

test('decode refuses a message with a required field missing (IsInitialized)', () => {
  assert.throws(() => codec('virtioforwarder.PortControlRequest').decode(Uint8Array.from([0x18, 0x03])), /missing required 'op'/);
  assert.throws(() => codec('virtioforwarder.PortControlResponse').decode(new Uint8Array(0)), /missing required 'status'/);
  // RelayState without vhost (tag 5) inside a StatsResponse
  const relay = Uint8Array.from([0x08, 0x01, 0x10, 0x00]);
  assert.throws(() => codec('virtioforwarder.StatsResponse').decode(Uint8Array.from([0x08, 0x00, 0x12, relay.length, ...relay])), /missing required/);
});

test('encode refuses a reply that lacks a required field', () => {
  const c = codec('virtioforwarder.StatsResponse');
  assert.throws(() => c.encode({ status: 0, relay: [{ id: 1, active: true } as never] }), /vhost|vf_to_vm|required|object expected/);
  assert.throws(() => codec('virtioforwarder.PortControlResponse').encode({} as never), /status/);
});

test('defaults and presence follow proto2: conditional and include_inactive default to true', () => {
  const pc = codec('virtioforwarder.PortControlRequest').decode(Uint8Array.from([0x08, 0x00]));
  assert.equal(pc.conditional, true);
  assert.equal(has(pc, 'conditional'), false);
  assert.equal(has(pc, 'virtio_id'), false);
  const pc2 = codec('virtioforwarder.PortControlRequest').decode(Uint8Array.from([0x08, 0x00, 0x18, 0x00, 0x20, 0x00]));
  assert.equal(has(pc2, 'virtio_id'), true);
  assert.equal(pc2.virtio_id, 0);
  assert.equal(pc2.conditional, false);
  const st = codec('virtioforwarder.StatsRequest').decode(new Uint8Array(0));
  assert.equal(st.include_inactive, true);
  assert.equal(st.delay, 0);
  assert.deepEqual(st.relay, []);
});

test('PCI addresses: text <-> wire', () => {
  assert.deepEqual(parsePci('0000:05:08.1'), { domain: 0, bus: 5, slot: 8, function: 1 });
  assert.deepEqual(parsePci('af:1f.7'), { domain: 0, bus: 0xaf, slot: 0x1f, function: 7 });
  assert.equal(formatPci({ domain: 0x1a, bus: 0xaf, slot: 2, function: 3 }), '001a:af:02.3');
  for (const bad of ['', '0000:05:08', '0000:05:20.1', '0000:05:08.8', '12345:00:00.0', 'eth0']) assert.equal(parsePci(bad), undefined, bad);
});
