// The cluster operator against a real kube-apiserver: core Nodes and VirtioForwarderNodes (their
// status written through the status subresource, as agents would) stand for nodes with
// different VFs, NUMA layouts and engine states; VirtioRelays applied with kubectl get a node.
// Each test uses its own nodes and VF device ids so earlier tests' relays do not count.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { CoreV1Event, V1Lease } from '@kubernetes/client-node';
import { startKube, waitUntil, type KubeEnv } from '../helpers/kube.js';
import {
  FINALIZER,
  GROUP,
  LeaderElector,
  NodeLease,
  VERSION,
  kubeClients,
  mergePatch,
  type KubeClients,
  type VirtioForwarderNodeStatus,
  type VirtioRelay,
  type VirtioRelaySpec,
} from '../../src/kube/index.js';
import { Operator } from '../../src/operator/operator.js';
import { SCHEDULED_VF_ANNOTATION } from '../../src/operator/scheduler.js';
import { createLogger } from '../../src/util/log.js';

const NS = 'relays';
const LEASE = 'vio4wd-operator';
const LEASE_NS = 'default';

let kube: KubeEnv;
let api: KubeClients;
/** The replica that leads after the leader-election test; later tests rely on it. */
let op: Operator | undefined;
const running = new Set<Operator>();
const children = new Set<ChildProcess>();

before(async () => {
  // without it, an apiserver with open watches waits for them until kube-env kills it (30 s)
  kube = await startKube({ apiserverArgs: ['--shutdown-watch-termination-grace-period=2s'] });
  await kube.kubectl('apply', '-f', 'crds/');
  await kube.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/virtiorelays.vio4wd.io', 'crd/virtioforwardernodes.vio4wd.io', 'crd/virtioforwarderpolicies.vio4wd.io');
  await kube.kubectl('create', 'namespace', NS);
  // the default pool for the relays' namespace: every VF the tests' nodes report, and net_null
  await apply(policyObj('test-pool', 'vio4wd.io/vhostuser', ['a001', 'a701', 'a702', 'b001', 'b0b0', 'c001', 'd001', 'e001', 'f001']));
  api = kubeClients(kube.kubeconfigPath);
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const o of running) await o.stop();
  await kube?.stop();
});

function startOperator(identity: string, scheduler: { staleAfterMs?: number } = {}): Operator {
  const o = new Operator({
    clients: kubeClients(kube.kubeconfigPath),
    logger: createLogger({ level: process.env.VIO4WD_TEST_LOG ?? 'silent' }),
    namespace: LEASE_NS,
    leaseName: LEASE,
    identity,
    // frequent tries keep hand-overs (by release) quick; the long renew deadline keeps the Lease
    // through the apiserver restart below even on a busy machine, so that test exercises watches
    // that resume rather than a new term (defaults: 15 s lease, 2 s renew, 10 s deadline, 2 s
    // retry; with those a longer outage makes the leader step down and be elected again)
    election: { leaseDurationMs: 60_000, renewIntervalMs: 500, renewDeadlineMs: 45_000, retryIntervalMs: 500 },
    scheduler,
  });
  running.add(o);
  return o;
}

async function stopOperator(o: Operator): Promise<void> {
  await o.stop();
  running.delete(o);
}

interface VfSpec {
  pf: string;
  bus: string;
  count: number;
  numa: number;
  device: string;
}

function vfList(...specs: VfSpec[]): NonNullable<VirtioForwarderNodeStatus['vfs']> {
  return specs.flatMap((s) =>
    Array.from({ length: s.count }, (_, i) => ({
      pciAddress: `0000:${s.bus}:${String(2 + Math.floor(i / 8)).padStart(2, '0')}.${i % 8}`,
      pfName: s.pf,
      vfIndex: i,
      vendor: '8086',
      device: s.device,
      numaNode: s.numa,
      driver: 'vfio-pci',
    })),
  );
}

/** A core Node plus the VirtioForwarderNode its agent would publish. */
async function agentNode(name: string, status: VirtioForwarderNodeStatus, opts: { cordoned?: boolean; noAgent?: boolean } = {}): Promise<void> {
  await api.core.createNode({ body: { metadata: { name }, ...(opts.cordoned ? { spec: { unschedulable: true } } : {}) } });
  if (opts.noAgent) return;
  await api.custom.createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: 'virtioforwardernodes',
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioForwarderNode', metadata: { name }, spec: { nodeName: name } },
  });
  await reportStatus(name, status);
}

async function reportStatus(name: string, status: VirtioForwarderNodeStatus): Promise<void> {
  await api.custom.patchClusterCustomObjectStatus(
    { group: GROUP, version: VERSION, plural: 'virtioforwardernodes', name, body: { status } },
    mergePatch,
  );
}

function up(vfs: NonNullable<VirtioForwarderNodeStatus['vfs']>): VirtioForwarderNodeStatus {
  return { engine: { up: true, dpdkVersion: '22.11.11' }, vfs, relays: { total: 0, ready: 0, failed: 0 } };
}

function relayObj(name: string, spec: VirtioRelaySpec, meta: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtioRelay', metadata: { name, namespace: NS, ...meta }, spec };
}

/** A VirtioForwarderPolicy giving NS the VFs of vendor 8086 with these device ids, and net_null. */
function policyObj(name: string, resourceName: string, devices: string[]): Record<string, unknown> {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'VirtioForwarderPolicy',
    metadata: { name },
    spec: { resourceName, namespaces: [NS], vfs: { devices: devices.map((device) => ({ vendor: '8086', device })), virtualDevices: ['net_null'] } },
  };
}

/** kubectl apply, as a user would: all objects in one List. */
async function apply(...objs: Record<string, unknown>[]): Promise<void> {
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }) });
}

async function getRelay(name: string): Promise<VirtioRelay> {
  return (await api.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays', name })) as VirtioRelay;
}

async function listRelays(prefix: string): Promise<VirtioRelay[]> {
  const l = (await api.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'virtiorelays' })) as { items: VirtioRelay[] };
  return l.items.filter((r) => r.metadata.name!.startsWith(prefix));
}

async function scheduledTo(name: string): Promise<string> {
  let node = '';
  await waitUntil(`VirtioRelay ${name} has a node`, async () => {
    node = (await getRelay(name)).spec.nodeName ?? '';
    return node !== '';
  });
  return node;
}

async function events(name: string): Promise<CoreV1Event[]> {
  const l = await api.core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return l.items;
}

async function eventWith(name: string, reason: string, match?: RegExp): Promise<CoreV1Event> {
  let found: CoreV1Event | undefined;
  await waitUntil(`event ${reason} on ${name}`, async () => {
    found = (await events(name)).find((e) => e.reason === reason && (!match || match.test(e.message ?? '')));
    return found !== undefined;
  });
  return found!;
}

async function lease(): Promise<V1Lease> {
  return api.coordination.readNamespacedLease({ name: LEASE, namespace: LEASE_NS });
}

test('two replicas: only the Lease holder schedules; the other takes over when it stops', async () => {
  const a = startOperator('replica-a');
  const b = startOperator('replica-b');
  await Promise.all([a.start(), b.start()]);
  await waitUntil('one replica leads', () => a.isLeader || b.isLeader);
  const [leader, standby] = a.isLeader ? [a, b] : [b, a];
  assert.equal(standby.isLeader, false);
  assert.equal(standby.activeScheduler, undefined, 'the standby runs no scheduler');
  assert.equal((await lease()).spec?.holderIdentity, leader.elector.identity);

  await agentNode('le-1', up([]));
  await apply(relayObj('le-first', { vf: { devargs: 'net_null0' } }));
  assert.equal(await scheduledTo('le-first'), 'le-1');
  const ev = await eventWith('le-first', 'Scheduled');
  assert.equal(ev.source?.host, leader.elector.identity, 'the leader scheduled it');
  assert.equal(ev.source?.component, 'vio4wd-operator');
  assert.ok(!(await events('le-first')).some((e) => e.source?.host === standby.elector.identity), 'the standby did nothing');

  const before = (await lease()).spec?.leaseTransitions ?? 0;
  await stopOperator(leader);
  await waitUntil('the standby leads', () => standby.isLeader);
  const l = await lease();
  assert.equal(l.spec?.holderIdentity, standby.elector.identity);
  assert.equal(l.spec?.leaseTransitions, before + 1);
  await apply(relayObj('le-second', { vf: { devargs: 'net_null1' } }));
  assert.equal(await scheduledTo('le-second'), 'le-1');
  assert.equal((await eventWith('le-second', 'Scheduled')).source?.host, standby.elector.identity);
  op = standby;
});

test('a leader that dies without giving up the Lease is replaced once the Lease expires', async () => {
  const logger = createLogger({ level: process.env.VIO4WD_TEST_LOG ?? 'silent' });
  const timing = { leaseDurationMs: 2000, renewIntervalMs: 300, renewDeadlineMs: 1500, retryIntervalMs: 300 };
  const mk = (identity: string) => new LeaderElector({ coordination: kubeClients(kube.kubeconfigPath).coordination, namespace: LEASE_NS, name: 'crash-test', identity, logger, ...timing });
  const x = mk('x');
  const y = mk('y');
  try {
    await x.start();
    assert.equal(x.isLeader, true, 'x took the free Lease');
    await y.start();
    // y keeps trying while x renews: several lease durations pass without a change
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(y.isLeader, false);
      assert.equal(y.currentLeader, 'x');
    }
    await x.stop({ release: false }); // as if the process were killed
    await waitUntil('y takes the expired Lease', () => y.isLeader, 15_000);
    const l = await api.coordination.readNamespacedLease({ name: 'crash-test', namespace: LEASE_NS });
    assert.equal(l.spec?.holderIdentity, 'y');
    assert.equal(l.spec?.leaseTransitions, 1);
  } finally {
    await x.stop();
    await y.stop();
  }
});

test('a relay naming a PCI address goes to the node that has it; a selector to a node with a matching VF', async () => {
  assert.ok(op?.isLeader);
  await agentNode('pci-1', up(vfList({ pf: 'ensa0', bus: '10', count: 2, numa: 0, device: 'a001' })));
  await agentNode('pci-2', up(vfList({ pf: 'ensa1', bus: '11', count: 2, numa: 0, device: 'a001' })));
  await apply(relayObj('by-pci', { vf: { pciAddress: '0000:11:02.1' } }), relayObj('by-selector', { vf: { selector: { pfName: 'ensa0' } } }));
  assert.equal(await scheduledTo('by-pci'), 'pci-2');
  assert.equal(await scheduledTo('by-selector'), 'pci-1');
  const r = await getRelay('by-selector');
  assert.equal(r.metadata.annotations?.[SCHEDULED_VF_ANNOTATION], '0000:10:02.0');
  assert.match((await eventWith('by-pci', 'Scheduled')).message!, /^Successfully assigned relays\/by-pci to pci-2 with VF 0000:11:02.1 \(NUMA node 0\)$/);
  await waitUntil('status says Scheduled', async () => (await getRelay('by-pci')).status?.phase === 'Scheduled');
  const out = await kube.kubectl('get', 'vr', 'by-pci', '-n', NS);
  assert.match(out, /by-pci\s+pci-2\s+Scheduled/);
});

test('NUMA: spec.numaNode restricts the VFs, otherwise the NUMA node with the most free VFs', async () => {
  await agentNode(
    'numa-1',
    up(vfList({ pf: 'ensb0', bus: '20', count: 2, numa: 0, device: 'b001' }, { pf: 'ensb1', bus: 'a0', count: 3, numa: 1, device: 'b001' })),
  );
  await apply(relayObj('numa-any', { vf: { selector: { device: 'b001' } } }));
  await scheduledTo('numa-any');
  assert.match((await eventWith('numa-any', 'Scheduled')).message!, /VF 0000:a0:02\.0 \(NUMA node 1\)/);
  await apply(relayObj('numa-0', { vf: { selector: { device: 'b001' } }, numaNode: 0 }));
  await scheduledTo('numa-0');
  assert.match((await eventWith('numa-0', 'Scheduled')).message!, /VF 0000:20:02\.0 \(NUMA node 0\)/);
  await apply(relayObj('numa-5', { vf: { selector: { device: 'b001' } }, numaNode: 5 }));
  const ev = await eventWith('numa-5', 'FailedScheduling');
  assert.match(ev.message!, /^no node has a free VF matching selector device=b001 on NUMA node 5 \(0\/\d+ nodes available: .*1 no free matching VF on NUMA node 5/);
});

test('load spreads over nodes; nodes with the engine down, cordoned or without an agent get nothing', async () => {
  const vfs = (bus: string) => vfList({ pf: 'ensc0', bus, count: 4, numa: 0, device: 'c001' });
  await agentNode('spread-1', up(vfs('30')));
  await agentNode('spread-2', up(vfs('31')));
  await agentNode('spread-down', { ...up(vfs('32')), engine: { up: false, message: 'EAL: no hugepages' } });
  await agentNode('spread-cordoned', up(vfs('33')), { cordoned: true });
  await agentNode('spread-noagent', up([]), { noAgent: true });
  const names = ['s0', 's1', 's2', 's3'].map((n) => `spread-${n}`);
  await apply(...names.map((n) => relayObj(n, { vf: { selector: { device: 'c001' } } })));
  const nodes = await Promise.all(names.map(scheduledTo));
  assert.deepEqual(nodes.sort(), ['spread-1', 'spread-1', 'spread-2', 'spread-2']);
  // the fifth and sixth still avoid the unavailable nodes
  await apply(relayObj('spread-s4', { vf: { selector: { device: 'c001' } } }), relayObj('spread-s5', { vf: { selector: { device: 'c001' } } }));
  assert.deepEqual([await scheduledTo('spread-s4'), await scheduledTo('spread-s5')].sort(), ['spread-1', 'spread-2']);
});

test('an unschedulable relay gets FailedScheduling and a Pending status, and is placed when a node can take it', async () => {
  await apply(relayObj('waiting', { vf: { selector: { pfName: 'ensd0' } } }));
  const ev = await eventWith('waiting', 'FailedScheduling');
  assert.equal(ev.type, 'Warning');
  assert.match(ev.message!, /^no node has a free VF matching selector pfName=ensd0 \(0\/\d+ nodes available: .*\d+ no matching VF/);
  await waitUntil('status Pending with the reason', async () => {
    const s = (await getRelay('waiting')).status;
    return s?.phase === 'Pending' && s.message === ev.message;
  });
  // an agent appears, but its engine is not up yet: still waiting, for a new reason
  await agentNode('late-1', { ...up(vfList({ pf: 'ensd0', bus: '40', count: 1, numa: 0, device: 'd001' })), engine: { up: false } });
  await eventWith('waiting', 'FailedScheduling', /1 engine not up/);
  assert.equal((await getRelay('waiting')).spec.nodeName, undefined);
  // the engine comes up: the relay is placed without anything else changing
  await reportStatus('late-1', { engine: { up: true } });
  assert.equal(await scheduledTo('waiting'), 'late-1');
  await waitUntil('status Scheduled', async () => (await getRelay('waiting')).status?.phase === 'Scheduled');
  const out = await kube.kubectl('describe', 'vr', 'waiting', '-n', NS);
  assert.match(out, /Warning\s+FailedScheduling/);
  assert.match(out, /Normal\s+Scheduled/);

  // a nodeName of "" cannot be changed (CEL): the apiserver's reason is passed on
  await apply(relayObj('blank-node', { nodeName: '', vf: { devargs: 'net_null7' } }));
  const blank = await eventWith('blank-node', 'FailedScheduling');
  assert.match(blank.message!, /^cannot assign node \S+: .*nodeName cannot be changed once set/);
});

test('73 relays applied at once onto 72 free VFs: 72 placed without double-booking, 1 waits until a VF is freed', async () => {
  const nodes = ['burst-1', 'burst-2', 'burst-3'];
  const statusOf = (i: number) => up(vfList({ pf: 'ense0', bus: String(50 + i), count: 24, numa: i % 2, device: 'e001' }));
  for (const [i, n] of nodes.entries()) await agentNode(n, statusOf(i));
  const names = Array.from({ length: 73 }, (_, i) => `burst-${String(i).padStart(2, '0')}`);
  await apply(...names.map((n) => relayObj(n, { vf: { selector: { device: 'e001' } } })));
  let relays: VirtioRelay[] = [];
  await waitUntil('72 relays placed', async () => {
    relays = await listRelays('burst-');
    return relays.filter((r) => r.spec.nodeName).length === 72;
  }, 60_000);
  const pending = relays.filter((r) => !r.spec.nodeName);
  assert.equal(pending.length, 1);
  const waiting = pending[0]!.metadata.name!;
  await eventWith(waiting, 'FailedScheduling', /no node has a free VF matching selector device=e001 \(0\/\d+ nodes available: .*3 all matching VFs in use/);
  const seen = new Set<string>();
  for (const r of relays.filter((x) => x.spec.nodeName)) {
    const vf = r.metadata.annotations?.[SCHEDULED_VF_ANNOTATION];
    assert.ok(vf, `${r.metadata.name} has ${SCHEDULED_VF_ANNOTATION}`);
    const id = `${r.spec.nodeName}/${vf}`;
    assert.ok(!seen.has(id), `${id} given to two relays`);
    seen.add(id);
  }
  for (const n of nodes) assert.equal(relays.filter((r) => r.spec.nodeName === n).length, 24, `${n} got 24`);

  // the agents report their relays (usedBy): the operator's reservations give way to reports
  for (const [i, n] of nodes.entries()) {
    const vfs = statusOf(i).vfs!.map((vf) => {
      const r = relays.find((x) => x.spec.nodeName === n && x.metadata.annotations?.[SCHEDULED_VF_ANNOTATION] === vf.pciAddress);
      return r ? { ...vf, usedBy: `${NS}/${r.metadata.name}` } : vf;
    });
    await reportStatus(n, { vfs, relays: { total: 24, ready: 24, failed: 0 } });
  }
  // one relay goes away and its agent frees the VF: the waiting one gets exactly that VF
  const gone = relays.find((r) => r.spec.nodeName === 'burst-2')!;
  const freed = gone.metadata.annotations![SCHEDULED_VF_ANNOTATION]!;
  await kube.kubectl('delete', 'vr', gone.metadata.name!, '-n', NS);
  const i2 = nodes.indexOf('burst-2');
  const vfs2 = statusOf(i2).vfs!.map((vf) => {
    const r = relays.find((x) => x.spec.nodeName === 'burst-2' && x !== gone && x.metadata.annotations?.[SCHEDULED_VF_ANNOTATION] === vf.pciAddress);
    return r ? { ...vf, usedBy: `${NS}/${r.metadata.name}` } : vf;
  });
  await reportStatus('burst-2', { vfs: vfs2, relays: { total: 23, ready: 23, failed: 0 } });
  assert.equal(await scheduledTo(waiting), 'burst-2');
  assert.equal((await getRelay(waiting)).metadata.annotations?.[SCHEDULED_VF_ANNOTATION], freed);
});

test('a deleted node: OnNodeLoss relays move, Never relays stay (and can still be deleted), its VirtioForwarderNode goes', async () => {
  const vfs = (bus: string) => up(vfList({ pf: 'ensf0', bus, count: 2, numa: 0, device: 'f001' }));
  await agentNode('lost-1', vfs('60'));
  await agentNode('lost-2', vfs('61'));
  await apply(
    relayObj('mover', { nodeName: 'lost-1', vf: { selector: { device: 'f001' } }, reschedule: 'OnNodeLoss' }),
    relayObj('stayer', { nodeName: 'lost-1', vf: { selector: { device: 'f001' } } }),
    relayObj('leaver', { nodeName: 'lost-1', vf: { devargs: 'net_null9' }, reschedule: 'Never' }, { finalizers: [FINALIZER] }),
  );
  // lost-1's agent had them running
  for (const name of ['mover', 'stayer']) {
    await api.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: 'virtiorelays',
        name,
        body: { status: { phase: 'Ready', message: 'relay is forwarding', nodeName: 'lost-1', socketPath: `/var/run/vio4wd/${NS}.${name}/vhost-user.sock`, relayId: 1 } },
      },
      mergePatch,
    );
  }
  await api.core.deleteNode({ name: 'lost-1' });

  await waitUntil('mover moved to lost-2', async () => (await getRelay('mover')).spec.nodeName === 'lost-2');
  assert.match((await eventWith('mover', 'Rescheduled')).message!, /node lost-1 does not exist; moving the relay to another node/);
  await eventWith('mover', 'Scheduled', /to lost-2/);
  await waitUntil('mover status no longer shows lost-1', async () => {
    const s = (await getRelay('mover')).status;
    return s?.phase === 'Scheduled' && s.socketPath === undefined && s.nodeName === undefined;
  });

  const lost = await eventWith('stayer', 'NodeLost');
  assert.equal(lost.type, 'Warning');
  assert.match(lost.message!, /node lost-1 does not exist; the relay stays assigned to it \(reschedule: Never\)/);
  await waitUntil('stayer marked Failed', async () => (await getRelay('stayer')).status?.phase === 'Failed');
  assert.equal((await getRelay('stayer')).spec.nodeName, 'lost-1');

  await waitUntil('VirtioForwarderNode lost-1 deleted', async () => {
    const r = await kube.kubectlRun(['get', 'vfn', 'lost-1'], { check: false });
    return r.code !== 0 && /NotFound/.test(r.stderr);
  });

  // no agent will remove the finalizer: the operator does, so the deletion finishes
  await kube.kubectl('delete', 'vr', 'leaver', '-n', NS, '--timeout=30s');
  await eventWith('leaver', 'FinalizerRemoved', /node lost-1 does not exist/);

  // the user changes their mind: OnNodeLoss on the stayer moves it too
  await kube.kubectl('patch', 'vr', 'stayer', '-n', NS, '--type=merge', '-p', '{"spec":{"reschedule":"OnNodeLoss"}}');
  await waitUntil('stayer moved', async () => (await getRelay('stayer')).spec.nodeName === 'lost-2');
});

test('an apiserver restart loses nothing: relays created after it are scheduled without double-booking', async () => {
  const vfs = (bus: string, bus2: string) => up(vfList({ pf: 'ensg0', bus, count: 4, numa: 0, device: 'a701' }, { pf: 'ensg1', bus: bus2, count: 1, numa: 0, device: 'a702' }));
  await agentNode('restart-1', vfs('70', '72'));
  await agentNode('restart-2', vfs('71', '73'));
  await apply(...['r0', 'r1', 'r2'].map((n) => relayObj(`restart-${n}`, { vf: { selector: { device: 'a701' } } })));
  for (const n of ['r0', 'r1', 'r2']) await scheduledTo(`restart-${n}`);

  let steppedDown = 0;
  const onFollow = () => steppedDown++;
  op!.on('following', onFollow);
  await kube.stopApiserver();
  await kube.startApiserver();
  await apply(...['r3', 'r4', 'r5', 'r6', 'r7'].map((n) => relayObj(`restart-${n}`, { vf: { selector: { device: 'a701' } } })));
  // and a node deleted right after the restart is noticed too
  await apply(relayObj('restart-mover', { nodeName: 'restart-1', vf: { selector: { device: 'a702' } }, reschedule: 'OnNodeLoss' }));
  let relays: VirtioRelay[] = [];
  await waitUntil('all 8 selector relays placed', async () => {
    relays = (await listRelays('restart-r'));
    return relays.length === 8 && relays.every((r) => r.spec.nodeName);
  }, 60_000);
  const ids = relays.map((r) => `${r.spec.nodeName}/${r.metadata.annotations?.[SCHEDULED_VF_ANNOTATION]}`);
  assert.equal(new Set(ids).size, 8, `no VF twice: ${ids.join(' ')}`);
  assert.deepEqual(relays.map((r) => r.spec.nodeName).sort(), [...Array(4).fill('restart-1'), ...Array(4).fill('restart-2')]);
  await api.core.deleteNode({ name: 'restart-1' });
  await waitUntil('restart-mover moved', async () => (await getRelay('restart-mover')).spec.nodeName === 'restart-2');
  op!.off('following', onFollow);
  assert.equal(steppedDown, 0, 'the leader kept the Lease: its watches resumed after the restart');
  assert.ok(op!.isLeader);
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

test('vio4wd operator: a standby replica takes over, serves metrics, and releases the Lease on SIGTERM', async () => {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const { main } = await import('./src/cli/main.ts'); process.exitCode = await main(['node', 'vio4wd', ...process.argv.slice(1)]);",
      'operator',
      '--kubeconfig',
      kube.kubeconfigPath,
      '--namespace',
      LEASE_NS,
      '--lease-name',
      LEASE,
      '--identity',
      'cli-replica',
      '--metrics-address',
      `127.0.0.1:${port}`,
      '--log-level',
      'info',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.add(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

  await waitUntil('the CLI serves metrics', async () => /vio4wd_operator_leader 0/.test(await metrics()));
  assert.equal((await lease()).spec?.holderIdentity, op!.elector.identity, 'the running replica keeps the Lease');

  await stopOperator(op!);
  await waitUntil('the CLI replica leads', async () => (await lease()).spec?.holderIdentity === 'cli-replica', 30_000);
  await apply(relayObj('cli-relay', { vf: { devargs: 'net_null3' } }));
  await scheduledTo('cli-relay');
  assert.equal((await eventWith('cli-relay', 'Scheduled')).source?.host, 'cli-replica');
  await waitUntil('metrics show the leader and what it did', async () => {
    const m = await metrics();
    return /vio4wd_operator_leader 1/.test(m) && /vio4wd_operator_scheduled_total [1-9]/.test(m);
  });
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);

  proc.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.equal((await lease()).spec?.holderIdentity ?? '', '', 'the Lease was given up');
  const logs = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { component?: string; msg?: string });
  assert.ok(logs.some((l) => l.component === 'operator' && l.msg === 'became the leader'), 'structured logs with component operator');
  assert.ok(logs.some((l) => l.msg === 'released the lease'));
});

test('a node whose agent stops renewing its Lease is marked not reporting and gets no new relays until it renews again', async () => {
  const o = startOperator('stale-test');
  await o.start();
  await waitUntil('it leads', () => o.isLeader, 15_000);
  await agentNode('quiet-1', up(vfList({ pf: 'ensq0', bus: '90', count: 2, numa: 0, device: 'b0b0' })));
  // the agent's Lease, as the agent renews it (every 0.5 s: it lasts 2 s), in the operator's namespace
  const nodeLease = new NodeLease({ clients: api, namespace: LEASE_NS, nodeName: 'quiet-1', logger: createLogger({ level: 'silent' }), renewSeconds: 0.5, fieldManager: 'test-agent' });
  assert.equal(await nodeLease.renew(), true);
  await apply(relayObj('quiet-a', { vf: { selector: { device: 'b0b0' } } }));
  assert.equal(await scheduledTo('quiet-a'), 'quiet-1');
  // the agent stops renewing: after the Lease's 2 s the operator marks the node
  let marked = '';
  await waitUntil('quiet-1 marked AgentNotReporting', async () => {
    marked = await kube.kubectl('get', 'vfnode', 'quiet-1', '-o', "jsonpath={.status.conditions[?(@.type=='Ready')]}");
    return marked.includes('"reason":"AgentNotReporting"');
  }, 15_000);
  assert.match(marked, /"status":"Unknown"/);
  assert.match(marked, /stopped renewing its Lease default\/quiet-1 \(last renewed \d{4}-/);
  assert.match(await kube.kubectl('get', 'vfnode', 'quiet-1'), /quiet-1\s+Unknown\s+true/);
  assert.equal(o.activeScheduler?.notReportingCount(), 1, 'vio4wd_operator_agents_not_reporting');
  await apply(relayObj('quiet-b', { vf: { selector: { device: 'b0b0' } } }));
  assert.match((await eventWith('quiet-b', 'FailedScheduling')).message!, /^no node has a free VF matching selector device=b0b0 \(0\/\d+ nodes available: .*\d+ agent not reporting/);
  assert.equal(await nodeLease.renew(), true); // alive again
  assert.equal(await scheduledTo('quiet-b'), 'quiet-1');
  assert.equal(o.activeScheduler?.notReportingCount(), 0);
  assert.ok(o.counters.agentsNotReporting + (o.activeScheduler?.counters.agentsNotReporting ?? 0) >= 1);
  await stopOperator(o);
});

test('pool policy: a relay of a pool no policy defines waits, and is placed once the admin adds the policy', async () => {
  const o = startOperator('pool-policy-test');
  await o.start();
  await waitUntil('it leads', () => o.isLeader, 15_000);
  await apply(relayObj('pool-late', { resourceName: 'vio4wd.io/late', vf: { devargs: 'net_null_late' } }));
  const ev = await eventWith('pool-late', 'FailedScheduling', /denied by pool policy \(spec.resourceName\)/);
  assert.match(ev.message!, /no VirtioForwarderPolicy defines pool vio4wd.io\/late/);
  assert.equal((await getRelay('pool-late')).spec.nodeName, undefined);
  // the policy's watch brings the relay back without waiting for the retry period
  const t0 = Date.now();
  await apply(policyObj('late-pool', 'vio4wd.io/late', []));
  await scheduledTo('pool-late');
  assert.ok(Date.now() - t0 < 30_000, `placed ${Date.now() - t0} ms after the policy appeared`);
  await stopOperator(o);
});
