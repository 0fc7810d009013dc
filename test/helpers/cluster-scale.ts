// A cluster of many nodes on one real kube-apiserver: per node a ServiceAccount (its own token),
// a Node object and the agent's real Kubernetes code over the in-memory engine
// (test/helpers/cluster-agents.ts, several nodes per process), the real operator
// (`vio4wd operator`, a child process), and VirtioRelays without a node for it to schedule.
// Shared by bench/cluster-scale.ts (100 x 64) and test/integration/scale.kube.test.ts (short form).
//
// Phases: a burst (all relays created at once, 64 requests in flight), a steady stream (relays
// created at a fixed rate), a quiet window (what the apiserver serves with nothing changing), a
// lost node (its agent stops, its Node is deleted: its relays, reschedule OnNodeLoss, move).
// Apiserver requests per phase come from its /metrics (apiserver_request_total).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Watch } from '@kubernetes/client-node';
import { kubeClients } from '../../src/kube/index.js';
import { startKube, type KubeEnv } from './kube.js';
import { testTempDir } from './netns.js';
import { testPoolPolicy } from './policy.js';
import { pct } from './node-scale.js';

export interface ClusterScaleOptions {
  nodes: number;
  relaysPerNode: number;
  /** agents per process */
  agentsPerProcess?: number;
  /** relays created in the stream, and per second */
  stream?: number;
  streamPerSecond?: number;
  /** seconds of the quiet window */
  quietSeconds?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface Requests {
  seconds: number;
  /** "VERB resource[/sub]" -> requests in the window */
  byKey: Record<string, number>;
  writes: number;
  reads: number;
}

export interface AgentReport {
  node: string;
  cached: number;
  foreign: number;
  events: number;
}

export interface ClusterScaleResult {
  nodes: number;
  relays: number;
  burst: { applyToReadyMs: number[]; allReadyMs: number; createdMs: number; requests: Requests; scheduledPerSecond: number };
  stream: { applyToReadyMs: number[]; rate: number; requests: Requests };
  /** writesPerNodePer10s: the writes less the operator's own (its leader-election Lease, renewed
   *  every 2 s: quiet seconds / 2 PUTs), per node and 10 s */
  quiet: Requests & { writesPerNodePer10s: number; operatorLeaseWrites: number };
  agents: AgentReport[];
  operator: { rssBytes: number; heapUsedBytes?: number };
  nodeLost: { node: string; relays: number; movedMs: number; allReadyMs: number };
  watchEvents: Record<string, number>;
}

const NS = 'tenants';
const SYS = 'vio4wd-system';
const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);

async function requestTotals(kube: KubeEnv): Promise<{ req: Map<string, number>; watch: Map<string, number> }> {
  const text = await kube.kubectl('get', '--raw', '/metrics');
  const req = new Map<string, number>();
  const watch = new Map<string, number>();
  for (const line of text.split('\n')) {
    const isReq = line.startsWith('apiserver_request_total{');
    const isWatch = line.startsWith('apiserver_watch_events_total{');
    if (!isReq && !isWatch) continue;
    const l = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (isReq) {
      if (l.verb === 'WATCH' || l.verb === 'CONNECT') continue;
      const key = `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ''}`;
      req.set(key, (req.get(key) ?? 0) + v);
    } else {
      const key = `${l.resource ?? l.kind}`;
      watch.set(key, (watch.get(key) ?? 0) + v);
    }
  }
  return { req, watch };
}

function diff(a: Map<string, number>, b: Map<string, number>, seconds: number): Requests {
  const byKey: Record<string, number> = {};
  let writes = 0;
  let reads = 0;
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d <= 0) continue;
    byKey[k] = d;
    if (WRITE.has(k.split(' ')[0]!)) writes += d;
    else reads += d;
  }
  return { seconds, byKey, writes, reads };
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

class AgentGroup {
  private lines: string[] = [];
  private waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      for (const w of [...this.waiters]) if (w.re.test(l)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(l);
      }
    });
  }
  next(re: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`agents: no ${re} in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  }
  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }
}

export async function runClusterScale(o: ClusterScaleOptions): Promise<ClusterScaleResult> {
  const log = o.log ?? (() => undefined);
  const total = o.nodes * o.relaysPerNode;
  const timeoutMs = o.timeoutMs ?? 600_000;
  const kube = await startKube({ apiserverArgs: ['--max-requests-inflight=1600', '--max-mutating-requests-inflight=800'] });
  const tmp = testTempDir('clusterscale');
  const children: ChildProcess[] = [];
  const aborts: (() => void)[] = [];
  try {
    const admin = kubeClients(kube.kubeconfigPath);
    await kube.kubectl('apply', '-f', 'crds/');
    await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
    await kube.kubectl('create', 'namespace', NS);
    await kube.kubectl('create', 'namespace', SYS);
    await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([NS])) });
    // the chart's agent RBAC, bound to every ServiceAccount of the agents' namespace
    const rbac = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', SYS, '--show-only', 'templates/agent-rbac.yaml');
    await kube.kubectlRun(['apply', '-f', '-'], { input: rbac });
    const group = `system:serviceaccounts:${SYS}`;
    await kube.kubectl('create', 'clusterrolebinding', 'scale-agents', '--clusterrole=vio4wd-agent', `--group=${group}`);
    await kube.kubectl('create', 'rolebinding', 'scale-agents-lease', '-n', SYS, '--role=vio4wd-agent-node-lease', `--group=${group}`);

    const nodes = Array.from({ length: o.nodes }, (_, i) => `node-${String(i).padStart(3, '0')}`);
    const agents: { node: string; kubeconfig: string; socketDir: string }[] = [];
    for (const node of nodes) {
      await admin.core.createNode({ body: { metadata: { name: node, labels: { 'kubernetes.io/hostname': node } } } });
      await admin.core.createNamespacedServiceAccount({ namespace: SYS, body: { metadata: { name: node } } });
      const token = await kube.serviceAccountToken(SYS, node, { durationSeconds: 7200 });
      const socketDir = join(tmp.path, node);
      mkdirSync(socketDir);
      agents.push({ node, kubeconfig: kube.kubeconfigForToken(`agent-${node}`, token), socketDir });
    }
    log(`${o.nodes} nodes, ServiceAccounts and tokens made`);

    // the operator, as `vio4wd operator` runs it
    const operator = spawn(process.execPath, ['bin/vio4wd.js', 'operator', '--kubeconfig', kube.kubeconfigPath, '--namespace', SYS, '--identity', 'scale-op', '--log-level', 'error'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(operator);

    const per = o.agentsPerProcess ?? 25;
    const groups: AgentGroup[] = [];
    const groupOf = new Map<string, AgentGroup>();
    for (let i = 0; i < agents.length; i += per) {
      const specPath = join(tmp.path, `agents-${i}.json`);
      const mine = agents.slice(i, i + per);
      writeFileSync(specPath, JSON.stringify({ leaseNamespace: SYS, agents: mine }));
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/cluster-agents.ts', specPath], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      const g = new AgentGroup(child);
      groups.push(g);
      for (const a of mine) groupOf.set(a.node, g);
    }
    await Promise.all(groups.map((g) => g.next(/^ready$/, timeoutMs)));
    log(`${o.nodes} agents running in ${groups.length} processes`);

    // Ready transitions of every relay, from one admin watch
    const readyAt = new Map<string, number>();
    const nodeOf = new Map<string, string>();
    type Obj = { metadata: { name: string }; spec?: { nodeName?: string }; status?: { phase?: string } };
    const seen = (obj: Obj): void => {
      if (obj.spec?.nodeName) nodeOf.set(obj.metadata.name, obj.spec.nodeName);
      if (obj.status?.phase === 'Ready' && !readyAt.has(obj.metadata.name)) readyAt.set(obj.metadata.name, performance.now());
      else if (obj.status?.phase !== 'Ready' && readyAt.has(obj.metadata.name) && moving.has(obj.metadata.name)) readyAt.delete(obj.metadata.name);
    };
    const moving = new Set<string>();
    const watch = new Watch(admin.kc);
    let closed = false;
    const startWatch = async (): Promise<void> => {
      const req = await watch.watch(`/apis/vio4wd.io/v1alpha1/namespaces/${NS}/virtiorelays`, {}, (_t: string, obj: Obj) => seen(obj), () => {
        if (!closed) setTimeout(() => void startWatch().catch(() => undefined), 200);
      });
      aborts.push(() => req.abort());
    };
    aborts.unshift(() => (closed = true));
    await startWatch();
    const listAll = async (): Promise<Obj[]> =>
      ((await admin.custom.listNamespacedCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', namespace: NS, plural: 'virtiorelays' })) as { items: Obj[] }).items;
    const waitReady = async (names: string[], what: string): Promise<void> => {
      const end = Date.now() + timeoutMs;
      let listed = Date.now();
      while (names.some((n) => !readyAt.has(n))) {
        if (Date.now() > end) throw new Error(`${what}: ${names.filter((n) => !readyAt.has(n)).length} of ${names.length} relays not Ready in ${timeoutMs} ms`);
        if (Date.now() - listed > 10_000) {
          for (const r of await listAll()) seen(r);
          listed = Date.now();
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const body = (name: string) => ({
      apiVersion: 'vio4wd.io/v1alpha1',
      kind: 'VirtioRelay',
      metadata: { name, namespace: NS },
      spec: { vf: { devargs: `net_null_${name.replace(/-/g, '_')}` }, queues: 1, reschedule: 'OnNodeLoss' },
    });
    const sentAt = new Map<string, number>();
    const create = async (name: string): Promise<void> => {
      sentAt.set(name, performance.now());
      await admin.custom.createNamespacedCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', namespace: NS, plural: 'virtiorelays', body: body(name) });
    };

    // 1) burst
    const burstNames = Array.from({ length: total }, (_, i) => `b${i}`);
    const m0 = await requestTotals(kube);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < burstNames.length) await create(burstNames[next++]!);
      }),
    );
    const createdMs = performance.now() - t0;
    await waitReady(burstNames, 'burst');
    const allReadyMs = Math.max(...burstNames.map((n) => readyAt.get(n)!)) - t0;
    const m1 = await requestTotals(kube);
    const burstRequests = diff(m0.req, m1.req, allReadyMs / 1000);
    const applyToReadyMs = burstNames.map((n) => readyAt.get(n)! - sentAt.get(n)!);
    const operatorRss = rssOf(operator.pid!);
    log(`burst: ${total} relays Ready ${(allReadyMs / 1000).toFixed(1)} s after the first create; p50 ${pct(applyToReadyMs, 50).toFixed(0)} ms, p99 ${pct(applyToReadyMs, 99).toFixed(0)} ms`);

    // 2) a steady stream
    const rate = o.streamPerSecond ?? 10;
    const streamNames = Array.from({ length: o.stream ?? rate * 30 }, (_, i) => `s${i}`);
    const s0 = performance.now();
    await Promise.all(
      streamNames.map(async (n, i) => {
        const at = s0 + (i * 1000) / rate;
        await new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
        await create(n);
      }),
    );
    await waitReady(streamNames, 'stream');
    const m2 = await requestTotals(kube);
    const streamRequests = diff(m1.req, m2.req, (performance.now() - s0) / 1000);
    const streamLat = streamNames.map((n) => readyAt.get(n)! - sentAt.get(n)!);
    log(`stream: ${streamNames.length} relays at ${rate}/s; p50 ${pct(streamLat, 50).toFixed(0)} ms, p99 ${pct(streamLat, 99).toFixed(0)} ms`);

    // 3) quiet: nothing changes
    const quietS = o.quietSeconds ?? 60;
    const q0 = await requestTotals(kube);
    await new Promise((r) => setTimeout(r, quietS * 1000));
    const q1 = await requestTotals(kube);
    const quiet = diff(q0.req, q1.req, quietS);
    // the operator renews its leader-election Lease every 2 s (LeaderElector's default): not a node's
    const operatorLeaseWrites = Math.round(quietS / 2);
    const writesPerNodePer10s = Math.max(0, quiet.writes - operatorLeaseWrites) / o.nodes / (quietS / 10);
    log(`quiet ${quietS} s: ${quiet.writes} writes (${writesPerNodePer10s.toFixed(2)} per node per 10 s), ${quiet.reads} reads`);

    // what each agent received
    const reports: AgentReport[] = [];
    for (const g of groups) {
      const line = g.next(/^\{"report"/, 60_000);
      g.send('report');
      reports.push(...(JSON.parse(await line) as { report: AgentReport[] }).report);
    }

    // 4) a node lost: its agent stops, its Node goes
    for (const r of await listAll()) seen(r);
    const lost = nodes[0]!;
    const onLost = [...nodeOf].filter(([, n]) => n === lost).map(([name]) => name);
    const g = groupOf.get(lost)!;
    const stopped = g.next(new RegExp(`^stopped ${lost}$`), 60_000);
    g.send(`stop ${lost}`);
    await stopped;
    for (const n of onLost) {
      moving.add(n);
      readyAt.delete(n);
    }
    const l0 = performance.now();
    await admin.core.deleteNode({ name: lost });
    const end = Date.now() + timeoutMs;
    let movedMs = NaN;
    while (Date.now() < end) {
      const items = await listAll();
      for (const r of items) seen(r);
      const mine = items.filter((r) => onLost.includes(r.metadata.name));
      if (Number.isNaN(movedMs) && mine.every((r) => r.spec?.nodeName && r.spec.nodeName !== lost)) movedMs = performance.now() - l0;
      if (mine.every((r) => r.status?.phase === 'Ready' && r.spec?.nodeName !== lost)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const lostReadyMs = performance.now() - l0;
    if (Number.isNaN(movedMs) || lostReadyMs > timeoutMs) throw new Error(`the ${onLost.length} relays of ${lost} were not moved and Ready in ${timeoutMs} ms`);
    log(`node lost: ${onLost.length} relays of ${lost} on other nodes in ${movedMs.toFixed(0)} ms, Ready in ${lostReadyMs.toFixed(0)} ms`);
    const m3 = await requestTotals(kube);
    const watchEvents: Record<string, number> = {};
    for (const [k, v] of m3.watch) if (/virtiorelays|leases|virtioforwardernodes|events/.test(k)) watchEvents[k] = v;

    return {
      nodes: o.nodes,
      relays: total,
      burst: { applyToReadyMs, allReadyMs, createdMs, requests: burstRequests, scheduledPerSecond: total / (allReadyMs / 1000) },
      stream: { applyToReadyMs: streamLat, rate, requests: streamRequests },
      quiet: { ...quiet, writesPerNodePer10s, operatorLeaseWrites },
      agents: reports,
      operator: { rssBytes: operatorRss },
      nodeLost: { node: lost, relays: onLost.length, movedMs, allReadyMs: lostReadyMs },
      watchEvents,
    };
  } finally {
    for (const a of aborts) a();
    for (const c of children) {
      c.kill('SIGTERM');
    }
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    await kube.stop();
    tmp.remove();
  }
}
