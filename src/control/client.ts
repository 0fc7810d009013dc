// Client side of the control endpoints (the CLI and tests use it): one REQ round trip per call,
// with errors that say whether the agent is missing, unreachable or answered nonsense.
import { Request } from 'zeromq';
import { access, stat } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { VioError, errorCode, errorMessage } from '../util/errors.js';
import type {
  ConfigResponse,
  CoreSchedRequest,
  CoreSchedResponse,
  PortControlRequest,
  PortControlResponse,
  StatsRequest,
  StatsResponse,
} from './wire.gen.js';
import { codec } from './proto.js';
import { ipcPath } from './ipc.js';
import type { ControlEndpoints, EndpointName } from './types.js';

export const DEFAULT_TIMEOUT_MS = 3000;

/** Checks that an ipc:// endpoint's socket file is there and usable, with a helpful error. */
async function checkIpc(address: string): Promise<void> {
  const path = ipcPath(address);
  if (!path) return;
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new VioError('ENOENT', `no agent at ${address}: ${path} does not exist. Is the agent running (vio4wd agent)? Point at another one with --ipc-dir or --endpoint`);
    }
    if (err.code === 'EACCES') {
      throw new VioError('EACCES', `cannot reach ${path}: permission denied; the control endpoints are for root and the agent's IPC group (run with sudo)`);
    }
    throw new VioError(errorCode(err) ?? 'EIO', `${path}: ${err.message}`);
  });
  if (!st.isSocket()) throw new VioError('ENOTSOCK', `${path} is not a socket; is --ipc-dir/--endpoint right?`);
  await access(path, fsc.W_OK).catch(() => {
    throw new VioError('EACCES', `cannot connect to ${path}: permission denied; the control endpoints are for root and the agent's IPC group (run with sudo)`);
  });
}

/**
 * Sends one request (one frame, or several to test servers with) and returns the reply's frames.
 * A fresh socket per call: a REQ socket whose reply never came cannot be used again.
 */
export async function roundTrip(address: string, frames: Uint8Array | Uint8Array[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer[]> {
  await checkIpc(address);
  const sock = new Request({ linger: 0, sendTimeout: timeoutMs, receiveTimeout: timeoutMs });
  try {
    sock.connect(address);
    await sock.send(Array.isArray(frames) ? frames : [frames]);
    return await sock.receive();
  } catch (err) {
    if (errorCode(err) === 'EAGAIN') {
      throw new VioError('ETIMEDOUT', `no reply from ${address} within ${timeoutMs} ms; is the agent running and serving this endpoint?`);
    }
    throw new VioError('EIO', `${address}: ${errorMessage(err)}`);
  } finally {
    sock.close();
  }
}

export class ControlClient {
  constructor(private readonly opts: { endpoints: ControlEndpoints; timeoutMs?: number }) {}

  address(name: EndpointName): string {
    const a = this.opts.endpoints[name];
    if (!a) throw new VioError('EINVAL', `no address for the ${name} endpoint; give one with --endpoint`);
    return a;
  }

  private async call<Res>(name: EndpointName, req: Uint8Array, decode: (b: Uint8Array) => Res, extraMs = 0): Promise<Res> {
    const address = this.address(name);
    const frames = await roundTrip(address, req, (this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) + extraMs);
    if (frames.length !== 1) throw new VioError('EPROTO', `${address} answered with ${frames.length} frames instead of one`);
    try {
      return decode(frames[0] as Buffer);
    } catch (err) {
      throw new VioError('EPROTO', `${address} sent a reply that is not a valid ${name} response: ${errorMessage(err)}`);
    }
  }

  portControl(req: PortControlRequest): Promise<PortControlResponse> {
    const c = codec('virtioforwarder.PortControlResponse');
    return this.call('portControl', codec('virtioforwarder.PortControlRequest').encode(req), (b) => c.decode(b));
  }

  stats(req: StatsRequest = {}): Promise<StatsResponse> {
    const c = codec('virtioforwarder.StatsResponse');
    return this.call('stats', codec('virtioforwarder.StatsRequest').encode(req), (b) => c.decode(b), req.delay ?? 0);
  }

  coreSched(req: CoreSchedRequest): Promise<CoreSchedResponse> {
    const c = codec('virtioforwarder.CoreSchedResponse');
    return this.call('coreSched', codec('virtioforwarder.CoreSchedRequest').encode(req), (b) => c.decode(b));
  }

  config(): Promise<ConfigResponse> {
    const c = codec('virtioforwarder.ConfigResponse');
    return this.call('config', codec('virtioforwarder.ConfigRequest').encode({}), (b) => c.decode(b));
  }
}
