// Pool policy as the node agent applies it to a VirtioRelay: the pool must be defined on the node
// by one policy that lists the namespace; devargs need both the policy and the node's opt-in;
// queues and MTU stay within the pool's limits; a VF belongs to a pool by PF, address or ids.
// The real agent against a real apiserver is in test/integration/security.*.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, symlinkSync, mkdirSync, chmodSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowedVirtualDriver, decide, parseVlanRanges, selectorMatches, vfInPool, vfLimitsFor, vfSettingsDenied, type VfPool } from '../../src/policy/index.js';
import type { VirtioForwarderPolicy, VirtioForwarderPolicySpec } from '../../src/kube/crd-schemas.js';
import { prepareRelayDir, prepareSocketRoot } from '../../src/relay/socketdir.js';
import { resolveOwner } from '../../src/agent/owners.js';

function policy(name: string, spec: Partial<VirtioForwarderPolicySpec>): VirtioForwarderPolicy {
  return { metadata: { name }, spec: { resourceName: 'vio4wd.io/fast', namespaces: ['team-a'], vfs: { pfNames: ['ens1f0'] }, ...spec } };
}

const NODE = { virtualDevices: [] as string[] };
const TEST_NODE = { virtualDevices: ['net_tap'] };

test('a relay in a namespace the pool lists gets the pool, its VFs and its socket ownership', () => {
  const d = decide({ namespace: 'team-a', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast' } }, [policy('fast', { socket: { group: 'kvm', perm: '0600' } })], {}, NODE);
  assert.ok(d.allowed);
  assert.equal(d.policy, 'fast');
  assert.deepEqual(d.pool.pfNames, ['ens1f0']);
  assert.deepEqual(d.socket, { group: 'kvm', directoryMode: 0o2770, perm: 0o600 });
});

test('another namespace, an unknown pool or a pool defined twice is denied with the field named', () => {
  const p = [policy('fast', {})];
  const other = decide({ namespace: 'team-b', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast' } }, p, {}, NODE);
  assert.ok(!other.allowed);
  assert.match(other.message, /^spec\.resourceName: namespace team-b may not use pool vio4wd\.io\/fast \(VirtioForwarderPolicy fast spec\.namespaces\)/);
  const unknown = decide({ namespace: 'team-a', spec: { vf: { selector: {} } } }, p, {}, NODE);
  assert.ok(!unknown.allowed);
  assert.match(unknown.message, /no VirtioForwarderPolicy defines pool vio4wd\.io\/vhostuser on this node/);
  const twice = decide({ namespace: 'team-a', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast' } }, [...p, policy('fast2', {})], {}, NODE);
  assert.ok(!twice.allowed);
  assert.match(twice.message, /more than one VirtioForwarderPolicy \(fast, fast2\)/);
  assert.ok(decide({ namespace: 'anything', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast' } }, [policy('all', { namespaces: ['*'] })], {}, NODE).allowed);
});

test('the node selector decides where a pool exists', () => {
  const p = [policy('fast', { nodeSelector: { matchLabels: { 'vio4wd.io/pool': 'fast' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] } })];
  const spec = { vf: { selector: {} }, resourceName: 'vio4wd.io/fast' };
  assert.ok(decide({ namespace: 'team-a', spec }, p, { 'vio4wd.io/pool': 'fast', zone: 'b' }, NODE).allowed);
  assert.ok(!decide({ namespace: 'team-a', spec }, p, { 'vio4wd.io/pool': 'fast', zone: 'c' }, NODE).allowed);
  assert.ok(!decide({ namespace: 'team-a', spec }, p, {}, NODE).allowed);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, { y: '1' }), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['1'] }] }, { x: '1' }), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, {}), false);
});

test('devargs need the driver in the policy and in the node agent config; aliases and other drivers are refused', () => {
  const p = [policy('t', { vfs: { virtualDevices: ['net_tap'] } })];
  const spec = (devargs: string) => ({ vf: { devargs }, resourceName: 'vio4wd.io/fast' });
  const onProd = decide({ namespace: 'team-a', spec: spec('net_tap0,iface=x') }, p, {}, NODE);
  assert.ok(!onProd.allowed);
  assert.match(onProd.message, /^spec\.vf\.devargs: this node allows no such virtual device \(the agent's kubernetes\.allowVirtualDevices/);
  const ok = decide({ namespace: 'team-a', spec: spec('net_tap0,iface=x') }, p, {}, TEST_NODE);
  assert.ok(ok.allowed);
  assert.deepEqual(ok.pool.virtualDevices, ['net_tap']);
  for (const bad of ['net_af_packet0,iface=eth0', 'net_vhost0,iface=/var/run/vio4wd/sockets/a.b/vhost-user.sock', 'eth_tap0', 'net_tun0', 'net_tap0/x']) {
    const d = decide({ namespace: 'team-a', spec: spec(bad) }, p, {}, { virtualDevices: ['net_tap', 'net_af_packet', 'net_vhost'] });
    assert.ok(!d.allowed, bad);
    assert.match(d.message, /^spec\.vf\.devargs: pool vio4wd\.io\/fast may not use this virtual device \(VirtioForwarderPolicy t allows net_tap\)/);
  }
  assert.equal(allowedVirtualDriver('net_tap12,iface=a', ['net_tap']), 'net_tap');
  assert.equal(allowedVirtualDriver(' net_tap ', ['net_tap']), 'net_tap');
  assert.equal(allowedVirtualDriver('net_tap_vm1,iface=vm1', ['net_tap']), 'net_tap');
});

test('queues and MTU above the pool limits are denied', () => {
  const p = [policy('l', { limits: { maxQueues: 4, maxMtu: 1500 } })];
  const q = decide({ namespace: 'team-a', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast', queues: 8 } }, p, {}, NODE);
  assert.ok(!q.allowed);
  assert.match(q.message, /^spec\.queues: 8 exceeds the pool's limit of 4/);
  const m = decide({ namespace: 'team-a', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast', mtu: 9000 } }, p, {}, NODE);
  assert.ok(!m.allowed);
  assert.match(m.message, /^spec\.mtu: 9000 exceeds the pool's limit of 1500/);
  assert.ok(decide({ namespace: 'team-a', spec: { vf: { selector: {} }, resourceName: 'vio4wd.io/fast', queues: 4, mtu: 1500 } }, p, {}, NODE).allowed);
});

test('VF settings: allowedVlans takes ids and ranges, 0 is untagged; a bad entry names its index', () => {
  assert.deepEqual(parseVlanRanges([0, '100', '200-299', ' 4094 '], 'f'), [[0, 0], [100, 100], [200, 299], [4094, 4094]]);
  for (const bad of ['4095', '10-5', 'x', '-1', '1-2-3', '']) {
    assert.throws(() => parseVlanRanges(['0', bad], 'spec.limits.allowedVlans'), new RegExp(`^Error: spec\\.limits\\.allowedVlans\\[1\\]: ${JSON.stringify(bad).replace(/[-[\]]/g, '\\$&')} is not a VLAN id or range`), bad);
  }
});

test('VF settings: the pool\'s policy limits them; without one the node admin\'s config does; two policies allow only the defaults', () => {
  const a = policy('fast', { limits: { allowedVlans: ['0', 10, '100-199'], allowSpoofchkOff: true } });
  const lim = vfLimitsFor('vio4wd.io/fast', [a], {}, { allowedVlans: ['0-4094'], allowSpoofchkOff: true });
  const ask = (vlan: number, spoofchk = true) => vfSettingsDenied({ vlan, spoofchk }, lim, 'relay "r"');
  for (const ok of [0, 10, 100, 150, 199]) assert.equal(ask(ok), undefined, String(ok));
  assert.equal(ask(150, false), undefined, 'spoofchk off allowed by this policy');
  assert.equal(
    ask(200),
    'vlan: 200 is not allowed for relay "r": VirtioForwarderPolicy fast spec.limits.allowedVlans allows 0, 10, 100-199; use an allowed VLAN, or ask the cluster admin to add 200 to VirtioForwarderPolicy fast spec.limits.allowedVlans',
  );
  // a policy that says nothing: untagged only, spoof checking on; the node's config does not widen it
  const plain = vfLimitsFor('vio4wd.io/fast', [policy('fast', {})], {}, { allowedVlans: ['0-4094'], allowSpoofchkOff: true });
  assert.match(vfSettingsDenied({ vlan: 5, spoofchk: true }, plain, 'relay "r"') ?? '', /allowedVlans allows 0 \(untagged only\)/);
  assert.match(vfSettingsDenied({ vlan: 0, spoofchk: false }, plain, 'relay "r"') ?? '', /^spoofchk: false \(spoof checking off\) is not allowed for relay "r": VirtioForwarderPolicy fast spec\.limits\.allowSpoofchkOff is not true; leave spoofchk out \(on\), or ask the cluster admin to set VirtioForwarderPolicy fast spec\.limits\.allowSpoofchkOff: true$/);
  // a policy that lists only tagged VLANs refuses untagged attachments
  const tagged = vfLimitsFor('vio4wd.io/fast', [policy('fast', { limits: { allowedVlans: ['100'] } })], {}, undefined);
  assert.match(vfSettingsDenied({ vlan: 0, spoofchk: true }, tagged, 'relay "r"') ?? '', /^vlan: 0 \(untagged\) is not allowed .* \(set vlan in the network config or the claim\)/);
  // no policy defines the pool here (a relay of the agent's own config): the node admin's limits
  const none = vfLimitsFor('vio4wd.io/other', [a], {}, { allowedVlans: ['300'] });
  assert.equal(vfSettingsDenied({ vlan: 300, spoofchk: true }, none, 'relay "r"'), undefined);
  assert.match(vfSettingsDenied({ vlan: 301, spoofchk: true }, none, 'relay "r"') ?? '', /the agent config's sriov\.vfLimits\.allowedVlans allows 300; .*ask the node admin to add 301/);
  assert.match(vfSettingsDenied({ vlan: 1, spoofchk: true }, vfLimitsFor('vio4wd.io/other', [], {}, undefined), 'x') ?? '', /sriov\.vfLimits\.allowedVlans allows 0 \(untagged only\)/);
  // two policies for the pool on this node: nothing beyond the defaults, and the message says why
  const two = vfLimitsFor('vio4wd.io/fast', [a, policy('fast2', { limits: { allowedVlans: ['0-4094'] } })], {}, undefined);
  assert.equal(vfSettingsDenied({ vlan: 0, spoofchk: true }, two, 'x'), undefined);
  assert.match(vfSettingsDenied({ vlan: 10, spoofchk: true }, two, 'x') ?? '', /^vlan: 10 is not allowed for x: pool vio4wd\.io\/fast is defined on this node by more than one VirtioForwarderPolicy \(fast, fast2\): the cluster admin must make their nodeSelectors disjoint/);
  // a policy whose list does not parse (written past the CRD's pattern): defaults, with the entry named
  const broken = vfLimitsFor('vio4wd.io/fast', [policy('fast', { limits: { allowedVlans: ['300-200'] } })], {}, undefined);
  assert.match(vfSettingsDenied({ vlan: 250, spoofchk: true }, broken, 'x') ?? '', /VirtioForwarderPolicy fast spec\.limits\.allowedVlans\[0\]: "300-200" is not a VLAN id or range/);
});

test('a VF is in a pool by PF name, PCI address or vendor:device; anything else is not', () => {
  const pool: VfPool = { name: 'p', policy: 'x', pfNames: ['ens1f0'], pciAddresses: ['0000:3b:02.1'], devices: [{ vendor: '15b3', device: '101e' }], virtualDevices: [] };
  assert.ok(vfInPool({ pciAddress: '0000:3c:02.0', pfName: 'ens1f0', vendor: '8086', device: '1889' }, pool));
  assert.ok(vfInPool({ pciAddress: '0000:3B:02.1', pfName: 'ens9', vendor: '8086', device: '1889' }, pool));
  assert.ok(vfInPool({ pciAddress: '0000:b0:02.0', pfName: 'ens2f0', vendor: '0x15B3', device: '101E' }, pool));
  assert.ok(!vfInPool({ pciAddress: '0000:00:03.0', pfName: 'eth0', vendor: '8086', device: '100e' }, pool));
});

test('relay directories are 0750 or 2770 with the given owner, never through a symlink; the socket root is tightened', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vio4wd-sockroot-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  chmodSync(root, 0o777);
  await prepareSocketRoot(root);
  assert.equal(statSync(root).mode & 0o7777, 0o755);
  const dir = join(root, 'team-a.vm1');
  await prepareRelayDir(dir, { uid: 0, gid: 107, mode: 0o2770 });
  assert.equal(lstatSync(dir).mode & 0o7777, 0o2770);
  assert.equal(lstatSync(dir).gid, 107);
  // an existing 0777 directory (older agent) is taken over and tightened
  chmodSync(dir, 0o777);
  await prepareRelayDir(dir, { uid: 107, gid: 0, mode: 0o750 });
  assert.equal(lstatSync(dir).mode & 0o7777, 0o750);
  assert.equal(lstatSync(dir).uid, 107);
  mkdirSync(join(root, 'elsewhere'));
  symlinkSync(join(root, 'elsewhere'), join(root, 'team-a.link'));
  await assert.rejects(prepareRelayDir(join(root, 'team-a.link'), { uid: 0, gid: 0, mode: 0o750 }), /exists and is not a directory/);
  await assert.rejects(prepareRelayDir(join(root, 'x'), { uid: 0, gid: 0, mode: 0o777 }), /world-writable/);
});

test('owner and group names resolve through NSS (getent), numbers pass, unknown names name the field', async () => {
  assert.equal(await resolveOwner('root', 'user', 'f'), 0);
  assert.equal(await resolveOwner('root', 'group', 'f'), 0);
  assert.equal(await resolveOwner('107', 'group', 'f'), 107);
  await assert.rejects(resolveOwner('no-such-user-vio4wd', 'user', 'spec.socket.owner'), /spec\.socket\.owner.*no user named "no-such-user-vio4wd".*getent passwd/);
  // without getent, the files are read
  assert.equal(await resolveOwner('root', 'user', 'f', { getent: '/nonexistent/getent' }), 0);
});
