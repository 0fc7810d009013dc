// `vio4wd agent`: the node agent daemon, standalone (config file) or in a cluster (DaemonSet).
import { Command } from 'commander';
import { loadConfigFile, resolveConfig, type ResolvedConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { assertConfig } from '../../agent/config/validate.js';
import { createLogger } from '../../util/log.js';
import { errorMessage, ValidationError } from '../../util/errors.js';
import { parsePciAddress } from '../../util/identifiers.js';

export interface AgentCliOptions {
  config?: string;
  logLevel?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  nodeName?: string;
  socketDir?: string;
  devicePluginDir?: string;
  devinfoDir?: string;
  metricsAddress?: string;
  control?: boolean;
  check?: boolean;
  vfStandIn?: string[];
}

/** Reads the config file (YAML or a virtio-forwarder settings file) and applies the flags. */
export async function agentConfig(opts: AgentCliOptions, warn: (msg: string) => void): Promise<ResolvedConfig> {
  let config: AgentConfig = {};
  if (opts.config) {
    const loaded = await loadConfigFile(opts.config);
    for (const w of loaded.warnings) warn(w);
    config = loaded.config;
  }
  const merged = structuredClone(config) as AgentConfig & Record<string, Record<string, unknown>>;
  if (opts.kubernetes || opts.kubeconfig) {
    merged.kubernetes = { ...merged.kubernetes, enabled: true, ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}) };
  }
  if (opts.socketDir) merged.kubernetes = { ...merged.kubernetes, socketDir: opts.socketDir };
  if (opts.devicePluginDir) merged.devicePlugin = { ...merged.devicePlugin, pluginDir: opts.devicePluginDir };
  if (opts.devinfoDir) merged.devicePlugin = { ...merged.devicePlugin, devinfoDir: opts.devinfoDir };
  if (opts.nodeName) merged.nodeName = opts.nodeName;
  if (opts.metricsAddress) merged.metrics = { ...merged.metrics, address: opts.metricsAddress };
  if (opts.control === false) merged.control = { ...merged.control, enabled: false };
  if (opts.logLevel) merged.log = { level: opts.logLevel as 'info' };
  if (opts.vfStandIn?.length) merged.sriov = { ...merged.sriov, standIns: { ...merged.sriov?.standIns, ...standIns(opts.vfStandIn) } };
  assertConfig(merged, opts.config ?? 'flags');
  return resolveConfig(merged);
}

/** "PCI=devargs" items of --vf-stand-in. */
export function standIns(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0 || eq === item.length - 1) throw new ValidationError('--vf-stand-in', `"${item}" is not <PCI>=<devargs>, e.g. 0000:00:10.1=net_tap0,iface=vf0`);
    out[parsePciAddress(item.slice(0, eq), '--vf-stand-in')] = item.slice(eq + 1);
  }
  return out;
}

export function register(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: DPDK relays between VFs and vhost-user sockets, ZeroMQ control, metrics; with --kubernetes also VirtioRelays and the device plugin')
    .option('-c, --config <file>', 'YAML config (schemas/agent-config.schema.json) or a virtio-forwarder settings file (/etc/default/virtioforwarder)')
    .option('--check', 'validate the configuration, print it resolved, and exit')
    .option('--kubernetes', 'reconcile VirtioRelays for this node and serve the kubelet device plugin')
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster service account, else ~/.kube/config)')
    .option('--node-name <name>', 'this node (default: $NODE_NAME, else the host name)')
    .option('--socket-dir <dir>', 'host directory for relay sockets in Kubernetes mode (default /var/run/vio4wd/sockets)')
    .option('--device-plugin-dir <dir>', 'kubelet device-plugin directory (default /var/lib/kubelet/device-plugins)')
    .option('--devinfo-dir <dir>', 'device-info directory (default /var/run/k8s.cni.cncf.io/devinfo/dp)')
    .option('--metrics-address <host:port>', 'address of /metrics, /healthz and /readyz (default 127.0.0.1:9464)')
    .option('--no-control', 'do not serve the ZeroMQ control endpoints')
    .option('--log-level <level>', 'trace, debug, info, warn, error')
    .option('--vf-stand-in <pci=devargs...>', 'let a PCI address stand for a DPDK virtual device (machines without VFs: tests, demos), e.g. 0000:00:10.1=net_tap0,iface=vf0')
    .addHelpText(
      'after',
      `
Examples:
  vio4wd agent --config examples/standalone.yaml
  vio4wd agent --config /etc/default/virtioforwarder
  vio4wd agent --kubernetes --node-name "$NODE_NAME"`,
    )
    .action(async (opts: AgentCliOptions) => {
      const warnings: string[] = [];
      const cfg = await agentConfig(opts, (w) => warnings.push(w));
      await runAgent(cfg, warnings, opts.check ?? false);
    });
}

/** Runs the agent until SIGTERM/SIGINT (or, with check, prints the resolved config). */
export async function runAgent(cfg: ResolvedConfig, warnings: string[], check: boolean): Promise<void> {
  const log = createLogger({ level: cfg.logLevel });
  for (const w of warnings) log.warn({ component: 'config' }, w);
  if (check) {
    process.stdout.write(JSON.stringify(cfg, null, 2) + '\n');
    return;
  }
  // imported here: the engine, Kubernetes and gRPC modules take a second to load
  const { Agent } = await import('../../agent/agent.js');
  // signal handlers first: a SIGTERM while the agent starts (the engine is up, the apiserver
  // not yet reachable) must still remove relays and release hugepages
  let onSignal!: (signal: string) => void;
  const signalled = new Promise<string>((resolve) => (onSignal = resolve));
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => onSignal(sig));
  const { agent, started } = Agent.launch(cfg, { logger: log });
  started.catch(() => undefined);
  // a failed start (no signal) throws here, as before
  const first = await Promise.race([started.then(() => 'started'), signalled]);
  const signal = first === 'started' ? await signalled : first;
  log.info({ signal, duringStartup: first !== 'started' }, 'signal received; shutting down');
  await agent.stop().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'shutdown failed'));
  // an interrupted start-up may leave a pending watch or retry timer: it must not keep the
  // process alive after the clean-up
  if (first !== 'started') process.exit(0);
}
