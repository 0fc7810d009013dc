// The relay engine on real DPDK: the VF is a net_vhost device whose peer is a dpdk-testpmd
// (net_virtio_user), the VM is another net_virtio_user port on the relay's socket. The engine
// worker polls CPU 1, testpmd CPU 0. One engine serves the whole file (EAL starts once).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { Engine, EngineError, type DirectionCounters, type EngineEvent } from '../../src/engine/index.js';
import { removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { sleep, until } from '../helpers/wait.js';

const POOL_QP = 300;
const RXD = 64;
const TXD = 64;

const zero = { droppedQueueFullPackets: 0, droppedQueueFullBytes: 0, droppedNotConnectedPackets: 0, droppedNotConnectedBytes: 0 };

function counters(rx: { packets: number; bytes: number }, tx: { packets: number; bytes: number }): DirectionCounters {
  return { rxPackets: rx.packets, rxBytes: rx.bytes, txPackets: tx.packets, txBytes: tx.bytes, ...zero };
}

describe('relay engine on DPDK (net_vhost VF, testpmd peers)', { timeout: 240_000 }, () => {
  const dir = tempDir('eng');
  let engine: Engine;
  const events: EngineEvent[] = [];
  const peers: Testpmd[] = [];
  let vdev = 0;
  const vhostVf = (sock: string, queues = 1): string => `net_vhost${++vdev},iface=${sock},queues=${queues}`;
  const peer = async (...socks: string[]): Promise<Testpmd> => {
    const t = await Testpmd.start({ vdevs: socks.map((s, i) => `net_virtio_user${i},path=${s},queues=1`) });
    peers.push(t);
    return t;
  };

  before(async () => {
    engine = await Engine.start({
      workerCpus: [1],
      mainCpu: 0,
      inMemory: true,
      noPci: true,
      filePrefix: uniqueName('eng'),
      poolQueuePairs: POOL_QP,
      rxDescriptors: RXD,
      txDescriptors: TXD,
    });
    engine.on('event', (e: EngineEvent) => events.push(e));
  });

  after(async () => {
    for (const p of peers) p.kill();
    await engine?.stop();
    removeDir(dir);
  });

  test('traffic both ways: the counters match what the peers sent and received, exactly', async () => {
    const vf = join(dir, 'vf1.sock');
    const vm = join(dir, 'vm1.sock');
    const info = await engine.addRelay({ id: 1, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'server', queues: 1, socketGroup: 1, socketPerm: 0o660 });
    assert.equal(info.id, 1);
    assert.equal(statSync(vm).mode & 0o777, 0o660, 'socket mode as configured');
    assert.equal(statSync(vm).gid, 1, 'socket group as configured');
    assert.equal(info.mode, 'server');
    assert.match(info.portName, /^net_vhost\d+$/);
    assert.match(info.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.equal(info.guestConnected, false);
    assert.ok(statSync(vm).isSocket(), 'the relay created its vhost-user socket');

    const tp = await peer(vf, vm); // port 0 = behind the VF, port 1 = the VM
    await until('guest connected and VF link up', () => {
      const r = engine.relay(1);
      return !!r && r.guestConnected && r.linkUp && r.enabledQueues === 2;
    });
    assert.ok(events.some((e) => e.type === 'guest-connected' && e.relayId === 1));
    assert.ok(events.some((e) => e.type === 'link' && e.relayId === 1 && e.up));
    assert.ok(events.some((e) => e.type === 'vring-state' && e.relayId === 1 && e.queue === 1 && e.enabled));
    const f = engine.relay(1)?.guestFeatures;
    assert.ok(f, 'a connected guest has negotiated features');
    // engine defaults: mergeable rx buffers on, TSO and checksum offload off; no migration
    assert.deepEqual([f.mergeableRxBuffers, f.tso, f.checksum, f.dirtyLogging], [true, false, false, false]);

    await tp.cmd('start tx_first 4'); // 4 bursts of 8 on each port
    const atVm = await tp.waitRx(1, 32);
    const atVf = await tp.waitRx(0, 32);
    await tp.cmd('stop');
    const fromVf = await tp.portStats(0);
    const fromVm = await tp.portStats(1);
    assert.equal(fromVf.txPackets, 32);
    const s = engine.stats(1);
    assert.deepEqual(s.vfToVm, counters({ packets: fromVf.txPackets, bytes: fromVf.txBytes }, { packets: atVm.rxPackets, bytes: atVm.rxBytes }));
    assert.deepEqual(s.vmToVf, counters({ packets: fromVm.txPackets, bytes: fromVm.txBytes }, { packets: atVf.rxPackets, bytes: atVf.rxBytes }));
    assert.equal(s.queues.length, 1);
    assert.deepEqual(s.queues[0]?.vfToVm, s.vfToVm);
    // the VF's own driver counters agree: what it received is what the relay read from it, what
    // it sent is what the relay gave it; nothing missed
    assert.ok(s.vf, 'VF counters while a VF is attached');
    assert.deepEqual([s.vf.rxPackets, s.vf.rxBytes, s.vf.txPackets, s.vf.rxMissed, s.vf.rxNoMbuf], [fromVf.txPackets, fromVf.txBytes, atVf.rxPackets, 0, 0]);

    await tp.quit();
    await until('guest disconnected', () => engine.relay(1)?.guestConnected === false && engine.relay(1)?.linkUp === false);
    assert.ok(events.some((e) => e.type === 'guest-disconnected' && e.relayId === 1));
    await engine.removeRelay(1);
    assert.equal(engine.relay(1), undefined);
    assert.equal(existsSync(vm), false, 'removing the relay removes its socket');
  });

  test('drops are counted: far queue full, and far side not connected', async () => {
    const vf = join(dir, 'vf2.sock');
    const vm = join(dir, 'vm2.sock');
    await engine.addRelay({ id: 2, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'server', queues: 1 });
    const w0 = engine.workers()[0]!;
    const behindVf = await peer(vf);
    await until('VF link up', () => engine.relay(2)?.linkUp === true);
    // no guest yet: everything from the VF is dropped as not connected
    await behindVf.cmd('start tx_first 2');
    await until('16 packets dropped as not connected', () => engine.stats(2).vfToVm.droppedNotConnectedPackets === 16);
    await behindVf.cmd('stop');
    const nc = engine.stats(2).vfToVm;
    assert.equal(nc.rxPackets, 16);
    assert.equal(nc.txPackets, 0);
    assert.equal(nc.droppedNotConnectedBytes, nc.rxBytes);

    // a guest that does not read its queue (testpmd not forwarding): its rx ring fills up
    const guest = await peer(vm);
    await until('guest connected', () => engine.relay(2)?.guestConnected === true);
    await sleep(200);
    // two rounds of up to 256 packets (the VF peer's tx ring): more than the guest's rx ring holds
    let sent = 0;
    for (let round = 0; round < 2; round++) {
      await behindVf.cmd('start tx_first 32');
      await behindVf.cmd('stop');
      sent = (await behindVf.portStats(0)).txPackets - 16;
      await until('the relay took every packet from the VF', () => engine.stats(2).vfToVm.rxPackets === 16 + sent);
    }
    assert.ok(sent > 256, `the VF peer sent ${sent} packets`);
    const full = engine.stats(2).vfToVm;
    assert.ok(full.droppedQueueFullPackets > 0, 'some packets found the guest ring full');
    assert.equal(full.txPackets + full.droppedQueueFullPackets, sent);
    assert.equal(full.txBytes + full.droppedQueueFullBytes + full.droppedNotConnectedBytes, full.rxBytes);
    // the worker (the only relay it polls is this one) counted the same packets and drops, and
    // spent busy cycles on them; the VF's driver saw every packet its peer sent
    const w1 = engine.workers()[0]!;
    assert.equal(w1.packets - w0.packets, full.rxPackets);
    assert.equal(w1.dropped - w0.dropped, full.droppedQueueFullPackets + full.droppedNotConnectedPackets);
    assert.ok(w1.busyCycles > w0.busyCycles && w1.idleCycles > w0.idleCycles, 'busy and idle cycles both grew');
    assert.equal(engine.stats(2).vf?.rxPackets, 16 + sent);
    // the guest now reads what the relay delivered: exactly txPackets
    await guest.cmd('start');
    await guest.waitRx(0, full.txPackets);
    await sleep(200);
    assert.equal((await guest.portStats(0)).rxPackets, full.txPackets);
    await guest.cmd('stop');
    await guest.quit();
    await behindVf.quit();
    await engine.removeRelay(2);
  });

  test('vhost-user features follow the relay: mergeable rx buffers off, TSO on', async () => {
    const vf = join(dir, 'vf6.sock');
    const vm = join(dir, 'vm6.sock');
    await engine.addRelay({ id: 6, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'server', queues: 1, mergeableRxBuffers: false, tso: true });
    const behindVf = await peer(vf);
    // a guest that asks for TSO and checksum offload (TCP_TSO | TCP_CKSUM | UDP_CKSUM)
    const guest = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vm}`], args: ['--tx-offloads=0x2c'] });
    peers.push(guest);
    await until('guest connected', () => engine.relay(6)?.guestConnected === true && engine.relay(6)?.linkUp === true);
    const f = engine.relay(6)?.guestFeatures;
    assert.deepEqual([f?.mergeableRxBuffers, f?.tso, f?.checksum], [false, true, true]);
    await behindVf.cmd('start tx_first 1');
    await guest.cmd('start tx_first 1');
    await guest.waitRx(0, 8);
    await behindVf.waitRx(0, 8);
    assert.equal(engine.stats(6).vfToVm.txPackets, 8);
    assert.equal(engine.stats(6).vmToVf.txPackets, 8);
    await guest.quit();
    await behindVf.quit();
    await until('guest gone', () => engine.relay(6)?.guestConnected === false);
    assert.equal(engine.relay(6)?.guestFeatures, undefined);
    await engine.removeRelay(6);
  });

  test('multiqueue: 4 queue pairs, traffic and counters on every queue', async () => {
    const vf = join(dir, 'vf4.sock');
    const vm = join(dir, 'vm4.sock');
    const info = await engine.addRelay({ id: 4, vf: { devargs: vhostVf(vf, 4) }, socketPath: vm, mode: 'server', queues: 4 });
    assert.equal(info.queues, 4);
    const tp = await Testpmd.start({
      vdevs: [`net_virtio_user0,path=${vf},queues=4`, `net_virtio_user1,path=${vm},queues=4`],
      queues: 4,
    });
    peers.push(tp);
    await until('8 vrings enabled', () => engine.relay(4)?.enabledQueues === 8 && engine.relay(4)?.linkUp === true);
    await tp.cmd('start tx_first 2'); // 2 bursts of 8 on each of the 4 queues of each port
    await tp.waitRx(1, 64);
    await tp.waitRx(0, 64);
    await tp.cmd('stop');
    const s = engine.stats(4);
    assert.equal(s.queues.length, 4);
    for (const q of s.queues) {
      assert.equal(q.vfToVm.rxPackets, 16, `queue ${q.queue} VF->VM`);
      assert.equal(q.vfToVm.txPackets, 16, `queue ${q.queue} VF->VM`);
      assert.equal(q.vmToVf.rxPackets, 16, `queue ${q.queue} VM->VF`);
      assert.equal(q.vmToVf.txPackets, 16, `queue ${q.queue} VM->VF`);
    }
    assert.equal(s.vfToVm.txPackets, 64);
    assert.equal(s.vmToVf.txPackets, 64);
    assert.equal((await tp.portStats(1)).rxPackets, 64);
    assert.equal((await tp.portStats(0)).rxPackets, 64);
    await tp.quit();
    await engine.removeRelay(4);
  });

  test('multiqueue: a guest that enables 1 of 4 queue pairs gets what arrives on all 4 VF queues', async () => {
    const vf = join(dir, 'vf5.sock');
    const vm = join(dir, 'vm5.sock');
    await engine.addRelay({ id: 5, vf: { devargs: vhostVf(vf, 4) }, socketPath: vm, mode: 'server', queues: 4 });
    const behindVf = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vf},queues=4`], queues: 4 });
    peers.push(behindVf);
    const guest = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vm},queues=4`], queues: 1 });
    peers.push(guest);
    await until('guest connected', () => engine.relay(5)?.guestConnected === true && engine.relay(5)?.linkUp === true);
    await guest.cmd('start');
    await until('only the first queue pair enabled', () => engine.relay(5)?.enabledQueues === 2, 5000);
    await behindVf.cmd('start tx_first 2'); // 16 packets on each of the VF's 4 queues
    await guest.waitRx(0, 64);
    await behindVf.cmd('stop');
    const s = engine.stats(5);
    for (const q of s.queues) assert.equal(q.vfToVm.txPackets, 16, `VF queue ${q.queue} delivered to the guest's only queue`);
    assert.equal((await guest.portStats(0)).rxPackets, 64);
    await guest.quit();
    await behindVf.quit();
    await engine.removeRelay(5);
  });

  test('client mode: the VM side goes away and comes back, traffic resumes', async () => {
    const vf = join(dir, 'vf3.sock');
    const vm = join(dir, 'vm3.sock'); // created by the "VM" (virtio-user in server mode)
    await engine.addRelay({ id: 3, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'client', queues: 1 });
    assert.equal(engine.relay(3)?.mode, 'client');
    const startVm = async (): Promise<Testpmd> => {
      const t = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vm},queues=1,server=1`] });
      peers.push(t);
      return t;
    };
    let guest = await startVm(); // its start waits until the relay (re)connects
    const behindVf = await peer(vf);
    await until('guest connected, link up', () => engine.relay(3)?.guestConnected === true && engine.relay(3)?.linkUp === true);

    await behindVf.cmd('start tx_first 1');
    await guest.cmd('start tx_first 1');
    await guest.waitRx(0, 8);
    await behindVf.waitRx(0, 8);
    let s = engine.stats(3);
    assert.equal(s.vfToVm.txPackets, 8);
    assert.equal(s.vmToVf.txPackets, 8);

    // the VM goes away: the relay notices, counts what it cannot deliver, and reconnects
    await guest.quit();
    await until('guest disconnected', () => engine.relay(3)?.guestConnected === false);
    await behindVf.cmd('stop');
    await behindVf.cmd('start tx_first 1');
    await until('8 dropped as not connected', () => engine.stats(3).vfToVm.droppedNotConnectedPackets === 8);
    await behindVf.cmd('stop');
    removeDir(vm); // QEMU removes a stale socket before it listens again
    guest = await startVm();
    await until('guest reconnected', () => engine.relay(3)?.guestConnected === true);
    const connects = events.filter((e) => e.type === 'guest-connected' && e.relayId === 3).length;
    assert.ok(connects >= 2, `guest-connected seen ${connects} times`);
    await behindVf.cmd('start tx_first 1');
    await guest.cmd('start tx_first 1');
    await guest.waitRx(0, 8);
    await behindVf.waitRx(0, 16);
    s = engine.stats(3);
    assert.equal(s.vfToVm.txPackets, 16);
    assert.equal(s.vmToVf.txPackets, 16);
    assert.equal(s.vfToVm.rxPackets, 24);
    await guest.quit();
    await behindVf.quit();
    await engine.removeRelay(3);
  });

  test('client mode: removing the relay closes its connection to the VM at once', async () => {
    // The VM (vhost-user server) sees the old connection close, and only then takes the next one
    // (QEMU accepts one client at a time): an upgrade handover's gap. rte_vhost 22.11's socket
    // thread sits in poll() with a 1 s timeout, and a poll() in progress keeps the files it
    // waits on open: without a wake-up the close reached the VM up to 1 s late.
    const vm = join(dir, 'vmclose.sock');
    const conns: Socket[] = [];
    const server = createServer((c) => conns.push(c));
    await new Promise<void>((resolve) => server.listen(vm, resolve));
    try {
      for (let i = 0; i < 2; i++) {
        await engine.addRelay({ id: 30, vf: { devargs: `net_null_close${i}` }, socketPath: vm, mode: 'client', queues: 1 });
        await until('the relay connected to the VM', () => conns.length === i + 1, 5000);
        const conn = conns[i]!;
        const closed = new Promise<number>((resolve) => conn.once('close', () => resolve(performance.now())));
        conn.resume();
        await sleep(50); // the socket thread is back in its poll(), on this connection too
        await engine.removeRelay(30);
        const removed = performance.now();
        const ms = (await closed) - removed;
        // ~0 with the wake-up; ~950 without (the rest of the poll's second)
        assert.ok(ms < 300, `round ${i + 1}: the VM saw the connection close ${ms.toFixed(0)} ms after the relay was removed`);
      }
    } finally {
      for (const c of conns) c.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('50 relays come and go, the port table fills up, bad input is refused, while another relay forwards: no packet lost', async () => {
    const vf = join(dir, 'vf10.sock');
    const vm = join(dir, 'vm10.sock');
    await engine.addRelay({ id: 10, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'server', queues: 1 });
    // generator: io forwarding keeps 2 x 4 x 8 packets looping through relay 10
    const gen = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vf},queues=1`, `net_virtio_user1,path=${vm},queues=1`], fwd: 'io' });
    peers.push(gen);
    await until('relay 10 connected', () => engine.relay(10)?.guestConnected === true && engine.relay(10)?.linkUp === true);
    await gen.cmd('start tx_first 4');
    await until('traffic flows', () => engine.stats(10).vfToVm.txPackets > 10_000);

    const add = (id: number): Promise<unknown> =>
      engine.addRelay({ id, vf: { devargs: vhostVf(join(dir, `vf${id}.sock`)) }, socketPath: join(dir, `vm${id}.sock`), mode: 'server', queues: 1 });
    // 50 relays; Debian's DPDK has room for 32 ethdev ports (RTE_MAX_ETHPORTS), one per VF:
    // then in two waves of 25
    const ports = engine.limits.ports;
    const perWave = ports > 51 ? 50 : 25;
    for (let wave = 0; wave < 50 / perWave; wave++) {
      const ids = Array.from({ length: perWave }, (_, i) => 100 + wave * 100 + i);
      for (const id of ids) await add(id);
      assert.equal(engine.relays().length, perWave + 1);
      assert.equal(engine.workers()[0]?.directions, 2 * (perWave + 1));
      for (const id of ids) await engine.removeRelay(id);
      assert.deepEqual(engine.relays().map((r) => r.id), [10]);
    }
    if (ports <= 64) {
      // fill the port table: the relay beyond it gets a clear error
      let added = 0;
      let full: unknown;
      for (let id = 300; id < 300 + ports + 1 && !full; id++) {
        try {
          await add(id);
          added++;
        } catch (err) {
          full = err;
        }
      }
      assert.ok(full instanceof EngineError, 'adding relays ends with an EngineError');
      assert.equal(full.code, 'ENOMEM');
      assert.match(full.message, new RegExp(`all ${ports} ethdev ports .* are in use \\(RTE_MAX_ETHPORTS`));
      assert.equal(added, ports - 1, 'relay 10 holds one of the ports');
      for (let id = 300; id < 300 + added; id++) await engine.removeRelay(id);
    }

    const refuse = async (what: string, p: Promise<unknown>, code: string, re: RegExp): Promise<void> => {
      await assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof EngineError || err instanceof Error, what);
        assert.equal((err as EngineError).code, code, `${what}: ${(err as Error).message}`);
        assert.match((err as Error).message, re, what);
        return true;
      });
    };
    const ok = { socketPath: join(dir, 'bad.sock'), mode: 'server' as const, queues: 1 };
    await refuse('unknown PCI address', engine.addRelay({ ...ok, id: 20, vf: { pciAddresses: ['0000:99:00.7'] } }), 'ENODEV', /0000:99:00\.7/);
    await refuse('unknown driver', engine.addRelay({ ...ok, id: 20, vf: { devargs: 'net_nosuchdriver0' } }), 'EINVAL', /no DPDK bus or driver takes "net_nosuchdriver0"/);
    await refuse('bad devargs', engine.addRelay({ ...ok, id: 20, vf: { devargs: 'net_vhost77,queues=banana' } }), 'ENODEV', /net_vhost77/);
    await refuse('duplicate id', engine.addRelay({ ...ok, id: 10, vf: { devargs: vhostVf(join(dir, 'x.sock')) } }), 'EEXIST', /relay 10 already exists/);
    await refuse('duplicate socket', engine.addRelay({ ...ok, id: 21, socketPath: vm, vf: { devargs: vhostVf(join(dir, 'y.sock')) } }), 'EEXIST', /already used by relay 10/);
    await refuse('missing socket directory', engine.addRelay({ ...ok, id: 20, socketPath: join(dir, 'nope', 'vm.sock'), vf: { devargs: 'net_null9' } }), 'ENOENT', /socketPath: directory .*nope does not exist/);
    await refuse('33 queues', engine.addRelay({ ...ok, id: 20, queues: 33, vf: { devargs: 'net_null9' } }), 'EINVAL', /queues: 33 is not an integer in 1\.\.32/);
    await refuse('id out of range', engine.addRelay({ ...ok, id: 1024, vf: { devargs: 'net_null9' } }), 'EINVAL', /^id: 1024/);
    await refuse('unknown relay', engine.removeRelay(999), 'ENOENT', /relay 999 does not exist/);
    await refuse('unknown worker CPU', engine.setRelayCpus(10, { vfToVm: 7 }), 'EINVAL', /cpus\.vfToVm: CPU 7 runs no worker/);
    // nothing half-made is left behind by the failures
    assert.deepEqual(engine.relays().map((r) => r.id), [10]);
    assert.equal(existsSync(join(dir, 'bad.sock')), false);

    // stop the loop, drain every ring (rxonly), then every packet sent was received
    const moving = engine.stats(10).vfToVm.txPackets;
    await sleep(300);
    assert.ok(engine.stats(10).vfToVm.txPackets > moving, 'relay 10 still forwards');
    await gen.cmd('stop');
    await gen.cmd('set fwd rxonly');
    await gen.cmd('start');
    await sleep(500);
    await gen.cmd('stop');
    const p0 = await gen.portStats(0);
    const p1 = await gen.portStats(1);
    assert.equal(p0.rxPackets + p1.rxPackets, p0.txPackets + p1.txPackets, 'every packet sent came back');
    const s = engine.stats(10);
    assert.deepEqual({ ...s.vfToVm, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 }, counters({ packets: 0, bytes: 0 }, { packets: 0, bytes: 0 }));
    assert.deepEqual({ ...s.vmToVf, rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 }, counters({ packets: 0, bytes: 0 }, { packets: 0, bytes: 0 }));
    assert.equal(s.vfToVm.rxPackets, s.vfToVm.txPackets);
    assert.equal(s.vmToVf.rxPackets, s.vmToVf.txPackets);
    assert.equal(s.vfToVm.txPackets, p1.rxPackets, 'VF->VM: what the relay sent is what the VM received');
    await gen.quit();
    await engine.removeRelay(10);
  });

  test('256 relays at once, one of them forwarding (needs a DPDK with more than 256 ethdev ports)', async () => {
    assert.ok(engine.limits.ports > 256,
      `this DPDK build has ${engine.limits.ports} ethdev ports (Debian's: 32); scripts/bootstrap test builds one with 1024 (VIO4WD_DPDK_MAX_PORTS)`);
    const ids = Array.from({ length: 256 }, (_, i) => 500 + i);
    for (const id of ids)
      await engine.addRelay({ id, vf: { devargs: vhostVf(join(dir, `v${id}.sock`)) }, socketPath: join(dir, `m${id}.sock`), mode: 'server', queues: 1 });
    assert.equal(engine.relays().length, 256);
    const [vf, vm] = [join(dir, 'v500.sock'), join(dir, 'm500.sock')];
    const tp = await peer(vf, vm);
    await until('relay 500 connected', () => engine.relay(500)?.guestConnected === true && engine.relay(500)?.linkUp === true);
    await tp.cmd('start tx_first 2');
    await tp.waitRx(0, 16);
    await tp.waitRx(1, 16);
    await tp.cmd('stop');
    assert.equal(engine.stats(500).vfToVm.txPackets, 16);
    assert.equal(engine.stats(500).vmToVf.txPackets, 16);
    await tp.quit();
    for (const id of ids) await engine.removeRelay(id);
    assert.equal(engine.relays().length, 0);
  });

  test('1,000 add/remove cycles: mempool and hugepage use do not grow', async () => {
    const vf = join(dir, 'vfc.sock');
    const vm = join(dir, 'vmc.sock');
    const cycle = async (): Promise<void> => {
      await engine.addRelay({ id: 7, vf: { devargs: vhostVf(vf) }, socketPath: vm, mode: 'server', queues: 1 });
      await engine.removeRelay(7);
    };
    await cycle();
    const before = engine.memory();
    for (let i = 0; i < 1000; i++) await cycle();
    const afterwards = engine.memory();
    assert.equal(afterwards.hugepageBytes, before.hugepageBytes, 'hugepage memory mapped by the EAL');
    assert.equal(afterwards.mempools.length, 1);
    const [p0, p1] = [before.mempools[0]!, afterwards.mempools[0]!];
    assert.deepEqual({ ...p1, inUse: 0 }, { ...p0, inUse: 0 }, 'the same pool, the same size');
    assert.ok(p1.inUse <= p0.inUse, `mbufs in use: ${p0.inUse} before, ${p1.inUse} after`);
    assert.equal(engine.relays().length, 0);
  });

  test('workers, memory and version describe the running engine', () => {
    const w = engine.workers();
    assert.deepEqual(w.map(({ cpu, lcore, numaNode, directions }) => ({ cpu, lcore, numaNode, directions })), [{ cpu: 1, lcore: 1, numaNode: 0, directions: 0 }]);
    // a worker with nothing to poll is idle: its idle cycles grow, its busy cycles do not
    assert.ok(w[0]!.idleCycles > 0);
    assert.ok(engine.tscHz() > 1e8, `TSC at ${engine.tscHz()} Hz`);
    const m = engine.memory();
    const pool = m.mempools[0];
    assert.ok(pool, 'one pool on node 0');
    // the documented formula: poolQueuePairs x (rxd + txd + 2 x 32) + lcores x 1.5 x 256
    assert.equal(pool.size, POOL_QP * (RXD + TXD + 64) + 2 * 384);
    assert.equal(pool.numaNode, 0);
    assert.ok(pool.inUse < pool.size);
    assert.ok(m.hugepageBytes >= pool.bytes, 'the pool lives in hugepages');
    assert.match(engine.version().dpdk, /^\d+\.\d+/);
  });
});
