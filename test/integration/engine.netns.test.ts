// VF stand-ins that are kernel interfaces, in a network namespace of this test: net_tap (the
// engine creates a tap interface) and net_af_packet on a veth. The engine runs in a child
// process inside the namespace; the VM is dpdk-testpmd (net_virtio_user) on the relay's socket.
// Kernel counters on one side, testpmd's on the other, the engine's in between: all exact.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { RelayStats } from '../../src/engine/index.js';
import { EngineChild, removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { Netns } from '../helpers/netns.js';
import { sleep, until } from '../helpers/wait.js';

const GUEST_MAC = '02:00:00:00:00:02';

describe('kernel-interface VF stand-ins in a network namespace', { timeout: 180_000 }, () => {
  const dir = tempDir('ns');
  let ns: Netns;
  let child: EngineChild;
  const peers: Testpmd[] = [];

  before(async () => {
    ns = await Netns.create('vf', { ipv6: false });
    child = EngineChild.spawn({ netns: ns.name });
    await child.call('start', { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('ns'), poolQueuePairs: 8, rxDescriptors: 128, txDescriptors: 128 });
  });
  after(async () => {
    for (const p of peers) p.kill();
    await child?.close();
    await ns?.destroy();
    removeDir(dir);
  });

  /** The guest: testpmd on the relay's socket, counting what arrives, sending on tx_first. */
  async function guest(sock: string, peerMac: string): Promise<Testpmd> {
    const t = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${sock},mac=${GUEST_MAC}`], args: [`--eth-peer=0,${peerMac}`] });
    peers.push(t);
    await t.cmd('start'); // rxonly: count what arrives
    return t;
  }

  /** Sends `count` UDP datagrams from the kernel side to the guest's address (static neighbour
   *  entry: no ARP; the guest does not answer, testpmd only counts). */
  async function sendUdp(ip: string, count: number): Promise<void> {
    await ns.exec('python3', ['-c', `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(${count}): s.sendto(b'vio4wd', ('${ip}', 9))`]);
  }

  async function exchange(id: number, kernelIf: string, guestIp: string, tp: Testpmd): Promise<void> {
    const s0 = (await child.call<RelayStats>('stats', id));
    const g0 = await tp.portStats(0);
    const k0 = (await ns.linkStats(kernelIf));
    await sendUdp(guestIp, 5);
    await tp.waitRx(0, g0.rxPackets + 5);
    await sleep(300);
    assert.equal((await tp.portStats(0)).rxPackets - g0.rxPackets, 5, 'the guest got the 5 datagrams, nothing else');
    assert.equal((await ns.linkStats(kernelIf)).txPackets - k0.txPackets, 5);
    await tp.cmd('stop');
    await tp.cmd('start tx_first 1'); // 8 packets from the guest
    await until(`${kernelIf} received 8`, async () => (await ns.linkStats(kernelIf)).rxPackets - k0.rxPackets >= 8);
    await tp.cmd('stop');
    await sleep(200);
    assert.equal((await ns.linkStats(kernelIf)).rxPackets - k0.rxPackets, 8);
    const s1 = await child.call<RelayStats>('stats', id);
    assert.equal(s1.vfToVm.rxPackets - s0.vfToVm.rxPackets, 5);
    assert.equal(s1.vfToVm.txPackets - s0.vfToVm.txPackets, 5);
    assert.equal(s1.vmToVf.rxPackets - s0.vmToVf.rxPackets, 8);
    assert.equal(s1.vmToVf.txPackets - s0.vmToVf.txPackets, 8);
    assert.equal(s1.vfToVm.droppedNotConnectedPackets + s1.vfToVm.droppedQueueFullPackets, s0.vfToVm.droppedNotConnectedPackets + s0.vfToVm.droppedQueueFullPackets);
  }

  test('net_tap: the engine makes a tap interface; datagrams reach the guest, the guest reaches the kernel', async () => {
    const sock = join(dir, 'tap.sock');
    const info = await child.call<{ portName: string; mac: string }>('addRelay', {
      id: 1, vf: { devargs: 'net_tap0,iface=vio4wdtap0' }, socketPath: sock, mode: 'server', queues: 1,
    });
    assert.equal(info.portName, 'net_tap0');
    await ns.ip('addr', 'add', '10.77.0.1/24', 'dev', 'vio4wdtap0');
    await ns.ip('link', 'set', 'vio4wdtap0', 'up');
    await ns.ip('neigh', 'replace', '10.77.0.2', 'lladdr', GUEST_MAC, 'dev', 'vio4wdtap0', 'nud', 'permanent');
    const tp = await guest(sock, info.mac);
    await until('guest connected', () => child.events.some((e) => e.type === 'guest-connected' && e.relayId === 1));
    await exchange(1, 'vio4wdtap0', '10.77.0.2', tp);
    await tp.quit();
    await child.call('removeRelay', 1);
    assert.equal(await ns.hasLink('vio4wdtap0'), false, 'removing the relay removes the tap interface');
  });

  test('net_af_packet on a veth: the same, through a kernel veth pair', async () => {
    await ns.ip('link', 'add', 'vio4wdvf', 'type', 'veth', 'peer', 'name', 'vio4wdpeer');
    await ns.ip('link', 'set', 'vio4wdvf', 'up');
    await ns.ip('link', 'set', 'vio4wdpeer', 'up');
    await ns.ip('addr', 'add', '10.78.0.1/24', 'dev', 'vio4wdpeer');
    await ns.ip('neigh', 'replace', '10.78.0.2', 'lladdr', GUEST_MAC, 'dev', 'vio4wdpeer', 'nud', 'permanent');
    const sock = join(dir, 'afp.sock');
    const info = await child.call<{ portName: string; mac: string; linkUp: boolean }>('addRelay', {
      id: 2, vf: { devargs: 'net_af_packet0,iface=vio4wdvf' }, socketPath: sock, mode: 'server', queues: 1,
    });
    assert.equal(info.portName, 'net_af_packet0');
    const tp = await guest(sock, info.mac);
    await until('guest connected and link up', () => child.events.some((e) => e.type === 'guest-connected' && e.relayId === 2));
    await exchange(2, 'vio4wdpeer', '10.78.0.2', tp);
    await tp.quit();
    await child.call('removeRelay', 2);
  });
});
