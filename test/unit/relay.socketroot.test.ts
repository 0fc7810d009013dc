// A client-mode relay (root) connects to the path where QEMU makes its socket, in a directory the
// pod has mounted read-write: a symlink the pod puts there would make it connect to another VM's
// socket. On a nosymfollow mount the kernel refuses to follow it. This test mounts tmpfs in a
// private mount namespace (unshare -m: nothing outside sees it), shows the link followed on a
// plain mount and refused (ELOOP) on a nosymfollow one, and that the agent's check tells the two
// apart from /proc/self/mountinfo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROBE = `
import net from 'node:net';
import { mkdirSync, symlinkSync } from 'node:fs';
import { pinSocketRoot, socketRootRisk } from './src/relay/socketdir.ts';
const root = process.argv[1];
const pinned = process.argv[2] === 'pin' ? ((await pinSocketRoot(root)) ?? null) : undefined;
const victim = root + '/victim.vm/vhost-user.sock';
mkdirSync(root + '/victim.vm');
mkdirSync(root + '/attacker.vm');
const srv = net.createServer((c) => c.end('victim'));
await new Promise((r) => srv.listen(victim, r));
symlinkSync(victim, root + '/attacker.vm/vhost-user.sock');
const got = await new Promise((r) => {
  const c = net.connect(root + '/attacker.vm/vhost-user.sock');
  c.on('data', (d) => r('reached ' + d));
  c.on('error', (e) => r(e.code));
});
const risk = await socketRootRisk(root);
console.log(JSON.stringify({ got, risk: risk ?? null, pinned }));
srv.close();
`;

function probe(options: string, pin = false): { got: string; risk: string | null; pinned?: string | null } {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-sockroot-'));
  try {
    const root = join(dir, 'sockets');
    const out = execFileSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', `mkdir "$1" && mount -t tmpfs -o "${options}" tmpfs "$1" && exec "$2" --import tsx --input-type=module -e "$3" "$1" "$4"`, 'sh', root, process.execPath, PROBE, pin ? 'pin' : ''],
      { encoding: 'utf8' },
    );
    return JSON.parse(out.trim().split('\n').at(-1)!) as { got: string; risk: string | null; pinned?: string | null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('on a plain mount a symlink in a relay directory reaches another VM\'s socket, and the agent warns; on nosymfollow the kernel refuses it', () => {
  const plain = probe('size=1m,mode=0755');
  assert.equal(plain.got, 'reached victim', 'connect() follows the link: the hole');
  assert.match(plain.risk ?? '', /socket root .*sockets is on tmpfs .* without nosymfollow: a pod could put a symlink .* mount -t tmpfs -o nosymfollow/);
  const safe = probe('size=1m,mode=0755,nosymfollow');
  assert.equal(safe.got, 'ELOOP', 'the kernel does not follow the link');
  assert.equal(safe.risk, null, 'no warning');
});

test('kubernetes.nosymfollowSocketRoot: the agent remounts its own view of a plain socket root nosymfollow, and the link is refused', () => {
  const pinned = probe('size=1m,mode=0755', true);
  assert.equal(pinned.pinned, null, 'remounted without a warning');
  assert.equal(pinned.got, 'ELOOP');
  assert.equal(pinned.risk, null);
});
