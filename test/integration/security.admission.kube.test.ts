// The chart's ValidatingAdmissionPolicy on the real kube-apiserver: the agent's ServiceAccount,
// with a token bound to one node (TokenRequest bound to the Node, or to a Pod on that node),
// may write the status and finalizers of VirtioRelays on that node, that node's
// VirtioForwarderNode and its node Lease, and nothing of another node; a token bound to no node
// writes nothing.
// The real node reconciler runs with a node-bound token through a relay's life, unrefused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { testPoolPolicy, TEST_VIRTUAL_DEVICES } from '../helpers/policy.js';
import { RelayManager } from '../../src/relay/index.js';
import { NodeReconciler } from '../../src/agent/node/reconciler.js';
import { NodeLease, kubeClients, kubeErrorMessage, mergePatch } from '../../src/kube/index.js';
import { GROUP, VERSION } from '../../src/kube/crd-schemas.js';
import { silentLogger } from '../../src/util/log.js';

const NS = 'vio4wd-system';
const APP = 'app';
const SA = 'vio4wd-agent';
const KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);

let kube: KubeEnv;
/** kubeconfigs of the agent's ServiceAccount: bound to node-a's Node, to a Pod on node-b, to nothing */
let onA: string;
let onB: string;
let unbound: string;
let sockets: string;

async function create(obj: Record<string, unknown>): Promise<Record<string, unknown>> {
  return JSON.parse((await kube.kubectlRun(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(obj) })).stdout) as Record<string, unknown>;
}

/** A TokenRequest for the agent's ServiceAccount bound to `ref` (a Node or a Pod). */
async function boundToken(ref: { kind: 'Node' | 'Pod'; name: string; uid: string }): Promise<string> {
  const req = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', ...ref } } };
  const r = await kube.kubectlRun(['create', '--raw', `/api/v1/namespaces/${NS}/serviceaccounts/${SA}/token`, '-f', '-'], { input: JSON.stringify(req) });
  return (JSON.parse(r.stdout) as { status: { token: string } }).status.token;
}

function relay(name: string, nodeName: string): Record<string, unknown> {
  return { apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name, namespace: APP }, spec: { nodeName, vf: { devargs: `net_tap_${name},iface=${name}` } } };
}

type Write = 'relayStatus' | 'relayMeta' | 'relaySpec' | 'nodeCreate' | 'nodeStatus';

/**
 * One write as the agent makes it (merge patches straight to the API, no GET first: the agent
 * may not get single objects); resolves to '' when allowed, else the apiserver's message.
 */
async function asAgent(kubeconfig: string, what: Write, name: string, body: Record<string, unknown>): Promise<string> {
  const api = kubeClients(kubeconfig).custom;
  const r = { group: GROUP, version: VERSION };
  try {
    if (what === 'relayStatus') await api.patchNamespacedCustomObjectStatus({ ...r, namespace: APP, plural: 'virtiorelays', name, body }, mergePatch);
    else if (what === 'relayMeta' || what === 'relaySpec') await api.patchNamespacedCustomObject({ ...r, namespace: APP, plural: 'virtiorelays', name, body }, mergePatch);
    else if (what === 'nodeCreate') await api.createClusterCustomObject({ ...r, plural: 'virtioforwardernodes', body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioForwarderNode', metadata: { name }, spec: { nodeName: name } } });
    else await api.patchClusterCustomObjectStatus({ ...r, plural: 'virtioforwardernodes', name, body }, mergePatch);
    return '';
  } catch (err) {
    return kubeErrorMessage(err) || 'refused';
  }
}

const phase = (p: string) => ({ status: { phase: p } });

before(async () => {
  kube = await startKube();
  await kube.kubectl('apply', '-f', 'helm/vio4wd/crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io', 'crd/virtioforwarderpolicies.vio4wd.io');
  for (const ns of [NS, APP]) await kube.kubectl('create', 'namespace', ns);
  // the chart's RBAC and admission policy, as rendered with the default values
  const rendered = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', NS);
  const objs = parseAllDocuments(rendered)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((o) => o && KINDS.has(o.kind ?? ''));
  assert.ok(objs.some((o) => o!.kind === 'ValidatingAdmissionPolicy'), 'the chart renders the admission policy');
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }) });
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(testPoolPolicy([APP])) });
  const nodeA = await create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
  await create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' } });
  // the agent's pod on node-b (no kubelet here: the object is enough for a bound token)
  await kube.kubectlRun(['create', 'serviceaccount', 'default', '-n', NS], { check: false });
  const podB = await create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-b', namespace: NS }, spec: { nodeName: 'node-b', serviceAccountName: SA, containers: [{ name: 'agent', image: 'vio4wd:test' }] } });
  const uid = (o: Record<string, unknown>) => (o.metadata as { uid: string }).uid;
  onA = kube.kubeconfigForToken('agent-node-a', await boundToken({ kind: 'Node', name: 'node-a', uid: uid(nodeA) }));
  onB = kube.kubeconfigForToken('agent-pod-b', await boundToken({ kind: 'Pod', name: 'agent-b', uid: uid(podB) }));
  unbound = kube.kubeconfigForToken('agent-unbound', await kube.serviceAccountToken(NS, SA));
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [relay('ra', 'node-a'), relay('rb', 'node-b')] }) });
  await waitUntil('the agent may patch relay status (RBAC cache)', async () => (await kube.kubectlRun(['auth', 'can-i', 'patch', 'virtiorelays.vio4wd.io', '--subresource=status', '-n', APP], { kubeconfig: onA, check: false })).stdout.trim() === 'yes');
  // the policy reaches the admission plugin a little after it is created
  await waitUntil("the admission policy refuses node-a's token on node-b's relay", async () => (await asAgent(onA, 'relayStatus', 'rb', phase('Ready'))) !== '');
  sockets = mkdtempSync(join(tmpdir(), 'vio4wd-vap-'));
});

after(async () => {
  await kube?.stop();
  if (sockets) rmSync(sockets, { recursive: true, force: true });
});

const ADMISSION = /ValidatingAdmissionPolicy 'vio4wd-agent-own-node' with binding 'vio4wd-agent-own-node' denied request: /;

test("an agent writes the status and finalizers of its own node's relays, not another node's", async () => {
  assert.equal(await asAgent(onA, 'relayStatus', 'ra', phase('Ready')), '');
  assert.equal(await asAgent(onB, 'relayStatus', 'rb', phase('Ready')), '');
  const cross = await asAgent(onA, 'relayStatus', 'rb', phase('Failed'));
  assert.match(cross, ADMISSION);
  assert.match(cross, /the vio4wd agent of node node-a may write only VirtioRelays placed on its node/);
  assert.match(await asAgent(onB, 'relayStatus', 'ra', phase('Failed')), /the vio4wd agent of node node-b may write only VirtioRelays placed on its node/);
  // finalizers of its own relay: yes; of another node's: no
  const fin = { metadata: { finalizers: ['vio4wd.io/relay-cleanup'] } };
  assert.equal(await asAgent(onA, 'relayMeta', 'ra', fin), '');
  assert.match(await asAgent(onA, 'relayMeta', 'rb', fin), /may write only VirtioRelays placed on its node/);
  // the spec of its own relay: no (RBAC allows patch, for the finalizer)
  assert.match(await asAgent(onA, 'relaySpec', 'ra', { spec: { queues: 4 } }), /the vio4wd agent may change only the status and finalizers of a VirtioRelay, never its spec/);
  // moving another node's relay onto its own node (as the operator may, with reschedule): no
  assert.match(await asAgent(onA, 'relaySpec', 'rb', { spec: { nodeName: 'node-a', reschedule: 'OnNodeLoss' } }), ADMISSION);
  const now = await kube.kubectl('get', 'vr', '-n', APP, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.spec.queues}/{.spec.nodeName} {end}');
  assert.equal(now.trim(), 'ra=Ready//node-a rb=Ready//node-b');
});

test('an agent creates and updates only its own VirtioForwarderNode', async () => {
  assert.equal(await asAgent(onA, 'nodeCreate', 'node-a', {}), '');
  assert.match(await asAgent(onA, 'nodeCreate', 'node-b', {}), /the vio4wd agent of node node-a may write only VirtioForwarderNode node-a/);
  await kube.kubectlRun(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioForwarderNode', metadata: { name: 'node-b' }, spec: { nodeName: 'node-b' } }) });
  assert.equal(await asAgent(onA, 'nodeStatus', 'node-a', { status: { workerCpus: [1] } }), '');
  assert.match(await asAgent(onA, 'nodeStatus', 'node-b', { status: { workerCpus: [1] } }), /may write only VirtioForwarderNode node-a/);
  assert.equal(await asAgent(onB, 'nodeStatus', 'node-b', { status: { workerCpus: [2] } }), '');
  assert.equal(await kube.kubectl('get', 'vfn', 'node-b', '-o', 'jsonpath={.status.workerCpus}'), '[2]');
});

test('an agent creates and renews only its own node Lease', async () => {
  const lease = (kubeconfig: string, nodeName: string) => new NodeLease({ clients: kubeClients(kubeconfig), namespace: NS, nodeName, logger: silentLogger(), fieldManager: 'vio4wd-agent' });
  assert.equal(await lease(onA, 'node-a').renew(), true, 'create');
  assert.equal(await lease(onA, 'node-a').renew(), true, 'renew (read, then update)');
  assert.equal(await lease(onB, 'node-b').renew(), true);
  assert.equal(await lease(onA, 'node-b').renew(), false, "node-b's Lease, with node-a's token");
  assert.equal(await lease(unbound, 'node-a').renew(), false);
  // directly: the apiserver's reasons
  const coord = kubeClients(onA).coordination;
  const other = await coord.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'node-c' }, spec: { holderIdentity: 'node-c' } } }).then(() => '', (e: unknown) => kubeErrorMessage(e));
  assert.match(other, /the vio4wd agent of node node-a may write only Lease node-a, held by node-a/);
  const own = await coord.readNamespacedLease({ name: 'node-a', namespace: NS });
  const hijack = await coord.replaceNamespacedLease({ name: 'node-a', namespace: NS, body: { ...own, spec: { holderIdentity: 'node-b' } } }).then(() => '', (e: unknown) => kubeErrorMessage(e));
  assert.match(hijack, /may write only Lease node-a, held by node-a/);
  const del = await coord.deleteNamespacedLease({ name: 'node-a', namespace: NS }).then(() => '', (e: unknown) => kubeErrorMessage(e));
  assert.match(del, /forbidden/i);
  assert.equal(await kube.kubectl('get', 'lease', '-n', NS, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity} {end}'), 'node-a=node-a node-b=node-b ');
});

test('a token bound to no node writes nothing', async () => {
  assert.match(await asAgent(unbound, 'relayStatus', 'ra', phase('Failed')), /the vio4wd agent may write only with a token bound to its node/);
  assert.match(await asAgent(unbound, 'nodeStatus', 'node-a', { status: { workerCpus: [9] } }), /token bound to its node/);
  assert.equal(await kube.kubectl('get', 'vr', '-n', APP, 'ra', '-o', 'jsonpath={.status.phase}'), 'Ready');
});

test('the real node reconciler with a node-bound token serves a relay through its life, unrefused', async () => {
  const mgr = new RelayManager({ engine: new MemEngine(), logger: silentLogger(), retry: { initialMs: 50, maxMs: 500 } });
  const rec = new NodeReconciler({
    clients: kubeClients(onA),
    nodeName: 'node-a',
    relays: mgr,
    logger: silentLogger(),
    socketDir: sockets,
    allowVirtualDevices: TEST_VIRTUAL_DEVICES,
    leaseNamespace: NS,
    leaseRenewSeconds: 1,
    nodeStatus: async () => ({ engine: { up: true }, workerCpus: [1], vfs: [] }),
  });
  try {
    await rec.start();
    await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(relay('rc', 'node-a')) });
    await waitUntil('rc Ready, written by the agent of node-a', async () => (await kube.kubectl('get', 'vr', '-n', APP, 'rc', '-o', 'jsonpath={.status.phase}')) === 'Ready');
    await waitUntil('node-a published', async () => (await kube.kubectl('get', 'vfn', 'node-a', '-o', 'jsonpath={.status.relays.ready}')) !== '');
    await kube.kubectl('wait', '--for=condition=Ready', '--timeout=30s', 'vfnode/node-a');
    await kube.kubectl('delete', 'vr', '-n', APP, 'rc', '--wait=true', '--timeout=60s');
    assert.equal(mgr.get(`${APP}.rc`), undefined);
    // node-b's relay was never touched by node-a's agent
    assert.equal(await kube.kubectl('get', 'vr', '-n', APP, 'rb', '-o', 'jsonpath={.status.phase}'), 'Ready');
  } finally {
    await rec.stop();
    await mgr.close();
  }
});
