// The engine's native memory under relay churn, on real DPDK: relays added and removed over and
// over leave the process's RSS flat once malloc's arenas are trimmed (the agent trims after
// removals), and the C-heap figures the agent can report are the allocator's own.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Engine } from '../../src/engine/index.js';
import { removeDir, tempDir, uniqueName } from '../helpers/dpdk.js';

const dir = tempDir('mem');
let engine: Engine | undefined;
after(async () => {
  await engine?.stop();
  removeDir(dir);
});

// A full GC before each reading: the JS garbage of the cycles (V8's 256 KiB heap pages, ~3 MiB
// by the end of the loop) is not what this measures, the engine's native memory is.
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function rssKb(): number {
  gc();
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

test('relays added and removed 300 times: RSS flat after the arenas are trimmed', async () => {
  engine = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, poolQueuePairs: 8, rxDescriptors: 64, txDescriptors: 64, filePrefix: uniqueName('mem') });
  const e = engine;
  // one relay stays, so that the mbuf pool (created with the first relay) is not part of it
  await e.addRelay({ id: 0, vf: { devargs: 'net_null_keep' }, socketPath: join(dir, 'keep.sock'), mode: 'server', queues: 1 });
  const cycle = async (i: number): Promise<void> => {
    // server mode (the engine creates and removes the socket), with a null VF stand-in
    await e.addRelay({ id: 1, vf: { devargs: `net_null_m${i}` }, socketPath: join(dir, 'r.sock'), mode: 'server', queues: 1 });
    e.stats(1);
    await e.removeRelay(1);
  };
  for (let i = 0; i < 50; i++) await cycle(i); // warm-up: code paths run once, arenas created
  Engine.trimNativeHeap();
  const heap0 = Engine.nativeHeap();
  const rss0 = rssKb();
  for (let i = 50; i < 350; i++) await cycle(i);
  const before = Engine.nativeHeap();
  const released = Engine.trimNativeHeap();
  const rss1 = rssKb();
  const heap1 = Engine.nativeHeap();
  for (const h of [heap0, before, heap1]) {
    for (const k of ['arenaBytes', 'mmapBytes', 'inUseBytes', 'freeBytes'] as const) assert.ok(Number.isFinite(h[k]) && h[k] >= 0, `${k} ${h[k]}`);
    assert.ok(h.inUseBytes > 0, 'the process has a C heap');
  }
  assert.equal(typeof released, 'boolean');
  // measured: +176 kB over 300 relays with net_tap VFs (0.6 kB a relay), with nothing trimmed
  assert.ok(rss1 - rss0 < 2048, `RSS ${rss0} -> ${rss1} kB over 300 relays`);
  assert.ok(heap1.inUseBytes - heap0.inUseBytes < 1024 * 1024, `C heap in use ${heap0.inUseBytes} -> ${heap1.inUseBytes} bytes over 300 relays`);
});
