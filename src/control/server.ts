// The ZeroMQ side: one REP socket per endpoint, each served by its own loop so a slow request
// on one endpoint never holds up another. Every request gets exactly one reply, whatever it
// holds (a REP socket that does not answer stops receiving).
import { Reply } from 'zeromq';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { errorCode, errorMessage, ValidationError, VioError } from '../util/errors.js';
import {
  DEFAULT_ENDPOINTS,
  ENDPOINT_NAMES,
  type ControlEndpoints,
  type ControlServerOptions,
  type EndpointName,
} from './types.js';
import type { EndpointHandler, HandlerContext } from './handler.js';
import { portControlEndpoint } from './portControl.js';
import { statsEndpoint } from './stats.js';
import { configEndpoint, coreSchedEndpoint } from './cpus.js';
import { cleanupIpc, endpointExposure, prepareIpc, resolveGroup, secureIpcSocket, type PreparedIpc } from './ipc.js';
import { MAX_RELAYS } from '../util/limits.js';

export const HANDLERS: Record<EndpointName, EndpointHandler> = {
  portControl: portControlEndpoint,
  stats: statsEndpoint,
  coreSched: coreSchedEndpoint,
  config: configEndpoint,
};

interface Bound {
  name: EndpointName;
  address: string;
  sock: Reply;
  handler: EndpointHandler;
  ipc?: PreparedIpc;
  loop?: Promise<void>;
}

class Timeout extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export class ControlServer {
  private readonly log: Logger;
  private readonly ctx: HandlerContext;
  private readonly wanted: ControlEndpoints;
  private bound: Bound[] = [];
  private closing = false;

  constructor(private readonly opts: ControlServerOptions) {
    this.log = (opts.logger ?? silentLogger()).child({ component: 'control' });
    this.wanted = { ...DEFAULT_ENDPOINTS, ...opts.endpoints };
    this.ctx = {
      backend: opts.backend,
      log: this.log,
      maxRelays: opts.maxRelays ?? MAX_RELAYS,
      maxBondMembers: opts.maxBondMembers ?? 8,
      maxStatsDelayMs: opts.maxStatsDelayMs ?? 10_000,
      now: () => performance.now(),
      sleep: (ms) => sleep(ms),
    };
  }

  /** Addresses actually served, by endpoint. */
  get endpoints(): ControlEndpoints {
    return Object.fromEntries(this.bound.map((b) => [b.name, b.address]));
  }

  async start(): Promise<void> {
    const seen = new Map<string, EndpointName>();
    for (const name of ENDPOINT_NAMES) {
      const a = this.wanted[name];
      if (!a) continue;
      const other = seen.get(a);
      if (other) throw new ValidationError(`control.endpoints.${name}`, `${a} is also the ${other} endpoint; give each endpoint its own address`);
      seen.set(a, name);
    }
    const gid = this.opts.ipcGroup !== undefined ? await resolveGroup(this.opts.ipcGroup) : undefined;
    try {
      for (const [address, name] of seen) await this.bind(name, address, gid);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.log.info({ endpoints: this.endpoints }, 'control endpoints ready');
  }

  private async bind(name: EndpointName, address: string, gid: number | undefined): Promise<void> {
    const ipc = await prepareIpc(address, { gid, log: this.log });
    const sock = new Reply({ linger: 0, sendTimeout: 1000, maxMessageSize: this.opts.maxMessageBytes ?? 4 * 1024 * 1024 });
    const b: Bound = { name, address, sock, handler: HANDLERS[name], ...(ipc ? { ipc } : {}) };
    try {
      await sock.bind(address);
    } catch (err) {
      sock.close();
      throw new VioError(errorCode(err) ?? 'EIO', `cannot serve the ${name} endpoint at ${address}: ${errorMessage(err)}`);
    }
    this.bound.push(b);
    if (ipc) await secureIpcSocket(ipc, gid);
    if (endpointExposure(address) === 'local') {
      this.log.warn({ endpoint: name, address }, 'every local user may connect to this endpoint (no file permissions on tcp:// or abstract ipc://@): use an ipc:// path to limit it to root and control.group');
    }
    b.loop = this.serve(b);
  }

  private async serve(b: Bound): Promise<void> {
    const log = this.log.child({ endpoint: b.name });
    while (!this.closing && !b.sock.closed) {
      let frames: Buffer[];
      try {
        frames = await b.sock.receive();
      } catch (err) {
        if (this.closing || b.sock.closed) return;
        log.error({ err: errorMessage(err) }, 'receive failed');
        await sleep(100);
        continue;
      }
      const reply = await this.answer(b.handler, frames, log);
      try {
        await b.sock.send(reply);
      } catch (err) {
        if (this.closing || b.sock.closed) return;
        log.warn({ err: errorMessage(err) }, 'reply not sent (client gone?)');
      }
    }
  }

  /** The one reply to one request; never throws. */
  private async answer(h: EndpointHandler, frames: Buffer[], log: Logger): Promise<Uint8Array> {
    try {
      if (frames.length !== 1) {
        log.warn({ frames: frames.length }, 'multi-part request refused');
        return h.reject('malformed', `request has ${frames.length} frames; send the message as exactly one frame`);
      }
      const req = frames[0] as Buffer;
      if (req.length > h.maxRequestBytes) {
        log.warn({ bytes: req.length, max: h.maxRequestBytes }, 'oversized request refused');
        return h.reject('oversized', `request is ${req.length} bytes; at most ${h.maxRequestBytes} are accepted`);
      }
      return await withTimeout(h.handle(req, this.ctx), this.opts.requestTimeoutMs ?? 30_000);
    } catch (err) {
      if (err instanceof Timeout) {
        log.error({ err: err.message }, 'request timed out; the backend call goes on');
        return h.reject('timeout', err.message);
      }
      log.error({ err: errorMessage(err) }, 'request failed');
      return h.reject('internal', errorMessage(err));
    }
  }

  /** Stops serving, waits for the loops, and removes the socket files this server made. */
  async close(): Promise<void> {
    this.closing = true;
    const bound = this.bound;
    this.bound = [];
    for (const b of bound) b.sock.close();
    // A request in flight (a stats delay, a slow backend call) ends on its own; do not wait long.
    await Promise.race([Promise.allSettled(bound.map((b) => b.loop)), sleep(1000)]);
    await cleanupIpc(bound.flatMap((b) => (b.ipc ? [b.ipc] : [])));
    if (bound.length) this.log.info('control endpoints closed');
  }
}

/** Creates and starts a ControlServer. */
export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const s = new ControlServer(opts);
  await s.start();
  return s;
}
