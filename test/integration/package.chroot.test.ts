// vio4wd as a Debian package, the drop-in for virtio-forwarder's: scripts/package-deb.sh builds
// it, a fresh Debian bookworm rootfs (the debootstrap rootfs scripts/podman-base-images.sh keeps
// in $VIO4WD_CACHE) installs it with dpkg in a chroot and runs vio4wd from it; the systemd unit
// passes `systemd-analyze verify` there, and its pre-start checks do what virtio-forwarder's do.
// time limit: 10 min
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { testTempDir } from '../helpers/netns.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
let tmp: { path: string; remove: () => void };
let rootfs: string;
let deb: string;

/** A command in the chroot, with a clean environment (nothing of this machine's leaks in). */
function inRoot(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('chroot', [rootfs, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  tmp = testTempDir('deb');
  const cache = process.env.VIO4WD_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vio4wd');
  const images = join(cache, 'images');
  const tars = existsSync(images) ? readdirSync(images).filter((f) => /^debian-bookworm-slim-.*\.tar$/.test(f)) : [];
  if (!tars.length) throw new Error(`no Debian rootfs in ${images}: run scripts/bootstrap (its podman step debootstraps one)`);
  const tar = join(images, tars.sort((a, b) => statSync(join(images, b)).mtimeMs - statSync(join(images, a)).mtimeMs)[0]!);
  rootfs = join(tmp.path, 'rootfs');
  mkdirSync(rootfs);
  execFileSync('tar', ['-xf', tar, '-C', rootfs]);
  execFileSync('bash', ['scripts/package-deb.sh', '--out', tmp.path], { stdio: 'pipe' });
  deb = join(tmp.path, `vio4wd_${pkg.version}_amd64.deb`);
});

after(() => tmp?.remove());

test('a fresh Debian rootfs installs the package and runs vio4wd from it', () => {
  assert.equal(inRoot(['sh', '-c', 'command -v vio4wd node || true']).stdout.trim(), '', 'a fresh rootfs has neither');
  cpSync(deb, join(rootfs, 'tmp', 'vio4wd.deb'));
  const install = inRoot(['dpkg', '-i', '/tmp/vio4wd.deb']);
  assert.equal(install.status, 0, install.stdout + install.stderr);
  const v = inRoot(['vio4wd', '--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout.trim(), pkg.version);
  // virtio-forwarder's own way of asking
  assert.match(inRoot(['vio4wd', '-v']).stdout, /^Virtio-forwarder version \S+ \(vio4wd/);
  // the engine loads: every library it links is in the package
  const ldd = inRoot(['ldd', '/usr/lib/vio4wd/native/build/vio4wd.node']);
  assert.doesNotMatch(ldd.stdout, /not found/);
  const addon = inRoot(['/usr/lib/vio4wd/node', '-e', "const a = require('/usr/lib/vio4wd/native/build/vio4wd.node'); console.log(a.version(), a.maxPorts)"]);
  assert.equal(addon.status, 0, addon.stderr);
  assert.match(addon.stdout, /^DPDK 22\.11\.\d+ 1024$/m);
  // the example settings file was installed, and vio4wd reads it with virtio-forwarder's meaning
  const check = inRoot(['vio4wd', 'agent', '--config', '/etc/default/virtioforwarder', '--check']);
  assert.equal(check.status, 0, check.stderr);
  const cfg = JSON.parse(check.stdout) as { engine: { workerCpus: number[] }; control: { portControl: string } };
  assert.deepEqual(cfg.engine.workerCpus, [1]);
  assert.equal(cfg.control.portControl, 'ipc:///var/run/virtio-forwarder/port_control');
});

test('systemd-analyze verify accepts the unit as installed (and refuses a broken one)', () => {
  // the rootfs gets systemd's own units (Debian's systemd package, installed by the bootstrap)
  cpSync('/usr/lib/systemd/system', join(rootfs, 'usr/lib/systemd/system'), { recursive: true, force: false, errorOnExist: false });
  const ok = spawnSync('systemd-analyze', ['verify', `--root=${rootfs}`, '/lib/systemd/system/vio4wd.service'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const unit = readFileSync(join(rootfs, 'lib/systemd/system/vio4wd.service'), 'utf8');
  assert.match(unit, /^ExecStartPre=\/usr\/lib\/vio4wd\/vio4wd-pre-start \/etc\/default\/virtioforwarder$/m);
  assert.match(unit, /^ExecStart=\/usr\/bin\/vio4wd agent --config \/etc\/default\/virtioforwarder$/m);
  // the check has teeth: a unit whose program is missing fails it
  writeFileSync(join(rootfs, 'lib/systemd/system/vio4wd-broken.service'), unit.replace(/^ExecStart=.*$/m, 'ExecStart=/usr/bin/no-such-vio4wd'));
  const bad = spawnSync('systemd-analyze', ['verify', `--root=${rootfs}`, '/lib/systemd/system/vio4wd-broken.service'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /no-such-vio4wd is not executable/);
});

test('the pre-start checks make the directories, refuse a bad settings file naming the variable', () => {
  mkdirSync(join(rootfs, 'etc/vfwd'), { recursive: true });
  writeFileSync(
    join(rootfs, 'etc/vfwd/good'),
    [
      'VIRTIOFWD_CPU_MASK=1',
      'VIRTIOFWD_ZMQ_PORT_CONTROL_EP=ipc:///run/vfwd-ipc/port_control',
      'VIRTIOFWD_ZMQ_STATS_EP=ipc:///run/vfwd-ipc/stats',
      'VIRTIOFWD_SOCKET_DIR=/srv/vfwd-sockets',
      'VIRTIOFWD_SOCKET_GROUP=nogroup',
      'VIRTIOFWD_PID_DIR=/run',
      'VIRTIOFWD_STATIC_VFS=(0000:05:08.1=1 0000:05:08.2=2)',
      '',
    ].join('\n'),
  );
  writeFileSync(join(rootfs, 'run/virtio-forwarder.pid'), '12345\n');
  const ok = inRoot(['/usr/lib/vio4wd/vio4wd-pre-start', '/etc/vfwd/good']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(statSync(join(rootfs, 'run/vfwd-ipc')).isDirectory(), 'the ZeroMQ endpoints\' directory');
  const sock = statSync(join(rootfs, 'srv/vfwd-sockets'));
  assert.ok(sock.isDirectory());
  const nogroup = Number(/^nogroup:x:(\d+):/m.exec(readFileSync(join(rootfs, 'etc/group'), 'utf8'))?.[1]);
  assert.equal(sock.gid, nogroup, 'the socket directory has VIRTIOFWD_SOCKET_GROUP');
  assert.equal(existsSync(join(rootfs, 'run/virtio-forwarder.pid')), false, 'the stale PID file is gone');

  writeFileSync(join(rootfs, 'etc/vfwd/bad'), 'VIRTIOFWD_CPU_MASK=1\nVIRTIOFWD_CPU_PINS=0:1-2\n');
  const bad = inRoot(['/usr/lib/vio4wd/vio4wd-pre-start', '/etc/vfwd/bad']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /VIRTIOFWD_CPU_PINS: "0:1-2" is not <relay>:<cpu>\[,<cpu>\]/);
  const missing = inRoot(['/usr/lib/vio4wd/vio4wd-pre-start', '/etc/vfwd/none']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read \/etc\/vfwd\/none/);
});
