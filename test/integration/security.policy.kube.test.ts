// The attacks of issue #16, tried as a tenant would: a ServiceAccount with edit rights on
// VirtioRelays in its own namespace (team-a) and nothing else, against the real kube-apiserver
// and the real agent on DPDK (test/helpers/e2e.ts: the agent runs in a test network namespace,
// its VF stand-ins are DPDK virtual devices it allows as a test node does).
//
// Every attack is refused with a named reason, by the apiserver (the schema's and CEL's message
// names the field) or by the agent (Failed, reason PolicyDenied); afterwards the node shows no
// new file under the socket root, no new interface and no new device in the engine, kubelet is
// offered nothing new, and a relay that was forwarding meanwhile lost no packet.
//
// Run: flock /tmp/vio4wd-it.lock node scripts/run-tests.mjs test/integration/security.policy.kube.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { E2eEnv, NAMESPACE, NODE, until } from '../helpers/e2e.js';
import { Testpmd } from '../helpers/dpdk.js';
import type { VirtioRelay } from '../../src/kube/crd-schemas.js';

const execFileP = promisify(execFile);
const TENANT_NS = 'team-a';
const TENANT_POOL = 'vio4wd.io/team-a';
const BASE = 'base';
const BASE_MAC = '52:54:00:5e:c0:01';

let e: E2eEnv;
let tenantKubeconfig: string;
let vm: Testpmd | undefined;
let pinger: ChildProcess | undefined;
let pingOut = '';
let baseSocket = '';

interface HostView {
  files: string[];
  links: string[];
  engineRelays: string[];
  devices: string[];
}

async function links(): Promise<string[]> {
  const { stdout } = await execFileP('ip', ['netns', 'exec', e.ns.name, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' });
  return stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().split('@')[0]!).sort();
}

async function hostView(): Promise<HostView> {
  // relays the engine holds (active); a denied relay may be listed as inactive, never active
  const ls = (JSON.parse(await e.agent.cli('relay', 'ls', '--ipc-dir', e.dirs.ipc, '--json')) as { id: number; active: boolean; vf?: { pci_addr_str?: string } }[]).filter((r) => r.active);
  return {
    files: e.socketTree(),
    links: await links(),
    engineRelays: ls.map((r) => `${r.id}:${r.vf?.pci_addr_str ?? ''}`).sort(),
    devices: [...e.devices().keys()].sort(),
  };
}

function relay(name: string, spec: Record<string, unknown>, namespace = TENANT_NS): string {
  return JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioRelay', metadata: { name, namespace }, spec: { nodeName: NODE, ...spec } });
}

/** kubectl apply as the tenant; resolves to the command's result (no throw). */
function asTenant(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return e.kube.kubectlRun(args, { kubeconfig: tenantKubeconfig, check: false, ...(input !== undefined ? { input } : {}) });
}

async function tenantRelay(name: string): Promise<VirtioRelay> {
  return JSON.parse(await e.kube.kubectl('get', 'vr', '-n', TENANT_NS, name, '-o', 'json')) as VirtioRelay;
}

before(async () => {
  e = await E2eEnv.start();
  const k = e.kube;
  // the tenant: edit rights on VirtioRelays of its namespace, as a namespace admin would get
  await k.kubectl('create', 'namespace', TENANT_NS);
  await k.kubectlRun(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'alice', namespace: TENANT_NS } },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'Role',
          metadata: { name: 'virtiorelay-editor', namespace: TENANT_NS },
          rules: [
            { apiGroups: ['vio4wd.io'], resources: ['virtiorelays'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
            { apiGroups: [''], resources: ['events'], verbs: ['get', 'list'] },
          ],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'alice-virtiorelay-editor', namespace: TENANT_NS },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'virtiorelay-editor' },
          subjects: [{ kind: 'ServiceAccount', name: 'alice', namespace: TENANT_NS }],
        },
        // the tenant's pool: real VFs of ens1f0 only (this node has none), at most 2 queues;
        // it lists net_vhost, which this node's agent does not allow
        {
          apiVersion: 'vio4wd.io/v1alpha1',
          kind: 'VirtioForwarderPolicy',
          metadata: { name: 'team-a' },
          spec: { resourceName: TENANT_POOL, namespaces: [TENANT_NS], vfs: { pfNames: ['ens1f0'], virtualDevices: ['net_vhost'] }, limits: { maxQueues: 2, maxMtu: 1500 } },
        },
      ],
    }),
  });
  tenantKubeconfig = k.kubeconfigForToken('alice', await k.serviceAccountToken(TENANT_NS, 'alice'));
  await until('the tenant may create VirtioRelays', async () => (await asTenant(['auth', 'can-i', 'create', 'virtiorelays.vio4wd.io', '-n', TENANT_NS])).stdout.trim() === 'yes');

  // another namespace's relay, forwarding all along: a tap VF stand-in with a peer address, and
  // testpmd as the VM answering pings on the relay's socket
  await e.createRelay(BASE, { nodeName: NODE, vf: { devargs: 'net_tap_base,iface=base0' }, vhostUser: { mode: 'server' }, mac: BASE_MAC });
  const ready = await e.waitReady(BASE);
  baseSocket = ready.status!.socketPath!;
  await e.ns.addAddress('base0', '10.0.9.1/24');
  await e.ns.linkUp('base0');
  vm = await Testpmd.start({ vdevs: [`net_virtio_user0,path=${baseSocket},queues=1,mac=${BASE_MAC}`], fwd: 'io', cpu: 0, netns: e.ns.name, args: ['--forward-mode=icmpecho'] });
  await vm.cmd('start');
  await until('the VM answers through the relay', async () => {
    const r = await execFileP('ip', ['netns', 'exec', e.ns.name, 'ping', '-n', '-c', '1', '-W', '1', '10.0.9.2'], { encoding: 'utf8' }).catch(() => undefined);
    return r !== undefined;
  }, 30_000);
});

after(async () => {
  pinger?.kill('SIGKILL');
  await vm?.quit();
  await e?.stop();
});

test('the tenant cannot name a host path, socket ownership, or out-of-range limits: the apiserver says which field', async () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['dir', { vf: { selector: {} }, resourceName: TENANT_POOL, vhostUser: { socketDir: '/etc' } }, /vhostUser\.socketDir is not accepted: the socket directory belongs to the node agent/],
    ['own', { vf: { selector: {} }, resourceName: TENANT_POOL, vhostUser: { owner: '0', perm: '0777' } }, /vhostUser\.owner, vhostUser\.group and vhostUser\.perm are not accepted: the pool's VirtioForwarderPolicy sets them/],
    ['mtu', { vf: { selector: {} }, resourceName: TENANT_POOL, mtu: 9702 }, /spec\.mtu: Invalid value: 9702: spec\.mtu in body should be less than or equal to 9216/],
    ['long', { vf: { devargs: `net_tap0,${'x'.repeat(600)}` }, resourceName: TENANT_POOL }, /spec\.vf\.devargs: Too long: may not be (longer|more) than 511/],
  ];
  for (const [name, spec, want] of cases) {
    const r = await asTenant(['apply', '-f', '-'], relay(`rej-${name}`, spec));
    assert.notEqual(r.code, 0, `${name} was accepted`);
    assert.match(r.stderr, want, name);
  }
  // nor write a pool, nor a relay's status
  const pol = await asTenant(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioForwarderPolicy', metadata: { name: 'mine' }, spec: { resourceName: TENANT_POOL, namespaces: ['*'], vfs: { virtualDevices: ['net_tap'] } } }));
  assert.notEqual(pol.code, 0);
  assert.match(pol.stderr, /forbidden: User "system:serviceaccount:team-a:alice" cannot (get|patch|create) resource "virtioforwarderpolicies"/);
});

test('every node-side attack is Failed with PolicyDenied; the host and the forwarding relay are untouched', async () => {
  const before = await hostView();
  // 100 pings 0.2 s apart (20 s: longer than the attacks take); ping waits for the last reply
  pinger = spawn('ip', ['netns', 'exec', e.ns.name, 'ping', '-n', '-i', '0.2', '-c', '100', '-W', '2', '10.0.9.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pingDone = new Promise((r) => pinger!.once('close', r));
  pinger.stdout!.setEncoding('utf8').on('data', (d: string) => (pingOut += d));

  const attacks: [string, Record<string, unknown>, RegExp][] = [
    // a tap on the host (the issue's own example), and the node's NIC through af_packet
    ['tap', { vf: { devargs: 'net_tap_x,iface=evil0' }, resourceName: TENANT_POOL }, /^spec\.vf\.devargs: pool vio4wd\.io\/team-a may not use this virtual device \(VirtioForwarderPolicy team-a allows net_vhost\)/],
    ['afpacket', { vf: { devargs: 'net_af_packet_x,iface=base0' }, resourceName: TENANT_POOL }, /^spec\.vf\.devargs: pool vio4wd\.io\/team-a may not use this virtual device/],
    // another relay's socket: the pool lists net_vhost, the node does not allow it
    ['vhost', { vf: { devargs: `net_vhost_x,iface=${baseSocket}` }, resourceName: TENANT_POOL }, /^spec\.vf\.devargs: this node allows no such virtual device \(the agent's kubernetes\.allowVirtualDevices/],
    // any PCI device: not a VF of the pool, so never probed
    ['pci', { vf: { pciAddress: '0000:00:00.0' }, resourceName: TENANT_POOL }, /vf\.pciAddress: 0000:00:00\.0 is not a VF of pool vio4wd\.io\/team-a on this node/],
    // the pool another namespace draws from (to sit between its VMs and their network)
    ['otherpool', { vf: { devargs: 'net_tap_y,iface=evil1' } }, /^spec\.resourceName: namespace team-a may not use pool vio4wd\.io\/vhostuser/],
    ['nopool', { vf: { selector: {} }, resourceName: 'vio4wd.io/nope' }, /^spec\.resourceName: no VirtioForwarderPolicy defines pool vio4wd\.io\/nope on this node/],
    ['queues', { vf: { selector: {} }, resourceName: TENANT_POOL, queues: 8 }, /^spec\.queues: 8 exceeds the pool's limit of 2/],
    ['mtu', { vf: { selector: {} }, resourceName: TENANT_POOL, mtu: 9000 }, /^spec\.mtu: 9000 exceeds the pool's limit of 1500/],
  ];
  for (const [name, spec] of attacks) {
    const r = await asTenant(['apply', '-f', '-'], relay(`atk-${name}`, spec));
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
  }
  for (const [name, , want] of attacks) {
    const vr = await until(`atk-${name} Failed`, async () => {
      const v = await tenantRelay(`atk-${name}`);
      return v.status?.phase === 'Failed' && v;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- agent log\n${e.agentTail()}`);
    });
    const ready = vr.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.reason, 'PolicyDenied', `${name}: ${JSON.stringify(vr.status)}`);
    assert.match(vr.status?.message ?? '', want, name);
  }
  // the tenant can read why (events in its namespace)
  const ev = await asTenant(['get', 'events', '-n', TENANT_NS, '--field-selector', 'involvedObject.name=atk-tap', '-o', 'jsonpath={.items[*].reason}']);
  assert.match(ev.stdout, /PolicyDenied/);

  // a moment for anything that would still happen, then the host is as it was
  await new Promise((r) => setTimeout(r, 2000));
  assert.deepEqual(await hostView(), before);
  // deleting the denied relays leaves nothing either (they had no finalizer, or it goes)
  assert.equal((await asTenant(['delete', 'vr', '--all', '-n', TENANT_NS, '--wait=true', '--timeout=60s'])).code, 0);
  assert.deepEqual(await hostView(), before);

  // the forwarding relay lost no packet meanwhile
  await pingDone;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
  assert.ok(m, pingOut.slice(-500));
  assert.equal(Number(m[1]), 100);
  assert.equal(Number(m[2]), Number(m[1]), `lost pings: ${pingOut.slice(-300)}`);
  assert.equal((await e.getRelay(BASE))?.status?.phase, 'Ready');
});

test('relay directories are never world-writable: the socket root 0755, a relay directory 2770, its socket 0660', async () => {
  const root = statSync(e.dirs.sockets);
  assert.equal(root.mode & 0o7777, 0o755);
  const dir = statSync(`${e.dirs.sockets}/${NAMESPACE}.${BASE}`);
  assert.equal(dir.mode & 0o7777, 0o2770);
  assert.equal(statSync(baseSocket).mode & 0o777, 0o660);
});

test('a pod\'s network config gets no VLAN and no spoof checking off beyond its pool\'s policy; the admin\'s change applies at the next ADD', async () => {
  const POLICY = 'test-vhostuser'; // the e2e pool (test/helpers/policy.ts), which sets no limits
  // the admin's fields: ids as numbers or strings and ranges; the apiserver refuses what is no VLAN
  const limited = (limits: Record<string, unknown>) => JSON.stringify({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioForwarderPolicy', metadata: { name: 'vlan-check' }, spec: { resourceName: 'vio4wd.io/vlan-check', namespaces: ['x'], vfs: { pfNames: ['ens1f0'] }, limits } });
  for (const [bad, want] of [[['4095'], /spec\.limits\.allowedVlans\[0\]: Invalid value: "4095": spec\.limits\.allowedVlans\[0\] in body should match/], [[4095], /spec\.limits\.allowedVlans\[0\]: Invalid value: 4095: spec\.limits\.allowedVlans\[0\] in body should be less than or equal to 4094/]] as const) {
    const r = await e.kube.kubectlRun(['apply', '--dry-run=server', '-f', '-'], { input: limited({ allowedVlans: bad }), check: false });
    assert.notEqual(r.code, 0, JSON.stringify(bad));
    assert.match(r.stderr, want);
  }
  assert.equal((await e.kube.kubectlRun(['apply', '--dry-run=server', '-f', '-'], { input: limited({ allowedVlans: [0, '100', '200-299'], allowSpoofchkOff: false }), check: false })).code, 0);
  assert.equal((await e.kube.kubectlRun(['apply', '--dry-run=server', '-f', 'examples/virtioforwarderpolicy.yaml'], { check: false })).code, 0, 'the example is accepted');

  // a VirtioRelay of the pool on a VF stand-in (a veth whose peer is a port of a bridge: the PF),
  // allocated to a pod by kubelet; vio4wd-cni adds the pod's network with the tenant's config
  const NAME = 'tagged';
  const ID = `${NAMESPACE}.${NAME}`;
  const OWN = '02:00:00:5e:c0:0a';
  const POD_MAC = '52:54:00:5e:c0:0a';
  await e.ns.addBridge('pfv');
  await e.ns.addVeth('vfv', 'upv');
  await e.ns.setMaster('upv', 'pfv');
  await e.createRelay(NAME, { nodeName: NODE, vf: { devargs: 'net_af_packet_tg,iface=vfv' }, vhostUser: { mode: 'server' }, mac: OWN });
  await e.waitReady(NAME);
  const pod = await e.allocate([ID]);
  const sandbox = await e.cni.pod('tagged');
  const fdb = async (): Promise<string[]> => (JSON.parse(await e.ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'upv'])) as { mac: string; state?: string }[]).filter((x) => x.state === 'static').map((x) => x.mac);
  const add = (conf: Record<string, unknown>) => {
    e.cni.writeConf('tenant-net', { cniVersion: '1.0.0', type: 'vio4wd', capabilities: { mac: true }, deviceID: ID, ...conf });
    return e.cni.run('add', 'tenant-net', sandbox, { capArgs: { mac: POD_MAC }, cniArgs: pod.cniArgs });
  };
  const before = await fdb();
  const vlan = await add({ vlan: 100 });
  assert.notEqual(vlan.code, 0);
  assert.match(vlan.stderr, /vlan: 100 is not allowed for relay "vms\.tagged" of pool vio4wd\.io\/vhostuser: VirtioForwarderPolicy test-vhostuser spec\.limits\.allowedVlans allows 0 \(untagged only\); use an allowed VLAN, or ask the cluster admin to add 100/);
  const spoof = await add({ spoofchk: false });
  assert.notEqual(spoof.code, 0);
  assert.match(spoof.stderr, /spoofchk: false \(spoof checking off\) is not allowed for relay "vms\.tagged" of pool vio4wd\.io\/vhostuser: VirtioForwarderPolicy test-vhostuser spec\.limits\.allowSpoofchkOff is not true/);
  assert.deepEqual(await fdb(), before, 'the refused ADDs did not touch the VF');
  assert.equal((await e.getRelay(NAME))?.status?.mac, OWN, 'the relay shows its own MAC still');

  // the admin allows spoof checking off and VLANs 100-101 in the pool: kubectl shows it, the next ADD gets it
  try {
    await e.kube.kubectl('patch', 'vfp', POLICY, '--type', 'merge', '-p', JSON.stringify({ spec: { limits: { allowedVlans: [0, '100-101'], allowSpoofchkOff: true } } }));
    assert.match(await e.kube.kubectl('get', 'vfp', POLICY, '-o', 'wide'), /\[0,"100-101"\]\s+true\s/);
    const off = await until('the agent applies the changed policy', async () => {
      const r = await add({ spoofchk: false });
      return r.code === 0 ? r : undefined;
    }, 30_000);
    assert.equal((JSON.parse(off.stdout) as { interfaces: { mac: string }[] }).interfaces[0]!.mac, POD_MAC);
    assert.deepEqual(await fdb(), [POD_MAC]);
    const cp = JSON.parse(readFileSync(e.dirs.cniState, 'utf8')) as { attachments: { deviceId: string; vlan: number; spoofchk: boolean }[] };
    assert.deepEqual(cp.attachments.filter((a) => a.deviceId === ID).map((a) => [a.vlan, a.spoofchk]), [[0, false]]);
    // VLAN 100 passes the policy now and reaches the VF programmer (a stand-in VF cannot tag)
    const tagged = await add({ vlan: 100 });
    assert.match(tagged.stderr, /the stand-in VF .* cannot tag VLAN 100/);
    assert.doesNotMatch(tagged.stderr, /is not allowed/);
    const del = await e.cni.run('del', 'tenant-net', sandbox, { capArgs: { mac: POD_MAC }, cniArgs: pod.cniArgs });
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await fdb(), [OWN], 'DEL puts the pool default back');
  } finally {
    await e.kube.kubectlRun(['patch', 'vfp', POLICY, '--type', 'json', '-p', '[{"op":"remove","path":"/spec/limits"}]'], { check: false });
    await e.kube.kubectlRun(['delete', 'vr', '-n', NAMESPACE, NAME, '--wait=true', '--timeout=60s'], { check: false });
  }
});
