// The OVSDB monitor's pure parts: OVSDB's undelimited JSON stream split into messages (across
// chunk boundaries, braces inside strings), and a VF netdev's PCI address read from sysfs.
// test/integration/ovsdb.dpdk.test.ts runs the monitor against a real ovsdb-server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonStream, pciOfNetdev } from '../../src/agent/ovsdb.js';
import { SysfsTree } from '../helpers/sysfs.js';

test('JSON-RPC messages are split however the stream is chunked', () => {
  const s = new JsonStream();
  const text = '{"id":1,"result":{"a":"}{"}}{"method":"echo","params":[]}[1,{"x":"\\"]"}]';
  const got: unknown[] = [];
  for (const ch of text) got.push(...s.push(ch));
  assert.deepEqual(got, [{ id: 1, result: { a: '}{' } }, { method: 'echo', params: [] }, [1, { x: '"]' }]]);
  assert.deepEqual(new JsonStream().push(text), got);
});

test('a netdev\'s PCI address comes from its sysfs device link', async () => {
  const sys = SysfsTree.create();
  try {
    sys.pciDevice('0000:3b:02.1').netdev('0000:3b:02.1', 'ens1f0v1');
    assert.equal(await pciOfNetdev('ens1f0v1', sys.root), '0000:3b:02.1');
    await assert.rejects(pciOfNetdev('nosuch0', sys.root), /interface nosuch0 is not a PCI device's netdev/);
    await assert.rejects(pciOfNetdev('../etc', sys.root), /is not a network interface name/);
  } finally {
    sys.cleanup();
  }
});
