// Port control REMOVE and ADD as virtio-forwarder does them, through the agent's control backend
// and RelayManager against the in-memory engine: REMOVE takes only the VF away (the relay, its
// socket and the guest stay), ADD of another VF on that relay number attaches it in place.
// test/integration/dropin.qemu.test.ts plays the same with a real guest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayManager } from '../../src/relay/index.js';
import { AgentControlBackend } from '../../src/agent/control-backend.js';
import type { RelayInfo, VfSource } from '../../src/engine/types.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { VioError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';

class VfEngine extends MemEngine {
  attached = new Map<number, VfSource>();
  failAttach = false;
  /** While set, detachVf and removeRelay wait for it (the engine's work under way). */
  hold: Promise<void> | undefined;
  override async removeRelay(id: number): Promise<void> {
    await this.hold;
    return super.removeRelay(id);
  }
  override async detachVf(id: number): Promise<RelayInfo> {
    await this.hold;
    const r = this.relays.get(id);
    if (!r) throw new VioError('ENOENT', `no relay ${id}`);
    this.calls.push(`detachVf ${id}`);
    r.vfAttached = false;
    r.linkUp = false;
    r.portId = -1;
    return { ...r };
  }
  override async attachVf(id: number, vf: VfSource): Promise<RelayInfo> {
    const r = this.relays.get(id);
    if (!r) throw new VioError('ENOENT', `no relay ${id}`);
    if (this.failAttach) throw new VioError('ENODEV', `relay ${id}: no such VF`);
    this.calls.push(`attachVf ${id} ${vf.devargs ?? vf.pciAddresses?.join(',')}`);
    r.vfAttached = true;
    r.linkUp = true;
    r.portId = id;
    return { ...r };
  }
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-backend-'));
  const engine = new VfEngine();
  const relays = new RelayManager({ engine, logger: silentLogger(), defaults: { socketDir: dir } });
  const backend = new AgentControlBackend({
    relays,
    engine: { stats: () => undefined, workers: () => [{ cpu: 1, lcore: 1, numaNode: 0, directions: 0, busyCycles: 0, idleCycles: 0, packets: 0, dropped: 0, entries: 0, hotEntries: 0, wakeups: 0 }] },
    mode: 'server',
    dynamicSockets: true,
    cpuPins: {},
  });
  return { dir, engine, relays, backend };
}

test('REMOVE detaches only the VF; ADD of another VF under the same number attaches it in place', async () => {
  const { dir, engine, relays, backend } = setup();
  try {
    assert.equal(await backend.addVf({ virtioId: 3, pciAddrs: ['0000:05:00.1'] }), 'changed');
    engine.fire({ type: 'guest-connected', relayId: 3, arrival: 'started' });
    const socket = relays.getById(3)!.socketPath;

    assert.equal(await backend.removeVf({ virtioId: 3, pciAddrs: ['0000:05:00.1'] }), 'changed');
    let s = relays.getById(3);
    assert.ok(s, 'the relay stays');
    assert.equal(s.socketPath, socket);
    assert.equal(s.pciAddress, undefined);
    assert.equal(s.conditions.find((c) => c.type === 'VFAttached')?.reason, 'NoVF');
    assert.equal(s.conditions.find((c) => c.type === 'GuestConnected')?.status, 'True', 'the guest stays connected');
    assert.equal(backend.queryPci(socket), undefined);
    let snap = backend.relayStates([3])[0]!;
    assert.equal(snap.pciAddress, undefined);
    // virtio-forwarder's state words: no VF on the VF side, the guest still there
    assert.deepEqual([snap.vfToVm.state, snap.vmToVf.state, snap.active], ['DPDK_UNINIT', 'VIRTIO_READY', false]);
    // a second REMOVE changes nothing (conditional OK; ENOENT with conditional=false)
    assert.equal(await backend.removeVf({ virtioId: 3, pciAddrs: [] }), 'unchanged');
    // the old VF is free again: another relay may take it
    assert.equal(await backend.addVf({ virtioId: 4, pciAddrs: ['0000:05:00.1'] }), 'changed');

    assert.equal(await backend.addVf({ virtioId: 3, pciAddrs: ['0000:05:00.2'] }), 'changed');
    s = relays.getById(3);
    assert.equal(s?.pciAddress, '0000:05:00.2');
    assert.equal(s?.phase, 'Ready');
    assert.equal(backend.queryPci(socket), '0000:05:00.2');
    snap = backend.relayStates([3])[0]!;
    assert.deepEqual([snap.vfToVm.state, snap.vmToVf.state, snap.active], ['DPDK_READY', 'VIRTIO_READY', true]);
    assert.equal(backend.relayStates([4])[0]!.vfToVm.state, 'DPDK_ADDED', 'a VF and no guest');
    // the relay was never taken down: one add, a detach and an attach in place
    assert.deepEqual(engine.calls.filter((c) => c.includes(' 3')), ['add 3', 'detachVf 3', 'attachVf 3 0000:05:00.2']);
    // with a VF in place, ADD of yet another one is refused as before
    await assert.rejects(backend.addVf({ virtioId: 3, pciAddrs: ['0000:05:00.3'] }), /relay 3 already relays 0000:05:00\.2: REMOVE it first/);
  } finally {
    await relays.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ADD of a VF that cannot be attached leaves the relay without a VF and says why', async () => {
  const { dir, engine, relays, backend } = setup();
  try {
    await backend.addVf({ virtioId: 1, pciAddrs: ['0000:05:00.1'] });
    await backend.removeVf({ virtioId: 1, pciAddrs: [] });
    engine.failAttach = true;
    await assert.rejects(backend.addVf({ virtioId: 1, pciAddrs: ['0000:05:00.7'] }), /no such VF/);
    assert.equal(relays.getById(1)?.pciAddress, undefined);
    engine.failAttach = false;
    assert.equal(await backend.addVf({ virtioId: 1, pciAddrs: ['0000:05:00.7'] }), 'changed');
    assert.equal(relays.getById(1)?.pciAddress, '0000:05:00.7');
  } finally {
    await relays.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('internal_state walks virtio-forwarder\'s states and transitions, the transient ones included', async () => {
  const { dir, engine, relays, backend } = setup();
  const states = () => {
    const r = backend.relayStates([7])[0]!;
    return [r.vfToVm.state, r.vmToVf.state, r.vfToVm.active, r.vmToVf.active, r.active];
  };
  const gate = () => {
    let open!: () => void;
    engine.hold = new Promise<void>((r) => (open = r));
    return () => {
      engine.hold = undefined;
      open();
    };
  };
  try {
    // a socket made at start (VIRTIOFWD_DYNAMIC_SOCKETS empty): no VF, no guest
    relays.apply({ name: 'relay-7', id: 7, origin: 'config', vf: { none: true }, vhostUser: { mode: 'server' } });
    await relays.settled();
    assert.deepEqual(states(), ['DPDK_UNINIT', 'VIRTIO_UNINIT', false, false, false]);
    // the guest connects before any VF
    engine.fire({ type: 'guest-connected', relayId: 7, arrival: 'started' });
    assert.deepEqual(states(), ['DPDK_UNINIT', 'VIRTIO_READY', false, true, false]);
    // ADD: DPDK_READY at once (a guest is there)
    assert.equal(await backend.addVf({ virtioId: 7, pciAddrs: ['0000:05:00.7'] }), 'changed');
    assert.deepEqual(states(), ['DPDK_READY', 'VIRTIO_READY', true, true, true]);
    // the guest goes: READY -> ADDED; it comes back: READY again
    engine.fire({ type: 'guest-disconnected', relayId: 7 });
    assert.deepEqual(states(), ['DPDK_ADDED', 'VIRTIO_UNINIT', true, false, false]);
    engine.fire({ type: 'guest-connected', relayId: 7, arrival: 'started' });
    assert.deepEqual(states(), ['DPDK_READY', 'VIRTIO_READY', true, true, true]);
    // a VF whose link went down is still the relay's VF (virtio-forwarder does not look)
    engine.fire({ type: 'link', relayId: 7, up: false });
    assert.deepEqual(states(), ['DPDK_READY', 'VIRTIO_READY', true, true, true]);
    engine.fire({ type: 'link', relayId: 7, up: true });
    // REMOVE: DPDK_REMOVING1 while the engine takes the VF from the workers, then DPDK_UNINIT
    let release = gate();
    const removing = backend.removeVf({ virtioId: 7, pciAddrs: [] });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(states(), ['DPDK_REMOVING1', 'VIRTIO_READY', false, true, false]);
    release();
    assert.equal(await removing, 'changed');
    assert.deepEqual(states(), ['DPDK_UNINIT', 'VIRTIO_READY', false, true, false]);
    // ADD again, then the relay torn down with its guest (REMOVE_SOCK, shutdown): both REMOVING1
    await backend.addVf({ virtioId: 7, pciAddrs: ['0000:05:00.8'] });
    release = gate();
    const gone = relays.remove('relay-7');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(states(), ['DPDK_REMOVING1', 'VIRTIO_REMOVING1', false, false, false]);
    release();
    await gone;
    assert.deepEqual(backend.relayStates([7]), []);
  } finally {
    await relays.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a handover freezes port control: a change in progress ends first, later ones get EAGAIN until thawed', async () => {
  const { dir, engine, relays, backend } = setup();
  try {
    await backend.addVf({ virtioId: 2, pciAddrs: ['0000:05:00.1'] });
    // a REMOVE under way when the handover begins: the freeze waits for it (the relay list the
    // new agent gets must not carry a VF this REMOVE is taking away)
    let open!: () => void;
    engine.hold = new Promise<void>((r) => (open = r));
    const removing = backend.removeVf({ virtioId: 2, pciAddrs: ['0000:05:00.1'] });
    let frozen = false;
    const freezing = backend.freeze().then(() => (frozen = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(frozen, false, 'the freeze waits for the REMOVE in progress');
    engine.hold = undefined;
    open();
    assert.equal(await removing, 'changed');
    await freezing;
    // now every change is refused, untouched, with a reason that says to retry
    const refused = /EAGAIN|handover to a new agent .* in progress on this node: nothing was changed; retry/;
    await assert.rejects(backend.addVf({ virtioId: 2, pciAddrs: ['0000:05:00.2'] }), (err: VioError) => err.code === 'EAGAIN' && refused.test(err.message));
    await assert.rejects(backend.removeVf({ virtioId: 2, pciAddrs: [] }), { code: 'EAGAIN' });
    await assert.rejects(backend.addSocket({ vhostPath: join(dir, 'x.sock'), pciAddrs: ['0000:05:00.3'] }), { code: 'EAGAIN' });
    await assert.rejects(backend.removeSocket({ vhostPath: join(dir, 'x.sock'), pciAddrs: [] }), { code: 'EAGAIN' });
    await assert.rejects(backend.updateCpuMap([{ relay: 2, vfToVmCpu: 1, vmToVfCpu: 1 }]), { code: 'EAGAIN' });
    assert.equal(relays.getById(2)?.pciAddress, undefined, 'nothing was applied');
    // reads still answer
    assert.equal(backend.relayStates([2]).length, 1);
    // the handover was given up: changes go through again
    backend.thaw();
    assert.equal(await backend.addVf({ virtioId: 2, pciAddrs: ['0000:05:00.2'] }), 'changed');
  } finally {
    await relays.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
