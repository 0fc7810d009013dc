// The Kubernetes client's connections: API calls with the same TLS setup share one keep-alive
// agent (client-node alone gives each call a new agent, TLS handshake and OpenSSL context), and
// at most two idle connections stay open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent as HttpsAgent } from 'node:https';
import { RequestContext } from '@kubernetes/client-node';
import { kubeClients, type KubeClients } from '../../src/kube/client.js';

function clients(ca: string, token = 't0'): KubeClients {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-kc-'));
  try {
    const path = join(dir, 'kubeconfig');
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
        users: [{ name: 'u', user: { token } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return kubeClients(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function call(c: KubeClients): Promise<RequestContext> {
  const ctx = new RequestContext('https://127.0.0.1:6443/api', 'GET' as never);
  await c.kc.applySecurityAuthentication(ctx);
  return ctx;
}

test('API calls share one keep-alive agent with the kubeconfig CA; at most two idle connections', async () => {
  const c = clients('CA-ONE');
  const a = (await call(c)).getAgent();
  const b = (await call(c)).getAgent();
  assert.ok(a instanceof HttpsAgent);
  assert.equal(a, b, "the second call reuses the first one's agent");
  const opts = (a as HttpsAgent).options as { keepAlive?: boolean; maxFreeSockets?: number; ca?: unknown };
  assert.equal(opts.keepAlive, true);
  assert.equal(opts.maxFreeSockets, 2);
  assert.equal(String(opts.ca), 'CA-ONE', "the agent keeps the kubeconfig's CA");
  (a as HttpsAgent).destroy();
});

test('the bearer token still goes with every call (headers, not the agent)', async () => {
  const ctx = await call(clients('CA', 'secret-token'));
  assert.equal(ctx.getHeaders().Authorization, 'Bearer secret-token');
  (ctx.getAgent() as HttpsAgent).destroy();
});
