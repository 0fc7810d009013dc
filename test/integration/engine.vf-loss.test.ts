// A relay's VF goes away and comes back under a connected guest, with the real engine in a
// network namespace: VF stand-ins are net_af_packet on veths and net_tap; the guests are
// dpdk-testpmd (net_virtio_user) on the relays' sockets. The engine notices the loss by itself
// (the stand-ins raise no removal event), detaches only the VF side, keeps the guest connected
// and counts its packets as dropped (not connected); attachVf() brings the VF back and traffic
// flows again on the same guest connection. Other relays forward throughout. Then the same
// through the agent (RelayManager): status, re-attach with backoff when the veth is back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RelayInfo, RelayStats } from '../../src/engine/index.js';
import { EngineChild, removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { sleep, until } from '../helpers/wait.js';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';

const execFileP = promisify(execFile);

const GUEST_MAC = '02:00:00:00:00:02';

describe('VF loss and return under a connected guest (real engine, netns)', { timeout: 240_000 }, () => {
  const dir = tempDir('vfl');
  let ns: Netns;
  let child: EngineChild;
  const peers: Testpmd[] = [];
  const guests = new Map<number, Testpmd>();

  before(async () => {
    ns = await Netns.create('vfl', { ipv6: false });
    child = EngineChild.spawn({ netns: ns.name });
    await child.call('start', { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('vfl'), poolQueuePairs: 8, rxDescriptors: 128, txDescriptors: 128 });
  });
  after(async () => {
    for (const p of peers) p.kill();
    await child?.close();
    await ns?.destroy();
    removeDir(dir);
  });

  const relay = (id: number) => child.call<RelayInfo | null>('relay', id);
  const stats = (id: number) => child.call<RelayStats>('stats', id);
  const eventsOf = (id: number, type: string) => child.events.filter((e) => e.relayId === id && e.type === type);
  const untilEngine = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) => until(what, check, { timeoutMs, detail: () => child.stderr.slice(-2000) });

  /** A veth pair: `vf` is the relay's side (net_af_packet), `peer` the host behind the VF. */
  async function addVeth(vf: string, peer: string, cidr: string, guestIp: string): Promise<void> {
    await ns.ip('link', 'add', vf, 'type', 'veth', 'peer', 'name', peer);
    await ns.ip('link', 'set', vf, 'up');
    await ns.ip('link', 'set', peer, 'up');
    await ns.ip('addr', 'add', cidr, 'dev', peer);
    await ns.ip('neigh', 'replace', guestIp, 'lladdr', GUEST_MAC, 'dev', peer, 'nud', 'permanent');
  }

  async function addGuest(id: number, sock: string, peerMac: string): Promise<Testpmd> {
    const t = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${sock},mac=${GUEST_MAC}`], args: [`--eth-peer=0,${peerMac}`] });
    peers.push(t);
    guests.set(id, t);
    await t.cmd('start'); // rxonly: count what arrives
    await untilEngine(`guest on relay ${id}`, () => eventsOf(id, 'guest-connected').length > 0);
    return t;
  }

  async function sendUdp(ip: string, count: number): Promise<void> {
    await ns.exec('python3', ['-c', `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(${count}): s.sendto(b'vio4wd', ('${ip}', 9))`]);
  }

  /** 5 datagrams kernel -> guest and 8 packets guest -> kernel through relay `id`, all counted. */
  async function exchange(id: number, kernelIf: string, guestIp: string): Promise<void> {
    const tp = guests.get(id)!;
    const s0 = await stats(id);
    const g0 = await tp.portStats(0);
    const k0 = (await ns.linkStats(kernelIf));
    await sendUdp(guestIp, 5);
    await tp.waitRx(0, g0.rxPackets + 5);
    await tp.cmd('stop');
    await tp.cmd('start tx_first 1'); // 8 packets from the guest
    await untilEngine(`${kernelIf} received 8`, async () => (await ns.linkStats(kernelIf)).rxPackets - k0.rxPackets >= 8);
    await tp.cmd('stop');
    await tp.cmd('start');
    const s1 = await stats(id);
    assert.equal(s1.vfToVm.txPackets - s0.vfToVm.txPackets, 5, `relay ${id}: VF->VM`);
    assert.equal(s1.vmToVf.txPackets - s0.vmToVf.txPackets, 8, `relay ${id}: VM->VF`);
  }

  const AFP2 = 'net_af_packet2,iface=vfl2';

  test('two relays on af_packet veths and one on a tap forward with guests connected', async () => {
    await addVeth('vfl1', 'vfl1p', '10.81.0.1/24', '10.81.0.2');
    await addVeth('vfl2', 'vfl2p', '10.82.0.1/24', '10.82.0.2');
    const i1 = await child.call<RelayInfo>('addRelay', { id: 1, vf: { devargs: 'net_af_packet1,iface=vfl1' }, socketPath: join(dir, 'r1.sock'), mode: 'server', queues: 1 });
    const i2 = await child.call<RelayInfo>('addRelay', { id: 2, vf: { devargs: AFP2 }, socketPath: join(dir, 'r2.sock'), mode: 'server', queues: 1 });
    assert.equal(i2.vfAttached, true);
    assert.equal(i2.portName, 'net_af_packet2');
    await addGuest(1, join(dir, 'r1.sock'), i1.mac);
    await addGuest(2, join(dir, 'r2.sock'), i2.mac);
    await untilEngine('links up', async () => (await relay(1))?.linkUp === true && (await relay(2))?.linkUp === true);
    await exchange(1, 'vfl1p', '10.81.0.2');
    await exchange(2, 'vfl2p', '10.82.0.2');
  });

  test('the veth behind relay 2 is deleted: VF detached by the engine, guest still connected, its packets dropped as not connected', async () => {
    await ns.ip('link', 'del', 'vfl2'); // takes vfl2p with it
    await untilEngine('vf-removed on relay 2', async () => eventsOf(2, 'vf-removed').length === 1);
    assert.equal(eventsOf(2, 'vf-removed')[0]!.cause, 'interface-gone');
    const r2 = (await relay(2))!;
    assert.equal(r2.vfAttached, false);
    assert.equal(r2.vfLoss, 'interface-gone');
    assert.equal(r2.portId, -1);
    assert.equal(r2.linkUp, false);
    assert.equal(r2.guestConnected, true, 'the guest keeps its vhost-user connection');
    assert.equal(r2.socketConnected, true);
    assert.equal(eventsOf(2, 'guest-disconnected').length, 0);
    // the guest sends; nothing can go out: dropped, not connected (its tx ring keeps moving)
    const s0 = await stats(2);
    const tp = guests.get(2)!;
    await tp.cmd('stop');
    await tp.cmd('start tx_first 1');
    await untilEngine('8 drops', async () => (await stats(2)).vmToVf.droppedNotConnectedPackets - s0.vmToVf.droppedNotConnectedPackets >= 8);
    await tp.cmd('stop');
    await tp.cmd('start');
    const s1 = await stats(2);
    assert.equal(s1.vmToVf.txPackets, s0.vmToVf.txPackets);
    assert.equal(s1.vmToVf.droppedNotConnectedPackets - s0.vmToVf.droppedNotConnectedPackets, 8);
    // relay 1 is not disturbed
    await exchange(1, 'vfl1p', '10.81.0.2');
    // while the interface is missing, re-attaching fails with ENODEV and changes nothing
    await assert.rejects(child.call('attachVf', 2, { devargs: AFP2 }), (e: { code?: string }) => e.code === 'ENODEV');
    assert.equal((await relay(2))!.vfAttached, false);
  });

  test('the veth comes back with the same name: attachVf re-attaches, traffic flows on the same guest connection', async () => {
    await addVeth('vfl2', 'vfl2p', '10.82.0.1/24', '10.82.0.2');
    const info = await child.call<RelayInfo>('attachVf', 2, { devargs: AFP2 });
    assert.equal(info.vfAttached, true);
    assert.equal(info.portName, 'net_af_packet2');
    assert.ok(info.portId >= 0);
    assert.equal(info.vfLoss, undefined);
    await untilEngine('link up on relay 2', async () => (await relay(2))?.linkUp === true);
    await exchange(2, 'vfl2p', '10.82.0.2');
    assert.equal(eventsOf(2, 'guest-connected').length, 1, 'the guest never reconnected');
    assert.equal(eventsOf(2, 'guest-disconnected').length, 0);
    await exchange(1, 'vfl1p', '10.81.0.2');
  });

  test('the peer link goes down and up: link events, the VF stays attached', async () => {
    const before = eventsOf(1, 'link').length;
    await ns.ip('link', 'set', 'vfl1p', 'down');
    await untilEngine('link down on relay 1', async () => (await relay(1))?.linkUp === false);
    assert.deepEqual(eventsOf(1, 'link').slice(before).map((e) => e.up), [false]);
    assert.equal((await relay(1))!.vfAttached, true);
    await ns.ip('link', 'set', 'vfl1p', 'up');
    // a link going down flushes even permanent neighbour entries
    await ns.ip('neigh', 'replace', '10.81.0.2', 'lladdr', GUEST_MAC, 'dev', 'vfl1p', 'nud', 'permanent');
    await untilEngine('link up on relay 1', async () => (await relay(1))?.linkUp === true);
    await exchange(1, 'vfl1p', '10.81.0.2');
  });

  test('a net_tap VF whose interface is deleted is detached; attachVf makes a new tap', async () => {
    const sock = join(dir, 'r3.sock');
    const devargs = 'net_tap3,iface=vfl3tap';
    const i3 = await child.call<RelayInfo>('addRelay', { id: 3, vf: { devargs }, socketPath: sock, mode: 'server', queues: 1 });
    await ns.ip('link', 'set', 'vfl3tap', 'up');
    await addGuest(3, sock, i3.mac);
    await ns.ip('link', 'del', 'vfl3tap');
    await untilEngine('vf-removed on relay 3', async () => eventsOf(3, 'vf-removed').length === 1);
    assert.equal((await relay(3))!.guestConnected, true);
    const back = await child.call<RelayInfo>('attachVf', 3, { devargs });
    assert.equal(back.vfAttached, true);
    await ns.ip('link', 'set', 'vfl3tap', 'up');
    await ns.ip('addr', 'add', '10.83.0.1/24', 'dev', 'vfl3tap');
    await ns.ip('neigh', 'replace', '10.83.0.2', 'lladdr', GUEST_MAC, 'dev', 'vfl3tap', 'nud', 'permanent');
    await untilEngine('tap link up', async () => (await relay(3))?.linkUp === true);
    await exchange(3, 'vfl3tap', '10.83.0.2');
  });

  test('detachVf by hand keeps the guest; a wrong id and a bad VF are refused naming them', async () => {
    const d = await child.call<RelayInfo>('detachVf', 1);
    assert.equal(d.vfAttached, false);
    assert.equal(d.vfLoss, undefined, 'detached on request, not lost');
    assert.equal(d.guestConnected, true);
    assert.equal(eventsOf(1, 'vf-removed').length, 0, 'no vf-removed event for a requested detach');
    await child.call('detachVf', 1); // twice is fine
    await exchange(2, 'vfl2p', '10.82.0.2');
    await assert.rejects(child.call('detachVf', 99), (e: { code?: string; message?: string }) => e.code === 'ENOENT' && /relay 99/.test(e.message ?? ''));
    await assert.rejects(child.call('attachVf', 1, { devargs: '' }), (e: { message?: string }) => /vf\.devargs/.test(e.message ?? ''));
    await assert.rejects(child.call('attachVf', 1, { devargs: 'net_nosuchdriver0' }), (e: { code?: string }) => e.code === 'EINVAL' || e.code === 'ENODEV');
    const a = await child.call<RelayInfo>('attachVf', 1, { devargs: 'net_af_packet1,iface=vfl1' });
    assert.equal(a.vfAttached, true);
    await untilEngine('link up on relay 1', async () => (await relay(1))?.linkUp === true);
    await exchange(1, 'vfl1p', '10.81.0.2');
    // removing relays with and without their VF works
    await child.call('detachVf', 3);
    for (const id of [1, 2, 3]) await child.call('removeRelay', id);
    assert.deepEqual(await child.call('relays'), []);
  });
});

describe('the agent keeps a guest connected while its VF is gone and re-attaches the VF when it is back', { timeout: 240_000 }, () => {
  let ns: Netns;
  let tmp: { path: string; remove: () => void };
  let agent: AgentProcess;
  const vms: Testpmd[] = [];
  const METRICS = '127.0.0.1:9464';

  async function veth(n: number): Promise<void> {
    await ns.addVeth(`vx${n}`, `vx${n}p`);
    await ns.addAddress(`vx${n}p`, `10.9${n}.0.1/24`);
  }

  /** pings from the host behind VF n to its VM (testpmd answering ARP and ICMP echo) */
  async function ping(n: number, count: number): Promise<number> {
    const args = ['netns', 'exec', ns.name, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '2', `10.9${n}.0.2`];
    const out = await execFileP('ip', args, { encoding: 'utf8' }).then((r) => r.stdout, (e: { stdout?: string }) => e.stdout ?? '');
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  }

  async function metrics(): Promise<string> {
    return (await agent.http(`http://${METRICS}/metrics`)).body;
  }
  function metric(text: string, name: string, labels: string): number {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((x) => l.includes(x)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
  }
  function untilMetric(what: string, check: (m: string) => boolean, timeoutMs = 20_000): Promise<string> {
    return until(
      what,
      async () => {
        const m = await metrics();
        return check(m) ? m : undefined;
      },
      { timeoutMs, intervalMs: 200, detail: () => agent.output.slice(-3000) },
    );
  }

  before(async () => {
    ns = await Netns.create('vfl-agent');
    tmp = testTempDir('vfl-agent');
    const sockDir = join(tmp.path, 'sock');
    mkdirSync(sockDir);
    await veth(1);
    await veth(2);
    agent = await AgentProcess.start({
      config: {
        log: { level: 'debug' },
        engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
        vhostUser: { mode: 'server', socketDir: sockDir },
        control: { ipcDir: join(tmp.path, 'ipc') },
        metrics: { address: METRICS },
        relays: [
          { id: 1, vf: { devargs: 'net_af_packet_x1,iface=vx1' } },
          { id: 2, vf: { devargs: 'net_af_packet_x2,iface=vx2' } },
        ],
      },
      workDir: tmp.path,
      netns: ns,
    });
    for (const n of [1, 2]) {
      const vm = await Testpmd.start({
        vdevs: [`net_virtio_user0,path=${join(sockDir, `virtio-forwarder${n}.sock`)},queues=1,mac=52:54:00:00:09:0${n}`],
        fwd: 'io', cpu: 0, netns: ns.name, args: ['--forward-mode=icmpecho'],
      });
      vms.push(vm);
      await vm.cmd('start');
    }
  });

  after(async () => {
    for (const vm of vms) await vm.quit();
    if (agent && agent.exitCode === null) await agent.stop();
    await ns?.destroy();
    tmp?.remove();
  });

  test('both relays Ready with their guests, pings through both', async () => {
    await untilMetric('both guests connected', (m) => metric(m, 'vio4wd_relay_guest_connected', 'relay="relay-1"') === 1 && metric(m, 'vio4wd_relay_guest_connected', 'relay="relay-2"') === 1);
    assert.equal(await ping(1, 3), 3);
    assert.equal(await ping(2, 3), 3);
  });

  test('the veth of relay 2 is deleted: relay 2 Failed with reason VFRemoved, its guest stays connected, relay 1 forwards', async () => {
    const from = agent.output.length;
    await ns.ip('link', 'del', 'vx2');
    const m = await untilMetric('relay-2 Failed', (x) => metric(x, 'vio4wd_relay_phase', 'relay="relay-2",phase="Failed"') === 1);
    assert.equal(metric(m, 'vio4wd_relay_guest_connected', 'relay="relay-2"'), 1, 'the guest on relay 2 is still connected');
    assert.equal(metric(m, 'vio4wd_relay_phase', 'relay="relay-1",phase="Ready"'), 1);
    const lost = await agent.waitForLog(/"relay":"relay-2"[^\n]*"reason":"VFRemoved"[^\n]*"msg":"VF lost[^"]*"/, 5000, from);
    assert.match(lost, /"cause":"interface-gone"/);
    assert.equal(await ping(1, 5), 5, 'relay 1 keeps forwarding');
    // re-attach attempts fail quietly while the veth is missing; the relay stays Failed
    await sleep(2500);
    assert.equal(metric(await metrics(), 'vio4wd_relay_phase', 'relay="relay-2",phase="Failed"'), 1);
  });

  test('the veth comes back with the same name: relay 2 re-attaches by itself, Ready, pings pass, the guest never reconnected', async () => {
    const from = agent.output.length;
    await veth(2);
    await untilMetric('relay-2 Ready again', (x) => metric(x, 'vio4wd_relay_phase', 'relay="relay-2",phase="Ready"') === 1, 30_000);
    await agent.waitForLog(/"relay":"relay-2"[^\n]*"msg":"VF re-attached: forwarding again"/, 5000, from);
    assert.equal(await ping(2, 5), 5);
    assert.equal(await ping(1, 3), 3);
    const reconnects = agent.logs().filter((l) => l.relay === 'relay-2' && l.guestConnected === 'True');
    assert.equal(reconnects.length, 1, 'GuestConnected went True once, at the start');
  });
});
