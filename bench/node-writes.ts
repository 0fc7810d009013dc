// Apiserver cost of one node at rest: the writes (and reads) its agent makes over a window, read
// from the kube-apiserver's own /metrics (apiserver_request_total by verb, resource and
// subresource), and the watch events (count and bytes) a watcher of VirtioForwarderNodes and
// Leases receives meanwhile (what the operator, or any controller, gets). Each tree given runs on
// its own real kube-apiserver + etcd, all at once; the agent is the tree's node reconciler
// (bench/node-writes-agent.ts) with that tree's default intervals. Figures go into bench/RESULTS.md.
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

/** A watcher of one resource: counts the events and their JSON bytes. */
async function tallyWatch(kube: KubeEnv, path: string, tally: WatchTally): Promise<{ abort: () => void }> {
  const w = new Watch(kubeClients(kube.kubeconfigPath).kc);
  const ctl = await w.watch(
    path,
    {},
    (_type: string, obj: unknown) => {
      tally.events++;
      tally.bytes += JSON.stringify(obj).length;
    },
    () => undefined,
  );
  return { abort: () => ctl.abort() };
}

interface Run {
  name: string;
  tree: string;
  kube: KubeEnv;
  agent: ChildProcess;
  tmp: { path: string; remove: () => void };
  watches: { vfn: WatchTally; lease: WatchTally; stop: (() => void)[] };
  before?: Map<string, number>;
  after?: Map<string, number>;
  vfnSize?: number;
  leaseSize?: number;
}

async function startRun(spec: string): Promise<Run> {
  const [name, dir] = spec.includes('=') ? (spec.split('=', 2) as [string, string]) : [spec, spec];
  const tree = resolve(dir);
  const kube = await startKube();
  const tmp = testTempDir(`nodewrites-${name}`);
  await kube.kubectl('apply', '-f', join(tree, 'crds/'));
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtioforwardernodes.vio4wd.io');
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } }) });
  const sockets = join(tmp.path, 'sockets');
  mkdirSync(sockets);
  const agent = spawn(process.execPath, ['--import', 'tsx', 'bench/node-writes-agent.ts', '--tree', tree, '--kubeconfig', kube.kubeconfigPath, '--node', NODE, '--socket-dir', sockets], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok, fail) => {
    agent.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && ok());
    agent.once('exit', (c) => fail(new Error(`${name}: the agent exited (${c})`)));
  });
  const vfn: WatchTally = { events: 0, bytes: 0 };
  const lease: WatchTally = { events: 0, bytes: 0 };
  return { name, tree, kube, agent, tmp, watches: { vfn, lease, stop: [] } };
}

async function stopRun(r: Run): Promise<void> {
  for (const s of r.watches.stop) s();
  if (r.agent.exitCode === null) {
    r.agent.kill('SIGTERM');
    await new Promise((done) => r.agent.once('exit', done));
  }
  await r.kube.stop();
  r.tmp.remove();
}

const runs: Run[] = [];
try {
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
    r.watches.vfn.events = r.watches.vfn.bytes = 0;
    r.watches.lease.events = r.watches.lease.bytes = 0;
    r.before = await requestCounts(r.kube);
  }
  const started = Date.now();
  process.stderr.write(`measuring ${windowS} s at rest...\n`);
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const elapsed = (Date.now() - started) / 1000;
  for (const r of runs) {
    r.after = await requestCounts(r.kube);
    r.vfnSize = (await r.kube.kubectl('get', 'virtioforwardernodes', NODE, '-o', 'json')).length;
    const l = await r.kube.kubectlRun(['get', 'lease', '-n', 'default', NODE, '-o', 'json'], { check: false });
    r.leaseSize = l.code === 0 ? l.stdout.length : 0;
  }

  const rows: Record<string, unknown>[] = [];
  console.log(`one node at rest, ${elapsed.toFixed(0)} s window (after ${values.warmup} s warm-up); apiserver_request_total deltas, watch events a watcher received`);
  console.log('');
  const header = ['tree', 'writes', 'writes/10 s', 'ratio', 'write requests (verb resource)', 'reads', 'vfn watch events (bytes)', 'lease watch events (bytes)', 'vfn obj B', 'lease obj B'];
  console.log(header.join(' | '));
  let base: number | undefined;
  for (const r of runs) {
    const delta = new Map<string, number>();
    for (const [k, v] of r.after!) {
      const d = v - (r.before!.get(k) ?? 0);
      if (d) delta.set(k, d);
    }
    const writes = [...delta].filter(([k]) => WRITE_VERBS.has(k.split(' ')[0]!));
    const reads = [...delta].filter(([k]) => !WRITE_VERBS.has(k.split(' ')[0]!));
    const nWrites = writes.reduce((a, [, v]) => a + v, 0);
    const nReads = reads.reduce((a, [, v]) => a + v, 0);
    base ??= nWrites;
    const per10 = (nWrites / elapsed) * 10;
    rows.push({ tree: r.name, path: r.tree, elapsedS: elapsed, writes: Object.fromEntries(writes), reads: Object.fromEntries(reads), watch: { virtioforwardernodes: r.watches.vfn, leases: r.watches.lease }, objectBytes: { virtioforwardernode: r.vfnSize, lease: r.leaseSize } });
    console.log(
      [
        r.name,
        nWrites,
        per10.toFixed(2),
        base ? (nWrites / base).toFixed(2) : '-',
        writes.map(([k, v]) => `${v} ${k}`).join(', ') || 'none',
        nReads,
        `${r.watches.vfn.events} (${r.watches.vfn.bytes})`,
        `${r.watches.lease.events} (${r.watches.lease.bytes})`,
        r.vfnSize,
        r.leaseSize,
      ].join(' | '),
    );
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), windowS: elapsed, warmupS: Number(values.warmup), node: NODE, runs: rows }, null, 2) + '\n');
} finally {
  for (const r of runs) await stopRun(r).catch((e: unknown) => process.stderr.write(`cleanup of ${r.name}: ${String(e)}\n`));
}
