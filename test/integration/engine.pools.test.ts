// The engine's mbuf pools made ahead of the relays (Engine.preparePools), on real DPDK: what an
// agent taking relays over from another does first, so that no relay waits for a pool to be
// made in the middle of a handover (docs/upgrade.md).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine } from '../../src/engine/index.js';
import { removeDir, tempDir, uniqueName } from '../helpers/dpdk.js';

const dir = tempDir('pools');
let engine: Engine | undefined;
after(async () => {
  await engine?.stop();
  removeDir(dir);
});

test('pools made ahead: relays added afterwards make none; one more pool when the queue pairs outgrow one', async () => {
  engine = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, poolQueuePairs: 8, rxDescriptors: 64, txDescriptors: 64, filePrefix: uniqueName('pools') });
  const e = engine;
  assert.equal(e.memory().mempools.length, 0, 'no pool before any relay');
  await e.preparePools(0, 6);
  assert.equal(e.memory().mempools.length, 1, 'one pool holds 6 queue pairs');
  for (let i = 1; i <= 6; i++) await e.addRelay({ id: i, vf: { devargs: `net_null_p${i}` }, socketPath: join(dir, `r${i}.sock`), mode: 'server', queues: 1 });
  assert.equal(e.memory().mempools.length, 1, 'the relays took the pool made ahead');
  // 6 of 8 queue pairs used: 10 more need a second pool (2 left in the first)
  await e.preparePools(0, 10);
  assert.equal(e.memory().mempools.length, 2);
  await e.preparePools(0, 10);
  assert.equal(e.memory().mempools.length, 2, 'made once');
  await assert.rejects(e.preparePools(0, 0), (err: Error & { code?: string }) => err.code === 'EINVAL' && /queuePairs: 0 is not a positive integer/.test(err.message));
  await assert.rejects(e.preparePools(4096, 1), (err: Error & { code?: string }) => err.code === 'EINVAL' && /numaNode: 4096 is out of range/.test(err.message));
});
