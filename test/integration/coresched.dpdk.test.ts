// The core scheduler on the real DPDK engine, started the virtio-forwarder way (a settings file
// with VIO4WD_CORE_SCHED_*): two worker CPUs, two relays pinned to CPU 0 by VIRTIOFWD_CPU_PINS
// (virtio-forwarder's scheduler overrides pins, and so does vio4wd's here), traffic on all four
// directions. The scheduler moves directions to CPU 1, virtio-forwarder's stats fields and
// `vio4wd stats` show the new CPUs, the metrics count the moves, and every packet that went into
// a relay came out: testpmd keeps a fixed number of packets circling through the relays while
// they move, then drains them and counts sent = received.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { testTempDir } from '../helpers/netns.js';
import { Testpmd } from '../helpers/dpdk.js';
import { AgentProcess } from '../helpers/agent.js';
import { until } from '../helpers/wait.js';

interface Dir {
  internal_state: string;
  pkts_rx_from_vf?: string;
  pkts_tx_to_vm?: string;
  pkts_dropped_vm_queue_full?: string;
  pkts_dropped_vm_not_connected?: string;
  pkts_rx_from_vm?: string;
  pkts_tx_to_vf?: string;
  pkts_dropped_vf_queue_full?: string;
  pkts_dropped_vf_not_connected?: string;
}
interface RelayJson {
  id: number;
  cpu?: { vf_to_vm?: number; vm_to_vf?: number };
  vf_to_vm: Dir;
  vm_to_vf: Dir;
}
interface WorkerJson {
  cpu: number;
  directions?: number;
}

const METRICS = '127.0.0.1:9473';
const PORTS = 4;
const BURST = 8;
const BURSTS = 2;

let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let tp: Testpmd | undefined;

before(() => {
  tmp = testTempDir('coresched');
});

after(async () => {
  tp?.kill();
  if (agent && agent.exitCode === null) await agent.stop();
  tmp?.remove();
});

const n = (v: string | undefined): number => Number(v ?? 0);


test('skewed load: the core scheduler moves relays to the idle worker, losing no packet', async () => {
  const ipc = join(tmp.path, 'ipc');
  const sockDir = join(tmp.path, 'sock');
  const vf = (i: number): string => join(tmp.path, `vf${i}.sock`);
  const envFile = join(tmp.path, 'virtioforwarder');
  writeFileSync(
    envFile,
    [
      'VIRTIOFWD_CPU_MASK=0,1',
      'VIRTIOFWD_MASTER_LCORE=0',
      'VIRTIOFWD_STATIC_VFS=(0000:00:11.1=1 0000:00:11.2=2)',
      'VIRTIOFWD_CPU_PINS=(1:0 2:0)', // both relays, both ways, on CPU 0: CPU 1 idles
      'VIRTIOFWD_VHOST_CLIENT=',
      `VIRTIOFWD_SOCKET_DIR=${sockDir}`,
      `VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc://${ipc}/port_control`,
      `VIRTIOFWD_ZMQ_STATS_EP=ipc://${ipc}/stats`,
      `VIRTIOFWD_ZMQ_CORE_SCHED_EP=ipc://${ipc}/core_sched`,
      'VIO4WD_CORE_SCHED_ENABLE=true',
      'VIO4WD_CORE_SCHED_POLL_INTERVAL=1',
      'VIO4WD_CORE_SCHED_SENSITIVITY=0.25',
      'VIO4WD_CORE_SCHED_LOG_LEVEL=7',
      'VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT=',
      '',
    ].join('\n'),
  );
  agent = await AgentProcess.start({
    config: envFile,
    workDir: tmp.path,
    args: ['--metrics-address', METRICS, '--vf-stand-in', `0000:00:11.1=net_vhost1,iface=${vf(1)}`, `0000:00:11.2=net_vhost2,iface=${vf(2)}`],
  });
  assert.match(agent.output, /"intervalMs":1000,"sensitivity":0.25,"globalNuma":false[^\n]*core scheduler started/);
  const stats = async (): Promise<RelayJson[]> => JSON.parse(await agent!.cli('stats', '--ipc-dir', ipc, '--json', '--delay', '0')) as RelayJson[];
  const workers = async (): Promise<WorkerJson[]> => JSON.parse(await agent!.cli('stats', '--ipc-dir', ipc, '--json', '--workers', '--delay', '0')) as WorkerJson[];
  const cpus = (rs: RelayJson[]): number[][] => rs.map((r) => [r.id, r.cpu?.vf_to_vm ?? -1, r.cpu?.vm_to_vf ?? -1]);
  assert.deepEqual(cpus(await stats()), [[1, 0, 0], [2, 0, 0]], 'pinned to CPU 0 at start');

  tp = await startLoop(stats, 'both relays forwarding (VF and guest side up)');
  const quietMoves = agent.logs().filter((l) => l.msg === 'relay moved to another worker CPU by the core scheduler').length;
  assert.equal(quietMoves, 0, 'no load, no moves');

  await tp.cmd(`start tx_first ${BURSTS}`);
  const moved = await until(
    'the core scheduler to move relay directions to CPU 1',
    async () => {
      const rs = await stats();
      return rs.some((r) => r.cpu?.vf_to_vm === 1 || r.cpu?.vm_to_vf === 1) ? rs : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  assert.notDeepEqual(cpus(moved), [[1, 0, 0], [2, 0, 0]]);
  // traffic goes on for a while as the scheduler sees the new layout (it may move again)
  await sleep(2000);
  // stop forwarding: the packets stay in the rings, the load is gone, and after one more
  // interval nothing moves any more
  await tp.cmd('stop');
  await sleep(2500);
  const moveLogs = agent.logs().filter((l) => l.msg === 'relay moved to another worker CPU by the core scheduler');
  assert.ok(moveLogs.length >= 1, `moves logged: ${moveLogs.length}`);
  for (const l of moveLogs) assert.ok(typeof l.toCpu === 'number' && typeof l.fromCpu === 'number' && l.toCpu !== l.fromCpu, JSON.stringify(l));
  assert.ok(agent.logs().some((l) => l.msg === 'core scheduler: moving relays between worker CPUs' && typeof l.variation === 'number'));

  // the stats show where each direction runs now, in virtio-forwarder's fields and in the table
  const now = await stats();
  assert.ok(cpus(now).flatMap((c) => c.slice(1)).includes(1), JSON.stringify(cpus(now)));
  const ws = await workers();
  assert.deepEqual(ws.map((w) => w.cpu), [0, 1]);
  assert.ok((ws[1]!.directions ?? 0) >= 1 && (ws[0]!.directions ?? 0) + (ws[1]!.directions ?? 0) === 4, JSON.stringify(ws));
  // the last move of each direction is where the stats say it is
  for (const r of now) {
    for (const [d, field] of [['vfToVm', 'vf_to_vm'], ['vmToVf', 'vm_to_vf']] as const) {
      const last = moveLogs.filter((l) => l.id === r.id && l.direction === d).at(-1);
      if (last) assert.equal(r.cpu?.[field], last.toCpu, `relay ${r.id} ${d}`);
      else assert.equal(r.cpu?.[field], 0, `relay ${r.id} ${d} never moved`);
    }
  }
  const text = await agent.cli('stats', '--ipc-dir', ipc, '--delay', '0');
  const cpuCol = text.split('\n').slice(1).filter(Boolean).map((l) => l.trim().split(/\s+/).slice(0, 4));
  assert.deepEqual(
    cpuCol.map((c) => [Number(c[0]), c[1], Number(c[3])]),
    now.flatMap((r) => [[r.id, 'vf->vm', r.cpu!.vf_to_vm], [r.id, 'vm->vf', r.cpu!.vm_to_vf]]),
    text,
  );
  // the metrics count each move
  const metrics = await (await fetch(`http://${METRICS}/metrics`)).text();
  const counted = [...metrics.matchAll(/^vio4wd_core_sched_moves_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
  assert.equal(counted, moveLogs.length);
  assert.match(metrics, /^vio4wd_core_sched_load_variation\{numa_node="0"\} [\d.e-]+$/m);

  // drain: whatever circles ends in testpmd's rx queues and is received now without being sent
  // on. The packets sent first were all still circling: none was lost in any move.
  await tp.cmd('set fwd rxonly');
  await tp.cmd('start');
  await sleep(500);
  const drained = await tp.cmd('stop');
  assert.equal(Number(/Accumulated forward statistics[\s\S]*?RX-packets:\s+(\d+)/.exec(drained)?.[1]), PORTS * BURST * BURSTS, drained);
  const ports = [];
  for (let p = 0; p < PORTS; p++) ports.push(await tp.portStats(p));
  const sent = ports.reduce((a, p) => a + p.txPackets, 0);
  const received = ports.reduce((a, p) => a + p.rxPackets, 0);
  assert.ok(sent > PORTS * BURST * BURSTS * 100, `traffic flowed while relays moved: ${sent} packets`);
  assert.equal(received, sent, `testpmd sent ${sent} packets into the relays and got ${received} back`);
  const end = await stats();
  let relayIn = 0;
  let relayOut = 0;
  for (const r of end) {
    const up = r.vf_to_vm;
    const down = r.vm_to_vf;
    assert.equal(n(up.pkts_rx_from_vf), n(up.pkts_tx_to_vm), `relay ${r.id} vf->vm: in = out`);
    assert.equal(n(down.pkts_rx_from_vm), n(down.pkts_tx_to_vf), `relay ${r.id} vm->vf: in = out`);
    assert.equal(n(up.pkts_dropped_vm_queue_full) + n(up.pkts_dropped_vm_not_connected) + n(down.pkts_dropped_vf_queue_full) + n(down.pkts_dropped_vf_not_connected), 0, `relay ${r.id} dropped nothing`);
    relayIn += n(up.pkts_rx_from_vf) + n(down.pkts_rx_from_vm);
    relayOut += n(up.pkts_tx_to_vm) + n(down.pkts_tx_to_vf);
  }
  assert.equal(relayIn, sent, 'the relays received what testpmd sent');
  assert.equal(relayOut, received, 'and sent on what testpmd received');
  assert.deepEqual(cpus(end), cpus(now), 'no move without load');
  await tp.quit();
  tp = undefined;
  assert.equal(await agent.stop(), 0);
  agent = undefined;
});

test('virtio-forwarder\'s core pinner places relays over ZeroMQ, and the built-in scheduler leaves them there', async () => {
  // the same agent, relays and load as above; this time a core pinner client (what
  // virtioforwarder_core_pinner.py sends and reads: test/fixtures/control/core_pinner_client.py)
  // places every direction on CPU 1 before the load starts
  const ipc = join(tmp.path, 'ipc');
  const vf = (i: number): string => join(tmp.path, `vf${i}.sock`);
  agent = await AgentProcess.start({
    config: join(tmp.path, 'virtioforwarder'),
    workDir: tmp.path,
    args: ['--metrics-address', METRICS, '--vf-stand-in', `0000:00:11.1=net_vhost1,iface=${vf(1)}`, `0000:00:11.2=net_vhost2,iface=${vf(2)}`],
  });
  const pb2 = join(tmp.path, 'pb2');
  mkdirSync(pb2, { recursive: true });
  execFileSync('protoc', [`--proto_path=${join(import.meta.dirname, '..', '..', 'proto', 'virtioforwarder')}`, `--python_out=${pb2}`, 'virtioforwarder.proto']);
  const pinner = async (...maps: string[]): Promise<Record<string, unknown>> => {
    const script = join(import.meta.dirname, '..', 'fixtures', 'control', 'core_pinner_client.py');
    const out = await new Promise<string>((resolve, reject) => {
      execFile('/usr/bin/python3', [script, pb2, `ipc://${ipc}/stats`, `ipc://${ipc}/core_sched`, '200', ...maps], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    return JSON.parse(out) as Record<string, unknown>;
  };
  const stats = async (): Promise<RelayJson[]> => JSON.parse(await agent!.cli('stats', '--ipc-dir', ipc, '--json', '--delay', '0')) as RelayJson[];
  const cpus = (rs: RelayJson[]): number[][] => rs.map((r) => [r.id, r.cpu?.vf_to_vm ?? -1, r.cpu?.vm_to_vf ?? -1]);
  tp = await startLoop(stats, 'both relays active');

  // --print-core-map: the EAL cores are the workers, and every active relay's CPUs are among them
  const map = await pinner();
  assert.deepEqual([map.stats_status, map.eal_status, map.eal_cores], ['OK', 'OK', [0, 1]]);
  assert.deepEqual(map.before, { 0: { VM2VF: [1, 2], VF2VM: [1, 2] }, 1: { VM2VF: [], VF2VM: [] } });
  assert.deepEqual((map.rates as number[][]).map((r) => [r[0], r[1]]), [[1, 0], [2, 0]], 'relay ids and NUMA nodes as the scheduler script reads them');
  // --virtio-cpu=1:1,1 --virtio-cpu=2:1,1: everything onto CPU 1
  const placed = await pinner('1:1,1', '2:1,1');
  assert.deepEqual(placed.update, { status: 'OK' });
  assert.deepEqual(placed.after, { 0: { VM2VF: [], VF2VM: [] }, 1: { VM2VF: [1, 2], VF2VM: [1, 2] } });
  // a CPU without a worker is refused whole, naming the workers
  const bad = await pinner('1:0,0', '2:7,1');
  assert.equal((bad.update as { status: string }).status, 'ERROR');
  assert.match((bad.update as { error_code_source: string }).error_code_source, /CPU 7 runs no worker: use one of 0, 1/);
  assert.deepEqual(bad.after, placed.after, 'nothing moved');

  // load on all four directions, all on CPU 1, CPU 0 idle: the layout the scheduler fixed in the
  // test above within a few intervals. It leaves the pinner's placement alone.
  await tp.cmd(`start tx_first ${BURSTS}`);
  await sleep(4500);
  await tp.cmd('stop');
  assert.deepEqual(cpus(await stats()), [[1, 1, 1], [2, 1, 1]]);
  assert.equal(agent.logs().filter((l) => l.msg === 'relay moved to another worker CPU by the core scheduler').length, 0);
  const ports = [];
  for (let p = 0; p < PORTS; p++) ports.push(await tp.portStats(p));
  assert.ok(ports.reduce((a, p) => a + p.txPackets, 0) > PORTS * BURST * BURSTS * 100, 'traffic flowed');
  await tp.quit();
  tp = undefined;
  assert.equal(await agent.stop(), 0);
  agent = undefined;
});

/**
 * testpmd on CPU 0 with port pairs 0<->1 and 2<->3: each VF side forwards to its VM side and
 * back, so the packets sent first circle through all four relay directions until testpmd stops;
 * resolves once both relays are up on both sides.
 */
async function startLoop(stats: () => Promise<RelayJson[]>, what: string): Promise<Testpmd> {
  const sockDir = join(tmp.path, 'sock');
  const vf = (i: number): string => join(tmp.path, `vf${i}.sock`);
  const t = await Testpmd.start({
    cpu: 0,
    fwd: 'io',
    burst: BURST,
    vdevs: [
      `net_virtio_user0,path=${vf(1)}`,
      `net_virtio_user1,path=${join(sockDir, 'virtio-forwarder1.sock')}`,
      `net_virtio_user2,path=${vf(2)}`,
      `net_virtio_user3,path=${join(sockDir, 'virtio-forwarder2.sock')}`,
    ],
    // packets waiting in rx queues are counted, not thrown away, when forwarding starts again
    args: ['--no-flush-rx'],
  });
  await until(what, async () => (await stats()).every((r) => r.vf_to_vm.internal_state === 'DPDK_READY' && r.vm_to_vf.internal_state === 'VIRTIO_READY'), { timeoutMs: 20_000, intervalMs: 200 });
  return t;
}
