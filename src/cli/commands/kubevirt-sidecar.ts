// `vio4wd kubevirt-sidecar`: the KubeVirt network binding plugin (hook sidecar) of src/kubevirt.
import { examples } from '../help.js';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../../util/log.js';
import { MAX_QUEUES } from '../../util/limits.js';
import {
  BindingSidecar,
  DEFAULT_BINDING_NAME,
  DEFAULT_DRA_METADATA_DIR,
  DEFAULT_HOOKS_DIR,
  DEFAULT_NETWORK_INFO_PATH,
  DEFAULT_SOCKET_NAME,
  parseInterfaceSpec,
  parseInterfacesEnv,
  type ExplicitInterface,
} from '../../kubevirt/index.js';

export interface SidecarCliOptions {
  socketDir: string;
  socketName: string;
  bindingName: string;
  networkInfo: string;
  networkInfoTimeout: number;
  draMetadataDir: string;
  interface: [string, ExplicitInterface][];
  maxQueues: number;
  logLevel?: string;
}

function seconds(v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) > 55) {
    throw new InvalidArgumentError('give seconds from 0 to 55 (virt-launcher gives OnDefineDomain one minute)');
  }
  return Number(v);
}

function queues(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAX_QUEUES) throw new InvalidArgumentError(`give a whole number from 1 to ${MAX_QUEUES}`);
  return Number(v);
}

function socketName(v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.sock$/.test(v)) throw new InvalidArgumentError('give a file name ending in .sock, unique among the pod\'s hook sidecars');
  return v;
}

function collectInterface(v: string, prev: [string, ExplicitInterface][]): [string, ExplicitInterface][] {
  try {
    return [...prev, parseInterfaceSpec(v)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Starts the sidecar; resolves once it serves. */
export async function startSidecar(opts: SidecarCliOptions, onShutdown: () => void): Promise<BindingSidecar> {
  const explicit = parseInterfacesEnv(process.env.VIO4WD_INTERFACES);
  for (const [name, e] of opts.interface) explicit.set(name, { ...explicit.get(name), ...e });
  const logger = createLogger({ level: opts.logLevel });
  const sidecar = new BindingSidecar({
    socketPath: join(opts.socketDir, opts.socketName),
    bindingName: opts.bindingName,
    maxQueues: opts.maxQueues,
    logger,
    resolve: {
      networkInfoPath: opts.networkInfo,
      networkInfoTimeoutMs: opts.networkInfoTimeout * 1000,
      draMetadataDir: opts.draMetadataDir,
      explicit,
    },
    onShutdown,
  });
  await sidecar.start();
  return sidecar;
}

export function register(program: Command): void {
  program
    .command('kubevirt-sidecar')
    .description('serve the KubeVirt network binding plugin: rewrite the VM domain so each vio4wd interface is a vhost-user NIC on its relay socket')
    .option('--socket-dir <dir>', 'directory virt-launcher scans for hook sockets', DEFAULT_HOOKS_DIR)
    .option('--socket-name <file>', 'socket file name, unique among the pod\'s hook sidecars', socketName, DEFAULT_SOCKET_NAME)
    .option('--binding-name <name>', 'network binding name in the KubeVirt CR and the VM (env VIO4WD_BINDING_NAME)', process.env.VIO4WD_BINDING_NAME || DEFAULT_BINDING_NAME)
    .option('--network-info <file>', 'KubeVirt\'s network-info downward-API file', DEFAULT_NETWORK_INFO_PATH)
    .option('--network-info-timeout <seconds>', 'how long to wait for network-info to name an interface', seconds, 30)
    .option('--dra-metadata-dir <dir>', 'KEP-5304 DRA device metadata directory', DEFAULT_DRA_METADATA_DIR)
    .option(
      '--interface <spec>',
      'fallback settings for an interface, NAME=SOCKET or NAME:path=...,mode=server|client,mac=...,mtu=...,queues=... (repeatable; also VIO4WD_INTERFACES, ;-separated)',
      collectInterface,
      [],
    )
    .option('--max-queues <n>', 'queue pairs per NIC at most (the relay\'s limit)', queues, MAX_QUEUES)
    .option('--log-level <level>', 'pino log level (env VIO4WD_LOG_LEVEL)')
    .addHelpText('after', examples('vio4wd kubevirt-sidecar   # as KubeVirt starts it: no arguments', 'vio4wd kubevirt-sidecar --interface net1=/var/run/vio4wd/vhostuser-0/vhost-user.sock --log-level debug'))
    .action(async (opts: SidecarCliOptions) => {
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const sidecar = await startSidecar(opts, done);
      const stop = (): void => {
        void sidecar.stop().then(done);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await finished;
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    });
}
