// Loads virtio-forwarder's protocol (proto/virtioforwarder/virtioforwarder.proto) at runtime and
// gives typed encode/decode for each message. Field names stay as in the .proto (snake_case).
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import type { WireMessages } from './wire.gen.js';
import { VioError } from '../util/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The .proto, found from src/control/ and from dist/control/ alike. */
export const PROTO_FILE = join(here, '..', '..', 'proto', 'virtioforwarder', 'virtioforwarder.proto');

export function loadWireRoot(file = PROTO_FILE): protobuf.Root {
  const root = new protobuf.Root();
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}

let shared: protobuf.Root | undefined;

/** A malformed message (undecodable bytes, or a required field missing). */
export class WireError extends VioError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EBADMSG', message, options);
    this.name = 'WireError';
  }
}

export interface Codec<T> {
  readonly type: protobuf.Type;
  /** Checks every required field (proto2 IsInitialized) and value type, then serializes. */
  encode(msg: T): Uint8Array;
  /** Parses; throws WireError on malformed bytes or a missing required field. */
  decode(bytes: Uint8Array): T;
  /** Plain JSON-safe object: 64-bit numbers as numbers, enums as names, defaults filled in. */
  toJSON(msg: T): Record<string, unknown>;
  /** Null when msg has every required field and only values of the right type, else why not. */
  verify(msg: T): string | null;
}

const cache = new Map<string, Codec<unknown>>();

export function codec<K extends keyof WireMessages>(name: K): Codec<WireMessages[K]> {
  const hit = cache.get(name);
  if (hit) return hit as Codec<WireMessages[K]>;
  shared ??= loadWireRoot();
  const type = shared.lookupType(name);
  const c: Codec<WireMessages[K]> = {
    type,
    encode(msg) {
      const why = type.verify(msg as Record<string, unknown>);
      if (why) throw new WireError(`${type.name}: ${why}`);
      return type.encode(msg as Record<string, unknown>).finish();
    },
    decode(bytes) {
      try {
        return type.decode(bytes) as unknown as WireMessages[K];
      } catch (err) {
        throw new WireError(`${type.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
    toJSON(msg) {
      return type.toObject(msg as unknown as protobuf.Message, { longs: Number, enums: String, defaults: true, arrays: true });
    },
    verify(msg) {
      return type.verify(msg as Record<string, unknown>);
    },
  };
  cache.set(name, c as Codec<unknown>);
  return c;
}

/** True when a decoded message carries the field on the wire (proto2 has_<field>). */
export function has<T extends object>(msg: T, field: keyof T & string): boolean {
  return Object.prototype.hasOwnProperty.call(msg, field);
}

/** A 64-bit value from the wire (number or protobufjs Long) as a number (exact below 2^53). */
export function toNumber(v: number | protobuf.Long | undefined | null): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  const high = v.unsigned ? v.high >>> 0 : v.high | 0;
  return high * 0x1_0000_0000 + (v.low >>> 0);
}
