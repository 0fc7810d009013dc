// vio4wd-cni's pure logic: the plugin's handling of CNI commands, environment and config (the
// agent replaced by a function), the agent API's request checks, and the attachment rules (the
// VF programmer replaced by a map). test/integration/cni.cnitool.test.ts runs the real parts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { podOf, runPlugin, type AskAgent } from '../../src/cni/plugin.js';
import { AttachmentService, type AttachRelays } from '../../src/cni/attachments.js';
import { CniError, parseRequest, type AttachRequest, type PodRef } from '../../src/cni/protocol.js';
import type { VfPort, VfProgrammer, VfSettings } from '../../src/sriov/programmer.js';
import { vfLimitsOf, vfSettingsDenied, type WrittenVfLimits } from '../../src/policy/vf-settings.js';

const env = (cmd: string, more: Record<string, string> = {}) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: 'c1', CNI_IFNAME: 'net1', CNI_NETNS: '/var/run/netns/p1', ...more });
const conf = (o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'pool-a', type: 'vio4wd', deviceID: 'r1', ...o });

test('VERSION lists 1.0.0 and 1.1.0 and answers in the version asked', async () => {
  const out = await runPlugin({ env: { CNI_COMMAND: 'VERSION' }, stdin: '{"cniVersion":"1.0.0"}' });
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] });
});

test('ADD sends deviceID and runtimeConfig.mac to the agent and prints the result', async () => {
  const seen: AttachRequest[] = [];
  const ask: AskAgent = async (req) => {
    seen.push(req);
    return { ok: true, attachment: { deviceId: 'r1', containerId: 'c1', ifName: 'net1', network: 'pool-a', mac: '52:54:00:00:00:01', vlan: 0, spoofchk: true, socketPath: '/s', since: 'now' } };
  };
  const out = await runPlugin({ env: env('ADD'), stdin: conf({ mac: '52:54:00:99:99:99', runtimeConfig: { mac: '52:54:00:00:00:01' } }), ask });
  assert.equal(out.exitCode, 0, out.stdout);
  assert.deepEqual(seen[0], { version: 1, op: 'add', containerId: 'c1', ifName: 'net1', network: 'pool-a', netns: '/var/run/netns/p1', deviceId: 'r1', mac: '52:54:00:00:00:01' }, 'runtimeConfig wins over the config key');
  assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', interfaces: [{ name: 'net1', mac: '52:54:00:00:00:01', sandbox: '/var/run/netns/p1' }], ips: [] });
});

test('environment and config errors are CNI error JSON with the spec\'s codes', async () => {
  const ask: AskAgent = () => Promise.reject(new Error('must not be called'));
  const cases: [Record<string, string>, string, number, RegExp][] = [
    [{ CNI_COMMAND: 'ADD', CNI_IFNAME: 'net1', CNI_NETNS: '/n' }, conf(), 4, /CNI_CONTAINERID is not set/],
    [env('ADD', { CNI_IFNAME: 'a/b' }), conf(), 4, /CNI_IFNAME: "a\/b" is not a valid interface name/],
    [env('FROB'), conf(), 4, /CNI_COMMAND="FROB" is not one of ADD, DEL, CHECK, STATUS, GC, VERSION/],
    [env('ADD'), '{not json', 6, /not JSON/],
    [env('ADD'), conf({ cniVersion: '0.4.0' }), 1, /cniVersion "0.4.0" is not supported/],
    [env('ADD'), conf({ deviceID: undefined }), 7, /deviceID: missing; annotate the NetworkAttachmentDefinition "pool-a"/],
    [env('ADD'), conf({ runtimeConfig: { mac: 7 } }), 7, /runtimeConfig.mac: expected a MAC string/],
    [env('CHECK'), conf(), 7, /prevResult: missing/],
  ];
  for (const [e, stdin, code, re] of cases) {
    const out = await runPlugin({ env: e, stdin, ask });
    assert.equal(out.exitCode, 1);
    const err = JSON.parse(out.stdout) as { code: number; msg: string };
    assert.equal(err.code, code, err.msg);
    assert.match(err.msg, re);
  }
});

test('an unreachable agent: ADD and DEL say try again later (11), STATUS says not available (50)', async () => {
  const ask: AskAgent = () => Promise.reject(new Error('/run/vio4wd/agent.sock: ENOENT'));
  for (const [cmd, code] of [['ADD', 11], ['DEL', 11], ['STATUS', 50]] as const) {
    const out = await runPlugin({ env: env(cmd), stdin: conf(), ask });
    assert.equal(out.exitCode, 1);
    const e = JSON.parse(out.stdout) as { code: number; msg: string };
    assert.equal(e.code, code, cmd);
    assert.match(e.msg, /cannot reach the vio4wd agent.*is the vio4wd agent running on this node/);
  }
});

test('the agent API refuses unknown fields, bad ids and MACs, naming the field', () => {
  const bad: [string, number, RegExp][] = [
    ['{"version":1,"op":"add","containerId":"c","ifName":"n","deviceId":"r","evil":1}', 2, /unknown field "evil"/],
    ['{"version":1,"op":"add","containerId":"c d","ifName":"n","deviceId":"r"}', 7, /containerId: "c d" has characters outside/],
    ['{"version":1,"op":"add","containerId":"c","ifName":"n"}', 7, /deviceID: missing/],
    ['{"version":1,"op":"add","containerId":"c","ifName":"n","deviceId":"r","mac":"00:00:00:00:00:00"}', 7, /all-zero MAC/],
    ['{"version":1,"op":"add","containerId":"c","ifName":"n","deviceId":"r","mtu":40}', 7, /mtu: 40 is not an MTU: give 68..9702/],
    ['[]', 6, /must be a JSON object/],
    ['{"version":1,"op":"add","containerId":"c","ifName":"n","deviceId":"r","pod":{"namespace":"Ten/ant","name":"p"}}', 7, /pod.namespace: "Ten\/ant" is not a namespace name/],
    ['{"version":1,"op":"add","containerId":"c","ifName":"n","deviceId":"r","pod":{"namespace":"t","name":"p","uid":"x"}}', 7, /pod.uid: unknown field/],
  ];
  for (const [line, code, re] of bad) {
    assert.throws(() => parseRequest(line), (e: unknown) => e instanceof CniError && e.code === code && re.test(e.message), line);
  }
});

/** A node with relays r1 (spec.mac) and r2 (none) and a VF programmer that records settings. */
function node(allocatedTo?: (relay: string, resourceName: string | undefined) => Promise<PodRef[]>, over: Partial<AttachRelays> = {}, written: WrittenVfLimits = { allowedVlans: ['0', '7'] }) {
  const vf = new Map<string, VfSettings>([['r2', { mac: '02:00:00:00:00:b2', vlan: 0, spoofchk: true }]]);
  const shown = new Map<string, string | undefined>();
  const relays: AttachRelays = {
    relay: (n) => (n === 'r1' ? { socketPath: '/s1', phase: 'Ready', specMac: '02:00:00:00:00:a1', resourceName: 'vio4wd.io/pool' } : n === 'r2' ? { socketPath: '/s2', phase: 'Ready' } : undefined),
    port: async (n): Promise<VfPort> => ({ kind: 'devargs', devargs: `net_null_${n}` }),
    setMac: (n, m) => shown.set(n, m),
    ...over,
  };
  const name = (p: VfPort) => (p.kind === 'devargs' ? p.devargs.slice('net_null_'.length) : p.pciAddress);
  const programmer: VfProgrammer = {
    kind: 'memory',
    program: async (p, s) => void vf.set(name(p), s),
    readMac: async (p) => vf.get(name(p))?.mac,
  };
  // the pool policy's limits, decided by src/policy as the agent wires it
  const limits = { denied: (_rn: string | undefined, subject: string, r: { vlan: number; spoofchk: boolean }) => vfSettingsDenied(r, vfLimitsOf(written, 'VirtioForwarderPolicy p spec.limits', 'the cluster admin'), subject) };
  const svc = new AttachmentService({ relays, programmer, limits, statePath: null, logger: pino({ level: 'silent' }), ...(allocatedTo ? { allocatedTo } : {}) });
  const req = (o: Partial<AttachRequest>): AttachRequest => ({ version: 1, op: 'add', containerId: 'c1', ifName: 'net1', network: 'n', deviceId: 'r1', ...o });
  return { svc, vf, shown, req };
}

test('attachments: one pod per relay, DEL restores spec.mac or the VF\'s first MAC, DEL twice is fine', async () => {
  const { svc, vf, shown, req } = node();
  assert.equal((await svc.handle(req({ mac: '52:54:00:00:00:01', vlan: 7 }))).ok, true);
  assert.deepEqual(vf.get('r1'), { mac: '52:54:00:00:00:01', vlan: 7, spoofchk: true });
  assert.equal(shown.get('r1'), '52:54:00:00:00:01');
  const busy = await svc.handle(req({ containerId: 'c2', mac: '52:54:00:00:00:02' }));
  assert.equal(busy.ok, false);
  assert.equal(!busy.ok && busy.code, 101);
  // the same interface on a second relay is refused too
  const twice = await svc.handle(req({ deviceId: 'r2' }));
  assert.equal(!twice.ok && twice.code, 7);
  // r2 without a MAC keeps the VF's own and shows it
  const r2 = await svc.handle(req({ containerId: 'c3', deviceId: 'r2' }));
  assert.ok(r2.ok && r2.attachment?.mac === '02:00:00:00:00:b2');
  assert.equal((await svc.handle(req({ containerId: 'c3', deviceId: 'r2', mac: '52:54:00:00:00:03' }))).ok, true, 'a repeated ADD with another MAC reprograms');
  assert.equal(vf.get('r2')?.mac, '52:54:00:00:00:03');

  assert.deepEqual(await svc.handle(req({ op: 'del' })), { ok: true, removed: 1 });
  assert.deepEqual(vf.get('r1'), { mac: '02:00:00:00:00:a1', vlan: 0, spoofchk: true }, 'spec.mac, no VLAN');
  assert.equal(shown.get('r1'), undefined);
  assert.deepEqual(await svc.handle(req({ op: 'del' })), { ok: true, removed: 0 });
  assert.deepEqual(await svc.handle(req({ op: 'del', containerId: 'c3', deviceId: 'r2' })), { ok: true, removed: 1 });
  assert.equal(vf.get('r2')?.mac, '02:00:00:00:00:b2', 'the MAC the VF had before its first attachment');
  // gc: attachments of the network not in the valid list go
  await svc.handle(req({ containerId: 'c4', mac: '52:54:00:00:00:04' }));
  assert.deepEqual(await svc.handle({ version: 1, op: 'gc', network: 'n', valid: [] }), { ok: true, removed: 1 });
  assert.equal(svc.list().length, 0);
});

test('attachments during an upgrade handover: ADD, DEL and GC say try again later (11) and change nothing', async () => {
  const { svc, vf, req } = node();
  assert.equal((await svc.handle(req({ mac: '52:54:00:00:00:01' }))).ok, true);
  await svc.freeze();
  for (const r of [req({ deviceId: 'r2', containerId: 'c2' }), req({ op: 'del' }), { version: 1 as const, op: 'gc' as const, network: 'n', valid: [] }]) {
    const reply = await svc.handle(r);
    assert.ok(!reply.ok && reply.code === 11 && /handover to a new agent .* try again/.test(reply.msg), `${r.op}: ${JSON.stringify(reply)}`);
  }
  assert.deepEqual((await svc.handle({ version: 1, op: 'status' })).ok, true, 'STATUS still answers');
  assert.equal(vf.get('r1')?.mac, '52:54:00:00:00:01', 'the attachment stays');
  assert.equal(vf.has('r2'), true);
  assert.equal(vf.get('r2')?.mac, '02:00:00:00:00:b2', 'r2 was not programmed');
  svc.thaw();
  assert.deepEqual(await svc.handle(req({ op: 'del' })), { ok: true, removed: 1 });
});

test('pool policy: a VLAN or spoofchk off the policy does not allow is refused (105) before the VF is touched', async () => {
  const { svc, vf, shown, req } = node(undefined, {}, { allowedVlans: ['0', '100-199'] });
  const cases: [Partial<AttachRequest>, RegExp][] = [
    [{ vlan: 200 }, /^vlan: 200 is not allowed for relay "r1": VirtioForwarderPolicy p spec\.limits\.allowedVlans allows 0, 100-199; use an allowed VLAN, or ask the cluster admin to add 200 to VirtioForwarderPolicy p spec\.limits\.allowedVlans$/],
    [{ vlan: 150, spoofchk: false }, /^spoofchk: false \(spoof checking off\) is not allowed for relay "r1": VirtioForwarderPolicy p spec\.limits\.allowSpoofchkOff is not true; leave spoofchk out \(on\), or ask the cluster admin/],
  ];
  for (const [o, re] of cases) {
    const r = await svc.handle(req({ mac: '52:54:00:00:00:01', ...o }));
    assert.ok(!r.ok && r.code === 105, JSON.stringify(r));
    assert.match(!r.ok ? r.msg : '', re);
  }
  assert.equal(vf.get('r1'), undefined, 'nothing programmed');
  assert.equal(shown.get('r1'), undefined);
  assert.equal(svc.list().length, 0, 'no attachment kept');
  // inside the policy: programmed as asked
  assert.ok((await svc.handle(req({ mac: '52:54:00:00:00:01', vlan: 150 }))).ok);
  assert.deepEqual(vf.get('r1'), { mac: '52:54:00:00:00:01', vlan: 150, spoofchk: true });
  // a held attachment cannot be moved to a VLAN outside the policy by a repeated ADD
  const moved = await svc.handle(req({ mac: '52:54:00:00:00:01', vlan: 4000 }));
  assert.ok(!moved.ok && moved.code === 105, JSON.stringify(moved));
  assert.deepEqual(vf.get('r1'), { mac: '52:54:00:00:00:01', vlan: 150, spoofchk: true }, 'the attachment keeps its VLAN');

  // the defaults (a policy that says nothing): untagged, spoof checking on
  const d = node(undefined, {}, {});
  const tagged = await d.svc.handle(d.req({ mac: '52:54:00:00:00:01', vlan: 1 }));
  assert.ok(!tagged.ok && /^vlan: 1 is not allowed for relay "r1": VirtioForwarderPolicy p spec\.limits\.allowedVlans allows 0 \(untagged only\)/.test(tagged.msg), JSON.stringify(tagged));
  // spoof checking off where the policy allows it
  const off = node(undefined, {}, { allowSpoofchkOff: true });
  assert.ok((await off.svc.handle(off.req({ mac: '52:54:00:00:00:01', spoofchk: false }))).ok);
  assert.deepEqual(off.vf.get('r1'), { mac: '52:54:00:00:00:01', vlan: 0, spoofchk: false });
});

test('CNI_ARGS name the pod: K8S_POD_NAMESPACE and K8S_POD_NAME, both or none', () => {
  assert.deepEqual(podOf('IgnoreUnknown=1;K8S_POD_NAMESPACE=tenant-1;K8S_POD_NAME=vm-a;K8S_POD_INFRA_CONTAINER_ID=abc'), { namespace: 'tenant-1', name: 'vm-a' });
  assert.equal(podOf('K8S_POD_NAME=vm-a'), undefined);
  assert.equal(podOf(undefined), undefined);
});

test('ADD sends the pod of CNI_ARGS to the agent', async () => {
  let sent: AttachRequest | undefined;
  const ask: AskAgent = async (r) => {
    sent = r;
    return { ok: true, attachment: { deviceId: 'r1', containerId: 'c1', ifName: 'net1', network: 'pool-a', mac: '52:54:00:00:00:01', vlan: 0, spoofchk: true, socketPath: '/s', since: 'now' } };
  };
  const out = await runPlugin({ env: env('ADD', { CNI_ARGS: 'K8S_POD_NAMESPACE=tenant-1;K8S_POD_NAME=vm-a' }), stdin: conf(), ask });
  assert.equal(out.exitCode, 0, out.stdout);
  assert.deepEqual(sent?.pod, { namespace: 'tenant-1', name: 'vm-a' });
});

test('allocation check: only the pod kubelet gave the relay attaches it; no VF is touched otherwise', async () => {
  const asked: [string, string | undefined][] = [];
  let kubeletUp = true;
  const { svc, vf, req } = node(async (relay, resourceName) => {
    asked.push([relay, resourceName]);
    if (!kubeletUp) throw new Error('connect ENOENT /var/lib/kubelet/pod-resources/kubelet.sock');
    return relay === 'r1' ? [{ namespace: 'tenant-1', name: 'vm-a' }] : [];
  });
  const noPod = await svc.handle(req({ mac: '52:54:00:00:00:01' }));
  assert.ok(!noPod.ok && noPod.code === 4 && /CNI_ARGS name no pod.*cni.allocationCheck: false/.test(noPod.msg), JSON.stringify(noPod));
  const other = await svc.handle(req({ mac: '52:54:00:00:00:01', pod: { namespace: 'tenant-2', name: 'evil' } }));
  assert.ok(!other.ok && other.code === 104, JSON.stringify(other));
  assert.match(!other.ok ? other.msg : '', /kubelet did not allocate this relay to pod tenant-2\/evil \(no container of the pod holds device "r1" of vio4wd.io\/pool\).*k8s.v1.cni.cncf.io\/resourceName/);
  assert.doesNotMatch(!other.ok ? other.msg : '', /vm-a/, 'the refusal does not name the pod that holds the relay');
  assert.equal(vf.get('r1'), undefined, 'a refused ADD programs nothing');
  kubeletUp = false;
  const down = await svc.handle(req({ mac: '52:54:00:00:00:01', pod: { namespace: 'tenant-1', name: 'vm-a' } }));
  assert.ok(!down.ok && down.code === 11 && /cannot ask kubelet which pod holds relay "r1".*agent.podResources.enabled/.test(down.msg), JSON.stringify(down));
  kubeletUp = true;
  const ok = await svc.handle(req({ mac: '52:54:00:00:00:01', pod: { namespace: 'tenant-1', name: 'vm-a' } }));
  assert.ok(ok.ok && ok.attachment?.pod?.name === 'vm-a', JSON.stringify(ok));
  assert.equal(vf.get('r1')?.mac, '52:54:00:00:00:01');
  assert.deepEqual(asked[0], ['r1', 'vio4wd.io/pool'], 'the lookup is by device ID under the relay\'s resource name');
  // DEL needs no allocation (kubelet may have freed the device already)
  kubeletUp = false;
  assert.deepEqual(await svc.handle(req({ op: 'del' })), { ok: true, removed: 1 });
});

test('allocation check: the DRA driver, in process, attaches what the claim\'s allocation names without asking kubelet', async () => {
  let asked = 0;
  const { svc, vf, req } = node(async () => {
    asked++;
    return [];
  });
  const dra = await svc.handle(req({ containerId: 'dra:uid-1', ifName: 'nic/r1', mac: '52:54:00:00:00:09' }), { allocated: true });
  assert.ok(dra.ok, JSON.stringify(dra));
  assert.equal(vf.get('r1')?.mac, '52:54:00:00:00:09');
  assert.equal(asked, 0);
  // the same request without the in-process flag (what the socket passes on) is checked
  const viaSocket = await svc.handle(req({ containerId: 'c9', ifName: 'net1', deviceId: 'r2', mac: '52:54:00:00:00:0a', pod: { namespace: 'x', name: 'y' } }));
  assert.ok(!viaSocket.ok && viaSocket.code === 104, JSON.stringify(viaSocket));
});

test('reconfigure (the DRA driver): queues and MTU that differ from the relay\'s are applied, not refused, and DEL gives the relay its own back', async () => {
  const configured: [string, unknown][] = [];
  const { svc, req } = node(undefined, {
    relay: (n) => (n === 'r1' ? { socketPath: '/s1', phase: 'Ready', specMac: '02:00:00:00:00:a1', queues: 2, mtu: 1500 } : undefined),
    configure: async (n, o) => void configured.push([n, o]),
  });
  // from the CNI socket (no reconfigure): an MTU the relay does not forward is refused, as before
  const refused = await svc.handle(req({ mac: '52:54:00:00:00:01', mtu: 1400 }), { allocated: true });
  assert.ok(!refused.ok && /mtu: the attachment asks for 1400 but relay "r1" forwards 1500/.test(refused.msg), JSON.stringify(refused));
  const ok = await svc.handle(req({ mac: '52:54:00:00:00:01', mtu: 1400, queues: 2 }), { allocated: true, reconfigure: true });
  assert.ok(ok.ok, JSON.stringify(ok));
  assert.deepEqual(ok.attachment?.relayConfig, { mtu: 1400 }, 'only what differs from the relay\'s own');
  assert.deepEqual(configured, [['r1', { mtu: 1400 }]]);
  // a repeated ADD with the same values changes nothing
  assert.ok((await svc.handle(req({ mac: '52:54:00:00:00:01', mtu: 1400, queues: 2 }), { allocated: true, reconfigure: true })).ok);
  assert.equal(configured.length, 1);
  assert.deepEqual(await svc.handle(req({ op: 'del' })), { ok: true, removed: 1 });
  assert.deepEqual(configured, [['r1', { mtu: 1400 }], ['r1', undefined]], 'DEL: the relay\'s own queues and MTU again');
});

test('a MAC another namespace\'s relay holds is not given to a second VF; the same namespace may (migration)', async () => {
  const ns: Record<string, string | undefined> = { r1: 'tenant-a', r2: 'tenant-b', r3: 'tenant-a', r4: undefined };
  const { svc, vf, req } = node(undefined, {
    relay: (n) => (n in ns ? { socketPath: `/s-${n}`, phase: 'Ready', ...(ns[n] ? { namespace: ns[n] } : {}) } : undefined),
  });
  const victim = '52:54:00:aa:bb:01';
  assert.equal((await svc.handle(req({ mac: victim, pod: { namespace: 'tenant-a', name: 'vm-a' } }))).ok, true);
  // tenant-b's VM asks for tenant-a's MAC: refused before its VF is touched
  const stolen = await svc.handle(req({ containerId: 'c2', deviceId: 'r2', mac: victim, pod: { namespace: 'tenant-b', name: 'evil' } }));
  assert.ok(!stolen.ok && stolen.code === 7, JSON.stringify(stolen));
  assert.match(!stolen.ok ? stolen.msg : '', /mac: 52:54:00:aa:bb:01 is already the MAC of relay "r1" of namespace tenant-a.*give this VM \(namespace tenant-b\) another MAC/);
  assert.equal(vf.get('r2')?.mac, '02:00:00:00:00:b2', 'the refused VF keeps its own MAC');
  assert.equal(vf.get('r1')?.mac, victim);
  // the same VM migrating to another relay of its namespace keeps its MAC
  assert.equal((await svc.handle(req({ containerId: 'c3', deviceId: 'r3', mac: victim, pod: { namespace: 'tenant-a', name: 'vm-a-target' } }))).ok, true);
  // the node admin's relays (no namespace) are not checked
  assert.equal((await svc.handle(req({ containerId: 'c4', deviceId: 'r4', mac: victim }))).ok, true);
  // once tenant-a's attachments are gone the MAC is free
  await svc.handle(req({ op: 'del' }));
  await svc.handle(req({ op: 'del', containerId: 'c3', deviceId: 'r3' }));
  assert.equal((await svc.handle(req({ containerId: 'c2', deviceId: 'r2', mac: victim, pod: { namespace: 'tenant-b', name: 'vm-b' } }))).ok, true);
});

test('a MAC another namespace\'s VirtioRelay has by its spec.mac is refused to a pod too (the agent asks its relays)', async () => {
  const asked: string[] = [];
  const { svc, vf, req } = node(undefined, {
    relay: (n) => (n === 'r2' ? { socketPath: '/s2', phase: 'Ready', namespace: 'tenant-b' } : undefined),
    macTaken: (name, namespace, mac) => {
      asked.push(`${name} ${namespace} ${mac}`);
      return mac === '52:54:00:aa:bb:01' ? 'mac: 52:54:00:aa:bb:01 is already the MAC of relay tenant-a.vm of namespace tenant-a on this node' : undefined;
    },
  });
  const r = await svc.handle(req({ deviceId: 'r2', mac: '52:54:00:aa:bb:01', pod: { namespace: 'tenant-b', name: 'evil' } }));
  assert.ok(!r.ok && r.code === 7 && /relay tenant-a.vm of namespace tenant-a/.test(r.msg), JSON.stringify(r));
  assert.equal(vf.get('r2')?.mac, '02:00:00:00:00:b2');
  assert.equal((await svc.handle(req({ deviceId: 'r2', mac: '52:54:00:aa:bb:02', pod: { namespace: 'tenant-b', name: 'vm-b' } }))).ok, true);
  assert.deepEqual(asked, ['r2 tenant-b 52:54:00:aa:bb:01', 'r2 tenant-b 52:54:00:aa:bb:02']);
});

test('a relay of one namespace is not attached to a pod of another, even when kubelet allocated it there', async () => {
  const { svc, vf, req } = node(async () => [{ namespace: 'intruder', name: 'snoop' }], {
    relay: (n) => (n === 'r2' ? { socketPath: '/s2', phase: 'Ready', namespace: 'vms', resourceName: 'vio4wd.io/pool' } : undefined),
  });
  const r = await svc.handle(req({ deviceId: 'r2', mac: '52:54:00:aa:bb:09', vlan: 42, pod: { namespace: 'intruder', name: 'snoop' } }));
  assert.ok(!r.ok && r.code === 104 && /relay "r2" belongs to namespace vms; pod intruder\/snoop may not attach it/.test(r.msg), JSON.stringify(r));
  assert.deepEqual(vf.get('r2'), { mac: '02:00:00:00:00:b2', vlan: 0, spoofchk: true }, 'its VF keeps MAC and VLAN');
});
