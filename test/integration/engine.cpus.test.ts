// Worker assignment on real DPDK with two workers (CPUs 0 and 1): the default spreads a relay's
// two directions over the workers, explicit CPUs are honoured, and setRelayCpus moves a
// direction at runtime while traffic keeps its exact counts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine, EngineError } from '../../src/engine/index.js';
import { removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { until } from '../helpers/wait.js';

describe('worker assignment (two workers)', { timeout: 120_000 }, () => {
  const dir = tempDir('cpus');
  let engine: Engine;
  const peers: Testpmd[] = [];
  before(async () => {
    engine = await Engine.start({ workerCpus: [0, 1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('cpus'), poolQueuePairs: 8, rxDescriptors: 64, txDescriptors: 64 });
  });
  after(async () => {
    for (const p of peers) p.kill();
    await engine?.stop();
    removeDir(dir);
  });

  const directions = (): number[] => engine.workers().map((w) => w.directions);

  test('directions spread over the workers; explicit CPUs are honoured', async () => {
    assert.deepEqual(engine.workers().map((w) => w.cpu), [0, 1]);
    const a = await engine.addRelay({ id: 1, vf: { devargs: `net_vhost1,iface=${join(dir, 'vf1.sock')}` }, socketPath: join(dir, 'vm1.sock'), mode: 'server', queues: 1 });
    assert.notEqual(a.cpus.vfToVm, a.cpus.vmToVf, 'the two directions of a relay go to different workers');
    assert.deepEqual(directions(), [1, 1]);
    const b = await engine.addRelay({
      id: 2, vf: { devargs: `net_vhost2,iface=${join(dir, 'vf2.sock')}` }, socketPath: join(dir, 'vm2.sock'), mode: 'server', queues: 1, cpus: { vfToVm: 1, vmToVf: 1 },
    });
    assert.deepEqual(b.cpus, { vfToVm: 1, vmToVf: 1 });
    assert.deepEqual(directions(), [1, 3]);
    await engine.removeRelay(2);
    assert.deepEqual(directions(), [1, 1]);
  });

  test('setRelayCpus moves a direction while traffic flows; counts stay exact', async () => {
    const vf = join(dir, 'vf1.sock');
    const vm = join(dir, 'vm1.sock');
    const tp = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vf}`, `net_virtio_user1,path=${vm}`] });
    peers.push(tp);
    await until('relay 1 connected', () => engine.relay(1)?.guestConnected === true && engine.relay(1)?.linkUp === true);
    const send = async (expect: number): Promise<void> => {
      await tp.cmd('start tx_first 1');
      await tp.waitRx(0, expect);
      await tp.waitRx(1, expect);
      await tp.cmd('stop');
    };
    await send(8);
    const before = engine.relay(1)!.cpus;
    const moved = await engine.setRelayCpus(1, { vfToVm: before.vmToVf, vmToVf: before.vfToVm });
    assert.deepEqual(moved.cpus, { vfToVm: before.vmToVf, vmToVf: before.vfToVm });
    assert.deepEqual(directions(), [1, 1]);
    await send(16);
    const both = await engine.setRelayCpus(1, { vmToVf: 0 });
    assert.equal(both.cpus.vmToVf, 0);
    assert.deepEqual(directions(), [moved.cpus.vfToVm === 0 ? 2 : 1, moved.cpus.vfToVm === 0 ? 0 : 1]);
    await send(24);
    const s = engine.stats(1);
    assert.equal(s.vfToVm.txPackets, 24);
    assert.equal(s.vmToVf.txPackets, 24);
    assert.equal(s.vfToVm.droppedQueueFullPackets + s.vfToVm.droppedNotConnectedPackets, 0);
    await assert.rejects(engine.setRelayCpus(1, { vfToVm: 2 }), (e: unknown) => e instanceof EngineError && e.code === 'EINVAL' && /cpus\.vfToVm: CPU 2 runs no worker/.test(e.message));
    await assert.rejects(engine.setRelayCpus(9, { vfToVm: 0 }), { code: 'ENOENT', message: /relay 9 does not exist/ });
    await tp.quit();
  });
});
