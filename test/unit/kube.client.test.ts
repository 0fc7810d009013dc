// The Kubernetes client's connections: API calls with the same TLS identity share one keep-alive
// agent (client-node alone gives each call a new agent, TLS handshake and OpenSSL context).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent as HttpsAgent } from 'node:https';
import { RequestContext } from '@kubernetes/client-node';
import { SharedAgentKubeConfig } from '../../src/kube/client.js';

function kubeconfig(ca: string, token = 't0'): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
    users: [{ name: 'u', user: { token } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
}

async function agentOf(kc: SharedAgentKubeConfig): Promise<unknown> {
  const ctx = new RequestContext('https://127.0.0.1:6443/api', 'GET' as never);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getAgent();
}

test('calls share one keep-alive agent; a rotated CA gets an agent of its own', async () => {
  const kc = new SharedAgentKubeConfig();
  kc.loadFromString(kubeconfig('CA-ONE'));
  const a = await agentOf(kc);
  const b = await agentOf(kc);
  assert.ok(a instanceof HttpsAgent);
  assert.equal(a, b, 'the second call reuses the first one\'s agent');
  assert.equal((a as HttpsAgent & { keepAlive?: boolean }).keepAlive, true);
  assert.equal(String((a as HttpsAgent).options.ca), 'CA-ONE', 'the agent keeps the kubeconfig\'s CA');
  // a rotated credential: its own agent
  kc.loadFromString(kubeconfig('CA-TWO'));
  const c = await agentOf(kc);
  assert.notEqual(c, a);
  assert.equal(String((c as HttpsAgent).options.ca), 'CA-TWO');
  kc.closeConnections();
});

test('the bearer token still goes with every call (headers, not the agent)', async () => {
  const kc = new SharedAgentKubeConfig();
  kc.loadFromString(kubeconfig('CA', 'secret-token'));
  const ctx = new RequestContext('https://127.0.0.1:6443/api', 'GET' as never);
  await kc.applySecurityAuthentication(ctx);
  assert.equal(ctx.getHeaders().Authorization, 'Bearer secret-token');
  kc.closeConnections();
});
