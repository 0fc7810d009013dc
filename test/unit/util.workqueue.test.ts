// The shared work queue (src/util/workqueue.ts), as RelayManager's retries use it: a delayed add
// runs the key once after its delay, forget() takes back a delayed or queued key, and a stopped
// queue runs nothing more. The Kubernetes controllers' use: operator.controllers.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../src/util/workqueue.js';

test('a delayed key runs once after its delay; forget() takes it back before', async () => {
  const ran: string[] = [];
  const q = new WorkQueue(async (k) => void ran.push(k));
  q.addAfter('a', 30);
  q.addAfter('b', 30);
  q.addAfter('a', 5); // already waiting: the first delay stands
  q.forget('b');
  await sleep(80);
  await q.idle();
  assert.deepEqual(ran, ['a']);
  q.stop();
});

test('forget() drops a queued key that has not run yet; a stopped queue runs nothing', async () => {
  const ran: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue(async (k) => {
    ran.push(k);
    if (k === 'first') await gate;
  }, { concurrency: 1 });
  q.add('first'); // runs, and holds the only worker
  q.add('second'); // waits behind it
  q.forget('second');
  release();
  await q.idle();
  assert.deepEqual(ran, ['first']);
  q.stop();
  q.addAfter('late', 1);
  q.add('later');
  await sleep(20);
  assert.deepEqual(ran, ['first']);
});

test('add(first) serves a key ahead of those waiting, also one queued already or running', async () => {
  const ran: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue(async (k) => {
    ran.push(k);
    if (k === 'busy') await gate;
  }, { concurrency: 1 });
  q.add('busy'); // holds the only worker
  for (const k of ['n1', 'n2', 'n3', 'ready']) q.add(k);
  q.add('ready', { first: true }); // queued already: moved to the front
  q.add('late', { first: true }); // new: at the front, ahead of ready
  q.add('busy', { first: true }); // running: once more afterwards, at the front
  q.add('n3'); // a plain add keeps its place
  release();
  await q.idle();
  assert.deepEqual(ran, ['busy', 'busy', 'late', 'ready', 'n1', 'n2', 'n3']);
  q.stop();
});
