// Live-migration benchmark: the same QEMU guest migration with vio4wd and with dpdk-testpmd as
// the vhost-user backend, interleaved in one run. Each backend serves two "relays" A and B whose
// VF stand-ins (net_tap) sit on a Linux bridge with the peer 10.0.0.1, in a network namespace of
// its own. One guest per backend boots on A and pings the peer 4 times a second for the whole
// run; each round migrates each guest once to the other socket (A->B, then B->A, ...), the
// backends in alternating order. Per migration: QEMU's total time and downtime (query-migrate),
// the ping requests that got no reply, and the gap between the last reply on the old QEMU's
// console and the first on the new one. Medians per backend and the downtime ratio at the end.
//
//   node --import tsx bench/migration.ts [--rounds 5] [--out FILE]
//
// Needs scripts/bootstrap (DPDK, QEMU, the test guest) and `npm run build` (the agent runs from
// dist/). VIO4WD_ADDON selects another engine build.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Netns, testTempDir, type TrackedProcess } from '../test/helpers/netns.js';
import { AgentProcess } from '../test/helpers/agent.js';
import { Guest, type MigrationResult } from '../test/helpers/guest.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    out: { type: 'string' },
    'agent-log': { type: 'string' },
    'pin-agent-js': { type: 'string' },
    settle: { type: 'string', default: '3000' },
    'no-isolate': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const SETTLE_MS = Number(values.settle);
const ISOLATE = !values['no-isolate'];
const PEER = '10.0.0.1';

interface Backend {
  name: 'vio4wd' | 'testpmd';
  ns: Netns;
  sock: [string, string];
  guest?: Guest;
  /** index into sock of the socket the guest is on */
  at: number;
  /** QMP sockets and serial logs of its QEMUs */
  workDir: string;
  /** the backend's process (agent or testpmd), stopped with SIGSTOP while the other migrates */
  pid: number;
  stop(): Promise<void>;
}

interface Sample {
  backend: string;
  round: number;
  from: string;
  totalMs: number;
  downtimeMs: number;
  setupMs: number;
  lost: number;
  replyGapMs: number;
  /** from QEMU's trace: the source's vm stop (vCPUs and the vhost-user device: SET_STATUS,
   *  GET_VRING_BASE per vring), the part of the downtime the backend takes part in */
  vmStopMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stdout.write(`${s}\n`);

async function bridge(ns: Netns, taps: string[]): Promise<void> {
  await ns.addBridge('br0');
  await ns.addAddress('br0', `${PEER}/24`);
  for (const t of taps) {
    await ns.waitForLink(t);
    await ns.setMaster(t, 'br0');
  }
}

async function startVio4wd(dir: string): Promise<Backend> {
  const ns = await Netns.create('bmig-vio');
  const sock: [string, string] = [join(dir, 'vioA.sock'), join(dir, 'vioB.sock')];
  const agent = await AgentProcess.start({
    config: {
      log: { level: (process.env.BENCH_AGENT_LOG ?? 'info') },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: dir },
      control: { enabled: false },
      metrics: { enabled: false },
      relays: [
        { id: 1, name: 'relay-a', vf: { devargs: 'net_tap_ba,iface=vfa' }, vhostUser: { mode: 'server', socketPath: sock[0] } },
        { id: 2, name: 'relay-b', vf: { devargs: 'net_tap_bb,iface=vfb' }, vhostUser: { mode: 'server', socketPath: sock[1] } },
      ],
    },
    workDir: dir,
    netns: ns,
    waitReady: false,
  });
  // both sockets listening (not a log line: BENCH_AGENT_LOG=warn runs the agent quieter)
  const end = Date.now() + 60_000;
  while (!(existsSync(sock[0]) && existsSync(sock[1]))) {
    if (Date.now() > end) {
      await agent.stop();
      throw new Error(`the agent did not open its sockets:\n${agent.output.slice(-3000)}`);
    }
    await sleep(100);
  }
  await bridge(ns, ['vfa', 'vfb']);
  if (values['pin-agent-js'] !== undefined) {
    const { execFileSync } = await import('node:child_process');
    execFileSync('taskset', ['-p', '-c', values['pin-agent-js'], String(agent.pid)], { stdio: 'ignore' });
  }
  return {
    name: 'vio4wd', ns, sock, at: 0, workDir: dir, pid: agent.pid,
    async stop() {
      await agent.stop();
      if (values['agent-log']) writeFileSync(values['agent-log'], agent.output);
      await ns.destroy();
    },
  };
}

/** One dpdk-testpmd, io forwarding net_tap A <-> net_vhost A and net_tap B <-> net_vhost B (one
 *  polling lcore on CPU 1, like the engine's one worker). */
async function startTestpmd(dir: string): Promise<Backend> {
  const ns = await Netns.create('bmig-tpmd');
  const sock: [string, string] = [join(dir, 'tpA.sock'), join(dir, 'tpB.sock')];
  const args = [
    '--lcores', '0@1,1@1', '--in-memory', '--no-pci', '--file-prefix', `vio4wd-bmig-${process.pid}`, '--log-level', 'lib.eal:notice',
    '--vdev', 'net_tap0,iface=tpa', '--vdev', `net_vhost0,iface=${sock[0]},queues=1`,
    '--vdev', 'net_tap1,iface=tpb', '--vdev', `net_vhost1,iface=${sock[1]},queues=1`,
    '--', '--forward-mode=io', '--auto-start', '--nb-cores=1', '--port-topology=paired',
  ];
  const proc: TrackedProcess = ns.spawn('stdbuf', ['-oL', 'dpdk-testpmd', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const end = Date.now() + 60_000;
  while (!(out.includes('Press enter to exit') && existsSync(sock[0]) && existsSync(sock[1]))) {
    if (proc.child.exitCode !== null || Date.now() > end) {
      await proc.stop(1000);
      await ns.destroy();
      throw new Error(`dpdk-testpmd did not start:\n${out.slice(-3000)}`);
    }
    await sleep(100);
  }
  await bridge(ns, ['tpa', 'tpb']);
  return {
    name: 'testpmd', ns, sock, at: 0, workDir: dir, pid: proc.pid,
    async stop() {
      proc.child.stdin?.write('\n');
      await Promise.race([proc.exited, sleep(5000)]);
      await proc.stop(1000);
      await ns.destroy();
    },
  };
}

let portSeq = 0;

/** Migrates the backend's guest to its other socket; the old QEMU is stopped afterwards. */
async function migrateOnce(b: Backend, round: number): Promise<Sample> {
  const src = b.guest!;
  const to = 1 - b.at;
  const lastBefore = src.pings.at(-1)?.seq ?? -1;
  const dst = await Guest.startMigrationTarget(src, {
    port: 30000 + ((process.pid + ++portSeq) % 20000),
    socketPaths: [b.sock[to]!],
    name: `${b.name}-r${round}-${to ? 'b' : 'a'}`,
    workDir: b.workDir,
  });
  let result: MigrationResult;
  try {
    result = await src.migrateTo(dst, 120_000);
  } catch (e) {
    await dst.stop();
    throw e;
  }
  // two replies on the new QEMU: the first after the migration, and the next one to be sure
  // that the ping goes on
  await dst.waitForPings(2, 60_000);
  const lastOld = src.pings.at(-1);
  const firstNew = dst.pings[0]!;
  const lastSeqOld = lastOld?.seq ?? lastBefore;
  const lost = Math.max(0, firstNew.seq - lastSeqOld - 1);
  const vmStopMs = vmStopOf(src.stderr());
  const gap = dst.startedAt + firstNew.atMs - (src.startedAt + (lastOld?.atMs ?? 0));
  await src.stop();
  b.guest = dst;
  b.at = to;
  return {
    backend: b.name,
    round,
    from: b.at === 1 ? 'A->B' : 'B->A',
    totalMs: result.totalTimeMs,
    downtimeMs: result.downtimeMs,
    setupMs: result.setupTimeMs,
    lost,
    replyGapMs: gap,
    vmStopMs,
  };
}

/** QEMU trace (-msg timestamp=on): "PID@SEC.USEC:event ..." lines; the last vm stop for the
 *  migration (vm_state_notify running 0 reason 7 = finish-migrate) to migration_completion_vm_stop. */
function vmStopOf(stderr: string): number {
  let t0 = NaN;
  let t1 = NaN;
  for (const line of stderr.split('\n')) {
    const m = /^\d+@(\d+\.\d+):(\S+)(.*)$/.exec(line.trim());
    if (!m) continue;
    const t = Number(m[1]) * 1000;
    if (m[2] === 'vm_state_notify' && /running 0 reason 7/.test(m[3]!)) t0 = t;
    if (m[2] === 'migration_completion_vm_stop') t1 = t;
  }
  return Math.round((t1 - t0) * 100) / 100;
}

/** QEMU trace events for vmStopOf, printed with timestamps on stderr */
const QEMU_TRACE = ['-msg', 'timestamp=on', '-trace', 'vm_state_notify', '-trace', 'migration_completion_vm_stop'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const work = testTempDir('bench-migration');
  const dirs = { vio: join(work.path, 'vio'), tp: join(work.path, 'tp') };
  for (const d of Object.values(dirs)) mkdirSync(d);
  const backends: Backend[] = [];
  const samples: Sample[] = [];
  try {
    backends.push(await startVio4wd(dirs.vio));
    backends.push(await startTestpmd(dirs.tp));
    // one guest per backend, pinging for the whole run (4 per second)
    const count = 4 * (30 + ROUNDS * 2 * 20);
    for (const b of backends) {
      b.guest = await Guest.start({
        name: `bmig-${b.name}`, netns: b.ns, workDir: b.workDir,
        nics: [{ socketPath: b.sock[0], ip: '10.0.0.2/24' }],
        job: { kind: 'ping', peer: PEER, count, intervalS: 0.25 },
        extraArgs: QEMU_TRACE,
      });
    }
    for (const b of backends) await b.guest!.waitForPings(8, 120_000);
    say(`guests pinging on both backends; ${ROUNDS} rounds, backends alternate who goes first; ${ISOLATE ? 'the other backend frozen (SIGSTOP) during a migration' : 'both backends run throughout'}`);
    say('backend  round  direction  total_ms  downtime_ms  vm_stop_ms  setup_ms  lost_pings  reply_gap_ms');
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? backends : [...backends].reverse();
      for (const b of order) {
        // the other backend's poller would share CPU 1 with this one's: freeze it meanwhile
        const other = backends.find((x) => x !== b)!;
        if (ISOLATE) process.kill(other.pid, 'SIGSTOP');
        let s: Sample;
        try {
          s = await migrateOnce(b, round);
        } finally {
          if (ISOLATE) process.kill(other.pid, 'SIGCONT');
        }
        samples.push(s);
        say(
          `${s.backend.padEnd(8)} ${String(round).padStart(5)}  ${s.from.padEnd(9)}  ${String(s.totalMs).padStart(8)}  ` +
            `${String(s.downtimeMs).padStart(11)}  ${String(s.vmStopMs).padStart(10)}  ${String(s.setupMs).padStart(8)}  ${String(s.lost).padStart(10)}  ${String(s.replyGapMs).padStart(12)}`,
        );
        await sleep(SETTLE_MS);
      }
    }
    const summary: Record<string, unknown> = {};
    say('');
    say('median per backend:');
    for (const name of ['vio4wd', 'testpmd'] as const) {
      const s = samples.filter((x) => x.backend === name);
      const m = {
        migrations: s.length,
        totalMs: median(s.map((x) => x.totalMs)),
        downtimeMs: median(s.map((x) => x.downtimeMs)),
        lostPings: s.reduce((a, x) => a + x.lost, 0),
        replyGapMs: median(s.map((x) => x.replyGapMs)),
        vmStopMs: median(s.map((x) => x.vmStopMs)),
        downtimeRange: [Math.min(...s.map((x) => x.downtimeMs)), Math.max(...s.map((x) => x.downtimeMs))],
      };
      summary[name] = m;
      say(`${name.padEnd(8)} total ${m.totalMs} ms, downtime ${m.downtimeMs} ms (range ${m.downtimeRange.join('-')}), vm stop ${m.vmStopMs} ms, lost ${m.lostPings} pings in ${s.length} migrations, reply gap ${m.replyGapMs} ms`);
    }
    const v = summary.vio4wd as { downtimeMs: number; totalMs: number; vmStopMs: number };
    const t = summary.testpmd as { downtimeMs: number; totalMs: number; vmStopMs: number };
    const perRound = Array.from({ length: ROUNDS }, (_, i) => {
      const a = samples.find((x) => x.backend === 'vio4wd' && x.round === i + 1)!;
      const c = samples.find((x) => x.backend === 'testpmd' && x.round === i + 1)!;
      return a.downtimeMs / Math.max(1, c.downtimeMs);
    });
    summary.downtimeRatio = v.downtimeMs / Math.max(1, t.downtimeMs);
    summary.downtimeRatioPerRoundMedian = median(perRound);
    summary.totalTimeRatio = v.totalMs / Math.max(1, t.totalMs);
    summary.vmStopRatio = v.vmStopMs / t.vmStopMs;
    say(
      `downtime vio4wd/testpmd: ${(summary.downtimeRatio as number).toFixed(2)}x (medians), per-round ratios ${perRound.map((r) => r.toFixed(2)).join(' ')} ` +
        `(median ${(summary.downtimeRatioPerRoundMedian as number).toFixed(2)}x); total time ${(summary.totalTimeRatio as number).toFixed(2)}x; ` +
        `vm stop ${v.vmStopMs} vs ${t.vmStopMs} ms (${(summary.vmStopRatio as number).toFixed(2)}x)`,
    );
    if (values.out) writeFileSync(values.out, JSON.stringify({ rounds: ROUNDS, samples, summary, at: new Date().toISOString() }, null, 2));
  } finally {
    for (const b of backends) {
      await b.guest?.stop().catch(() => undefined);
      await b.stop().catch(() => undefined);
    }
    work.remove();
  }
}

await main();
