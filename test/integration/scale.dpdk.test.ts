// Many relays on one engine (real DPDK, net_null VF stand-ins): the mbuf pool grows in steps of
// poolQueuePairs as the relays' queue pairs outgrow it, and what `vio4wd doctor` predicts for a
// relay count (src/engine/sizing.ts) covers what the engine really maps, without much to spare.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine } from '../../src/engine/index.js';
import { engineSizing } from '../../src/engine/sizing.js';
import { hugepagesForRelays } from '../../src/doctor/index.js';
import { removeDir, tempDir, uniqueName } from '../helpers/dpdk.js';

const POOL_QP = 64;
const DESC = 64;
const MiB = 2 ** 20;

describe('300 relays on one engine: pool steps and the doctor\'s hugepage formula', { timeout: 240_000 }, () => {
  const dir = tempDir('scale');
  let engine: Engine;
  const sizing = { poolQueuePairs: POOL_QP, rxDescriptors: DESC, txDescriptors: DESC, workers: 1 };

  before(async () => {
    engine = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('scale'), poolQueuePairs: POOL_QP, rxDescriptors: DESC, txDescriptors: DESC });
  });
  after(async () => {
    await engine?.stop();
    removeDir(dir);
  });

  const add = (id: number, queues = 1) =>
    engine.addRelay({ id, vf: { devargs: `net_null${id},no-rx=1` }, socketPath: join(dir, `s${id}.sock`), mode: 'server', queues });

  /** The doctor's figure against the engine's own (memsegs mapped), in pages. */
  const compare = (relays: number, queuePairs = relays) => {
    const m = engine.memory();
    const predicted = engineSizing({ ...sizing, relays, queuePairs });
    const real = Math.ceil(m.hugepageBytes / (2 * MiB));
    return { m, predicted, real };
  };

  test('the pool grows by one pool of poolQueuePairs when the relays outgrow it; the doctor covers the real use', async () => {
    const base = engine.memory();
    assert.equal(base.mempools.length, 0, 'no pool before the first relay');
    assert.ok(base.heapAllocatedBytes > 0 && base.heapAllocatedBytes <= base.hugepageBytes, `heap ${base.heapAllocatedBytes} of ${base.hugepageBytes} mapped`);
    for (let id = 0; id < 300; id++) {
      await add(id);
      const n = id + 1;
      if (![1, 64, 65, 128, 200, 300].includes(n)) continue;
      const { m, predicted, real } = compare(n);
      assert.equal(m.mempools.length, Math.ceil(n / POOL_QP), `${n} relays: ${m.mempools.map((p) => p.name).join(', ')}`);
      for (const p of m.mempools) assert.equal(p.size, POOL_QP * (DESC + DESC + 64) + 2 * 384, p.name);
      assert.equal(predicted.pools, m.mempools.length);
      // never less than the engine maps, and within 8 MiB + 5 % of it
      assert.ok(predicted.pages2M >= real, `${n} relays: the doctor says ${predicted.pages2M} pages, the engine maps ${real}`);
      assert.ok(predicted.pages2M <= real * 1.05 + 4, `${n} relays: the doctor says ${predicted.pages2M} pages, the engine maps only ${real}`);
      assert.equal(hugepagesForRelays(n, sizing), predicted.pages2M, 'vio4wd doctor --relays N uses the same formula');
      assert.ok(m.heapAllocatedBytes + m.heapFreeBytes <= m.hugepageBytes);
    }
    assert.equal(engine.relays().length, 300);
  });

  test('removing and adding the 300 again takes no new pool: the pools are reused', async () => {
    const before = engine.memory();
    for (let id = 0; id < 300; id++) await engine.removeRelay(id);
    assert.equal(engine.relays().length, 0);
    for (const p of engine.memory().mempools) assert.equal(p.inUse, 0, `${p.name}: no mbuf held with no relay`);
    for (let id = 0; id < 300; id++) await add(id);
    const again = engine.memory();
    assert.deepEqual(again.mempools.map((p) => [p.name, p.size]), before.mempools.map((p) => [p.name, p.size]));
    // the relays' own structures land elsewhere in the heaps: a page or two, never a pool (19 MiB)
    assert.ok(again.hugepageBytes <= before.hugepageBytes + 4 * MiB, `${again.hugepageBytes / MiB} MiB mapped now, ${before.hugepageBytes / MiB} before`);
    for (let id = 0; id < 300; id++) await engine.removeRelay(id);
  });
});
