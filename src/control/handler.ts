// The shape every endpoint shares: bytes in, bytes out, and an error reply that can always be
// encoded (a REP socket must answer every request, or it stops receiving).
import type { Logger } from '../util/log.js';
import type { ControlBackend, EndpointName } from './types.js';
import { codec, WireError } from './proto.js';
import type { WireMessages } from './wire.gen.js';
import { errorMessage } from '../util/errors.js';

export interface HandlerContext {
  backend: ControlBackend;
  log: Logger;
  maxRelays: number;
  maxBondMembers: number;
  maxStatsDelayMs: number;
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export type RejectReason = 'malformed' | 'oversized' | 'timeout' | 'internal';

export interface EndpointHandler {
  readonly name: EndpointName;
  /** Requests above this many bytes are answered with an error without being parsed. */
  readonly maxRequestBytes: number;
  handle(request: Uint8Array, ctx: HandlerContext): Promise<Uint8Array>;
  /** The error reply for a request that could not be served; never throws. */
  reject(reason: RejectReason, detail: string): Uint8Array;
}

/** Caps error_code_source so a long backend message cannot blow up a reply. */
export function sourceText(source: string, message: string): string {
  const s = message ? `${source}: ${message}` : source;
  return s.length > 1024 ? `${s.slice(0, 1021)}...` : s;
}

/**
 * Builds an endpoint from typed pieces: decode the request, run `serve`, encode (and verify)
 * the reply. Whatever goes wrong ends in `reject`.
 */
export function endpoint<Req extends keyof WireMessages, Res extends keyof WireMessages>(spec: {
  name: EndpointName;
  request: Req;
  response: Res;
  maxRequestBytes: number;
  serve(req: WireMessages[Req], ctx: HandlerContext): Promise<WireMessages[Res]>;
  reject(reason: RejectReason, detail: string): WireMessages[Res];
}): EndpointHandler {
  const reqCodec = codec(spec.request);
  const resCodec = codec(spec.response);
  const reject = (reason: RejectReason, detail: string): Uint8Array => resCodec.encode(spec.reject(reason, detail));
  return {
    name: spec.name,
    maxRequestBytes: spec.maxRequestBytes,
    reject,
    async handle(request, ctx) {
      let req: WireMessages[Req];
      try {
        req = reqCodec.decode(request);
      } catch (err) {
        ctx.log.warn({ endpoint: spec.name, bytes: request.length, err: errorMessage(err) }, 'malformed request');
        return reject('malformed', err instanceof WireError ? err.message : errorMessage(err));
      }
      const res = await spec.serve(req, ctx);
      try {
        return resCodec.encode(res);
      } catch (err) {
        // A backend returned something the protocol cannot carry: answer, and say so in the log.
        ctx.log.error({ endpoint: spec.name, err: errorMessage(err) }, 'reply failed protocol checks');
        return reject('internal', 'reply could not be encoded');
      }
    },
  };
}
