// The standalone agent with the real DPDK engine: relays from a YAML config, pings through a
// relay (kernel tap behind the VF stand-in, dpdk-testpmd answering as the VM), stats and metrics
// that agree, ZeroMQ control against the live agent (errors, core scheduling, removal, a fuzz
// storm), clean shutdown and a restart that rebuilds the relays.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Netns, testTempDir } from '../helpers/netns.js';
import { Testpmd } from '../helpers/dpdk.js';
import { AgentProcess } from '../helpers/agent.js';
import { until } from '../helpers/wait.js';
import { fuzzCases, runControlFuzz } from '../helpers/control.js';
import { ControlClient, type EndpointName } from '../../src/control/index.js';
import { HANDLERS } from '../../src/control/server.js';

const FUZZ_LIMITS = {
  maxRequestBytes: Object.fromEntries(Object.entries(HANDLERS).map(([k, h]) => [k, h.maxRequestBytes])) as Record<EndpointName, number>,
  maxRelays: 1024,
  maxBondMembers: 8,
};

const execFileP = promisify(execFile);

/** `vio4wd relay ls/stats --json` print virtio-forwarder's RelayState fields. */
interface RelayJson {
  id: number;
  active: boolean;
  vhost: { vhost_socket_name: string };
  vf?: { pci_addr_str?: string };
  vf_to_vm: { pkts_tx_to_vm?: number; internal_state: string };
  vm_to_vf: { pkts_tx_to_vf?: number; internal_state: string };
}

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess;
let vm: Testpmd | undefined;
let sockDir: string;
let ipc: string;

function config(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
    vhostUser: { mode: 'server', socketDir: sockDir },
    control: { ipcDir: ipc },
    metrics: { address: '127.0.0.1:9464' },
    relays: [
      { id: 1, vf: { devargs: 'net_tap_a1,iface=vfa' }, mac: '52:54:00:00:00:0a' },
      { id: 2, vf: { devargs: 'net_tap_a2,iface=vfb' } },
    ],
  };
}

async function ping(count: number): Promise<{ received: number }> {
  try {
    const { stdout } = await execFileP('ip', ['netns', 'exec', ns.name, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '2', '10.0.0.2'], { encoding: 'utf8' });
    return { received: Number(/(\d+) received/.exec(stdout)?.[1] ?? 0) };
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    return { received: Number(/(\d+) received/.exec(out)?.[1] ?? 0) };
  }
}

async function startVm(): Promise<Testpmd> {
  // the "VM": testpmd answering ARP and ICMP echo on a virtio-user port on relay 1's socket
  return Testpmd.start({
    vdevs: [`net_virtio_user0,path=${join(sockDir, 'virtio-forwarder1.sock')},queues=1,mac=52:54:00:00:00:0a`],
    fwd: 'io',
    cpu: 0,
    netns: ns.name,
    args: ['--forward-mode=icmpecho'],
  });
}

before(async () => {
  ns = await Netns.create('agent');
  tmp = testTempDir('agent');
  sockDir = join(tmp.path, 'sock');
  ipc = join(tmp.path, 'ipc');
  agent = await AgentProcess.start({ config: config(), workDir: tmp.path, netns: ns });
  await ns.addAddress('vfa', '10.0.0.1/24');
  await ns.linkUp('vfa');
  vm = await startVm();
  await vm.cmd('start');
});

after(async () => {
  await vm?.quit();
  if (agent && agent.exitCode === null) await agent.stop();
  await ns?.destroy();
  tmp?.remove();
});

test('relays from the config are Ready and listed by vio4wd relay ls', async () => {
  const ls = JSON.parse(await agent.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  assert.deepEqual(ls.map((r) => [r.id, r.vhost.vhost_socket_name, r.vf?.pci_addr_str]), [
    [1, join(sockDir, 'virtio-forwarder1.sock'), 'net_tap_a1,iface=vfa'],
    [2, join(sockDir, 'virtio-forwarder2.sock'), 'net_tap_a2,iface=vfb'],
  ]);
  const ready = await agent.http('http://127.0.0.1:9464/readyz');
  assert.equal(ready.status, 200);
  assert.equal((await agent.http('http://127.0.0.1:9464/healthz')).status, 200);
});

test('pings cross the relay both ways and the counters in stats and metrics agree', async () => {
  const r = await ping(10);
  assert.equal(r.received, 10, agent.output.slice(-2000));
  const stats = JSON.parse(await agent.cli('stats', '--ipc-dir', ipc, '--relay', '1', '--json')) as RelayJson[];
  const s = stats.find((x) => x.id === 1)!;
  assert.equal(s.active, true);
  const up = s.vf_to_vm.pkts_tx_to_vm ?? 0;
  const down = s.vm_to_vf.pkts_tx_to_vf ?? 0;
  assert.ok(up >= 10, `VF->VM sent ${up}`);
  assert.ok(down >= 10, `VM->VF sent ${down}`);
  const metrics = (await agent.http('http://127.0.0.1:9464/metrics')).body;
  const m = /vio4wd_relay_tx_packets_total\{relay="relay-1",id="1",direction="vm_to_vf"\} (\d+)/.exec(metrics);
  assert.ok(m, metrics.slice(0, 3000));
  // no traffic between the two reads but the guest's own chatter: equal or a little more
  assert.ok(Number(m[1]) >= down && Number(m[1]) <= down + 5, `metrics ${m[1]} vs stats ${down}`);
  assert.match(metrics, /vio4wd_relay_phase\{relay="relay-1",id="1",phase="Ready"\} 1/);
  assert.match(metrics, /vio4wd_relay_guest_connected\{relay="relay-1",id="1"\} 1/);
  assert.match(metrics, /vio4wd_engine_up 1/);
});

/** The value of one series in a Prometheus text scrape (0 when absent). */
function metric(text: string, name: string, labels: string): number {
  const esc = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc(name)}\\{${esc(labels)}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

interface RelayJsonExt {
  id: number;
  vf_to_vm: { pkts_rx_from_vf?: number; pkts_dropped_vm_not_connected?: number };
  vf_port?: { rx_packets?: number; rx_missed?: number };
}
interface WorkerJson {
  cpu: number;
  directions: number;
  packets: number;
  dropped: number;
  busy_ratio: number;
}

test('N packets into a VF whose relay cannot deliver them: VF, relay and worker counters agree exactly in metrics and vio4wd stats', async () => {
  // relay 2's VF stand-in is the tap vfb, and relay 2 has no guest: whatever the kernel sends
  // into vfb the relay reads and drops as not connected. No IPv6 chatter; a static neighbour,
  // so that the only frames are the pings.
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.vfb.disable_ipv6=1']);
  await ns.addAddress('vfb', '10.0.1.1/24');
  await ns.linkUp('vfb');
  await ns.ip('neigh', 'replace', '10.0.1.2', 'lladdr', '02:00:00:00:01:02', 'dev', 'vfb', 'nud', 'permanent');
  await new Promise((r) => setTimeout(r, 300));
  const scrape = async (): Promise<string> => (await agent.http('http://127.0.0.1:9464/metrics')).body;
  const relay2 = async (): Promise<RelayJsonExt> => (JSON.parse(await agent.cli('stats', '--ipc-dir', ipc, '--relay', '2', '--json')) as RelayJsonExt[])[0]!;
  const worker = async (): Promise<WorkerJson> => (JSON.parse(await agent.cli('stats', '--ipc-dir', ipc, '--workers', '--json')) as WorkerJson[]).find((w) => w.cpu === 1)!;
  const L = 'relay="relay-2",id="2"';
  const DROP = `${L},direction="vf_to_vm",reason="not_connected"`;

  const m0 = await scrape();
  const s0 = await relay2();
  const w0 = await worker();
  const k0 = await ns.linkStats('vfb');
  const N = 200;
  await ns.exec('ping', ['-n', '-q', '-c', String(N), '-i', '0.005', '-W', '1', '10.0.1.2']).catch(() => undefined); // no replies: exits 1
  const k1 = await ns.linkStats('vfb');
  assert.equal(k1.txPackets - k0.txPackets, N, 'the kernel sent exactly the pings into the VF stand-in');
  // until the relay has read them all
  const m1 = await until('the relay to count the pings as dropped', async () => {
    const m = await scrape();
    return metric(m, 'vio4wd_relay_dropped_packets_total', DROP) - metric(m0, 'vio4wd_relay_dropped_packets_total', DROP) >= N ? m : undefined;
  }, { timeoutMs: 10_000, intervalMs: 100 });
  const d = (name: string, labels: string): number => metric(m1, name, labels) - metric(m0, name, labels);
  assert.equal(d('vio4wd_vf_rx_packets_total', L), N, 'the VF driver received N');
  assert.equal(d('vio4wd_relay_rx_packets_total', `${L},direction="vf_to_vm"`), N, 'the relay read N from the VF');
  assert.equal(d('vio4wd_relay_dropped_packets_total', DROP), N, 'and dropped N: no guest');
  assert.equal(d('vio4wd_relay_tx_packets_total', `${L},direction="vf_to_vm"`), 0);
  assert.equal(d('vio4wd_vf_dropped_packets_total', `${L},direction="rx",reason="missed"`), 0, 'the relay kept up: the NIC missed none');
  assert.ok(d('vio4wd_worker_dropped_packets_total', 'cpu="1"') >= N, 'the worker counted the drops');
  assert.ok(d('vio4wd_worker_busy_seconds_total', 'cpu="1"') > 0, 'busy time grew');
  assert.ok(d('vio4wd_worker_idle_seconds_total', 'cpu="1"') > 0, 'idle time grew');
  assert.equal(metric(m1, 'vio4wd_worker_relay_directions', 'cpu="1"'), 4, 'two relays, two directions each');
  // the worker's drops are the relays' drops, all of them, in one scrape (nothing in flight)
  const relayDrops = [...m1.matchAll(/^vio4wd_relay_dropped_packets_total\{[^}]*\} (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
  assert.equal(metric(m1, 'vio4wd_worker_dropped_packets_total', 'cpu="1"'), relayDrops);

  // vio4wd stats: the same N, from the VF's counters and the relay's
  const s1 = await relay2();
  assert.equal((s1.vf_port?.rx_packets ?? 0) - (s0.vf_port?.rx_packets ?? 0), N);
  assert.equal((s1.vf_to_vm.pkts_dropped_vm_not_connected ?? 0) - (s0.vf_to_vm.pkts_dropped_vm_not_connected ?? 0), N);
  const w1 = await worker();
  assert.ok(w1.dropped - w0.dropped >= N, `worker drops ${w0.dropped} -> ${w1.dropped}`);
  assert.ok(w1.packets - w0.packets >= N);
  assert.equal(w1.directions, 4);
  // the table views name the columns a user reads
  const table = await agent.cli('stats', '--ipc-dir', ipc, '--workers');
  assert.match(table, /^CPU\s+RELAY DIRS\s+BUSY %\s+PKTS\s+DROPPED\s+PPS\s+CYCLES\/PKT$/m);
  assert.match(table, /^\s*1\s+4\s+\d+\.\d\s+\d+\s+\d+/m);
  assert.match(await agent.cli('stats', '--ipc-dir', ipc, '--relay', '2'), /NIC DROP/);
  // and the build it runs
  assert.match(m1, /^vio4wd_build_info\{version="\d+\.\d+\.\d+",commit="(?:[0-9a-f]{40}|unknown)",dpdk_version="22\.11[^"]*",node_version="\d+\.\d+\.\d+"\} 1$/m);
});

test('a bad ZeroMQ ADD gets an error reply naming the VF; forwarding goes on', async () => {
  await assert.rejects(agent.cli('relay', 'add', '--ipc-dir', ipc, '--id', '7', '--pci', '0000:99:00.1'), (e: { stderr?: string }) => {
    assert.match(e.stderr ?? '', /0000:99:00\.1/);
    return true;
  });
  const ls = JSON.parse(await agent.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  assert.deepEqual(ls.map((x) => x.id), [1, 2], 'nothing left behind');
  assert.equal((await ping(3)).received, 3);
});

test('QUERY_PCI and core scheduling against the live agent', async () => {
  const out = await agent.cli('relay', 'query-pci', '--ipc-dir', ipc, '--socket', join(sockDir, 'virtio-forwarder1.sock'));
  assert.equal(out.trim(), 'net_tap_a1,iface=vfa');
  const client = new ControlClient({ endpoints: { coreSched: `ipc://${ipc}/core_sched` } });
  {
    const cores = await client.coreSched({ op: 1 });
    assert.deepEqual(cores.eal_cores, [1]);
    const ok = await client.coreSched({ op: 0, relay_cpu_map: [{ relay_number: 1, vf2virtio_cpu: 1, virtio2vf_cpu: 1 }] });
    assert.equal(ok.status, 1);
    const bad = await client.coreSched({ op: 0, relay_cpu_map: [{ relay_number: 1, vf2virtio_cpu: 0, virtio2vf_cpu: 1 }] });
    assert.equal(bad.status, 0);
    assert.match(bad.error_code_source ?? '', /CPU 0 runs no worker/);
  }
  assert.equal((await ping(3)).received, 3);
});

test('10,000 malformed control frames: every one answered, and the agent still serves and forwards', async () => {
  const endpoints = { portControl: `ipc://${ipc}/port_control`, stats: `ipc://${ipc}/stats`, coreSched: `ipc://${ipc}/core_sched` };
  const cases = fuzzCases(['portControl', 'stats', 'coreSched'], 10_000, 4242);
  const report = await runControlFuzz(endpoints, cases, FUZZ_LIMITS);
  assert.ok(report.sent >= 10_000);
  assert.equal(agent.exitCode, null, 'agent still running');
  assert.equal((await ping(5)).received, 5);
  const ls = JSON.parse(await agent.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  assert.deepEqual(ls.map((x) => x.id), [1, 2]);
});

test('REMOVE names what a relay really relays when asked to remove another VF', async () => {
  await assert.rejects(agent.cli('relay', 'rm', '--ipc-dir', ipc, '--id', '2', '--pci', '0000:05:00.1'), (e: { stderr?: string }) => {
    assert.match(e.stderr ?? '', /relay 2 relays net_tap_a2,iface=vfb, not 0000:05:00\.1/);
    return true;
  });
  const ls = JSON.parse(await agent.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  assert.deepEqual(ls.map((x) => x.id), [1, 2]);
});

test('SIGTERM: clean exit, sockets unlinked, no hugepage files; a restart rebuilds every relay from the config', async () => {
  await vm?.quit();
  vm = undefined;
  const code = await agent.stop();
  assert.equal(code, 0, agent.output.slice(-2000));
  assert.deepEqual(readdirSync(sockDir), []);
  assert.deepEqual(readdirSync('/dev/hugepages').filter((f) => f.startsWith('vio4wd')), []);
  assert.match(agent.output, /"msg":"vio4wd agent stopped"/);

  agent = await AgentProcess.start({ config: config(), workDir: tmp.path, netns: ns });
  await ns.addAddress('vfa', '10.0.0.1/24');
  await ns.linkUp('vfa');
  vm = await startVm();
  await vm.cmd('start');
  const ls = JSON.parse(await agent.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
  assert.deepEqual(ls.map((x) => x.id), [1, 2]);
  assert.equal((await ping(5)).received, 5);
});

test('a virtio-forwarder settings file starts the agent, naming what it ignores', async () => {
  await vm?.quit();
  vm = undefined;
  await agent.stop();
  const envFile = join(tmp.path, 'virtioforwarder');
  writeFileSync(
    envFile,
    [
      'VIRTIOFWD_CPU_MASK=1',
      'VIRTIOFWD_MASTER_LCORE=0',
      `VIRTIOFWD_SOCKET_DIR=${sockDir}`,
      `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${ipc}/pc`,
      `VIRTIOFWD_ZMQ_STATS_EP=ipc://${ipc}/st`,
      `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${ipc}/cs`,
      'VIRTIOFWD_OVSDB_SOCK_PATH=/var/run/openvswitch/db.sock',
      'VIRTIOFWD_ZERO_COPY=1',
      '',
    ].join('\n'),
  );
  agent = await AgentProcess.start({
    config: envFile,
    workDir: tmp.path,
    netns: ns,
    args: ['--metrics-address', '127.0.0.1:9465'],
  });
  assert.match(agent.output, /VIRTIOFWD_OVSDB_SOCK_PATH: ignored, as by virtio-forwarder: port control is ZeroMQ/);
  assert.match(agent.output, /VIRTIOFWD_ZERO_COPY: DPDK 22\.11 removed/);
  // its endpoints are where the settings file put them
  const st = JSON.parse(await agent.cli('stats', '--endpoint', `ipc://${ipc}/st`, '--json')) as RelayJson[];
  assert.deepEqual(st, []);
  assert.equal(await agent.stop(), 0);
  // this agent used hugepage files (no in-memory mode): they are released at exit
  assert.deepEqual(readdirSync('/dev/hugepages').filter((f) => f.startsWith('vio4wd')), []);
});
