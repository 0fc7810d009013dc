// The node reconciler against an in-memory fixture, as sample-controller's controller_test.go
// tests its controller: a cache filled with VirtioRelays and VirtioForwarderPolicies in, the
// apiserver actions (metadata and status patches, events, node status) and the relays the node
// runs out. The pool policy is the real one (src/policy), the relays run in a real RelayManager
// over an in-memory engine. The same reconciler against a real kube-apiserver:
// test/integration/node-reconciler.kube.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeReconciler } from '../../src/agent/node/reconciler.js';
import type { NodeKube, RelayCache, RelayHandlers } from '../../src/agent/node/kube.js';
import { FINALIZER, objectKey, type VirtioForwarderPolicy, type VirtioRelay } from '../../src/kube/index.js';
import { decide } from '../../src/policy/index.js';
import { RelayManager } from '../../src/relay/index.js';
import { silentLogger } from '../../src/util/log.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { sleep, until } from '../helpers/wait.js';

const NODE = 'node-a';

/** The fixture: the node's VirtioRelays and the policies, a NodeKube that records every action
 *  and applies metadata patches to the cache, and the node's RelayManager. */
class Fixture implements NodeKube {
  readonly actions: string[] = [];
  readonly events: string[] = [];
  readonly objects = new Map<string, VirtioRelay>();
  readonly engine = new MemEngine();
  readonly relays: RelayManager;
  readonly dir: string;
  private handlers: RelayHandlers | undefined;
  private rv = 100;

  constructor(
    t: TestContext,
    objs: VirtioRelay[],
    readonly policies: VirtioForwarderPolicy[],
  ) {
    for (const o of objs) this.objects.set(objectKey(o), o);
    this.dir = mkdtempSync(join(tmpdir(), 'vio4wd-noderec-'));
    this.relays = new RelayManager({ engine: this.engine, logger: silentLogger(), defaults: { socketDir: this.dir }, retry: { initialMs: 20, maxMs: 100 } });
    t.after(async () => {
      await this.relays.close();
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  async reconciler(t: TestContext, o: { transientHoldMs?: number; settle?: boolean } = {}): Promise<NodeReconciler> {
    const r = new NodeReconciler({
      kube: this,
      nodeName: NODE,
      relays: this.relays,
      logger: silentLogger(),
      socketDir: this.dir,
      allowVirtualDevices: ['net_tap'],
      nodeStatus: async () => ({ vfs: [], hugepages: [], workerCpus: [], engine: { up: true } }),
      checkpointPath: null,
      ...(o.transientHoldMs !== undefined ? { transientHoldMs: o.transientHoldMs } : {}),
    });
    t.after(() => r.stop());
    await r.start();
    if (o.settle !== false) await this.settle(r);
    return r;
  }

  /** Until the reconciler and the relays have nothing left to do. */
  async settle(r: NodeReconciler): Promise<void> {
    for (let i = 0; i < 5; i++) {
      await r.idle();
      await this.relays.settled();
    }
    await r.idle();
  }

  /** What the apiserver's watch would tell: the object changed (or is gone). */
  change(obj: VirtioRelay | undefined, key: string): void {
    if (obj) {
      this.objects.set(key, obj);
      this.handlers?.onUpdate(obj);
    } else {
      const old = this.objects.get(key)!;
      this.objects.delete(key);
      this.handlers?.onDelete(old);
    }
  }

  relayCache(handlers: RelayHandlers): RelayCache {
    this.handlers = handlers;
    const objects = this.objects;
    return {
      get: (name, namespace) => objects.get(`${namespace ?? ''}/${name}`),
      list: () => [...objects.values()],
      hasSynced: true,
      start: async () => {
        for (const o of objects.values()) handlers.onAdd(o);
      },
      synced: async () => undefined,
      stop: async () => undefined,
    };
  }

  async patchRelay(obj: VirtioRelay, body: { metadata?: Record<string, unknown> }): Promise<VirtioRelay> {
    this.actions.push(`patch ${objectKey(obj)} finalizers=${JSON.stringify(body.metadata?.finalizers)}`);
    const next = structuredClone(this.objects.get(objectKey(obj))!);
    next.metadata = { ...next.metadata, finalizers: body.metadata?.finalizers as string[], resourceVersion: String(++this.rv) };
    this.objects.set(objectKey(next), next);
    return next;
  }

  async patchRelayStatus(obj: VirtioRelay, status: { phase?: string; conditions?: { type: string; reason?: string }[] }): Promise<void> {
    const ready = status.conditions?.find((c) => c.type === 'Ready')?.reason;
    this.actions.push(`status ${objectKey(obj)} ${status.phase}${ready ? ` (${ready})` : ''}`);
  }

  async event(obj: VirtioRelay, type: string, reason: string): Promise<void> {
    this.events.push(`${type} ${reason} ${objectKey(obj)}`);
  }

  /** The node's Lease and VirtioForwarderNode: here, how often the reconciler said the node's
   *  status changed (publisher.ts's own tests and the .kube test cover what it writes). */
  nodeChanges = 0;
  nodePublisher() {
    return { start: async () => undefined, stop: async () => undefined, changed: () => void this.nodeChanges++, hold: () => undefined, writes: 0 };
  }

  policy() {
    return { decide: (namespace: string, spec: VirtioRelay['spec']) => decide({ namespace, spec }, this.policies, {}, { virtualDevices: ['net_tap'] }), start: async () => undefined, stop: async () => undefined };
  }

  /** The actions on one object, in order. */
  on(key: string): string[] {
    return this.actions.filter((a) => a.split(' ')[1] === key);
  }
}

const pool: VirtioForwarderPolicy = { metadata: { name: 'taps' }, spec: { resourceName: 'vio4wd.io/taps', namespaces: ['app'], vfs: { virtualDevices: ['net_tap'] } } };

const relay = (name: string, meta: Partial<VirtioRelay['metadata']> = {}): VirtioRelay => ({
  metadata: { name, namespace: 'app', uid: `uid-${name}`, resourceVersion: '1', generation: 1, ...meta },
  spec: { nodeName: NODE, resourceName: 'vio4wd.io/taps', vf: { devargs: `net_tap_${name},iface=t${name}` } },
});

test('an allowed VirtioRelay gets the finalizer first, then its relay, then one status write: Ready, and no Event', async (t) => {
  const f = new Fixture(t, [relay('r1')], [pool]);
  await f.reconciler(t);
  const acts = f.on('app/r1');
  assert.equal(acts[0], `patch app/r1 finalizers=["${FINALIZER}"]`, 'the finalizer guards the relay before it exists');
  // Pending and Configuring pass within milliseconds: not written, the Ready write says it all
  assert.deepEqual(acts.slice(1), ['status app/r1 Ready (RelayReady)']);
  assert.deepEqual(f.events, [], 'Ready is in the status (condition Ready, reason RelayReady); Events are for failures');
  assert.equal(f.relays.get('app.r1')?.phase, 'Ready');
  assert.equal(f.relays.get('app.r1')?.socketPath, join(f.dir, 'app.r1', 'vhost-user.sock'), 'its socket in a directory of its own');
  assert.ok(f.nodeChanges > 0, 'the node publisher hears of the new relay');
});

test('a VirtioRelay no policy allows is Failed with PolicyDenied: no finalizer, no relay, one event', async (t) => {
  const f = new Fixture(t, [relay('r2', {}), { ...relay('r3'), metadata: { ...relay('r3').metadata, namespace: 'other' } }], [pool]);
  const r = await f.reconciler(t);
  assert.deepEqual(f.on('other/r3'), ['status other/r3 Failed (PolicyDenied)']);
  assert.deepEqual(f.events.filter((e) => e.includes('other/r3')), ['Warning PolicyDenied other/r3']);
  assert.equal(f.relays.get('other.r3'), undefined);
  // the same denial again writes nothing new
  f.change(f.objects.get('other/r3'), 'other/r3');
  await f.settle(r);
  assert.equal(f.events.filter((e) => e.includes('other/r3')).length, 1, 'the event is not repeated');
});

test('a deleted VirtioRelay loses its relay and socket directory, then its finalizer, with a RelayRemoved event', async (t) => {
  const f = new Fixture(t, [relay('r4')], [pool]);
  const r = await f.reconciler(t);
  assert.equal(f.relays.get('app.r4')?.phase, 'Ready');
  f.actions.length = 0;
  const cur = f.objects.get('app/r4')!;
  f.change({ ...cur, metadata: { ...cur.metadata, deletionTimestamp: new Date() } }, 'app/r4');
  await f.settle(r);
  assert.equal(f.relays.get('app.r4'), undefined);
  assert.equal(existsSync(join(f.dir, 'app.r4')), false, 'its socket directory is deleted');
  assert.deepEqual(f.on('app/r4'), ['patch app/r4 finalizers=[]']);
  assert.equal(f.events.at(-1), 'Normal RelayRemoved app/r4');
});

test('a VirtioRelay that leaves this node (moved or gone) takes its relay along, with no write to it', async (t) => {
  const f = new Fixture(t, [relay('r5'), relay('r6')], [pool]);
  const r = await f.reconciler(t);
  f.actions.length = 0;
  f.change(undefined, 'app/r5');
  await f.settle(r);
  assert.equal(f.relays.get('app.r5'), undefined);
  assert.equal(f.relays.get('app.r6')?.phase, 'Ready', 'the other relay is untouched');
  assert.deepEqual(f.on('app/r5'), []);
  assert.deepEqual(f.on('app/r6'), []);
});

test('a VirtioRelay the operator placed with the finalizer costs one write: its Ready status', async (t) => {
  const f = new Fixture(t, [relay('r7', { finalizers: [FINALIZER] })], [pool]);
  await f.reconciler(t);
  assert.deepEqual(f.on('app/r7'), ['status app/r7 Ready (RelayReady)']);
  assert.equal(f.relays.get('app.r7')?.phase, 'Ready');
});

test('a relay slow to start shows Configuring after transientHoldMs, then Ready', async (t) => {
  const f = new Fixture(t, [relay('r8', { finalizers: [FINALIZER] })], [pool]);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const add = f.engine.addRelay.bind(f.engine);
  f.engine.addRelay = async (cfg) => {
    await gate;
    return add(cfg);
  };
  t.after(() => open());
  await f.reconciler(t, { transientHoldMs: 100, settle: false });
  await sleep(30);
  assert.deepEqual(f.on('app/r8'), [], 'held back at first');
  await until('the Configuring status', () => f.on('app/r8').some((a) => a.startsWith('status app/r8 Configuring')), { timeoutMs: 5000, detail: () => f.actions.join('; ') });
  open();
  await until('the Ready status', () => f.on('app/r8').at(-1) === 'status app/r8 Ready (RelayReady)', 5000);
  assert.deepEqual(f.events, []);
});

test('paused for a handover, the reconciler neither applies, removes nor writes; resumed, it catches up', async (t) => {
  const f = new Fixture(t, [relay('h1'), relay('h2')], [pool]);
  const r = await f.reconciler(t);
  assert.deepEqual(r.entries().map((e) => e.key).sort(), ['app/h1', 'app/h2'], 'the handover hands the checkpoint entries over');
  r.pause();
  // the relay leaves the manager (handed to another agent), its VirtioRelay is deleted, a new one arrives
  await f.relays.remove('app.h1', { handover: true });
  assert.equal(existsSync(join(f.dir, 'app.h1')), true, 'a relay handed over keeps its socket directory');
  f.actions.length = 0;
  const cur = f.objects.get('app/h2')!;
  f.change({ ...cur, metadata: { ...cur.metadata, deletionTimestamp: new Date() } }, 'app/h2');
  f.change(relay('h3'), 'app/h3');
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(f.actions, [], 'nothing is written while paused');
  assert.equal(f.relays.get('app.h1'), undefined, 'the handed-over relay is not brought back');
  assert.equal(f.relays.get('app.h2')?.phase, 'Ready', 'the deleted one is not removed yet');
  assert.equal(f.relays.get('app.h3'), undefined);
  r.resume();
  await new Promise((res) => setTimeout(res, 600));
  await f.settle(r);
  assert.equal(f.relays.get('app.h1')?.phase, 'Ready', 'resumed (the handover was abandoned), it runs its relays again');
  assert.equal(f.relays.get('app.h2'), undefined);
  assert.equal(f.relays.get('app.h3')?.phase, 'Ready');
});

test('a VirtioRelay whose relay name is taken by a relay of another origin (a DRA claim\'s) is Failed and takes nothing over', async (t) => {
  // namespace "dra", VirtioRelay "vf-0000-00-0a-0": relay name dra.vf-0000-00-0a-0, the name of
  // the relay the DRA driver made for a free VF's claim (another tenant's VM is on its socket)
  const draPool: VirtioForwarderPolicy = { metadata: { name: 'dra-ns' }, spec: { ...pool.spec, namespaces: ['dra'] } };
  const obj: VirtioRelay = { metadata: { ...relay('vf-0000-00-0a-0').metadata, namespace: 'dra' }, spec: { ...relay('x').spec, vf: { devargs: 'net_tap_x,iface=tx' } } };
  const f = new Fixture(t, [obj], [draPool]);
  f.relays.apply({ name: 'dra.vf-0000-00-0a-0', origin: 'dra', ident: 'dra:vms/claim1', vf: { devargs: 'net_tap_claim,iface=tclaim' }, vhostUser: { mode: 'server' } });
  await f.relays.settled();
  const r = await f.reconciler(t);
  assert.deepEqual(f.on('dra/vf-0000-00-0a-0').filter((a) => a.startsWith('status')), ['status dra/vf-0000-00-0a-0 Failed (InvalidSpec)']);
  const kept = f.relays.get('dra.vf-0000-00-0a-0');
  assert.equal(kept?.origin, 'dra', 'the claim\'s relay keeps its origin');
  assert.equal(f.relays.spec('dra.vf-0000-00-0a-0')?.vf.devargs, 'net_tap_claim,iface=tclaim', 'and its VF');
  assert.deepEqual(f.events, ['Warning InvalidSpec dra/vf-0000-00-0a-0']);
  // the VirtioRelay's deletion leaves the claim's relay alone
  f.change(undefined, 'dra/vf-0000-00-0a-0');
  await f.settle(r);
  assert.equal(f.relays.get('dra.vf-0000-00-0a-0')?.origin, 'dra');
});

test('a VirtioRelay asking for the MAC another namespace\'s relay has is Failed with PolicyDenied and programs nothing; the same namespace may', async (t) => {
  const both: VirtioForwarderPolicy = { ...pool, spec: { ...pool.spec, namespaces: ['app', 'other'] } };
  const withMac = (name: string, namespace: string, mac: string): VirtioRelay => {
    const r = relay(name, { namespace, uid: `uid-${namespace}-${name}` });
    return { ...r, spec: { ...r.spec, mac } };
  };
  const f = new Fixture(t, [withMac('vm', 'app', '52:54:00:aa:bb:01')], [both]);
  const r = await f.reconciler(t);
  assert.equal(f.relays.get('app.vm')?.phase, 'Ready');
  // another namespace's relay with that MAC (upper case too): denied, no relay, no VF
  f.change(withMac('thief', 'other', '52:54:00:AA:BB:01'), 'other/thief');
  await f.settle(r);
  assert.deepEqual(f.on('other/thief'), ['status other/thief Failed (PolicyDenied)']);
  assert.equal(f.relays.get('other.thief'), undefined);
  assert.equal(f.engine.relays.size, 1, 'nothing reached the engine');
  // the victim keeps running
  assert.equal(f.relays.get('app.vm')?.phase, 'Ready');
  // a second relay of the same namespace with that MAC (a migration's target) runs
  f.change(withMac('vm2', 'app', '52:54:00:aa:bb:01'), 'app/vm2');
  await f.settle(r);
  assert.equal(f.relays.get('app.vm2')?.phase, 'Ready');
});
