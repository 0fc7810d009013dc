// The node-scale benchmark's short form (bench/node-scale.ts runs 1,000 relays): 300 VirtioRelays
// on one node with the real kube-apiserver, agent and engine, then a SIGKILL and a restart that
// runs them all again from the checkpoint. Bounds a loaded 2-core machine holds; figures in
// bench/RESULTS.md (M).
// time limit: 10 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineSizing } from '../../src/engine/sizing.js';
import { runNodeScale } from '../helpers/node-scale.js';

const N = 300;
const MiB = 2 ** 20;

test(`${N} relays on one node: all Ready, hugepages as the doctor says, all back after a restart`, { timeout: 540_000 }, async () => {
  const r = await runNodeScale({ relays: N, poolQueuePairs: 128, descriptors: 64, timeoutMs: 240_000 });
  assert.equal(r.createToReadyMs.length, N);
  // measured 7-10 s on an idle machine; a loaded one takes a few times that
  assert.ok(r.allReadyMs < 120_000, `last relay Ready ${r.allReadyMs.toFixed(0)} ms after the first create`);
  // 300 relays in pools of 128 queue pairs: 3 pools of 128 x 192 + 2 x 384 mbufs
  assert.equal(r.mbufsCapacity, 3 * (128 * 192 + 2 * 384));
  const predicted = engineSizing({ relays: N, poolQueuePairs: 128, rxDescriptors: 64, txDescriptors: 64 });
  assert.ok(r.hugepagesAfterBytes <= predicted.bytes, `the engine maps ${r.hugepagesAfterBytes / MiB} MiB, the doctor says ${predicted.bytes / MiB}`);
  assert.ok(r.hugepagesAfterBytes >= predicted.bytes * 0.9, `the engine maps ${r.hugepagesAfterBytes / MiB} MiB, the doctor says ${predicted.bytes / MiB}`);
  // the agent's own memory: ~100-350 KiB per relay measured (JS objects, DPDK's malloc'd structures)
  assert.ok(r.rssAfterBytes - r.rssBeforeBytes < N * MiB, `RSS grew ${((r.rssAfterBytes - r.rssBeforeBytes) / MiB).toFixed(0)} MiB`);
  assert.equal(r.restart.relaysRestored, N, 'the checkpoint held every relay');
  assert.ok(r.restart.restoreAllReadyMs < 60_000, `all Ready in the engine ${r.restart.restoreAllReadyMs.toFixed(0)} ms after the restart`);
  assert.equal(r.restart.notReadyAfter, 0, 'every VirtioRelay Ready after the restart');
});
