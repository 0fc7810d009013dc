// A test kubelet: a real gRPC server speaking v1beta1 Registration on kubelet.sock in a temporary
// device-plugin directory. Like kubelet it dials each registered plugin back and keeps a
// ListAndWatch stream open; tests call Allocate & co. through it and can simulate a restart.
import { EventEmitter } from 'node:events';
import { mkdtemp, readdir, rm, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Server, ServerCredentials, credentials, status, type ClientReadableStream } from '@grpc/grpc-js';
import {
  v1beta1,
  type AllocateResponse__Output,
  type ContainerPreferredAllocationRequest,
  type Device__Output,
  type DevicePluginClient,
  type DevicePluginOptions__Output,
  type ListAndWatchResponse__Output,
  type PreferredAllocationResponse__Output,
  type RegisterRequest__Output,
  type RegistrationHandlers,
} from '../../src/deviceplugin/proto.js';

export interface Registration {
  request: RegisterRequest__Output;
  /** performance.now() when the request arrived. */
  at: number;
}

interface PluginConnection {
  endpoint: string;
  client: DevicePluginClient;
  stream: ClientReadableStream<ListAndWatchResponse__Output>;
  /** Every list received on the ListAndWatch stream, oldest first. */
  lists: Device__Output[][];
  ended: boolean;
}

const CALL_TIMEOUT_MS = 5000;

/** One event of a plugin's ListAndWatch as kubelet sees it: a device list, or the stream's end. */
export interface ListEvent {
  resourceName: string;
  /** Date.now() when it arrived */
  at: number;
  /** the devices sent; null: the stream ended (the plugin went away) */
  devices: Device__Output[] | null;
}

export class TestKubelet {
  readonly registrations: Registration[] = [];
  /** Every list and stream end of every plugin connection so far, oldest first. */
  readonly history: ListEvent[] = [];
  private server: Server | null = null;
  private readonly conns = new Map<string, PluginConnection>();
  private readonly events = new EventEmitter();

  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
  ) {}

  get socketPath(): string {
    return join(this.dir, 'kubelet.sock');
  }

  /** Starts kubelet on <dir>/kubelet.sock (a fresh temporary directory unless given). */
  static async start(dir?: string): Promise<TestKubelet> {
    const k = new TestKubelet(dir ?? (await mkdtemp(join(tmpdir(), 'vio4wd-kubelet-'))), dir === undefined);
    await k.listen();
    return k;
  }

  private async listen(): Promise<void> {
    const server = new Server();
    const handlers: RegistrationHandlers = {
      Register: (call, cb) => {
        const req = call.request;
        this.registrations.push({ request: req, at: performance.now() });
        // kubelet's own checks (pkg/kubelet/cm/devicemanager/plugin/v1beta1/server.go)
        if (req.version !== 'v1beta1') {
          cb({ code: status.INVALID_ARGUMENT, details: `Unsupported version "${req.version}"` });
          return;
        }
        if (!/^[^/]+\/[^/]+$/.test(req.resource_name)) {
          cb({ code: status.INVALID_ARGUMENT, details: `invalid resource name "${req.resource_name}"` });
          return;
        }
        cb(null, {});
        this.connect(req);
        this.events.emit('update');
      },
    };
    server.addService(v1beta1().Registration.service, handlers);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
  }

  private connect(req: RegisterRequest__Output): void {
    this.disconnect(req.resource_name);
    const client = new (v1beta1().DevicePlugin)(`unix://${join(this.dir, req.endpoint)}`, credentials.createInsecure());
    const stream = client.ListAndWatch({});
    const conn: PluginConnection = { endpoint: req.endpoint, client, stream, lists: [], ended: false };
    this.conns.set(req.resource_name, conn);
    stream.on('data', (res: ListAndWatchResponse__Output) => {
      conn.lists.push(res.devices);
      this.history.push({ resourceName: req.resource_name, at: Date.now(), devices: res.devices });
      this.events.emit('update');
    });
    const end = (): void => {
      if (!conn.ended) this.history.push({ resourceName: req.resource_name, at: Date.now(), devices: null });
      conn.ended = true;
      this.events.emit('update');
    };
    stream.on('error', end);
    stream.on('end', end);
  }

  private disconnect(resourceName: string): void {
    const c = this.conns.get(resourceName);
    if (!c) return;
    c.ended = true; // replaced by a new registration: not the plugin going away
    c.stream.cancel();
    c.client.close();
    this.conns.delete(resourceName);
  }

  registrationsFor(resourceName: string): Registration[] {
    return this.registrations.filter((r) => r.request.resource_name === resourceName);
  }

  /** The latest device list the plugin of this resource sent (undefined before the first). */
  devices(resourceName: string): Device__Output[] | undefined {
    return this.conns.get(resourceName)?.lists.at(-1);
  }

  /** Every device list received from this resource's current connection. */
  lists(resourceName: string): Device__Output[][] {
    return this.conns.get(resourceName)?.lists ?? [];
  }

  /** True when the plugin's ListAndWatch stream has ended (server gone). */
  streamEnded(resourceName: string): boolean {
    return this.conns.get(resourceName)?.ended ?? true;
  }

  /** Resolves with fn's value once it is truthy (checked on every update and every 20 ms). */
  async until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
    const first = fn();
    if (first) return first;
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        let v: T | undefined | null | false;
        try {
          v = fn();
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setInterval(check, 20);
      const deadline = setTimeout(() => {
        done();
        reject(new Error(`test kubelet: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = (): void => {
        clearInterval(timer);
        clearTimeout(deadline);
        this.events.off('update', check);
      };
      this.events.on('update', check);
    });
  }

  private client(resourceName: string): DevicePluginClient {
    const c = this.conns.get(resourceName);
    if (!c) throw new Error(`test kubelet: no plugin registered for ${resourceName}`);
    return c.client;
  }

  private unary<T>(call: (cb: (err: Error | null, res?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => call((err, res) => (err ? reject(err) : resolve(res as T))));
  }

  options(resourceName: string): Promise<DevicePluginOptions__Output> {
    const c = this.client(resourceName);
    return this.unary((cb) => c.GetDevicePluginOptions({}, { deadline: Date.now() + CALL_TIMEOUT_MS }, cb));
  }

  /** Allocate with one devices_ids list per container. */
  allocate(resourceName: string, containers: string[][]): Promise<AllocateResponse__Output> {
    const c = this.client(resourceName);
    const req = { container_requests: containers.map((ids) => ({ devices_ids: ids })) };
    return this.unary((cb) => c.Allocate(req, { deadline: Date.now() + CALL_TIMEOUT_MS }, cb));
  }

  preferred(resourceName: string, containers: ContainerPreferredAllocationRequest[]): Promise<PreferredAllocationResponse__Output> {
    const c = this.client(resourceName);
    return this.unary((cb) => c.GetPreferredAllocation({ container_requests: containers }, { deadline: Date.now() + CALL_TIMEOUT_MS }, cb));
  }

  preStart(resourceName: string, ids: string[]): Promise<unknown> {
    const c = this.client(resourceName);
    return this.unary((cb) => c.PreStartContainer({ devices_ids: ids }, { deadline: Date.now() + CALL_TIMEOUT_MS }, cb));
  }

  /** Names of the unix sockets in the directory now. */
  async sockets(): Promise<string[]> {
    const out: string[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const st = await lstat(join(this.dir, name)).catch(() => null);
      if (st?.isSocket()) out.push(name);
    }
    return out;
  }

  /**
   * What kubelet does when it restarts: its server and plugin connections go away, it deletes
   * the directory's sockets and serves a new kubelet.sock. Returns performance.now() at the
   * moment the new kubelet.sock is listening.
   */
  async restart(): Promise<number> {
    for (const rn of [...this.conns.keys()]) this.disconnect(rn);
    this.server?.forceShutdown();
    this.server = null;
    for (const name of await this.sockets()) await rm(join(this.dir, name), { force: true });
    await this.listen();
    return performance.now();
  }

  /** Stops the server and plugin connections; removes the directory if this kubelet made it. */
  async stop(): Promise<void> {
    for (const rn of [...this.conns.keys()]) this.disconnect(rn);
    this.server?.forceShutdown();
    this.server = null;
    this.events.removeAllListeners();
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}
