// Idle relays cost (nearly) nothing (issue #21): one relay among 200 idle ones on the same
// worker (net_null VFs, no guest) forwards everything, the idle relays' queue entries are not
// polled on every pass (the worker's hotEntries), and a relay that went idle forwards its first
// packets when traffic comes back, none lost. Real DPDK: the active relay's VF is a net_vhost
// device whose peer is dpdk-testpmd (CPU 0), its guest another net_virtio_user port of the same
// testpmd; the engine's worker polls CPU 1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine, type WorkerInfo } from '../../src/engine/index.js';
import { removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { sleep, until } from '../helpers/wait.js';

const IDLE = 200;
const ACTIVE = 1000;

describe(`one relay among ${IDLE} idle ones on one worker`, { timeout: 300_000 }, () => {
  const dir = tempDir('idle');
  let engine: Engine;
  let tp: Testpmd | undefined;
  const worker = (): WorkerInfo => engine.workers()[0]!;
  const idleNow = (what: string) =>
    until(`${what}: no entry of the worker hot (all idle)`, () => worker().hotEntries === 0, {
      timeoutMs: 20_000,
      detail: () => `hotEntries ${worker().hotEntries} of ${worker().entries}`,
    });

  before(async () => {
    engine = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('idle'), poolQueuePairs: 128, rxDescriptors: 64, txDescriptors: 64 });
    for (let id = 0; id < IDLE; id++)
      await engine.addRelay({ id, vf: { devargs: `net_null${id},no-rx=1` }, socketPath: join(dir, `s${id}.sock`), mode: 'server', queues: 1 });
    await engine.addRelay({ id: ACTIVE, vf: { devargs: `net_vhost${ACTIVE},iface=${join(dir, 'vf.sock')},queues=1` }, socketPath: join(dir, 'vm.sock'), mode: 'server', queues: 1 });
  });
  after(async () => {
    tp?.kill();
    await engine?.stop();
    removeDir(dir);
  });

  test('a relay waking after idle forwards its first packets, none lost (VM->VF parked until the guest came)', async () => {
    assert.equal(worker().entries, 2 * (IDLE + 1), 'one entry per relay direction');
    // nothing connected: every entry goes idle, the VM->VF ones parked (no guest)
    await idleNow('before any guest');
    // the guest and the peer behind the VF arrive; vring events wake the parked VM->VF entry
    tp = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${join(dir, 'vf.sock')},queues=1`, `net_virtio_user1,path=${join(dir, 'vm.sock')},queues=1`] });
    await until('guest connected and VF link up', () => {
      const r = engine.relay(ACTIVE);
      return !!r && r.guestConnected && r.linkUp && r.enabledQueues === 2;
    });
    await idleNow('guest connected, no traffic');
    await sleep(300); // idle for a while: the sweep has been round many times
    const wakeups = worker().wakeups;
    // 16 bursts of 8 each way at once: 128 packets in a VF ring of 256
    await tp.cmd('start tx_first 16');
    const atVm = await tp.waitRx(1, 128);
    const atVf = await tp.waitRx(0, 128);
    await tp.cmd('stop');
    const s = engine.stats(ACTIVE);
    const sentVf = await tp.portStats(0);
    const sentVm = await tp.portStats(1);
    assert.deepEqual([sentVf.txPackets, sentVm.txPackets], [128, 128], 'the peers sent all 128 each way (none refused by a full ring)');
    assert.deepEqual([atVm.rxPackets, atVf.rxPackets], [128, 128], 'all arrived at the far side');
    for (const d of [s.vfToVm, s.vmToVf]) {
      assert.deepEqual([d.rxPackets, d.txPackets, d.droppedQueueFullPackets, d.droppedNotConnectedPackets], [128, 128, 0, 0]);
    }
    assert.deepEqual([s.vf?.rxMissed, s.vf?.rxNoMbuf], [0, 0], 'the VF missed nothing');
    assert.ok(worker().wakeups >= wakeups + 2, `both directions woke from idle (wakeups ${wakeups} -> ${worker().wakeups})`);
    // the idle relays saw nothing and moved nothing
    for (const id of [0, IDLE - 1]) assert.equal(engine.stats(id).vfToVm.rxPackets + engine.stats(id).vmToVf.rxPackets, 0);
  });

  test('while it forwards, only its own entries are polled every pass, and it forwards everything', async () => {
    assert.ok(tp);
    await idleNow('after the first packets');
    const before = engine.stats(ACTIVE);
    const w0 = worker();
    await tp.cmd('set fwd io');
    await tp.cmd('start tx_first 4'); // 32 packets each way, forwarded round and round
    const hot: number[] = [];
    for (let i = 0; i < 20; i++) {
      await sleep(50);
      hot.push(worker().hotEntries);
    }
    await tp.cmd('stop');
    const sent = (await tp.portStats(0)).txPackets;
    // the relay takes everything the peer put in the VF ring, then the counters rest
    await until('the relay took all the VF peer sent', () => engine.stats(ACTIVE).vfToVm.rxPackets === sent);
    const s = engine.stats(ACTIVE);
    const moved = s.vfToVm.rxPackets - before.vfToVm.rxPackets;
    assert.ok(moved > 10_000, `the relay moved ${moved} packets VF->VM in 1 s of forwarding`);
    process.stderr.write(`[engine.idle] forwarded ${moved} packets VF->VM in 1 s; hotEntries samples ${hot.join(',')}; wakeups ${worker().wakeups}\n`);
    for (const d of [s.vfToVm, s.vmToVf]) {
      assert.equal(d.txPackets, d.rxPackets, 'every packet it took, it delivered');
      assert.deepEqual([d.droppedQueueFullPackets, d.droppedNotConnectedPackets], [0, 0]);
    }
    // its two entries hot (when the generator, on a shared CPU, paused for over a millisecond
    // they went idle and woke again), never one of the 400 idle relays' entries
    assert.ok(Math.max(...hot) > 0, `the active relay's entries were hot while it forwarded: ${hot.join(',')}`);
    assert.ok(Math.max(...hot) <= 2, `only the active relay's entries polled every pass: ${hot.join(',')}`);
    const w1 = worker();
    assert.ok(w1.busyCycles > w0.busyCycles, 'the worker counted busy cycles for the forwarding');
    assert.equal(w1.dropped, w0.dropped, 'the worker dropped nothing');
    await tp.cmd('set fwd rxonly');
  });
});
