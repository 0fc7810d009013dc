// vio4wd as a drop-in for virtio-forwarder, with the real DPDK engine: a settings file written in
// the value forms virtio-forwarder's shipped /etc/default/virtioforwarder documents, and
// virtio-forwarder's own command line (as its start script passes it), each start the agent
// with virtio-forwarder's meaning. VFs are DPDK tap devices that PCI addresses stand for.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Netns, testTempDir } from '../helpers/netns.js';
import { Testpmd } from '../helpers/dpdk.js';
import { AgentProcess } from '../helpers/agent.js';
import { until } from '../helpers/wait.js';

const execFileP = promisify(execFile);

interface RelayJson {
  id: number;
  active: boolean;
  cpu?: { vf_to_vm?: number; vm_to_vf?: number };
  vhost: { vhost_socket_name: string };
  vf?: { pci_addr_str?: string };
  vf_to_vm: { internal_state: string };
  vm_to_vf: { internal_state: string };
}

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let vm: Testpmd | undefined;
let sockDir: string;
let ipc: string;

// a null device takes any frame size; a tap at most 1522-byte frames (MTU 1504)
const STAND_INS = ['0000:00:10.1=net_tap_d0,iface=vfd0', '0000:00:10.2=net_tap_d1,iface=vfd1', '0000:00:10.3=net_null_d2'];

before(async () => {
  ns = await Netns.create('dropin');
  tmp = testTempDir('dropin');
  sockDir = join(tmp.path, 'sock');
  ipc = join(tmp.path, 'ipc');
});

after(async () => {
  await vm?.quit();
  if (agent && agent.exitCode === null) await agent.stop();
  await ns?.destroy();
  tmp?.remove();
});

async function ping(count: number, ip = '10.0.0.2'): Promise<number> {
  const r = await execFileP('ip', ['netns', 'exec', ns.name, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '2', ip], { encoding: 'utf8' }).catch(
    (e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }),
  );
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

async function mtu(ifname: string): Promise<number> {
  const out = await ns.exec('cat', [`/sys/class/net/${ifname}/mtu`]);
  return Number(out.trim());
}

const allRelays = async (): Promise<RelayJson[]> => JSON.parse(await agent!.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
/** The relays that have a VF (the others are the sockets made at start). */
const relays = async (): Promise<RelayJson[]> => (await allRelays()).filter((r) => r.vf?.pci_addr_str);
const sock = (id: number): string => join(sockDir, `virtio-forwarder${id}.sock`);

test('a settings file in the shipped forms starts the agent with virtio-forwarder\'s meaning', async () => {
  const envFile = join(tmp.path, 'virtioforwarder');
  writeFileSync(
    envFile,
    [
      '# forms as virtio-forwarder\'s shipped settings file documents them',
      'VIRTIOFWD_CPU_MASK=1',
      'VIRTIOFWD_LOG_LEVEL=6',
      'VIRTIOFWD_IPC_PORT_CONTROL=', // empty: ZeroMQ port control still on (its endpoint is set)
      'VIRTIOFWD_OVSDB_SOCK_PATH=',
      'VIRTIOFWD_JUMBO=y', // VF MTU 9000, as virtio-forwarder sets it
      'VIRTIOFWD_MRGBUF=y',
      'VIRTIOFWD_TSO=',
      'VIRTIOFWD_SOCKET_OWNER=',
      'VIRTIOFWD_SOCKET_GROUP=',
      'VIRTIOFWD_STATIC_VFS=0000:00:10.3=0', // the scalar form
      'VIRTIOFWD_DYNAMIC_SOCKETS=',
      'VIRTIOFWD_CPU_NIC_SAME_NUMA=',
      'VIRTIOFWD_VFIO_VF_TOKEN=0', // virtio-forwarder's default token
      'VIO4WD_CORE_SCHED_ENABLE=true',
      'VIO4WD_CORE_SCHED_SENSITIVITY=',
      'VIRTIOFWD_CPU_PINS=0:1,1', // the scalar form: relay 0, CPU 1 both ways
      `VIRTIOFWD_PID_DIR=${tmp.path}`,
      'VIRTIOFWD_ZMQ_CONFIG_EP=',
      `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${ipc}/port_control`,
      `VIRTIOFWD_ZMQ_STATS_EP=ipc://${ipc}/stats`,
      `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${ipc}/core_sched`,
      `VIRTIOFWD_SOCKET_DIR=${sockDir}`,
      'VIRTIOFWD_SOCKET_FNAME_PATTERN=',
      'VIRTIOFWD_BINARY=/usr/bin/virtio-forwarder',
      'VIRTIOFWD_MASTER_LCORE=0',
      'VIRTIOFWD_VHOST_CLIENT=',
      'VIRTIOFWD_ZERO_COPY=',
      'VIRTIOFWD_BIND_VFIO_PCI=7f:1f.7', // a short PCI address (no such device here)
      '',
    ].join('\n'),
  );
  agent = await AgentProcess.start({
    config: envFile,
    workDir: tmp.path,
    netns: ns,
    args: ['--metrics-address', '127.0.0.1:9466', '--vf-stand-in', ...STAND_INS],
  });
  const out = agent.output;
  assert.doesNotMatch(out, /VIRTIOFWD_BINARY/, 'VIRTIOFWD_BINARY is a known setting');
  // the short address was taken for a PCI address (0000: assumed), not for a PF name
  assert.match(out, /"vf":"0000:7f:1f\.7".*could not bind VF to vfio-pci/);
  assert.doesNotMatch(out, /no SR-IOV PF named/);
  // VIRTIOFWD_VFIO_VF_TOKEN=0 gives EAL virtio-forwarder's default token
  assert.match(out, /"ealArgs":\[[^\]]*"--vfio-vf-token=14d63f20-8445-11ea-8900-1f9ce7d5650d"/);
  assert.equal(readFileSync(join(tmp.path, 'virtio-forwarder.pid'), 'utf8').trim(), String(agent.pid));

  // the static VF is relay 0 on CPU 1 both ways
  let ls = await relays();
  assert.deepEqual(
    ls.map((r) => [r.id, r.vf?.pci_addr_str, r.cpu?.vf_to_vm, r.cpu?.vm_to_vf, r.vhost.vhost_socket_name]),
    [[0, '0000:00:10.3', 1, 1, join(sockDir, 'virtio-forwarder0.sock')]],
  );
  assert.match(out, /"relay":"relay-0"[^\n]*"msg":"relay attached"/);
  // VIRTIOFWD_DYNAMIC_SOCKETS empty: the sockets of relay ids 0..63 are there from the start
  assert.deepEqual((await allRelays()).map((r) => r.id), Array.from({ length: 64 }, (_, id) => id));
  for (let id = 0; id < 64; id++) assert.ok(existsSync(sock(id)), `socket of relay ${id}`);

  // port control answers although VIRTIOFWD_IPC_PORT_CONTROL is empty; the jumbo MTU reaches
  // the VF: a tap takes no 9000-byte MTU, so the ADD fails saying so (virtio-forwarder's ADD
  // fails there too) and leaves nothing behind
  await assert.rejects(agent.cli('relay', 'add', '--ipc-dir', ipc, '--id', '5', '--pci', '0000:00:10.2'), (e: { stderr?: string }) => {
    assert.match(e.stderr ?? '', /mtu 9000: VF net_tap_d1 takes frames of at most 1522 bytes \(MTU 1504\)/);
    return true;
  });
  ls = await relays();
  assert.deepEqual(ls.map((r) => r.id), [0]);
  assert.ok(existsSync(sock(5)), 'the failed ADD leaves relay 5\'s socket as it was');
  // ADD_SOCK finds no free relay, as in virtio-forwarder: the error names the setting
  await assert.rejects(agent.cli('relay', 'add', '--ipc-dir', ipc, '--socket', join(sockDir, 'extra.sock'), '--pci', '0000:00:10.2'), (e: { stderr?: string }) => {
    assert.match(e.stderr ?? '', /VIRTIOFWD_DYNAMIC_SOCKETS=y/);
    return true;
  });
  // the empty config endpoint is not served; core scheduling is (VIO4WD_CORE_SCHED_ENABLE=true)
  assert.equal(existsSync(join(ipc, 'config')), false);
  assert.equal(existsSync(join(ipc, 'core_sched')), true);
  assert.equal(await agent.stop(), 0);
  agent = undefined;
  assert.equal(existsSync(join(tmp.path, 'virtio-forwarder.pid')), false, 'pid file removed at exit');
});

test('virtio-forwarder\'s command line, as its start script passes it, runs the agent', async () => {
  if (agent && agent.exitCode === null) await agent.stop();
  const args = [
    '-C1', '--nodaemon=log_syslog', '-l6', '-M0', `-p${tmp.path}`,
    `--zmq-port-control-ep=ipc://${ipc}/port_control`, `--zmq-stats-ep=ipc://${ipc}/stats`,
    '--ipc', `--vhost-path=${sockDir}`, '--enable-mrgbuf', '-c3:1,1', '-P0000:00:10.1=3',
    '--vfio-vf-token=0', '--metrics-address', '127.0.0.1:9466', '--vf-stand-in', STAND_INS[0]!,
  ];
  agent = await AgentProcess.start({ config: '', command: args, workDir: tmp.path, netns: ns });
  const ls = await relays();
  assert.deepEqual(
    ls.map((r) => [r.id, r.vf?.pci_addr_str, r.cpu?.vf_to_vm, r.vhost.vhost_socket_name]),
    [[3, '0000:00:10.1', 1, join(sockDir, 'virtio-forwarder3.sock')]],
  );
  assert.equal(await mtu('vfd0'), 1500, 'no -J: the VF keeps its MTU');
  // no -s: virtio-forwarder serves no core scheduling endpoint, and neither does vio4wd
  assert.equal(existsSync(join(ipc, 'core_sched')), false);
  assert.match(agent.output, /"--vfio-vf-token=14d63f20-8445-11ea-8900-1f9ce7d5650d"/);
  assert.equal(readFileSync(join(tmp.path, 'virtio-forwarder.pid'), 'utf8').trim(), String(agent.pid));

  // relay 3 forwards: a "VM" on its socket answers pings from behind the VF
  await ns.addAddress('vfd0', '10.0.0.1/24');
  await ns.linkUp('vfd0');
  vm = await Testpmd.start({
    vdevs: [`net_virtio_user0,path=${join(sockDir, 'virtio-forwarder3.sock')},queues=1,mac=52:54:00:00:00:0a`],
    fwd: 'io',
    cpu: 0,
    netns: ns.name,
    args: ['--forward-mode=icmpecho'],
  });
  await vm.cmd('start');
  assert.equal(await ping(5), 5, agent.output.slice(-2000));
  await vm.quit();
  vm = undefined;
  assert.equal(await agent.stop(), 0);
  agent = undefined;
  assert.equal(existsSync(sock(7)), false, 'the sockets go at exit');

  // a flag vio4wd does not know fails at once, naming it
  const bad = await execFileP(process.execPath, ['bin/vio4wd.js', '-C1', '--no-such-flag'], { encoding: 'utf8' }).catch((e: { code: number; stderr: string }) => e);
  assert.equal((bad as { code: number }).code, 1);
  assert.match((bad as { stderr: string }).stderr, /unknown option --no-such-flag/);
});

test('without -d the sockets are there before any ADD: a guest connects, then ADD gives it its VF', async () => {
  if (agent && agent.exitCode === null) await agent.stop();
  const base = ['-C1', '-M0', `--zmq-port-control-ep=ipc://${ipc}/port_control`, `--zmq-stats-ep=ipc://${ipc}/stats`, `--vhost-path=${sockDir}`, '--metrics-address', '127.0.0.1:9466'];
  agent = await AgentProcess.start({ config: '', command: [...base, '--vf-stand-in', STAND_INS[1]!], workDir: tmp.path, netns: ns });
  assert.deepEqual(await relays(), [], 'no VF yet');
  const before = (await allRelays()).find((r) => r.id === 7)!;
  assert.deepEqual([before.vhost.vhost_socket_name, before.vf_to_vm.internal_state, before.vm_to_vf.internal_state, before.active], [sock(7), 'DPDK_UNINIT', 'VIRTIO_UNINIT', false]);

  // the "VM" connects to relay 7's socket before relay 7 has a VF
  vm = await Testpmd.start({
    vdevs: [`net_virtio_user0,path=${sock(7)},queues=1,mac=52:54:00:00:00:0b`],
    fwd: 'io',
    cpu: 0,
    netns: ns.name,
    args: ['--forward-mode=icmpecho'],
  });
  await vm.cmd('start');
  await until('the guest side of relay 7 is up without a VF', async () => {
    const r = (await allRelays()).find((x) => x.id === 7)!;
    return r.vm_to_vf.internal_state === 'VIRTIO_READY' && r.vf_to_vm.internal_state === 'DPDK_UNINIT' && !r.active;
  }, { timeoutMs: 20_000, intervalMs: 200 });

  // port control ADD of relay 7: the guest gets the VF without reconnecting
  await agent.cli('relay', 'add', '--ipc-dir', ipc, '--id', '7', '--pci', '0000:00:10.2');
  await ns.addAddress('vfd1', '10.0.1.1/24');
  await ns.linkUp('vfd1');
  const after7 = (await relays())[0]!;
  assert.deepEqual([after7.id, after7.vf?.pci_addr_str, after7.vf_to_vm.internal_state, after7.vm_to_vf.internal_state, after7.active], [7, '0000:00:10.2', 'DPDK_READY', 'VIRTIO_READY', true]);
  assert.equal(await ping(5, '10.0.1.2'), 5, agent.output.slice(-2000));
  const connects = agent.output.split('\n').filter((l) => l.includes('"relay":"relay-7"') && l.includes('"guestConnected":"True"'));
  assert.equal(connects.length, 1, `the guest connected once:\n${connects.join('\n')}`);
  await vm.quit();
  vm = undefined;
  // virtio-forwarder's transitions: the guest goes (READY -> ADDED), REMOVE takes the VF (UNINIT)
  const state7 = async () => (await allRelays()).filter((r) => r.id === 7).map((r) => [r.vf_to_vm.internal_state, r.vm_to_vf.internal_state, r.active])[0];
  await until('relay 7 without its guest', async () => JSON.stringify(await state7()) === JSON.stringify(['DPDK_ADDED', 'VIRTIO_UNINIT', false]), { timeoutMs: 10_000, intervalMs: 200 });
  await agent.cli('relay', 'rm', '--ipc-dir', ipc, '--id', '7', '--pci', '0000:00:10.2');
  assert.deepEqual(await state7(), ['DPDK_UNINIT', 'VIRTIO_UNINIT', false]);
  assert.equal(await agent.stop(), 0);
  agent = undefined;

  // -d (VIRTIOFWD_DYNAMIC_SOCKETS): no socket at start; ADD_SOCK pairs a socket with a VF
  agent = await AgentProcess.start({ config: '', command: [...base, '-d', '--vf-stand-in', STAND_INS[2]!], workDir: tmp.path, netns: ns });
  assert.deepEqual(await allRelays(), []);
  assert.equal(existsSync(sock(0)), false);
  const dyn = join(sockDir, 'dyn.sock');
  await agent.cli('relay', 'add', '--ipc-dir', ipc, '--socket', dyn, '--pci', '0000:00:10.3');
  assert.ok(existsSync(dyn));
  assert.deepEqual((await relays()).map((r) => [r.vf?.pci_addr_str, r.vhost.vhost_socket_name]), [['0000:00:10.3', dyn]]);
  assert.equal(await agent.stop(), 0);
  agent = undefined;
});
