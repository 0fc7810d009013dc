// The mistakes a user migrating from virtio-forwarder makes in a settings file are reported with
// the variable they wrote (and the field it became) and the fix; a relative path in either config
// format is named as one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/agent/config/load.js';
import { ConfigError } from '../../src/agent/config/validate.js';
import { envFieldName } from '../../src/agent/config/env-fields.js';

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'x');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems.map((p) => `${p.field}: ${p.message}`);
  }
  assert.fail('expected the config to be refused');
}

test('a settings file\'s bad value names its variable, the field and the fix', () => {
  assert.deepEqual(problems('VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_SOCKET_DIR=relative\n'), ['VIRTIOFWD_SOCKET_DIR (vhostUser.socketDir): "relative" is not an absolute path: start it with /']);
  assert.deepEqual(problems('VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_HUGETLBFS_MOUNT_POINT=mnt/huge\n'), ['VIRTIOFWD_HUGETLBFS_MOUNT_POINT (engine.hugeDir): "mnt/huge" is not an absolute path: start it with /']);
});

test('a YAML config names the field and the line', () => {
  assert.deepEqual(problems('vhostUser:\n  socketDir: rel\n'), ['vhostUser.socketDir: "rel" is not an absolute path: start it with / (line 2)']);
});

test('fields no variable sets keep their name', () => {
  assert.equal(envFieldName('metrics.address'), 'metrics.address');
  assert.equal(envFieldName('relays[0].vf.pciAddress'), 'VIRTIOFWD_STATIC_VFS (relays[0].vf.pciAddress)');
});
