// One device-plugin gRPC server: serves a pool's DevicePlugin service on its own unix socket
// and registers it with kubelet. The manager decides when it starts, restarts and stops.
import { lstat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Server,
  ServerCredentials,
  credentials,
  status as grpcStatus,
  type ServerErrorResponse,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import type { RelayStatus, RelayView } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { containerResponse, podSocketDir, resolveDevices } from './allocate.js';
import { API_VERSION, HEALTHY, UNHEALTHY } from './constants.js';
import type { DeviceInfoFiles } from './deviceinfo.js';
import { DevicePluginError } from './errors.js';
import { checkHolders, type ListHolders } from './holders.js';
import { resourceNameOf, type Pool } from './pool.js';
import { preferredAllocation } from './preferred.js';
import {
  v1beta1,
  type AllocateRequest__Output,
  type AllocateResponse,
  type Device,
  type DevicePluginHandlers,
  type DevicePluginOptions,
  type Empty__Output,
  type ListAndWatchResponse,
  type PreferredAllocationRequest__Output,
  type PreferredAllocationResponse,
  type PreStartContainerRequest__Output,
} from './proto.js';

export const PLUGIN_OPTIONS: Required<DevicePluginOptions> = {
  pre_start_required: false,
  get_preferred_allocation_available: true,
};

/** The options of a plugin that checks, before a container starts, which pod holds its relays. */
export const CHECKING_OPTIONS: Required<DevicePluginOptions> = { ...PLUGIN_OPTIONS, pre_start_required: true };

/** kubelet's answer to Register must come within this time. */
const REGISTER_TIMEOUT_MS = 3000;

/** The device as ListAndWatch advertises it: ID = relay name, NUMA node as topology when known. */
export function toDevice(status: RelayStatus): Device {
  return {
    ID: status.name,
    health: status.healthy ? HEALTHY : UNHEALTHY,
    topology: status.numaNode >= 0 ? { nodes: [{ ID: status.numaNode }] } : null,
  };
}

/**
 * The identity of a file on disk, or null when it is missing: a recreated file gets a new one
 * (the inode change time tells a new file apart even when the inode number is reused).
 */
export async function fileIdentity(path: string, withCtime = true): Promise<string | null> {
  try {
    const st = await lstat(path, { bigint: true });
    return withCtime ? `${st.dev}:${st.ino}:${st.ctimeNs}` : `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

export class PoolPlugin {
  readonly socketPath: string;
  /** kubelet.sock identity this plugin last registered with; null until registered. */
  registeredWith: string | null = null;
  private server: Server | null = null;
  private socketId: string | null = null;
  private readonly streams = new Set<ServerWritableStream<Empty__Output, ListAndWatchResponse>>();
  private lastSent = '';
  private readonly log: Logger;

  constructor(
    readonly pool: Pool,
    private readonly view: RelayView,
    private readonly pluginDir: string,
    private readonly deviceInfo: DeviceInfoFiles,
    logger: Logger,
    /** pod-resources List: with it, a relay is refused to a pod of another namespace */
    private readonly holders?: ListHolders,
  ) {
    this.socketPath = join(pluginDir, pool.socketName);
    this.log = logger.child({ resource: pool.resourceName });
  }

  /** The pool's relays, read from the view at each call. */
  relays(): RelayStatus[] {
    return this.view.list().filter((s) => resourceNameOf(s) === this.pool.resourceName);
  }

  devices(): Device[] {
    return this.relays()
      .map(toDevice)
      .sort((a, b) => (a.ID ?? '').localeCompare(b.ID ?? ''));
  }

  get serving(): boolean {
    return this.server !== null;
  }

  /** True while the server runs and its socket file is the one it created. */
  async intact(): Promise<boolean> {
    return this.server !== null && this.socketId !== null && (await fileIdentity(this.socketPath)) === this.socketId;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await mkdir(this.pluginDir, { recursive: true });
    // a socket left behind (by a crash, or kubelet's cleanup racing us) makes bind fail
    await rm(this.socketPath, { force: true });
    const server = new Server();
    server.addService(v1beta1().DevicePlugin.service, this.handlers());
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${this.socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    }).catch((err: unknown) => {
      server.forceShutdown();
      throw err;
    });
    this.server = server;
    this.socketId = await fileIdentity(this.socketPath);
    this.registeredWith = null;
    this.lastSent = '';
    this.log.debug({ socket: this.socketPath }, 'device plugin server listening');
  }

  /** Ends ListAndWatch streams, closes the server and removes its socket (if still ours). */
  async stop(): Promise<void> {
    for (const call of this.streams) call.end();
    this.streams.clear();
    const server = this.server;
    this.server = null;
    this.registeredWith = null;
    if (!server) return;
    server.forceShutdown();
    if (this.socketId !== null && (await fileIdentity(this.socketPath)) === this.socketId) {
      await rm(this.socketPath, { force: true });
    }
    this.socketId = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Register with kubelet; resolves once kubelet accepted it. */
  async register(kubeletSocket: string, kubeletId: string): Promise<void> {
    const Registration = v1beta1().Registration;
    const client = new Registration(`unix://${kubeletSocket}`, credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) => {
        client.Register(
          { version: API_VERSION, endpoint: this.pool.socketName, resource_name: this.pool.resourceName, options: this.options() },
          { deadline: Date.now() + REGISTER_TIMEOUT_MS },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    } finally {
      client.close();
    }
    this.registeredWith = kubeletId;
  }

  /** Send the device list to every ListAndWatch stream if it changed since the last send. */
  notify(force = false): void {
    const devices = this.devices();
    const key = JSON.stringify(devices);
    if (!force && key === this.lastSent) return;
    this.lastSent = key;
    for (const call of this.streams) call.write({ devices });
    this.log.debug({ devices: devices.map((d) => `${d.ID}:${d.health}`), streams: this.streams.size }, 'device list sent');
  }

  /** Tell kubelet the pool is empty before the server goes away (capacity drops at once). */
  sendEmpty(): void {
    if (this.lastSent === '[]') return;
    for (const call of this.streams) call.write({ devices: [] });
    this.lastSent = '[]';
  }

  private handlers(): DevicePluginHandlers {
    return {
      GetDevicePluginOptions: (_call, cb) => cb(null, this.options()),
      ListAndWatch: (call) => this.listAndWatch(call),
      GetPreferredAllocation: (call, cb) => this.unary(cb, 'GetPreferredAllocation', () => this.preferred(call.request)),
      Allocate: (call, cb) => {
        void this.unaryAsync(cb, 'Allocate', () => this.allocate(call.request));
      },
      PreStartContainer: (call, cb) => {
        void this.unaryAsync(cb, 'PreStartContainer', () => this.preStart(call.request));
      },
    };
  }

  private options(): Required<DevicePluginOptions> {
    return this.holders ? CHECKING_OPTIONS : PLUGIN_OPTIONS;
  }

  /** Before the container starts: every VirtioRelay's relay goes only to a pod of its namespace. */
  private async preStart(req: PreStartContainerRequest__Output): Promise<object> {
    if (!this.holders) return {};
    await checkHolders(this.pool, req.devices_ids, (id) => this.view.get(id), this.holders);
    return {};
  }

  private listAndWatch(call: ServerWritableStream<Empty__Output, ListAndWatchResponse>): void {
    this.streams.add(call);
    const drop = (): void => {
      this.streams.delete(call);
    };
    call.on('cancelled', drop);
    call.on('close', drop);
    call.on('error', drop);
    call.write({ devices: this.devices() });
    this.log.info({ streams: this.streams.size }, 'kubelet opened ListAndWatch');
  }

  private preferred(req: PreferredAllocationRequest__Output): PreferredAllocationResponse {
    if (req.container_requests.length === 0) throw new DevicePluginError('EINVAL', 'container_requests is empty');
    return {
      container_responses: req.container_requests.map((r) => ({
        deviceIDs: preferredAllocation(
          { available: r.available_deviceIDs, mustInclude: r.must_include_deviceIDs, size: r.allocation_size },
          (id) => this.view.get(id)?.numaNode,
        ),
      })),
    };
  }

  private async allocate(req: AllocateRequest__Output): Promise<AllocateResponse> {
    if (req.container_requests.length === 0) {
      throw new DevicePluginError('EINVAL', `container_requests is empty: name at least one device of ${this.pool.resourceName}`);
    }
    // resolve everything first (synchronously, from the view) so a bad ID fails before any write
    const all = this.view.list();
    const resolved = req.container_requests.map((c, i) =>
      resolveDevices(this.pool, c.devices_ids, (id) => this.view.get(id), `container_requests[${i}].devices_ids`, all),
    );
    const writes = resolved.flatMap((devs) => devs.map((s, slot) => this.deviceInfo.write(s, podSocketDir(this.pool, slot))));
    await Promise.all(writes);
    const res = { container_responses: resolved.map((devs) => containerResponse(this.pool, devs)) };
    this.log.info({ containers: resolved.map((devs) => devs.map((d) => d.name)) }, 'allocated');
    return res;
  }

  private unary<T>(cb: sendUnaryData<T>, method: string, fn: () => T): void {
    try {
      cb(null, fn());
    } catch (err) {
      cb(this.grpcError(method, err));
    }
  }

  private async unaryAsync<T>(cb: sendUnaryData<T>, method: string, fn: () => Promise<T>): Promise<void> {
    try {
      cb(null, await fn());
    } catch (err) {
      cb(this.grpcError(method, err));
    }
  }

  private grpcError(method: string, err: unknown): Partial<ServerErrorResponse> {
    const code = err instanceof DevicePluginError ? err.grpcStatus : grpcStatus.INTERNAL;
    this.log.warn({ method, err: errorMessage(err) }, `${method} refused`);
    return { code, details: errorMessage(err) };
  }
}
