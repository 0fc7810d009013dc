// RelayManager's pure logic against a small in-memory engine: phases, conditions, retries,
// conflicts and isolation between relays. The real engine is exercised in test/integration.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayManager, viewWithout } from '../../src/relay/index.js';
import { MemEngine } from '../helpers/mem-engine.js';
import type { RelaySpec, RelayStatus } from '../../src/relay/index.js';
import { silentLogger } from '../../src/util/log.js';

/** The manager is closed and its directory removed after the test, whether it passed or not. */
function cleanUpAfter(t: TestContext, mgr: RelayManager, dir: string): void {
  t.after(async () => {
    await mgr.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

function setup(t: TestContext, retryMs = 20) {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-relay-'));
  const engine = new MemEngine();
  const mgr = new RelayManager({ engine, logger: silentLogger(), defaults: { socketDir: dir }, retry: { initialMs: retryMs, maxMs: 100 } });
  cleanUpAfter(t, mgr, dir);
  return { dir, engine, mgr };
}

const tap = (name: string, devargs = `net_tap_${name},iface=${name}`): RelaySpec => ({
  name, origin: 'config', vf: { devargs }, vhostUser: { mode: 'server' },
});

function cond(s: RelayStatus | undefined, type: string) {
  return s?.conditions.find((c) => c.type === type);
}

test('a relay goes Pending -> Configuring -> Ready with a virtio-forwarder style socket path', async (t) => {
  const { dir, mgr } = setup(t);
  const phases: string[] = [];
  mgr.on('change', (s: RelayStatus) => phases.push(s.phase));
  const st = mgr.apply(tap('vm1'));
  assert.equal(st.id, 1);
  assert.equal(st.socketPath, join(dir, 'virtio-forwarder1.sock'));
  await mgr.settled();
  const s = mgr.get('vm1');
  assert.equal(s?.phase, 'Ready');
  assert.equal(s?.healthy, true);
  assert.equal(cond(s, 'VFAttached')?.status, 'True');
  assert.equal(cond(s, 'SocketReady')?.reason, 'Listening');
  assert.equal(cond(s, 'GuestConnected')?.reason, 'WaitingForGuest');
  assert.deepEqual([...new Set(phases)], ['Pending', 'Configuring', 'Ready']);
});

test('guest and link events from the engine update conditions and health', async (t) => {
  const { engine, mgr } = setup(t);
  mgr.apply(tap('vm1'));
  await mgr.settled();
  engine.fire({ type: 'guest-connected', relayId: 1 });
  assert.equal(cond(mgr.get('vm1'), 'GuestConnected')?.status, 'True');
  engine.fire({ type: 'link', relayId: 1, up: false });
  const s = mgr.get('vm1');
  assert.equal(cond(s, 'VFAttached')?.reason, 'LinkDown');
  assert.equal(s?.healthy, false);
  assert.notEqual(s?.phase, 'Ready');
  engine.fire({ type: 'link', relayId: 1, up: true });
  assert.equal(mgr.get('vm1')?.phase, 'Ready');
});

test('a failing relay is marked Failed with a reason, retried, and never disturbs another relay', async (t) => {
  const { engine, mgr } = setup(t);
  engine.failDevargs.set('net_tap_bad,iface=bad', 'ENODEV');
  mgr.apply(tap('good'));
  mgr.apply(tap('bad'));
  await mgr.settled();
  const bad = mgr.get('bad');
  assert.equal(bad?.phase, 'Failed');
  assert.equal(cond(bad, 'VFAttached')?.reason, 'VFNotFound');
  assert.match(cond(bad, 'VFAttached')?.message ?? '', /cannot attach net_tap_bad/);
  assert.equal(mgr.get('good')?.phase, 'Ready');
  // the VF shows up: the retry attaches it without anyone asking again
  engine.failDevargs.delete('net_tap_bad,iface=bad');
  const ready = new Promise<void>((resolve) => {
    const on = (s: RelayStatus) => { if (s.name === 'bad' && s.phase === 'Ready') { mgr.off('change', on); resolve(); } };
    mgr.on('change', on);
  });
  await ready;
  assert.equal(engine.relays.size, 2);
});

test('an invalid spec in the engine (EINVAL) is not retried', async (t) => {
  const { engine, mgr } = setup(t);
  engine.failDevargs.set('bogus', 'EINVAL');
  mgr.apply(tap('x', 'bogus'));
  await mgr.settled();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(engine.calls.filter((c) => c === 'add 1').length, 1);
  assert.equal(cond(mgr.get('x'), 'VFAttached')?.reason, 'InvalidSpec');
});

test('conflicting ids and socket paths are rejected naming the field; bad fields name the fix', async (t) => {
  const { mgr } = setup(t);
  mgr.apply({ ...tap('a'), id: 5 });
  assert.throws(() => mgr.apply({ ...tap('b'), id: 5 }), /id: relay id 5 is already used by relay "a"/);
  assert.throws(() => mgr.apply({ ...tap('c'), vhostUser: { mode: 'server', socketPath: mgr.get('a')!.socketPath } }), /vhostUser.socketPath: .* already used by relay "a"/);
  assert.throws(() => mgr.apply({ ...tap('d'), queues: 33 }), /queues: 33 queue pairs is out of range: use 1..32/);
  assert.throws(() => mgr.apply({ ...tap('e'), mac: 'zz' }), /mac: "zz" is not a MAC address/);
  assert.throws(() => mgr.apply({ ...tap('Bad_Name') }), /name: "Bad_Name" is not a valid relay name/);
  assert.throws(() => mgr.apply({ name: 'f', origin: 'config', vf: { devargs: 'x', pciAddresses: ['0000:01:00.1'] }, vhostUser: { mode: 'server' } }), /vf: give exactly one of/);
  assert.throws(() => mgr.apply({ name: 'g', origin: 'config', vf: { pciAddresses: ['01:00.1'] }, vhostUser: { mode: 'server' } }), /vf.pciAddresses\[0\]: "01:00.1" is not a PCI address/);
});

test('a missing explicit socket directory fails with SocketDirMissing', async (t) => {
  const { mgr } = setup(t);
  mgr.apply({ ...tap('a'), vhostUser: { mode: 'server', socketPath: '/nonexistent-vio4wd/dir/x.sock' } });
  await mgr.settled();
  const s = mgr.get('a');
  assert.equal(s?.phase, 'Failed');
  assert.equal(cond(s, 'SocketReady')?.reason, 'SocketDirMissing');
  assert.match(cond(s, 'SocketReady')?.message ?? '', /does not exist/);
});

test('changing a relay re-attaches it; changing only its CPUs moves it live', async (t) => {
  const { engine, mgr } = setup(t);
  mgr.apply(tap('a'));
  await mgr.settled();
  mgr.apply({ ...tap('a'), queues: 4 });
  await mgr.settled();
  assert.deepEqual(engine.calls, ['add 1', 'rm 1', 'add 1']);
  assert.equal(engine.configs.get(1)?.queues, 4);
  mgr.setCpus('a', [0, 1]);
  await mgr.settled();
  assert.deepEqual(engine.calls, ['add 1', 'rm 1', 'add 1']);
  assert.deepEqual(mgr.get('a')?.cpus, { vfToVm: 0, vmToVf: 1 });
});

test('moveCpus (the core scheduler) moves live without pinning; a pinned relay takes the new CPUs', async (t) => {
  const { engine, mgr } = setup(t);
  mgr.apply(tap('free'));
  mgr.apply({ ...tap('pinned'), cpus: [0] });
  await mgr.settled();
  await mgr.moveCpus('free', { vfToVm: 1, vmToVf: 0 });
  assert.deepEqual(mgr.get('free')?.cpus, { vfToVm: 1, vmToVf: 0 });
  assert.equal(mgr.spec('free')?.cpus, undefined, 'still free to move');
  await mgr.moveCpus('pinned', { vfToVm: 1, vmToVf: 1 });
  assert.deepEqual(mgr.spec('pinned')?.cpus, [1, 1]);
  assert.deepEqual(engine.relay(2)?.cpus, { vfToVm: 1, vmToVf: 1 });
  // a later pin back to where it was is applied (the move was recorded)
  mgr.setCpus('pinned', [0]);
  await mgr.settled();
  assert.deepEqual(engine.relay(2)?.cpus, { vfToVm: 0, vmToVf: 0 });
  assert.deepEqual(engine.calls.filter((c) => c.startsWith('rm')), [], 'no re-attach for any move');
  await assert.rejects(mgr.moveCpus('nope', { vfToVm: 0, vmToVf: 0 }), { code: 'ENOENT' });
});

test('removing a relay detaches it and emits removed; the id is free again', async (t) => {
  const { engine, mgr } = setup(t);
  const removed: string[] = [];
  mgr.on('removed', (n: string) => removed.push(n));
  mgr.apply(tap('a'));
  await mgr.settled();
  assert.equal(await mgr.remove('a'), true);
  assert.equal(await mgr.remove('a'), false);
  assert.deepEqual(removed, ['a']);
  assert.equal(engine.relays.size, 0);
  assert.equal(mgr.apply(tap('b')).id, 1);
});

test('VF removal marks the relay Failed with VFRemoved and it recovers when the VF returns', async (t) => {
  const { engine, mgr } = setup(t);
  mgr.apply(tap('a'));
  await mgr.settled();
  engine.failDevargs.set('net_tap_a,iface=a', 'ENODEV');
  engine.relays.delete(1); // the engine dropped the port
  engine.emit('event', { type: 'vf-removed', relayId: 1 });
  await mgr.settled();
  assert.equal(mgr.get('a')?.phase, 'Failed');
  assert.equal(mgr.get('a')?.healthy, false);
  engine.failDevargs.delete('net_tap_a,iface=a');
  await new Promise<void>((resolve) => {
    const on = (s: RelayStatus) => { if (s.phase === 'Ready') { mgr.off('change', on); resolve(); } };
    mgr.on('change', on);
  });
  assert.equal(mgr.get('a')?.healthy, true);
});

test('a pod attachment\'s MAC (vio4wd-cni) shows in the status, survives a re-attach and reaches the VF resolver', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-relay-'));
  const engine = new MemEngine();
  const asked: (string | undefined)[] = [];
  const resolver = {
    resolve: async (_name: string, vf: RelaySpec['vf'], o: { mac?: string }) => {
      asked.push(o.mac);
      return { vf: { devargs: vf.devargs! }, display: vf.devargs! };
    },
    release: () => undefined,
  };
  const mgr = new RelayManager({ engine, logger: silentLogger(), defaults: { socketDir: dir }, resolver, retry: { initialMs: 20, maxMs: 100 } });
  cleanUpAfter(t, mgr, dir);
  mgr.apply(tap('a'));
  await mgr.settled();
  assert.equal(mgr.get('a')?.mac, '02:00:00:00:00:01', 'the VF\'s own MAC');
  assert.equal(mgr.setAttachedMac('a', '52:54:00:AA:00:01').mac, '52:54:00:aa:00:01');
  mgr.apply({ ...tap('a'), queues: 2 }); // a change that re-attaches the VF
  await mgr.settled();
  assert.equal(mgr.get('a')?.mac, '52:54:00:aa:00:01', 'kept across the re-attach');
  assert.equal(asked.at(-1), '52:54:00:aa:00:01', 'a re-resolved VF is given the attachment\'s MAC, not spec.mac');
  assert.equal(mgr.setAttachedMac('a', undefined).mac, '02:00:00:00:00:01', 'attachment gone: the VF\'s own MAC again');
  assert.throws(() => mgr.setAttachedMac('nope', undefined), /no relay named "nope"/);
});

test('with relayDirs (device plugin on) each relay gets a directory of its own, never shared, removed with it', async (t) => {
  const { statSync, existsSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-relaydirs-'));
  const mgr = new RelayManager({ engine: new MemEngine(), logger: silentLogger(), defaults: { socketDir: dir, relayDirs: true, group: 107 } });
  cleanUpAfter(t, mgr, dir);
  const a = mgr.apply(tap('vm1'));
  const b = mgr.apply(tap('vm2'));
  assert.equal(a.socketPath, join(dir, 'vm1', 'virtio-forwarder1.sock'));
  assert.equal(b.socketPath, join(dir, 'vm2', 'virtio-forwarder2.sock'));
  await mgr.settled();
  const st = statSync(join(dir, 'vm1'));
  assert.equal(st.mode & 0o7777, 0o2770);
  assert.equal(st.gid, 107);
  await mgr.remove('vm1');
  assert.equal(existsSync(join(dir, 'vm1')), false);
  assert.equal(existsSync(join(dir, 'vm2')), true);
});

test('a pod attachment\'s queues and MTU (a DRA claim\'s) reach the engine and go again; the status keeps the relay\'s own', async (t) => {
  const { engine, mgr } = setup(t);
  mgr.apply({ ...tap('a'), queues: 2, mtu: 1500 });
  await mgr.settled();
  const st = await mgr.setAttachConfig('a', { queues: 1, mtu: 1400 });
  assert.equal(st.phase, 'Ready');
  const cfg = engine.configs.get(st.id)!;
  assert.deepEqual([cfg.queues, cfg.vhostQueues, cfg.mtu], [1, 1, 1400], 'the relay serves and offers 1 queue pair, the VF gets MTU 1400');
  assert.deepEqual([st.queues, st.mtu], [2, 1500], 'the status shows what the relay offers a pool');
  await mgr.setAttachConfig('a', undefined);
  const back = engine.configs.get(st.id)!;
  assert.deepEqual([back.queues, back.vhostQueues, back.mtu], [2, undefined, 1500], 'its own again');
  // an attach that fails with the attachment's values rejects with the reason
  engine.failDevargs.set('net_tap_a,iface=a', 'EINVAL');
  await assert.rejects(mgr.setAttachConfig('a', { mtu: 9000 }), /relay "a" did not attach: VFAttached/);
  await assert.rejects(mgr.setAttachConfig('nope', undefined), /no relay named "nope"/);
});

test('viewWithout: the relays of one origin are not in the view, nor in its change events', async (t) => {
  const { mgr } = setup(t);
  mgr.apply(tap('a'));
  mgr.apply({ ...tap('b'), origin: 'dra' });
  await mgr.settled();
  const v = viewWithout(mgr, 'dra');
  assert.deepEqual(v.list().map((s) => s.name), ['a']);
  assert.equal(v.get('b'), undefined);
  assert.equal(v.get('a')?.name, 'a');
  const seen: string[] = [];
  const l = (s: RelayStatus) => seen.push(s.name);
  v.on('change', l);
  mgr.setAttachedMac('a', '52:54:00:00:00:0a');
  mgr.setAttachedMac('b', '52:54:00:00:00:0b');
  v.off('change', l);
  mgr.setAttachedMac('a', undefined);
  assert.deepEqual(seen, ['a']);
});
