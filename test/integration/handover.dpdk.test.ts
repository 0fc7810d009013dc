// The upgrade handover (docs/upgrade.md) between two real agents on the real DPDK engine, as a
// DaemonSet's maxSurge runs them on one node: the same config, one handover socket, metrics and
// ZeroMQ endpoints both would bind. Relay r1 (client mode) carries pings: the VF stand-in is
// net_af_packet on a veth whose peer pings the "VM", dpdk-testpmd answering ICMP echo on a
// virtio-user port that keeps the socket (as QEMU does). r2..r6 are server-mode relays on
// net_tap stand-ins (a tap is held by one process at a time, as a VF is).
// A complete handover, then each agent killed midway: every relay ends up forwarding in one.
// time limit: 8 min
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { Testpmd } from '../helpers/dpdk.js';
import { AgentProcess } from '../helpers/agent.js';
import { Pinger } from '../helpers/pinger.js';
import { killOnFirstRelease } from '../helpers/handover.js';
import { live as accepts } from '../../src/agent/handover.js';
import { until } from '../helpers/wait.js';

const MAC1 = '52:54:00:a0:00:01';
const GUEST1 = '10.0.9.2';
const TAPS = ['r2', 'r3', 'r4', 'r5', 'r6'];

let ns: Netns;
let tmp: { path: string; remove: () => void };
let vm: Testpmd | undefined;
let pinger: Pinger | undefined;
const agents: AgentProcess[] = [];
let sockDir: string;
let ipc: string;

function config(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    engine: { workerCpus: [1], mainCpu: 0, noPci: true, filePrefix: `vio4wd-ho${process.pid}` },
    vhostUser: { mode: 'server', socketDir: sockDir },
    control: { ipcDir: ipc },
    metrics: { address: '127.0.0.1:9464' },
    relays: [
      { name: 'r1', id: 1, vf: { devargs: 'net_af_packet_r1,iface=vf1' }, mac: MAC1, vhostUser: { mode: 'client', socketPath: join(sockDir, 'vm1.sock') } },
      ...TAPS.map((n, i) => ({ name: n, id: i + 2, vf: { devargs: `net_tap_${n},iface=t${n}` } })),
    ],
  };
}

async function startAgent(waitReady = true): Promise<AgentProcess> {
  const a = await AgentProcess.start({ config: config(), workDir: tmp.path, netns: ns, waitReady });
  agents.push(a);
  return a;
}

interface RelayJson {
  id: number;
  active: boolean;
  vf?: { pci_addr_str?: string };
}

/** The relays the agent that holds the ZeroMQ endpoints runs, by id, with a VF attached. */
async function relaysOf(a: AgentProcess): Promise<number[]> {
  const ls = JSON.parse(await a.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  return ls.filter((r) => r.vf?.pci_addr_str).map((r) => r.id).sort((x, y) => x - y);
}

async function pingsFlow(what: string): Promise<void> {
  const from = Date.now();
  await until(what, () => pinger!.since(from) >= 20, { timeoutMs: 20_000, intervalMs: 20 });
}

before(async () => {
  ns = await Netns.create('handover');
  tmp = testTempDir('handover');
  sockDir = join(tmp.path, 'sock');
  ipc = join(tmp.path, 'ipc');
  await ns.addVeth('vf1', 'up1');
  await ns.addAddress('up1', '10.0.9.1/24');
  await ns.ip('neigh', 'replace', GUEST1, 'lladdr', MAC1, 'dev', 'up1', 'nud', 'permanent');
  mkdirSync(sockDir, { recursive: true });
  await startAgent();
  // the "VM" creates r1's socket (a virtio-user server waits for its backend to connect) and
  // keeps it while agents come and go
  vm = await Testpmd.start({
    vdevs: [`net_virtio_user0,path=${join(sockDir, 'vm1.sock')},server=1,queues=1,mac=${MAC1}`],
    fwd: 'io',
    cpu: 0,
    netns: ns.name,
    args: ['--forward-mode=icmpecho'],
  });
  await vm.cmd('start');
  pinger = new Pinger(ns.name, GUEST1);
  await pingsFlow('pings through r1 before any handover');
});

after(async () => {
  pinger?.stop();
  for (const a of agents) if (a.exitCode === null && a.proc.child.signalCode === null) await a.stop();
  await vm?.quit();
  await ns?.destroy();
  tmp?.remove();
});

const live = (): AgentProcess => {
  const a = agents.filter((x) => x.exitCode === null && x.proc.child.signalCode === null);
  assert.equal(a.length, 1, 'one agent runs');
  return a[0]!;
};

test('a new agent takes every relay over while pings go on; the old one lets go of its ports and exits cleanly', async (t) => {
  const old = live();
  assert.deepEqual(await relaysOf(old), [1, 2, 3, 4, 5, 6]);
  const spawnAt = Date.now();
  const fresh = await startAgent(false);
  await fresh.waitForLog(/"msg":"vio4wd agent running"/, 120_000);
  const runningAt = Date.now();
  await old.waitForLog(/"msg":"handover done/);
  await fresh.waitForLog(/"msg":"handover: every relay taken over"/);
  assert.match(fresh.output, /"filePrefix":"vio4wd-ho\d+-b"/, 'the new agent runs DPDK under the other file prefix');
  // the ZeroMQ endpoints, metrics and readiness are the new agent's now
  assert.deepEqual(await relaysOf(fresh), [1, 2, 3, 4, 5, 6]);
  const m = await fresh.http('http://127.0.0.1:9464/metrics');
  assert.match(m.body, /vio4wd_relays\{phase="Ready"\} 6/);
  assert.equal((await fresh.http('http://127.0.0.1:9464/readyz')).status, 200);
  for (const n of TAPS) assert.ok(await accepts(join(sockDir, `virtio-forwarder${TAPS.indexOf(n) + 2}.sock`)), `${n}'s socket accepts connections`);
  await pingsFlow('pings through r1 after the handover');
  const gap = pinger!.longestGap(spawnAt, runningAt + 1000);
  const taken = fresh.logs().filter((l) => l.msg === 'handover: relay taken over').map((l) => `${String(l.relay)} ${String(l.ms)} ms`);
  t.diagnostic(`longest ping gap ${gap.gapMs.toFixed(0)} ms; per relay (release request -> attached): ${taken.join(', ')}`);
  // a restart takes seconds; a handover far less (the figure itself: bench/handover.ts)
  assert.ok(gap.gapMs < 2000, `pings stopped for ${gap.gapMs} ms`);

  // the old agent, stopped as the DaemonSet stops it, takes nothing of the new one's along
  assert.equal(await old.stop(), 0);
  assert.match(old.output, /"msg":"vio4wd agent stopped"/);
  await pingsFlow('pings through r1 after the old agent exited');
  assert.deepEqual(await relaysOf(fresh), [1, 2, 3, 4, 5, 6]);
  assert.ok(await accepts(join(sockDir, 'virtio-forwarder2.sock')), 'server sockets stay');
  assert.ok(existsSync(join(sockDir, '.vio4wd-handover.sock')), 'the new agent serves the next handover');
});

test('the old agent killed midway: the new one runs every relay', async () => {
  const old = live();
  const fresh = await startAgent(false);
  await killOnFirstRelease(old, old);
  await old.proc.exited;
  await fresh.waitForLog(/"msg":"vio4wd agent running"/, 120_000);
  assert.match(fresh.output, /"msg":"handover interrupted: the old agent went away/);
  await until('the new agent runs every relay', async () => (await relaysOf(fresh)).length === 6, { timeoutMs: 30_000, intervalMs: 500 });
  await pingsFlow('pings through r1 in the new agent');
});

test('the new agent killed midway: the old one runs again what it had released', async () => {
  const old = live();
  const fresh = await startAgent(false);
  await killOnFirstRelease(old, fresh);
  await fresh.proc.exited;
  await old.waitForLog(/"msg":"handover interrupted: the new agent went away/);
  await until('the old agent runs every relay again', async () => (await relaysOf(old)).length === 6, { timeoutMs: 30_000, intervalMs: 500 });
  await pingsFlow('pings through r1 in the old agent again');
  // and a later handover still works
  const next = await startAgent(false);
  await next.waitForLog(/"msg":"vio4wd agent running"/, 120_000);
  assert.deepEqual(await relaysOf(next), [1, 2, 3, 4, 5, 6]);
  assert.equal(await old.stop(), 0);
  await pingsFlow('pings through r1 after the second handover');
});
