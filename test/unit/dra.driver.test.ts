// DraDriver and ResourceSlicePublisher as pure logic, with small in-memory stand-ins for the
// apiserver, the relays and the attachment service (the real ones: test/integration/dra.kube.test.ts):
// a bad config touches nothing, prepare and unprepare are idempotent and checkpointed, the
// publisher writes a new pool generation only when something changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DraDriver, type PoolLimits, type ResourceClaim } from '../../src/dra/driver.js';
import { ResourceSlicePublisher } from '../../src/dra/publisher.js';
import { DeviceHealthReporter } from '../../src/dra/health.js';
import type { NodeWatchResourcesResponse } from '../../src/dra/proto.js';
import type { SliceApi, StoredSlice } from '../../src/dra/kube.js';
import type { FreeVf, ResourceSliceBody } from '../../src/dra/devices.js';
import type { RelayStatus, RelayView } from '../../src/relay/types.js';
import type { AttachReply, AttachRequest } from '../../src/cni/protocol.js';
import { silentLogger } from '../../src/util/log.js';
import { vfLimitsOf, vfSettingsDenied } from '../../src/policy/vf-settings.js';

class Relays extends EventEmitter implements RelayView {
  constructor(public items: RelayStatus[]) {
    super();
  }
  list(): RelayStatus[] {
    return this.items;
  }
  get(name: string): RelayStatus | undefined {
    return this.items.find((r) => r.name === name);
  }
}

function relay(name: string, over: Partial<RelayStatus> = {}): RelayStatus {
  return { name, id: 1, origin: 'config', phase: 'Ready', conditions: [], socketPath: `/run/s/${name}/vf.sock`, mode: 'server', queues: 2, numaNode: 0, resourceName: 'vio4wd.io/p', healthy: true, ...over };
}

const cfg = (p: Record<string, unknown>) => ({ source: 'FromClaim', opaque: { driver: 'vio4wd.io', parameters: { apiVersion: 'vio4wd.io/v1alpha1', kind: 'RelayConfig', ...p } } });

function setup(claim: ResourceClaim, limits: PoolLimits = { policy: 'pol', maxQueues: 2 }) {
  const dir = mkdtempSync(join(tmpdir(), 'dra-unit-'));
  const calls: AttachRequest[] = [];
  const reports: unknown[] = [];
  const relays = new Relays([relay('r1'), relay('r2')]);
  const mk = () =>
    new DraDriver({
      relays,
      devices: { relayOf: (pool, device) => (pool === 'n/p' ? device : undefined) },
      claims: { get: async () => claim, reportStatus: async (_ns, _n, d) => void reports.push(d) },
      attach: async (req): Promise<AttachReply> => {
        calls.push(req);
        return req.op === 'add' ? { ok: true, attachment: { deviceId: req.deviceId!, containerId: req.containerId!, ifName: req.ifName!, network: '', mac: req.mac ?? '02:00:00:00:00:99', vlan: 0, spoofchk: true, socketPath: '', since: '' } } : { ok: true, removed: 1 };
      },
      poolLimits: () => limits,
      cdiDir: join(dir, 'cdi'),
      metadataDir: join(dir, 'md'),
      statePath: join(dir, 'state', 'dra.json'),
      logger: silentLogger(),
    });
  return { dir, calls, reports, mk, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const ref = { namespace: 'vms', name: 'c1', uid: 'u1' };
function claimWith(config: object[]): ResourceClaim {
  return {
    metadata: { name: 'c1', namespace: 'vms', uid: 'u1' },
    status: { allocation: { devices: { results: [{ request: 'nic', driver: 'vio4wd.io', pool: 'n/p', device: 'r1' }, { request: 'gpu', driver: 'gpu.example.com', pool: 'x', device: 'g' }], config: config as never } } },
  };
}

test('prepare: a bad configuration programs nothing and is reported on the device; the error names the field', async () => {
  const s = setup(claimWith([cfg({ queues: 3 })]));
  try {
    const d = s.mk();
    await d.start();
    const r = await d.prepare([ref]);
    assert.match(r.u1!.error, /queues: 3 exceeds device r1's maxQueues 2; ask for at most 2, or select a device with device\.attributes\["vio4wd\.io"\]\.maxQueues >= 3/);
    assert.deepEqual(s.calls, [], 'no VF was touched');
    assert.deepEqual(s.reports, [[{ pool: 'n/p', device: 'r1', ready: false, reason: 'InvalidConfig', message: r.u1!.error }]]);
    assert.equal(existsSync(join(s.dir, 'cdi')), false);
  } finally {
    s.cleanup();
  }
});

test('prepare: a claim from a namespace the pool policy does not list is refused, and nothing is programmed', async () => {
  const s = setup(claimWith([cfg({ mac: '52:54:00:00:00:01' })]), { policy: 'pol', namespaces: ['tenant-a'] });
  try {
    const d = s.mk();
    const r = await d.prepare([ref]);
    assert.match(r.u1!.error, /namespace vms may not use pool vio4wd\.io\/p \(VirtioForwarderPolicy pol spec\.namespaces\)/);
    assert.deepEqual(s.calls, []);
    assert.equal((s.reports[0] as { reason: string }[])[0]!.reason, 'PolicyDenied');
  } finally {
    s.cleanup();
  }
});

test('prepare and unprepare: idempotent, checkpointed across a restart, only this driver\'s devices', async () => {
  const s = setup(claimWith([cfg({ mac: '52:54:00:00:00:01', queues: 1 })]));
  try {
    const d = s.mk();
    await d.start();
    const r = await d.prepare([ref]);
    assert.equal(r.u1!.error, '');
    assert.deepEqual(r.u1!.devices, [{ request_names: ['nic'], pool_name: 'n/p', device_name: 'r1', cdi_device_ids: ['vio4wd.io/relay=u1-r1'] }]);
    assert.deepEqual(s.calls.map((c) => [c.op, c.deviceId, c.containerId, c.ifName, c.mac]), [['add', 'r1', 'dra:u1', 'nic/r1', '52:54:00:00:00:01']]);
    assert.deepEqual(await d.prepare([ref]), r, 'a repeated prepare answers the same');
    const cp = JSON.parse(readFileSync(join(s.dir, 'state', 'dra.json'), 'utf8')) as { claims: Record<string, unknown> };
    assert.deepEqual(Object.keys(cp.claims), ['u1']);
    assert.ok(existsSync(join(s.dir, 'cdi', 'vio4wd.io-relay_u1.json')));
    // a new agent reads the checkpoint and can unprepare what the old one prepared
    const d2 = s.mk();
    await d2.start();
    assert.deepEqual(d2.preparedClaims(), ['u1']);
    s.calls.length = 0;
    assert.deepEqual(await d2.unprepare([ref]), { u1: { error: '' } });
    assert.deepEqual(s.calls.map((c) => [c.op, c.containerId, c.ifName]), [['del', 'dra:u1', 'nic/r1']]);
    assert.equal(existsSync(join(s.dir, 'cdi', 'vio4wd.io-relay_u1.json')), false);
    assert.equal(existsSync(join(s.dir, 'md', 'u1')), false);
    s.calls.length = 0;
    assert.deepEqual(await d2.unprepare([ref]), { u1: { error: '' } }, 'unprepare of an unknown claim is fine');
    assert.deepEqual(s.calls, []);
  } finally {
    s.cleanup();
  }
});

test('prepare: a claim recreated under the same name (another UID) or a device no longer published is refused', async () => {
  const s = setup(claimWith([]));
  try {
    const d = s.mk();
    assert.match((await d.prepare([{ ...ref, uid: 'old' }])).old!.error, /has UID u1, kubelet asked for old: it was deleted and recreated/);
    const s2 = setup({ ...claimWith([]), status: { allocation: { devices: { results: [{ request: 'nic', driver: 'vio4wd.io', pool: 'other/p', device: 'r9' }] } } } });
    try {
      assert.match((await s2.mk().prepare([ref])).u1!.error, /device r9 of pool other\/p is not published by this node any more/);
    } finally {
      s2.cleanup();
    }
  } finally {
    s.cleanup();
  }
});

class Slices implements SliceApi {
  store = new Map<string, StoredSlice>();
  writes = 0;
  rv = 0;
  async list(): Promise<StoredSlice[]> {
    // the apiserver returns maps with its own key order
    return [...this.store.values()].map((s) => JSON.parse(JSON.stringify(s, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v))) as StoredSlice);
  }
  async create(b: ResourceSliceBody): Promise<void> {
    if (this.store.has(b.metadata.name)) throw new Error('exists');
    this.writes++;
    this.store.set(b.metadata.name, { ...b, metadata: { ...b.metadata, resourceVersion: String(++this.rv) } });
  }
  async replace(b: ResourceSliceBody, resourceVersion: string): Promise<void> {
    assert.equal(this.store.get(b.metadata.name)?.metadata.resourceVersion, resourceVersion);
    this.writes++;
    this.store.set(b.metadata.name, { ...b, metadata: { ...b.metadata, resourceVersion: String(++this.rv) } });
  }
  async delete(name: string): Promise<void> {
    this.writes++;
    this.store.delete(name);
  }
  async nodeUid(): Promise<string | undefined> {
    return 'node-uid';
  }
}

test('publisher: writes only what changed, as a new pool generation; a deleted slice comes back; a denied relay is left out', async () => {
  const api = new Slices();
  const relays = new Relays([relay('r1'), relay('r2'), relay('r3', { resourceName: 'vio4wd.io/q' }), relay('r4', { phase: 'Failed', healthy: false })]);
  const pub = new ResourceSlicePublisher({ nodeName: 'n', relays, api, hardware: async () => ({}), admit: (s) => (s.name === 'r2' ? 'not in the pool' : true), logger: silentLogger(), resyncMs: 3_600_000 });
  await pub.start();
  try {
    const gen = () => [...api.store.values()].map((s) => `${s.spec.pool.name}@${s.spec.pool.generation}:${s.spec.devices.map((d) => d.name).join(',')}`).sort();
    assert.deepEqual(gen(), ['n/p@1:r1', 'n/q@1:r3']);
    assert.equal(pub.relayOf('n/p', 'r1'), 'r1');
    assert.equal(pub.relayOf('n/p', 'r2'), undefined);
    assert.equal(pub.relayOf('n/p', 'r4'), undefined, 'a Failed relay is not offered');
    assert.equal(api.writes, 2);
    await pub.sync();
    assert.equal(api.writes, 2, 'nothing changed: nothing written');
    relays.items = [relay('r1', { queues: 4 }), relay('r3', { resourceName: 'vio4wd.io/q' })];
    await pub.sync();
    assert.deepEqual(gen(), ['n/p@2:r1', 'n/q@1:r3'], 'only the changed pool gets a new generation');
    api.store.delete([...api.store.keys()].find((k) => api.store.get(k)!.spec.pool.name === 'n/q')!);
    await pub.sync();
    assert.deepEqual(gen(), ['n/p@2:r1', 'n/q@1:r3']);
    relays.items = [relay('r1', { queues: 4 })];
    await pub.sync();
    assert.deepEqual(gen(), ['n/p@2:r1'], 'an emptied pool\'s slice is deleted');
    assert.deepEqual([...api.store.values()][0]!.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'n', uid: 'node-uid', controller: true }]);
  } finally {
    await pub.stop();
  }
});

test('a free VF\'s device: prepare makes its relay with the claim\'s queues and MTU, unprepare deletes it; a failed prepare leaves nothing; a restart brings it back', async () => {
  const vf: FreeVf = { resourceName: 'vio4wd.io/p', pciAddress: '0000:00:0a.0', devargs: 'net_af_packet_c,iface=vfc', maxQueues: 4, maxMtu: 2000, mode: 'server', policy: 'pol' };
  const relayName = 'dra.vf-0000-00-0a-0';
  const claim: ResourceClaim = {
    metadata: { name: 'c1', namespace: 'vms', uid: 'u1' },
    status: { allocation: { devices: { results: [{ request: 'nic', driver: 'vio4wd.io', pool: 'n/p', device: 'vf-0000-00-0a-0' }], config: [cfg({ mac: '52:54:00:00:00:07', queues: 2, mtu: 1400 }) as never] } } },
  };
  const dir = mkdtempSync(join(tmpdir(), 'dra-unit-'));
  const relays = new Relays([]);
  const made: string[] = [];
  const calls: AttachRequest[] = [];
  let failCreate = false;
  const vfRelays = {
    create: async (v: FreeVf, name: string, o: { queues: number; mtu?: number; namespace: string; claim: string }) => {
      made.push(`create ${name} ${v.pciAddress} q${o.queues} mtu${o.mtu} ${o.namespace}/${o.claim}`);
      relays.items.push(relay(name, { origin: 'dra', queues: o.queues, ...(o.mtu !== undefined ? { mtu: o.mtu } : {}) }));
      if (failCreate) throw new Error('rte_eth_dev_configure failed');
    },
    remove: async (name: string) => {
      made.push(`remove ${name}`);
      relays.items = relays.items.filter((r) => r.name !== name);
    },
  };
  const mk = (c: ResourceClaim) =>
    new DraDriver({
      relays,
      devices: { relayOf: () => undefined, vfOf: (pool, device) => (pool === 'n/p' && device === 'vf-0000-00-0a-0' ? { vf, relay: relayName } : undefined) },
      claims: { get: async () => c, reportStatus: async () => undefined },
      attach: async (req): Promise<AttachReply> => {
        calls.push(req);
        return req.op === 'add' ? { ok: true, attachment: { deviceId: req.deviceId!, containerId: req.containerId!, ifName: req.ifName!, network: '', mac: req.mac!, vlan: 0, spoofchk: true, socketPath: '', since: '' } } : { ok: true, removed: 1 };
      },
      vfRelays,
      // the pool policy allows VLAN 100 and untagged, spoof checking on (src/policy decides)
      vfSettingsDenied: (rn, subject, req) => vfSettingsDenied(req, vfLimitsOf({ allowedVlans: ['0', '100'] }, 'VirtioForwarderPolicy pol spec.limits', 'the cluster admin'), `${subject} of pool ${rn}`),
      cdiDir: join(dir, 'cdi'),
      metadataDir: join(dir, 'md'),
      statePath: join(dir, 'dra.json'),
      logger: silentLogger(),
    });
  try {
    // over the pool's limit: refused before anything is made
    const over = await mk({ ...claim, status: { allocation: { devices: { results: claim.status!.allocation!.devices!.results!, config: [cfg({ mtu: 9000 }) as never] } } } }).prepare([ref]);
    assert.match(over.u1!.error, /mtu: 9000 exceeds pool vio4wd\.io\/p's limit of 2000 \(VirtioForwarderPolicy pol spec\.limits\.maxMtu\)/);
    assert.deepEqual(made, []);
    // a VLAN or spoof checking off the pool policy does not allow: refused before anything is made
    for (const [c, re] of [
      [{ vlan: 200 }, /^vlan: 200 is not allowed for claim vms\/c1 \(request nic, device vf-0000-00-0a-0\) of pool vio4wd\.io\/p: VirtioForwarderPolicy pol spec\.limits\.allowedVlans allows 0, 100;/],
      [{ vlan: 100, spoofchk: false }, /^spoofchk: false \(spoof checking off\) is not allowed for claim vms\/c1 .*allowSpoofchkOff is not true/],
    ] as const) {
      const denied = await mk({ ...claim, status: { allocation: { devices: { results: claim.status!.allocation!.devices!.results!, config: [cfg({ mac: '52:54:00:00:00:07', ...c }) as never] } } } }).prepare([ref]);
      assert.match(denied.u1!.error, re);
    }
    assert.deepEqual(made, [], 'no relay made');
    assert.equal(calls.length, 0, 'no VF programmed');
    const d = mk(claim);
    await d.start();
    const r = await d.prepare([ref]);
    assert.equal(r.u1!.error, '');
    assert.deepEqual(r.u1!.devices[0]!.cdi_device_ids, ['vio4wd.io/relay=u1-vf-0000-00-0a-0']);
    assert.deepEqual(made, [`create ${relayName} 0000:00:0a.0 q2 mtu1400 vms/c1`]);
    assert.deepEqual(calls.map((c) => [c.op, c.deviceId, c.mac, c.queues, c.mtu]), [['add', relayName, '52:54:00:00:00:07', 2, 1400]]);
    const spec = JSON.parse(readFileSync(join(dir, 'cdi', 'vio4wd.io-relay_u1.json'), 'utf8')) as { devices: { containerEdits: { mounts: { hostPath: string }[] } }[] };
    assert.equal(spec.devices[0]!.containerEdits.mounts[0]!.hostPath, `/run/s/${relayName}`, 'the made relay\'s socket directory');
    // a new agent (restart) makes the relay again from the checkpoint
    made.length = 0;
    relays.items = [];
    const d2 = mk(claim);
    await d2.start();
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(made, [`create ${relayName} 0000:00:0a.0 q2 mtu1400 vms/c1`]);
    calls.length = 0;
    made.length = 0;
    assert.deepEqual(await d2.unprepare([ref]), { u1: { error: '' } });
    assert.deepEqual(calls.map((c) => [c.op, c.containerId]), [['del', 'dra:u1']]);
    assert.deepEqual(made, [`remove ${relayName}`], 'the VF is free again');
    // a relay that cannot be made: the prepare fails naming why, and nothing stays
    failCreate = true;
    made.length = 0;
    const bad = await mk(claim).prepare([ref]);
    assert.match(bad.u1!.error, /making relay dra\.vf-0000-00-0a-0 on VF 0000:00:0a\.0 failed: rte_eth_dev_configure failed/);
    assert.deepEqual(made, [`create ${relayName} 0000:00:0a.0 q2 mtu1400 vms/c1`, `remove ${relayName}`]);
    assert.deepEqual(relays.items, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('health stream: every published or prepared device, healthy while its relay is; sent at once, on a relay change and periodically', async () => {
  const relays = new Relays([relay('r1'), relay('r2', { healthy: false }), relay('dra.vf-0000-00-0a-0', { origin: 'dra' })]);
  const devices = [
    { pool: 'n/p', device: 'r1', relay: 'r1' },
    { pool: 'n/p', device: 'r2', relay: 'r2' },
    { pool: 'n/vf', device: 'vf-0000-00-0a-0', relay: 'dra.vf-0000-00-0a-0', onDemand: true },
    { pool: 'n/vf', device: 'vf-0000-00-0b-0', relay: 'dra.vf-0000-00-0b-0', onDemand: true },
    { pool: 'n/p', device: 'gone', relay: 'gone' },
  ];
  const h = new DeviceHealthReporter({ relays, devices: () => devices, periodMs: 50, debounceMs: 5 });
  const of = (r: NodeWatchResourcesResponse) => r.devices.map((d) => `${d.device.device_name}=${d.health}`);
  assert.deepEqual(of({ devices: h.snapshot() }), ['r1=HEALTHY', 'r2=UNHEALTHY', 'vf-0000-00-0a-0=HEALTHY', 'vf-0000-00-0b-0=HEALTHY', 'gone=UNHEALTHY'], 'a prepared device whose relay is gone is unhealthy; a free VF without its relay is healthy');
  assert.ok(Math.abs(h.snapshot()[0]!.last_updated_time - Date.now() / 1000) < 2);
  const sent: NodeWatchResourcesResponse[] = [];
  const stop = h.watch((r) => sent.push(r));
  assert.equal(sent.length, 1, 'the whole list at once');
  relays.items[0] = relay('r1', { healthy: false });
  relays.emit('change', relays.items[0]);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(of(sent.at(-1)!).slice(0, 1), ['r1=UNHEALTHY'], 'a relay change goes out');
  const n = sent.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.ok(sent.length >= n + 2, 'resent periodically (kubelet forgets a report after 30 s)');
  stop();
  const m = sent.length;
  relays.emit('change', relays.items[0]);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(sent.length, m, 'nothing after stop');
});
