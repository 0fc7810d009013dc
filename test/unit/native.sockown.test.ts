// The engine sets a server-mode socket's owner, group and mode in a directory the pool's group
// (and so the tenant's pod that has it mounted) may write. Whoever writes there can put a symlink
// to a host file in the socket's place between DPDK's bind() and the chown: chown()/chmod() by
// path would then give /etc/shadow to the pool's owner. native/src/sockown.c opens the path
// without following links and changes only a socket; this test builds it as the engine does (no
// DPDK needed) and runs it on a socket, on symlinks to a host file and a directory, and on a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.getuid?.() === 0;

test('a socket gets its owner, group and mode; a symlink or file put in its place is left alone', async (t) => {
  assert.ok(root, 'runs as root (chown), as the suite does');
  const dir = await mkdtemp(join(tmpdir(), 'vio4wd-sockown-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = join(dir, 'sockown');
  execFileSync('cc', ['-std=gnu11', '-D_GNU_SOURCE', '-Wall', '-Werror', '-Inative/src', '-o', bin, 'test/fixtures/native/sockown-main.c', 'native/src/sockown.c']);
  const own = (path: string): string => execFileSync(bin, [path, '65534', '65534', '660'], { encoding: 'utf8' }).trim();

  // the relay's own socket: owner, group and mode as the pool says
  const relayDir = join(dir, 'vms.vm1');
  await mkdir(relayDir);
  const sock = join(relayDir, 'vhost-user.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  t.after(() => server.close());
  assert.equal(own(sock), 'ok');
  const s = await lstat(sock);
  assert.deepEqual([s.isSocket(), s.uid, s.gid, (s.mode & 0o7777).toString(8)], [true, 65534, 65534, '660']);

  // a host file only root may read, and a symlink to it where the socket was
  const victim = join(dir, 'shadow');
  await writeFile(victim, 'root:secret\n', { mode: 0o600 });
  await chown(victim, 0, 0);
  await chmod(victim, 0o600);
  const planted = join(relayDir, 'planted.sock');
  await symlink(victim, planted);
  const out = own(planted);
  assert.match(out, /^error EPERM .*planted\.sock is a symlink, not the socket the relay created.*left alone/);
  const v = await stat(victim);
  assert.deepEqual([v.uid, v.gid, (v.mode & 0o7777).toString(8)], [0, 0, '600'], 'the host file keeps root:root 0600');

  // what chown/chmod by path (the engine before this fix) did to the same link: the hole
  const victim2 = join(dir, 'shadow2');
  await writeFile(victim2, 'x', { mode: 0o600 });
  const link2 = join(relayDir, 'planted2.sock');
  await symlink(victim2, link2);
  await chown(link2, 65534, 65534);
  assert.equal((await stat(victim2)).uid, 65534, 'chown by path follows the link to the host file');

  // a symlink to a directory, and a regular file: left alone too
  const etc = join(dir, 'etc');
  await mkdir(etc, { mode: 0o755 });
  const dirLink = join(relayDir, 'dir.sock');
  await symlink(etc, dirLink);
  assert.match(own(dirLink), /^error EPERM .*is a symlink/);
  assert.equal(((await stat(etc)).mode & 0o7777).toString(8), '755');
  const file = join(relayDir, 'file.sock');
  await writeFile(file, '');
  assert.match(own(file), /^error EPERM .*is a regular file/);
  assert.equal((await stat(file)).uid, 0);
  // nothing there: an error naming the path
  assert.match(own(join(relayDir, 'gone.sock')), /^error ENOENT open\(.*gone\.sock\)/);
});
