// The test guest against real parts: QEMU (TCG) with virtio-net-pci on a vhost-user socket
// served by dpdk-testpmd (net_vhost <-> net_tap, io forwarding), the tap being the "VF" stand-in
// inside a network namespace the test creates. Proves the helpers that the demo, the
// end-to-end tests and the live-migration tests use: boot, NIC setup, ping, shell commands,
// both socket modes, multiqueue, two NICs, and live migration between two backends.
import { afterEach, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { Guest, guestCommandLine, guestImage } from '../helpers/guest.js';
import { TestpmdBackend } from '../helpers/testpmd-backend.js';

// Everything a test starts, stopped in reverse order after it (also when it fails).
let cleanups: (() => Promise<void> | void)[] = [];
function defer(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}
afterEach(async () => {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch (e) {
      console.error('cleanup failed:', e);
    }
  }
  cleanups = [];
});

function workDir(): string {
  const d = testTempDir('guesttest');
  defer(() => d.remove());
  return d.path;
}

async function netns(label: string): Promise<Netns> {
  const ns = await Netns.create(label);
  defer(() => ns.destroy());
  return ns;
}

async function testpmd(opts: Parameters<typeof TestpmdBackend.start>[0]): Promise<TestpmdBackend> {
  const b = await TestpmdBackend.start(opts);
  defer(() => b.stop());
  return b;
}

async function guest(opts: Parameters<typeof Guest.start>[0]): Promise<Guest> {
  const g = await Guest.start(opts);
  defer(() => g.stop());
  return g;
}

// a TCP sink for the bulk transfer: prints "listening", then "received N" when the sender closes
const SINK = `
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print('listening', flush=True)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    n += len(d)
print('received', n, flush=True)
`;

function report(t: TestContext, msg: string): void {
  t.diagnostic(msg);
}

describe('test guest (QEMU) on a dpdk-testpmd vhost-user backend', () => {
  test('bad guest options are refused with the field named', () => {
    assert.throws(() => guestCommandLine({ nics: [] }), /nics: give 1 or 2 NICs/);
    assert.throws(() => guestCommandLine({ nics: [{ socketPath: '/x', queues: 64 }] }), /nics\[0\]\.queues: an integer 1\.\.32/);
    assert.throws(() => guestCommandLine({ nics: [{ socketPath: '/x', ip: '10.0.0.2' }] }), /nics\[0\]\.ip: an IPv4 CIDR/);
    assert.throws(() => guestCommandLine({ nics: [{ socketPath: '/x', queues: 2, guestQueues: 3 }] }), /nics\[0\]\.guestQueues/);
    const img = guestImage();
    const cmd = guestCommandLine({ nics: [{ socketPath: '/x.sock', queues: 2 }] }).join(' ');
    assert.match(cmd, /memory-backend-memfd,id=mem,size=256M,share=on/);
    assert.match(cmd, /virtio-net-pci,netdev=net0,mac=[0-9a-f:]{17},vectors=0,romfile=,mq=on/);
    assert.match(cmd, /socket,id=vhu0,path=\/x\.sock,reconnect=1/);
    assert.ok(cmd.includes(img.vmlinuz));
  });

  test('boots, configures its NIC and pings the peer behind the VF stand-in (QEMU as vhost-user client)', async (t) => {
    const dir = workDir();
    const ns = await netns('ping');
    const sock = join(dir, 'relay0.sock');
    await testpmd({ netns: ns, socketPath: sock, tapName: 'vf0', workDir: dir });
    await ns.addAddress('vf0', '10.0.0.1/24');
    await ns.linkUp('vf0');

    const g = await guest({
      name: 'pinger', netns: ns,
      nics: [{ socketPath: sock, ip: '10.0.0.2/24', mac: '52:54:00:00:00:02' }],
      job: { kind: 'ping', peer: '10.0.0.1', count: 10, intervalS: 0.2 },
    });
    const ready = await g.waitForReady();
    assert.deepEqual(ready.nics.map((n) => [n.name, n.mac, n.ip, n.mtu]), [['eth0', '52:54:00:00:00:02', '10.0.0.2/24', 1500]]);
    const summary = await g.waitForPingSummary();
    assert.deepEqual(summary, { sent: 10, received: 10, lost: 0 });
    assert.deepEqual(g.pings.map((p) => p.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(await g.waitForExit(), 0, 'the guest powers off by itself after its job');
    // the replies came through the VF stand-in: the tap received the guest's echo requests
    const vf = await ns.linkStats('vf0');
    assert.ok(vf.rxPackets >= 10, `vf0 received ${vf.rxPackets} packets from the guest`);
    report(t, `boot-to-ready ${ready.readyAtMs} ms (guest uptime ${ready.uptimeS} s), boot-to-first-ping ${g.pings[0]!.atMs} ms`);
  });

  test('QEMU as vhost-user server, two NICs, 2 queue pairs, commands over the serial console', async (t) => {
    const dir = workDir();
    const ns = await netns('mq');
    const s0 = join(dir, 'q0.sock');
    const s1 = join(dir, 'q1.sock');
    // QEMU creates the sockets; start() returns once they exist, then the backends connect
    const g = await guest({
      name: 'twonic', netns: ns,
      nics: [
        { socketPath: s0, mode: 'server', queues: 2, ip: '10.0.0.2/24' },
        { socketPath: s1, mode: 'server', ip: '10.0.1.2/24', mtu: 1400 },
      ],
      job: { kind: 'shell' },
    });
    await testpmd({ netns: ns, socketPath: s0, vhostClient: true, queues: 2, tapName: 'vfa', workDir: dir });
    await testpmd({ netns: ns, socketPath: s1, vhostClient: true, tapName: 'vfb', workDir: dir });
    await ns.addAddress('vfa', '10.0.0.1/24');
    await ns.addAddress('vfb', '10.0.1.1/24');
    await ns.linkUp('vfa');
    await ns.linkUp('vfb');

    const ready = await g.waitForReady();
    assert.deepEqual(
      ready.nics.map((n) => [n.name, n.ip, n.mtu, n.queues, n.maxQueues]),
      [['eth0', '10.0.0.2/24', 1500, 2, 2], ['eth1', '10.0.1.2/24', 1400, 1, 1]],
    );
    const ethtool = await g.exec('ethtool -l eth0');
    assert.equal(ethtool.rc, 0);
    assert.match(ethtool.output.join('\n'), /Current hardware settings:[\s\S]*Combined:\s+2/);
    const p0 = await g.exec('ping -c 3 -i 0.2 -W 2 10.0.0.1');
    assert.equal(p0.rc, 0, p0.output.join('\n'));
    assert.match(p0.output.join('\n'), /3 packets transmitted, 3 packets received/);
    // a background ping on the second NIC, stopped by the test, counted like the ping job's
    const from = await g.startPing({ peer: '10.0.1.1', intervalS: 0.2 });
    await g.waitForPings(3, 60_000, from);
    const summary = await g.stopPing(from);
    assert.ok(summary.received >= 3 && summary.lost <= 1, `ping on eth1: ${JSON.stringify(summary)}`);
    // a bulk TCP transfer from the guest to a listener on the peer side (10 MiB)
    const sink = ns.spawn('python3', ['-c', SINK, '10.0.0.1', '5001']);
    let sinkOut = '';
    sink.child.stdout?.on('data', (d: Buffer) => (sinkOut += d.toString()));
    for (let i = 0; !sinkOut.includes('listening'); i++) {
      assert.ok(i < 200 && sink.child.exitCode === null, `the TCP sink did not start: ${sinkOut}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const bulk = await g.exec('dd if=/dev/zero bs=65536 count=160 2>/dev/null | nc 10.0.0.1 5001', 120_000);
    assert.equal(bulk.rc, 0, bulk.output.join('\n'));
    await sink.exited;
    assert.match(sinkOut, /received 10485760\b/);
    // a failing command reports its exit code
    assert.equal((await g.exec('exit 3')).rc, 3);
    report(t, `two NICs ready ${ready.readyAtMs} ms after spawn`);
  });

  for (const qemuMode of ['client', 'server'] as const) {
    test(`the guest survives a backend crash and restart (QEMU as vhost-user ${qemuMode})`, async (t) => {
      const dir = workDir();
      const ns = await netns(`restart-${qemuMode}`);
      const sock = join(dir, 'relay.sock');
      const vhostClient = qemuMode === 'server';
      const startBackend = async () => {
        const b = await testpmd({ netns: ns, socketPath: sock, tapName: 'vf0', workDir: dir, vhostClient });
        await ns.addAddress('vf0', '10.0.0.1/24');
        await ns.linkUp('vf0');
        return b;
      };
      let backend: TestpmdBackend | undefined;
      if (!vhostClient) backend = await startBackend();
      const g = await guest({
        name: `restart-${qemuMode}`, netns: ns,
        nics: [{ socketPath: sock, mode: qemuMode, ip: '10.0.0.2/24' }],
        job: { kind: 'shell' },
      });
      backend ??= await startBackend();
      await g.waitForReady();
      const from = await g.startPing({ peer: '10.0.0.1', intervalS: 0.2 });
      await g.waitForPings(3, 60_000, from);

      await backend.kill();
      const restartedAt = Date.now();
      await startBackend();
      // replies resume: some ping sent after the restart is answered
      const lineAtRestart = g.lines.length;
      const first = await g.waitForPings(1, 60_000, lineAtRestart);
      const resumedMs = Date.now() - restartedAt;
      const summary = await g.stopPing(from);
      assert.ok(summary.received > 3, `pings after the restart: ${JSON.stringify(summary)}`);
      report(t, `backend restarted; first reply after restart seq=${first.seq} within ${resumedMs} ms; ${summary.received}/${summary.sent} answered`);
    });
  }

  for (const qemuMode of ['client', 'server'] as const) {
    const relay = qemuMode === 'client' ? 'backends as vhost-user servers' : 'backends as vhost-user clients';
    test(`live migration between two testpmd backends (${relay}): completes, pings continue on the target`, async (t) => {
      const dir = workDir();
      const ns = await netns(`mig-${qemuMode}`);
      // the peer sits on a bridge that both VF stand-ins are attached to, as a switch behind two VFs would
      await ns.addBridge('br0');
      await ns.addAddress('br0', '10.0.0.1/24');
      const sa = join(dir, 'relayA.sock');
      const sb = join(dir, 'relayB.sock');
      const vhostClient = qemuMode === 'server';
      // as clients the backends connect (and retry) once QEMU has created the socket
      await testpmd({ netns: ns, socketPath: sa, tapName: 'vfA', workDir: dir, vhostClient });
      await testpmd({ netns: ns, socketPath: sb, tapName: 'vfB', workDir: dir, vhostClient });
      await ns.setMaster('vfA', 'br0');
      await ns.setMaster('vfB', 'br0');

      const count = 80;
      const src = await guest({
        name: 'mig', netns: ns,
        nics: [{ socketPath: sa, mode: qemuMode, ip: '10.0.0.2/24' }],
        job: { kind: 'ping', peer: '10.0.0.1', count, intervalS: 0.25 },
      });
      await src.waitForPings(8);
      const port = 20000 + (process.pid % 20000);
      const dst = await Guest.startMigrationTarget(src, { port, socketPaths: [sb], name: 'mig-target' });
      defer(() => dst.stop());

      const result = await src.migrateTo(dst);
      assert.equal(result.status, 'completed');
      assert.equal(await src.runState(), 'postmigrate');
      assert.equal(await dst.runState(), 'running');
      const lastOnSource = Math.max(...src.pings.map((p) => p.seq));
      const vfAAfterMigration = (await ns.linkStats('vfA')).rxPackets;

      const summary = await dst.waitForPingSummary();
      const onTarget = dst.pings.map((p) => p.seq);
      assert.ok(onTarget.length > 0, 'the migrated guest got ping replies through backend B');
      assert.ok(Math.min(...onTarget) > lastOnSource, 'the target continues where the source stopped');
      assert.ok(onTarget.includes(count - 1), 'the last ping was answered on the target');
      assert.equal(summary.sent, count);
      // A's VF stand-in stops receiving from the guest once it has moved; B's carries the pings
      assert.equal((await ns.linkStats('vfA')).rxPackets, vfAAfterMigration);
      assert.ok((await ns.linkStats('vfB')).rxPackets >= onTarget.length);
      report(
        t,
        `migration (QEMU ${qemuMode}) ${result.totalTimeMs} ms total, ${result.downtimeMs} ms downtime, ${result.transferredBytes} bytes; ` +
          `pings: ${summary.received}/${summary.sent} received, ${summary.lost} lost ` +
          `(${src.pings.length} on source, ${onTarget.length} on target)`,
      );
    });
  }
});
