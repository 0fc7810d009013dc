// The relay role's pure parts, without a manager: spec normalisation and the engine config made
// from it, the state machine's status phases, conditions from the engine's view, reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configKey, engineConfig, normalizeSpec, relayVfOf, socketPathFor, wantedCpus } from '../../src/relay/spec.js';
import { DEFAULT_RELAY_DEFAULTS } from '../../src/relay/contracts.js';
import { afterDetach, isAttached, statusPhase, type RelayState } from '../../src/relay/state.js';
import { attachFailed, deriveReady, detached, initialConditions, observeEngine } from '../../src/relay/conditions.js';
import { Reason, codeForReason, isPermanent, reasonForCode } from '../../src/relay/reasons.js';
import { RelayTable } from '../../src/relay/table.js';
import type { RelayInfo } from '../../src/engine/types.js';
import type { Condition, RelaySpec } from '../../src/relay/types.js';
import { MTU_MAX } from '../../src/util/limits.js';

const spec = (over: Partial<RelaySpec> = {}): RelaySpec => ({ name: 'r1', origin: 'config', vf: { devargs: 'net_null0' }, vhostUser: { mode: 'client' }, ...over });
const T = '2026-01-01T00:00:00.000Z';
const cond = (c: Condition[], type: string) => c.find((x) => x.type === type)!;

test('normalizeSpec fills the default mode and refuses what the engine would, naming the field', () => {
  assert.equal(normalizeSpec(spec({ vhostUser: {} as RelaySpec['vhostUser'] })).vhostUser.mode, DEFAULT_RELAY_DEFAULTS.mode);
  const bad: [Partial<RelaySpec>, RegExp][] = [
    [{ name: 'Bad_Name' }, /^name: /],
    [{ mtu: MTU_MAX + 1 }, new RegExp(`^mtu: ${MTU_MAX + 1} is out of range: use 68\\.\\.${MTU_MAX}`)],
    [{ queues: 33 }, /^queues: 33 queue pairs is out of range: use 1\.\.32/],
    [{ mac: '52:54:00:12:34' }, /^mac: /],
    [{ vf: { devargs: 'x'.repeat(512) } }, /^vf\.devargs: 512 characters: the engine takes devargs of at most 511/],
    [{ vf: { pciAddresses: Array.from({ length: 9 }, (_, i) => `0000:03:00.${i % 8}`) } }, /^vf\.pciAddresses: 9 VFs: a bond has at most 8/],
    [{ vf: { devargs: 'a', pciAddresses: ['0000:03:00.1'] } }, /^vf: give exactly one/],
    [{ cpus: [1, 2, 3] }, /^cpus: give one CPU/],
  ];
  for (const [over, re] of bad) assert.throws(() => normalizeSpec(spec(over)), (e: Error) => re.test(e.message), JSON.stringify(over));
});

test('a VF request (config file or VirtioRelay) becomes the relay VF: addresses lower-cased, only what was given', () => {
  assert.deepEqual(relayVfOf({ pciAddress: '0000:3B:02.1' }), { pciAddresses: ['0000:3b:02.1'] });
  const selector = { pfName: 'ens1f0' };
  const bond = relayVfOf({ pciAddresses: ['0000:3B:02.1', '0000:3b:02.2'], bondMode: 4, bondName: 'net_bonding_x', selector });
  assert.deepEqual(bond, { pciAddresses: ['0000:3b:02.1', '0000:3b:02.2'], selector: { pfName: 'ens1f0' }, bondMode: 4, bondName: 'net_bonding_x' });
  assert.notEqual(bond.selector, selector, 'the selector is a copy');
  assert.deepEqual(relayVfOf({ devargs: 'net_tap0,iface=t0', bondMode: 0 }), { devargs: 'net_tap0,iface=t0', bondMode: 0 });
});

test('the engine config comes from the spec and the defaults; only what needs a re-attach is in the config key', () => {
  const defaults = { ...DEFAULT_RELAY_DEFAULTS, socketDir: '/run/vio', owner: 107, perm: 0o660 };
  const s = normalizeSpec(spec({ cpus: [3], mtu: 9000, vhostUser: { mode: 'server', perm: '0600' } }), defaults);
  const path = socketPathFor(s, 4, defaults);
  assert.equal(path, '/run/vio/virtio-forwarder4.sock');
  const cfg = engineConfig(s, 4, path, { vf: { devargs: 'net_null0' }, display: 'net_null0', numaNode: 1 }, defaults);
  assert.deepEqual(cfg, { id: 4, vf: { devargs: 'net_null0' }, socketPath: path, mode: 'server', queues: 1, socketOwner: 107, socketPerm: 0o600, mtu: 9000, numaNode: 1, cpus: { vfToVm: 3, vmToVf: 3 } });
  assert.deepEqual(wantedCpus(spec({ cpus: [1, 2] })), { vfToVm: 1, vmToVf: 2 });
  assert.equal(configKey(s, path), configKey({ ...s, cpus: [5] }, path), 'CPUs move live');
  assert.notEqual(configKey(s, path), configKey({ ...s, mtu: 1500 }, path));
});

test('the status phase follows the relay state', () => {
  const attached: RelayState = { phase: 'attached', appliedKey: 'k', appliedCpus: '' };
  const lost: RelayState = { phase: 'vf-lost', appliedKey: 'k', appliedCpus: '', lost: { cause: 'unplugged', since: T } };
  assert.equal(statusPhase(attached, true), 'Ready');
  assert.equal(statusPhase(attached, false), 'Pending', 'attached, not ready (link down)');
  assert.equal(statusPhase({ phase: 'configuring' }, false), 'Configuring');
  assert.equal(statusPhase(lost, false), 'Failed');
  assert.equal(statusPhase({ phase: 'failed', reason: Reason.VFNotFound, permanent: false }, false), 'Failed');
  assert.equal(statusPhase({ phase: 'removing', attached: true }, true), 'Terminating');
  assert.equal(isAttached(lost), true);
  assert.equal(isAttached({ phase: 'removing', attached: false }), false);
  assert.deepEqual(afterDetach(lost), { phase: 'failed', reason: Reason.VFRemoved, permanent: false });
  assert.deepEqual(afterDetach(attached), { phase: 'configuring' });
  assert.deepEqual(afterDetach({ phase: 'removing', attached: true }), { phase: 'removing', attached: false });
});

test('conditions from the engine\'s view: VF, socket, guest; Ready needs VF and socket', () => {
  const info = { id: 1, socketPath: '/s', mode: 'server', queues: 1, numaNode: 0, portId: 3, portName: 'p', mac: '02:00:00:00:00:01', linkUp: true, guestConnected: false, enabledQueues: 0, cpus: { vfToVm: 1, vmToVf: 1 } } as RelayInfo;
  const c = initialConditions(T);
  observeEngine(c, info, '0000:03:00.1', undefined, T);
  assert.equal(cond(c, 'VFAttached').reason, Reason.Attached);
  assert.equal(cond(c, 'SocketReady').reason, Reason.Listening);
  assert.equal(cond(c, 'GuestConnected').reason, Reason.WaitingForGuest);
  assert.equal(deriveReady(c, T), true);
  observeEngine(c, { ...info, vfAttached: false, linkUp: false }, '0000:03:00.1', { cause: 'unplugged', since: T, lastError: 'ENODEV' }, T);
  assert.match(cond(c, 'VFAttached').message, /gone \(unplugged\).*last attempt: ENODEV/);
  assert.equal(deriveReady(c, T), false);
  assert.equal(cond(c, 'Ready').reason, Reason.VFRemoved);
  attachFailed(c, Reason.SocketDirMissing, 'no dir', T);
  assert.equal(cond(c, 'SocketReady').reason, Reason.SocketDirMissing, 'a socket reason lands on SocketReady');
  detached(c, T);
  assert.deepEqual(c.filter((x) => x.type !== 'Ready').map((x) => x.reason), [Reason.Detached, Reason.Detached, Reason.Detached]);
});

test('reasons and codes map both ways; only EINVAL is permanent', () => {
  assert.equal(reasonForCode('ENODEV'), Reason.VFNotFound);
  assert.equal(reasonForCode('EWHATEVER'), Reason.EngineError);
  assert.equal(codeForReason(reasonForCode('ENOMEM')), 'ENOMEM');
  assert.equal(codeForReason(Reason.InvalidSpec), 'EIO');
  assert.equal(isPermanent('EINVAL'), true);
  assert.equal(isPermanent('ENODEV'), false);
});

test('the relay table: free ids from 1, and claims on ids and sockets refused naming the field', () => {
  const t = new RelayTable<{ spec: { name: string }; id: number; socketPath: string }>(4);
  const a = { spec: { name: 'a' }, id: t.freeId(), socketPath: '/a' };
  t.set(a);
  assert.equal(a.id, 1);
  assert.throws(() => t.checkClaim('b', 1, '/b'), /^ValidationError: id: relay id 1 is already used by relay "a"/);
  assert.throws(() => t.checkClaim('b', 2, '/a'), /vhostUser\.socketPath: socket \/a is already used/);
  assert.throws(() => t.checkClaim('b', 4, '/b'), /out of range: use 0\.\.3/);
  a.id = 2;
  t.set(a, 1);
  assert.equal(t.getById(1), undefined);
  assert.equal(t.getById(2), a);
  assert.equal(t.delete(a), true);
  assert.equal(t.values().length, 0);
});
