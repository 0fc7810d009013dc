// The kubelet plugin: a registration socket in kubelet's plugins_registry directory (kubelet's
// plugin watcher finds it, calls GetInfo, then NotifyRegistrationStatus) and the DRA service
// socket it names, serving NodePrepareResources/NodeUnprepareResources as both v1.DRAPlugin and
// v1beta1.DRAPlugin (kubelet 1.34 picks the first of the listed services it knows). A socket
// that disappears (kubelet cleaning up, a node reboot's tmpfs) is served again. The DRA socket
// also serves v1alpha1.DRAResourceHealth, the devices' health stream (health.ts).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Server, ServerCredentials, status as grpcStatus, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { fileIdentity } from '../deviceplugin/server.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { DRA_SOCKET, DRIVER_NAME, PLUGIN_TYPE, REGISTRATION_SOCKET, SUPPORTED_SERVICES } from './constants.js';
import type { DraDriver } from './driver.js';
import type { DeviceHealthReporter } from './health.js';
import {
  services,
  type NodePrepareResourcesRequest,
  type NodePrepareResourcesResponse,
  type NodeUnprepareResourcesRequest,
  type NodeUnprepareResourcesResponse,
  type NodeWatchResourcesResponse,
  type PluginInfo,
  type RegistrationStatus,
} from './proto.js';

export interface KubeletPluginOptions {
  driver: DraDriver;
  /** The devices' health stream; absent: kubelet's NodeWatchResources is answered Unimplemented. */
  health?: DeviceHealthReporter;
  registryDir: string;
  pluginDir: string;
  logger: Logger;
  /** How often the sockets are checked (default 1000 ms). */
  checkIntervalMs?: number;
}

/** What the plugin's sockets look like now (status, tests). */
export interface KubeletPluginState {
  registrationSocket: string;
  draSocket: string;
  serving: boolean;
  /** kubelet's last NotifyRegistrationStatus, null before the first one */
  registered: boolean | null;
  registrationError: string;
}

export class KubeletPlugin {
  readonly registrationSocket: string;
  readonly draSocket: string;
  private readonly log: Logger;
  private regServer: Server | null = null;
  private draServer: Server | null = null;
  private ids: { reg: string | null; dra: string | null } = { reg: null, dra: null };
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> = Promise.resolve();
  private registered: boolean | null = null;
  private registrationError = '';

  constructor(private readonly o: KubeletPluginOptions) {
    this.registrationSocket = join(o.registryDir, REGISTRATION_SOCKET);
    this.draSocket = join(o.pluginDir, DRA_SOCKET);
    this.log = o.logger.child({ component: 'dra-plugin' });
  }

  state(): KubeletPluginState {
    return {
      registrationSocket: this.registrationSocket,
      draSocket: this.draSocket,
      serving: this.regServer !== null && this.draServer !== null,
      registered: this.registered,
      registrationError: this.registrationError,
    };
  }

  async start(): Promise<void> {
    // the DRA socket first: kubelet dials it as soon as it sees the registration socket
    await this.serveDra();
    await this.serveRegistration();
    this.timer = setInterval(() => {
      this.checking = this.checking.then(() => this.check()).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'DRA plugin socket check failed'));
    }, this.o.checkIntervalMs ?? 1000);
    this.timer.unref();
    this.log.info({ registration: this.registrationSocket, endpoint: this.draSocket }, 'DRA kubelet plugin serving');
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.checking;
    // registration socket first: kubelet stops sending new calls before the service goes
    await this.close('reg');
    await this.close('dra');
  }

  private async check(): Promise<void> {
    if (this.draServer && (await fileIdentity(this.draSocket)) !== this.ids.dra) {
      this.log.warn({ socket: this.draSocket }, 'DRA service socket removed: serving it again');
      await this.close('dra');
      await this.serveDra();
    }
    if (this.regServer && (await fileIdentity(this.registrationSocket)) !== this.ids.reg) {
      this.log.warn({ socket: this.registrationSocket }, 'registration socket removed: serving it again (kubelet registers the plugin anew)');
      await this.close('reg');
      await this.serveRegistration();
    }
  }

  private async bind(server: Server, path: string): Promise<string | null> {
    await mkdir(join(path, '..'), { recursive: true, mode: 0o750 });
    await rm(path, { force: true });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    return fileIdentity(path);
  }

  private async serveDra(): Promise<void> {
    const s = services();
    const server = new Server();
    const impl = this.draHandlers();
    server.addService(s.v1.service, impl);
    server.addService(s.v1beta1.service, impl);
    const health = this.o.health;
    if (health) {
      server.addService(s.health.service, {
        NodeWatchResources: (call: ServerWritableStream<object, NodeWatchResourcesResponse>) => {
          this.log.info('kubelet watches the devices\' health');
          const stop = health.watch((r) => call.write(r));
          call.on('cancelled', stop);
          call.on('error', stop);
        },
      });
    }
    this.ids.dra = await this.bind(server, this.draSocket).catch((err: unknown) => {
      server.forceShutdown();
      throw err;
    });
    this.draServer = server;
  }

  private async serveRegistration(): Promise<void> {
    const s = services();
    const server = new Server();
    server.addService(s.registration.service, {
      GetInfo: (_call: ServerUnaryCall<object, PluginInfo>, cb: sendUnaryData<PluginInfo>) => {
        this.log.debug('kubelet asked for the plugin info');
        cb(null, { type: PLUGIN_TYPE, name: DRIVER_NAME, endpoint: this.draSocket, supported_versions: [...SUPPORTED_SERVICES] });
      },
      NotifyRegistrationStatus: (call: ServerUnaryCall<RegistrationStatus, object>, cb: sendUnaryData<object>) => {
        this.registered = call.request.plugin_registered;
        this.registrationError = call.request.error;
        if (call.request.plugin_registered) this.log.info({ driver: DRIVER_NAME }, 'registered with kubelet');
        else this.log.error({ driver: DRIVER_NAME, err: call.request.error }, 'kubelet refused the DRA plugin registration');
        cb(null, {});
      },
    });
    this.ids.reg = await this.bind(server, this.registrationSocket).catch((err: unknown) => {
      server.forceShutdown();
      throw err;
    });
    this.regServer = server;
  }

  private async close(which: 'reg' | 'dra'): Promise<void> {
    const server = which === 'reg' ? this.regServer : this.draServer;
    const path = which === 'reg' ? this.registrationSocket : this.draSocket;
    if (which === 'reg') this.regServer = null;
    else this.draServer = null;
    if (!server) return;
    server.forceShutdown();
    if (this.ids[which] !== null && (await fileIdentity(path)) === this.ids[which]) await rm(path, { force: true });
    this.ids[which] = null;
  }

  private draHandlers(): UntypedServiceImplementation {
    const driver = this.o.driver;
    return {
      NodePrepareResources: (call: ServerUnaryCall<NodePrepareResourcesRequest, NodePrepareResourcesResponse>, cb: sendUnaryData<NodePrepareResourcesResponse>) => {
        driver.prepare(call.request.claims).then(
          (claims) => cb(null, { claims }),
          (err: unknown) => cb({ code: grpcStatus.INTERNAL, details: errorMessage(err) }),
        );
      },
      NodeUnprepareResources: (call: ServerUnaryCall<NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse>, cb: sendUnaryData<NodeUnprepareResourcesResponse>) => {
        driver.unprepare(call.request.claims).then(
          (claims) => cb(null, { claims }),
          (err: unknown) => cb({ code: grpcStatus.INTERNAL, details: errorMessage(err) }),
        );
      },
    };
  }
}
