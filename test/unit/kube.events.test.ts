// The event recorder writes Events in the background, a few at a time, and under a burst drops
// Normal ones beyond its queue (never a Warning); a stand-in CoreV1Api records the writes. Against
// the real apiserver: test/integration/operator.kube.test.ts and node-reconciler.kube.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Api } from '@kubernetes/client-node';
import { EventRecorder, type VirtioRelay } from '../../src/kube/index.js';
import { silentLogger } from '../../src/util/log.js';

function stand(): { core: CoreV1Api; written: string[]; inFlight: () => number; maxInFlight: () => number; release: () => void } {
  const written: string[] = [];
  let inFlight = 0;
  let max = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const core = {
    createNamespacedEvent: async ({ body }: { body: { reason: string; involvedObject: { name: string } } }) => {
      inFlight++;
      max = Math.max(max, inFlight);
      await gate;
      written.push(`${body.reason} ${body.involvedObject.name}`);
      inFlight--;
      return body;
    },
  } as unknown as CoreV1Api;
  return { core, written, inFlight: () => inFlight, maxInFlight: () => max, release: open };
}

const relay = (name: string): VirtioRelay => ({ metadata: { name, namespace: 'app', uid: `u-${name}` }, spec: { vf: { devargs: 'net_null0' } } });

test('events are written in the background, four at a time, in order; the caller never waits', async () => {
  const s = stand();
  const rec = new EventRecorder(s.core, silentLogger(), 'vio4wd-operator', 'op-1');
  for (let i = 0; i < 10; i++) await rec.relay(relay(`r${i}`), 'Normal', 'Scheduled', 'placed');
  assert.equal(s.inFlight(), 4, 'four writes started, the rest wait');
  s.release();
  await rec.flushed();
  assert.equal(s.maxInFlight(), 4);
  assert.deepEqual(s.written, Array.from({ length: 10 }, (_, i) => `Scheduled r${i}`));
});

test('a burst beyond the queue drops Normal events, counted, and keeps every Warning', async () => {
  const s = stand();
  const rec = new EventRecorder(s.core, silentLogger(), 'vio4wd-operator', 'op-1');
  for (let i = 0; i < 1010; i++) void rec.relay(relay(`n${i}`), 'Normal', 'Scheduled', 'placed');
  void rec.relay(relay('bad'), 'Warning', 'FailedScheduling', 'no node');
  assert.equal(rec.dropped, 6, '4 in flight + 1000 queued: the other 6 Normal ones dropped');
  s.release();
  await rec.flushed();
  assert.equal(s.written.length, 1005);
  assert.equal(s.written.at(-1), 'FailedScheduling bad');
});
