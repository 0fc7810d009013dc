// The coalescing runner (device plugin manager, DRA publisher) and the optional-file read
// (checkpoints), as pure logic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoalescedRunner } from '../../src/util/coalesce.js';
import { readIfExists } from '../../src/util/files.js';

test('requests while a pass is queued join it; one while a pass runs queues exactly one more', async () => {
  let passes = 0;
  let release: () => void = () => undefined;
  const r = new CoalescedRunner({
    pass: () => {
      passes++;
      return new Promise<void>((res) => (release = res));
    },
    active: () => true,
    onError: () => assert.fail('no error expected'),
  });
  const first = r.request();
  await new Promise((res) => setImmediate(res)); // the first pass runs now
  const a = r.request();
  const b = r.request();
  const c = r.request();
  assert.equal(a, b);
  assert.equal(b, c);
  release();
  await first;
  await new Promise((res) => setImmediate(res));
  release();
  await c;
  assert.equal(passes, 2, 'three requests during a pass: one more pass');
});

test('a pass that throws reports to onError and the runner goes on; an inactive owner gets no pass', async () => {
  const errors: string[] = [];
  let active = true;
  let passes = 0;
  const r = new CoalescedRunner({
    pass: async () => {
      passes++;
      if (passes === 1) throw new Error('boom');
    },
    active: () => active,
    onError: (err) => errors.push((err as Error).message),
  });
  await r.request();
  await r.request();
  assert.deepEqual(errors, ['boom']);
  assert.equal(passes, 2);
  active = false;
  await r.request();
  assert.equal(passes, 2);
  await r.settled();
});

test('readIfExists: the text, undefined for a missing file, other errors thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-files-'));
  try {
    writeFileSync(join(dir, 'cp.json'), '{"version":1}');
    assert.equal(await readIfExists(join(dir, 'cp.json')), '{"version":1}');
    assert.equal(await readIfExists(join(dir, 'missing.json')), undefined);
    await assert.rejects(readIfExists(dir), /EISDIR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
