// QEMU as a non-root user (nobody:nogroup, never root: started through setpriv, as libvirt and
// KubeVirt run it) on relays of the real agent whose socket directories are owned by a group
// given by name (nogroup, resolved through NSS) with mode 2770 and sockets 0660: the guest pings
// through both a relay in server mode (QEMU connects) and one in client mode (QEMU creates the
// socket in the relay's directory). A user outside the group cannot even list the directory.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { Guest, guestImage } from '../helpers/guest.js';

const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
const NOGROUP = Number(execFileSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).split(':')[2]);

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let guest: Guest | undefined;
let sockets: string;

before(async () => {
  ns = await Netns.create('qemuuser');
  tmp = testTempDir('qemuuser');
  chmodSync(tmp.path, 0o755); // nobody must reach the socket directories below it
  sockets = join(tmp.path, 'sockets');
  agent = await AgentProcess.start({
    workDir: tmp.path,
    netns: ns,
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: sockets, group: 'nogroup', perm: '0660' },
      control: { enabled: false },
      metrics: { address: '127.0.0.1:0' },
      // the device plugin on: each relay gets a directory of its own (no kubelet here)
      devicePlugin: { enabled: true, pluginDir: join(tmp.path, 'plugins'), devinfoDir: join(tmp.path, 'devinfo') },
      relays: [
        { id: 1, vf: { devargs: 'net_tap_qu1,iface=qu1' }, mac: '52:54:00:00:71:01' },
        { id: 2, vf: { devargs: 'net_tap_qu2,iface=qu2' }, mac: '52:54:00:00:71:02', vhostUser: { mode: 'client' } },
      ],
    },
  });
  for (const [dev, ip] of [['qu1', '10.0.71.1/24'], ['qu2', '10.0.72.1/24']] as const) {
    await ns.addAddress(dev, ip);
    await ns.linkUp(dev);
  }
});

after(async () => {
  await guest?.stop();
  if (agent && agent.exitCode === null) await agent.stop();
  await ns?.destroy();
  tmp?.remove();
});

test('relay directories: 2770 root:nogroup (a group name through NSS), the relay-made socket 0660', () => {
  for (const r of ['relay-1', 'relay-2']) {
    const st = statSync(join(sockets, r));
    assert.equal(st.mode & 0o7777, 0o2770, r);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, NOGROUP, `${r} belongs to nogroup`);
  }
  const sock = statSync(join(sockets, 'relay-1', 'virtio-forwarder1.sock'));
  assert.ok(sock.isSocket());
  assert.equal(sock.mode & 0o777, 0o660);
  assert.equal(sock.gid, NOGROUP);
  // a user outside the group (daemon, uid 1) cannot look into a relay's directory
  const r = spawnSync('setpriv', ['--reuid', '1', '--regid', '1', '--clear-groups', 'ls', join(sockets, 'relay-1')], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /Permission denied/);
});

test('QEMU running as nobody:nogroup pings through a server-mode and a client-mode relay', async () => {
  // QEMU's own files (QMP socket, the image) where nobody can read and write them
  const work = join(tmp.path, 'guest');
  mkdirSync(work);
  chownSync(work, NOBODY, NOGROUP);
  const img = guestImage();
  const vmlinuz = join(work, 'vmlinuz');
  const initrd = join(work, 'initrd');
  copyFileSync(img.vmlinuz, vmlinuz);
  copyFileSync(img.initrd, initrd);
  for (const f of [vmlinuz, initrd]) chmodSync(f, 0o644);
  guest = await Guest.start({
    name: 'asnobody',
    netns: ns,
    workDir: work,
    image: { ...img, vmlinuz, initrd },
    runAs: { user: String(NOBODY), group: String(NOGROUP) },
    nics: [
      // relay 1 is the socket's server: QEMU connects to the 0660 root:nogroup socket
      { socketPath: join(sockets, 'relay-1', 'virtio-forwarder1.sock'), mode: 'client', ip: '10.0.71.2/24', mac: '52:54:00:00:71:01' },
      // relay 2 is the client: QEMU creates its socket inside the 2770 directory
      { socketPath: join(sockets, 'relay-2', 'virtio-forwarder2.sock'), mode: 'server', ip: '10.0.72.2/24', mac: '52:54:00:00:71:02' },
    ],
    job: { kind: 'shell' },
  });
  await guest.waitForReady();
  // ip netns exec, taskset and setpriv each exec the next: the process is QEMU itself
  const status = readFileSync(`/proc/${guest.pid}/status`, 'utf8');
  assert.match(status, /^Name:\s+qemu-system-x86/m);
  assert.match(status, new RegExp(`^Uid:\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}$`, 'm'), 'QEMU runs as nobody (real, effective, saved, fs)');
  assert.match(status, new RegExp(`^Groups:\\s*$`, 'm'), 'with no supplementary groups');
  const created = statSync(join(sockets, 'relay-2', 'virtio-forwarder2.sock'));
  assert.equal(created.uid, NOBODY, 'QEMU (nobody) created the client-mode socket');
  assert.equal(created.gid, NOGROUP, 'and it inherited the directory group (setgid)');
  for (const peer of ['10.0.71.1', '10.0.72.1']) {
    const r = await guest.exec(`ping -c 3 -W 2 ${peer}`, 60_000);
    assert.equal(r.rc, 0, `ping ${peer} from the guest:\n${r.output.join('\n')}\n--- agent\n${agent!.output.slice(-2000)}`);
  }
});
