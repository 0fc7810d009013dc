// The standalone demo (`npm run demo`): the vio4wd agent boots from examples/standalone.yaml
// inside a network namespace made for the demo, with a DPDK tap device as the VF stand-in; a
// small real guest under QEMU gets a virtio NIC on the relay's vhost-user socket and pings a
// peer behind the "VF"; `vio4wd stats` shows the counters; everything is torn down.
//
//   guest (QEMU, virtio-net) ──vhost-user──> vio4wd relay 1 ──net_tap──> vf1 (10.0.0.1, the peer)
import { existsSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { Netns, type TrackedProcess } from '../test/helpers/netns.js';
import { Guest } from '../test/helpers/guest.js';

const execFileP = promisify(execFile);
const CONFIG = 'examples/standalone.yaml';
const PEER = '10.0.0.1';
const GUEST_IP = '10.0.0.2/24';
const PINGS = 5;

function say(msg: string): void {
  process.stdout.write(`[demo] ${msg}\n`);
}

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number, proc?: TrackedProcess, log?: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    if (proc && proc.child.exitCode !== null) throw new Error(`${what}: the agent exited (${proc.child.exitCode}):\n${log?.() ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${log ? `:\n${log()}` : ''}`);
}

async function vio4wd(ns: Netns, ...args: string[]): Promise<string> {
  const { stdout } = await execFileP('ip', ['netns', 'exec', ns.name, process.execPath, 'bin/vio4wd.js', ...args], { encoding: 'utf8' });
  return stdout;
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const cfg = parse(readFileSync(CONFIG, 'utf8')) as {
    vhostUser: { socketDir: string };
    control: { ipcDir: string };
    relays: { id: number; mac: string; vf: { devargs: string } }[];
  };
  const relay = cfg.relays[0]!;
  const socket = `${cfg.vhostUser.socketDir}/virtio-forwarder${relay.id}.sock`;
  const vfIf = /iface=([^,]+)/.exec(relay.vf.devargs)?.[1] ?? 'vf1';
  const ipc = cfg.control.ipcDir;

  say('creating a network namespace for the demo (nothing touches the host network)');
  const ns = await Netns.create('demo');
  let agent: TrackedProcess | undefined;
  let guest: Guest | undefined;
  let agentLog = '';
  try {
    say(`starting the agent: vio4wd agent --config ${CONFIG}`);
    agent = ns.spawn(process.execPath, ['bin/vio4wd.js', 'agent', '--config', CONFIG], { stdio: ['ignore', 'pipe', 'pipe'] });
    agent.child.stdout?.setEncoding('utf8').on('data', (d: string) => (agentLog += d));
    agent.child.stderr?.setEncoding('utf8').on('data', (d: string) => (agentLog += d));
    const proc = agent;
    await waitFor('the relay socket and the VF stand-in', async () => existsSync(socket) && (await ns.hasLink(vfIf)), 60_000, proc, () => agentLog);
    say(`relay 1 is up: VF stand-in "${vfIf}" (DPDK net_tap) <-> ${socket}`);
    process.stdout.write(await vio4wd(ns, 'relay', 'ls', '--ipc-dir', ipc));

    say(`giving the peer behind the VF the address ${PEER}/24`);
    await ns.ip('addr', 'add', `${PEER}/24`, 'dev', vfIf);
    await ns.linkUp(vfIf);

    say(`booting a guest under QEMU (TCG) with a virtio NIC on the relay socket, MAC ${relay.mac}`);
    guest = await Guest.start({
      name: 'demo-guest',
      netns: ns,
      nics: [{ socketPath: socket, mode: 'client', mac: relay.mac, ip: GUEST_IP }],
      job: { kind: 'ping', peer: PEER, count: PINGS, intervalS: 0.5 },
      // stay up after the pings, so that the stats below show the guest still connected
      after: 'shell',
    });
    const ready = await guest.waitForReady(120_000);
    say(`guest booted in ${(ready.readyAtMs / 1000).toFixed(1)} s; its NIC: ${ready.nics.map((n) => `${n.name} ${n.ip} ${n.mac}`).join(', ')}`);
    say(`guest pings ${PEER} ${PINGS} times through the relay:`);
    for (let i = 0; i < PINGS; i++) {
      const p = await guest.waitForPings(i + 1, 60_000);
      process.stdout.write(`  reply from ${PEER}: seq=${p.seq} time=${p.rttMs.toFixed(2)} ms\n`);
    }
    const sum = await guest.waitForPingSummary(60_000);
    say(`ping: ${sum.sent} sent, ${sum.received} received, ${sum.lost} lost`);

    say('vio4wd stats (the relay counters):');
    process.stdout.write(await vio4wd(ns, 'stats', '--ipc-dir', ipc));
    if (sum.received < PINGS) throw new Error(`only ${sum.received} of ${PINGS} pings came back`);
    return 0;
  } finally {
    say('tearing down: guest, agent (SIGTERM: relays removed, sockets unlinked), namespace');
    await guest?.stop().catch(() => undefined);
    if (agent) {
      await agent.stop(10_000);
      const code = await agent.exited;
      if (code !== 0) process.stdout.write(`[demo] the agent exited with ${code}:\n${agentLog}`);
    }
    await ns.destroy();
    say(`socket left behind: ${existsSync(socket) ? 'YES (bug)' : 'none'}; done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[demo] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
