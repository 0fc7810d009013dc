// The soak loop shared by the short soak in test/e2e/stack.test.ts and `npm run soak`
// (test/e2e/soak.ts): VirtioRelays are created, scheduled, attached, advertised, allocated and
// deleted in a loop while the guest pings through an untouched relay. Afterwards: no ping lost,
// the agent's memory flat, and nothing left behind (sockets, device-info files, interfaces,
// file descriptors, devices in kubelet).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import type { Guest } from '../helpers/guest.js';
import { E2eEnv, GuestPing, NAMESPACE, sleep, until, type Reply } from '../helpers/e2e.js';
import { procMemory } from '../helpers/proc-memory.js';
import { AGENT_ENV } from '../helpers/agent.js';

export interface SoakOptions {
  durationMs: number;
  /** the peer the guest pings through the untouched relay */
  peer: string;
  /** ping interval, seconds */
  intervalS?: number;
  report: (msg: string) => void;
  /** RSS growth allowed from the warm-up to the end (default RSS_GROWTH_LIMIT_KB) */
  rssGrowthLimitKb?: number;
}

export interface MemorySample {
  atMs: number;
  rssKb: number;
  /** the RSS's anonymous and file-backed parts (/proc/<pid>/status) */
  anonKb: number;
  fileKb: number;
  /** V8's committed heap (all spaces) and its young generation as the agent ran (with the RSS) */
  v8Bytes: number;
  youngBytes: number;
  /** after a full GC: the JS heap used (what the agent retains) */
  heapUsedBytes: number;
  /** after the same GC: malloc's heap in use and taken from the system (mallinfo2), its arenas */
  cInUseBytes: number;
  cSystemBytes: number;
  arenas: number;
  iterations: number;
}

export interface SoakResult {
  iterations: number;
  relaysCycled: number;
  ping: { sent: number; received: number; lost: number; missing: number[] };
  samples: MemorySample[];
  /** agent RSS (median) and JS heap (minimum) in a window after the warm-up and in the last window */
  rssWarmKb: number;
  rssEndKb: number;
  heapWarmBytes: number;
  heapEndBytes: number;
  fds: { before: number; after: number };
  cycleMs: { median: number; max: number };
  leftovers: string[];
  assertHealthy(): void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

function missing(replies: Reply[]): number[] {
  const seqs = new Set(replies.map((r) => r.seq));
  if (seqs.size === 0) return [];
  const out: number[] = [];
  for (let s = Math.min(...seqs); s <= Math.max(...seqs); s++) if (!seqs.has(s)) out.push(s);
  return out;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Growth allowed between the warmed-up agent and the end of the short soak in the suite, a bound
 * it holds on a loaded machine. Issue #20 found the RSS growing with the heap flat: every
 * Kubernetes API call got a new TLS connection and OpenSSL context, and what relays' set-up freed
 * stayed in malloc's arenas, one per thread (16 on 2 cores). With keep-alive connections, the
 * arenas trimmed after removals and capped at 2 (MALLOC_ARENA_MAX, AGENT_ENV) the churn leaves
 * the RSS flat after a few hundred relays, but an arena can still take a one-time step of 3-5 MiB
 * (bench/churn-memory.ts), which a 60 s soak may catch between its windows. `npm run soak` (10
 * minutes) asserts the issue's target instead: SOAK_TARGET_KB (bench/RESULTS.md K).
 */
export const RSS_GROWTH_LIMIT_KB = 8 * 1024;
/** Issue #20's target for the 10-minute soak: RSS growth after the warm-up at most 2 MiB. */
export const SOAK_TARGET_KB = 2 * 1024;
// The heap figure is heapUsed right after a full GC forced through the inspector (what the agent
// retains), the lowest in each window.
export const HEAP_GROWTH_LIMIT_BYTES = 4 * 1024 * 1024;

export async function runSoak(e: E2eEnv, g: Guest, o: SoakOptions): Promise<SoakResult> {
  const rssLimitKb = o.rssGrowthLimitKb ?? RSS_GROWTH_LIMIT_KB;
  const ping = new GuestPing(g, 'SOAK');
  const baseline = {
    sockets: e.socketTree(),
    devinfo: readdirSync(e.dirs.devinfo).sort(),
    links: (await e.ns.ip('-o', 'link', 'show')).split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().split('@')[0]!).sort(),
    devices: [...e.devices().keys()].sort(),
    relays: (await e.listRelays()).map((r) => r.metadata.name!).sort(),
  };
  const samples: MemorySample[] = [];
  const start = Date.now();
  let iterations = 0;
  let relaysCycled = 0;
  const cycles: number[] = [];
  const sample = async (): Promise<void> => {
    // the RSS as the agent runs, then the heap after a full GC: what the agent retains, not
    // where the GC's sawtooth happens to be
    const p = procMemory(e.agent.pid);
    const m = await e.agent.memoryAfterGc();
    const c = m.nativeHeap;
    samples.push({
      atMs: Date.now() - start,
      rssKb: p.rssKb,
      anonKb: p.anonKb,
      fileKb: p.fileKb,
      v8Bytes: Object.values(m.beforeGc?.spaces ?? {}).reduce((t, x) => t + x.size, 0),
      youngBytes: (m.beforeGc?.spaces.new_space?.size ?? NaN) + (m.beforeGc?.spaces.new_large_object_space?.size ?? 0),
      heapUsedBytes: m.heapUsedBytes,
      cInUseBytes: c?.inUseBytes ?? NaN,
      cSystemBytes: c ? c.arenaBytes + c.mmapBytes : NaN,
      arenas: c?.arenas ?? NaN,
      iterations,
    });
  };
  await ping.start(o.peer, o.intervalS ?? 0.2);
  await ping.more(3);
  await sample();
  // after the first sample: it opened the agent's inspector (its thread, loop and socket)
  const fdsBefore = fdCount(e.agent.pid);
  let lastSample = Date.now();
  const sampleEvery = Math.max(2000, Math.min(10_000, o.durationMs / 30));

  while (Date.now() - start < o.durationMs) {
    const i = iterations;
    const c0 = Date.now();
    // two relays per round: a client-mode one (default) and a server-mode one, on tap VF stand-ins
    const names = [`soak-${i}-a`, `soak-${i}-b`];
    await e.createRelay(names[0]!, { vf: { devargs: `net_tap_sa${i},iface=sa${i}` } });
    await e.createRelay(names[1]!, { vf: { devargs: `net_tap_sb${i},iface=sb${i}` }, vhostUser: { mode: 'server' } });
    for (const n of names) await e.waitReady(n, 60_000);
    const ids = names.map((n) => `${NAMESPACE}.${n}`);
    await e.waitDevices(`${ids.join(', ')} Healthy`, (d) => ids.every((id) => d.get(id) === 'Healthy'), 30_000);
    const pod = await e.allocate(ids);
    assert.equal(pod.mounts.length, 2);
    for (const n of names) await e.deleteRelay(n);
    await e.waitDevices(`${ids.join(', ')} gone`, (d) => ids.every((id) => !d.has(id)), 30_000);
    for (const id of ids) assert.equal(existsSync(e.deviceInfoPath(id)), false, `device-info of ${id} removed with its relay`);
    iterations++;
    relaysCycled += names.length;
    cycles.push(Date.now() - c0);
    if (Date.now() - lastSample >= sampleEvery) {
      await sample();
      lastSample = Date.now();
    }
  }
  await sample();
  await ping.more(3);
  const s = await ping.stop();
  const fdsAfter = fdCount(e.agent.pid);

  // leftovers: compare with the baseline (the agent settles quickly; give it a moment)
  await sleep(500);
  const leftovers: string[] = [];
  const diff = (what: string, a: string[], b: string[]): void => {
    const extra = b.filter((x) => !a.includes(x));
    const gone = a.filter((x) => !b.includes(x));
    if (extra.length || gone.length) leftovers.push(`${what}: +[${extra.join(', ')}] -[${gone.join(', ')}]`);
  };
  await until('the soak relays are gone everywhere', async () => {
    const l = (await e.ns.ip('-o', 'link', 'show')).split('\n').filter(Boolean).map((x) => x.split(':')[1]!.trim().split('@')[0]!).sort();
    return l.length === baseline.links.length;
  }, 15_000, 200).catch(() => undefined);
  diff('socket dir', baseline.sockets, e.socketTree());
  diff('device-info dir', baseline.devinfo, readdirSync(e.dirs.devinfo).sort());
  diff('netns links', baseline.links, (await e.ns.ip('-o', 'link', 'show')).split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().split('@')[0]!).sort());
  diff('kubelet devices', baseline.devices, [...e.devices().keys()].sort());
  diff('VirtioRelays', baseline.relays, (await e.listRelays()).map((r) => r.metadata.name!).sort());

  // The agent's memory settles during the first minute (allocator arenas, code paths run for
  // the first time): compare a window after the warm-up with the last window of the run. RSS:
  // medians; JS heap: minima (the heap is a GC sawtooth, its troughs are what stays).
  const warmupMs = o.durationMs >= 60_000 ? Math.min(120_000, Math.max(30_000, o.durationMs * 0.2)) : o.durationMs * 0.5;
  const windowMs = Math.max(10_000, o.durationMs * 0.1);
  const pick = (from: number, to: number): MemorySample[] => samples.filter((x) => x.atMs >= from && x.atMs <= to);
  const warmSet = pick(warmupMs, warmupMs + windowMs).length ? pick(warmupMs, warmupMs + windowMs) : samples.slice(1, 3);
  const lastAt = samples.at(-1)!.atMs;
  const end = pick(Math.max(lastAt - windowMs, warmupMs + windowMs), lastAt).length ? pick(Math.max(lastAt - windowMs, warmupMs + windowMs), lastAt) : samples.slice(-2);
  const result: SoakResult = {
    iterations,
    relaysCycled,
    ping: { ...s, missing: missing(ping.replies()) },
    samples,
    rssWarmKb: median(warmSet.map((x) => x.rssKb)),
    rssEndKb: median(end.map((x) => x.rssKb)),
    heapWarmBytes: Math.min(...warmSet.map((x) => x.heapUsedBytes)),
    heapEndBytes: Math.min(...end.map((x) => x.heapUsedBytes)),
    fds: { before: fdsBefore, after: fdsAfter },
    cycleMs: { median: median(cycles), max: Math.max(...cycles) },
    leftovers,
    assertHealthy() {
      assert.ok(this.iterations > 0, 'the soak ran at least one round');
      assert.deepEqual(this.ping.missing, [], 'no ping lost on the untouched relay');
      // the ping in flight when it was stopped may count as lost
      assert.ok(this.ping.lost <= 1, `ping: ${this.ping.received}/${this.ping.sent}`);
      assert.deepEqual(this.leftovers, [], 'nothing left behind');
      assert.ok(this.rssEndKb - this.rssWarmKb <= rssLimitKb, `agent RSS grew ${this.rssEndKb - this.rssWarmKb} kB (limit ${rssLimitKb})`);
      assert.ok(this.heapEndBytes - this.heapWarmBytes < HEAP_GROWTH_LIMIT_BYTES, `agent heap grew ${this.heapEndBytes - this.heapWarmBytes} bytes (limit ${HEAP_GROWTH_LIMIT_BYTES})`);
      assert.ok(this.fds.after <= this.fds.before + 4, `agent file descriptors ${this.fds.before} -> ${this.fds.after}`);
      // the agent runs with the image's malloc settings (AGENT_ENV), which the RSS bound assumes
      const arenaMax = Number(AGENT_ENV.MALLOC_ARENA_MAX);
      assert.ok(this.samples.every((x) => x.arenas <= arenaMax), `malloc arenas ${this.samples.map((x) => x.arenas).join(', ')} (MALLOC_ARENA_MAX=${arenaMax})`);
    },
  };
  o.report(
    `soak ${Math.round((Date.now() - start) / 1000)} s: ${iterations} rounds, ${relaysCycled} relays created+deleted (round median ${result.cycleMs.median} ms, max ${result.cycleMs.max} ms); ` +
      `ping ${s.received}/${s.sent} (missing ${result.ping.missing.length}); ` +
      `agent RSS ${(result.rssWarmKb / 1024).toFixed(1)} MiB after a ${Math.round(warmupMs / 1000)} s warm-up -> ${(result.rssEndKb / 1024).toFixed(1)} MiB at the end ` +
      `(growth ${((result.rssEndKb - result.rssWarmKb) / 1024).toFixed(2)} MiB, limit ${rssLimitKb / 1024}), ` +
      `heap after GC ${(result.heapWarmBytes / 2 ** 20).toFixed(1)} -> ${(result.heapEndBytes / 2 ** 20).toFixed(1)} MiB; fds ${fdsBefore} -> ${fdsAfter}; leftovers: ${leftovers.length ? leftovers.join('; ') : 'none'}`,
  );
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  o.report(
    'soak memory samples (s: RSS = anon + file | V8 committed (young) | JS heap after a GC | C heap in use / from the system (arenas), MiB | rounds): ' +
      samples
        .map((x) => `${Math.round(x.atMs / 1000)}: ${mib(x.rssKb * 1024)} = ${mib(x.anonKb * 1024)} + ${mib(x.fileKb * 1024)} | ${mib(x.v8Bytes)} (${mib(x.youngBytes)}) | ${mib(x.heapUsedBytes)} | ${mib(x.cInUseBytes)} / ${mib(x.cSystemBytes)} (${x.arenas}) | ${x.iterations}`)
        .join(', '),
  );
  return result;
}
