// Work-queue metrics: a key that fails once is retried with a backoff and counted as a retry;
// waits and work times are observed once per reconcile; the depth returns to 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { WorkQueue } from '../../src/kube/index.js';
import { workQueueObserver } from '../../src/kube/index.js';

test('adds, retries, depth, wait and work times of a work queue', async () => {
  const registry = new Registry();
  let calls = 0;
  const q = new WorkQueue(
    async (key) => {
      calls++;
      if (key === 'bad' && calls === 1) throw new Error('first try fails');
      await new Promise((r) => setTimeout(r, 20));
    },
    { baseDelayMs: 5, observer: workQueueObserver(registry, 'node'), concurrency: 1 },
  );
  let text = await registry.metrics();
  assert.match(text, /vio4wd_workqueue_depth\{name="node"\} 0/, 'the series exist before any work');
  q.add('bad');
  q.add('good');
  q.add('good'); // already queued: not added twice
  // the retry comes after its backoff (5 ms, later on a loaded machine): wait for it, then idle
  for (const until = Date.now() + 10_000; calls < 3 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
  await q.idle();
  q.stop();
  assert.equal(calls, 3);
  text = await registry.metrics();
  assert.match(text, /vio4wd_workqueue_adds_total\{name="node"\} 3/); // bad, good, bad again
  assert.match(text, /vio4wd_workqueue_retries_total\{name="node"\} 1/);
  assert.match(text, /vio4wd_workqueue_depth\{name="node"\} 0/);
  assert.match(text, /vio4wd_workqueue_work_duration_seconds_count\{name="node"\} 3/);
  assert.match(text, /vio4wd_workqueue_queue_duration_seconds_count\{name="node"\} 3/);
  // 'good' waited behind 'bad' (concurrency 1): at least one wait above 1 ms
  const fast = Number(/vio4wd_workqueue_queue_duration_seconds_bucket\{le="0.001",name="node"\} (\d+)/.exec(text)?.[1]);
  assert.ok(fast < 3, text);
  const sum = Number(/vio4wd_workqueue_work_duration_seconds_sum\{name="node"\} (\S+)/.exec(text)?.[1]);
  // two 20 ms sleeps; timers may fire a fraction of a millisecond early on the clock the queue reads
  assert.ok(sum >= 0.035, `work time ${sum}`);
});
