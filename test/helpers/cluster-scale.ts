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
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { parseAllDocuments, stringify } from 'yaml';
import { kubeClients } from '../../src/kube/index.js';
import { startKube, type KubeEnv } from './kube.js';
import { testTempDir } from './netns.js';
import { testPoolPolicy } from './policy.js';
import { pct } from './node-scale.js';
import { RelayWatch } from './relay-watch.js';
import { sleep, until } from './wait.js';

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
  /** create requests in flight in the burst (default 64) */
  inFlight?: number;
  /** kube-apiserver flags; default none: its own defaults (400 + 200 requests in flight, APF on) */
  apiserverArgs?: string[];
  /** the operator under the chart's ServiceAccount and RBAC (default); false: as the admin */
  operatorServiceAccount?: boolean;
  /** who creates the relays: 'admin' (system:masters, exempt from APF; default), 'kubeadm' (a
   *  user in kubeadm:cluster-admins, as kubeadm >= 1.29's admin.conf: APF's global-default), or
   *  'serviceaccount' (a GitOps controller's ServiceAccount bound to cluster-admin: workload-low) */
  creator?: Creator;
  /** the operator's --concurrency (relays placed at once; its default 32) */
  operatorConcurrency?: number;
  /** the chart's FlowSchema and priority level for the agents and the operator (default true) */
  flowSchema?: boolean;
  /** helm --set values for it, e.g. ['flowControl.lendablePercent=0'] */
  flowControlSet?: string[];
  timeoutMs?: number;
  log?: (line: string) => void;
}

export type Creator = 'admin' | 'kubeadm' | 'serviceaccount';

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
  /** the agent's work queue: keys queued, the longest wait and the mean wait (ms) */
  queue: { adds: number; maxWaitMs: number; meanWaitMs: number; maxDepth: number };
}

export interface ApfLevel {
  level: string;
  dispatched: number;
  rejected: number;
  meanWaitMs: number;
  /** the flow schemas whose requests it served, and how many */
  flowSchemas: Record<string, number>;
  /** mean seats a request was estimated to occupy (a write with many watchers: up to 10) */
  meanSeats: number;
  /** mean execution time (ms), and the level's seat limit at the end (nominal, current) */
  meanExecMs: number;
  nominalSeats: number;
  currentSeats: number;
}

/** Where a burst's time and work went. */
export interface BurstBreakdown {
  /** per relay: create sent -> created (the POST's answer), -> spec.nodeName seen, -> Ready seen (ms) */
  stages: { created: number[]; scheduled: number[]; ready: number[] };
  /** apiserver writes per relay */
  writesPerRelay: number;
  /** mean time the apiserver took per request kind (ms) */
  latencyMs: Record<string, number>;
  apf: ApfLevel[];
  /** CPU seconds each part used during the burst */
  cpuSeconds: Record<string, number>;
  /** the operator's relay queue in the burst: keys queued and the mean wait and work per key (ms) */
  operatorQueue: { adds: number; meanWaitMs: number; meanWorkMs: number };
}

export interface ClusterScaleResult {
  nodes: number;
  relays: number;
  burst: { applyToReadyMs: number[]; allReadyMs: number; createdMs: number; requests: Requests; scheduledPerSecond: number; breakdown: BurstBreakdown };
  /** the kube-apiserver flags the run set (none: its defaults) */
  apiserverArgs: string[];
  /** who the operator was: the chart's ServiceAccount, or the admin (exempt from APF) */
  operatorIdentity: string;
  /** who created the relays, and how many creates APF rejected (429) and were sent again */
  creatorIdentity: string;
  creates429: number;
  /** the chart's FlowSchema was applied */
  flowSchema: boolean;
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

/** What one scrape of the apiserver's /metrics says, summed over the labels kept. */
interface ApiserverTotals {
  /** "VERB resource[/sub]" -> requests (WATCH and CONNECT left out) */
  req: Map<string, number>;
  /** resource -> watch events sent */
  watch: Map<string, number>;
  /** "VERB resource[/sub]" -> seconds spent serving them (apiserver_request_duration_seconds_sum) */
  seconds: Map<string, number>;
  /** APF priority level -> [dispatched, rejected, seconds waited in its queues, estimated seats
   *  sum, estimated seats count, execution seconds sum, execution count, nominal seats, current seats] */
  apf: Map<string, number[]>;
  /** "level flowSchema" -> requests dispatched */
  apfFlows: Map<string, number>;
}

async function apiserverTotals(kube: KubeEnv): Promise<ApiserverTotals> {
  const text = await kube.kubectl('get', '--raw', '/metrics');
  const t: ApiserverTotals = { req: new Map(), watch: new Map(), seconds: new Map(), apf: new Map(), apfFlows: new Map() };
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
  const apf = (level: string, i: number, v: number): void => {
    const a = t.apf.get(level) ?? [0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[i]! += v;
    t.apf.set(level, a);
  };
  for (const line of text.split('\n')) {
    const brace = line.indexOf('{');
    if (brace < 0 || line.startsWith('#')) continue;
    const name = line.slice(0, brace);
    if (
      name !== 'apiserver_request_total' &&
      name !== 'apiserver_watch_events_total' &&
      name !== 'apiserver_request_duration_seconds_sum' &&
      !name.startsWith('apiserver_flowcontrol_')
    )
      continue;
    const l = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    const key = `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ''}`;
    if (name === 'apiserver_watch_events_total') add(t.watch, `${l.resource ?? l.kind}`, v);
    else if (l.verb === 'WATCH' || l.verb === 'CONNECT') continue;
    else if (name === 'apiserver_request_total') add(t.req, key, v);
    else if (name === 'apiserver_request_duration_seconds_sum') add(t.seconds, key, v);
    else if (name === 'apiserver_flowcontrol_dispatched_requests_total') {
      apf(l.priority_level!, 0, v);
      add(t.apfFlows, `${l.priority_level} ${l.flow_schema}`, v);
    } else if (name === 'apiserver_flowcontrol_rejected_requests_total') apf(l.priority_level!, 1, v);
    else if (name === 'apiserver_flowcontrol_request_wait_duration_seconds_sum') apf(l.priority_level!, 2, v);
    else if (name === 'apiserver_flowcontrol_work_estimated_seats_sum') apf(l.priority_level!, 3, v);
    else if (name === 'apiserver_flowcontrol_work_estimated_seats_count') apf(l.priority_level!, 4, v);
    else if (name === 'apiserver_flowcontrol_request_execution_seconds_sum') apf(l.priority_level!, 5, v);
    else if (name === 'apiserver_flowcontrol_request_execution_seconds_count') apf(l.priority_level!, 6, v);
    else if (name === 'apiserver_flowcontrol_nominal_limit_seats') apf(l.priority_level!, 7, v);
    else if (name === 'apiserver_flowcontrol_current_limit_seats') apf(l.priority_level!, 8, v);
  }
  return t;
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

/** Per request kind: the mean time the apiserver took to serve one, in the window. */
function meanLatency(a: ApiserverTotals, b: ApiserverTotals): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, s] of b.seconds) {
    const n = (b.req.get(k) ?? 0) - (a.req.get(k) ?? 0);
    if (n > 0) out[k] = ((s - (a.seconds.get(k) ?? 0)) / n) * 1000;
  }
  return out;
}

/** Per APF priority level: requests dispatched, rejected (429) and the mean wait in its queues. */
function apfDiff(a: ApiserverTotals, b: ApiserverTotals): ApfLevel[] {
  const out: ApfLevel[] = [];
  for (const [level, now] of b.apf) {
    const then = a.apf.get(level) ?? [];
    const at = (i: number): number => now[i] ?? 0;
    const delta = (i: number): number => at(i) - (then[i] ?? 0);
    if (delta(0) <= 0 && delta(1) <= 0) continue;
    const flowSchemas: Record<string, number> = {};
    for (const [k, v] of b.apfFlows) {
      const [lv, fs] = k.split(' ') as [string, string];
      const n = v - (a.apfFlows.get(k) ?? 0);
      if (lv === level && n > 0) flowSchemas[fs] = n;
    }
    const mean = (x: number, n: number): number => (delta(n) > 0 ? delta(x) / delta(n) : 0);
    out.push({
      level,
      dispatched: delta(0),
      rejected: delta(1),
      meanWaitMs: mean(2, 0) * 1000,
      flowSchemas,
      meanSeats: mean(3, 4),
      meanExecMs: mean(5, 6) * 1000,
      nominalSeats: at(7),
      currentSeats: at(8),
    });
  }
  return out.sort((x, y) => y.dispatched - x.dispatched);
}

/** CPU seconds (user + system) a process used so far. */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
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
  // a default kube-apiserver (400 + 200 requests in flight, shared out by APF) unless told
  const apiserverArgs = o.apiserverArgs ?? [];
  const creator = o.creator ?? 'admin';
  const kube = await startKube({ apiserverArgs, ...(creator === 'kubeadm' ? { users: [{ name: 'kubeadm-admin', groups: ['kubeadm:cluster-admins'] }] } : {}) });
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

    // the operator, as `vio4wd operator` runs it, with its metrics (the work queue's waits); as
    // the chart runs it, under its own ServiceAccount and RBAC: its requests share APF's
    // workload-low level with the agents' (an admin's would be exempt from APF)
    let opKubeconfig = kube.kubeconfigPath;
    if (o.operatorServiceAccount !== false) {
      const opRbac = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', SYS, '--show-only', 'templates/operator-rbac.yaml');
      await kube.kubectlRun(['apply', '-f', '-'], { input: opRbac });
      opKubeconfig = kube.kubeconfigForToken('operator', await kube.serviceAccountToken(SYS, 'vio4wd-operator', { durationSeconds: 7200 }));
    }
    if (o.flowSchema !== false) {
      // the chart's APF FlowSchema and priority level (templates/flowcontrol.yaml); in a cluster
      // every agent runs as the chart's one agent ServiceAccount, here each node has its own:
      // they take the agent's place among the FlowSchema's subjects
      const sets = (o.flowControlSet ?? []).flatMap((v) => ['--set', v]);
      const text = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', SYS, '--show-only', 'templates/flowcontrol.yaml', ...sets);
      const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: string; spec: { rules: { subjects: { serviceAccount?: { name: string } }[] }[] } });
      for (const fs of docs.filter((d) => d.kind === 'FlowSchema')) {
        const rule = fs.spec.rules[0]!;
        rule.subjects = [...rule.subjects.filter((x) => x.serviceAccount?.name !== 'vio4wd-agent'), ...nodes.map((n) => ({ kind: 'ServiceAccount', serviceAccount: { name: n, namespace: SYS } }))];
      }
      await kube.kubectlRun(['apply', '-f', '-'], { input: docs.map((d) => stringify(d)).join('---\n') });
    }
    const opMetrics = `127.0.0.1:${await freePort()}`;
    const operator = spawn(
      process.execPath,
      ['bin/vio4wd.js', 'operator', '--kubeconfig', opKubeconfig, '--namespace', SYS, '--identity', 'scale-op', '--log-level', 'error', '--metrics-address', opMetrics, ...(o.operatorConcurrency ? ['--concurrency', String(o.operatorConcurrency)] : [])],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
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

    // who creates the relays: the admin is in system:masters (APF-exempt); kubeadm >= 1.29 binds
    // its admin.conf user's group kubeadm:cluster-admins to cluster-admin instead, and a GitOps
    // controller is a ServiceAccount: both are subject to APF like the operator and the agents
    let creatorClients = admin;
    let creatorIdentity = 'admin (system:masters, APF-exempt)';
    if (creator === 'kubeadm') {
      await kube.kubectl('create', 'clusterrolebinding', 'kubeadm:cluster-admins', '--clusterrole=cluster-admin', '--group=kubeadm:cluster-admins');
      creatorClients = kubeClients(kube.users['kubeadm-admin']!.kubeconfigPath);
      creatorIdentity = 'kubeadm-admin (group kubeadm:cluster-admins, bound to cluster-admin)';
    } else if (creator === 'serviceaccount') {
      await kube.kubectl('create', 'namespace', 'gitops');
      await kube.kubectl('create', 'serviceaccount', 'bulk-apply', '-n', 'gitops');
      await kube.kubectl('create', 'clusterrolebinding', 'gitops-bulk-apply', '--clusterrole=cluster-admin', '--serviceaccount=gitops:bulk-apply');
      creatorClients = kubeClients(kube.kubeconfigForToken('bulk-apply', await kube.serviceAccountToken('gitops', 'bulk-apply', { durationSeconds: 7200 })));
      creatorIdentity = 'system:serviceaccount:gitops:bulk-apply (bound to cluster-admin)';
    }
    if (creator !== 'admin') {
      await until('the creator may create VirtioRelays', async () => {
        try {
          await creatorClients.custom.listNamespacedCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', plural: 'virtiorelays', namespace: NS });
          return true;
        } catch {
          return false;
        }
      }, { timeoutMs: 30_000, intervalMs: 200 });
    }

    // Ready transitions of every relay (and when its node was set), from one admin watch
    const scheduledAt = new Map<string, number>();
    const nodeOf = new Map<string, string>();
    const relays = await RelayWatch.start(admin, NS, (obj, at) => {
      if (!obj.spec?.nodeName) return;
      nodeOf.set(obj.metadata.name, obj.spec.nodeName);
      if (!scheduledAt.has(obj.metadata.name)) scheduledAt.set(obj.metadata.name, at);
    }, creatorClients);
    aborts.push(() => relays.stop());
    const { readyAt, sentAt, createdAt } = relays;
    const waitReady = (names: string[], what: string): Promise<void> => relays.untilReady(names, { timeoutMs, what, listEveryMs: 10_000 });
    const body = (name: string) => ({
      apiVersion: 'vio4wd.io/v1alpha1',
      kind: 'VirtioRelay',
      metadata: { name, namespace: NS },
      spec: { vf: { devargs: `net_null_${name.replace(/-/g, '_')}` }, queues: 1, reschedule: 'OnNodeLoss' },
    });
    const cpu = (): Record<string, number> => ({
      'kube-apiserver': cpuOf(kube.apiserverPid()),
      etcd: cpuOf(kube.etcdPid),
      operator: cpuOf(operator.pid),
      [`agents (${groups.length} processes)`]: groups.reduce((a, g) => a + cpuOf(g.child.pid), 0),
      'load generator (this process)': (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    });

    // 1) burst
    const burstNames = Array.from({ length: total }, (_, i) => `b${i}`);
    const m0 = await apiserverTotals(kube);
    const op0 = await operatorQueue(opMetrics);
    const c0 = cpu();
    const t0 = performance.now();
    const createdMs = await relays.createAll(burstNames.map(body), o.inFlight ?? 64);
    await waitReady(burstNames, 'burst');
    const allReadyMs = Math.max(...burstNames.map((n) => readyAt.get(n)!)) - t0;
    const c1 = cpu();
    const m1 = await apiserverTotals(kube);
    const op1 = await operatorQueue(opMetrics);
    const burstRequests = diff(m0.req, m1.req, allReadyMs / 1000);
    const since = (at: Map<string, number>) => burstNames.map((n) => (at.get(n) ?? NaN) - sentAt.get(n)!);
    const applyToReadyMs = since(readyAt);
    const breakdown: BurstBreakdown = {
      stages: { created: since(createdAt), scheduled: since(scheduledAt), ready: applyToReadyMs },
      writesPerRelay: burstRequests.writes / total,
      latencyMs: meanLatency(m0, m1),
      apf: apfDiff(m0, m1),
      cpuSeconds: Object.fromEntries(Object.keys(c1).map((k) => [k, c1[k]! - c0[k]!])),
      operatorQueue: {
        adds: op1.adds - op0.adds,
        meanWaitMs: op1.adds > op0.adds ? ((op1.waitS - op0.waitS) / (op1.waitN - op0.waitN)) * 1000 : 0,
        meanWorkMs: op1.workN > op0.workN ? ((op1.workS - op0.workS) / (op1.workN - op0.workN)) * 1000 : 0,
      },
    };
    const operatorRss = rssOf(operator.pid!);
    log(`burst: ${total} relays Ready ${(allReadyMs / 1000).toFixed(1)} s after the first create; p50 ${pct(applyToReadyMs, 50).toFixed(0)} ms, p99 ${pct(applyToReadyMs, 99).toFixed(0)} ms`);

    // 2) a steady stream
    const rate = o.streamPerSecond ?? 10;
    const streamNames = Array.from({ length: o.stream ?? rate * 30 }, (_, i) => `s${i}`);
    const s0 = performance.now();
    await Promise.all(
      streamNames.map(async (n, i) => {
        await sleep(Math.max(0, s0 + (i * 1000) / rate - performance.now()));
        await relays.create(body(n));
      }),
    );
    await waitReady(streamNames, 'stream');
    const m2 = await apiserverTotals(kube);
    const streamRequests = diff(m1.req, m2.req, (performance.now() - s0) / 1000);
    const streamLat = streamNames.map((n) => readyAt.get(n)! - sentAt.get(n)!);
    log(`stream: ${streamNames.length} relays at ${rate}/s; p50 ${pct(streamLat, 50).toFixed(0)} ms, p99 ${pct(streamLat, 99).toFixed(0)} ms`);

    // 3) quiet: nothing changes (after the stream's last VirtioForwarderNode counts, which an
    // agent writes at most every 5 s, have landed)
    await sleep(6000);
    const quietS = o.quietSeconds ?? 60;
    const q0 = await apiserverTotals(kube);
    await sleep(quietS * 1000);
    const q1 = await apiserverTotals(kube);
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
    await relays.list();
    const lost = nodes[0]!;
    const onLost = [...nodeOf].filter(([, n]) => n === lost).map(([name]) => name);
    const g = groupOf.get(lost)!;
    const stopped = g.next(new RegExp(`^stopped ${lost}$`), 60_000);
    g.send(`stop ${lost}`);
    await stopped;
    const l0 = performance.now();
    await admin.core.deleteNode({ name: lost });
    let movedMs = NaN;
    await until(
      `the ${onLost.length} relays of ${lost} moved to other nodes and Ready`,
      async () => {
        const items = await relays.list();
        const mine = items.filter((r) => onLost.includes(r.metadata.name));
        if (Number.isNaN(movedMs) && mine.every((r) => r.spec?.nodeName && r.spec.nodeName !== lost)) movedMs = performance.now() - l0;
        return mine.every((r) => r.status?.phase === 'Ready' && r.spec?.nodeName !== lost);
      },
      { timeoutMs, intervalMs: 250 },
    );
    const lostReadyMs = performance.now() - l0;
    log(`node lost: ${onLost.length} relays of ${lost} on other nodes in ${movedMs.toFixed(0)} ms, Ready in ${lostReadyMs.toFixed(0)} ms`);
    const m3 = await apiserverTotals(kube);
    const watchEvents: Record<string, number> = {};
    for (const [k, v] of m3.watch) if (/virtiorelays|leases|virtioforwardernodes|events/.test(k)) watchEvents[k] = v;

    return {
      nodes: o.nodes,
      relays: total,
      apiserverArgs,
      operatorIdentity: o.operatorServiceAccount !== false ? `system:serviceaccount:${SYS}:vio4wd-operator` : 'admin (system:masters)',
      creatorIdentity,
      creates429: relays.throttled,
      flowSchema: o.flowSchema !== false,
      burst: { applyToReadyMs, allReadyMs, createdMs, requests: burstRequests, scheduledPerSecond: total / (allReadyMs / 1000), breakdown },
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

/** The operator's relay queue, from its /metrics: keys queued, and wait and work time totals. */
async function operatorQueue(address: string): Promise<{ adds: number; waitS: number; waitN: number; workS: number; workN: number }> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const v = (name: string): number => {
    const m = new RegExp(`^${name}\\{name="relays"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return {
    adds: v('vio4wd_workqueue_adds_total'),
    waitS: v('vio4wd_workqueue_queue_duration_seconds_sum'),
    waitN: v('vio4wd_workqueue_queue_duration_seconds_count'),
    workS: v('vio4wd_workqueue_work_duration_seconds_sum'),
    workN: v('vio4wd_workqueue_work_duration_seconds_count'),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
