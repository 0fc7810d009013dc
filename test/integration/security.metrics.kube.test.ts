// The agent's /metrics beyond loopback, against the real kube-apiserver: only a caller whose
// token the apiserver authenticates (TokenReview) and authorises for get /metrics
// (SubjectAccessReview) reads it; a valid token without the right gets 403, none gets 401.
// The agent uses the chart's RBAC (agent.metrics.expose=true) for its reviews, and serves
// HTTPS when given a certificate. A config that listens beyond loopback without this is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';
import { AgentMetrics, startMetricsServer, type HttpServerHandle, type MetricsSources } from '../../src/metrics/index.js';
import { kubeMetricsAuthorizer } from '../../src/agent/metrics-auth.js';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { silentLogger } from '../../src/util/log.js';

const NS = 'vio4wd-system';
const RBAC = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

let kube: KubeEnv;
let server: HttpServerHandle | undefined;
let tlsServer: HttpServerHandle | undefined;
let tmp: string;
const tokens: Record<string, string> = {};

const sources: MetricsSources = {
  relays: () => [
    {
      name: 'team-a.vm1', id: 1, origin: 'kubernetes', phase: 'Ready', conditions: [], socketPath: '/s', mode: 'client', queues: 1, numaNode: 0, resourceName: 'vio4wd.io/vhostuser', healthy: true,
    },
  ],
  stats: () => undefined,
  engineUp: () => true,
  ready: () => true,
};

async function get(url: string, token?: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: r.status, body: await r.text() };
}

before(async () => {
  kube = await startKube();
  await kube.kubectl('create', 'namespace', NS);
  const rendered = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', NS, '--set', 'agent.metrics.expose=true');
  const rbac = parseAllDocuments(rendered).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } } | null).filter((o) => o && RBAC.has(o.kind ?? ''));
  assert.ok(rbac.some((o) => o!.metadata?.name === 'vio4wd-metrics-reader'), 'the chart renders the metrics-reader ClusterRole');
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }) });
  for (const sa of ['prometheus', 'nobody']) await kube.kubectl('create', 'serviceaccount', sa, '-n', NS);
  await kube.kubectl('create', 'clusterrolebinding', 'prometheus-vio4wd-metrics', '--clusterrole=vio4wd-metrics-reader', `--serviceaccount=${NS}:prometheus`);
  for (const sa of ['vio4wd-agent', 'prometheus', 'nobody']) tokens[sa] = await kube.serviceAccountToken(NS, sa);
  const agentKc = kube.kubeconfigForToken('agent', tokens['vio4wd-agent']!);
  await waitUntil('the agent may create TokenReviews', async () => (await kube.kubectlRun(['auth', 'can-i', 'create', 'tokenreviews.authentication.k8s.io'], { kubeconfig: agentKc, check: false })).stdout.trim() === 'yes');
  await waitUntil('prometheus may get /metrics', async () => (await kube.kubectlRun(['auth', 'can-i', 'get', '/metrics'], { kubeconfig: kube.kubeconfigForToken('prom', tokens.prometheus!), check: false })).stdout.trim() === 'yes');
  const authorize = kubeMetricsAuthorizer({ kubeconfig: agentKc, logger: silentLogger(), cacheMs: 0 });
  server = await startMetricsServer(new AgentMetrics(sources), sources, '127.0.0.1:0', silentLogger(), { authorize });
  tmp = mkdtempSync(join(tmpdir(), 'vio4wd-metrics-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem')], { stdio: 'ignore' });
  tlsServer = await startMetricsServer(new AgentMetrics(sources), sources, '127.0.0.1:0', silentLogger(), { authorize, tls: { certFile: join(tmp, 'cert.pem'), keyFile: join(tmp, 'key.pem') } });
});

after(async () => {
  await server?.close();
  await tlsServer?.close();
  await kube?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('a scraper the apiserver authorises reads /metrics; a valid token without the right gets 403, none 401', async () => {
  const base = `http://${server!.address}`;
  const ok = await get(`${base}/metrics`, tokens.prometheus);
  assert.equal(ok.status, 200);
  assert.match(ok.body, /vio4wd_relay/);
  assert.match(ok.body, /team-a\.vm1/);
  const denied = await get(`${base}/metrics`, tokens.nobody);
  assert.equal(denied.status, 403);
  assert.match(denied.body, /Forbidden: user "system:serviceaccount:vio4wd-system:nobody" may not get \/metrics/);
  assert.doesNotMatch(denied.body, /team-a/);
  const none = await get(`${base}/metrics`);
  assert.equal(none.status, 401);
  const forged = await get(`${base}/metrics`, `${tokens.prometheus!.slice(0, -4)}AAAA`);
  assert.equal(forged.status, 401);
  // health stays open for the kubelet and tells nothing about relays
  const health = await get(`${base}/healthz`);
  assert.deepEqual(health, { status: 200, body: 'ok\n' });
});

test('over HTTPS the same decisions hold', async () => {
  const ca = readFileSync(join(tmp, 'cert.pem'));
  const via = (token?: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`https://${tlsServer!.address}/metrics`, { ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  assert.equal(await via(tokens.prometheus), 200);
  assert.equal(await via(tokens.nobody), 403);
});

test('an agent config that listens beyond loopback without authorization is refused, naming the field', () => {
  assert.throws(() => resolveConfig(parseConfigText('metrics: {address: "0.0.0.0:9464"}\n', 'agent.yaml').config), /metrics\.address: 0\.0\.0\.0:9464 is beyond loopback/);
  assert.throws(() => resolveConfig(parseConfigText('metrics: {address: "0.0.0.0:9464", authorization: true}\n', 'agent.yaml').config), /metrics\.authorization: needs the apiserver/);
  assert.equal(resolveConfig(parseConfigText('metrics: {address: "0.0.0.0:9464", allowUnauthenticated: true}\n', 'agent.yaml').config).metrics.authorization, false);
  assert.equal(resolveConfig(parseConfigText('{}\n', 'agent.yaml').config).metrics.address, '127.0.0.1:9464');
});
