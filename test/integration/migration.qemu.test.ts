// Live migration of a running QEMU guest from one vio4wd relay to another, with real parts: the
// agent (the same code the DaemonSet runs) on the DPDK engine in a network namespace the test
// creates, two relays whose VF stand-ins (net_tap) sit on one Linux bridge with the peer address
// on it, a guest on relay A pinging the peer 4 times a second, and a second QEMU with the same
// command line plus -incoming waiting on relay B's socket. Migrated through QMP; then: the
// migration completed, the guest finished its pings on B, lost pings are counted and reported,
// A's counters stopped and B's started, the relays' status and the migration metric say what
// happened. Both socket modes (relay as vhost-user server and as client), and the RARP path for
// a guest without VIRTIO_NET_F_GUEST_ANNOUNCE.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess, type LogLine } from '../helpers/agent.js';
import { Guest, type MigrationResult, type PingSummary } from '../helpers/guest.js';

const PEER = '10.0.0.1';
const METRICS = '127.0.0.1:9464';

interface Pair {
  a: string; // relay names
  b: string;
  sockA: string;
  sockB: string;
  tapA: string;
  tapB: string;
  /** QEMU's role on the socket (the opposite of the relay's) */
  qemuMode: 'client' | 'server';
}

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess;
let sockDir: string;
const guests: Guest[] = [];

function pair(tag: string, mode: 'server' | 'client'): Pair {
  return {
    a: `mig-${tag}a`, b: `mig-${tag}b`,
    sockA: join(sockDir, `${tag}a.sock`), sockB: join(sockDir, `${tag}b.sock`),
    tapA: `vf${tag}a`, tapB: `vf${tag}b`,
    qemuMode: mode === 'server' ? 'client' : 'server',
  };
}

let SERVER: Pair;
let CLIENT: Pair;

function relayConfig(p: Pair, idA: number, mode: 'server' | 'client'): Record<string, unknown>[] {
  return [
    { id: idA, name: p.a, vf: { devargs: `net_tap_${p.tapA},iface=${p.tapA}` }, vhostUser: { mode, socketPath: p.sockA } },
    { id: idA + 1, name: p.b, vf: { devargs: `net_tap_${p.tapB},iface=${p.tapB}` }, vhostUser: { mode, socketPath: p.sockB } },
  ];
}

before(async () => {
  ns = await Netns.create('migration');
  tmp = testTempDir('migration');
  sockDir = join(tmp.path, 'sock');
  mkdirSync(sockDir);
  SERVER = pair('s', 'server');
  CLIENT = pair('c', 'client');
  // the switch behind both VFs: a bridge with the peer's address
  await ns.addBridge('br0');
  await ns.addAddress('br0', `${PEER}/24`);
  agent = await AgentProcess.start({
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: sockDir },
      control: { ipcDir: join(tmp.path, 'ipc') },
      metrics: { address: METRICS },
      relays: [...relayConfig(SERVER, 1, 'server'), ...relayConfig(CLIENT, 3, 'client')],
    },
    workDir: tmp.path,
    netns: ns,
  });
  for (const p of [SERVER, CLIENT]) {
    for (const tap of [p.tapA, p.tapB]) {
      await ns.waitForLink(tap);
      await ns.setMaster(tap, 'br0');
    }
  }
});

after(async () => {
  for (const g of guests) await g.stop().catch(() => undefined);
  if (agent && agent.exitCode === null) await agent.stop();
  await ns?.destroy();
  tmp?.remove();
});

// ---------------------------------------------------------------- metrics and status

async function metrics(): Promise<string> {
  return (await agent.http(`http://${METRICS}/metrics`)).body;
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const l = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

function counters(text: string, relay: string): { vmToVfRx: number; vfToVmTx: number } {
  return {
    vmToVfRx: metric(text, 'vio4wd_relay_rx_packets_total', { relay, direction: 'vm_to_vf' }),
    vfToVmTx: metric(text, 'vio4wd_relay_tx_packets_total', { relay, direction: 'vf_to_vm' }),
  };
}

/** GuestConnected transitions the agent logged for a relay, as "True/Reason". */
function guestStatuses(relay: string): string[] {
  return agent
    .logs()
    .filter((l: LogLine) => l.relay === relay && typeof l.guestConnected === 'string')
    .map((l) => `${String(l.guestConnected)}/${String(l.reason)}`);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  await waitUntil(what, check, { timeoutMs, intervalMs: 100, detail: () => agent.output.slice(-3000) });
}

function report(t: TestContext, msg: string): void {
  t.diagnostic(msg);
  console.log(`# migration: ${msg}`);
}

let portSeq = 0;
function freePort(): number {
  return 20000 + ((process.pid * 7 + ++portSeq) % 20000);
}

// ---------------------------------------------------------------- one migration

interface Outcome {
  result: MigrationResult;
  summary: PingSummary;
  onSource: number;
  onTarget: number;
  firstOnTargetMs: number;
}

async function migrate(t: TestContext, p: Pair, opts: { name: string; count: number; extraArgs?: string[]; onTargetReady?: () => Promise<void> }): Promise<Outcome> {
  const src = await Guest.start({
    name: opts.name, netns: ns,
    nics: [{ socketPath: p.sockA, mode: p.qemuMode, ip: '10.0.0.2/24' }],
    job: { kind: 'ping', peer: PEER, count: opts.count, intervalS: 0.25 },
    after: 'shell', // stays up after its pings: the relays' status is checked with the guest on B
    ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
  });
  guests.push(src);
  await src.waitForPings(8);
  await until(`${p.a} reports the guest`, async () => metric(await metrics(), 'vio4wd_relay_guest_connected', { relay: p.a }) === 1);
  const dst = await Guest.startMigrationTarget(src, { port: freePort(), socketPaths: [p.sockB], name: `${opts.name}-in` });
  guests.push(dst);
  await opts.onTargetReady?.();
  const result = await src.migrateTo(dst);
  const doneAt = Date.now() - dst.startedAt;
  assert.equal(result.status, 'completed');
  assert.equal(await src.runState(), 'postmigrate');
  assert.equal(await dst.runState(), 'running');
  const lastOnSource = Math.max(...src.pings.map((x) => x.seq));

  const summary = await dst.waitForPingSummary(120_000);
  const onTarget = dst.pings;
  assert.ok(onTarget.length > 0, 'the migrated guest got replies through relay B');
  assert.ok(Math.min(...onTarget.map((x) => x.seq)) > lastOnSource, 'the target continues where the source stopped');
  assert.ok(onTarget.some((x) => x.seq === opts.count - 1), 'the last ping was answered on the target');
  assert.equal(summary.sent, opts.count);
  assert.equal(summary.received + summary.lost, summary.sent);
  return { result, summary, onSource: src.pings.length, onTarget: onTarget.length, firstOnTargetMs: onTarget[0]!.atMs - doneAt };
}

/** Stops the guests of a test (the source QEMU stays in 'postmigrate' until then). */
async function stopGuests(): Promise<void> {
  for (const g of guests.splice(0)) await g.stop();
}

async function checkRelays(t: TestContext, p: Pair, o: Outcome, label: string): Promise<void> {
  // A's counters stopped with the migration, B's carry the guest's traffic
  const m1 = await metrics();
  await new Promise((r) => setTimeout(r, 1500));
  const m2 = await metrics();
  const a1 = counters(m1, p.a);
  const a2 = counters(m2, p.a);
  const b = counters(m2, p.b);
  assert.deepEqual(a2, a1, `${p.a}'s counters do not move after the guest left`);
  assert.ok(a1.vmToVfRx >= o.onSource, `${p.a} carried the pings before the migration (${a1.vmToVfRx} >= ${o.onSource})`);
  assert.ok(b.vmToVfRx >= o.onTarget && b.vfToVmTx >= o.onTarget, `${p.b} carried the pings after it (${JSON.stringify(b)})`);
  // status and metrics: the guest left A by migration and arrived on B by migration
  assert.equal(metric(m2, 'vio4wd_relay_guest_connected', { relay: p.a }), 0);
  assert.equal(metric(m2, 'vio4wd_relay_guest_connected', { relay: p.b }), 1);
  assert.equal(metric(m2, 'vio4wd_relay_migrations_total', { relay: p.a, direction: 'out' }), 1);
  assert.equal(metric(m2, 'vio4wd_relay_migrations_total', { relay: p.b, direction: 'in' }), 1);
  assert.equal(metric(m2, 'vio4wd_relay_phase', { relay: p.a, phase: 'Ready' }), 1, 'A keeps its VF and stays Ready');
  assert.equal(metric(m2, 'vio4wd_relay_phase', { relay: p.b, phase: 'Ready' }), 1);
  const sa = guestStatuses(p.a);
  const sb = guestStatuses(p.b);
  assert.ok(sa.includes('True/MigrationInProgress'), `${p.a}: ${sa.join(' -> ')}`);
  assert.equal(sa.at(-1), 'False/MigratingOut', `${p.a}: ${sa.join(' -> ')}`);
  assert.equal(sb.at(-1), 'True/MigratedIn', `${p.b}: ${sb.join(' -> ')}`);
  report(
    t,
    `${label}: migration ${o.result.totalTimeMs} ms total, ${o.result.downtimeMs} ms downtime, ${o.result.transferredBytes} bytes; ` +
      `pings ${o.summary.received}/${o.summary.sent} received, ${o.summary.lost} lost (${o.onSource} on A, ${o.onTarget} on B); ` +
      `first reply on B ${o.firstOnTargetMs} ms after the migration completed; status A: ${sa.join(' -> ')}; B: ${sb.join(' -> ')}`,
  );
}

describe('live migration between two vio4wd relays (QEMU guests, agent on DPDK)', { timeout: 600_000 }, () => {
  test('relays as vhost-user servers: the guest migrates from A to B and keeps pinging', async (t) => {
    try {
      const o = await migrate(t, SERVER, { name: 'migs', count: 80 });
      await checkRelays(t, SERVER, o, 'relay server mode');
    } finally {
      await stopGuests();
    }
  });

  test('relays as vhost-user clients (QEMU creates the sockets): the same', async (t) => {
    try {
      const o = await migrate(t, CLIENT, { name: 'migc', count: 80 });
      await checkRelays(t, CLIENT, o, 'relay client mode');
    } finally {
      await stopGuests();
    }
  });

  test('a guest without GUEST_ANNOUNCE is announced by a RARP from relay B after the migration', async (t) => {
    // back from B to A this time, with the guest's own announce switched off: QEMU asks the
    // backend (VHOST_USER_SEND_RARP) and rte_vhost injects a RARP into the guest's tx stream
    const back: Pair = { ...SERVER, a: SERVER.b, b: SERVER.a, sockA: SERVER.sockB, sockB: SERVER.sockA, tapA: SERVER.tapB, tapB: SERVER.tapA };
    const sniff = ns.spawn('python3', ['-u', '-c', SNIFF, back.tapB, back.tapA], { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    sniff.child.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
    try {
      await until('the sniffer', () => seen.includes('listening'));
      const o = await migrate(t, back, { name: 'migr', count: 48, extraArgs: ['-global', 'virtio-net-pci.guest_announce=off'] });
      const mac = guests.at(-1)!.options.nics[0]!.mac;
      await until(`a RARP from ${mac} on ${back.tapB}`, () => seen.includes(`rarp ${back.tapB} ${mac}`), 10_000);
      assert.ok(!seen.includes(`rarp ${back.tapA} ${mac}`), 'no RARP for the guest on the relay it left');
      report(t, `RARP path: ${seen.split('\n').filter((l) => l.includes(mac)).length} RARP frame(s) for ${mac} on ${back.tapB}; ` +
        `migration ${o.result.totalTimeMs} ms, downtime ${o.result.downtimeMs} ms, pings ${o.summary.received}/${o.summary.sent}`);
    } finally {
      await sniff.stop(1000);
      await stopGuests();
    }
  });
});

// prints "rarp <iface> <source MAC>" for every RARP frame (ethertype 0x8035) arriving on the
// interfaces. ETH_P_ALL: a socket for one protocol sees nothing on a bridge port (the bridge
// consumes the frame first); frames the bridge sends out of a port (PACKET_OUTGOING) are skipped.
const SNIFF = `
import select, socket, sys
socks = []
for name in sys.argv[1:]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((name, 0))
    socks.append((s, name))
print('listening', flush=True)
while True:
    r, _, _ = select.select([s for s, _ in socks], [], [])
    for s, name in socks:
        if s in r:
            f, addr = s.recvfrom(2048)
            if addr[2] != socket.PACKET_OUTGOING and f[12:14] == b'\\x80\\x35':
                print('rarp', name, ':'.join('%02x' % b for b in f[6:12]), flush=True)
`;
import { until as waitUntil } from '../helpers/wait.js';
