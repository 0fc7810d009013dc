// Reply checks shared by the scenario and the fuzzer: requests and replies by endpoint, decoding
// as the protocol requires (proto2: a missing required field throws), one raw round trip, and a
// relay's counters as numbers.
import assert from 'node:assert/strict';
import { Request } from 'zeromq';
import {
  codec,
  toNumber,
  type EndpointName,
  type RelayState,
  type WireMessages,
} from '../../../src/control/index.js';

// ---------------------------------------------------------------------------------------------
// Reply checks shared by the scenario and the fuzzer.

export type ResponseName =
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


/** Counter values of a relay from a stats reply, as numbers (for assertions). */
export function counters(r: RelayState): { upRx: number; upTx: number; downRx: number; downTx: number } {
  return {
    upRx: toNumber(r.vf_to_vm.pkts_rx_from_vf),
    upTx: toNumber(r.vf_to_vm.pkts_tx_to_vm),
    downRx: toNumber(r.vm_to_vf.pkts_rx_from_vm),
    downTx: toNumber(r.vm_to_vf.pkts_tx_to_vf),
  };
}
