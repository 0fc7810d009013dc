// The node reconciler against a real kube-apiserver: VirtioRelays for this node become relays,
// status/finalizers/events follow, bad relays fail alone, and an apiserver restart loses
// nothing. The engine here is the in-memory stand-in; the agent test drives the real one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube, type KubeEnv } from '../helpers/kube.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { RelayManager } from '../../src/relay/index.js';
import { NodeReconciler } from '../../src/agent/node/reconciler.js';
import { kubeClients } from '../../src/kube/index.js';
import { createLogger, silentLogger } from '../../src/util/log.js';
import { until as waitUntil } from '../helpers/wait.js';

let kube: KubeEnv;
let sockets: string;
let engine: MemEngine;
let mgr: RelayManager;
let rec: NodeReconciler;

interface Vr {
  metadata: { finalizers?: string[]; generation: number };
  status?: {
    phase?: string;
    message?: string;
    socketPath?: string;
    relayId?: number;
    deviceId?: string;
    pciAddress?: string;
    observedGeneration?: number;
    nodeName?: string;
    conditions?: { type: string; status: string; reason: string }[];
  };
}

async function getVr(name: string): Promise<Vr> {
  return JSON.parse(await kube.kubectl('get', 'vr', '-n', 'app', name, '-o', 'json')) as Vr;
}

function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  return waitUntil(what, fn, { timeoutMs, intervalMs: 100 });
}

function apply(name: string, spec: Record<string, unknown>): Promise<unknown> {
  return kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name, namespace: 'app' }, spec }),
  });
}

before(async () => {
  kube = await startKube();
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io');
  await kube.kubectl('create', 'namespace', 'app');
  // the default pool, for namespace app, with tap stand-ins (the test node opts in below)
  await kube.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'vio4wd.io/v1alpha1',
      kind: 'VirtioForwarderPolicy',
      metadata: { name: 'vhostuser' },
      spec: { resourceName: 'vio4wd.io/vhostuser', namespaces: ['app'], vfs: { virtualDevices: ['net_tap'] }, socket: { group: '107' } },
    }),
  });
  sockets = mkdtempSync(join(tmpdir(), 'vio4wd-nr-'));
  engine = new MemEngine();
  mgr = new RelayManager({ engine, logger: silentLogger(), retry: { initialMs: 50, maxMs: 500 } });
  rec = new NodeReconciler({
    clients: kubeClients(kube.kubeconfigPath),
    nodeName: 'node-a',
    relays: mgr,
    logger: process.env.DEBUG_NR ? createLogger({ level: 'debug' }) : silentLogger(),
    socketDir: sockets,
    allowVirtualDevices: ['net_tap'],
    leaseNamespace: 'default',
    leaseRenewSeconds: 1,
    nodeStatus: async () => ({ engine: { up: true, dpdkVersion: '22.11' }, workerCpus: [1], vfs: [] }),
  });
  await rec.start();
});

after(async () => {
  await rec?.stop();
  await mgr?.close();
  await kube?.stop();
  if (sockets) rmSync(sockets, { recursive: true, force: true });
});

test('a VirtioRelay for this node becomes Ready with finalizer, status and events', async () => {
  await apply('vm1', { nodeName: 'node-a', vf: { devargs: 'net_tap_vm1,iface=vm1' }, queues: 2 });
  const vr = await until('vm1 Ready', async () => {
    const v = await getVr('vm1');
    return v.status?.phase === 'Ready' && v;
  });
  assert.deepEqual(vr.metadata.finalizers, ['vio4wd.io/relay-cleanup']);
  assert.equal(vr.status?.deviceId, 'app.vm1');
  assert.equal(vr.status?.socketPath, join(sockets, 'app.vm1', 'vhost-user.sock'));
  assert.equal(vr.status?.nodeName, 'node-a');
  assert.equal(vr.status?.observedGeneration, vr.metadata.generation);
  assert.equal(vr.status?.pciAddress, 'net_tap_vm1,iface=vm1');
  assert.deepEqual(vr.status?.conditions?.map((c) => `${c.type}=${c.status}`), ['VFAttached=True', 'SocketReady=True', 'GuestConnected=False', 'Ready=True']);
  const dir = statSync(join(sockets, 'app.vm1'));
  assert.equal(dir.mode & 0o7777, 0o2770, 'per-relay socket directory: group-writable with setgid, not world-writable');
  assert.equal(dir.gid, 107, 'owned by the pool policy\'s socket group');
  assert.equal(engine.configs.get(vr.status!.relayId!)?.socketPerm, 0o660);
  assert.equal(engine.configs.get(vr.status!.relayId!)?.mode, 'client', 'Kubernetes relays default to client mode');
  // Ready is the status' news: kubectl shows it with its reason; no Event per relay that works
  const table = await kube.kubectl('get', 'vr', '-n', 'app', 'vm1', '-o', 'wide');
  assert.match(table, /vm1\s+node-a\s+net_tap_vm1,iface=vm1\s+\S+vhost-user.sock\s+Ready\s+false\s+RelayReady/);
  const events = await kube.kubectl('get', 'events', '-n', 'app', '--field-selector', 'involvedObject.name=vm1', '-o', 'jsonpath={.items[*].reason}');
  assert.doesNotMatch(events, /RelayReady/);
});

test('a guest connecting shows in the status and as an event', async () => {
  const id = (await getVr('vm1')).status!.relayId!;
  engine.fire({ type: 'guest-connected', relayId: id });
  await until('GuestConnected', async () => (await getVr('vm1')).status?.conditions?.some((c) => c.type === 'GuestConnected' && c.status === 'True'));
  const wide = await kube.kubectl('get', 'vr', '-n', 'app', 'vm1', '-o', 'wide');
  assert.match(wide, /true/);
});

test('relays for other nodes are left alone', async () => {
  await apply('elsewhere', { nodeName: 'node-b', vf: { devargs: 'net_tap_x,iface=x' } });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(mgr.get('app.elsewhere'), undefined);
  assert.equal((await getVr('elsewhere')).status, undefined);
});

test('a relay the engine cannot serve is Failed with a reason; the others keep running', async () => {
  engine.failDevargs.set('net_tap_bad,iface=bad', 'ENODEV');
  await apply('bad', { nodeName: 'node-a', vf: { devargs: 'net_tap_bad,iface=bad' } });
  const vr = await until('bad Failed', async () => {
    const v = await getVr('bad');
    return v.status?.phase === 'Failed' && v;
  });
  assert.equal(vr.status?.conditions?.find((c) => c.type === 'VFAttached')?.reason, 'VFNotFound');
  assert.match(vr.status?.message ?? '', /cannot attach net_tap_bad/);
  assert.equal((await getVr('vm1')).status?.phase, 'Ready');
  const ev = await until('warning event', async () => {
    const e = await kube.kubectl('get', 'events', '-n', 'app', '--field-selector', 'involvedObject.name=bad,type=Warning', '-o', 'jsonpath={.items[*].reason}');
    return e.length > 0 && e;
  });
  assert.match(ev, /VFNotFound/);
  // the VF appears: the relay recovers on its own
  engine.failDevargs.delete('net_tap_bad,iface=bad');
  await until('bad Ready', async () => (await getVr('bad')).status?.phase === 'Ready');
});

test('a relay the node cannot track is Failed with InvalidSpec and an event naming the fix', async () => {
  // namespace + "." + name longer than a relay name may be (253 characters)
  const long = `x${'y'.repeat(250)}`;
  await apply(long, { nodeName: 'node-a', vf: { devargs: 'net_tap_long,iface=long' } });
  const vr = await until('long Failed', async () => {
    const v = await getVr(long);
    return v.status?.phase === 'Failed' && v;
  });
  assert.equal(vr.status?.conditions?.[0]?.reason, 'InvalidSpec');
  assert.match(vr.status?.message ?? '', /^name: ".*" is not a valid relay name/);
  assert.equal((await getVr('vm1')).status?.phase, 'Ready');
  await kube.kubectl('delete', 'vr', '-n', 'app', long, '--wait=true', '--timeout=30s');
});

test('deleting a VirtioRelay removes the relay, its socket directory, then the finalizer', async () => {
  const id = (await getVr('vm1')).status!.relayId!;
  await kube.kubectl('delete', 'vr', '-n', 'app', 'vm1', '--wait=true', '--timeout=30s');
  assert.equal(engine.relays.has(id), false);
  assert.equal(mgr.get('app.vm1'), undefined);
  assert.equal(existsSync(join(sockets, 'app.vm1')), false);
});

test('an updated spec is applied and observedGeneration follows', async () => {
  await apply('bad', { nodeName: 'node-a', vf: { devargs: 'net_tap_bad,iface=bad' }, queues: 3 });
  const vr = await until('generation 2 observed', async () => {
    const v = await getVr('bad');
    return v.metadata.generation === 2 && v.status?.observedGeneration === 2 && v.status.phase === 'Ready' && v;
  });
  assert.equal(engine.configs.get(vr.status!.relayId!)?.queues, 3);
});

test('the node publishes its VirtioForwarderNode with relay counts', async () => {
  const out = await until('VirtioForwarderNode', async () => {
    const o = JSON.parse(await kube.kubectl('get', 'vfn', 'node-a', '-o', 'json')) as { status?: { relays?: { total: number; ready: number }; engine?: { up: boolean } } };
    return o.status?.relays?.ready === 1 && o;
  });
  assert.equal(out.status?.engine?.up, true);
  const table = await kube.kubectl('get', 'vfnode');
  assert.match(table, /^NAME\s+READY\s+ENGINE\s+RELAYS\s+RELAYS-READY\s+RELAYS-FAILED\s+AGE$/m);
  assert.match(table, /node-a\s+True\s+true\s+1\s+1\s+0/);
});

interface Vfn {
  metadata: { resourceVersion: string; generation: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason: string; lastTransitionTime: string; observedGeneration?: number }[] };
}
const getVfn = async (): Promise<Vfn> => JSON.parse(await kube.kubectl('get', 'vfnode', 'node-a', '-o', 'json')) as Vfn;
const renewTime = (): Promise<string> => kube.kubectl('get', 'lease', '-n', 'default', 'node-a', '-o', 'jsonpath={.spec.renewTime}');

test('kubectl wait reads Ready; the Lease is renewed while the status, at rest, is not rewritten', async () => {
  await kube.kubectl('wait', '--for=condition=Ready', '--timeout=30s', 'vfnode/node-a');
  const vfn = await getVfn();
  assert.deepEqual(vfn.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`), ['EngineRunning=True/EngineStarted', 'HugepagesAvailable=False/NoHugepages', 'Ready=True/AgentReady']);
  assert.equal(vfn.status?.observedGeneration, vfn.metadata.generation);
  assert.ok(vfn.status?.conditions?.every((c) => c.observedGeneration === vfn.metadata.generation));
  const lease = JSON.parse(await kube.kubectl('get', 'lease', '-n', 'default', 'node-a', '-o', 'json')) as { metadata: { labels?: Record<string, string> }; spec: { holderIdentity: string; leaseDurationSeconds: number } };
  assert.equal(lease.spec.holderIdentity, 'node-a');
  assert.equal(lease.spec.leaseDurationSeconds, 4, 'four renew intervals');
  assert.equal(lease.metadata.labels?.['vio4wd.io/lease'], 'node');
  // at rest (the relays settled above): over three renew intervals the Lease moves, the status does not
  await until('the relays at rest', async () => mgr.list().every((r) => r.phase === 'Ready' || r.phase === 'Failed'));
  await new Promise((r) => setTimeout(r, 1500));
  const rv = (await getVfn()).metadata.resourceVersion;
  const writes = rec.publisher.writes;
  const renewed = [await renewTime()];
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    renewed.push(await renewTime());
  }
  assert.equal(new Set(renewed).size >= 3, true, `renewTime moved: ${renewed.join(', ')}`);
  assert.equal((await getVfn()).metadata.resourceVersion, rv, 'the VirtioForwarderNode was not written at rest');
  assert.equal(rec.publisher.writes, writes);
});

test('paused for a handover: the VirtioForwarderNode keeps its counts as the relays leave, the Lease is renewed; resumed, the relay runs on', async () => {
  const vfnRelays = async () => (JSON.parse(await kube.kubectl('get', 'vfnode', 'node-a', '-o', 'json')) as { status?: { relays?: { total: number; ready: number } } }).status?.relays;
  // the one relay running here now (the earlier tests' "bad", fixed), its VirtioRelay Ready
  const counts = await until('VirtioForwarderNode counts a Ready relay', async () => {
    const r = await vfnRelays();
    return r?.ready === 1 && r.total === 1 && r;
  });
  const name = mgr.list()[0]!.name;
  const vr = name.slice('app.'.length);
  const spec = mgr.spec(name)!;
  assert.equal((await getVr(vr)).status?.phase, 'Ready');
  // docs/upgrade.md: the old agent pauses its reconciler, then releases each relay to the new one
  rec.pause();
  try {
    const before = await renewTime();
    await mgr.remove(name, { handover: true });
    // a relay change is published within a second (coalesced after the last write): wait longer
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(await vfnRelays(), counts, 'no count dropped while the relay was with the other agent');
    assert.notEqual(await renewTime(), before, 'the Lease is still renewed');
    assert.equal((await getVr(vr)).status?.phase, 'Ready', 'the VirtioRelay is not written either');
  } finally {
    // the handover was given up: the relay runs here again
    try {
      mgr.apply(spec);
    } finally {
      rec.resume();
    }
  }
  await until(`${name} Ready again here`, async () => mgr.get(name)?.phase === 'Ready');
  await until('VirtioForwarderNode counts it Ready', async () => (await vfnRelays())?.ready === 1);
  assert.equal((await getVr(vr)).status?.phase, 'Ready');
});

test('conditions someone else set (the operator\'s AgentNotReporting) are levelled back by the live agent', async () => {
  const before = await getVfn();
  const unknown = before.status!.conditions!.map((c) => ({ ...c, status: 'Unknown', reason: 'AgentNotReporting', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }));
  await kube.kubectl('patch', 'vfnode', 'node-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: unknown } }));
  await until('Ready=True again', async () => (await getVfn()).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
  // and a deleted VirtioForwarderNode is made again
  const uid = await kube.kubectl('get', 'vfnode', 'node-a', '-o', 'jsonpath={.metadata.uid}');
  await kube.kubectl('delete', 'vfnode', 'node-a');
  await until('made again', async () => {
    const r = await kube.kubectlRun(['get', 'vfnode', 'node-a', '-o', 'jsonpath={.metadata.uid}'], { check: false });
    return r.code === 0 && r.stdout !== uid;
  });
  await kube.kubectl('wait', '--for=condition=Ready', '--timeout=30s', 'vfnode/node-a');
});

test('apiserver down: relays keep running; changes made meanwhile are caught up after', async () => {
  await kube.stopApiserver();
  // while the apiserver is away, the relay keeps its state
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(mgr.get('app.bad')?.phase, 'Ready');
  await kube.startApiserver();
  await apply('after', { nodeName: 'node-a', vf: { devargs: 'net_tap_after,iface=after' } });
  await until('after Ready', async () => (await getVr('after')).status?.phase === 'Ready', 60_000);
  await kube.kubectl('delete', 'vr', '-n', 'app', 'bad', '--wait=true', '--timeout=60s');
  assert.equal(mgr.get('app.bad'), undefined);
});

test('64 relays applied at once all reach Ready', async () => {
  const docs = Array.from({ length: 64 }, (_, i) =>
    JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name: `bulk-${i}`, namespace: 'app' }, spec: { nodeName: 'node-a', vf: { devargs: `net_tap_b${i},iface=b${i}` } } }),
  );
  await kube.kubectlRun(['apply', '-f', '-'], { input: docs.join('\n') });
  await until('64 Ready', async () => {
    const list = JSON.parse(await kube.kubectl('get', 'vr', '-n', 'app', '-o', 'json')) as { items: Vr[] };
    return list.items.filter((v) => v.status?.phase === 'Ready').length >= 65;
  }, 60_000);
  assert.equal(mgr.list().filter((s) => s.phase === 'Ready').length, 65);
});
