// The operator's two controllers against an in-memory fixture, as sample-controller's
// controller_test.go tests its controller: caches filled with objects, a client that records the
// actions and applies them to the objects, and the actions and events each test expects. The
// same controllers against a real kube-apiserver: test/integration/operator.kube.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Lease, V1Node } from '@kubernetes/client-node';
import { RelayController, SCHEDULED_VF_ANNOTATION, type SchedulerCounters } from '../../src/operator/relay-controller.js';
import { NodeCleanupController } from '../../src/operator/node-cleanup.js';
import { AgentLiveness } from '../../src/operator/liveness.js';
import { PlacementView, type Reservation } from '../../src/operator/cluster-view.js';
import { ConflictError, FINALIZER, objectKey, type Cache, type NodeCondition, type RelayPatch, type VirtioForwarderNode, type VirtioForwarderPolicy, type VirtioRelay } from '../../src/kube/index.js';
import { silentLogger } from '../../src/util/log.js';
import { sleep, until } from '../helpers/wait.js';

class MapCache<T extends { metadata?: { name?: string; namespace?: string } }> implements Cache<T> {
  readonly items = new Map<string, T>();
  constructor(objs: T[] = []) {
    for (const o of objs) this.put(o);
  }
  put(o: T): void {
    this.items.set(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o);
  }
  get(name: string, namespace?: string): T | undefined {
    return this.items.get(`${namespace ?? ''}/${name}`);
  }
  list(): T[] {
    return [...this.items.values()];
  }
}

/** The fixture: caches, a client that records what it is asked and applies it, the events. */
class Fixture {
  readonly actions: string[] = [];
  readonly events: string[] = [];
  readonly relays: MapCache<VirtioRelay>;
  readonly vfns: MapCache<VirtioForwarderNode>;
  readonly nodes: MapCache<V1Node>;
  readonly policies: MapCache<VirtioForwarderPolicy>;
  readonly counters: SchedulerCounters = { scheduled: 0, failedScheduling: 0, rescheduled: 0, nodeLost: 0, finalizersRemoved: 0, nodesCleanedUp: 0, agentsNotReporting: 0 };
  /** the agents' node Leases as the operator saw them (5 s without renewal: not reporting) */
  readonly liveness = new AgentLiveness(5000);
  /** the next status write conflicts (409), as when the agent wrote first */
  conflictOnStatus = false;
  private rv = 100;

  constructor(t: TestContext, objs: { relays?: VirtioRelay[]; vfns?: VirtioForwarderNode[]; nodes?: V1Node[]; policies?: VirtioForwarderPolicy[] }) {
    this.relays = new MapCache(objs.relays);
    this.vfns = new MapCache(objs.vfns);
    this.nodes = new MapCache(objs.nodes);
    this.policies = new MapCache(objs.policies ?? [policy('default-pool', { namespaces: ['app'], vfs: { pfNames: ['ens1f0'] } })]);
    t.after(() => this.stop());
  }

  private readonly stops: (() => void)[] = [];
  stop(): void {
    for (const s of this.stops.splice(0)) s();
  }

  relayController(opts: { retryPendingMs?: number; scheduledStatusAfterMs?: number } = {}): RelayController {
    const c = new RelayController({
      api: {
        relays: {
          patch: async (obj: VirtioRelay, body: RelayPatch) => {
            this.actions.push(`patch ${objectKey(obj)} ${JSON.stringify(body)}`);
            const cur = this.relays.get(obj.metadata.name!, obj.metadata.namespace)!;
            const annotations = { ...(cur.metadata.annotations ?? {}), ...((body.metadata?.annotations as Record<string, string> | undefined) ?? {}) };
            const next: VirtioRelay = structuredClone(cur);
            next.metadata = { ...cur.metadata, annotations, resourceVersion: String(++this.rv) };
            if (body.metadata && 'finalizers' in body.metadata) next.metadata.finalizers = body.metadata.finalizers as string[];
            if (body.spec && 'nodeName' in body.spec) next.spec = { ...cur.spec, nodeName: (body.spec.nodeName as string | null) ?? undefined };
            this.relays.put(next);
            return next;
          },
          patchStatus: async (obj: VirtioRelay, status: Record<string, unknown>, o: { guard?: boolean } = {}) => {
            if (this.conflictOnStatus) {
              this.conflictOnStatus = false;
              throw new ConflictError('changed meanwhile');
            }
            this.actions.push(`status ${objectKey(obj)} ${String(status.phase)}${o.guard ? ' (guarded)' : ''}`);
          },
        },
      },
      events: { relay: async (obj, type, reason, message) => void this.events.push(`${type} ${reason} ${objectKey(obj)}: ${message}`) },
      relays: this.relays,
      vfns: this.vfns,
      nodes: this.nodes,
      policies: this.policies,
      liveness: this.liveness,
      logger: silentLogger(),
      counters: this.counters,
      ...(opts.retryPendingMs !== undefined ? { retryPendingMs: opts.retryPendingMs } : {}),
      ...(opts.scheduledStatusAfterMs !== undefined ? { scheduledStatusAfterMs: opts.scheduledStatusAfterMs } : {}),
    });
    this.stops.push(() => c.stop());
    return c;
  }

  cleanupController(orphanGraceMs?: number): NodeCleanupController {
    const c = new NodeCleanupController({
      api: {
        nodes: {
          delete: async (name: string, uid: string | undefined) => {
            this.actions.push(`delete vfn ${name} uid=${uid}`);
            return true;
          },
          patchStatus: async (name: string, status: unknown, opts: { resourceVersion?: string } = {}) => {
            const conds = (status as { conditions: { type: string; status: string; reason: string }[] }).conditions;
            this.actions.push(`status vfn ${name} ${conds.map((c) => `${c.type}=${c.status}/${c.reason}`).join(',')}${opts.resourceVersion ? ' (guarded)' : ''}`);
            const cur = this.vfns.get(name)!;
            const next = { ...cur, metadata: { ...cur.metadata, resourceVersion: String(++this.rv) }, status: { ...cur.status, ...(status as object) } } as VirtioForwarderNode;
            this.vfns.put(next);
            return next;
          },
        },
      },
      liveness: this.liveness,
      vfns: this.vfns,
      nodes: this.nodes,
      logger: silentLogger(),
      counters: this.counters,
      ...(orphanGraceMs !== undefined ? { orphanGraceMs } : {}),
    });
    this.stops.push(() => c.stop());
    return c;
  }
}

const relay = (name: string, spec: Partial<VirtioRelay['spec']> = {}, meta: Partial<VirtioRelay['metadata']> = {}): VirtioRelay => ({
  metadata: { name, namespace: 'app', uid: `uid-${name}`, resourceVersion: '1', ...meta },
  spec: { vf: { selector: { pfName: 'ens1f0' } }, ...spec },
});
const node = (name: string, labels: Record<string, string> = {}): V1Node => ({ metadata: { name, labels }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
const policy = (name: string, spec: Partial<VirtioForwarderPolicy['spec']>): VirtioForwarderPolicy =>
  ({ metadata: { name }, spec: { resourceName: 'vio4wd.io/vhostuser', namespaces: ['app'], vfs: {}, ...spec } }) as VirtioForwarderPolicy;
const agent = (name: string, vfs: string[], extra: Partial<VirtioForwarderNode['metadata']> = {}): VirtioForwarderNode => ({
  metadata: { name, uid: `vfn-${name}`, creationTimestamp: new Date(0), ...extra },
  status: {
    engine: { up: true },
    vfs: vfs.map((pciAddress, i) => ({ pciAddress, pfName: 'ens1f0', vfIndex: i, vendor: '8086', device: '154c', numaNode: 0 })),
    relays: { total: 0 },
  },
});

async function run(c: RelayController | NodeCleanupController): Promise<void> {
  c.start();
  await c.queue.idle();
}

test('a relay without a node is given the node with a free matching VF: spec, annotation, finalizer, event, then status', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1'), node('n2')], vfns: [agent('n1', []), agent('n2', ['0000:3b:02.0'])] });
  await run(f.relayController({ scheduledStatusAfterMs: 50 }));
  // one write places it, with the finalizer that guards what its agent will make
  assert.deepEqual(f.actions, [`patch app/vm1 ${JSON.stringify({ metadata: { annotations: { [SCHEDULED_VF_ANNOTATION]: '0000:3b:02.0' }, finalizers: [FINALIZER] }, spec: { nodeName: 'n2' } })}`]);
  // no agent wrote a status in scheduledStatusAfterMs: the operator says Scheduled
  await until('status Scheduled', () => f.actions.includes('status app/vm1 Scheduled (guarded)'), 5000);
  assert.equal(f.events.length, 1);
  assert.match(f.events[0]!, /^Normal Scheduled app\/vm1: Successfully assigned app\/vm1 to n2 with VF 0000:3b:02\.0/);
  assert.equal(f.counters.scheduled, 1);
});

test('a placed relay whose agent writes its status in time gets no Scheduled status from the operator', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  const c = f.relayController({ scheduledStatusAfterMs: 100 });
  await run(c);
  const cur = f.relays.get('vm1', 'app')!;
  f.relays.put({ ...cur, metadata: { ...cur.metadata, resourceVersion: '999' }, status: { phase: 'Ready', nodeName: 'n1' } });
  const added: string[] = [];
  const add = c.queue.add.bind(c.queue);
  c.queue.add = (k: string) => void (added.push(k), add(k));
  c.relayChanged(f.relays.get('vm1', 'app')!);
  await sleep(300);
  await c.queue.idle();
  assert.deepEqual(f.actions.filter((a) => a.startsWith('status')), []);
  assert.deepEqual(added, [], 'nor a look at it after scheduledStatusAfterMs: one key per placed relay');
});

test('a relay no node can take stays Pending with the reason, and the event is not repeated for the same reason', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1')], vfns: [agent('n1', [])] });
  const c = f.relayController({ retryPendingMs: 60_000 });
  await run(c);
  c.enqueuePending();
  await c.queue.idle();
  assert.equal(f.events.filter((e) => e.startsWith('Warning FailedScheduling app/vm1')).length, 1);
  assert.deepEqual(f.actions.filter((a) => a.startsWith('status')), ['status app/vm1 Pending (guarded)', 'status app/vm1 Pending (guarded)']);
  assert.equal(f.counters.failedScheduling, 1);
  assert.equal(c.pendingCount(), 1);
});

test('a node change retries only the relays that did not fit, and only when it can make room', async (t) => {
  const n1 = agent('n1', ['0000:3b:02.0']);
  const f = new Fixture(t, { relays: [relay('fits'), relay('nofit')], nodes: [node('n1')], vfns: [n1] });
  const c = f.relayController({ retryPendingMs: 60_000 });
  await run(c);
  assert.equal(f.counters.failedScheduling, 1);
  const added: string[] = [];
  const add = c.queue.add.bind(c.queue);
  c.queue.add = (k: string) => void (added.push(k), add(k));
  c.agentChanged(n1); // as first seen: what it reports now
  await c.queue.idle();
  added.length = 0;
  // a relay created meanwhile whose own add event is on its way: not queued by a node change
  f.relays.put(relay('new'));
  // the agent's counts changed (written every few seconds in a burst): no room made, nothing queued
  const counted = structuredClone(n1);
  counted.status!.relays = { total: 1 };
  c.agentChanged(counted);
  assert.deepEqual(added, []);
  // its VF list changed (a VF freed, a new VF): the relay that did not fit is tried again, alone
  const more = structuredClone(counted);
  more.status!.vfs!.push({ pciAddress: '0000:3b:02.1', pfName: 'ens1f0', vfIndex: 1, vendor: '8086', device: '154c', numaNode: 0 });
  f.vfns.put(more);
  c.agentChanged(more);
  assert.deepEqual(added, ['app/nofit']);
  await c.queue.idle();
  assert.ok(f.actions.some((a) => a.startsWith('patch app/nofit') && a.includes('"nodeName":"n1"')), f.actions.join('\n'));
  // a Node update that placement does not read (e.g. its status heartbeat) queues nothing; a cordon would
  added.length = 0;
  const n = node('n1');
  c.nodeChanged(n);
  c.nodeChanged({ ...n, status: { ...n.status, conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: new Date() }] } });
  assert.deepEqual(added, []);
});

test('the placement view is kept from pass to pass while nothing changes room, and built again when something does', (t) => {
  const f = new Fixture(t, { relays: [relay('a', { nodeName: 'n1' }), relay('b')], nodes: [node('n1'), node('n2')], vfns: [agent('n1', ['0000:3b:02.0']), agent('n2', ['0000:3c:02.0'])] });
  const reservations = new Map<string, Reservation>();
  const view = new PlacementView(f.relays, f.vfns, f.nodes, f.liveness, reservations, 60_000);
  const first = view.current();
  assert.equal(view.current(), first, 'nothing changed: the same view');
  // a pick of the view (b to n2): its patch landing, an agent's status write, a new relay without a node
  assert.ok(first.snapshot.place({ key: 'app/b', vf: { selector: { pfName: 'ens1f0' } } }, first.nodes).ok);
  reservations.set('app/b', { node: 'n2', vfs: ['0000:3c:02.0'], preRv: '1' });
  view.relayChanged('app/b', 'n2');
  view.relayChanged('app/a', 'n1');
  view.relayChanged('app/c', undefined);
  assert.equal(view.current(), first, 'what the view knows already: the same view');
  // a relay moved (or put on a node by hand): built again, from the caches
  view.relayChanged('app/a', 'n2');
  const second = view.current();
  assert.notEqual(second, first);
  view.invalidate();
  assert.notEqual(view.current(), second, 'invalidate: built again');
  // and at least every maxAgeMs
  const young = new PlacementView(f.relays, f.vfns, f.nodes, f.liveness, reservations, 0);
  const v = young.current();
  const until = performance.now() + 2;
  while (performance.now() < until);
  assert.notEqual(young.current(), v);
});

test('a VF freed by a deleted relay goes to the relay that did not fit (the kept view is built again)', async (t) => {
  const f = new Fixture(t, { relays: [relay('a')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  const c = f.relayController({ retryPendingMs: 60_000 });
  await run(c);
  assert.ok(f.actions.some((x) => x.startsWith('patch app/a') && x.includes('"nodeName":"n1"')));
  // b comes in a later pass: the kept view counts a's VF, so b does not fit
  f.relays.put(relay('b'));
  c.relayChanged(f.relays.get('b', 'app')!);
  await c.queue.idle();
  assert.equal(f.counters.failedScheduling, 1);
  // a goes: its VF is free, and b gets it
  const a = f.relays.get('a', 'app')!;
  f.relays.items.delete('app/a');
  c.relayDeleted(a);
  await c.queue.idle();
  assert.ok(f.actions.some((x) => x.startsWith('patch app/b') && x.includes('"nodeName":"n1"') && x.includes('0000:3b:02.0')), f.actions.join('\n'));
});

test('two relays, one free VF: the reservation keeps the second from taking the same VF', async (t) => {
  const f = new Fixture(t, { relays: [relay('a'), relay('b')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  await run(f.relayController({ retryPendingMs: 60_000 }));
  assert.equal(f.actions.filter((a) => a.startsWith('patch')).length, 1, f.actions.join('\n'));
  assert.equal(f.events.filter((e) => e.includes('FailedScheduling')).length, 1);
});

test('a relay on a deleted node moves when it asked to (OnNodeLoss) and stays with a NodeLost event when not', async (t) => {
  const f = new Fixture(t, {
    relays: [relay('mover', { nodeName: 'gone', reschedule: 'OnNodeLoss' }), relay('stayer', { nodeName: 'gone' })],
    nodes: [node('n1')],
    vfns: [agent('n1', [])],
  });
  await run(f.relayController({ retryPendingMs: 60_000 }));
  assert.ok(f.actions.includes(`patch app/mover ${JSON.stringify({ metadata: { annotations: { [SCHEDULED_VF_ANNOTATION]: null } }, spec: { nodeName: null } })}`), f.actions.join('\n'));
  assert.ok(f.events.some((e) => e.startsWith('Normal Rescheduled app/mover')), f.events.join('\n'));
  assert.ok(f.events.some((e) => /^Warning NodeLost app\/stayer: node gone does not exist; the relay stays assigned/.test(e)), f.events.join('\n'));
  assert.ok(f.actions.includes('status app/stayer Failed (guarded)'), f.actions.join('\n'));
  assert.deepEqual([f.counters.rescheduled, f.counters.nodeLost], [1, 1]);
});

test('a deleted relay no agent has reported loses the finalizer the operator gave it; a reported one keeps it for its agent', async (t) => {
  const f = new Fixture(t, {
    relays: [
      relay('new', { nodeName: 'n1' }, { deletionTimestamp: new Date(), finalizers: [FINALIZER] }),
      { ...relay('running', { nodeName: 'n1' }, { deletionTimestamp: new Date(), finalizers: [FINALIZER] }), status: { phase: 'Ready', nodeName: 'n1' } },
    ],
    nodes: [node('n1')],
    vfns: [agent('n1', [])],
  });
  await run(f.relayController());
  assert.deepEqual(f.actions, [`patch app/new ${JSON.stringify({ metadata: { finalizers: [] } })}`]);
  assert.match(f.events[0]!, /^Normal FinalizerRemoved app\/new: no agent has reported the relay on node n1/);
});

test('status updates of a placed relay are not queued: the operator has nothing to do for them', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1', { nodeName: 'n1' })], nodes: [node('n1')], vfns: [agent('n1', [])] });
  const c = f.relayController();
  await run(c);
  const before = c.queue.length;
  c.relayChanged({ ...f.relays.get('vm1', 'app')!, status: { phase: 'Ready', nodeName: 'n1' } });
  assert.equal(c.queue.length, before);
  c.relayChanged(relay('pending'));
  assert.equal(c.queue.length, before + 1, 'one without a node is');
});

test('a deleted relay whose node is gone loses its finalizer (no agent will clean up)', async (t) => {
  const f = new Fixture(t, {
    relays: [relay('vm1', { nodeName: 'gone' }, { deletionTimestamp: new Date(), finalizers: [FINALIZER, 'other/keep'] })],
    nodes: [node('n1')],
  });
  await run(f.relayController());
  assert.deepEqual(f.actions, [`patch app/vm1 ${JSON.stringify({ metadata: { finalizers: ['other/keep'] } })}`]);
  assert.match(f.events[0]!, /^Normal FinalizerRemoved app\/vm1: node gone does not exist/);
});

test('a status conflict after scheduling is the agent writing first: not retried, not an error', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  f.conflictOnStatus = true;
  await run(f.relayController());
  assert.deepEqual(f.actions.map((a) => a.split(' ')[0]), ['patch']);
  assert.equal(f.counters.scheduled, 1);
});

test('the VirtioForwarderNode of a node seen deleted goes at once; an orphan waits out the grace period', async (t) => {
  const f = new Fixture(t, { vfns: [agent('seen', []), agent('young', [], { creationTimestamp: new Date() }), agent('alive', [])], nodes: [node('alive')] });
  const c = f.cleanupController(60_000);
  c.nodeDeleted('seen');
  await run(c);
  assert.deepEqual(f.actions, ['delete vfn seen uid=vfn-seen']);
  assert.equal(f.counters.nodesCleanedUp, 1);
});

/** A node Lease as the agent writes it, renewed at renewTime. */
const lease = (name: string, renewTime: string): V1Lease => ({ metadata: { name, namespace: 'vio4wd-system' }, spec: { holderIdentity: name, leaseDurationSeconds: 4, renewTime: renewTime as unknown as Date } });

test('a node whose agent stopped renewing its Lease gets no new relay until it renews again', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  // renewed once, 10 s ago (this process's clock), with 5 s allowed
  assert.equal(f.liveness.observe(lease('n1', '2026-01-01T00:00:00.000000Z'), Date.now() - 10_000), true);
  assert.equal(f.liveness.stale('n1'), true);
  await run(f.relayController({ retryPendingMs: 60_000 }));
  assert.deepEqual(f.actions, ['status app/vm1 Pending (guarded)']);
  assert.match(f.events[0]!, /^Warning FailedScheduling app\/vm1: .*1 agent not reporting/);
  // the same renewTime again (a relist) is no renewal; a new one is, and says "room again"
  assert.equal(f.liveness.observe(lease('n1', '2026-01-01T00:00:00.000000Z')), false);
  assert.equal(f.liveness.stale('n1'), true);
  assert.equal(f.liveness.observe(lease('n1', '2026-01-01T00:00:10.000000Z')), true);
  assert.equal(f.liveness.stale('n1'), false);
  assert.equal(f.liveness.observe(lease('n1', '2026-01-01T00:00:20.000000Z')), false, 'a renewal of a live agent changes nothing');
});

test('a node without a Lease (an agent before Leases) is not judged', async (t) => {
  const f = new Fixture(t, { relays: [relay('vm1')], nodes: [node('n1')], vfns: [agent('n1', ['0000:3b:02.0'])] });
  await run(f.relayController());
  assert.match(f.actions[0]!, /"nodeName":"n1"/);
  const c = f.cleanupController();
  await run(c);
  assert.deepEqual(f.actions.filter((a) => a.startsWith('status vfn')), []);
});

test('the cleanup controller marks a silent agent\'s conditions Unknown once, and waits for a live one\'s deadline', async (t) => {
  const conditions: NodeCondition[] = [
    { type: 'EngineRunning', status: 'True', reason: 'EngineStarted', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
    { type: 'Ready', status: 'True', reason: 'AgentReady', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
  ];
  const silent = agent('silent', [], { resourceVersion: '7' });
  silent.status!.conditions = conditions;
  const live = agent('live', [], { resourceVersion: '8' });
  live.status!.conditions = conditions;
  const f = new Fixture(t, { nodes: [node('silent'), node('live')], vfns: [silent, live] });
  f.liveness.observe(lease('silent', '2026-01-01T00:00:00.000000Z'), Date.now() - 6000);
  // 2.5 s left: room for a loaded machine before the first pass is done
  f.liveness.observe(lease('live', '2026-01-01T00:00:00.000000Z'), Date.now() - 2500);
  const c = f.cleanupController();
  await run(c);
  assert.deepEqual(f.actions, ['status vfn silent EngineRunning=Unknown/AgentNotReporting,Ready=Unknown/AgentNotReporting (guarded)']);
  assert.equal(f.counters.agentsNotReporting, 1);
  const marked = f.vfns.get('silent')!.status!.conditions!;
  assert.match(marked[1]!.message!, /stopped renewing its Lease silent \(last renewed 2026-01-01T00:00:00\.000Z\)/);
  assert.notEqual(marked[1]!.lastTransitionTime, '2026-01-01T00:00:00Z', 'a new transition');
  // the agent writes its status again while its Lease stays silent: it is not fought over
  f.vfns.put(silent);
  c.agentChanged('silent');
  await c.queue.idle();
  assert.equal(f.actions.length, 1);
  // the live one's deadline comes (its requeue, < 2.5 s), unrenewed: marked too
  await new Promise((r) => setTimeout(r, Math.max(0, f.liveness.remainingMs('live')!) + 300));
  for (let i = 0; i < 50 && f.actions.length < 2; i++) await new Promise((r) => setTimeout(r, 100)); // a loaded machine
  await c.queue.idle();
  assert.deepEqual(f.actions.slice(1), ['status vfn live EngineRunning=Unknown/AgentNotReporting,Ready=Unknown/AgentNotReporting (guarded)']);
});

test('pool policy: a relay goes only where a policy defines its pool for its namespace, and takes only a VF of the pool', async (t) => {
  // node-a has fewer relays, but only node-b carries the label the pool's nodeSelector asks for
  const vfnA = agent('node-a', ['0000:01:00.1']);
  const vfnB = agent('node-b', ['0000:02:00.1', '0000:02:00.2']);
  vfnB.status!.relays = { total: 3 };
  vfnB.status!.vfs![1]!.pfName = 'ens2f0';
  const f = new Fixture(t, {
    relays: [relay('r1'), relay('other-ns', {}, { namespace: 'elsewhere' }), relay('big', { queues: 8 }), relay('ens2', { vf: { selector: { pfName: 'ens2f0' } } })],
    vfns: [vfnA, vfnB],
    nodes: [node('node-a'), node('node-b', { 'vio4wd.io/sriov': 'true' })],
    policies: [policy('pool', { namespaces: ['app'], nodeSelector: { matchLabels: { 'vio4wd.io/sriov': 'true' } }, vfs: { pfNames: ['ens1f0'] }, limits: { maxQueues: 4 } })],
  });
  await run(f.relayController());
  assert.deepEqual(
    f.actions.filter((a) => a.startsWith('patch')),
    [`patch app/r1 ${JSON.stringify({ metadata: { annotations: { [SCHEDULED_VF_ANNOTATION]: '0000:02:00.1' }, finalizers: [FINALIZER] }, spec: { nodeName: 'node-b' } })}`],
    'r1 on the node where its pool is defined, the other relays nowhere',
  );
  const failed = (k: string): string => f.events.find((e) => e.startsWith(`Warning FailedScheduling ${k}:`)) ?? '';
  assert.match(failed('elsewhere/other-ns'), /2 denied by pool policy \(spec.resourceName\).*node node-a: spec.resourceName: no VirtioForwarderPolicy defines pool vio4wd.io\/vhostuser/);
  assert.match(failed('app/big'), /denied by pool policy \(spec.queues\).*spec.queues: 8 exceeds the pool's limit of 4/);
  // ens2f0's VF on node-b is free but not in the pool
  assert.match(failed('app/ens2'), /no node has a free VF matching selector pfName=ens2f0 \(0\/2 nodes available: 1 denied by pool policy \(spec.resourceName\), 1 no matching VF\)/);
});
