// Selectors pick VFs by PF name + index range, vendor/device or PCI address; pickFreeVf chooses
// a free one NUMA-aware. The operator uses the same functions on a node's VF list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileVfSelector, matchVf, parseIndexRange, pickFreeVf, selectVfs, type VfIdentity } from '../../src/util/vf-selector.js';
import { parseMac, parsePciAddress } from '../../src/util/identifiers.js';
import { ValidationError } from '../../src/util/errors.js';

function vf(pfName: string, vfIndex: number, numaNode: number | null, over: Partial<VfIdentity> = {}): VfIdentity {
  const bus = pfName === 'ens1f0' ? '3c' : 'b0';
  return { pciAddress: `0000:${bus}:0${2 + (vfIndex >> 3)}.${vfIndex & 7}`, pfName, vfIndex, vendor: '8086', device: '1889', numaNode, ...over };
}

// node 0: ens1f0 VFs 0-7 (Intel iavf); node 1: ens2f0 VFs 0-3 (Mellanox)
const NODE: VfIdentity[] = [
  ...Array.from({ length: 8 }, (_, i) => vf('ens1f0', i, 0)),
  ...Array.from({ length: 4 }, (_, i) => vf('ens2f0', i, 1, { vendor: '15b3', device: '101e' })),
];

const names = (vfs: VfIdentity[]) => vfs.map((v) => `${v.pfName}#${v.vfIndex}`);

test('PF name with an index range picks exactly those VFs of that PF', () => {
  assert.deepEqual(names(selectVfs({ pfName: 'ens1f0', vfIndexRange: '2-4' }, NODE)), ['ens1f0#2', 'ens1f0#3', 'ens1f0#4']);
  assert.deepEqual(names(selectVfs({ pfName: 'ens1f0', vfIndexRange: '3' }, NODE)), ['ens1f0#3']);
  assert.deepEqual(names(selectVfs({ pfName: 'ens2f0', vfIndexRange: '0-1,3' }, NODE)), ['ens2f0#0', 'ens2f0#1', 'ens2f0#3']);
  assert.deepEqual(names(selectVfs({ pfName: 'ens9f9' }, NODE)), []);
});

test('vendor/device select by PCI ids, in any case and with or without 0x', () => {
  assert.deepEqual(names(selectVfs({ vendor: '0x15B3', device: '101E' }, NODE)), ['ens2f0#0', 'ens2f0#1', 'ens2f0#2', 'ens2f0#3']);
  assert.equal(selectVfs({ vendor: '8086' }, NODE).length, 8);
});

test('a PCI address selects one VF; the short form gets domain 0000', () => {
  assert.deepEqual(names(selectVfs({ pciAddress: '3c:02.5' }, NODE)), ['ens1f0#5']);
  assert.equal(matchVf({ pciAddress: '0000:3C:02.5' }, NODE[5]!), true);
  assert.equal(matchVf({ pciAddress: '0000:3c:02.5', pfName: 'ens2f0' }, NODE[5]!), false, 'fields combine with AND');
});

test('the relay contract\'s selector shape (no pciAddress) is accepted as is', () => {
  const fromRelaySpec: { pfName?: string; vendor?: string; device?: string; vfIndexRange?: string } = { pfName: 'ens1f0', vfIndexRange: '7' };
  assert.deepEqual(names(selectVfs(fromRelaySpec, NODE)), ['ens1f0#7']);
});

test('bad selectors are refused with the field and the fix', () => {
  const bad: [unknown, RegExp][] = [
    [{}, /^selector: the selector is empty.*give at least one of pfName/],
    [{ pfName: 'ens1f0', vfIndexRange: '7-3' }, /^selector\.vfIndexRange: "7-3" runs backwards; write the lower index first, e\.g\. "3-7"/],
    [{ vfIndexRange: 'all' }, /^selector\.vfIndexRange: "all" is not an index range; write .*"0-7"/],
    [{ vendor: 'intel' }, /^selector\.vendor: "intel" is not a PCI id; write 4 hex digits/],
    [{ pciAddress: '3c:2.0' }, /^selector\.pciAddress: "3c:2\.0" is not a PCI address; write it as DDDD:BB:DD\.F/],
    [{ pciAddress: '0000:3c:20.0' }, /^selector\.pciAddress: .*device number 20 is above 1f/],
    [{ pfname: 'ens1f0' }, /^selector\.pfname: unknown selector field; use pfName/],
    [{ pfName: 'has space' }, /^selector\.pfName: .*not an interface name/],
    ['ens1f0', /^selector: expected an object/],
  ];
  for (const [input, re] of bad) {
    assert.throws(() => compileVfSelector(input), (err: unknown) => err instanceof ValidationError && re.test(err.message), JSON.stringify(input));
  }
  assert.throws(() => compileVfSelector({ vendor: 'x' }, 'spec.vf.selector'), /spec\.vf\.selector\.vendor: "x" is not a PCI id/);
});

test('index ranges, PCI addresses and MACs parse to normal forms', () => {
  assert.deepEqual(parseIndexRange('0-3, 6'), [{ start: 0, end: 3 }, { start: 6, end: 6 }]);
  assert.equal(parsePciAddress('0000:3B:02.1'), '0000:3b:02.1');
  assert.equal(parseMac('52-54-00-AB-CD-EF'), '52:54:00:ab:cd:ef');
  assert.throws(() => parseMac('01:00:5e:00:00:01', 'spec.mac'), /spec\.mac: 01:00:5e:00:00:01 is a multicast address/);
  assert.throws(() => parseMac('52:54:00:12:34'), /mac: "52:54:00:12:34" is not a MAC address; write six hex octets/);
});

test('pickFreeVf skips VFs in use and prefers the wanted NUMA node', () => {
  assert.equal(names([pickFreeVf(NODE, { numaNode: 1 })!])[0], 'ens2f0#0');
  const inUse = NODE.filter((v) => v.pfName === 'ens2f0').map((v) => v.pciAddress);
  // node 1 is full: fall back to node 0 unless strict
  assert.equal(names([pickFreeVf(NODE, { numaNode: 1, inUse })!])[0], 'ens1f0#0');
  assert.equal(pickFreeVf(NODE, { numaNode: 1, inUse, strictNuma: true }), null);
  assert.equal(names([pickFreeVf(NODE, { selector: { pfName: 'ens1f0', vfIndexRange: '4-7' }, inUse: [NODE[4]!.pciAddress] })!])[0], 'ens1f0#5');
  assert.equal(pickFreeVf(NODE, { selector: { pfName: 'ens1f0', vfIndexRange: '4' }, inUse: [NODE[4]!.pciAddress] }), null);
});

test('pickFreeVf ranks a VF of unknown NUMA node before one known to be remote', () => {
  const vfs = [vf('ens2f0', 0, 1), vf('ens1f0', 0, null)];
  assert.equal(names([pickFreeVf(vfs, { numaNode: 0 })!])[0], 'ens1f0#0');
  assert.equal(names([pickFreeVf(vfs)!])[0], 'ens1f0#0', 'without a node: lowest PF name, then index');
});
