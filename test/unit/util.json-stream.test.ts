// The one scanner of undelimited JSON values (src/util/json-stream.ts): what a KEP-5304 DRA
// metadata file holds and what OVSDB sends. The OVSDB stream use is tested in agent.ovsdb.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitJsonValues } from '../../src/util/json-stream.js';

test('a KEP-5304 metadata stream splits into its objects, strings with braces included', () => {
  const a = { apiVersion: 'metadata.resource.k8s.io/v1beta1', requests: [{ name: 'r', devices: [] }] };
  const b = { apiVersion: 'metadata.resource.k8s.io/v1alpha1', note: 'a "quoted" {brace} \\ here' };
  assert.deepEqual(splitJsonValues(`${JSON.stringify(a)}\n${JSON.stringify(b, null, 2)}\n`).values.map((s) => JSON.parse(s)), [a, b]);
});

test('an unfinished value at the end is left for the next chunk', () => {
  const text = '{"id":1} [2,3]{"method":"upd';
  const { values, consumed } = splitJsonValues(text);
  assert.deepEqual(values, ['{"id":1}', '[2,3]']);
  assert.equal(text.slice(consumed), '{"method":"upd');
  assert.deepEqual(splitJsonValues('   '), { values: [], consumed: 0 });
});
