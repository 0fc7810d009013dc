// The shared socket directory of the virtio-forwarder layout (/tmp/virtio-forwarder by default):
// the agent (root) makes it, and refuses one that another user made first or that everyone may
// write to, since its owner could replace the relays' sockets with their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSharedSocketDir } from '../../src/relay/socketdir.js';

test('the shared socket directory: made 0755 when missing; refused when another user owns it, everyone may write it or it is a symlink', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vio4wd-sockdir-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));

  const made = join(root, 'virtio-forwarder');
  await prepareSharedSocketDir(made);
  assert.ok(statSync(made).isDirectory());
  assert.equal(statSync(made).mode & 0o022, 0, 'not writable by group or others');
  await prepareSharedSocketDir(made); // again: its own, accepted

  const open = join(root, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  await assert.rejects(prepareSharedSocketDir(open), /open is writable by everyone without the sticky bit \(mode 0777\): chmod 0755 it/);
  chmodSync(open, 0o1777);
  await prepareSharedSocketDir(open); // sticky: others cannot remove the agent's sockets

  const link = join(root, 'link');
  symlinkSync(made, link);
  await assert.rejects(prepareSharedSocketDir(link), /link is not a directory \(a symlink or a file\): remove it/);

  if (process.getuid?.() === 0) {
    const planted = join(root, 'planted');
    mkdirSync(planted);
    chownSync(planted, 65534, 65534);
    await assert.rejects(prepareSharedSocketDir(planted), /planted belongs to uid 65534, not the agent \(uid 0\).*remove it \(the agent makes it\) or set vhostUser\.socketDir/);
  }
});
