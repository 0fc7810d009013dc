// Fuzzing the control server: malformed, truncated, oversized, multi-part and hostile requests.
import assert from 'node:assert/strict';
import { Request } from 'zeromq';
import { CoreSchedRequest_Op, CoreSchedResponse_Status, ConfigResponse_Status, PortControlRequest_Op as Op, PortControlResponse_Status as PStatus, StatsResponse_Status, codec, type ControlEndpoints, type EndpointName } from '../../../src/control/index.js';
import { REQUEST_OF, RESPONSE_OF, decodeReply } from './replies.js';

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
