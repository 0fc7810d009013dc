// VF -> guest spreading on real DPDK: a relay whose VF has one queue and whose guest enabled four
// rx queues spreads the VF's packets over all four by flow hash (virtio-forwarder does the same),
// every packet to exactly one queue; a single flow stays on one queue (in order).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine } from '../../src/engine/index.js';
import { removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { until } from '../helpers/wait.js';

const dir = tempDir('rxspread');
let engine: Engine;
const peers: Testpmd[] = [];

before(async () => {
  engine = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: uniqueName('rxspread'), poolQueuePairs: 8, rxDescriptors: 256, txDescriptors: 256 });
});
after(async () => {
  for (const p of peers) p.kill();
  await engine?.stop();
  removeDir(dir);
});

/** Packets each rx queue of port 0 received (testpmd's per-queue xstats). */
async function perQueueRx(tp: Testpmd, queues: number): Promise<number[]> {
  const text = await tp.cmd('show port xstats 0');
  return [...Array(queues).keys()].map((q) => Number(new RegExp(`rx_q${q}_(?:good_)?packets:\\s+(\\d+)`).exec(text)?.[1] ?? NaN));
}

test('one VF queue, four guest rx queues: packets spread over all four by flow', async () => {
  const vf = join(dir, 'vf.sock');
  const vm = join(dir, 'vm.sock');
  await engine.addRelay({ id: 1, vf: { devargs: `net_vhost1,iface=${vf}` }, socketPath: vm, mode: 'server', queues: 1, vhostQueues: 4 });
  // the guest: 4 queue pairs, receiving only
  const guest = await Testpmd.start({ vdevs: [`net_virtio_user1,path=${vm},queues=4`], queues: 4, fwd: 'rxonly', cpu: 0 });
  peers.push(guest);
  // the VF's far side: many flows (txonly-multi-flow varies the source IP per packet), or one
  const sender = async (multi: boolean): Promise<Testpmd> => {
    const tp = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vf}`], fwd: 'txonly', cpu: 0, args: multi ? ['--txonly-multi-flow'] : [] });
    peers.push(tp);
    return tp;
  };
  await until('guest with 4 rx queues', () => engine.relay(1)?.guestConnected === true && (engine.relay(1)?.enabledQueues ?? 0) >= 8, 20_000);
  await guest.cmd('start');

  const many = await sender(true);
  await until('VF link', () => engine.relay(1)?.linkUp === true, 10_000);
  await many.cmd('start');
  await sleep(1000);
  await many.cmd('stop');
  await sleep(300);
  const rx = await perQueueRx(guest, 4);
  const st = engine.stats(1);
  assert.ok(rx.every((n) => n > 0), `every guest rx queue received packets: ${rx.join(', ')}`);
  assert.equal(rx.reduce((a, b) => a + b, 0), st.vfToVm.txPackets, 'each packet the relay sent went to exactly one queue');
  // a hash spreads: no queue has most of them
  const total = rx.reduce((a, b) => a + b, 0);
  assert.ok(Math.max(...rx) < total * 0.6, `spread evenly enough: ${rx.join(', ')}`);
  await many.quit();

  // one flow: all on one queue
  await guest.cmd('stop');
  await guest.cmd('clear port xstats 0');
  await guest.cmd('start');
  const one = await sender(false);
  await one.cmd('start');
  await sleep(500);
  await one.cmd('stop');
  await sleep(300);
  const rx1 = await perQueueRx(guest, 4);
  assert.equal(rx1.filter((n) => n > 0).length, 1, `one flow, one queue: ${rx1.join(', ')}`);
  await one.quit();
  await guest.quit();
  await engine.removeRelay(1);
});
