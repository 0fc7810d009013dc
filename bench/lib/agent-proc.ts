// The node agent as the benchmarks run it: a real kube-apiserver + etcd with the CRDs, a
// namespace and pool policy, a Node, a test kubelet (device plugin v1beta1) and
// `vio4wd agent --kubernetes` (ZeroMQ control, metrics, device plugin, CNI API: what the DaemonSet
// runs) on the real DPDK engine inside a test network namespace, whose apiserver is reached
// through a proxy. Also its memory by owner, sampled the same way everywhere: RSS by kind,
// mappings by owner (test/helpers/proc-memory.ts), and V8's and malloc's view after a full GC.
// Used by bench/restart.ts and bench/churn-memory.ts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startKube, type KubeEnv } from '../../test/helpers/kube.js';
import { Netns, testTempDir } from '../../test/helpers/netns.js';
import { AgentProcess, type AgentMemory } from '../../test/helpers/agent.js';
import { TestKubelet } from '../../test/helpers/kubelet.js';
import { TEST_VIRTUAL_DEVICES, testPoolPolicy } from '../../test/helpers/policy.js';
import { Cleanups, proxyApiserverInto } from '../../test/helpers/e2e.js';
import { memoryByOwner, procMemory, smapsMappings, type Mapping, type MemoryByOwner, type ProcMemory } from '../../test/helpers/proc-memory.js';
import { kubeClients } from '../../src/kube/index.js';

export const BENCH_NS = 'bench';
export const BENCH_NODE = 'bench-node';

export interface BenchAgentOptions {
  /** short name: the netns, temp dir and EAL file prefix carry it */
  name: string;
  env?: NodeJS.ProcessEnv;
  /** after the kubelet, before the agent starts (veths the relays will use, ...) */
  beforeAgent?: (ns: Netns) => Promise<void>;
}

export interface BenchAgent {
  kube: KubeEnv;
  api: ReturnType<typeof kubeClients>;
  ns: Netns;
  tmpPath: string;
  dirs: { sockets: string; plugins: string; devinfo: string; ipc: string };
  /** the agent's config file and flags, to spawn it again (bench/restart.ts) */
  configPath: string;
  args: string[];
  agent: AgentProcess;
}

/** Starts everything; `cleanups` stops it again (the agent first). */
export async function startBenchAgent(o: BenchAgentOptions, cleanups: Cleanups): Promise<BenchAgent> {
  const kube = await startKube();
  cleanups.add('kube', () => kube.stop());
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
  await kube.kubectl('create', 'namespace', BENCH_NS);
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([BENCH_NS])) });
  const api = kubeClients(kube.kubeconfigPath);
  await api.core.createNode({ body: { metadata: { name: BENCH_NODE, labels: { 'kubernetes.io/hostname': BENCH_NODE } } } });

  const tmp = testTempDir(o.name);
  cleanups.add('temp dir', () => tmp.remove());
  const dirs = { sockets: join(tmp.path, 'sockets'), plugins: join(tmp.path, 'plugins'), devinfo: join(tmp.path, 'devinfo'), ipc: join(tmp.path, 'ipc') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const ns = await Netns.create(o.name);
  cleanups.add('netns', () => ns.destroy());
  await proxyApiserverInto(ns, Number(new URL(kube.server).port), join(tmp.path, 'apiserver.sock'), cleanups);
  const kubelet = await TestKubelet.start(dirs.plugins);
  cleanups.add('kubelet', () => kubelet.stop());
  await o.beforeAgent?.(ns);

  const config = {
    log: { level: 'info' },
    engine: { workerCpus: [1], mainCpu: 0, filePrefix: `vio4wd-${o.name}-${process.pid}`, noPci: true },
    control: { ipcDir: dirs.ipc },
    metrics: { address: '127.0.0.1:9464' },
    sriov: { vfProgrammer: 'standin' },
    cni: { enabled: true, socket: join(tmp.path, 'run', 'agent.sock'), statePath: join(tmp.path, 'state', 'attachments.json') },
    kubernetes: { allowVirtualDevices: TEST_VIRTUAL_DEVICES },
  };
  const args = ['--kubernetes', '--kubeconfig', kube.kubeconfigPath, '--node-name', BENCH_NODE, '--socket-dir', dirs.sockets, '--device-plugin-dir', dirs.plugins, '--devinfo-dir', dirs.devinfo];
  const b: BenchAgent = { kube, api, ns, tmpPath: tmp.path, dirs, configPath: '', args, agent: undefined as unknown as AgentProcess };
  b.agent = await AgentProcess.start({ config, workDir: tmp.path, netns: ns, args, readyTimeoutMs: 120_000, ...(o.env ? { env: o.env } : {}) });
  b.configPath = b.agent.configPath;
  // b.agent, not the first one: bench/restart.ts replaces it
  cleanups.add('agent', async () => {
    if (b.agent.exitCode === null) await b.agent.stop();
  });
  return b;
}

/** A VirtioRelay on the bench node. */
export function benchRelay(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name, namespace: BENCH_NS }, spec: { nodeName: BENCH_NODE, ...spec } };
}

export interface MemorySample {
  proc: ProcMemory;
  owners: MemoryByOwner;
  maps: Map<string, Mapping>;
  /** after a full GC: V8's heap and malloc's (absent when not asked for) */
  gc?: AgentMemory;
}

/** The agent's memory now: from /proc, and (withGc) V8's and malloc's after a full GC. */
export async function sampleAgentMemory(agent: AgentProcess, withGc: boolean): Promise<MemorySample> {
  const proc = procMemory(agent.pid);
  const maps = smapsMappings(agent.pid);
  const gc = withGc ? await agent.memoryAfterGc() : undefined;
  return { proc, owners: memoryByOwner(maps), maps, ...(gc ? { gc } : {}) };
}
