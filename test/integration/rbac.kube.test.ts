// The chart's RBAC against a real kube-apiserver: the rendered ServiceAccounts, (Cluster)Roles and
// bindings are applied, then the real node reconciler (engine stand-in) and the real operator run
// with those ServiceAccounts' tokens through a whole relay lifecycle, and no request of theirs is
// refused; `kubectl auth can-i` with the same tokens shows what they may not do.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { RelayManager } from '../../src/relay/index.js';
import { NodeReconciler } from '../../src/agent/node/reconciler.js';
import { Operator } from '../../src/operator/operator.js';
import { kubeClients, FINALIZER } from '../../src/kube/index.js';
import type { Logger } from '../../src/util/log.js';

const NS = 'vio4wd-system';
const APP = 'app';
const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

let kube: KubeEnv;
let agentKubeconfig: string;
let operatorKubeconfig: string;
let sockets: string;
let mgr: RelayManager | undefined;
let rec: NodeReconciler | undefined;
let op: Operator | undefined;
/** Every log line of the reconciler and the operator (debug level: failed events show too). */
const logLines: string[] = [];

function recordingLogger(): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return pino({ level: 'debug' }, sink);
}

before(async () => {
  kube = await startKube();
  await kube.kubectl('apply', '-f', 'helm/vio4wd/crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io', 'crd/virtioforwarderpolicies.vio4wd.io');
  for (const ns of [NS, APP, 'other']) await kube.kubectl('create', 'namespace', ns);
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'vio4wd.io/v1alpha1',
      kind: 'VirtioForwarderPolicy',
      metadata: { name: 'vhostuser' },
      spec: { resourceName: 'vio4wd.io/vhostuser', namespaces: [APP], vfs: { virtualDevices: ['net_tap'] } },
    }),
  });
  // the chart's RBAC exactly as rendered with the default values
  const rendered = await kube.helm('template', 'vio4wd', 'helm/vio4wd', '--namespace', NS);
  const rbac = parseAllDocuments(rendered)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((o) => o && RBAC_KINDS.has(o.kind ?? ''));
  assert.deepEqual(rbac.map((o) => o!.kind).sort(), ['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'ServiceAccount', 'ServiceAccount']);
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }) });
  agentKubeconfig = kube.kubeconfigForToken('agent', await kube.serviceAccountToken(NS, 'vio4wd-agent'));
  operatorKubeconfig = kube.kubeconfigForToken('operator', await kube.serviceAccountToken(NS, 'vio4wd-operator'));
  // bindings reach the authorizer's cache a little later
  await waitUntil('the agent may list VirtioRelays', async () => (await canI(agentKubeconfig, 'list', 'virtiorelays.vio4wd.io', '-A')) === 'yes');
  await waitUntil('the operator may create its Lease', async () => (await canI(operatorKubeconfig, 'create', 'leases.coordination.k8s.io', '-n', NS)) === 'yes');
  sockets = mkdtempSync(join(tmpdir(), 'vio4wd-rbac-'));
});

after(async () => {
  await rec?.stop();
  await mgr?.close();
  await op?.stop();
  await kube?.stop();
  if (sockets) rmSync(sockets, { recursive: true, force: true });
});

async function canI(kubeconfig: string, ...args: string[]): Promise<string> {
  const r = await kube.kubectlRun(['auth', 'can-i', ...args], { kubeconfig, check: false });
  return r.stdout.trim();
}

interface Vr {
  metadata: { finalizers?: string[]; annotations?: Record<string, string> };
  spec: { nodeName?: string };
  status?: { phase?: string; nodeName?: string; message?: string };
}

async function getVr(name: string): Promise<Vr | undefined> {
  const r = await kube.kubectlRun(['get', 'vr', '-n', APP, name, '-o', 'json'], { check: false });
  return r.code === 0 ? (JSON.parse(r.stdout) as Vr) : undefined;
}

async function eventReasons(name: string): Promise<string[]> {
  const out = await kube.kubectl('get', 'events', '-n', APP, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].reason}');
  return out.split(/\s+/).filter(Boolean);
}

function denials(): string[] {
  // \b403\b: a bare 403 would match inside the log lines' millisecond timestamps
  return logLines.filter((l) => /forbidden|\b403\b/i.test(l));
}

test('the node reconciler, with the agent ServiceAccount, publishes its VirtioForwarderNode', async () => {
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } }) });
  const logger = recordingLogger();
  mgr = new RelayManager({ engine: new MemEngine(), logger, retry: { initialMs: 50, maxMs: 500 } });
  rec = new NodeReconciler({
    clients: kubeClients(agentKubeconfig),
    nodeName: 'node-a',
    relays: mgr,
    logger,
    socketDir: sockets,
    allowVirtualDevices: ['net_tap'],
    leaseNamespace: NS,
    leaseRenewSeconds: 1,
    nodeStatus: async () => ({ engine: { up: true, dpdkVersion: '22.11.11' }, workerCpus: [1], vfs: [] }),
  });
  await rec.start();
  await waitUntil('VirtioForwarderNode node-a with engine up', async () => {
    const r = await kube.kubectlRun(['get', 'vfn', 'node-a', '-o', 'jsonpath={.status.engine.up}'], { check: false });
    return r.stdout === 'true';
  });
  await kube.kubectl('wait', '--for=condition=Ready', '--timeout=30s', 'vfnode/node-a');
  // its node Lease, created and renewed (get, create, update in the release namespace)
  const renewTime = () => kube.kubectl('get', 'lease', '-n', NS, 'node-a', '-o', 'jsonpath={.spec.renewTime}');
  const first = await renewTime();
  await waitUntil('the node Lease is renewed', async () => (await renewTime()) !== first);
  assert.deepEqual(denials(), []);
});

test('the operator, with its ServiceAccount, takes the Lease in its namespace', async () => {
  op = new Operator({
    clients: kubeClients(operatorKubeconfig),
    logger: recordingLogger(),
    namespace: NS,
    leaseName: 'vio4wd-operator', // the chart's default (--lease-name in the Deployment)
    identity: 'vio4wd-operator-0',
    election: { leaseDurationMs: 15_000, renewIntervalMs: 500, renewDeadlineMs: 10_000, retryIntervalMs: 500 },
  });
  const leading = new Promise<void>((resolve) => op!.once('leading', () => resolve()));
  await op.start();
  await leading;
  assert.equal(await kube.kubectl('get', 'lease', '-n', NS, 'vio4wd-operator', '-o', 'jsonpath={.spec.holderIdentity}'), 'vio4wd-operator-0');
  // renewals (get + update of that Lease) go through
  const before = await kube.kubectl('get', 'lease', '-n', NS, 'vio4wd-operator', '-o', 'jsonpath={.spec.renewTime}');
  await waitUntil('the Lease is renewed', async () => (await kube.kubectl('get', 'lease', '-n', NS, 'vio4wd-operator', '-o', 'jsonpath={.spec.renewTime}')) !== before);
  assert.equal(op.isLeader, true);
  assert.deepEqual(denials(), []);
});

test('a relay lifecycle: scheduled by the operator, served and cleaned up by the agent', async () => {
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name: 'vm1', namespace: APP }, spec: { vf: { devargs: 'net_tap_vm1,iface=vm1' }, queues: 2 } }),
  });
  const vr = await waitUntil('vm1 scheduled to node-a and Ready', async () => {
    const v = await getVr('vm1');
    return v?.spec.nodeName === 'node-a' && v.status?.phase === 'Ready';
  }, 60_000).then(() => getVr('vm1'));
  assert.deepEqual(vr?.metadata.finalizers, [FINALIZER]);
  assert.equal(vr?.status?.nodeName, 'node-a');
  await waitUntil('the operator\'s Scheduled event', async () => (await eventReasons('vm1')).includes('Scheduled'));
  await kube.kubectl('delete', 'vr', '-n', APP, 'vm1', '--wait=false');
  await waitUntil('vm1 gone (the agent removed its relay and the finalizer)', async () => (await getVr('vm1')) === undefined, 60_000);
  // the agent may record events under its RBAC and admission policy
  await waitUntil('the agent\'s RelayRemoved event', async () => (await eventReasons('vm1')).includes('RelayRemoved'));
  assert.equal(mgr!.get(`${APP}.vm1`), undefined);
  assert.deepEqual(denials(), []);
});

test('a node goes away: the operator fails its relay, removes the finalizer on delete and deletes its VirtioForwarderNode', async () => {
  // node-b's agent is gone already: its VirtioForwarderNode and relay are left behind
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' } },
        { apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioForwarderNode', metadata: { name: 'node-b' }, spec: { nodeName: 'node-b' } },
        {
          apiVersion: 'vio4wd.io/v1alpha1',
          kind: 'VirtioRelay',
          metadata: { name: 'vm2', namespace: APP, finalizers: [FINALIZER] },
          spec: { nodeName: 'node-b', vf: { devargs: 'net_tap_vm2,iface=vm2' } },
        },
      ],
    }),
  });
  await kube.kubectl('delete', 'node', 'node-b');
  await waitUntil('vm2 Failed: node lost', async () => (await getVr('vm2'))?.status?.phase === 'Failed', 60_000);
  assert.ok((await eventReasons('vm2')).includes('NodeLost'));
  await waitUntil('the VirtioForwarderNode of node-b deleted', async () => (await kube.kubectlRun(['get', 'vfn', 'node-b'], { check: false })).code !== 0, 60_000);
  await kube.kubectl('delete', 'vr', '-n', APP, 'vm2', '--wait=false');
  await waitUntil('vm2 gone (the operator removed the finalizer)', async () => (await getVr('vm2')) === undefined, 60_000);
  assert.ok((await kube.kubectlRun(['get', 'vfn', 'node-a'], { check: false })).code === 0, "node-a's VirtioForwarderNode stays");
  assert.deepEqual(denials(), []);
});

test('kubectl auth can-i: each ServiceAccount may do what it does, and nothing it does not need', async () => {
  const agent: [string[], 'yes' | 'no'][] = [
    [['list', 'virtiorelays.vio4wd.io', '-A'], 'yes'],
    [['watch', 'virtiorelays.vio4wd.io', '-n', APP], 'yes'],
    [['patch', 'virtiorelays.vio4wd.io', '-n', APP], 'yes'],
    [['patch', 'virtiorelays.vio4wd.io/status', '-n', APP, '--subresource=status'], 'yes'],
    [['create', 'virtioforwardernodes.vio4wd.io'], 'yes'],
    [['patch', 'virtioforwardernodes.vio4wd.io', '--subresource=status'], 'yes'],
    [['create', 'events', '-n', APP], 'yes'],
    [['list', 'virtioforwarderpolicies.vio4wd.io'], 'yes'],
    [['watch', 'virtioforwarderpolicies.vio4wd.io'], 'yes'],
    // its Node's labels, for the policies' nodeSelector
    [['list', 'nodes'], 'yes'],
    // not needed
    [['create', 'virtioforwarderpolicies.vio4wd.io'], 'no'],
    [['patch', 'virtioforwarderpolicies.vio4wd.io'], 'no'],
    [['get', 'secrets', '-n', NS], 'no'],
    [['list', 'secrets', '-A'], 'no'],
    [['get', 'pods', '-n', 'other'], 'no'],
    [['list', 'pods', '-A'], 'no'],
    [['create', 'pods', '-n', APP], 'no'],
    [['create', 'virtiorelays.vio4wd.io', '-n', APP], 'no'],
    [['update', 'virtiorelays.vio4wd.io', '-n', APP], 'no'],
    [['delete', 'virtiorelays.vio4wd.io', '-n', APP], 'no'],
    [['delete', 'virtioforwardernodes.vio4wd.io'], 'no'],
    [['patch', 'virtioforwardernodes.vio4wd.io'], 'no'],
    [['patch', 'nodes'], 'no'],
    // its node Lease, in the release namespace only
    [['create', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
    [['get', 'leases.coordination.k8s.io/node-a', '-n', NS], 'yes'],
    [['update', 'leases.coordination.k8s.io/node-a', '-n', NS], 'yes'],
    [['get', 'virtioforwardernodes.vio4wd.io/node-a'], 'yes'],
    [['watch', 'virtioforwardernodes.vio4wd.io'], 'yes'],
    [['delete', 'leases.coordination.k8s.io/node-a', '-n', NS], 'no'],
    [['list', 'leases.coordination.k8s.io', '-n', NS], 'no'],
    [['create', 'leases.coordination.k8s.io', '-n', 'other'], 'no'],
    [['update', 'leases.coordination.k8s.io/node-a', '-n', 'kube-node-lease'], 'no'],
    [['delete', 'events', '-n', APP], 'no'],
    [['create', 'clusterrolebindings'], 'no'],
  ];
  const operator: [string[], 'yes' | 'no'][] = [
    [['list', 'virtiorelays.vio4wd.io', '-A'], 'yes'],
    [['patch', 'virtiorelays.vio4wd.io', '-n', APP], 'yes'],
    [['patch', 'virtiorelays.vio4wd.io/status', '-n', APP, '--subresource=status'], 'yes'],
    [['watch', 'virtioforwardernodes.vio4wd.io'], 'yes'],
    [['delete', 'virtioforwardernodes.vio4wd.io'], 'yes'],
    [['list', 'nodes'], 'yes'],
    [['watch', 'nodes'], 'yes'],
    [['create', 'events', '-n', APP], 'yes'],
    [['create', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
    [['update', 'leases.coordination.k8s.io/vio4wd-operator', '-n', NS], 'yes'],
    // the pool policies it places relays by (read only)
    [['list', 'virtioforwarderpolicies.vio4wd.io'], 'yes'],
    [['watch', 'virtioforwarderpolicies.vio4wd.io'], 'yes'],
    [['patch', 'virtioforwarderpolicies.vio4wd.io'], 'no'],
    // not needed
    [['get', 'secrets', '-n', NS], 'no'],
    [['list', 'secrets', '-A'], 'no'],
    [['get', 'pods', '-n', 'other'], 'no'],
    [['list', 'pods', '-A'], 'no'],
    [['delete', 'virtiorelays.vio4wd.io', '-n', APP], 'no'],
    [['create', 'virtiorelays.vio4wd.io', '-n', APP], 'no'],
    // the agents' node Leases (read only), and their nodes' conditions when an agent goes silent
    [['list', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
    [['watch', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
    [['patch', 'virtioforwardernodes.vio4wd.io', '--subresource=status'], 'yes'],
    [['update', 'leases.coordination.k8s.io/node-a', '-n', NS], 'no'],
    [['list', 'leases.coordination.k8s.io', '-n', 'other'], 'no'],
    [['create', 'virtioforwardernodes.vio4wd.io'], 'no'],
    [['patch', 'nodes'], 'no'],
    [['delete', 'nodes'], 'no'],
    [['create', 'leases.coordination.k8s.io', '-n', 'other'], 'no'],
    [['update', 'leases.coordination.k8s.io/some-other-lease', '-n', NS], 'no'],
    [['delete', 'leases.coordination.k8s.io/vio4wd-operator', '-n', NS], 'no'],
    [['create', 'clusterrolebindings'], 'no'],
  ];
  const wrong: string[] = [];
  for (const [who, kc, table] of [['agent', agentKubeconfig, agent], ['operator', operatorKubeconfig, operator]] as const) {
    for (const [args, want] of table) {
      const got = await canI(kc, ...args);
      if (got !== want) wrong.push(`${who}: can-i ${args.join(' ')} -> ${got}, want ${want}`);
    }
  }
  assert.deepEqual(wrong, []);
});
