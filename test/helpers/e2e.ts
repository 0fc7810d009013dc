// The whole vio4wd stack on one machine, every part real and started here: kube-apiserver+etcd
// with the CRDs, `vio4wd operator`, `vio4wd agent --kubernetes` (real DPDK engine) inside a test
// network namespace whose veths are the VFs' stand-ins, a test kubelet for the device plugin,
// `vio4wd kubevirt-sidecar`, and the pod side that kubelet + virt-launcher would be (Allocate,
// network-info, OnDefineDomain, QEMU). Used by test/e2e/*.test.ts and the soak (npm run soak).
//
// Wiring that a cluster would give for free and a test must build:
// - The agent runs inside the netns (its VF stand-ins, metrics and ZeroMQ live there), the
//   apiserver on the host's loopback. A two-hop proxy joins them: 127.0.0.1:<apiserver port>
//   inside the netns -> a unix socket (file sockets cross network namespaces) -> the apiserver.
//   TLS passes through untouched, so the agent uses the ordinary admin kubeconfig.
// - There is no pod and no container: see `PodView` for how Allocate's container paths map back
//   to host paths, and `vhostUserNics` for how the sidecar's domain XML becomes QEMU options.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { existsSync, readdirSync, readFileSync, statSync, lstatSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { startKube, type KubeEnv } from './kube.js';
import { CniDriver } from './cni.js';
import { TEST_VIRTUAL_DEVICES, testPoolPolicy } from './policy.js';
import { Netns, spawnTracked, testTempDir, type TrackedProcess } from './netns.js';
import { AgentProcess } from './agent.js';
import { TestKubelet } from './kubelet.js';
import { PodResourcesServer, listReply, type Holding } from './pod-resources.js';
import type { Guest, GuestNicOptions } from './guest.js';
import { GROUP, VERSION, httpStatus, kubeClients, type KubeClients, type VirtioRelay, type VirtioRelaySpec } from '../../src/kube/index.js';
import { HookClient } from '../../src/kubevirt/client.js';
import type { AllocateResponse__Output, Mount__Output } from '../../src/deviceplugin/proto.js';
import { sleep, until as waitUntil } from './wait.js';

export const RESOURCE = 'vio4wd.io/vhostuser';
export const NODE = 'e2e-node';
export const NAMESPACE = 'vms';
const METRICS = 'http://127.0.0.1:9464';

export { sleep };

/** wait.ts's until with the e2e's defaults (30 s, every 100 ms) and positional bounds. */
export function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  return waitUntil(what, fn, { timeoutMs, intervalMs });
}

/** Cleanups run in reverse order; each failure is logged and the rest still run. */
export class Cleanups {
  private fns: { what: string; fn: () => Promise<unknown> | unknown }[] = [];
  add(what: string, fn: () => Promise<unknown> | unknown): void {
    this.fns.push({ what, fn });
  }
  async run(): Promise<void> {
    for (const { what, fn } of this.fns.reverse()) {
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup (${what}) failed:`, e);
      }
    }
    this.fns = [];
  }
}

/** A child process whose output is kept (the last 256 KiB) for error messages. */
class LoggedProcess {
  private out = '';
  constructor(readonly proc: TrackedProcess) {
    const keep = (d: Buffer): void => {
      this.out += d.toString();
      if (this.out.length > 512 * 1024) this.out = this.out.slice(-256 * 1024);
    };
    proc.child.stdout?.on('data', keep);
    proc.child.stderr?.on('data', keep);
  }
  get output(): string {
    return this.out;
  }
  tail(n = 3000): string {
    return this.out.slice(-n);
  }
}

// ------------------------------------------------------------------ apiserver proxy into a netns
/**
 * Makes https://127.0.0.1:<port> inside `ns` reach the apiserver on the host's 127.0.0.1:<port>:
 * a listener in the namespace forwards each connection to a unix socket, which this process
 * forwards to the apiserver.
 */
export async function proxyApiserverInto(ns: Netns, port: number, unixPath: string, cleanups: Cleanups): Promise<void> {
  const open = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = createConnection(port, '127.0.0.1');
    open.add(c).add(up);
    const close = (): void => {
      c.destroy();
      up.destroy();
      open.delete(c);
      open.delete(up);
    };
    c.on('error', close).on('close', close);
    up.on('error', close).on('close', close);
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(unixPath, resolve));
  cleanups.add('apiserver proxy (host side)', () => {
    for (const s of open) s.destroy();
    return new Promise((r) => server.close(() => r(undefined)));
  });
  const script = `
    const net = require('node:net');
    const [port, path] = process.argv.slice(1);
    net.createServer((c) => {
      const up = net.connect(path);
      const close = () => { c.destroy(); up.destroy(); };
      c.on('error', close).on('close', close); up.on('error', close).on('close', close);
      c.pipe(up).pipe(c);
    }).listen(Number(port), '127.0.0.1', () => console.log('listening'));`;
  const p = ns.spawn(process.execPath, ['-e', script, String(port), unixPath]);
  cleanups.add('apiserver proxy (netns side)', () => p.stop());
  let out = '';
  p.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await until('the apiserver proxy listens inside the netns', () => {
    if (p.child.exitCode !== null) throw new Error(`proxy exited: ${out}`);
    return out.includes('listening');
  }, 15_000, 50);
}

// ------------------------------------------------------------------ the pod's view of Allocate
/**
 * What kubelet hands the virt-launcher pod for its devices, and the way back to the host.
 * kubelet bind-mounts each Mount's host_path at container_path; this test has no container, so
 * a path the pod would use (e.g. the socket path in device-info or in the domain XML) is turned
 * back into the host path by the same mount table: the longest container_path that prefixes it.
 */
export class PodView {
  constructor(
    readonly response: AllocateResponse__Output,
    /** device ID -> the device-info file content the agent wrote at Allocate */
    readonly deviceInfo: Map<string, DeviceInfo>,
    /** the pod kubelet allocated the devices to (what its pod-resources API reports) */
    readonly pod: { namespace: string; name: string } = { namespace: 'vms', name: 'virt-launcher' },
  ) {}

  /** The CNI_ARGS the container runtime passes for this pod's sandbox. */
  get cniArgs(): string {
    return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${this.pod.namespace};K8S_POD_NAME=${this.pod.name}`;
  }

  get mounts(): Mount__Output[] {
    return this.response.container_responses.flatMap((c) => c.mounts);
  }

  get envs(): Record<string, string> {
    return Object.assign({}, ...this.response.container_responses.map((c) => c.envs)) as Record<string, string>;
  }

  /** Host path of a path inside the pod; throws when no mount covers it. */
  hostPath(containerPath: string): string {
    const m = this.mounts
      .filter((x) => containerPath === x.container_path || containerPath.startsWith(`${x.container_path}/`))
      .sort((a, b) => b.container_path.length - a.container_path.length)[0];
    if (!m) throw new Error(`no Allocate mount covers ${containerPath} (mounts: ${this.mounts.map((x) => x.container_path).join(', ')})`);
    return posix.join(m.host_path, posix.relative(m.container_path, containerPath));
  }
}

export interface DeviceInfo {
  type: string;
  version: string;
  'vhost-user': { mode: 'client' | 'server'; path: string };
}

/** One <interface type='vhostuser'> of a libvirt domain, as QEMU options for test/helpers/guest.ts. */
export interface VhostUserNic extends GuestNicOptions {
  /** VMI interface name (from the alias ua-<name>) */
  name: string;
  /** the socket path as written in the domain (the pod's view) */
  podSocketPath: string;
  queues: number;
  mode: 'client' | 'server';
  mac: string;
}

/**
 * Turns the vhost-user interfaces of a domain XML into what QEMU needs, as libvirt would:
 * - <source type='unix' path=P mode=M>: QEMU's chardev on P (mapped to the host by `toHost`);
 *   mode='server' -> QEMU listens (chardev server=on), mode='client' -> QEMU dials it
 *   (chardev reconnect; libvirt takes <reconnect timeout>, the guest helper always uses 1 s);
 * - <driver queues=N>: -netdev vhost-user queues=N and mq=on on the device;
 * - <mac address>: the virtio-net device's MAC.
 * What the helper fixes by itself: shared guest memory (the domain's <memoryBacking><access
 * mode='shared'/>; the helper always uses a shared memfd) and the virtio model; rx/tx queue
 * sizes (1024 in the domain) stay QEMU's default (256). Other interfaces (KubeVirt's pod
 * network, placeholders) have no backend here and are left out.
 */
export function vhostUserNics(domainXml: string, toHost: (podPath: string) => string): VhostUserNic[] {
  const doc = new DOMParser().parseFromString(domainXml, 'text/xml');
  const devices = Array.from(doc.documentElement!.childNodes).find((n): n is Element => n.nodeType === 1 && (n as Element).localName === 'devices');
  if (!devices) throw new Error('domain has no <devices>');
  const kids = (e: Element, name: string): Element[] =>
    Array.from(e.childNodes).filter((n): n is Element => n.nodeType === 1 && (n as Element).localName === name);
  const out: VhostUserNic[] = [];
  for (const iface of kids(devices, 'interface')) {
    if (iface.getAttribute('type') !== 'vhostuser') continue;
    const source = kids(iface, 'source')[0];
    const alias = kids(iface, 'alias')[0]?.getAttribute('name') ?? '';
    const podPath = source?.getAttribute('path') ?? '';
    const mode = source?.getAttribute('mode');
    const mac = kids(iface, 'mac')[0]?.getAttribute('address');
    const queues = Number(kids(iface, 'driver')[0]?.getAttribute('queues') ?? '1');
    if (source?.getAttribute('type') !== 'unix' || !podPath) throw new Error(`interface ${alias}: <source type='unix' path=...> missing`);
    if (mode !== 'client' && mode !== 'server') throw new Error(`interface ${alias}: source mode "${mode}" is not client or server`);
    if (!mac) throw new Error(`interface ${alias}: no <mac address>`);
    out.push({ name: alias.replace(/^ua-/, ''), podSocketPath: podPath, socketPath: toHost(podPath), mode, queues, mac });
  }
  return out;
}

// ------------------------------------------------------------------ tagged pings in the guest
export interface Reply {
  seq: number;
  /** host time (Date.now()) the reply line arrived on the console */
  at: number;
}

/**
 * A background ping in the guest whose output lines carry a tag, so several can run at once
 * (the guest helper's startPing allows one). Replies are read from the console with the host
 * time they arrived.
 */
export class GuestPing {
  private from = 0;
  constructor(
    readonly guest: Guest,
    readonly tag: string,
  ) {
    if (!/^[A-Z0-9-]+$/.test(tag)) throw new Error(`ping tag "${tag}": use A-Z, 0-9, -`);
  }

  async start(peer: string, intervalS: number): Promise<void> {
    const pid = `/tmp/${this.tag}.pid`;
    // a ping of this tag left running by a failed test would mix its replies into ours
    await this.guest.exec(`[ -f ${pid} ] && kill $(cat ${pid}) 2>/dev/null; rm -f ${pid}`);
    await sleep(100);
    this.from = this.guest.lines.length;
    const cmd =
      `sh -c 'echo $$ > ${pid}; exec ping -i ${intervalS} -W 2 ${peer}' 2>&1 | ` +
      `while IFS= read -r l; do echo "${this.tag} $l"; done >/dev/console &`;
    const r = await this.guest.exec(cmd);
    if (r.rc !== 0) throw this.guest.failure(`could not start ping ${this.tag}`);
  }

  /** Replies so far, in arrival order. */
  replies(): Reply[] {
    const out: Reply[] = [];
    const re = new RegExp(`^${this.tag} \\d+ bytes from .*seq=(\\d+)`);
    for (let i = this.from; i < this.guest.lines.length; i++) {
      const m = re.exec(this.guest.lines[i]!);
      if (m) out.push({ seq: Number(m[1]), at: this.guest.startedAt + this.guest.lineTimes[i]! });
    }
    return out;
  }

  /** Waits for `n` more replies than there are now. */
  async more(n: number, timeoutMs = 30_000): Promise<Reply> {
    const have = this.replies().length;
    return until(`${n} more replies on ping ${this.tag}`, () => this.replies()[have + n - 1], timeoutMs, 20);
  }

  /** SIGINT to ping; resolves with its own count of sent and received. */
  async stop(): Promise<{ sent: number; received: number; lost: number }> {
    const lineNow = this.guest.lines.length;
    await this.guest.exec(`kill -INT $(cat /tmp/${this.tag}.pid)`);
    const { match } = await this.guest.waitForLine(new RegExp(`^${this.tag} (\\d+) packets transmitted, (\\d+) packets received`), 30_000, lineNow);
    const sent = Number(match[1]);
    const received = Number(match[2]);
    return { sent, received, lost: sent - received };
  }
}

/** The longest time between consecutive replies arriving in [from, to], and around which reply. */
export function longestGap(replies: Reply[], from: number, to = Infinity): { gapMs: number; before?: Reply; after?: Reply } {
  let best = { gapMs: 0 } as { gapMs: number; before?: Reply; after?: Reply };
  const inRange = replies.filter((r) => r.at >= from && r.at <= to);
  for (let i = 1; i < inRange.length; i++) {
    const g = inRange[i]!.at - inRange[i - 1]!.at;
    if (g > best.gapMs) best = { gapMs: g, before: inRange[i - 1], after: inRange[i] };
  }
  return best;
}

// ------------------------------------------------------------------ the environment
export interface E2eOptions {
  /** agent log level (default info) */
  logLevel?: string;
  /** the agent's DRA driver on (its kubelet plugin in dirs.dra), with these VF stand-ins
   *  (PCI address -> devargs) for free VFs */
  dra?: { standIns: Record<string, string> };
}

export interface E2eDirs {
  root: string;
  /** agent --socket-dir: one directory per relay below it */
  sockets: string;
  /** kubelet's device-plugin directory */
  plugins: string;
  /** device-info files (what Multus would read) */
  devinfo: string;
  /** /var/run/kubevirt-hooks of the virt-launcher pod */
  hooks: string;
  /** the downward-API network-info file the sidecar reads */
  networkInfo: string;
  /** ZeroMQ ipc endpoints of the agent */
  ipc: string;
  /** the agent's attachment API for vio4wd-cni (root-only socket) */
  cniSocket: string;
  /** the agent's attachments checkpoint */
  cniState: string;
  /** kubelet's pod-resources API (which pod holds which device) */
  podResources: string;
  /** the DRA driver's directories; podView: the KEP-5304 metadata as the sidecar's container sees it */
  dra: { registry: string; plugin: string; cdi: string; metadata: string; state: string; podView: string };
}

export class E2eEnv {
  readonly cleanups = new Cleanups();
  kube!: KubeEnv;
  api!: KubeClients;
  ns!: Netns;
  dirs!: E2eDirs;
  kubelet!: TestKubelet;
  podResources!: PodResourcesServer;
  /** what kubelet allocated to which pod (allocate()) */
  private readonly holdings: Holding[] = [];
  agent!: AgentProcess;
  operator!: LoggedProcess;
  sidecar!: LoggedProcess;
  /** Multus's part: vio4wd-cni run by libcni's cnitool against the agent */
  cni!: CniDriver;
  /** EAL --file-prefix of the agent: its hugepage files would be named after it */
  readonly filePrefix = `vio4wd-e2e-${process.pid}`;
  private agentConfigPath = '';
  private agentArgs: string[] = [];
  /** agents started so far (earlier ones were killed), for log tails */
  readonly agents: AgentProcess[] = [];

  private constructor(readonly opts: E2eOptions) {}

  /** Starts everything but the guest. On failure, stops what had started. */
  static async start(opts: E2eOptions = {}): Promise<E2eEnv> {
    const env = new E2eEnv(opts);
    try {
      await env.setUp();
    } catch (e) {
      await env.stop();
      throw e;
    }
    return env;
  }

  private async setUp(): Promise<void> {
    const c = this.cleanups;
    const tmp = testTempDir('e2e');
    c.add('temp dir', () => tmp.remove());
    const root = tmp.path;
    this.dirs = {
      root,
      sockets: join(root, 'sockets'),
      plugins: join(root, 'device-plugins'),
      devinfo: join(root, 'devinfo'),
      hooks: join(root, 'kubevirt-hooks'),
      networkInfo: join(root, 'podinfo', 'network-info'),
      ipc: join(root, 'ipc'),
      cniSocket: join(root, 'run', 'agent.sock'),
      cniState: join(root, 'state', 'attachments.json'),
      podResources: join(root, 'pod-resources', 'kubelet.sock'),
      dra: {
        registry: join(root, 'kubelet', 'plugins_registry'),
        plugin: join(root, 'kubelet', 'plugins', 'vio4wd.io'),
        cdi: join(root, 'cdi'),
        metadata: join(root, 'dra-metadata'),
        state: join(root, 'state', 'dra-claims.json'),
        podView: join(root, 'dra-device-attributes'),
      },
    };
    for (const d of [this.dirs.sockets, this.dirs.plugins, this.dirs.devinfo, join(this.dirs.hooks, 'hook-sidecar-0'), join(root, 'podinfo'), join(root, 'pod-resources'), this.dirs.dra.podView]) await mkdir(d, { recursive: true });

    // the control plane, CRDs, the node object the scheduler needs
    this.kube = await startKube();
    c.add('kube', () => this.kube.stop());
    this.api = kubeClients(this.kube.kubeconfigPath);
    await this.kube.kubectl('apply', '-f', 'crds/');
    await this.kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io');
    await this.kube.kubectl('create', 'namespace', NAMESPACE);
    // the pools the tests use: VF stand-ins (tap, af_packet on the netns veths), which this
    // test node's agent allows (kubernetes.allowVirtualDevices below)
    await this.kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([NAMESPACE])) });
    await this.api.core.createNode({ body: { metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } } } });

    // the node: a netns for the agent and its VF stand-ins, with the apiserver reachable
    this.ns = await Netns.create('e2e');
    c.add('netns', () => this.ns.destroy());
    const port = Number(new URL(this.kube.server).port);
    await proxyApiserverInto(this.ns, port, join(root, 'apiserver.sock'), c);

    // kubelet first, as on a node: the agent's device plugin registers when it starts
    this.kubelet = await TestKubelet.start(this.dirs.plugins);
    c.add('kubelet', () => this.kubelet.stop());
    // its pod-resources API: the agent's metrics join and vio4wd-cni's allocation check ask it
    this.podResources = await PodResourcesServer.start(this.dirs.podResources, () => listReply(this.holdings));
    c.add('kubelet pod-resources', () => this.podResources.stop());

    const repo = process.cwd();
    this.operator = new LoggedProcess(
      spawnTracked(process.execPath, [join(repo, 'bin/vio4wd.js'), 'operator', '--kubeconfig', this.kube.kubeconfigPath, '--namespace', 'default', '--identity', 'e2e-operator', '--log-level', 'info'], { cwd: repo }),
    );
    c.add('operator', () => this.operator.proc.stop(5000));

    this.sidecar = new LoggedProcess(
      spawnTracked(
        process.execPath,
        [join(repo, 'bin/vio4wd.js'), 'kubevirt-sidecar', '--socket-dir', join(this.dirs.hooks, 'hook-sidecar-0'), '--network-info', this.dirs.networkInfo, '--network-info-timeout', '10', '--dra-metadata-dir', this.dirs.dra.podView, '--log-level', 'info'],
        { cwd: repo },
      ),
    );
    c.add('sidecar', () => this.sidecar.proc.stop(5000));

    this.agentArgs = [
      '--kubernetes', '--kubeconfig', this.kube.kubeconfigPath, '--node-name', NODE,
      '--socket-dir', this.dirs.sockets, '--device-plugin-dir', this.dirs.plugins, '--devinfo-dir', this.dirs.devinfo,
    ];
    await this.startAgent();
    c.add('agent', async () => {
      if (this.agent.exitCode === null) await this.agent.stop();
    });
    await until('the hook sidecar serves its socket', () => existsSync(this.hookSocket), 30_000);

    this.cni = new CniDriver(root, this.dirs.cniSocket);
    c.add('cni pods', () => this.cni.cleanup());
    await this.cni.install();
  }

  get hookSocket(): string {
    return join(this.dirs.hooks, 'hook-sidecar-0', 'vio4wd.sock');
  }

  /** Starts `vio4wd agent --kubernetes` in the netns (again, after a kill) and waits until it
   *  runs (logs "vio4wd agent running", which needs the apiserver) unless waitReady is false. */
  async startAgent(o: { waitReady?: boolean } = {}): Promise<AgentProcess> {
    const config = {
      log: { level: this.opts.logLevel ?? 'info' },
      // worker polls core 1, QEMU runs on core 0; hugepage-backed (not --in-memory) so that
      // leftover hugepage files would show under /dev/hugepages
      engine: { workerCpus: [1], mainCpu: 0, filePrefix: this.filePrefix, noPci: true },
      control: { ipcDir: this.dirs.ipc },
      metrics: { address: '127.0.0.1:9464', podResourcesSocket: this.dirs.podResources },
      // the VF stand-ins are veths on bridges: vio4wd-cni programs their bridge FDB entries
      sriov: { vfProgrammer: 'standin', ...(this.opts.dra ? { standIns: this.opts.dra.standIns } : {}) },
      cni: { enabled: true, socket: this.dirs.cniSocket, statePath: this.dirs.cniState },
      kubernetes: { allowVirtualDevices: TEST_VIRTUAL_DEVICES },
      ...(this.opts.dra
        ? { dra: { enabled: true, registryDir: this.dirs.dra.registry, pluginDir: this.dirs.dra.plugin, cdiDir: this.dirs.dra.cdi, metadataDir: this.dirs.dra.metadata, statePath: this.dirs.dra.state, resyncSeconds: 2 } }
        : {}),
    };
    const a = await AgentProcess.start({
      config: this.agentConfigPath || config,
      workDir: this.dirs.root,
      netns: this.ns,
      args: this.agentArgs,
      waitReady: o.waitReady ?? true,
    });
    this.agentConfigPath = a.configPath;
    this.agent = a;
    this.agents.push(a);
    return a;
  }

  /** Log lines of every agent started so far (for failure messages). */
  agentTail(n = 4000): string {
    return this.agent.output.slice(-n);
  }

  /** The agent's /metrics (inside the netns). */
  async metrics(): Promise<string> {
    const r = await this.agent.http(`${METRICS}/metrics`);
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body.slice(0, 200)}`);
    return r.body;
  }

  // ---------------------------------------------------------------- VirtioRelays
  relayObject(name: string, spec: VirtioRelaySpec): Record<string, unknown> {
    return { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioRelay', metadata: { name, namespace: NAMESPACE }, spec };
  }

  /** kubectl apply, as a user would. */
  async apply(...objs: Record<string, unknown>[]): Promise<void> {
    await this.kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }) });
  }

  async createRelay(name: string, spec: VirtioRelaySpec): Promise<void> {
    await this.api.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: 'virtiorelays', body: this.relayObject(name, spec) });
  }

  async getRelay(name: string): Promise<VirtioRelay | undefined> {
    try {
      return (await this.api.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: 'virtiorelays', name })) as VirtioRelay;
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  async listRelays(): Promise<VirtioRelay[]> {
    const l = (await this.api.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: 'virtiorelays' })) as { items: VirtioRelay[] };
    return l.items;
  }

  /** Waits until the VirtioRelay satisfies `pred`; the error carries its status and the agent's log. */
  async waitRelay(name: string, what: string, pred: (r: VirtioRelay) => boolean, timeoutMs = 60_000): Promise<VirtioRelay> {
    let last: VirtioRelay | undefined;
    try {
      return await until(`${name} ${what}`, async () => {
        last = await this.getRelay(name);
        return last && pred(last) ? last : undefined;
      }, timeoutMs, 150);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nlast status: ${JSON.stringify(last?.status)}\n--- agent log\n${this.agentTail()}`, { cause: e });
    }
  }

  waitReady(name: string, timeoutMs = 60_000): Promise<VirtioRelay> {
    return this.waitRelay(name, 'is Ready', (r) => r.status?.phase === 'Ready' && r.status.observedGeneration === r.metadata.generation, timeoutMs);
  }

  /** Deletes a VirtioRelay and waits until the object is gone (the agent removed its finalizer). */
  async deleteRelay(name: string, timeoutMs = 60_000): Promise<void> {
    try {
      await this.api.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: 'virtiorelays', name });
    } catch (e) {
      if (httpStatus(e) !== 404) throw e;
    }
    await until(`${name} is deleted`, async () => (await this.getRelay(name)) === undefined, timeoutMs, 150);
  }

  // ---------------------------------------------------------------- kubelet + virt-launcher
  /** The device IDs kubelet currently sees, with their health. */
  devices(): Map<string, string> {
    return new Map((this.kubelet.devices(RESOURCE) ?? []).map((d) => [d.ID, d.health]));
  }

  waitDevices(what: string, pred: (d: Map<string, string>) => boolean, timeoutMs = 30_000): Promise<Map<string, string>> {
    return this.kubelet.until(`kubelet sees ${what}`, () => {
      const d = this.devices();
      return pred(d) ? d : undefined;
    }, timeoutMs);
  }

  /** Allocate for one container of a pod (as for a virt-launcher pod; pod-resources then reports
   *  the devices as the pod's), PreStartContainer as kubelet calls it before the container
   *  starts, and read the device-info files written. */
  async allocate(ids: string[], podName = `virt-launcher-${this.holdings.length + 1}`, namespace = NAMESPACE): Promise<PodView> {
    const res = await this.kubelet.allocate(RESOURCE, [ids]);
    const pod = { namespace, name: podName };
    const holding = { namespace: pod.namespace, pod: pod.name, resourceName: RESOURCE, deviceIds: [...ids] };
    this.holdings.push(holding);
    try {
      await this.kubelet.preStart(RESOURCE, ids);
    } catch (err) {
      this.holdings.splice(this.holdings.indexOf(holding), 1); // kubelet does not start the container
      throw err;
    }
    const info = new Map<string, DeviceInfo>();
    for (const id of ids) info.set(id, JSON.parse(await readFile(this.deviceInfoPath(id), 'utf8')) as DeviceInfo);
    return new PodView(res, info, pod);
  }

  deviceInfoPath(id: string): string {
    return join(this.dirs.devinfo, `${RESOURCE.replace('/', '-')}-${id}-device.json`);
  }

  /**
   * What KubeVirt gives a binding sidecar registered with `downwardAPI: device-info`: the
   * network-info file, one entry per network with the device-info of the device Multus gave it.
   */
  async writeNetworkInfo(pod: PodView, networks: [network: string, deviceId: string][]): Promise<void> {
    const interfaces = networks.map(([network, id]) => {
      const deviceInfo = pod.deviceInfo.get(id);
      if (!deviceInfo) throw new Error(`device ${id} was not allocated`);
      return { network, deviceInfo };
    });
    await writeFile(this.dirs.networkInfo, JSON.stringify({ interfaces }));
  }

  /** virt-launcher's OnDefineDomain call to the sidecar. */
  async defineDomain(domainXml: string, vmi: object): Promise<string> {
    const client = new HookClient(this.hookSocket);
    try {
      return await client.onDefineDomain(domainXml, vmi);
    } finally {
      client.close();
    }
  }

  // ---------------------------------------------------------------- leak checks
  /** Files (not directories) below the socket directory, relative, with their type. */
  socketTree(): string[] {
    const out: string[] = [];
    const walk = (dir: string, rel: string): void => {
      for (const n of readdirSync(dir).sort()) {
        // the agent's relay checkpoint: its state, not a leak
        if (rel === '' && n.startsWith('.vio4wd-relays.json')) continue;
        // the running agent's upgrade handover socket (docs/upgrade.md): its own, not a leak
        if (rel === '' && n === '.vio4wd-handover.sock') continue;
        const p = join(dir, n);
        const st = lstatSync(p);
        if (st.isDirectory()) {
          out.push(`${rel}${n}/`);
          walk(p, `${rel}${n}/`);
        } else out.push(`${rel}${n}${st.isSocket() ? ' (socket)' : ''}`);
      }
    };
    walk(this.dirs.sockets, '');
    return out;
  }

  /** Hugepage files of this agent's EAL prefix (with --huge-unlink there should never be any). */
  hugepageFiles(): string[] {
    const dirs = ['/dev/hugepages'];
    const out: string[] = [];
    for (const d of dirs) {
      if (!existsSync(d) || !statSync(d).isDirectory()) continue;
      for (const n of readdirSync(d)) if (n.startsWith(this.filePrefix)) out.push(join(d, n));
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.cleanups.run();
  }
}

/** Free 2 MiB hugepages of the machine (other processes count too: report, do not assert). */
export function freeHugepages(): number {
  return Number(/^HugePages_Free:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN);
}

/** A metric's value from Prometheus text (first series matching the labels). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

