// The chart's monitoring, checked with the real parts: Prometheus's own promtool checks the
// alerting rules and runs their unit tests (series that fire and series that do not); the
// chart renders exactly those rules and the dashboard; and every metric and label the rules
// and the dashboard use is found in a live scrape of a running agent (real DPDK engine, in
// Kubernetes mode against a real kube-apiserver, kubelet's pod-resources API served by a test
// gRPC server) and a running operator: no alert or panel on a series that does not exist.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Server, ServerCredentials, loadPackageDefinition, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { parse, parseAllDocuments } from 'yaml';
import { startKube, type KubeEnv } from '../helpers/kube.js';
import { AgentProcess } from '../helpers/agent.js';
import { testTempDir } from '../helpers/netns.js';
import { kubeClients } from '../../src/kube/index.js';
import { Operator } from '../../src/operator/operator.js';
import { silentLogger } from '../../src/util/log.js';

const execFileP = promisify(execFile);
const RULES = 'helm/vio4wd/files/prometheus-rules.yaml';
const RULE_TESTS = 'test/fixtures/monitoring/prometheus-rules.test.yaml';
const DASHBOARD = 'helm/vio4wd/files/grafana-dashboard.json';
const NODE = 'mon-node';
const METRICS = '127.0.0.1:19464';

/** promtool as test/env/build-promtool.sh builds it (scripts/bootstrap, step testenv). */
function promtool(): string {
  const lib = readFileSync('test/env/lib.sh', 'utf8');
  const version = /^PROMTOOL_VERSION=(\S+)/m.exec(lib)?.[1];
  const cache = process.env.VIO4WD_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vio4wd');
  const bin = join(cache, 'promtool', version ?? '?', 'promtool');
  assert.ok(existsSync(bin), `promtool is not built at ${bin}: run scripts/bootstrap (or test/env/setup.sh promtool)`);
  return bin;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- rule files and dashboards are walked as plain data */
function ruleExprs(): { name: string; expr: string }[] {
  const doc = parse(readFileSync(RULES, 'utf8')) as any;
  return doc.groups.flatMap((g: any) => g.rules.map((r: any) => ({ name: `alert ${r.alert}`, expr: String(r.expr) })));
}

function dashboardExprs(): { name: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as any;
  const out = d.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => ({ name: `panel "${p.title}"`, expr: String(t.expr) })));
  for (const v of d.templating.list) if (v.type === 'query') out.push({ name: `variable ${v.name}`, expr: String(v.query).replace(/^label_values\((\w+),\s*(\w+)\)$/, '$1{$2=~".*"}') });
  return out;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const PROMQL_WORDS = new Set(['sum', 'max', 'min', 'avg', 'count', 'rate', 'increase', 'irate', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'histogram_quantile', 'label_values']);
/** Labels Prometheus sets itself on every scraped series (the target's), not the exporter. */
const TARGET_LABELS = new Set(['instance', 'job']);
/** Series Prometheus makes itself for every target. */
const SYNTHETIC = new Set(['up']);

/** The metric names an expression selects, with the labels it matches on each, and the labels it groups or joins by. */
function used(expr: string): { metrics: Map<string, Set<string>>; grouping: Set<string> } {
  const metrics = new Map<string, Set<string>>();
  const grouping = new Set<string>();
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of noStrings.matchAll(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) for (const l of m[2]!.split(',')) if (l.trim()) grouping.add(l.trim());
  const stripped = noStrings.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?/g)) {
    const name = m[1]!;
    if (PROMQL_WORDS.has(name) || /^\d/.test(name) || !/_/.test(name) && name !== 'up') continue;
    const labels = metrics.get(name) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) labels.add(l[1]!);
    metrics.set(name, labels);
  }
  return { metrics, grouping };
}

/** Series in a Prometheus text exposition: metric name -> label names seen on it. */
function scraped(...texts: string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const text of texts)
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? /.exec(line);
      if (!m) continue;
      const labels = out.get(m[1]!) ?? new Set<string>();
      for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
      out.set(m[1]!, labels);
    }
  return out;
}

test('promtool checks the rules and their unit tests pass: each alert fires on its series and stays quiet on healthy ones', async () => {
  const bin = promtool();
  const check = await execFileP(bin, ['check', 'rules', RULES]);
  assert.match(check.stdout, /SUCCESS: 8 rules found/);
  const run = await execFileP(bin, ['test', 'rules', RULE_TESTS]).catch((e: { stdout?: string; stderr?: string }) => {
    assert.fail(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  });
  assert.match(run.stdout, /SUCCESS/);
  // every alert has a unit test and a runbook entry
  const tests = readFileSync(RULE_TESTS, 'utf8');
  const runbook = readFileSync('docs/runbook.md', 'utf8');
  for (const { name } of ruleExprs()) {
    const alert = name.replace(/^alert /, '');
    assert.match(tests, new RegExp(`alertname: ${alert}\\b`), `${alert} has no promtool test`);
    assert.match(runbook, new RegExp(`^## ${alert}$`, 'm'), `${alert} has no runbook entry in docs/runbook.md`);
  }
  // and promtool fails a rule file with an error (the check can fail)
  const bad = await execFileP(bin, ['check', 'rules', 'test/fixtures/monitoring/bad-rules.yaml']).then(
    () => 'passed',
    (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
  );
  assert.match(bad, /FAILED/);
});

let kube: KubeEnv | undefined;
let agent: AgentProcess | undefined;
let operator: Operator | undefined;
let podResources: Server | undefined;
let tmp: { path: string; remove: () => void } | undefined;

before(async () => {
  tmp = testTempDir('mon');
  const root = tmp.path;
  for (const d of ['sockets', 'podres', 'vhost']) mkdirSync(join(root, d), { recursive: true });
  kube = await startKube({ apiserverArgs: ['--shutdown-watch-termination-grace-period=2s'] });
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io');
  const api = kubeClients(kube.kubeconfigPath);
  await api.core.createNode({ body: { metadata: { name: NODE } } });

  // kubelet's pod-resources API: the relay's device belongs to a VM's pod
  const proto = fileURLToPath(new URL('../fixtures/podresources/kubelet-v1.proto', import.meta.url));
  const pkg = loadPackageDefinition(loadSync(proto, { keepCase: true, longs: Number, defaults: true, arrays: true })) as unknown as { v1: { PodResourcesLister: { service: ServiceDefinition } } };
  podResources = new Server();
  const impl: UntypedServiceImplementation = {
    List: (_c: unknown, cb: (e: null, r: unknown) => void) =>
      cb(null, { pod_resources: [{ name: 'virt-launcher-vm1', namespace: 'tenant', containers: [{ name: 'compute', devices: [{ resource_name: 'vio4wd.io/vhostuser', device_ids: ['mon-relay'] }] }] }] }),
    GetAllocatableResources: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, {}),
  };
  podResources.addService(pkg.v1.PodResourcesLister.service, impl);
  const podResSocket = join(root, 'podres', 'kubelet.sock');
  await new Promise<void>((resolve, reject) => podResources!.bindAsync(`unix://${podResSocket}`, ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));

  // the agent: real engine, Kubernetes mode, one relay whose VF stand-in is a net_vhost port
  agent = await AgentProcess.start({
    workDir: root,
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      control: { enabled: false },
      devicePlugin: { enabled: false },
      metrics: { address: METRICS, podResourcesSocket: podResSocket },
      kubernetes: { leaseRenewSeconds: 1 },
      vhostUser: { mode: 'server', socketDir: join(root, 'vhost') },
      relays: [{ name: 'mon-relay', id: 1, vf: { devargs: `net_vhost_mon1,iface=${join(root, 'vf.sock')}` } }],
    },
    args: ['--kubernetes', '--kubeconfig', kube.kubeconfigPath, '--node-name', NODE, '--socket-dir', join(root, 'sockets')],
  });
  operator = new Operator({
    clients: kubeClients(kube.kubeconfigPath),
    logger: silentLogger(),
    namespace: 'default',
    leaseName: 'mon-operator',
    identity: 'mon-0',
    metricsAddress: '127.0.0.1:0',
    election: { leaseDurationMs: 15_000, renewIntervalMs: 500, renewDeadlineMs: 10_000, retryIntervalMs: 500 },
  });
  await operator.start();
});

after(async () => {
  await operator?.stop();
  if (agent && agent.exitCode === null) await agent.stop();
  await new Promise<void>((resolve) => (podResources ? podResources.tryShutdown(() => resolve()) : resolve()));
  await kube?.stop();
  tmp?.remove();
});

test("every metric and label of the rules and the dashboard is in a live scrape of the agent and the operator", async () => {
  assert.ok(agent && operator);
  const op = await fetch(`http://127.0.0.1:${operator.metricsPort}/metrics`).then((r) => r.text());
  let ag = '';
  // the relay's pod comes from the first List; the node queue has run once the VFN is published
  for (let i = 0; i < 100; i++) {
    ag = (await agent.http(`http://${METRICS}/metrics`)).body;
    if (/vio4wd_relay_pod_info\{/.test(ag) && /vio4wd_workqueue_adds_total\{name="node"\} [1-9]/.test(ag)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(ag, /^vio4wd_relay_pod_info\{relay="mon-relay",id="1",pod_namespace="tenant",pod_name="virt-launcher-vm1",pod_container="compute"\} 1$/m, agent.output.slice(-3000));
  const have = scraped(ag, op);
  const missing: string[] = [];
  const uses = [...ruleExprs(), ...dashboardExprs()];
  assert.ok(uses.length >= 25, `${uses.length} expressions`);
  for (const { name, expr } of uses) {
    const u = used(expr);
    const labelsOfExpr = new Set<string>();
    for (const [metric, labels] of u.metrics) {
      if (SYNTHETIC.has(metric)) continue;
      const got = have.get(metric);
      if (!got) {
        missing.push(`${name}: metric ${metric} is not exported`);
        continue;
      }
      for (const l of got) labelsOfExpr.add(l);
      for (const l of labels) if (!got.has(l) && !TARGET_LABELS.has(l)) missing.push(`${name}: ${metric} has no label ${l} (it has ${[...got].join(', ') || 'none'})`);
    }
    for (const l of u.grouping) if (!labelsOfExpr.has(l) && !TARGET_LABELS.has(l)) missing.push(`${name}: no metric of "${expr}" has the label ${l}`);
  }
  assert.deepEqual(missing, []);
});

test("the running agent's node is Ready for kubectl wait, and its Lease is renewed", async () => {
  assert.ok(kube && agent);
  await kube.kubectl('wait', '--for=condition=Ready', '--timeout=60s', `vfnode/${NODE}`);
  assert.match(await kube.kubectl('get', 'vfnode', NODE), new RegExp(`^${NODE}\\s+True\\s+true\\s+1\\s+`, 'm'));
  const renewTime = () => kube!.kubectl('get', 'lease', '-n', 'default', NODE, '-o', 'jsonpath={.spec.renewTime}');
  const first = await renewTime();
  for (let i = 0; i < 50 && (await renewTime()) === first; i++) await new Promise((r) => setTimeout(r, 200));
  assert.notEqual(await renewTime(), first, 'the agent renews its node Lease (every second here)');
});

test('the chart renders exactly these rules and this dashboard, when asked to', async () => {
  assert.ok(kube);
  const text = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.dashboard.enabled=true', '--set', 'metrics.prometheusRule.labels.release=prometheus');
  const objs = parseAllDocuments(text).map((d) => d.toJS() as Record<string, any> | null); // eslint-disable-line @typescript-eslint/no-explicit-any
  const rule = objs.find((o) => o?.kind === 'PrometheusRule');
  assert.ok(rule);
  assert.deepEqual(rule.spec.groups, (parse(readFileSync(RULES, 'utf8')) as { groups: unknown }).groups);
  assert.equal(rule.metadata.labels.release, 'prometheus');
  const cm = objs.find((o) => o?.kind === 'ConfigMap' && o.metadata.name === 'vio4wd-dashboard');
  assert.ok(cm);
  assert.equal(cm.metadata.labels.grafana_dashboard, '1');
  assert.deepEqual(JSON.parse(cm.data['vio4wd.json']), JSON.parse(readFileSync(DASHBOARD, 'utf8')));
  const plain = await kube.helm('template', 'vio4wd', 'helm/vio4wd');
  assert.doesNotMatch(plain, /kind: PrometheusRule|grafana_dashboard/, 'neither by default');
});
