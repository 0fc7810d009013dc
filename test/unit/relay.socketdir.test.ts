// The shared socket directory of the virtio-forwarder layout (/tmp/virtio-forwarder by default):
// the agent (root) makes it, and refuses one that another user made first or that everyone may
// write to, since its owner could replace the relays' sockets with their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSharedSocketDir, removeRelayDir } from '../../src/relay/socketdir.js';

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

test('a relay directory is removed without following what the pod left in it, also while the pod swaps a directory for a link', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vio4wd-rmdir-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const victim = join(root, 'host-etc');
  const fill = (dir: string, n: number, text: string): void => {
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(join(dir, `f${i}`), text);
  };
  fill(victim, 200, 'host');

  // only the socket: removed
  const plain = join(root, 'vms.a');
  mkdirSync(plain);
  writeFileSync(join(plain, 'vhost-user.sock'), '');
  assert.equal(await removeRelayDir(plain, 'vhost-user.sock'), 0);
  assert.ok(!existsSync(plain));

  // leftovers, among them links to a host directory and a host file: removed, targets kept
  const left = join(root, 'vms.b');
  fill(join(left, 'sub', 'deep'), 3, 'pod');
  symlinkSync(victim, join(left, 'etc'));
  symlinkSync(join(victim, 'f0'), join(left, 'sub', 'f0'));
  assert.equal(await removeRelayDir(left, 'vhost-user.sock'), 1);
  assert.ok(!existsSync(left));
  assert.equal(readdirSync(victim).length, 200);

  // the pod swaps a directory of its own for a link to the host's while the agent removes it
  // (node's recursive rm, which the agent used before, lost host files in 1 of 20 such rounds; 40 rounds caught it in 4 of 4 runs)
  for (let round = 0; round < 40; round++) {
    const dir = join(root, `vms.r${round}`);
    fill(join(dir, 'x'), 200, 'pod');
    const stop = join(root, `stop${round}`);
    const swapper = spawn('python3', ['-c', SWAPPER, dir, victim, stop], { stdio: 'ignore' });
    while (!existsSync(`${stop}.ready`)) await new Promise((r) => setTimeout(r, 5));
    await removeRelayDir(dir, 'vhost-user.sock').catch(() => undefined);
    writeFileSync(stop, '');
    await new Promise((r) => swapper.on('exit', r));
    assert.equal(readdirSync(victim).length, 200, `round ${round}: host files deleted through a swapped link`);
    rmSync(dir, { recursive: true, force: true });
  }
  // not a directory (already gone, or a link in its place): nothing done
  symlinkSync(victim, join(root, 'vms.c'));
  assert.equal(await removeRelayDir(join(root, 'vms.c'), 'vhost-user.sock'), 0);
  assert.equal(readdirSync(victim).length, 200);
});

/** The pod's side: swaps <dir>/x for a symlink to <victim> and back until <stop> exists. */
const SWAPPER = `
import os, sys
d, victim, stop = sys.argv[1:4]
x, y = os.path.join(d, 'x'), os.path.join(d, 'y')
open(stop + '.ready', 'w').close()
while not os.path.exists(stop):
    try:
        os.rename(x, y); os.symlink(victim, x); os.unlink(x); os.rename(y, x)
    except OSError:
        pass
`;
