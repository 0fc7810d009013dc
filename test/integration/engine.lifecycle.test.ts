// Engine lifecycle on real DPDK: calls before start, a second start, calls after stop, an EAL
// that refuses its arguments, and an engine squeezed onto one CPU (main lcore and worker share
// it, as under relaybench's `taskset -c 1`) that still forwards.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, EngineError } from '../../src/engine/index.js';
import { loadAddon } from '../../src/engine/native.js';
import { EngineChild, removeDir, tempDir, Testpmd, uniqueName } from '../helpers/dpdk.js';
import { until } from '../helpers/wait.js';

const dir = tempDir('life');
const children: EngineChild[] = [];
const peers: Testpmd[] = [];
after(async () => {
  for (const p of peers) p.kill();
  for (const c of children) await c.close();
  removeDir(dir);
});

const base = { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, poolQueuePairs: 8, rxDescriptors: 64, txDescriptors: 64 };

test('start once: a call before start, a second start and calls after stop fail clearly', async () => {
  const native = loadAddon();
  await assert.rejects(native.removeRelay(1), { code: 'ENOTSTARTED', message: /engine not started: call Engine\.start\(\) first/ });
  const engine = await Engine.start({ ...base, filePrefix: uniqueName('life') });
  assert.deepEqual(engine.relays(), []);
  // every DPDK library in the process, the drivers EAL loaded at start included, comes from the
  // DPDK the addon was built against (one with 32 ports from /usr/lib mixed in is a silent bug)
  const libs = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/).pop() ?? '').filter((f) => /\/librte_[a-z0-9_]+\.so/.test(f)))];
  const eal = libs.find((f) => /\/librte_eal\.so/.test(f));
  assert.ok(eal, `librte_eal is loaded: ${libs.join(' ')}`);
  const root = eal.slice(0, eal.lastIndexOf('/'));
  assert.ok(libs.length > 10, `DPDK libraries and drivers are loaded (${libs.length})`);
  assert.deepEqual(libs.filter((f) => !f.startsWith(`${root}/`)), [], `DPDK libraries from outside ${root}`);
  await assert.rejects(Engine.start({ ...base, filePrefix: uniqueName('life') }), (e: unknown) => {
    assert.ok(e instanceof EngineError);
    assert.equal(e.code, 'EALREADY');
    assert.match(e.message, /already started in this process/);
    return true;
  });
  assert.equal(engine.workers().length, 1, 'the first engine still runs');
  await engine.stop();
  await engine.stop(); // idempotent
  await assert.rejects(engine.addRelay({ id: 1, vf: { devargs: 'net_null0' }, socketPath: join(dir, 'a.sock'), mode: 'server', queues: 1 }), {
    code: 'ENOTSTARTED',
    message: /engine stopped/,
  });
  assert.throws(() => engine.stats(1), { code: 'ENOTSTARTED' });
  await assert.rejects(Engine.start({ ...base, filePrefix: uniqueName('life') }), { code: 'EALREADY' });
});

test('an EAL that rejects its arguments fails start with the reason, and the process cannot start again', async () => {
  const child = EngineChild.spawn();
  children.push(child);
  await assert.rejects(child.call('start', { ...base, filePrefix: uniqueName('bad'), extraEalArgs: ['--no-such-eal-flag'] }), {
    code: 'EIO',
    message: /rte_eal_init failed/,
  });
  await assert.rejects(child.call('start', { ...base, filePrefix: uniqueName('bad') }), { code: 'EALREADY', message: /earlier Engine\.start\(\) in this process failed/ });
  await child.close();
});

test('one CPU for everything (taskset -c 1): the main lcore sleeps beside the worker, and it forwards', async () => {
  const child = EngineChild.spawn({ cpus: '1' });
  children.push(child);
  const { mainCpu } = await child.call<{ mainCpu: number }>('start', { ...base, mainCpu: undefined, filePrefix: uniqueName('one') });
  assert.equal(mainCpu, 1);
  const workers = await child.call<{ cpu: number; lcore: number; numaNode: number; directions: number }[]>('workers');
  assert.deepEqual(workers.map(({ cpu, lcore, numaNode, directions }) => ({ cpu, lcore, numaNode, directions })), [{ cpu: 1, lcore: 1, numaNode: 0, directions: 0 }]);
  const vf = join(dir, 'vf.sock');
  const vm = join(dir, 'vm.sock');
  await child.call('addRelay', { id: 5, vf: { devargs: `net_vhost0,iface=${vf}` }, socketPath: vm, mode: 'server', queues: 1 });
  const tp = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${vf}`, `net_virtio_user1,path=${vm}`] });
  peers.push(tp);
  await until('relay 5 connected', () => child.events.some((e) => e.type === 'guest-connected' && e.relayId === 5));
  await tp.cmd('start tx_first 2');
  await tp.waitRx(0, 16);
  await tp.waitRx(1, 16);
  const s = await child.call<{ vfToVm: { txPackets: number }; vmToVf: { txPackets: number } }>('stats', 5);
  assert.equal(s.vfToVm.txPackets, 16);
  assert.equal(s.vmToVf.txPackets, 16);
  await tp.quit();
  await child.call('stop');
  await child.close();
});
