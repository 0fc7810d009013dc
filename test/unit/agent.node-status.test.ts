// The VirtioForwarderNode status the agent computes (pure parts): conditions from what it knows,
// lastTransitionTime kept while a status holds, and the merge patch of only what changed. The
// same against a real kube-apiserver: test/integration/node-reconciler.kube.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeConditionInputs } from '../../src/agent/node/conditions.js';
import { mergePatchOf } from '../../src/agent/node/publisher.js';
import { agentNotReporting, markedNotReporting, mergeConditions, NodeConditionReason } from '../../src/kube/index.js';

const pages = (free: number, total = 512) => [{ numaNode: 0, pageSizeKiB: 2048, total, free }];
const summary = (cs: { type: string; status: string; reason: string }[]) => cs.map((c) => `${c.type}=${c.status}/${c.reason}`);

test('a running engine with hugepages free and no device plugin: Ready', () => {
  assert.deepEqual(summary(nodeConditionInputs({ engine: { up: true, dpdkVersion: '22.11.11' }, hugepages: pages(10) })), [
    'EngineRunning=True/EngineStarted',
    'HugepagesAvailable=True/HugepagesFree',
    'Ready=True/AgentReady',
  ]);
});

test('an engine that does not run: not Ready, with the engine\'s message', () => {
  const cs = nodeConditionInputs({ engine: { up: false, message: 'EAL: no hugepages' }, hugepages: pages(0) });
  assert.deepEqual(summary(cs), ['EngineRunning=False/EngineStopped', 'HugepagesAvailable=False/HugepagesExhausted', 'Ready=False/EngineNotRunning']);
  assert.equal(cs[0]!.message, 'EAL: no hugepages');
  assert.equal(cs[1]!.message, 'no 2Mi hugepage free on this node');
});

test('hugepages: none reserved, and per page size over NUMA nodes', () => {
  assert.deepEqual(summary(nodeConditionInputs({ engine: { up: true }, hugepages: [] })).slice(1, 2), ['HugepagesAvailable=False/NoHugepages']);
  const two = nodeConditionInputs({
    engine: { up: true },
    hugepages: [
      { numaNode: 0, pageSizeKiB: 2048, total: 8, free: 0 },
      { numaNode: 1, pageSizeKiB: 2048, total: 8, free: 3 },
      { numaNode: 0, pageSizeKiB: 1048576, total: 2, free: 0 },
    ],
  });
  assert.equal(two[1]!.status, 'True');
  assert.equal(two[1]!.message, '2Mi hugepages free');
});

test('the device plugin: every pool registered, none yet, or one kubelet lacks (not Ready)', () => {
  const up = { engine: { up: true }, hugepages: pages(1) };
  assert.deepEqual(summary(nodeConditionInputs({ ...up, devicePlugin: [] })).slice(2), ['DevicePluginRegistered=True/NoPools', 'Ready=True/AgentReady']);
  assert.deepEqual(summary(nodeConditionInputs({ ...up, devicePlugin: [{ resourceName: 'vio4wd.io/a', registered: true }] })).slice(2), ['DevicePluginRegistered=True/Registered', 'Ready=True/AgentReady']);
  const missing = nodeConditionInputs({ ...up, devicePlugin: [{ resourceName: 'vio4wd.io/b', registered: false }, { resourceName: 'vio4wd.io/a', registered: true }] });
  assert.deepEqual(summary(missing).slice(2), ['DevicePluginRegistered=False/NotRegistered', 'Ready=False/DevicePluginNotRegistered']);
  assert.match(missing[3]!.message, /not registered with kubelet: vio4wd\.io\/b \(/);
});

test('lastTransitionTime stays while a status holds and moves when it changes; observedGeneration is set', () => {
  const t0 = new Date('2026-01-01T00:00:00.123Z');
  const first = mergeConditions(undefined, nodeConditionInputs({ engine: { up: true }, hugepages: pages(1) }), 3, t0);
  assert.equal(first[0]!.lastTransitionTime, '2026-01-01T00:00:00Z', 'seconds, as metav1.Time');
  assert.equal(first[0]!.observedGeneration, 3);
  const later = new Date('2026-01-01T01:00:00Z');
  const same = mergeConditions(first, nodeConditionInputs({ engine: { up: true }, hugepages: pages(7) }), 3, later);
  assert.deepEqual(same, first, 'nothing a user reads changed: the same conditions, so no write');
  const down = mergeConditions(first, nodeConditionInputs({ engine: { up: false }, hugepages: pages(7) }), 3, later);
  assert.equal(down[0]!.lastTransitionTime, '2026-01-01T01:00:00Z');
  assert.equal(down[1]!.lastTransitionTime, '2026-01-01T00:00:00Z', 'hugepages did not change');
});

test("the operator's mark: every condition Unknown with AgentNotReporting, recognised as such", () => {
  const cs = mergeConditions(undefined, nodeConditionInputs({ engine: { up: true }, hugepages: pages(1) }), 1, new Date('2026-01-01T00:00:00Z'));
  assert.equal(markedNotReporting(cs), false);
  const marked = agentNotReporting(cs, 'silent', new Date('2026-01-01T00:05:00Z'));
  assert.deepEqual(summary(marked), ['EngineRunning=Unknown/AgentNotReporting', 'HugepagesAvailable=Unknown/AgentNotReporting', 'Ready=Unknown/AgentNotReporting']);
  assert.equal(marked[2]!.lastTransitionTime, '2026-01-01T00:05:00Z');
  assert.equal(marked[2]!.observedGeneration, 1);
  assert.equal(markedNotReporting(marked), true);
  assert.equal(NodeConditionReason.AgentNotReporting, 'AgentNotReporting');
});

test('the merge patch carries only what changed, null for what is gone, arrays whole; nothing when equal', () => {
  const from = { engine: { up: false, message: 'down', dpdkVersion: '22.11' }, vfs: [{ pciAddress: 'a', driver: 'vfio-pci' }], workerCpus: [1] };
  assert.equal(mergePatchOf(from, structuredClone(from)), undefined);
  // the apiserver hands keys back sorted: not a change
  assert.equal(mergePatchOf({ vfs: [{ driver: 'vfio-pci', pciAddress: 'a' }] }, { vfs: [{ pciAddress: 'a', driver: 'vfio-pci' }] }), undefined);
  assert.deepEqual(mergePatchOf(from, { engine: { up: true, dpdkVersion: '22.11' }, vfs: [{ pciAddress: 'a', driver: 'vfio-pci' }, { pciAddress: 'b' }], workerCpus: [1] }), {
    engine: { up: true, message: null },
    vfs: [{ pciAddress: 'a', driver: 'vfio-pci' }, { pciAddress: 'b' }],
  });
  assert.deepEqual(mergePatchOf({}, { relays: { total: 1 } }), { relays: { total: 1 } });
});
