// The upgrade handover (docs/upgrade.md) under a real QEMU guest that is pinged through two
// relays, one per vhost-user socket mode: a new agent takes both over while the pings go on, and
// a new agent killed midway leaves the old one forwarding for the guest again. The figures
// (gaps per relay, ten handovers) are bench/handover.ts's; here, bounds a loaded machine holds.
// time limit: 8 min
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { STAND_NICS, killOnFirstRelease, prepareStand, standRelay, startStand, type Stand } from '../helpers/handover.js';
import { until } from '../helpers/wait.js';

let ns: Netns;
let tmp: { path: string; remove: () => void };
let stand: Stand | undefined;
const agents: AgentProcess[] = [];
let sockDir: string;
let ipc: string;

const client = STAND_NICS.find((n) => n.mode === 'client')!;
const server = STAND_NICS.find((n) => n.mode === 'server')!;

function config(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    engine: { workerCpus: [1], mainCpu: 0, noPci: true, filePrefix: `vio4wd-hq${process.pid}` },
    vhostUser: { mode: 'server', socketDir: sockDir },
    control: { ipcDir: ipc },
    metrics: { address: '127.0.0.1:9464' },
    relays: [
      { name: 'rc', id: 1, ...standRelay(client), vhostUser: { mode: 'client', socketPath: join(sockDir, 'vm-client.sock') } },
      { name: 'rs', id: 2, ...standRelay(server) },
    ],
  };
}

async function startAgent(waitReady = true): Promise<AgentProcess> {
  const a = await AgentProcess.start({ config: config(), workDir: tmp.path, netns: ns, waitReady });
  agents.push(a);
  return a;
}

async function bothFlow(what: string): Promise<void> {
  const from = Date.now();
  await until(what, () => stand!.pings.client.since(from) >= 10 && stand!.pings.server.since(from) >= 10, { timeoutMs: 30_000, intervalMs: 50 });
}

before(async () => {
  ns = await Netns.create('handoverq');
  tmp = testTempDir('handoverq');
  sockDir = join(tmp.path, 'sock');
  ipc = join(tmp.path, 'ipc');
  mkdirSync(sockDir, { recursive: true });
  await prepareStand(ns);
  await startAgent();
  stand = await startStand(ns, { client: join(sockDir, 'vm-client.sock'), server: join(sockDir, 'virtio-forwarder2.sock') });
  await bothFlow('the guest answers through both relays');
});

after(async () => {
  await stand?.stop();
  for (const a of agents) if (a.exitCode === null && a.proc.child.signalCode === null) await a.stop();
  await ns?.destroy();
  tmp?.remove();
});

test('a new agent takes both relays of a pinging guest over; the old one exits cleanly', async (t) => {
  const old = agents[0]!;
  const spawnAt = Date.now();
  const fresh = await startAgent(false);
  await fresh.waitForLog(/"msg":"vio4wd agent running"/, 120_000);
  await old.waitForLog(/"msg":"handover done/);
  await bothFlow('the guest answers through the new agent');
  const end = Date.now();
  const gc = stand!.pings.client.longestGap(spawnAt, end);
  const gs = stand!.pings.server.longestGap(spawnAt, end);
  t.diagnostic(`longest gap: client-mode relay ${gc.gapMs.toFixed(0)} ms, server-mode relay ${gs.gapMs.toFixed(0)} ms (QEMU reconnect=1)`);
  // bounds a loaded 2-core machine holds; a restart is seconds for both
  assert.ok(gc.gapMs < 2000, `client-mode relay: no reply for ${gc.gapMs} ms`);
  assert.ok(gs.gapMs < 5000, `server-mode relay: no reply for ${gs.gapMs} ms`);
  assert.equal(await old.stop(), 0);
  await bothFlow('the guest still answers after the old agent exited');
});

test('a new agent killed midway: the old one forwards for the guest again', async () => {
  const old = agents.find((a) => a.exitCode === null && a.proc.child.signalCode === null)!;
  const fresh = await startAgent(false);
  await killOnFirstRelease(old, fresh);
  await fresh.proc.exited;
  await old.waitForLog(/"msg":"handover interrupted: the new agent went away/);
  await bothFlow('the guest answers through the old agent again');
});
