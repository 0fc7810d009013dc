// The engine as relaybench's device under test: see ./dut-vio4wd.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { allowedCpus, Engine } from '../src/engine/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    relays: { type: 'string', default: '1' },
    workdir: { type: 'string' },
    'pool-queue-pairs': { type: 'string' },
    'vhost-queues': { type: 'string' },
    tso: { type: 'boolean', default: false },
    'no-mrg': { type: 'boolean', default: false },
    // the idle relays' VFs: net_vhost devices (a socket each, as before) or net_null devices
    // (no socket: rte_vhost serves at most 1024 sockets, so 1,000 relays need null VFs)
    'idle-vf': { type: 'string', default: 'vhost' },
    // the engine's idleSweepMicros (default: the engine's)
    'idle-sweep-us': { type: 'string' },
  },
});
const [vfSock, vmSock] = positionals;
if (!vfSock || !vmSock) {
  process.stderr.write('usage: dut-vio4wd VF_SOCK VM_SOCK [--relays N] [--idle-vf vhost|null] [--workdir DIR] [--pool-queue-pairs Q] [--vhost-queues Q] [--idle-sweep-us U] [--tso] [--no-mrg]\n');
  process.exit(2);
}
const relays = Number(values.relays);
// relaybench pins the DUT with taskset: the worker takes the last allowed CPU, the main lcore
// sleeps on the first (the same one when only one is allowed)
const cpus = allowedCpus();
const worker = cpus[cpus.length - 1] as number;
const work = values.workdir ?? mkdtempSync(join(tmpdir(), 'vio4wd-dut-'));
const t0 = Date.now();
const engine = await Engine.start({
  workerCpus: [worker],
  mainCpu: cpus[0],
  inMemory: true,
  noPci: true,
  filePrefix: `viodut${process.pid}`,
  tso: values.tso,
  mergeableRxBuffers: !values['no-mrg'],
  // default: the engine's default pool (256 queue pairs), as an agent would run
  ...(values['pool-queue-pairs'] ? { poolQueuePairs: Number(values['pool-queue-pairs']) } : {}),
  ...(values['idle-sweep-us'] !== undefined ? { idleSweepMicros: Number(values['idle-sweep-us']) } : {}),
});
if (values['idle-vf'] !== 'vhost' && values['idle-vf'] !== 'null') throw new Error(`--idle-vf: ${values['idle-vf']}: give vhost or null`);
// the idle relays first: relaybench starts the generator once relay 0's sockets are there
for (let id = 1; id < relays; id++)
  await engine.addRelay({
    id,
    vf: { devargs: values['idle-vf'] === 'null' ? `net_null${id},no-rx=1` : `net_vhost${id},iface=${join(work, `vf${id}.sock`)},queues=1` },
    socketPath: join(work, `vm${id}.sock`),
    mode: 'server',
    queues: 1,
  });
// --vhost-queues 32: relay 0 offers the guest 32 queue pairs as drop-in relays do (the
// generator enables one): what polling the 31 unused ones costs
const vhostQueues = values['vhost-queues'] ? Number(values['vhost-queues']) : undefined;
await engine.addRelay({ id: 0, vf: { devargs: `net_vhost0,iface=${vfSock},queues=1` }, socketPath: vmSock, mode: 'server', queues: 1, ...(vhostQueues ? { vhostQueues } : {}) });
const mem = engine.memory();
process.stdout.write(
  `dut-vio4wd: ready in ${Date.now() - t0} ms: ${relays} relay(s) on CPU ${worker} (main lcore CPU ${engine.mainCpu}), ` +
    `hugepages ${(mem.hugepageBytes / 2 ** 20).toFixed(0)} MiB, pool ${mem.mempools.map((p) => `${p.name} ${p.size} mbufs ${(p.bytes / 2 ** 20).toFixed(0)} MiB`).join(', ')}\n`,
);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  const s = engine.stats(0);
  const w = engine.workers()[0];
  process.stdout.write(`dut-vio4wd: relay 0 vfToVm ${JSON.stringify(s.vfToVm)}\ndut-vio4wd: relay 0 vmToVf ${JSON.stringify(s.vmToVf)}\n`);
  if (w && 'hotEntries' in w) process.stdout.write(`dut-vio4wd: worker entries ${w.entries}, hot ${w.hotEntries}, wakeups ${w.wakeups}\n`);
  await engine.stop();
  if (!values.workdir) rmSync(work, { recursive: true, force: true });
  process.exit(0);
};
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => void stop());
