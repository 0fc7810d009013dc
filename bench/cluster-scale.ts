// A cluster of 100 nodes x 64 relays on one real kube-apiserver + etcd: per node its own
// ServiceAccount token and the agent's real Kubernetes code over the in-memory engine (25 nodes
// per process), the real operator, 6,400 VirtioRelays at once, then a steady stream, a quiet
// window and a lost node (test/helpers/cluster-scale.ts). Prints one table; figures go into
// bench/RESULTS.md (section N).
//
//   flock /tmp/vio4wd-it.lock node --import tsx bench/cluster-scale.ts [--nodes 100] [--relays 64] \
//     [--stream 300 --rate 10] [--quiet 60] [--in-flight 64] [--apiserver-arg=--FLAG=V]... [--operator-admin] \
//     [--creator admin|kubeadm|serviceaccount] [--no-flowschema] [--flowcontrol-set flowControl.K=V]... [--operator-concurrency 32] [--json bench/results/FILE.json]
//
// --creator: who creates the relays. admin (default) is in system:masters, exempt from API Priority
// and Fairness; kubeadm is a user in kubeadm:cluster-admins (kubeadm >= 1.29's admin.conf) and
// serviceaccount a GitOps controller's ServiceAccount: neither is exempt, as in most clusters.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { runClusterScale, type Creator, type Requests } from '../test/helpers/cluster-scale.js';
import { pct } from '../test/helpers/node-scale.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    relays: { type: 'string', default: '64' },
    'per-process': { type: 'string', default: '25' },
    stream: { type: 'string', default: '300' },
    rate: { type: 'string', default: '10' },
    quiet: { type: 'string', default: '60' },
    'in-flight': { type: 'string', default: '64' },
    // e.g. --apiserver-arg=--max-requests-inflight=1600 (a separate figure: the default is 400 + 200)
    'apiserver-arg': { type: 'string', multiple: true, default: [] },
    // the operator as the admin (exempt from APF) instead of the chart's ServiceAccount
    'operator-admin': { type: 'boolean', default: false },
    creator: { type: 'string', default: 'admin' },
    // without the chart's APF FlowSchema (the agents and the operator then in workload-low)
    'no-flowschema': { type: 'boolean', default: false },
    // chart values for it, e.g. --flowcontrol-set flowControl.lendablePercent=0
    'flowcontrol-set': { type: 'string', multiple: true, default: [] },
    // the operator's --concurrency (relays placed at once; default 32)
    'operator-concurrency': { type: 'string' },
    json: { type: 'string' },
  },
});
if (!['admin', 'kubeadm', 'serviceaccount'].includes(values.creator)) throw new Error(`--creator ${values.creator}: write admin, kubeadm or serviceaccount`);
const log = (l: string): void => void process.stderr.write(`[cluster-scale] ${l}\n`);
const r = await runClusterScale({
  nodes: Number(values.nodes),
  relaysPerNode: Number(values.relays),
  agentsPerProcess: Number(values['per-process']),
  stream: Number(values.stream),
  streamPerSecond: Number(values.rate),
  quietSeconds: Number(values.quiet),
  inFlight: Number(values['in-flight']),
  apiserverArgs: values['apiserver-arg'],
  operatorServiceAccount: !values['operator-admin'],
  creator: values.creator as Creator,
  flowSchema: !values['no-flowschema'],
  flowControlSet: values['flowcontrol-set'],
  ...(values['operator-concurrency'] ? { operatorConcurrency: Number(values['operator-concurrency']) } : {}),
  timeoutMs: 1_200_000,
  log,
});

const ms = (x: number): string => `${x.toFixed(0)} ms`;
const perSec = (q: Requests): string =>
  Object.entries(q.byKey)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => `${k} ${(v / q.seconds).toFixed(1)}/s`)
    .join(', ');
const b = r.burst.breakdown;
const stage = (xs: number[]): string => `median ${ms(pct(xs, 50))}, p99 ${ms(pct(xs, 99))}`;
const top = (rec: Record<string, number>, f: (v: number) => string, n = 6): string =>
  Object.entries(rec)
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${f(v)}`)
    .join(', ');
const aq = r.agents.map((a) => a.queue);
const foreign = r.agents.reduce((a, x) => a + x.foreign, 0);
const events = r.agents.map((a) => a.events);
const rows: [string, string][] = [
  ['cluster', `${r.nodes} nodes (own ServiceAccount token each), ${r.relays} VirtioRelays, real operator as ${r.operatorIdentity}`],
  ['relays created by', r.creatorIdentity],
  ['agents\' and operator\'s APF level', r.flowSchema ? `the chart's FlowSchema and priority level (vio4wd)${values['flowcontrol-set'].length ? ` with ${values['flowcontrol-set'].join(' ')}` : ''}` : 'none of the chart: service-accounts -> workload-low'],
  ['burst: created (64 in flight)', `${(r.burst.createdMs / 1000).toFixed(1)} s${r.creates429 ? ` (${r.creates429} creates rejected by APF with 429 and sent again)` : ''}`],
  ['burst: last Ready after the first create', `${(r.burst.allReadyMs / 1000).toFixed(1)} s (${r.burst.scheduledPerSecond.toFixed(0)} relays/s scheduled and Ready)`],
  ['burst: apply -> Ready', `median ${ms(pct(r.burst.applyToReadyMs, 50))}, p99 ${ms(pct(r.burst.applyToReadyMs, 99))}, max ${ms(Math.max(...r.burst.applyToReadyMs))}`],
  ['burst: apply -> created (POST answered)', stage(b.stages.created)],
  ['burst: apply -> spec.nodeName seen', stage(b.stages.scheduled)],
  ['burst: apiserver requests', `${r.burst.requests.writes} writes (${b.writesPerRelay.toFixed(2)} per relay), ${r.burst.requests.reads} reads in ${r.burst.requests.seconds.toFixed(1)} s: ${perSec(r.burst.requests)}`],
  ['burst: apiserver time per request (mean)', top(b.latencyMs, ms)],
  ['burst: APF (dispatched, rejected, mean queue wait)', b.apf.map((l) => `${l.level} ${l.dispatched}/${l.rejected}/${ms(l.meanWaitMs)}`).join(', ')],
  [
    'burst: APF seats (mean per request, exec; limit)',
    b.apf.map((l) => `${l.level} ${(l.meanSeats ?? 0).toFixed(1)} seats, ${ms(l.meanExecMs ?? 0)}; ${l.currentSeats ?? '?'} of nominal ${l.nominalSeats ?? '?'}`).join(', '),
  ],
  [
    'burst: APF flow schemas (requests)',
    b.apf.map((l) => `${l.level}: ${top(l.flowSchemas ?? {}, (v) => String(v), 4)}`).join('; '),
  ],
  ['burst: CPU seconds', top(b.cpuSeconds, (v) => `${v.toFixed(1)} s`)],
  ['burst: operator queue (relays)', `${b.operatorQueue.adds} keys queued, mean wait ${ms(b.operatorQueue.meanWaitMs)}, mean work ${ms(b.operatorQueue.meanWorkMs)}`],
  ['agents\' queues (whole run)', `mean wait median ${ms(pct(aq.map((q) => q.meanWaitMs), 50))}, longest wait max ${ms(Math.max(...aq.map((q) => q.maxWaitMs)))}, deepest ${Math.max(...aq.map((q) => q.maxDepth))} keys`],
  [`stream (${r.stream.rate}/s): apply -> Ready`, `median ${ms(pct(r.stream.applyToReadyMs, 50))}, p99 ${ms(pct(r.stream.applyToReadyMs, 99))} (${r.stream.applyToReadyMs.length} relays)`],
  ['stream: apiserver requests', perSec(r.stream.requests)],
  [`quiet ${r.quiet.seconds} s: apiserver writes`, `${r.quiet.writes} (${r.quiet.operatorLeaseWrites} of them the operator's leader Lease): ${r.quiet.writesPerNodePer10s.toFixed(2)} per node per 10 s (${perSec(r.quiet)})`],
  ['operator RSS after the burst', `${(r.operator.rssBytes / 2 ** 20).toFixed(0)} MiB`],
  ['agents: other nodes\' relays received', `${foreign} (informer caches of ${r.agents.length} agents)`],
  ['agents: watch events per agent', `median ${pct(events, 50)}, max ${Math.max(...events)} (adds + updates)`],
  ['node lost: relays moved / Ready elsewhere', `${r.nodeLost.relays} relays of ${r.nodeLost.node}: spec.nodeName moved in ${ms(r.nodeLost.movedMs)}, all Ready in ${ms(r.nodeLost.allReadyMs)}`],
  ['apiserver watch events sent (whole run)', Object.entries(r.watchEvents).map(([k, v]) => `${k} ${v}`).join(', ')],
];
const w = Math.max(...rows.map(([k]) => k.length));
process.stdout.write(`\nvio4wd cluster scale (one kube-apiserver 1.34 + etcd on this machine; apiserver flags: ${r.apiserverArgs.length ? r.apiserverArgs.join(' ') : 'defaults'})\n`);
for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
if (values.json) {
  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), args: values, result: r }, null, 1) + '\n');
}
