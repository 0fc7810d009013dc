// One node with 1,000 relays: the real kube-apiserver, the real agent and engine, net_null VF
// stand-ins (test/helpers/node-scale.ts), then relaybench with one active relay among 999 idle
// ones against a single relay. Prints one table; figures go into bench/RESULTS.md (section M).
//
//   flock /tmp/vio4wd-it.lock node --import tsx bench/node-scale.ts [--relays 1000] \
//     [--relaybench ../shared/tools/relaybench] [--rounds 3] [--json bench/results/FILE.json]
//
// relaybench is optional (it lives outside the project): without it the throughput row says so.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { engineSizing } from '../src/engine/sizing.js';
import { pct, runNodeScale } from '../test/helpers/node-scale.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    relays: { type: 'string', default: '1000' },
    relaybench: { type: 'string', default: resolve(here, '../../shared/tools/relaybench') },
    rounds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '64,1518' },
    json: { type: 'string' },
    'skip-throughput': { type: 'boolean', default: false },
  },
});
const n = Number(values.relays);
const MiB = 2 ** 20;
const log = (l: string): void => void process.stderr.write(`[node-scale] ${l}\n`);

const r = await runNodeScale({ relays: n, log });

interface Throughput {
  command: string;
  table: string;
  ratios: Record<string, number>;
}
let tput: Throughput | { skipped: string };
if (values['skip-throughput']) tput = { skipped: '--skip-throughput' };
else if (!existsSync(values.relaybench)) tput = { skipped: `no relaybench at ${values.relaybench}` };
else {
  const dut = join(here, 'dut-vio4wd');
  const json = values.json ? values.json.replace(/\.json$/, '-relaybench.json') : join('/tmp', `node-scale-relaybench-${process.pid}.json`);
  const args = [
    '--dut', `single=cmd:${dut} {vf_sock} {vm_sock}`,
    '--dut', `among${n}=cmd:${dut} {vf_sock} {vm_sock} --relays ${n} --idle-vf null --workdir {workdir}`,
    '--sizes', values.sizes, '-R', values.rounds, '-v', '--json', json,
  ];
  log(`relaybench ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`);
  const out = await new Promise<string>((res, rej) =>
    execFile(values.relaybench, args, { encoding: 'utf8', maxBuffer: 64 * MiB, env: { ...process.env, PATH: `${resolve(here, '../node_modules/.bin')}:${process.env.PATH ?? ''}` } }, (err, stdout, stderr) => {
      process.stderr.write(stderr);
      if (err && !stdout) rej(err);
      else res(stdout);
    }),
  );
  const last = out.trimEnd().split('\n').at(-1) ?? '';
  const ratios: Record<string, number> = {};
  const m = /^ratio (.*)$/.exec(last);
  if (m) {
    const parts = m[1]!.split(/\s+/);
    for (let i = 0; i + 1 < parts.length; i += 2) ratios[parts[i]!] = Number(parts[i + 1]);
  }
  tput = { command: `relaybench ${args.join(' ')}`, table: out, ratios };
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const perRelayHp = (r.hugepagesAfterBytes - r.hugepagesBeforeBytes) / n;
const predicted = engineSizing({ relays: n });
const rows: [string, string][] = [
  ['relays Ready', `${n} of ${n} (VirtioRelays, net_null VFs, server-mode sockets)`],
  ['create all (32 requests in flight)', s(r.createdMs)],
  ['first create -> last relay Ready', s(r.allReadyMs)],
  ['create -> Ready per relay', `median ${s(pct(r.createToReadyMs, 50))}, p99 ${s(pct(r.createToReadyMs, 99))}`],
  ['agent RSS', `${(r.rssBeforeBytes / MiB).toFixed(0)} MiB idle -> ${(r.rssAfterBytes / MiB).toFixed(0)} MiB: ${((r.rssAfterBytes - r.rssBeforeBytes) / n / 1024).toFixed(0)} KiB per relay`],
  ['engine hugepages', `${(r.hugepagesBeforeBytes / MiB).toFixed(0)} -> ${(r.hugepagesAfterBytes / MiB).toFixed(0)} MiB: ${(perRelayHp / MiB).toFixed(2)} MiB per relay (doctor predicts ${predicted.pages2M} pages = ${predicted.pages2M * 2} MiB)`],
  ['mbufs in the pools', `${r.mbufsCapacity} (${predicted.pools} pools of 256 queue pairs)`],
  ['restart (SIGKILL): checkpoint read', `${s(r.restart.restoredLoggedMs)} after spawn (${r.restart.relaysRestored} relays)`],
  ['restart: all relays Ready in the engine', `${s(r.restart.restoreAllReadyMs)} after spawn`],
  ['restart: agent running (apiserver reconciled)', `${s(r.restart.agentRunningMs)} after spawn; ${r.restart.notReadyAfter} VirtioRelays not Ready`],
];
if ('skipped' in tput) rows.push(['one active relay among idle ones', `not run: ${tput.skipped}`]);
else rows.push([`one active relay among ${n - 1} idle / single relay`, Object.entries(tput.ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')]);

const w = Math.max(...rows.map(([k]) => k.length));
process.stdout.write(`\nvio4wd node scale: ${n} relays on one agent (real kube-apiserver, agent, engine; 1 worker on CPU 1)\n`);
for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
if (!('skipped' in tput)) process.stdout.write(`\nrelaybench:\n${tput.table}`);
if (values.json) {
  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), relays: n, result: r, throughput: tput }, null, 1) + '\n');
}
