// The hook sidecar's gRPC server: kubevirt.hooks.info.Info plus the v1alpha2 and v1alpha3
// Callbacks services on a unix socket that virt-launcher finds under /var/run/kubevirt-hooks.
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../util/log.js';
import { VioError, ValidationError, errorMessage } from '../util/errors.js';
import { defineDomain, type BindingOptions } from './binding.js';
import { SocketNotFoundError } from './sources.js';
import { HOOK_VERSIONS, ON_DEFINE_DOMAIN, SHUTDOWN, loadHookServices } from './protos.js';

export const DEFAULT_HOOKS_DIR = '/var/run/kubevirt-hooks';
export const DEFAULT_SOCKET_NAME = 'vio4wd.sock';
export const HOOK_NAME = 'vio4wd';

export interface SidecarOptions extends BindingOptions {
  socketPath: string;
  /** Called after a v1alpha3 Shutdown call was answered and the server stopped. */
  onShutdown?: () => void;
}

type Call<T> = grpc.ServerUnaryCall<T, unknown>;
type Callback = grpc.sendUnaryData<unknown>;

function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const details = errorMessage(err);
  if (err instanceof SocketNotFoundError) return { code: grpc.status.FAILED_PRECONDITION, details };
  if (err instanceof ValidationError) return { code: grpc.status.INVALID_ARGUMENT, details };
  if (err instanceof VioError) return { code: grpc.status.FAILED_PRECONDITION, details };
  return { code: grpc.status.INTERNAL, details };
}

export class BindingSidecar {
  private server: grpc.Server | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: SidecarOptions) {
    this.log = opts.logger.child({ component: 'kubevirt-sidecar' });
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  async start(): Promise<void> {
    const svc = loadHookServices();
    const server = new grpc.Server();
    server.addService(svc.info, { Info: this.info.bind(this) });
    const callbacks = {
      OnDefineDomain: this.onDefineDomain.bind(this),
      PreCloudInitIso: this.preCloudInitIso.bind(this),
    };
    server.addService(svc.v1alpha2, callbacks);
    server.addService(svc.v1alpha3, { ...callbacks, Shutdown: this.shutdown.bind(this) });

    const path = this.opts.socketPath;
    await mkdir(dirname(path), { recursive: true });
    await removeStaleSocket(path);
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    }).catch((err: unknown) => {
      throw new VioError('EBIND', `cannot serve the hook socket ${path}: ${errorMessage(err)}`, { cause: err });
    });
    this.server = server;
    this.log.info({ socket: path, binding: this.opts.bindingName, versions: HOOK_VERSIONS }, 'KubeVirt hook sidecar serving');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
    await unlink(this.opts.socketPath).catch(() => undefined);
  }

  private info(_call: Call<unknown>, cb: Callback): void {
    cb(null, {
      name: HOOK_NAME,
      versions: [...HOOK_VERSIONS],
      // Shutdown lets the sidecar container exit with the VM (v1alpha3 only)
      hookPoints: [
        { name: ON_DEFINE_DOMAIN, priority: 0 },
        { name: SHUTDOWN, priority: 0 },
      ],
    });
  }

  private onDefineDomain(call: Call<{ domainXML: Buffer; vmi: Buffer }>, cb: Callback): void {
    const xml = Buffer.from(call.request.domainXML ?? []).toString('utf8');
    defineDomain(xml, call.request.vmi ?? Buffer.alloc(0), this.opts).then(
      (r) => cb(null, { domainXML: Buffer.from(r.domainXML, 'utf8') }),
      (err: unknown) => {
        this.log.error({ err: errorMessage(err) }, 'OnDefineDomain failed');
        cb(grpcError(err), null);
      },
    );
  }

  private preCloudInitIso(call: Call<{ cloudInitNoCloudSource: Buffer; cloudInitData: Buffer }>, cb: Callback): void {
    // not subscribed; answer unchanged should a caller ask anyway
    cb(null, { cloudInitNoCloudSource: call.request.cloudInitNoCloudSource, cloudInitData: call.request.cloudInitData });
  }

  private shutdown(_call: Call<unknown>, cb: Callback): void {
    this.log.info('Shutdown from virt-launcher: QEMU exited, stopping');
    cb(null, {});
    setImmediate(() => {
      void this.stop().then(() => this.opts.onShutdown?.());
    });
  }
}

/** Removes a socket file left by a previous run; refuses to touch anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new ValidationError('--socket', `${path} exists and is not a socket; choose another socket name`);
  }
  await unlink(path);
}
