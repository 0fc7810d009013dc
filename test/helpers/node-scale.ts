// One node with many relays, end to end: the real kube-apiserver, the real agent (a child
// process) and the real engine, VF stand-ins that are DPDK net_null devices. Shared by
// bench/node-scale.ts (1,000 relays) and test/integration/scale.kube.test.ts (the short form).
//
// What it measures: create -> Ready of every relay (all created at once, a bounded number of
// requests in flight), the agent's RSS and the engine's hugepages before and after, and, after a
// SIGKILL of the agent, how long the new agent takes to run every relay again from its
// checkpoint (before and without the apiserver's help) and until the apiserver agrees.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeClients } from '../../src/kube/index.js';
import { AgentProcess } from './agent.js';
import { startKube, type KubeEnv } from './kube.js';
import { testTempDir } from './netns.js';
import { TEST_VIRTUAL_DEVICES, testPoolPolicy } from './policy.js';
import { RelayWatch } from './relay-watch.js';
import { until } from './wait.js';

export interface NodeScaleOptions {
  relays: number;
  /** engine.poolQueuePairs of the agent (default: the engine's, 256: the pool grows in steps) */
  poolQueuePairs?: number;
  /** VF ring sizes (default the engine's, 256 each) */
  descriptors?: number;
  /** create requests in flight at once */
  inFlight?: number;
  /** give up waiting for Ready after this long */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface NodeScaleResult {
  relays: number;
  /** from the first create request to the last relay's Ready (apiserver watch) */
  allReadyMs: number;
  /** per relay: its create request sent -> its Ready seen */
  createToReadyMs: number[];
  createdMs: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  hugepagesBeforeBytes: number;
  hugepagesAfterBytes: number;
  /** mbufs the engine's pools hold once every relay runs */
  mbufsCapacity: number;
  restart: {
    /** new agent spawned -> its checkpoint's relays all Ready in the engine (agent metrics) */
    restoreAllReadyMs: number;
    /** spawned -> "relays restored from the checkpoint" logged */
    restoredLoggedMs: number;
    relaysRestored: number;
    /** spawned -> "vio4wd agent running" (the apiserver's list reconciled) */
    agentRunningMs: number;
    /** VirtioRelays not Ready in the apiserver after the restart settled */
    notReadyAfter: number;
    rssAfterBytes: number;
  };
}

const NS = 'scale';
const NODE = 'scale-node';

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** One gauge sample from Prometheus text, by name and an optional label matcher. */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (labels ? rest.startsWith(`{${labels}`) || rest.includes(`,${labels}`) : rest.startsWith(' ')) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function metrics(address: string): Promise<string> {
  const r = await fetch(`http://${address}/metrics`);
  return r.text();
}

function metricsAddress(agent: AgentProcess): string {
  const line = agent.logs().find((l) => l.msg === 'vio4wd agent running');
  const m = line?.['metrics'];
  if (typeof m !== 'string') throw new Error('the agent logged no metrics address');
  return m;
}

export async function runNodeScale(o: NodeScaleOptions): Promise<NodeScaleResult> {
  const log = o.log ?? (() => undefined);
  const n = o.relays;
  // a default kube-apiserver (its admin, as here, is exempt from APF's limits anyway)
  const kube: KubeEnv = await startKube();
  const tmp = testTempDir('nodescale');
  let agent: AgentProcess | undefined;
  const abort: (() => void)[] = [];
  try {
    await kube.kubectl('apply', '-f', 'crds/');
    await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
    await kube.kubectl('create', 'namespace', NS);
    await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([NS])) });
    const sockets = join(tmp.path, 'sockets');
    mkdirSync(sockets);
    const config = {
      log: { level: 'info' },
      engine: {
        workerCpus: [1],
        mainCpu: 0,
        inMemory: true,
        noPci: true,
        ...(o.poolQueuePairs ? { poolQueuePairs: o.poolQueuePairs } : {}),
        ...(o.descriptors ? { rxDescriptors: o.descriptors, txDescriptors: o.descriptors } : {}),
      },
      control: { enabled: false },
      metrics: { address: '127.0.0.1:0' },
      kubernetes: { enabled: true, kubeconfig: kube.kubeconfigPath, socketDir: sockets, allowVirtualDevices: TEST_VIRTUAL_DEVICES },
      devicePlugin: { enabled: false },
    };
    const start = () => AgentProcess.start({ workDir: tmp.path, config, args: ['--node-name', NODE], readyTimeoutMs: 600_000 });
    agent = await start();
    let addr = metricsAddress(agent);
    const rssBeforeBytes = rssOf(agent.pid);
    const hugepagesBeforeBytes = sample(await metrics(addr), 'vio4wd_engine_hugepage_bytes') ?? 0;
    log(`agent up: RSS ${(rssBeforeBytes / 2 ** 20).toFixed(1)} MiB, hugepages ${(hugepagesBeforeBytes / 2 ** 20).toFixed(0)} MiB`);

    const clients = kubeClients(kube.kubeconfigPath);
    const relays = await RelayWatch.start(clients, NS);
    abort.push(() => relays.stop());
    const names = Array.from({ length: n }, (_, i) => `r${i}`);
    // server mode: the relay's socket is there at once (no client reconnecting to nobody)
    const body = (name: string) => ({
      apiVersion: 'vio4wd.io/v1alpha1',
      kind: 'VirtioRelay',
      metadata: { name, namespace: NS },
      spec: { nodeName: NODE, vf: { devargs: `net_null_${name},no-rx=1` }, vhostUser: { mode: 'server' }, queues: 1 },
    });
    const t0 = performance.now();
    const createdMs = await relays.createAll(names.map(body), o.inFlight ?? 32);
    log(`${n} VirtioRelays created in ${(createdMs / 1000).toFixed(2)} s`);
    await relays.untilReady(names, { timeoutMs: o.timeoutMs ?? 600_000, what: 'node scale' });
    const allReadyMs = Math.max(...names.map((nm) => relays.readyAt.get(nm)!)) - t0;
    const createToReadyMs = names.map((nm) => relays.readyAt.get(nm)! - relays.sentAt.get(nm)!);
    const m = await metrics(addr);
    const hugepagesAfterBytes = sample(m, 'vio4wd_engine_hugepage_bytes') ?? NaN;
    const rssAfterBytes = rssOf(agent.pid);
    const ready = sample(m, 'vio4wd_relays', 'phase="Ready"');
    if (ready !== n) throw new Error(`the agent's metrics count ${ready} Ready relays, not ${n}`);
    const mbufsCapacity = sample(m, 'vio4wd_engine_mbufs_capacity') ?? NaN;
    log(`all ${n} Ready in ${(allReadyMs / 1000).toFixed(2)} s; RSS ${(rssAfterBytes / 2 ** 20).toFixed(1)} MiB, hugepages ${(hugepagesAfterBytes / 2 ** 20).toFixed(0)} MiB`);

    // a crash: the new agent runs every relay from its checkpoint
    await agent.kill();
    const s0 = performance.now();
    agent = await AgentProcess.start({ workDir: tmp.path, config, args: ['--node-name', NODE], waitReady: false });
    let restoredLoggedMs = NaN;
    let relaysRestored = 0;
    let restoreAllReadyMs = NaN;
    let agentRunningMs = NaN;
    const restarted = agent;
    await until(
      'the restarted agent running every relay and reconciled with the apiserver',
      async () => {
        const logs = restarted.logs();
        if (Number.isNaN(restoredLoggedMs)) {
          const l = logs.find((x) => x.msg.startsWith('relays restored from the checkpoint'));
          if (l) {
            restoredLoggedMs = performance.now() - s0;
            relaysRestored = Number(l['relays']);
          }
        }
        if (Number.isNaN(agentRunningMs) && logs.some((x) => x.msg === 'vio4wd agent running')) agentRunningMs = performance.now() - s0;
        if (Number.isNaN(restoreAllReadyMs)) {
          // the metrics server comes up before the reconciler: its address is in the log then
          const a = logs.find((x) => x.msg === 'serving /metrics, /healthz, /readyz')?.['address'] as string | undefined;
          if (a) {
            addr = a;
            if (sample(await metrics(addr).catch(() => ''), 'vio4wd_relays', 'phase="Ready"') === n) restoreAllReadyMs = performance.now() - s0;
          }
        }
        return !Number.isNaN(restoreAllReadyMs) && !Number.isNaN(agentRunningMs);
      },
      {
        timeoutMs: o.timeoutMs ?? 600_000,
        failIf: () => (restarted.exitCode !== null ? `the agent exited after the restart:\n${restarted.output.slice(-3000)}` : undefined),
        detail: () =>
          `checkpoint read: ${!Number.isNaN(restoredLoggedMs)} (${relaysRestored} relays), all Ready in the engine: ${!Number.isNaN(restoreAllReadyMs)}, agent running: ${!Number.isNaN(agentRunningMs)}; metrics at ${addr}; the agent's last lines:\n${restarted.output.slice(-2000)}`,
      },
    );
    const notReadyAfter = (await relays.list()).filter((r) => r.status?.phase !== 'Ready').length;
    const restartRss = rssOf(agent.pid);
    log(`restart: ${relaysRestored} restored (logged at ${restoredLoggedMs.toFixed(0)} ms), all Ready in the engine at ${restoreAllReadyMs.toFixed(0)} ms, agent running at ${agentRunningMs.toFixed(0)} ms`);
    return {
      relays: n,
      allReadyMs,
      createToReadyMs,
      createdMs,
      rssBeforeBytes,
      rssAfterBytes,
      hugepagesBeforeBytes,
      hugepagesAfterBytes,
      mbufsCapacity,
      restart: { restoreAllReadyMs, restoredLoggedMs, relaysRestored, agentRunningMs, notReadyAfter, rssAfterBytes: restartRss },
    };
  } finally {
    for (const a of abort) a();
    await agent?.stop(60_000).catch(() => agent?.kill());
    await kube.stop();
    tmp.remove();
  }
}
