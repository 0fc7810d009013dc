// Restart benchmark: the node agent SIGKILLed under running traffic and spawned again, N times;
// where the time from spawn to the first forwarded packet goes, phase by phase.
//
//   timeout 900 flock /tmp/vio4wd-it.lock node --import tsx bench/restart.ts [--restarts 10] [--json FILE]
//
// Every part is real: kube-apiserver + etcd with the CRDs, a test kubelet (device plugin
// v1beta1), `vio4wd agent --kubernetes` (as the DaemonSet runs it: ZeroMQ control, metrics,
// device plugin, CNI attachment API) on the real DPDK engine inside a test network namespace.
// Two VirtioRelays on the node, restored from the agent's checkpoint at every restart:
//   r1 client mode: the guest stand-in is dpdk-testpmd with a virtio-user port in server mode
//      (it creates the socket and keeps it across the agent's death, as QEMU does) answering
//      ICMP echo; VF stand-in net_af_packet on a veth whose peer pings it every 10 ms
//   r2 server mode: the relay creates the socket; measured is when it accepts connections
//      (DPDK's virtio-user client does not redial, so no guest stand-in: QEMU redials every
//      `reconnect` seconds, the e2e fault test measures that with a real guest)
// CPUs: the relay worker and testpmd both poll CPU 1; the agent's JS, its EAL main lcore, the
// apiserver and etcd run on CPU 0 (like a node whose poll cores are isolated).
//
// Phases (ms after the spawn, from the new agent's own log timestamps, 1 ms resolution):
//   process start      the Node.js process began (performance.timeOrigin)
//   modules loaded     "vio4wd agent starting": CLI, config and agent modules loaded
//   EAL init           "engine started"
//   checkpoint         "relays restored from the checkpoint" (relays handed to the manager)
//   VF attach          "relay attached" of r1 (VF port started, vhost driver registered)
//   vhost reconnect    r1's guest connected (virtio-user's rings live again)
//   first packet       the first ping reply the peer got after the spawn (a round trip
//                      through the relay both ways)
//   r2 listening       r2's socket accepts a connection (polled every 5 ms)
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { AgentProcess, type LogLine } from '../test/helpers/agent.js';
import { Testpmd } from '../test/helpers/dpdk.js';
import { Pinger } from '../test/helpers/pinger.js';
import { Cleanups, sleep, until } from '../test/helpers/e2e.js';
import { BENCH_NS as NS, benchRelay as relay, startBenchAgent } from './lib/agent-proc.js';

const { values } = parseArgs({ options: { restarts: { type: 'string', default: '10' }, json: { type: 'string' } } });
const RESTARTS = Number(values.restarts);
const MAC1 = '52:54:00:be:00:01';
const GUEST1 = '10.0.9.2';

const PHASES = ['process start', 'modules loaded', 'EAL init', 'checkpoint', 'VF attach', 'vhost reconnect', 'first packet', 'r2 listening'] as const;
type Phase = (typeof PHASES)[number];

function pct(xs: number[], p: number): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

/** Resolves when `path` accepts a connection (polled every 5 ms); the connection is closed again. */
async function listening(path: string, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return Date.now();
    if (Date.now() > end) throw new Error(`${path} did not accept a connection within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const cleanups = new Cleanups();
const rows: Record<Phase, number>[] = [];
try {
  const b = await startBenchAgent(
    {
      name: 'restart',
      beforeAgent: async (ns) => {
        for (const [vf, up, addr] of [['vf1', 'up1', '10.0.9.1/24'], ['vf2', 'up2', '10.0.10.1/24']] as const) {
          await ns.addVeth(vf, up);
          await ns.addAddress(up, addr);
        }
        // the peer reaches the guest stand-in without ARP (testpmd's icmpecho answers ARP too, but a
        // neighbour entry in its probe phase would add its own timer to the gap)
        await ns.ip('neigh', 'replace', GUEST1, 'lladdr', MAC1, 'dev', 'up1', 'nud', 'permanent');
      },
    },
    cleanups,
  );
  const { kube, ns, dirs, configPath, args } = b;
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [relay('r1', { vf: { devargs: 'net_af_packet_r1,iface=vf1' }, mac: MAC1 }), relay('r2', { vf: { devargs: 'net_af_packet_r2,iface=vf2' }, vhostUser: { mode: 'server' } })],
    }),
  });
  const sock1 = join(dirs.sockets, `${NS}.r1`, 'vhost-user.sock');
  const sock2 = join(dirs.sockets, `${NS}.r2`, 'vhost-user.sock');
  await b.agent.waitForLog(/"relay":"bench\.r1"[^\n]*"msg":"relay attached"|"msg":"relay attached"[^\n]*"relay":"bench\.r1"/, 60_000);
  // the guest stand-in: creates r1's socket (server) and keeps it while agents come and go
  const vm = await Testpmd.start({
    vdevs: [`net_virtio_user0,path=${sock1},server=1,queues=1,mac=${MAC1}`],
    fwd: 'io',
    cpu: 1,
    netns: ns.name,
    args: ['--forward-mode=icmpecho'],
  });
  cleanups.add('testpmd', () => vm.quit());
  await vm.cmd('start');

  // the traffic source: a ping every 10 ms, each reply timestamped by ping itself (-D)
  const pinger = new Pinger(ns.name, GUEST1);
  cleanups.add('ping', () => pinger.stop());
  const replies = pinger.replies;
  await until('the guest stand-in answers pings through r1', () => replies.length > 10, 30_000, 50);
  await listening(sock2, 10_000);

  for (let i = 0; i < RESTARTS; i++) {
    // traffic flows before every kill; the checkpoint holds both relays
    const before = replies.length;
    await until('pings flow before the kill', () => replies.length >= before + 20, 20_000, 20);
    await b.agent.kill();
    const spawnAt = Date.now();
    const agent = (b.agent = await AgentProcess.start({ config: configPath, workDir: b.tmpPath, netns: ns, args, waitReady: false }));
    const r2At = listening(sock2, 30_000);
    const first = await until('a ping reply through the restarted agent', () => replies.find((r) => r.at > spawnAt), 30_000, 5);
    const r2 = await r2At;
    await agent.waitForLog(/"msg":"guest connected|"guestConnected":"True"/, 30_000);
    const logs = agent.logs();
    const at = (pred: (l: LogLine) => boolean): number => {
      const l = logs.find(pred);
      return l ? Date.parse(String(l.time)) - spawnAt : NaN;
    };
    const starting = logs.find((l) => l.msg === 'vio4wd agent starting');
    const row: Record<Phase, number> = {
      'process start': starting && typeof starting.processStart === 'string' ? Date.parse(starting.processStart) - spawnAt : NaN,
      'modules loaded': at((l) => l.msg === 'vio4wd agent starting'),
      'EAL init': at((l) => l.msg === 'engine started'),
      checkpoint: at((l) => l.msg.startsWith('relays restored from the checkpoint')),
      'VF attach': at((l) => l.msg === 'relay attached' && l.relay === `${NS}.r1`),
      'vhost reconnect': at((l) => l.relay === `${NS}.r1` && l.guestConnected === 'True'),
      'first packet': first.at - spawnAt,
      'r2 listening': r2 - spawnAt,
    };
    rows.push(row);
    process.stdout.write(`restart ${i + 1}/${RESTARTS}: ${PHASES.map((p) => `${p} ${row[p].toFixed(0)}`).join(', ')} ms\n`);
    // the apiserver's view settles before the next kill (the agent is fully up again)
    await agent.waitForLog(/"msg":"vio4wd agent running"/, 60_000);
  }

  const table = [`\nvio4wd agent restart (SIGKILL, spawn again; relays from the checkpoint), ${RESTARTS} restarts; ms after spawn`];
  table.push(`  ${'phase'.padEnd(18)} ${'median'.padStart(8)} ${'worst'.padStart(8)} ${'median step'.padStart(12)}`);
  let prev = 0;
  for (const p of PHASES) {
    const xs = rows.map((r) => r[p]);
    const med = pct(xs, 50);
    const step = p === 'r2 listening' ? NaN : med - prev;
    if (p !== 'r2 listening') prev = med;
    table.push(`  ${p.padEnd(18)} ${med.toFixed(0).padStart(8)} ${Math.max(...xs).toFixed(0).padStart(8)} ${(Number.isNaN(step) ? '' : `+${step.toFixed(0)}`).padStart(12)}`);
  }
  const firstMed = pct(rows.map((r) => r['first packet']), 50);
  table.push(`  client-mode relay forwards ${firstMed.toFixed(0)} ms (median) after the spawn: target < 1000 ms (ratio ${(firstMed / 1000).toFixed(2)})`);
  process.stdout.write(table.join('\n') + '\n');
  if (values.json) writeFileSync(values.json, JSON.stringify({ restarts: RESTARTS, phases: PHASES, rows, date: new Date().toISOString() }, null, 2) + '\n');
} finally {
  await cleanups.run();
}
