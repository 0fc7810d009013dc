// Apiserver cost of one node at rest: the writes (and reads) its agent makes over a window, read
// from the kube-apiserver's own /metrics (apiserver_request_total by verb, resource and
// subresource), and the watch events (count and bytes) a watcher of VirtioForwarderNodes and
// Leases receives meanwhile (what the operator, or any controller, gets). Each tree given runs on
// its own real kube-apiserver + etcd, all at once, beside one more apiserver with no agent at all:
// the apiserver renews Leases of its own (kube-system/apiserver-*, every 10 s), which the metrics
// count among "leases" too, so the agent's writes are a tree's minus that baseline's. The agent is
// the tree's node reconciler (bench/node-writes-agent.ts) with that tree's default intervals.
// Figures go into bench/RESULTS.md.
//
//   flock /tmp/vio4wd-it.lock node --import tsx bench/node-writes.ts \
//     [--tree before=/tmp/vio4wd-4f2b1ee] [--tree after=.] [--minutes 5] [--warmup 20] [--json FILE]
//
// A tree other than this one needs its node_modules (a symlink to this one's will do).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Watch } from '@kubernetes/client-node';
import { startKube, type KubeEnv } from '../test/helpers/kube.js';
import { testTempDir } from '../test/helpers/netns.js';
import { kubeClients } from '../src/kube/index.js';

const { values } = parseArgs({
  options: {
    tree: { type: 'string', multiple: true, default: ['after=.'] },
    minutes: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '20' },
    json: { type: 'string' },
  },
});
const NODE = 'bench-node';
const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);
const windowS = Number(values.minutes) * 60;

/** apiserver_request_total summed by verb/resource/subresource (only vio4wd's and lease resources). */
async function requestCounts(kube: KubeEnv): Promise<Map<string, number>> {
  const text = await kube.kubectl('get', '--raw', '/metrics');
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!['virtioforwardernodes', 'leases', 'virtiorelays', 'events', 'nodes', 'virtioforwarderpolicies'].includes(labels.resource ?? '')) continue;
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

interface WatchTally {
  events: number;
  bytes: number;
}
/** namespace/name -> the events a watcher got for that object */
type Tallies = Map<string, WatchTally>;

/** A watcher of one resource: counts the events of each object and their JSON bytes. */
async function tallyWatch(kube: KubeEnv, path: string, tallies: Tallies): Promise<{ abort: () => void }> {
  const w = new Watch(kubeClients(kube.kubeconfigPath).kc);
  const ctl = await w.watch(
    path,
    {},
    (_type: string, obj: { metadata?: { namespace?: string; name?: string } }) => {
      const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
      const t = tallies.get(key) ?? { events: 0, bytes: 0 };
      t.events++;
      t.bytes += JSON.stringify(obj).length;
      tallies.set(key, t);
    },
    () => undefined,
  );
  return { abort: () => ctl.abort() };
}

function sum(t: Tallies, keep: (key: string) => boolean = () => true): WatchTally {
  const out = { events: 0, bytes: 0 };
  for (const [k, v] of t) {
    if (!keep(k)) continue;
    out.events += v.events;
    out.bytes += v.bytes;
  }
  return out;
}

interface Run {
  name: string;
  tree: string;
  kube: KubeEnv;
  /** none for the baseline (the apiserver alone) */
  agent: ChildProcess | undefined;
  tmp: { path: string; remove: () => void };
  watches: { vfn: Tallies; lease: Tallies; stop: (() => void)[] };
  before?: Map<string, number>;
  after?: Map<string, number>;
  vfnSize?: number;
  leaseSize?: number;
}

async function startRun(spec: string | undefined): Promise<Run> {
  const [name, dir] = spec === undefined ? ['apiserver alone', '.'] : spec.includes('=') ? (spec.split('=', 2) as [string, string]) : [spec, spec];
  const tree = resolve(dir);
  const kube = await startKube();
  try {
    return await startAgent(name, tree, kube, spec === undefined);
  } catch (err) {
    await kube.stop();
    throw err;
  }
}

async function startAgent(name: string, tree: string, kube: KubeEnv, baseline: boolean): Promise<Run> {
  const tmp = testTempDir(`nodewrites-${name.toLowerCase().replace(/[^a-z0-9-]+/g, '-')}`.slice(0, 30));
  await kube.kubectl('apply', '-f', join(tree, 'crds/'));
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtioforwardernodes.vio4wd.io');
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } }) });
  const sockets = join(tmp.path, 'sockets');
  mkdirSync(sockets);
  const watches = { vfn: new Map(), lease: new Map(), stop: [] };
  if (baseline) return { name, tree, kube, agent: undefined, tmp, watches };
  const agent = spawn(process.execPath, ['--import', 'tsx', 'bench/node-writes-agent.ts', '--tree', tree, '--kubeconfig', kube.kubeconfigPath, '--node', NODE, '--socket-dir', sockets], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok, fail) => {
    agent.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && ok());
    agent.once('exit', (c) => fail(new Error(`${name}: the agent exited (${c})`)));
  });
  return { name, tree, kube, agent, tmp, watches };
}

async function stopRun(r: Run): Promise<void> {
  for (const s of r.watches.stop) s();
  const agent = r.agent;
  if (agent && agent.exitCode === null) {
    agent.kill('SIGTERM');
    await new Promise((done) => agent.once('exit', done));
  }
  await r.kube.stop();
  r.tmp.remove();
}

const runs: Run[] = [];
try {
  runs.push(await startRun(undefined));
  for (const t of values.tree) runs.push(await startRun(t));
  // past the agents' start (object created, first status, first Lease)
  await new Promise((r) => setTimeout(r, Number(values.warmup) * 1000));
  for (const r of runs) {
    r.watches.stop.push((await tallyWatch(r.kube, '/apis/vio4wd.io/v1alpha1/virtioforwardernodes', r.watches.vfn)).abort);
    r.watches.stop.push((await tallyWatch(r.kube, '/apis/coordination.k8s.io/v1/leases', r.watches.lease)).abort);
  }
  // a new watch first sends an ADDED per existing object: not traffic of the window
  await new Promise((r) => setTimeout(r, 1000));
  for (const r of runs) {
    r.watches.vfn.clear();
    r.watches.lease.clear();
    r.before = await requestCounts(r.kube);
  }
  const started = Date.now();
  process.stderr.write(`measuring ${windowS} s at rest...\n`);
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const elapsed = (Date.now() - started) / 1000;
  for (const r of runs) {
    r.after = await requestCounts(r.kube);
    if (!r.agent) continue;
    r.vfnSize = (await r.kube.kubectl('get', 'virtioforwardernodes', NODE, '-o', 'json')).length;
    const l = await r.kube.kubectlRun(['get', 'lease', '-n', 'default', NODE, '-o', 'json'], { check: false });
    r.leaseSize = l.code === 0 ? l.stdout.length : 0;
  }

  const rows: Record<string, unknown>[] = [];
  const deltas = (r: Run): Map<string, number> => {
    const delta = new Map<string, number>();
    for (const [k, v] of r.after!) {
      const d = v - (r.before!.get(k) ?? 0);
      if (d) delta.set(k, d);
    }
    return delta;
  };
  const writesOf = (d: Map<string, number>) => [...d].filter(([k]) => WRITE_VERBS.has(k.split(' ')[0]!));
  const total = (xs: [string, number][]) => xs.reduce((a, [, v]) => a + v, 0);
  const baseline = total(writesOf(deltas(runs[0]!)));
  console.log(`one node at rest, ${elapsed.toFixed(0)} s window (after ${values.warmup} s warm-up); apiserver_request_total deltas; watch events a watcher of all VirtioForwarderNodes and all Leases received`);
  console.log('');
  const header = ['run', 'writes (all)', 'agent writes', 'agent writes / 10 s', 'write requests (verb resource)', 'reads', 'its VirtioForwarderNode: watch events (bytes)', 'its Lease: watch events (bytes)', 'other Leases: events', 'object bytes (vfn / Lease)'];
  console.log(header.join(' | '));
  for (const r of runs) {
    const d = deltas(r);
    const writes = writesOf(d);
    const reads = [...d].filter(([k]) => !WRITE_VERBS.has(k.split(' ')[0]!));
    const all = total(writes);
    const agentWrites = all - baseline;
    const own = `/${NODE}`;
    const vfn = sum(r.watches.vfn, (k) => k.endsWith(own));
    const lease = sum(r.watches.lease, (k) => k === `default${own}`);
    const otherLeases = sum(r.watches.lease, (k) => k !== `default${own}`);
    rows.push({
      run: r.name,
      path: r.agent ? r.tree : null,
      elapsedS: elapsed,
      writes: Object.fromEntries(writes),
      reads: Object.fromEntries(reads),
      agentWrites,
      watch: { virtioforwardernodes: Object.fromEntries(r.watches.vfn), leases: Object.fromEntries(r.watches.lease) },
      objectBytes: { virtioforwardernode: r.vfnSize, lease: r.leaseSize },
    });
    console.log(
      [
        r.name,
        all,
        r.agent ? agentWrites : '-',
        r.agent ? ((agentWrites / elapsed) * 10).toFixed(2) : '-',
        writes.map(([k, v]) => `${v} ${k}`).join(', ') || 'none',
        total(reads),
        `${vfn.events} (${vfn.bytes})`,
        `${lease.events} (${lease.bytes})`,
        otherLeases.events,
        `${r.vfnSize ?? '-'} / ${r.leaseSize || '-'}`,
      ].join(' | '),
    );
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), windowS: elapsed, warmupS: Number(values.warmup), node: NODE, runs: rows }, null, 2) + '\n');
} finally {
  for (const r of runs) await stopRun(r).catch((e: unknown) => process.stderr.write(`cleanup of ${r.name}: ${String(e)}\n`));
}
