// The chart's hugepage request follows the engine's pool (docs/sizing.md): real `helm template`
// renders the agent for several pool settings, and the figure it requests must equal what
// `vio4wd doctor --config <the rendered agent config> --relays N` says one NUMA node needs (the
// formula a scale test checks against the engine's real use). An explicit amount below the need
// fails the render with a message that names the field and the need.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DoctorReport } from '../../src/doctor/index.js';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { agentConfigText, helmTemplate, type Obj } from '../helpers/helm.js';

const ENTRY = "import { main } from './src/cli/main.ts'; process.exitCode = await main(['node', 'vio4wd', ...process.argv.slice(1)]);";

let tmp: string;
let n = 0;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vio4wd-sizing-'));
  mkdirSync(join(tmp, 'host'));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const helm = helmTemplate;

/** The agent's hugepage resources and its config file, as `helm template` renders them. */
function render(values: Obj): { requests: Obj; limits: Obj; config: string } {
  const r = helm(values);
  assert.equal(r.code, 0, `helm template: ${r.stderr}`);
  const ds = r.objs.find((o) => o.kind === 'DaemonSet');
  assert.ok(ds, 'the agent DaemonSet is rendered');
  const res = ds.spec.template.spec.containers[0].resources as Obj;
  const pick = (o: Obj | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => k.startsWith('hugepages-')));
  return { requests: pick(res.requests), limits: pick(res.limits), config: agentConfigText(r.objs) };
}

/** Pages per NUMA node `vio4wd doctor` says `relays` relays need with this agent config. */
function doctorPages(config: string, relays: number): number {
  const file = join(tmp, `agent-${++n}.yaml`);
  writeFileSync(file, config);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, 'doctor', '--root', join(tmp, 'host'), '--json', '--config', file, '--relays', String(relays)], { encoding: 'utf8' });
  assert.ok(r.stdout.startsWith('{'), `vio4wd doctor: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assert.equal(report.relays, relays);
  return report.hugepagesNeededPerNode;
}

const agent = (a: Obj): Obj => ({ agent: a });

test("the chart requests what vio4wd doctor says the pool needs, for several pool sizes", () => {
  const cases: { name: string; values: Obj; relays: number }[] = [
    { name: 'defaults (512 relays: two pools of 256 queue pairs)', values: {}, relays: 512 },
    { name: 'one relay', values: agent({ hugepages: { relays: 1 } }), relays: 1 },
    { name: '256 relays fill one pool', values: agent({ hugepages: { relays: 256 } }), relays: 256 },
    { name: '257 relays take a second pool', values: agent({ hugepages: { relays: 257 } }), relays: 257 },
    { name: '1,000 relays in one pool of 1024', values: agent({ hugepages: { relays: 1000 }, engine: { poolQueuePairs: 1024 } }), relays: 1000 },
    {
      name: 'small pools and rings, three workers, from agent.extraConfig',
      values: agent({ hugepages: { relays: 300 }, engine: { workerCpus: [1, 2, 3] }, extraConfig: { engine: { poolQueuePairs: 64, rxDescriptors: 64, txDescriptors: 64 } } }),
      relays: 300,
    },
    { name: 'big rings', values: agent({ hugepages: { relays: 700 }, engine: { rxDescriptors: 2048, txDescriptors: 1024 } }), relays: 700 },
    { name: 'jumbo mbufs', values: agent({ hugepages: { relays: 100 }, engine: { jumbo: true, poolQueuePairs: 128 } }), relays: 100 },
  ];
  const rows: string[] = [];
  for (const c of cases) {
    const { requests, limits, config } = render(c.values);
    // the config is one the agent accepts (its own schema and checks)
    const cfg = resolveConfig(parseConfigText(config, 'ConfigMap agent.yaml').config);
    const pages = doctorPages(config, c.relays);
    assert.deepEqual(requests, { 'hugepages-2Mi': `${pages * 2}Mi` }, `${c.name}: the request is doctor's ${pages} pages`);
    assert.deepEqual(limits, requests, `${c.name}: limit equals request`);
    rows.push(`${c.relays} relays, pool ${cfg.engine.poolQueuePairs ?? 256}: ${pages} pages`);
  }
  // the cases are not all the same figure: 1 pool, 2 pools, jumbo, ...
  assert.ok(new Set(rows.map((r) => r.split(': ')[1])).size >= 6, rows.join('\n'));
});

test('numaNodes multiplies the need; 1Gi pages round it up per NUMA node', () => {
  const one = doctorPages(render(agent({ hugepages: { relays: 64 } })).config, 64);
  assert.deepEqual(render(agent({ hugepages: { relays: 64, numaNodes: 2 } })).requests, { 'hugepages-2Mi': `${one * 2 * 2}Mi` });
  const big = render(agent({ hugepages: { relays: 1000, size: '1Gi', numaNodes: 2 } }));
  const pages = doctorPages(big.config, 1000);
  const gib = Math.ceil((pages * 2) / 1024);
  assert.equal(gib, 2, '1,000 relays need between 1 and 2 GiB per NUMA node');
  assert.deepEqual(big.requests, { 'hugepages-1Gi': `${gib * 2}Gi` });
  assert.deepEqual(big.limits, big.requests);
});

test('an explicit amount is taken when it holds the need, refused with the need when it does not', () => {
  const need = doctorPages(render({}).config, 512) * 2; // MiB, the default 512 relays
  for (const ok of [`${need}Mi`, '1Gi', `${Math.ceil((need * 2 ** 20) / 1e6)}M`]) {
    assert.deepEqual(render(agent({ hugepages: { amount: ok } })).requests, { 'hugepages-2Mi': ok }, `${ok} holds ${need}Mi`);
  }
  for (const low of [`${need - 2}Mi`, '0.5Gi', `${Math.floor((need * 2 ** 20) / 1e6) - 1}M`]) {
    const r = helm(agent({ hugepages: { amount: low } }));
    assert.notEqual(r.code, 0, `${low} was accepted`);
    assert.match(r.stderr, new RegExp(`agent\\.hugepages\\.amount: ${low.replace('.', '\\.')} is less than the engine needs: ${need}Mi`));
    assert.match(r.stderr, /512 relays \(agent\.hugepages\.relays\) on each of 1 NUMA node\(s\) need \d+Mi per node \(\d+ x 2 MiB pages: 2 mbuf pool\(s\) of engine\.poolQueuePairs 256/);
    assert.match(r.stderr, new RegExp(`Set agent\\.hugepages\\.amount to at least ${need}Mi, or to "auto"`));
  }
  // the need counts every NUMA node
  const two = helm(agent({ hugepages: { amount: '1Gi', numaNodes: 2 } }));
  assert.notEqual(two.code, 0);
  assert.match(two.stderr, new RegExp(`1Gi is less than the engine needs: ${need * 2}Mi in all`));
  // empty: no hugepage resources at all
  const none = render(agent({ hugepages: { amount: '' } }));
  assert.deepEqual([none.requests, none.limits], [{}, {}]);
});

test('values.schema.json names the sizing field that is wrong', () => {
  const cases: [Obj, RegExp][] = [
    [agent({ hugepages: { relays: 5000 } }), /at '\/agent\/hugepages\/relays': maximum: got 5,000, want 1,024/],
    [agent({ hugepages: { numaNodes: 0 } }), /at '\/agent\/hugepages\/numaNodes': minimum: got 0, want 1/],
    [agent({ hugepages: { amount: 'lots' } }), /at '\/agent\/hugepages\/amount': 'lots' does not match pattern/],
    [agent({ engine: { poolQueuePairs: 0 } }), /at '\/agent\/engine\/poolQueuePairs'/],
    [agent({ engine: { rxDescriptors: 32 } }), /at '\/agent\/engine\/rxDescriptors'/],
  ];
  for (const [values, want] of cases) {
    const r = helm(values);
    assert.notEqual(r.code, 0, `${JSON.stringify(values)} was accepted`);
    assert.match(r.stderr, want);
  }
});
