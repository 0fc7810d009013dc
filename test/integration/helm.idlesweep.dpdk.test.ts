// agent.engine.idleSweepMicros of the chart reaches the engine: real `helm template` renders the
// agent config, the agent's own config validation accepts it (and names the field when a value
// slips past the chart's schema through extraConfig), and the real agent started with the
// rendered engine section reports the period the DPDK engine runs with, in its metrics
// (vio4wd_engine_idle_sweep_seconds) and its "engine started" log line.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { AgentProcess } from '../helpers/agent.js';
import { testTempDir } from '../helpers/netns.js';
import { agentConfigText, helmTemplate } from '../helpers/helm.js';

const METRICS = '127.0.0.1:19471';
const tmp = testTempDir('idlesweep');
let agent: AgentProcess | undefined;

after(async () => {
  await agent?.stop();
  tmp.remove();
});

function renderedConfig(engine: Record<string, unknown>, extraConfig: Record<string, unknown> = {}): string {
  const r = helmTemplate({ agent: { engine: { workerCpus: [1], mainCpu: 0, ...engine }, extraConfig } });
  assert.equal(r.code, 0, `helm template: ${r.stderr}`);
  return agentConfigText(r.objs);
}

test("the chart's value is in the agent config, which the agent's validation accepts; bad values name the field", () => {
  const load = (text: string) => resolveConfig(parseConfigText(text, 'ConfigMap agent.yaml').config);
  assert.equal(load(renderedConfig({ idleSweepMicros: 250 })).engine.idleSweepMicros, 250);
  assert.equal(load(renderedConfig({ idleSweepMicros: 0 })).engine.idleSweepMicros, 0, '0 (no sweep) is a value, not "unset"');
  // null (the default): the config leaves it to the engine
  assert.equal(load(renderedConfig({})).engine.idleSweepMicros, undefined);
  // the chart's schema refuses what the engine would
  const bad = helmTemplate({ agent: { engine: { idleSweepMicros: 20_000 } } });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /at '\/agent\/engine\/idleSweepMicros': .*\n.*maximum: got 20,000, want 10,000/);
  // extraConfig bypasses the chart's schema: the agent's own validation names the field
  assert.throws(() => load(renderedConfig({}, { engine: { idleSweepMicros: 20_000 } })), /engine\.idleSweepMicros|\/engine\/idleSweepMicros/);
});

test('the agent runs the engine with the rendered idleSweepMicros and reports it', async () => {
  const chart = parseConfigText(renderedConfig({ idleSweepMicros: 250 }), 'ConfigMap agent.yaml').config as { engine: Record<string, unknown> };
  // the chart's engine section as it is (noPci: this machine's PCI devices are not the test's);
  // the rest is a standalone agent without Kubernetes
  agent = await AgentProcess.start({
    workDir: tmp.path,
    config: {
      log: { level: 'info' },
      engine: { ...chart.engine, noPci: true },
      vhostUser: { mode: 'server', socketDir: tmp.path },
      control: { enabled: false },
      metrics: { address: METRICS },
    },
  });
  const started = agent.logs().find((l) => l.msg === 'engine started');
  assert.ok(started, agent.output.slice(-3000));
  assert.equal((started.settings as { idleSweepMicros: number }).idleSweepMicros, 250, 'the engine started with it');
  const { status, body } = await agent.http(`http://${METRICS}/metrics`);
  assert.equal(status, 200);
  const m = /^vio4wd_engine_idle_sweep_seconds (\S+)$/m.exec(body);
  assert.ok(m, body.slice(0, 2000));
  assert.equal(Number(m[1]), 250e-6);
  assert.match(body, /# HELP vio4wd_engine_idle_sweep_seconds .*idleSweepMicros/);
  assert.equal(await agent.stop(), 0);
  agent = undefined;
});
