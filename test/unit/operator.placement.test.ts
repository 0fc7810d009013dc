// Where the operator puts a VirtioRelay, as pure logic: nodes as their agents report them,
// relays already assigned (some not yet reported), and what the relay asks for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlacementSnapshot, describeRequest, nodeUsage, normalizeVf, placeRelay, usedByKey, type AssignedRelay, type Placement, type PlacementNode, type PlacementRelay, type PlacementVf } from '../../src/operator/placement.js';

/** VFs of one PF: pf ens<bus>f0 at 0000:<bus>:02.<i>. */
function vfs(pf: string, bus: string, count: number, numaNode: number | null, from = 0): PlacementVf[] {
  return Array.from({ length: count }, (_, i) =>
    normalizeVf({ pciAddress: `0000:${bus}:0${Math.floor((from + i) / 8) + 2}.${(from + i) % 8}`, pfName: pf, vfIndex: from + i, vendor: '8086', device: '154c', numaNode: numaNode ?? -1 }),
  );
}

function node(name: string, list: PlacementVf[], extra: Partial<PlacementNode> = {}): PlacementNode {
  return { name, vfs: list, ...extra };
}

function relay(key: string, vf: PlacementRelay['vf'], numaNode?: number): PlacementRelay {
  return { key, vf, ...(numaNode !== undefined ? { numaNode } : {}) };
}

function placed(r: ReturnType<typeof placeRelay>): Placement {
  if (!r.ok) assert.fail(`expected a placement, got: ${r.message}`);
  return r;
}

function failed(r: ReturnType<typeof placeRelay>): string {
  if (r.ok) assert.fail(`expected no placement, got node ${r.node} ${r.vfs.join(',')}`);
  return r.message;
}

test('a relay naming a PCI address goes to the node that has that VF free', () => {
  const nodes = [node('n1', vfs('ens1f0', '05', 2, 0)), node('n2', vfs('ens1f0', '06', 2, 0))];
  const r = placed(placeRelay(relay('t/a', { pciAddress: '0000:06:02.1' }), nodes, []));
  assert.equal(r.node, 'n2');
  assert.deepEqual(r.vfs, ['0000:06:02.1']);
  // upper-case input is the same address
  assert.equal(placed(placeRelay(relay('t/a', { pciAddress: '0000:06:02.1'.toUpperCase() }), nodes, [])).node, 'n2');
});

test('a VF in use, claimed by an assigned relay, or absent is reported as such', () => {
  const n1 = node('n1', vfs('ens1f0', '05', 2, 0));
  n1.vfs[0]!.usedBy = 't/other';
  const n2 = node('n2', vfs('ens1f0', '06', 2, 0));
  const assigned: AssignedRelay[] = [{ key: 't/b', node: 'n2', vf: { pciAddress: '0000:06:02.0' } }];
  assert.equal(
    failed(placeRelay(relay('t/a', { pciAddress: '0000:05:02.0' }), [n1, n2], assigned)),
    'no node has a free VF 0000:05:02.0 (0/2 nodes available: 1 VF in use, 1 VF not on the node)',
  );
  assert.match(failed(placeRelay(relay('t/a', { pciAddress: '0000:06:02.0' }), [n1, n2], assigned)), /1 VF in use/);
});

test('a selector matches pfName, vendor, device and index range on the node\'s VF list', () => {
  const nodes = [node('n1', [...vfs('ens1f0', '05', 4, 0), ...vfs('ens1f1', '05', 4, 0, 8)]), node('n2', vfs('ens2f0', '06', 4, 0))];
  const r = placed(placeRelay(relay('t/a', { selector: { pfName: 'ens1f1', vfIndexRange: '10-11' } }), nodes, []));
  assert.equal(r.node, 'n1');
  assert.deepEqual(r.vfs, ['0000:05:03.2']); // index 10, the lowest in range
  assert.equal(placed(placeRelay(relay('t/a', { selector: { pfName: 'ens2f0', vendor: '8086', device: '154C' } }), nodes, [])).node, 'n2');
  assert.equal(
    failed(placeRelay(relay('t/a', { selector: { pfName: 'ens9f0' } }), nodes, [])),
    'no node has a free VF matching selector pfName=ens9f0 (0/2 nodes available: 2 no matching VF)',
  );
});

test('nodes that cannot take relays are skipped and counted in the message', () => {
  const nodes = [
    node('down', vfs('ens1f0', '05', 4, 0), { unavailable: 'engine not up' }),
    node('full', vfs('ens1f0', '06', 1, 0).map((v) => ({ ...v, usedBy: 't/x' }))),
    node('cordoned', vfs('ens1f0', '07', 4, 0), { unavailable: 'node cordoned' }),
  ];
  assert.equal(
    failed(placeRelay(relay('t/a', { selector: { pfName: 'ens1f0' } }), nodes, [])),
    'no node has a free VF matching selector pfName=ens1f0 (0/3 nodes available: 1 all matching VFs in use, 1 engine not up, 1 node cordoned)',
  );
  assert.equal(failed(placeRelay(relay('t/a', { devargs: 'net_tap0' }), [], [])), 'no node can run the relay (node for devargs net_tap0): no node runs the vio4wd agent');
});

test('spec.numaNode restricts the VFs; without it the NUMA node with the most free VFs wins', () => {
  const n1 = node('n1', [...vfs('ens1f0', '05', 2, 0), ...vfs('ens1f1', '85', 3, 1)]);
  const any = placed(placeRelay(relay('t/a', { selector: { vendor: '8086' } }), [n1], []));
  assert.equal(any.numaNode, 1);
  assert.deepEqual(any.vfs, ['0000:85:02.0']);
  const on0 = placed(placeRelay(relay('t/a', { selector: { vendor: '8086' } }, 0), [n1], []));
  assert.equal(on0.numaNode, 0);
  assert.deepEqual(on0.vfs, ['0000:05:02.0']);
  // when NUMA 1 has fewer free ones left, NUMA 0 is preferred
  const assigned: AssignedRelay[] = [0, 1, 2].map((i) => ({ key: `t/r${i}`, node: 'n1', vf: { pciAddress: `0000:85:02.${i}` } })).slice(0, 2);
  assert.equal(placed(placeRelay(relay('t/a', { selector: { vendor: '8086' } }), [n1], assigned)).numaNode, 0);
  // a named VF on the wrong NUMA node does not fit
  assert.equal(
    failed(placeRelay(relay('t/a', { pciAddress: '0000:05:02.0' }, 1), [n1], [])),
    'no node has a free VF 0000:05:02.0 on NUMA node 1 (0/1 nodes available: 1 VF on another NUMA node)',
  );
  assert.match(failed(placeRelay(relay('t/a', { selector: { pfName: 'ens1f0' } }, 1), [n1], [])), /on NUMA node 1 \(0\/1 nodes available: 1 no free matching VF on NUMA node 1\)/);
});

test('load spreads: the node with the fewest relays wins, then the one with more room', () => {
  const nodes = [node('a', vfs('p', '05', 4, 0)), node('b', vfs('p', '06', 8, 0)), node('c', vfs('p', '07', 4, 0))];
  const assigned: AssignedRelay[] = [
    { key: 't/x', node: 'a', vf: { devargs: 'net_null0' } },
    { key: 't/y', node: 'c', vf: { devargs: 'net_null1' } },
  ];
  assert.equal(placed(placeRelay(relay('t/n', { selector: { pfName: 'p' } }), nodes, assigned)).node, 'b');
  assert.equal(placed(placeRelay(relay('t/n', { selector: { pfName: 'p' } }), nodes, [])).node, 'b', 'equal load: more free VFs');
  // relays the agent reports (e.g. from its own config) count as load too
  const busy = [node('a', vfs('p', '05', 4, 0), { reportedRelays: 5 }), node('b', vfs('p', '06', 4, 0))];
  assert.equal(placed(placeRelay(relay('t/n', { devargs: 'net_null0' }), busy, [])).node, 'b');
});

test('relays assigned but not yet reported hold VFs: reservations, named VFs, then selector guesses', () => {
  const n1 = node('n1', vfs('ens1f0', '05', 3, 0));
  const assigned: AssignedRelay[] = [
    { key: 't/guess', node: 'n1', vf: { selector: { pfName: 'ens1f0' } } },
    { key: 't/named', node: 'n1', vf: { pciAddress: '0000:05:02.0' } },
    { key: 't/res', node: 'n1', vf: { selector: { pfName: 'ens1f0' } }, reserved: ['0000:05:02.2'] },
  ];
  const u = nodeUsage(n1, assigned);
  assert.equal(u.relays, 3);
  assert.equal(u.free.size, 0);
  assert.equal(u.claims.get('0000:05:02.0'), 't/named');
  assert.equal(u.claims.get('0000:05:02.2'), 't/res');
  assert.equal(u.claims.get('0000:05:02.1'), 't/guess', 'the selector relay takes what is left, not the named VF');
  assert.equal(failed(placeRelay(relay('t/new', { selector: { pfName: 'ens1f0' } }), [n1], assigned)), 'no node has a free VF matching selector pfName=ens1f0 (0/1 nodes available: 1 all matching VFs in use)');
});

test('a relay the node reports is counted once: by the VF whose usedBy names it', () => {
  const n1 = node('n1', vfs('ens1f0', '05', 2, 0));
  n1.vfs[1]!.usedBy = 't.a'; // the agent's relay name form
  const assigned: AssignedRelay[] = [{ key: 't/a', node: 'n1', vf: { selector: { pfName: 'ens1f0' } }, reserved: ['0000:05:02.0'] }];
  const u = nodeUsage(n1, assigned);
  assert.deepEqual([...u.free.keys()], ['0000:05:02.0'], 'the reservation guessed another VF; the report wins');
  assert.equal(usedByKey('t.a'), 't/a');
  assert.equal(usedByKey('ns/name.with.dots'), 'ns/name.with.dots');
});

test('bonds need all their VFs free on one node', () => {
  const n1 = node('n1', vfs('ens1f0', '05', 2, 0));
  const r = placed(placeRelay(relay('t/b', { pciAddresses: ['0000:05:02.0', '0000:05:02.1'] }), [n1], []));
  assert.deepEqual(r.vfs, ['0000:05:02.0', '0000:05:02.1']);
  n1.vfs[1]!.usedBy = 't/x';
  assert.match(failed(placeRelay(relay('t/b', { pciAddresses: ['0000:05:02.0', '0000:05:02.1'] }), [n1], [])), /^no node has a free VFs 0000:05:02.0, 0000:05:02.1 \(0\/1 nodes available: 1 VF in use\)$/);
  assert.match(failed(placeRelay(relay('t/b', { pciAddresses: ['0000:05:02.0', '0000:09:02.1'] }), [n1], [])), /not all VFs on the node/);
});

test('devargs relays (test stand-ins) go to any node whose engine is up, spreading', () => {
  const nodes = [node('a', [], { unavailable: 'engine not up' }), node('b', []), node('c', [])];
  const assigned: AssignedRelay[] = [];
  for (let i = 0; i < 4; i++) {
    const r = placed(placeRelay(relay(`t/d${i}`, { devargs: `net_null${i}` }), nodes, assigned));
    assert.deepEqual(r.vfs, []);
    assigned.push({ key: `t/d${i}`, node: r.node, vf: { devargs: `net_null${i}` } });
  }
  assert.deepEqual(assigned.map((a) => a.node), ['b', 'c', 'b', 'c']);
});

test('64 relays placed one after another, each seeing the earlier ones: no VF twice, load even', () => {
  const nodes = [node('n1', [...vfs('ens1f0', '05', 16, 0), ...vfs('ens1f1', '85', 16, 1)]), node('n2', vfs('ens1f0', '06', 24, 0)), node('n3', vfs('ens1f0', '07', 24, 1))];
  const assigned: AssignedRelay[] = [];
  const taken = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const r = placed(placeRelay(relay(`t/r${i}`, { selector: { vendor: '8086' } }), nodes, assigned));
    const id = `${r.node}/${r.vfs[0]}`;
    assert.ok(!taken.has(id), `${id} given twice`);
    taken.add(id);
    assigned.push({ key: `t/r${i}`, node: r.node, vf: { selector: { vendor: '8086' } }, reserved: r.vfs });
  }
  const per = (n: string) => assigned.filter((a) => a.node === n).length;
  assert.deepEqual([per('n1'), per('n2'), per('n3')].sort(), [21, 21, 22]);
  // 80 VFs, 64 used: 16 left, and the 65th..80th fit, the 81st does not
  for (let i = 64; i < 80; i++) {
    const r = placed(placeRelay(relay(`t/r${i}`, { selector: { vendor: '8086' } }), nodes, assigned));
    assigned.push({ key: `t/r${i}`, node: r.node, vf: { selector: { vendor: '8086' } }, reserved: r.vfs });
  }
  assert.match(failed(placeRelay(relay('t/r80', { selector: { vendor: '8086' } }), nodes, assigned)), /0\/3 nodes available: 3 all matching VFs in use/);
});

test('one snapshot places a burst as one-after-another placement does: same nodes, same VFs', () => {
  const nodes = [node('n1', [...vfs('ens1f0', '05', 16, 0), ...vfs('ens1f1', '85', 16, 1)]), node('n2', vfs('ens1f0', '06', 24, 0)), node('n3', vfs('ens1f0', '07', 24, 1))];
  const before: AssignedRelay[] = [{ key: 't/old', node: 'n2', vf: { pciAddress: '0000:06:02.0' } }];
  const assigned = [...before];
  const snapshot = new PlacementSnapshot(nodes, before);
  for (let i = 0; i < 81; i++) {
    const rel = relay(`t/r${i}`, i % 3 === 0 ? { selector: { pfName: 'ens1f1' } } : { selector: { vendor: '8086' } });
    const one = placeRelay(rel, nodes, assigned);
    assert.deepEqual(snapshot.place(rel, nodes), one, `relay ${i}`);
    if (one.ok) assigned.push({ key: rel.key, node: one.node, vf: rel.vf, reserved: one.vfs });
  }
  // 27 relays ask for ens1f1's 16 VFs (11 do not fit), 54 for any of the other 63 free VFs
  assert.equal(assigned.length, 1 + 16 + 54);
});

test('an invalid selector is unschedulable with a message naming the field', () => {
  const msg = failed(placeRelay(relay('t/a', { selector: {} }), [node('n1', vfs('p', '05', 1, 0))], []));
  assert.match(msg, /^spec\.vf\.selector: the selector is empty/);
});

test('describeRequest says what the relay asks for', () => {
  assert.equal(describeRequest({ vf: { selector: { pfName: 'ens1f0', vendor: '8086' } }, numaNode: 1 }), 'VF matching selector pfName=ens1f0,vendor=8086 on NUMA node 1');
  assert.equal(describeRequest({ vf: { pciAddress: '0000:05:02.0' } }), 'VF 0000:05:02.0');
});

test('normalizeVf: lower case ids, -1 NUMA as unknown, empty usedBy as free', () => {
  assert.deepEqual(normalizeVf({ pciAddress: '0000:AF:02.1', vendor: '0x8086', device: '154C', numaNode: -1, usedBy: '' }), {
    pciAddress: '0000:af:02.1',
    pfName: '',
    vfIndex: -1,
    vendor: '8086',
    device: '154c',
    numaNode: null,
    usedBy: null,
  });
});
