// time limit: 12 min
// The DRA driver against real parts: kube-apiserver 1.34 and kube-scheduler 1.34 (built from their
// Go modules), the real agent on the real DPDK engine in a test network namespace with relays on
// VF stand-ins (net_af_packet on veths whose peers are ports of a bridge playing the PF), and
// kubelet's own plugin watcher and DRA manager (test/env/dra-kubelet-harness) registering the
// plugin and preparing a pod's claim; the CDI spec is checked with the CDI library, and a QEMU
// guest on the claimed relay's socket pings through the VF with the claim's MAC.
//
// Run: flock /tmp/vio4wd-it.lock node scripts/run-tests.mjs test/integration/dra.kube.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startKube, type KubeEnv } from '../helpers/kube.js';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { KubeletHarness, bridgeApiserver, startScheduler, vhostQueueNum } from '../helpers/dra.js';
import { resolveSockets } from '../../src/kubevirt/sources.js';
import { POD_METADATA_ROOT } from '../../src/dra/constants.js';
import { Guest } from '../helpers/guest.js';
import { until as waitUntil } from '../helpers/wait.js';

const NODE = 'dra-node';
const POOL = 'vio4wd.io/dra';
const CLASS = 'dra.vio4wd.io';
/** a pool of VFs only: relays are made for claims (prepare) and deleted after them (unprepare) */
const VF_POOL = 'vio4wd.io/dravf';
const VF_CLASS = 'dravf.vio4wd.io';
const VF_ADDR = '0000:00:0a.0';
const VF_DEVICE = 'vf-0000-00-0a-0';
const VF_RELAY = 'dra.vf-0000-00-0a-0';
const MAC_VF = '52:54:00:d4:a0:0c';
/** a pool of one relay with 2 queue pairs, for a claim that asks fewer */
const Q_POOL = 'vio4wd.io/draq';
const Q_CLASS = 'draq.vio4wd.io';
const DEFAULT_A = '02:00:00:0d:00:01'; // r-a's configured MAC: the pool default unprepare restores
const MAC_VM = '52:54:00:d4:a0:01';

let kube: KubeEnv;
let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let scheduler: Awaited<ReturnType<typeof startScheduler>> | undefined;
let bridge: { close: () => Promise<void> } | undefined;
const harnesses: KubeletHarness[] = [];
/** the claimed relay's socket on the host (from the CDI mount), for the guest */
let hostSocket = '';

const dirs = () => ({
  registry: join(tmp.path, 'kubelet', 'plugins_registry'),
  plugin: join(tmp.path, 'kubelet', 'plugins', 'vio4wd.io'),
  cdi: join(tmp.path, 'cdi'),
  metadata: join(tmp.path, 'dra-metadata'),
  state: join(tmp.path, 'state'),
});

function agentConfig(): Record<string, unknown> {
  const d = dirs();
  return {
    log: { level: 'info' },
    nodeName: NODE,
    engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
    vhostUser: { mode: 'server', socketDir: join(tmp.path, 'sock') },
    control: { enabled: false },
    metrics: { enabled: false },
    // a VF without a relay: the stand-in for PCI address VF_ADDR (the VF pool lists that address)
    sriov: { vfProgrammer: 'standin', standIns: { [VF_ADDR]: 'net_af_packet_vc,iface=vfc,qpairs=2' } },
    kubernetes: { enabled: true, kubeconfig: kube.kubeconfigPath, socketDir: join(tmp.path, 'ksock'), allowVirtualDevices: ['net_af_packet', 'net_null'] },
    devicePlugin: { enabled: false },
    cni: { enabled: false, statePath: join(d.state, 'attachments.json') },
    dra: { enabled: true, registryDir: d.registry, pluginDir: d.plugin, cdiDir: d.cdi, metadataDir: d.metadata, statePath: join(d.state, 'dra-claims.json'), resyncSeconds: 2 },
    relays: [
      { name: 'r-a', vf: { devargs: 'net_af_packet_ra,iface=vfa,qpairs=2' }, mac: DEFAULT_A, queues: 2, mtu: 1500, numaNode: 0, resourceName: POOL },
      { name: 'r-b', vf: { devargs: 'net_af_packet_rb,iface=vfb' }, mac: '02:00:00:0d:00:02', queues: 1, numaNode: 0, resourceName: POOL },
      { name: 'r-q', vf: { devargs: 'net_af_packet_rq,iface=vfq,qpairs=2' }, mac: '02:00:00:0d:00:04', queues: 2, numaNode: 0, resourceName: Q_POOL },
      // the policy allows only net_af_packet in the pool: this one is never offered
      { name: 'r-null', vf: { devargs: 'net_null_rn' }, mac: '02:00:00:0d:00:03', numaNode: 0, resourceName: POOL },
    ],
  };
}

async function json<T>(...args: string[]): Promise<T> {
  return JSON.parse(await kube.kubectl(...args, '-o', 'json')) as T;
}

/** The tests' one wait (test/helpers/wait.ts), with this file's longer default: the scheduler and the agent are busy. */
function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  return waitUntil(what, fn, { timeoutMs, intervalMs: 200 });
}

async function apply(obj: object): Promise<void> {
  await kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function mtu(ifname: string): Promise<number> {
  return Number((await ns.exec('cat', [`/sys/class/net/${ifname}/mtu`])).trim());
}

async function fdb(port: string): Promise<string[]> {
  const all = JSON.parse(await ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', port])) as { mac: string; state?: string }[];
  return all.filter((e) => e.state === 'static').map((e) => e.mac);
}

interface Slice {
  metadata: { name: string; ownerReferences?: { kind: string; name: string }[] };
  spec: { driver: string; nodeName: string; pool: { name: string; generation: number }; devices?: { name: string; attributes: Record<string, { int?: number; string?: string }> }[] };
}
interface Claim {
  metadata: { uid: string };
  status?: {
    allocation?: { devices: { results: { driver: string; pool: string; device: string; request: string }[] } };
    reservedFor?: { name: string }[];
    devices?: { device: string; conditions?: { type: string; status: string; reason: string; message: string }[]; networkData?: { hardwareAddress?: string }; data?: Record<string, unknown> }[];
  };
}
interface Pod {
  spec: { nodeName?: string };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

function claim(name: string, cel: string, config?: Record<string, unknown>, deviceClass = CLASS): object {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name, namespace: 'vms' },
    spec: {
      devices: {
        requests: [{ name: 'nic', exactly: { deviceClassName: deviceClass, selectors: [{ cel: { expression: cel } }] } }],
        ...(config ? { config: [{ requests: ['nic'], opaque: { driver: 'vio4wd.io', parameters: { apiVersion: 'vio4wd.io/v1alpha1', kind: 'RelayConfig', ...config } } }] } : {}),
      },
    },
  };
}

function pod(name: string, claimName: string, podClaim = 'net'): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'vms' },
    spec: {
      resourceClaims: [{ name: podClaim, resourceClaimName: claimName }],
      containers: [{ name: 'compute', image: 'virt-launcher', resources: { claims: [{ name: podClaim }] } }],
    },
  };
}

/** What a failed scheduling wait shows: the pod's status, the events, the scheduler's log. */
async function diagnostics(podName: string): Promise<string> {
  const r = await kube.kubectlRun(['get', 'pod', '-n', 'vms', podName, '-o', 'jsonpath={.status}'], { check: false });
  const ev = await kube.kubectlRun(['get', 'events', '-A'], { check: false });
  const sl = await kube.kubectlRun(['get', 'resourceslices', '-o', 'yaml'], { check: false });
  return `pod status: ${r.stdout}\nevents:\n${ev.stdout}\nslices:\n${sl.stdout.slice(0, 3000)}\nscheduler log:\n${scheduler?.log().slice(-6000) ?? ''}`;
}

function harness(podName: string, stateLabel: string): KubeletHarness {
  const h = KubeletHarness.start(kube, { registryDir: dirs().registry, stateDir: join(tmp.path, `kubelet-state-${stateLabel}`), cdiDir: dirs().cdi, node: NODE, namespace: 'vms', pod: podName });
  harnesses.push(h);
  return h;
}

before(async () => {
  tmp = testTempDir('dra');
  kube = await startKube();
  // the DRA API is served (GA in 1.34): no feature gate or runtime-config needed
  const versions = await kube.kubectl('api-versions');
  assert.match(versions, /^resource\.k8s\.io\/v1$/m, 'kube-apiserver 1.34 serves resource.k8s.io/v1');
  await kube.kubectl('apply', '-f', join(process.cwd(), 'crds'));
  await kube.kubectl('create', 'namespace', 'vms');
  // no controller-manager makes it: pods need their namespace's default ServiceAccount
  await kube.kubectl('create', 'serviceaccount', 'default', '-n', 'vms');
  // the admin's pool: virtual devices of type net_af_packet only, nodes labelled for it
  await apply({
    apiVersion: 'vio4wd.io/v1alpha1',
    kind: 'VirtioForwarderPolicy',
    metadata: { name: 'dra' },
    spec: { resourceName: POOL, nodeSelector: { matchLabels: { 'vio4wd.io/dra': 'true' } }, vfs: { virtualDevices: ['net_af_packet'] }, limits: { maxQueues: 4 }, namespaces: ['vms'] },
  });
  // and a pool of one VF (by its address), with limits a claim is held to
  await apply({
    apiVersion: 'vio4wd.io/v1alpha1',
    kind: 'VirtioForwarderPolicy',
    metadata: { name: 'dravf' },
    spec: { resourceName: VF_POOL, nodeSelector: { matchLabels: { 'vio4wd.io/dra': 'true' } }, vfs: { pciAddresses: [VF_ADDR] }, limits: { maxQueues: 2, maxMtu: 2000 }, namespaces: ['vms'] },
  });
  await apply({
    apiVersion: 'vio4wd.io/v1alpha1',
    kind: 'VirtioForwarderPolicy',
    metadata: { name: 'draq' },
    spec: { resourceName: Q_POOL, nodeSelector: { matchLabels: { 'vio4wd.io/dra': 'true' } }, vfs: { virtualDevices: ['net_af_packet'] }, namespaces: ['vms'] },
  });
  // the chart's DeviceClasses for those pools
  const rendered = await kube.helm('template', 't', join(process.cwd(), 'helm', 'vio4wd'), '--set', 'agent.dra.enabled=true', '--set-json',
    `policies=[{"name":"dra","resourceName":"${POOL}","vfs":{"virtualDevices":["net_af_packet"]},"namespaces":["vms"]},{"name":"dravf","resourceName":"${VF_POOL}","vfs":{"pciAddresses":["${VF_ADDR}"]},"namespaces":["vms"]},{"name":"draq","resourceName":"${Q_POOL}","vfs":{"virtualDevices":["net_af_packet"]},"namespaces":["vms"]}]`);
  const classes = parseAllDocuments(rendered).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } }).filter((o) => o?.kind === 'DeviceClass');
  assert.deepEqual(classes.map((c) => c.metadata?.name), [CLASS, VF_CLASS, Q_CLASS]);
  for (const c of classes) await apply(c);
  // the agent's node, schedulable, with room for pods
  await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'vio4wd.io/dra': 'true', 'kubernetes.io/hostname': NODE } } });
  await kube.kubectlRun(['patch', 'node', NODE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { capacity: { cpu: '8', memory: '16Gi', pods: '110' }, allocatable: { cpu: '8', memory: '16Gi', pods: '110' }, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test node', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }] } })]);
  // the apiserver's TaintNodesByCondition admission gives a new Node the not-ready taint; the node
  // lifecycle controller (not running here) would lift it once the node reports Ready
  await kube.kubectlRun(['taint', 'node', NODE, 'node.kubernetes.io/not-ready:NoSchedule-'], { check: false });
  const taints = (await json<{ spec: { taints?: unknown[] } }>('get', 'node', NODE)).spec.taints ?? [];
  assert.deepEqual(taints, [], 'the node is schedulable');

  ns = await Netns.create('dra');
  await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await ns.addBridge('pf0');
  for (const [vf, up] of [['vfa', 'upa'], ['vfb', 'upb'], ['vfc', 'upc'], ['vfq', 'upq']] as const) {
    await ns.addVeth(vf, up);
    await ns.setMaster(up, 'pf0');
  }
  // the peer behind the stand-in PF, on another port of its bridge
  await ns.addVeth('peer0', 'upp');
  await ns.setMaster('upp', 'pf0');
  await ns.addAddress('peer0', '10.0.9.1/24');
  bridge = await bridgeApiserver(kube, ns, tmp.path);
  agent = await AgentProcess.start({ config: agentConfig(), workDir: tmp.path, netns: ns, readyTimeoutMs: 120_000 });
  scheduler = await startScheduler(kube, tmp.path);
}, { timeout: 400_000 });

after(async () => {
  for (const h of harnesses) await h.stop().catch(() => undefined);
  await scheduler?.stop();
  await agent?.stop();
  await bridge?.close();
  await ns?.destroy();
  await kube?.stop();
  tmp?.remove();
}, { timeout: 120_000 });

test('the agent publishes its relays as ResourceSlices with their attributes; the pool policy keeps a device out', async () => {
  const slices = await until('the agent\'s ResourceSlices', async () => {
    const l = await json<{ items: Slice[] }>('get', 'resourceslices');
    const mine = l.items.filter((s) => s.spec.nodeName === NODE && s.spec.driver === 'vio4wd.io');
    const relaysSlice = mine.find((x) => x.spec.pool.name === `${NODE}/dra`);
    return mine.length === 3 && (relaysSlice?.spec.devices ?? []).length === 2 && mine;
  });
  const s = slices.find((x) => x.spec.pool.name === `${NODE}/dra`)!;
  assert.equal(s.spec.pool.name, `${NODE}/dra`);
  assert.deepEqual(s.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`), [`Node/${NODE}`]);
  const byName = new Map((s.spec.devices ?? []).map((d) => [d.name, d.attributes]));
  assert.deepEqual([...byName.keys()].sort(), ['r-a', 'r-b'], 'r-null (net_null, not allowed by the policy) is not offered');
  const a = byName.get('r-a')!;
  assert.equal(a.numaNode?.int, 0);
  assert.equal(a.maxQueues?.int, 2);
  assert.equal(a.socketMode?.string, 'server');
  assert.equal(a.pool?.string, POOL);
  assert.equal(a.relay?.string, 'r-a');
  assert.equal(a.virtualDevice?.string, 'net_af_packet_ra');
  assert.equal(byName.get('r-b')!.maxQueues?.int, 1);
  assert.match(agent!.output, /relay not published as a DRA device: the pool policy does not allow it.*r-null|r-null.*relay not published as a DRA device/);
  // the VF pool: its free VF is a device of its own, made into a relay only for a claim
  const vfSlice = slices.find((x) => x.spec.pool.name === `${NODE}/dravf`)!;
  assert.deepEqual((vfSlice.spec.devices ?? []).map((d) => d.name), [VF_DEVICE]);
  const v = vfSlice.spec.devices![0]!.attributes as Record<string, { int?: number; string?: string; bool?: boolean }>;
  assert.deepEqual([v.onDemand?.bool, v.pciAddress?.string, v.virtualDevice?.string, v.maxQueues?.int, v.pool?.string], [true, VF_ADDR, 'net_af_packet_vc', 2, VF_POOL]);

  // a deleted slice (kubelet wipes a driver's slices when its plugin goes away) comes back
  await kube.kubectl('delete', 'resourceslice', s.metadata.name);
  const back = await until('the slice published again', async () => {
    const l = await json<{ items: Slice[] }>('get', 'resourceslices');
    return l.items.find((x) => x.spec.nodeName === NODE && (x.spec.devices ?? []).length === 2);
  }, 30_000);
  assert.ok(back.spec.pool.generation >= 1);
});

test('the scheduler allocates a claim for a relay on NUMA node 0; a claim for NUMA node 1 stays unallocated with the scheduler\'s reason', async () => {
  await apply(claim('numa0', 'device.attributes["vio4wd.io"].numaNode == 0 && device.attributes["vio4wd.io"].maxQueues >= 2', { mac: MAC_VM, queues: 2, mtu: 1400 }));
  await apply(pod('vm-a', 'numa0'));
  const c = await until('claim numa0 allocated and reserved', async () => {
    const x = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'numa0');
    return x.status?.allocation && (x.status.reservedFor ?? []).length > 0 && x;
  }).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await diagnostics('vm-a')}`);
  });
  assert.deepEqual(c.status!.allocation!.devices.results.map((r) => [r.driver, r.pool, r.device, r.request]), [['vio4wd.io', `${NODE}/dra`, 'r-a', 'nic']], 'only r-a has 2 queues');
  assert.deepEqual(c.status!.reservedFor!.map((r) => r.name), ['vm-a']);
  const p = await until('pod vm-a bound', async () => {
    const x = await json<Pod>('get', 'pod', '-n', 'vms', 'vm-a');
    return x.spec.nodeName ? x : undefined;
  });
  assert.equal(p.spec.nodeName, NODE);

  await apply(claim('numa1', 'device.attributes["vio4wd.io"].numaNode == 1'));
  await apply(pod('vm-b', 'numa1'));
  const cond = await until('pod vm-b unschedulable', async () => {
    const x = await json<Pod>('get', 'pod', '-n', 'vms', 'vm-b');
    return x.status?.conditions?.find((k) => k.type === 'PodScheduled' && k.status === 'False' && k.reason === 'Unschedulable');
  });
  assert.match(cond.message ?? '', /cannot allocate all claims/, cond.message);
  const c1 = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'numa1');
  assert.equal(c1.status?.allocation, undefined, 'the claim stays unallocated');
});

test('kubelet\'s DRA manager registers the plugin and prepares the claim: the VF gets the claim\'s MAC, the CDI spec is valid and names the relay\'s socket', async () => {
  const h = harness('vm-a', 'a');
  const reg = await h.next(['registered']);
  assert.equal(reg.driver, 'vio4wd.io');
  assert.equal(reg.endpoint, join(dirs().plugin, 'dra.sock'));
  assert.deepEqual(reg.versions, ['v1.DRAPlugin', 'v1beta1.DRAPlugin']);
  const prep = await h.next(['prepared', 'prepareError']);
  assert.equal(prep.event, 'prepared', `${prep.error}\n${h.log.slice(-2000)}`);
  const c = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'numa0');
  const cdiName = `vio4wd.io/relay=${c.metadata.uid}-r-a`;
  assert.deepEqual(prep.cdiDevices, [cdiName]);
  assert.deepEqual(prep.specErrors, {}, 'the CDI library accepts every spec in the directory');
  const oci = prep.oci as { mounts: { source: string; destination: string; options: string[] }[]; env: string[] };
  // named after the claim and its request (a claim made from a template: the pod's name for it)
  const sockDir = '/var/run/vio4wd/dra/numa0/nic';
  const relayDir = oci.mounts.find((m) => m.destination === sockDir);
  assert.ok(relayDir, JSON.stringify(oci.mounts));
  assert.equal(relayDir.source, join(tmp.path, 'sock', 'r-a'), 'the relay\'s own socket directory');
  assert.ok(oci.env.includes(`VIO4WD_DEVICE_R_A_SOCKET=${sockDir}/virtio-forwarder1.sock`) || oci.env.some((e) => new RegExp(`^VIO4WD_DEVICE_R_A_SOCKET=${sockDir}/[^/]+\\.sock$`).test(e)), oci.env.join('\n'));
  assert.ok(oci.env.includes(`VIO4WD_DEVICE_R_A_MAC=${MAC_VM}`));
  assert.ok(oci.env.includes('VIO4WD_DEVICE_R_A_QUEUES=2'), 'the claim\'s queue pairs');
  assert.ok(oci.env.includes('VIO4WD_DEVICE_R_A_MTU=1400'), 'the claim\'s MTU');
  assert.ok(oci.env.includes('VIO4WD_DEVICE_R_A_MODE=client'));
  assert.ok(oci.env.includes('VIO4WD_DRA_DEVICES=r-a'));
  // the socket the pod is told about is the relay's, in the mounted directory
  const sockEnv = oci.env.find((e) => e.startsWith('VIO4WD_DEVICE_R_A_SOCKET='))!.split('=')[1]!;
  assert.ok(existsSync(join(relayDir.source, sockEnv.split('/').pop()!)), 'the relay\'s socket exists on the host');
  // KEP-5304 device metadata for KubeVirt's binding, mounted where it looks
  const md = oci.mounts.find((m) => m.destination === '/var/run/kubernetes.io/dra-device-attributes/resourceclaims/numa0/nic/vio4wd.io-metadata.json');
  assert.ok(md, JSON.stringify(oci.mounts));
  const meta = JSON.parse(readFileSync(md.source, 'utf8')) as { requests: { name: string; devices: { attributes: Record<string, { string?: string; int?: number }> }[] }[] };
  assert.equal(meta.requests[0]!.devices[0]!.attributes['vhost-user-path']!.string, sockEnv);
  assert.equal(meta.requests[0]!.devices[0]!.attributes.mac!.string, MAC_VM);
  // ... and the vio4wd KubeVirt sidecar resolves the VM's NIC from it, as it sees it in the pod
  const podView = join(tmp.path, 'pod-view');
  for (const m of oci.mounts.filter((x) => x.destination.startsWith(POD_METADATA_ROOT))) {
    const dest = join(podView, m.destination.slice(POD_METADATA_ROOT.length));
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(m.source, dest);
  }
  const vmi = { spec: { networks: [{ name: 'net1', resourceClaim: { claimName: 'net', requestName: 'nic' } }], resourceClaims: [{ name: 'net', resourceClaimName: 'numa0' }] } };
  const found = (await resolveSockets(vmi, ['net1'], { draMetadataDir: podView, networkInfoPath: join(podView, 'none'), networkInfoTimeoutMs: 0, explicit: new Map() })).get('net1');
  assert.equal(found?.path, sockEnv);
  assert.equal(found?.mode, 'client', 'the relay serves the socket: QEMU connects');
  assert.equal(found?.mac, MAC_VM);
  // the VF receives for the claim's MAC only; the claim says so too
  assert.deepEqual(await fdb('upa'), [MAC_VM]);
  const dev = c.status?.devices?.find((d) => d.device === 'r-a');
  assert.equal(dev?.conditions?.find((k) => k.type === 'Ready')?.status, 'True', JSON.stringify(c.status?.devices));
  assert.equal(dev?.networkData?.hardwareAddress, MAC_VM);
  hostSocket = join(relayDir.source, sockEnv.split('/').pop()!);
  // the claim's MTU is applied, not only checked: r-a (MTU 1500 of its own) runs its VF at 1400
  assert.equal(await vhostQueueNum(hostSocket), 2, 'queue pairs r-a offers (vhost-user GET_QUEUE_NUM)');
  assert.equal(await mtu('vfa'), 1400, 'the VF\'s MTU');
});

test('QEMU on the claimed relay\'s socket pings the peer behind the VF with the claim\'s MAC; another MAC gets nothing through', async () => {
  assert.ok(hostSocket, 'the claim was prepared (previous test)');
  const run = async (mac: string, count: number) => {
    const workDir = join(tmp.path, `guest-${mac.replaceAll(':', '')}`);
    mkdirSync(workDir, { recursive: true });
    const g = await Guest.start({
      name: 'dra-vm', netns: ns, workDir,
      nics: [{ socketPath: hostSocket, mode: 'client', queues: 2, mac, ip: '10.0.9.2/24', mtu: 1400 }],
      job: { kind: 'ping', peer: '10.0.9.1', count, intervalS: 0.2 },
    });
    try {
      const ready = await g.waitForReady();
      assert.deepEqual(ready.nics.map((n) => [n.name, n.mac, n.queues]), [['eth0', mac, 2]]);
      return await g.waitForPingSummary();
    } finally {
      await g.stop();
    }
  };
  assert.deepEqual(await run(MAC_VM, 5), { sent: 5, received: 5, lost: 0 }, 'the VF receives for the claim\'s MAC');
  const other = await run('52:54:00:d4:a0:99', 3);
  assert.equal(other.received, 0, 'the VF does not receive for a MAC the claim did not give it');
});

test('an agent restart keeps the prepared claim: the plugin registers again, a repeated prepare answers the same, unprepare restores the pool default', async () => {
  await harnesses[0]!.stop();
  await agent!.stop();
  agent = await AgentProcess.start({ config: agentConfig(), workDir: tmp.path, netns: ns, readyTimeoutMs: 120_000 });
  assert.deepEqual(await fdb('upa'), [MAC_VM], 'the restart left the VF as the claim wants it');
  // a kubelet that lost its own state calls NodePrepareResources again for the same claim
  const h = harness('vm-a', 'a2');
  await h.next(['registered']);
  const again = await h.next(['prepared', 'prepareError']);
  assert.equal(again.event, 'prepared', String(again.error));
  const c = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'numa0');
  assert.deepEqual(again.cdiDevices, [`vio4wd.io/relay=${c.metadata.uid}-r-a`]);
  assert.deepEqual(await fdb('upa'), [MAC_VM]);
  assert.match(agent!.output, /prepared claims restored from the checkpoint/);
  // the restarted agent gives r-a the claim's MTU again
  await until('r-a\'s VF at the claim\'s MTU again', async () => (await mtu('vfa')) === 1400);
  h.send('unprepare');
  const un = await h.next(['unprepared', 'unprepareError']);
  assert.equal(un.event, 'unprepared', String(un.error));
  assert.deepEqual(await fdb('upa'), [DEFAULT_A], 'the VF is back on the pool default');
  assert.equal(await mtu('vfa'), 1500, 'r-a\'s VF at its own MTU again');
  assert.equal(existsSync(join(dirs().cdi, `vio4wd.io-relay_${c.metadata.uid}.json`)), false, 'the CDI spec is gone');
  assert.equal(existsSync(join(dirs().metadata, c.metadata.uid)), false, 'the device metadata is gone');
  const cp = JSON.parse(readFileSync(join(dirs().state, 'dra-claims.json'), 'utf8')) as { claims: Record<string, unknown> };
  assert.deepEqual(cp.claims, {});
  await h.stop();
});

test('a claim for fewer queue pairs than the relay serves: the relay offers that many until unprepare; kubelet hears the device\'s health', async () => {
  await apply(claim('oneq', 'device.attributes["vio4wd.io"].relay == "r-q"', { mac: '52:54:00:d4:a0:0d', queues: 1 }, Q_CLASS));
  // the pod's name for the claim is the claim's: kubelet 1.34 reports a device's health only then
  await apply(pod('vm-q', 'oneq', 'oneq'));
  await until('claim oneq allocated', async () => (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'oneq')).status?.reservedFor?.length);
  const h = harness('vm-q', 'q');
  await h.next(['registered']);
  const r = await h.next(['prepared', 'prepareError']);
  assert.equal(r.event, 'prepared', String(r.error));
  const oci = r.oci as { mounts: { source: string; destination: string }[]; env: string[] };
  assert.ok(oci.env.includes('VIO4WD_DEVICE_R_Q_QUEUES=1'), oci.env.join('\n'));
  const dir = oci.mounts.find((m) => m.destination === '/var/run/vio4wd/dra/oneq/nic')!.source;
  const sock = join(dir, readdirSync(dir).find((f) => f.endsWith('.sock'))!);
  assert.equal(await vhostQueueNum(sock), 1, 'the claim\'s: QEMU refuses a device with more');
  // the device's health, as kubelet reads it from the plugin's stream and puts it in the pod's status
  const claimUid = (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'oneq')).metadata.uid;
  let last: unknown;
  const healthIs = (want: string) => waitUntil(`kubelet to see r-q ${want}`, async () => {
    const r = (last = await h.health());
    return r.length === 1 && r[0]!.health === want && r;
  }, { timeoutMs: 30_000, intervalMs: 300, detail: () => `last: ${JSON.stringify(last)}\nharness: ${h.log.split('\n').filter((l) => /[Hh]ealth/.test(l)).slice(-10).join('\n')}` });
  assert.deepEqual(await healthIs('Healthy'), [{ container: 'compute', name: 'claim:oneq', resourceID: `vio4wd.io/relay=${claimUid}-r-q`, health: 'Healthy' }]);
  // the VF's link goes down: the relay is not healthy, and kubelet hears so
  await ns.exec('ip', ['link', 'set', 'vfq', 'down']);
  await healthIs('Unhealthy');
  await ns.exec('ip', ['link', 'set', 'vfq', 'up']);
  await healthIs('Healthy');
  h.send('unprepare');
  assert.equal((await h.next(['unprepared', 'unprepareError'])).event, 'unprepared');
  assert.equal(await vhostQueueNum(sock), 2, 'r-q\'s own again');
  await h.stop();
});

test('a claim whose opaque config is wrong is refused with the field named, in the claim\'s status, and the VF is untouched', async () => {
  await apply(claim('bad', 'device.attributes["vio4wd.io"].relay == "r-b"', { mac: '52:54:00:zz:00:01', vlan: 5000 }));
  await apply(pod('vm-c', 'bad'));
  await until('claim bad allocated', async () => (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'bad')).status?.reservedFor?.length);
  const before = await fdb('upb');
  const h = harness('vm-c', 'c');
  await h.next(['registered']);
  const r = await h.next(['prepared', 'prepareError']);
  assert.equal(r.event, 'prepareError');
  assert.match(r.error ?? '', /ResourceClaim vms\/bad spec\.devices\.config\[0\]\.opaque\.parameters: mac: "52:54:00:zz:00:01" is not a MAC address/);
  assert.match(r.error ?? '', /vlan: 5000 is out of range: use 0\.\.4094/);
  const c = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'bad');
  const cond = c.status?.devices?.find((d) => d.device === 'r-b')?.conditions?.find((k) => k.type === 'Ready');
  assert.equal(cond?.status, 'False');
  assert.equal(cond?.reason, 'InvalidConfig');
  assert.match(cond?.message ?? '', /mac: "52:54:00:zz:00:01" is not a MAC address/);
  assert.deepEqual(await fdb('upb'), before, 'nothing was programmed');
  await h.stop();
});

test('a claim asking for a VLAN or spoof checking off its pool\'s policy does not allow is refused at prepare with PolicyDenied; the VF is untouched', async () => {
  // r-b is free again (no kube-controller-manager here: the claim's finalizer goes by hand)
  await kube.kubectl('delete', 'pod', '-n', 'vms', 'vm-c', '--force', '--grace-period=0');
  await kube.kubectlRun(['patch', 'resourceclaim', '-n', 'vms', 'bad', '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { check: false });
  await kube.kubectl('delete', 'resourceclaim', '-n', 'vms', 'bad', '--wait=true');
  await apply(claim('tagged', 'device.attributes["vio4wd.io"].relay == "r-b"', { mac: '52:54:00:d4:a0:0e', vlan: 100, spoofchk: false }));
  await apply(pod('vm-t', 'tagged'));
  await until('claim tagged allocated', async () => (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'tagged')).status?.reservedFor?.length).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await diagnostics('vm-t')}`);
  });
  const before = await fdb('upb');
  const h = harness('vm-t', 't');
  await h.next(['registered']);
  const r = await h.next(['prepared', 'prepareError']);
  assert.equal(r.event, 'prepareError');
  const want = /vlan: 100 is not allowed for claim vms\/tagged \(request nic, device r-b\) of pool vio4wd\.io\/dra: VirtioForwarderPolicy dra spec\.limits\.allowedVlans allows 0 \(untagged only\); use an allowed VLAN, or ask the cluster admin to add 100 to VirtioForwarderPolicy dra spec\.limits\.allowedVlans/;
  assert.match(r.error ?? '', want);
  const cond = (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'tagged')).status?.devices?.find((d) => d.device === 'r-b')?.conditions?.find((k) => k.type === 'Ready');
  assert.deepEqual([cond?.status, cond?.reason], ['False', 'PolicyDenied']);
  assert.match(cond?.message ?? '', new RegExp(`^${want.source}`), 'the claim\'s status says why');
  assert.deepEqual(await fdb('upb'), before, 'nothing was programmed');
  await h.stop();
});

test('a claim on a free VF: prepare makes its relay with the claim\'s queues, MTU and MAC, QEMU pings through it, unprepare deletes it and the VF is offered again', async () => {
  await apply(claim('onvf', 'device.attributes["vio4wd.io"].onDemand', { mac: MAC_VF, queues: 2, mtu: 1400 }, VF_CLASS));
  await apply(pod('vm-d', 'onvf'));
  const c = await until('claim onvf allocated', async () => {
    const x = await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'onvf');
    return (x.status?.reservedFor?.length ?? 0) > 0 ? x : undefined;
  }).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await diagnostics('vm-d')}`);
  });
  assert.deepEqual(c.status!.allocation!.devices.results.map((r) => [r.pool, r.device]), [[`${NODE}/dravf`, VF_DEVICE]]);
  const h = harness('vm-d', 'd');
  await h.next(['registered']);
  const prep = await h.next(['prepared', 'prepareError']);
  assert.equal(prep.event, 'prepared', `${prep.error}\n${h.log.slice(-2000)}`);
  assert.deepEqual(prep.specErrors, {});
  const oci = prep.oci as { mounts: { source: string; destination: string }[]; env: string[] };
  const relayDir = oci.mounts.find((m) => m.destination === '/var/run/vio4wd/dra/onvf/nic');
  assert.equal(relayDir?.source, join(tmp.path, 'ksock', VF_RELAY), 'the made relay\'s own socket directory');
  const sock = join(relayDir.source, 'vhost-user.sock');
  assert.ok(existsSync(sock), 'the relay serves its socket');
  // made with the claim's values: 2 queue pairs offered, the VF at MTU 1400, receiving for the claim's MAC
  assert.equal(await vhostQueueNum(sock), 2);
  assert.equal(await mtu('vfc'), 1400);
  assert.deepEqual(await fdb('upc'), [MAC_VF]);
  const dev = (await json<Claim>('get', 'resourceclaim', '-n', 'vms', 'onvf')).status?.devices?.find((d) => d.device === VF_DEVICE);
  assert.equal(dev?.conditions?.find((k) => k.type === 'Ready')?.status, 'True', JSON.stringify(dev));
  assert.equal(dev?.networkData?.hardwareAddress, MAC_VF);
  // the made relay is the VF's device, not a device of its own
  const l = await json<{ items: Slice[] }>('get', 'resourceslices');
  assert.deepEqual(l.items.filter((x) => x.spec.nodeName === NODE).flatMap((x) => (x.spec.devices ?? []).map((d) => d.name)).sort(), ['r-a', 'r-b', 'r-q', VF_DEVICE]);

  const workDir = join(tmp.path, 'guest-vf');
  mkdirSync(workDir, { recursive: true });
  const g = await Guest.start({
    name: 'dra-vf-vm', netns: ns, workDir,
    nics: [{ socketPath: sock, mode: 'client', queues: 2, mac: MAC_VF, ip: '10.0.9.3/24', mtu: 1400 }],
    job: { kind: 'ping', peer: '10.0.9.1', count: 5, intervalS: 0.2 },
  });
  try {
    const ready = await g.waitForReady();
    assert.deepEqual(ready.nics.map((n) => [n.mac, n.queues]), [[MAC_VF, 2]]);
    assert.deepEqual(await g.waitForPingSummary(), { sent: 5, received: 5, lost: 0 });
  } finally {
    await g.stop();
  }

  h.send('unprepare');
  const un = await h.next(['unprepared', 'unprepareError']);
  assert.equal(un.event, 'unprepared', String(un.error));
  assert.equal(existsSync(relayDir.source), false, 'the relay and its directory are gone');
  const after = await json<{ items: Slice[] }>('get', 'resourceslices');
  assert.deepEqual(after.items.find((x) => x.spec.pool.name === `${NODE}/dravf`)?.spec.devices?.map((d) => d.name), [VF_DEVICE], 'the VF is offered again');
  assert.doesNotMatch(agent!.output, /"relay":"dra\.vf-0000-00-0a-0".*relay not published/);
  await h.stop();
});

test('the KubeVirt example\'s ResourceClaimTemplate is accepted by the apiserver and names the chart\'s DeviceClass for its pool', async () => {
  const out = JSON.parse(await kube.kubectl('apply', '--dry-run=server', '--validate=strict', '-o', 'json', '-f', 'examples/kubevirt-dra/10-resourceclaimtemplate.yaml')) as {
    spec: { spec: { devices: { requests: { exactly: { deviceClassName: string } }[]; config: { opaque: { parameters: unknown } }[] } } };
  };
  assert.equal(out.spec.spec.devices.requests[0]!.exactly.deviceClassName, 'vhostuser.vio4wd.io');
  const { parseRelayConfig } = await import('../../src/dra/config.js');
  assert.deepEqual(parseRelayConfig(out.spec.spec.devices.config[0]!.opaque.parameters, 'example'), { mac: '52:54:00:6a:00:01', queues: 2 });
});
