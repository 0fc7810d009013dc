// Memory profile of the node agent under relay churn: VirtioRelays created, attached and
// deleted through the real apiserver, and every N rounds the agent's memory by owner: RSS (anon
// and file-backed), the JS heap right after a full GC (forced through the inspector) used and
// committed (the young generation apart: V8 grows it in steps), the C heap (glibc's mallinfo2
// over all arenas, and how many arenas), RSS again after malloc_trim, and the RSS of the
// mappings by owner (/proc/<pid>/smaps: malloc's [heap] and thread arenas at 64 MiB boundaries,
// file-backed code, the rest: V8's pages, stacks). With --snapshots, heap snapshots after the
// first and the last interval, diffed by constructor. Figures: bench/RESULTS.md K.
//
//   timeout 900 flock /tmp/vio4wd-it.lock node --import tsx bench/churn-memory.ts [--rounds 200] [--every 25] [--snapshots DIR] [--malloc-arena-max N|unset]
//
// Each round creates two relays (client and server mode, net_tap VF stand-ins), waits for both
// to be Ready, deletes them and waits until they are gone. The agent is the DaemonSet's
// (ZeroMQ control, metrics, device plugin to a test kubelet, CNI API) inside a netns.
import { parseArgs } from 'node:util';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanups, until } from '../test/helpers/e2e.js';
import { grownMappings } from '../test/helpers/proc-memory.js';
import { AGENT_ENV } from '../test/helpers/agent.js';
import { GROUP, VERSION } from '../src/kube/index.js';
import { BENCH_NS, benchRelay, sampleAgentMemory, startBenchAgent, type MemorySample } from './lib/agent-proc.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '200' }, every: { type: 'string', default: '25' }, snapshots: { type: 'string' }, 'malloc-arena-max': { type: 'string' } },
});
const ROUNDS = Number(values.rounds);
const EVERY = Number(values.every);

/** A heap snapshot's objects counted by type and constructor: [count, self bytes]. */
function snapshotCensus(path: string): Map<string, [number, number]> {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const f = snap.snapshot.meta.node_fields;
  const [iType, iName, iSize] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size')];
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const type = types[snap.nodes[i + iType]!]!;
    const key = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${snap.strings[snap.nodes[i + iName]!]!.slice(0, 60)}` : type;
    const e = out.get(key) ?? [0, 0];
    e[0]++;
    e[1] += snap.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}

const MiB = (b: number): string => (b / 2 ** 20).toFixed(1);
const kB = (k: number): string => (k / 1024).toFixed(1);

const cleanups = new Cleanups();
try {
  // the agent's MALLOC_ARENA_MAX: 2 as shipped (test/helpers/agent.ts AGENT_ENV); `unset`: glibc's own (8 per core)
  const arenaMax = values['malloc-arena-max'];
  const env = arenaMax ? { MALLOC_ARENA_MAX: arenaMax === 'unset' ? undefined : arenaMax } : {};
  const b = await startBenchAgent({ name: 'churnmem', env }, cleanups);
  const { api, agent } = b;
  const get = (name: string) => api.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: BENCH_NS, plural: 'virtiorelays', name }).catch(() => undefined) as Promise<{ status?: { phase?: string } } | undefined>;
  const addon = `Object.values(process.getBuiltinModule('module').createRequire('/').cache).find((m) => typeof m.exports?.trimNativeHeap === 'function').exports`;
  let prev: MemorySample | undefined;
  const snapshots: string[] = [];
  if (values.snapshots) mkdirSync(values.snapshots, { recursive: true });
  const sample = async (round: number, snapshot: boolean): Promise<void> => {
    const s = await sampleAgentMemory(agent, true);
    if (snapshot && values.snapshots) {
      const path = join(values.snapshots, `round-${round}.heapsnapshot`);
      await agent.evaluateAfterGc('1', path);
      snapshots.push(path);
    }
    await agent.evaluateAfterGc(`String(${addon}.trimNativeHeap())`);
    const trimmedKb = (await sampleAgentMemory(agent, false)).proc.rssKb;
    const g = s.gc!;
    const o = s.owners;
    const grew = prev ? grownMappings(prev.maps, s.maps) : [];
    prev = s;
    const row = [
      String(round).padStart(5),
      kB(s.proc.rssKb).padStart(6),
      kB(s.proc.anonKb).padStart(6),
      kB(s.proc.fileKb).padStart(5),
      kB(trimmedKb).padStart(7),
      `${MiB(g.heapUsedBytes)}/${MiB(g.heapTotalBytes)}`.padStart(10),
      `${MiB(Object.values(g.beforeGc?.spaces ?? {}).reduce((t, x) => t + x.size, 0))}(${MiB(g.beforeGc?.spaces.new_space?.size ?? NaN)})`.padStart(11),
      `${MiB(g.nativeHeap?.inUseBytes ?? NaN)}/${MiB(g.nativeHeap?.freeBytes ?? NaN)}`.padStart(10),
      String(g.nativeHeap?.arenas ?? '').padStart(6),
      `${kB(o.heapKb)}/${kB(o.arenasKb)}(${o.arenaHeaps})/${kB(o.fileKb)}/${kB(o.otherAnonKb)}`.padStart(26),
      `  ${grew.slice(0, 3).map((x) => `${x.owner.replace('Kb', '')}${x.name ? ` ${x.name}` : ''} +${x.kb}`).join('; ')}`,
    ].join(' ');
    process.stdout.write(row + '\n');
  };
  process.stdout.write(`churn-memory: ${ROUNDS} rounds of 2 relays, a sample every ${EVERY}, MALLOC_ARENA_MAX=${arenaMax ?? AGENT_ENV.MALLOC_ARENA_MAX}; MiB\n`);
  process.stdout.write(
    `round    RSS   anon  file trimmed  heap used/committed after GC  V8 before GC(young)  C heap use/free arenas  mappings: heap/arenas(n)/file/other  grown most since the last sample (kB)\n`,
  );
  await sample(0, false);
  for (let i = 0; i < ROUNDS; i++) {
    const names = [`c${i}-a`, `c${i}-b`];
    await api.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: BENCH_NS, plural: 'virtiorelays', body: benchRelay(names[0]!, { vf: { devargs: `net_tap_ca${i},iface=ca${i}` } }) });
    await api.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: BENCH_NS, plural: 'virtiorelays', body: benchRelay(names[1]!, { vf: { devargs: `net_tap_cb${i},iface=cb${i}` }, vhostUser: { mode: 'server' } }) });
    for (const n of names) await until(`${n} Ready`, async () => (await get(n))?.status?.phase === 'Ready', 60_000, 50);
    for (const n of names) await api.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: BENCH_NS, plural: 'virtiorelays', name: n });
    for (const n of names) await until(`${n} gone`, async () => (await get(n)) === undefined, 60_000, 50);
    if ((i + 1) % EVERY === 0) await sample(i + 1, i + 1 === EVERY || i + 1 === ROUNDS);
  }
  if (snapshots.length === 2) {
    const [a, z] = snapshots.map(snapshotCensus) as [Map<string, [number, number]>, Map<string, [number, number]>];
    const rows = [...new Set([...a.keys(), ...z.keys()])]
      .map((k) => ({ k, n: (z.get(k)?.[0] ?? 0) - (a.get(k)?.[0] ?? 0), bytes: (z.get(k)?.[1] ?? 0) - (a.get(k)?.[1] ?? 0) }))
      .sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes));
    const total = rows.reduce((t, r) => t + r.bytes, 0);
    process.stdout.write(`\nheap snapshots after round ${EVERY} and ${ROUNDS} (${(ROUNDS - EVERY) * 2} relays between): ${total >= 0 ? '+' : ''}${total} bytes; the largest changes\n`);
    for (const r of rows.slice(0, 20)) process.stdout.write(`  ${String(r.bytes).padStart(9)} B ${String(r.n).padStart(7)} objects  ${r.k}\n`);
  }
} finally {
  await cleanups.run();
}
