// Engine benchmark: hugepage memory and add/remove time as relays are added. Each relay gets a
// net_vhost VF stand-in and a server socket (nobody connects). Prints one line per step.
//   taskset -c 1 node --import tsx bench/relays-memory.ts [--relays 64] [--pool-queue-pairs Q]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { allowedCpus, Engine } from '../src/engine/index.js';

const { values } = parseArgs({ options: { relays: { type: 'string', default: '64' }, 'pool-queue-pairs': { type: 'string' } } });
const want = Number(values.relays);
const cpus = allowedCpus();
const dir = mkdtempSync(join(tmpdir(), 'vio4wd-mem-'));
const engine = await Engine.start({
  workerCpus: [cpus[cpus.length - 1] as number],
  mainCpu: cpus[0],
  inMemory: true,
  noPci: true,
  filePrefix: `viomem${process.pid}`,
  ...(values['pool-queue-pairs'] ? { poolQueuePairs: Number(values['pool-queue-pairs']) } : {}),
});
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
const base = engine.memory().hugepageBytes;
const n = Math.min(want, engine.limits.ports);
if (n < want) process.stdout.write(`note: this DPDK build has ${engine.limits.ports} ethdev ports: ${n} relays, not ${want}\n`);
process.stdout.write(`engine started: hugepages ${mib(base)} MiB (DPDK ${engine.version().dpdk})\n`);
const steps = new Set([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, n]);
let t = process.hrtime.bigint();
for (let id = 0; id < n; id++) {
  await engine.addRelay({ id, vf: { devargs: `net_vhost${id},iface=${join(dir, `vf${id}.sock`)}` }, socketPath: join(dir, `vm${id}.sock`), mode: 'server', queues: 1 });
  if (steps.has(id + 1)) {
    const m = engine.memory();
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    process.stdout.write(
      `relays ${String(id + 1).padStart(4)}: hugepages ${mib(m.hugepageBytes).padStart(7)} MiB` +
        ` (pool ${m.mempools.map((p) => `${p.size} mbufs = ${mib(p.bytes)} MiB`).join(', ')}), ${(ms / (id + 1)).toFixed(2)} ms per add so far\n`,
    );
  }
}
t = process.hrtime.bigint();
for (let id = 0; id < n; id++) await engine.removeRelay(id);
process.stdout.write(`removed ${n} relays in ${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ms; hugepages ${mib(engine.memory().hugepageBytes)} MiB\n`);
await engine.stop();
rmSync(dir, { recursive: true, force: true });
