// Upgrade-handover benchmark (docs/upgrade.md): a new agent started beside the running one takes
// its relays over, N times, under a QEMU guest pinged through two relays every 10 ms; then the
// same stand restarted N/2 times (SIGKILL, spawn again: relays from the config) as the reference.
//
//   timeout 1500 flock /tmp/vio4wd-it.lock node --import tsx bench/handover.ts [--handovers 10] [--restarts 4] [--idle 4] [--json FILE] [--trace DIR]
//
// --trace DIR keeps the evidence of each round: both agents' output (roundN-old.log, -new.log)
// and QEMU's vhost-user and chardev trace events with wall-clock times (qemu.trace): when QEMU
// saw the old connection close and took the new one.
//
// Every part is real: `vio4wd agent` (standalone: the data path and the handover are the
// DaemonSet's) on the real DPDK engine inside a test network namespace, hugepages, the same
// config file, metrics port and ZeroMQ endpoints for both agents. Relays:
//   client  client mode: QEMU is the vhost-user server (KubeVirt's vhostuser binding)
//   server  server mode: the relay listens, QEMU redials with reconnect=1 (whole seconds: QEMU 7.2)
//   idle1.. server mode on net_tap stand-ins, no guest: handed over like the others
// VF stand-ins of client and server: net_af_packet on a veth whose peer pings the guest.
// CPUs: the relay workers of both agents on CPU 1; QEMU, the agents' JS and EAL main lcores on 0.
//
// Per relay and handover (ms, from the agents' own logs, debug level):
//   release    the old agent's engine removes the relay (workers off it, VF closed, socket released)
//   attach     the new agent's engine adds it (VF probed and started, socket registered, polled)
//   step       the new agent's request to release -> the relay attached in the new agent
// and the engine's phases of each (its debug lines, ms since the command began): release:
// workers off it, socket unregistered, port (VF) detached; attach: port attached, port started,
// socket registered, polled.
// Per handover: gap = the longest time without a ping reply through the relay, from the new
// agent's spawn to 2 s after it runs (replies every 10 ms: a gap of ~10 ms is no gap).
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../test/helpers/netns.js';
import { AgentProcess, type LogLine } from '../test/helpers/agent.js';
import { STAND_NICS, prepareStand, standRelay, startStand, type Stand } from '../test/helpers/handover.js';
import { Cleanups, sleep, until } from '../test/helpers/e2e.js';

const { values } = parseArgs({ options: { handovers: { type: 'string', default: '10' }, restarts: { type: 'string', default: '4' }, idle: { type: 'string', default: '4' }, json: { type: 'string' }, trace: { type: 'string' } } });
const TRACE = values.trace;
if (TRACE) mkdirSync(TRACE, { recursive: true });
const HANDOVERS = Number(values.handovers);
const RESTARTS = Number(values.restarts);
const IDLE = Number(values.idle);

function pct(xs: number[], p: number): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

interface Round {
  kind: 'handover' | 'restart';
  /** spawn -> "vio4wd agent running" */
  runningMs: number;
  /** first "release" request -> "every relay taken over" */
  handoverMs: number;
  gap: Record<'client' | 'server', number>;
  relays: Record<string, { release?: number; attach?: number; step?: number; phases?: Record<string, number> }>;
  /** the client-mode relay's handover, ms after the old agent began to release it: the last
   *  reply before, attached in the new agent, the guest connected again, the first reply after;
   *  with --trace, QEMU's view of its NIC: the old connection closed, the new one taken */
  timeline?: { lastReply: number; attached: number; guestConnected: number; firstReply: number; qemuClosed?: number; qemuOpened?: number };
}

/** The engine's phase lines (native/src/relay.c, debug level), ms since the command began. */
const PHASES: [string, RegExp][] = [
  ['workersOff', /relay (\d+): workers off it after ([\d.]+) ms/],
  ['unregistered', /relay (\d+) removed: socket unregistered ([\d.]+)/],
  ['detached', /relay (\d+) removed: .*port detached ([\d.]+)/],
  ['portAttached', /relay (\d+) added: port attached ([\d.]+)/],
  ['portStarted', /relay (\d+) added: .*port started ([\d.]+)/],
  ['registered', /relay (\d+) added: .*socket registered ([\d.]+)/],
  ['polled', /relay (\d+) added: .*polled ([\d.]+)/],
];

/** QEMU trace (`-msg timestamp=on`): epoch ms of each `vhost_user_event` of a chardev. */
function qemuEvents(chardev: string): { at: number; event: number }[] {
  if (!TRACE || !existsSync(join(TRACE, 'qemu.trace'))) return [];
  const out: { at: number; event: number }[] = [];
  const re = new RegExp(`@(\\d+\\.\\d+):vhost_user_event chr: ${chardev} got event: (\\d+)`);
  for (const line of readFileSync(join(TRACE, 'qemu.trace'), 'utf8').split('\n')) {
    const m = re.exec(line);
    if (m) out.push({ at: Number(m[1]) * 1000, event: Number(m[2]) });
  }
  return out;
}

const cleanups = new Cleanups();
const rounds: Round[] = [];
try {
  const tmp = testTempDir('handoverbench');
  cleanups.add('temp dir', () => tmp.remove());
  const sockDir = join(tmp.path, 'sock');
  mkdirSync(sockDir, { recursive: true });
  const ns = await Netns.create('hobench');
  cleanups.add('netns', () => ns.destroy());
  await prepareStand(ns);
  const client = STAND_NICS.find((n) => n.mode === 'client')!;
  const server = STAND_NICS.find((n) => n.mode === 'server')!;
  const idle = Array.from({ length: IDLE }, (_, i) => `idle${i + 1}`);
  const config = {
    log: { level: 'debug' },
    // the engine's own phase lines (USER1, debug); DPDK's libraries and drivers as usual
    engine: { workerCpus: [1], mainCpu: 0, noPci: true, filePrefix: `vio4wd-hb${process.pid}`, logLevel: 8, extraEalArgs: ['--log-level=lib.*:5', '--log-level=pmd.*:5', '--log-level=user1:8'] },
    vhostUser: { mode: 'server', socketDir: sockDir },
    control: { ipcDir: join(tmp.path, 'ipc') },
    metrics: { address: '127.0.0.1:9464' },
    relays: [
      { name: 'client', id: 1, ...standRelay(client), vhostUser: { mode: 'client', socketPath: join(sockDir, 'vm-client.sock') } },
      { name: 'server', id: 2, ...standRelay(server) },
      ...idle.map((n, i) => ({ name: n, id: i + 3, vf: { devargs: `net_tap_${n},iface=t${n}` } })),
    ],
  };
  const agents: AgentProcess[] = [];
  cleanups.add('agents', async () => {
    for (const a of agents) if (a.exitCode === null && a.proc.child.signalCode === null) await a.stop();
  });
  const start = async (waitReady: boolean): Promise<AgentProcess> => {
    const a = await AgentProcess.start({ config, workDir: tmp.path, netns: ns, waitReady, readyTimeoutMs: 120_000 });
    agents.push(a);
    return a;
  };
  let current = await start(true);
  // vhu0 is the client-mode relay's NIC (STAND_NICS order), vhu1 the server-mode one's
  const qemuTrace = TRACE
    ? ['-msg', 'timestamp=on', '-D', join(TRACE, 'qemu.trace'), ...['vhost_user_event', 'qio_channel_socket_accept*', 'vhost_dev_start', 'vhost_dev_stop'].flatMap((e) => ['-trace', e])]
    : [];
  const stand: Stand = await startStand(ns, { client: join(sockDir, 'vm-client.sock'), server: join(sockDir, 'virtio-forwarder2.sock') }, 'hobench', qemuTrace);
  cleanups.add('guest', () => stand.stop());
  const bothFlow = async (what: string): Promise<void> => {
    const from = Date.now();
    await until(what, () => stand.pings.client.since(from) >= 20 && stand.pings.server.since(from) >= 20, 60_000, 20);
  };
  await bothFlow('the guest answers through both relays');

  const byRelay = (logs: LogLine[], msg: string, key: 'relay' = 'relay'): Map<string, number> => {
    const m = new Map<string, number>();
    for (const l of logs) if (l.msg === msg && typeof l.ms === 'number') m.set(String(l[key]), l.ms);
    return m;
  };
  const idOf = new Map(config.relays.map((r) => [String(r.id), r.name]));

  const total = HANDOVERS + RESTARTS;
  for (let i = 0; i < total; i++) {
    const kind = i < HANDOVERS ? 'handover' : 'restart';
    await bothFlow('pings flow before the round');
    const old = current;
    if (kind === 'restart') await old.kill();
    const spawnAt = Date.now();
    current = await start(false);
    await current.waitForLog(/"msg":"vio4wd agent running"/, 120_000);
    const runningAt = Date.now();
    await bothFlow('pings flow after the round');
    await sleep(Math.max(0, runningAt + 2000 - Date.now()));
    const logs = current.logs();
    const oldLogs = old.logs().filter((l) => Date.parse(String(l.time)) >= spawnAt);
    const round: Round = {
      kind,
      runningMs: runningAt - spawnAt,
      handoverMs: Number(logs.find((l) => l.msg === 'handover: every relay taken over')?.ms ?? NaN),
      gap: { client: stand.pings.client.longestGap(spawnAt, runningAt + 2000).gapMs, server: stand.pings.server.longestGap(spawnAt, runningAt + 2000).gapMs },
      relays: {},
    };
    const release = byRelay(oldLogs, 'relay removed');
    const attach = byRelay(logs, 'relay added');
    const step = byRelay(logs, 'handover: relay taken over');
    const phases = new Map<string, Record<string, number>>();
    for (const l of [...oldLogs, ...logs]) {
      for (const [key, re] of PHASES) {
        const m = re.exec(String(l.msg ?? ''));
        if (m) phases.set(m[1]!, { ...phases.get(m[1]!), [key]: Number(m[2]) });
      }
    }
    for (const [id, name] of idOf) {
      round.relays[name] = {
        ...(release.has(id) ? { release: release.get(id)! } : {}),
        ...(attach.has(id) ? { attach: attach.get(id)! } : {}),
        ...(step.has(name) ? { step: step.get(name)! } : {}),
        ...(phases.has(id) ? { phases: phases.get(id)! } : {}),
      };
    }
    if (kind === 'handover') {
      const rel = oldLogs.find((l) => l.msg === 'handover: relay released' && l.relay === 'client');
      const t0 = rel ? Date.parse(String(rel.time)) - Number(rel.ms) : NaN;
      const at = (pred: (l: LogLine) => boolean): number => {
        const l = logs.find(pred);
        return l ? Date.parse(String(l.time)) - t0 : NaN;
      };
      const replies = stand.pings.client.replies;
      round.timeline = {
        lastReply: (replies.filter((r) => r.at <= t0).at(-1)?.at ?? NaN) - t0,
        attached: at((l) => l.msg === 'handover: relay taken over' && l.relay === 'client'),
        guestConnected: at((l) => l.relay === 'client' && l.guestConnected === 'True'),
        firstReply: (replies.find((r) => r.at > t0)?.at ?? NaN) - t0,
      };
      const ev = qemuEvents('vhu0').filter((e) => e.at >= t0 - 50);
      const closed = ev.find((e) => e.event === 4);
      const opened = ev.find((e) => e.event === 1 && (!closed || e.at >= closed.at));
      if (closed) round.timeline.qemuClosed = Math.round(closed.at - t0);
      if (opened) round.timeline.qemuOpened = Math.round(opened.at - t0);
    }
    if (TRACE) {
      writeFileSync(join(TRACE, `round${i + 1}-old.log`), old.output);
      writeFileSync(join(TRACE, `round${i + 1}-new.log`), current.output);
    }
    rounds.push(round);
    process.stdout.write(
      `${kind} ${i + 1}/${total}: running ${round.runningMs} ms; gap client ${round.gap.client.toFixed(0)} ms, server ${round.gap.server.toFixed(0)} ms; ` +
        `client relay release ${round.relays.client?.release ?? '-'} attach ${round.relays.client?.attach ?? '-'} step ${round.relays.client?.step ?? '-'} ms` +
        (round.timeline
          ? `; after release began: last reply ${round.timeline.lastReply.toFixed(0)}, ` +
            (round.timeline.qemuClosed !== undefined ? `QEMU saw the close ${round.timeline.qemuClosed}, took the new connection ${round.timeline.qemuOpened ?? '-'}, ` : '') +
            `attached ${round.timeline.attached.toFixed(0)}, guest connected ${round.timeline.guestConnected.toFixed(0)}, first reply ${round.timeline.firstReply.toFixed(0)} ms`
          : '') +
        '\n',
    );
    if (kind === 'handover') {
      if ((await old.stop()) !== 0) throw new Error(`the old agent exited with ${old.exitCode}:\n${old.output.slice(-3000)}`);
    }
  }

  const hs = rounds.filter((r) => r.kind === 'handover');
  const rs = rounds.filter((r) => r.kind === 'restart');
  const row = (label: string, xs: number[]): string => `  ${label.padEnd(44)} ${pct(xs, 50).toFixed(1).padStart(8)} ${Math.max(...xs.filter(Number.isFinite)).toFixed(1).padStart(8)}`;
  const lines = [`\nvio4wd upgrade handover: ${hs.length} handovers, ${rs.length} restarts; ${2 + IDLE} relays (client, server, ${IDLE} idle); ms`];
  lines.push(`  ${''.padEnd(44)} ${'median'.padStart(8)} ${'worst'.padStart(8)}`);
  lines.push(row('handover: ping gap, client-mode relay', hs.map((r) => r.gap.client)));
  lines.push(row('handover: ping gap, server-mode relay', hs.map((r) => r.gap.server)));
  const all = (f: (x: Round['relays'][string]) => number | undefined) => hs.flatMap((r) => Object.values(r.relays).map(f)).filter((x): x is number => x !== undefined);
  lines.push(row('handover: release in the old agent (any relay)', all((x) => x.release)));
  lines.push(row('handover: attach in the new agent (any relay)', all((x) => x.attach)));
  lines.push(row('handover: step, request -> attached (any relay)', all((x) => x.step)));
  const phase = (k: string) => all((x) => x.phases?.[k]);
  for (const [k, label] of [
    ['workersOff', 'release: workers off it'],
    ['unregistered', 'release: + socket unregistered'],
    ['detached', 'release: + port (VF) detached'],
    ['portAttached', 'attach: port (VF) attached'],
    ['portStarted', 'attach: + port started'],
    ['registered', 'attach: + socket registered'],
    ['polled', 'attach: + polled'],
  ] as const)
    if (phase(k).length) lines.push(row(`  ${label} (any relay)`, phase(k)));
  const tl = hs.map((r) => r.timeline).filter((t) => t !== undefined);
  if (tl.some((t) => t.qemuClosed !== undefined)) {
    lines.push(row('QEMU: release began -> old conn. closed', tl.map((t) => t.qemuClosed ?? NaN)));
    lines.push(row('QEMU: release began -> new conn. taken', tl.map((t) => t.qemuOpened ?? NaN)));
  }
  lines.push(row('handover: all relays', hs.map((r) => r.handoverMs)));
  lines.push(row('handover: spawn -> new agent running', hs.map((r) => r.runningMs)));
  if (rs.length) {
    lines.push(row('restart (reference): ping gap, client-mode relay', rs.map((r) => r.gap.client)));
    lines.push(row('restart (reference): ping gap, server-mode relay', rs.map((r) => r.gap.server)));
    const ratio = pct(hs.map((r) => r.gap.client), 50) / pct(rs.map((r) => r.gap.client), 50);
    lines.push(`  client-mode gap, handover / restart (medians): ${ratio.toFixed(3)}`);
  }
  const med = pct(hs.map((r) => r.gap.client), 50);
  lines.push(`  client-mode gap (median) vs the 100 ms target: ratio ${(med / 100).toFixed(2)}`);
  process.stdout.write(lines.join('\n') + '\n');
  if (values.json) writeFileSync(values.json, JSON.stringify({ handovers: HANDOVERS, restarts: RESTARTS, idle: IDLE, rounds, date: new Date().toISOString() }, null, 2) + '\n');
} finally {
  await cleanups.run();
}
