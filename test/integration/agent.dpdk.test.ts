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
