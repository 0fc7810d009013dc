// time limit: 6 min
// The e2e story on the Dynamic Resource Allocation path: a ResourceClaim for a free VF with the
// VM's MAC and queue pairs -> the real kube-scheduler allocates it from the agent's
// ResourceSlices and binds the virt-launcher pod -> kubelet's own DRA manager (the harness)
// prepares it: the agent makes the VF's relay with the claim's queues and programs the VF with
// the claim's MAC -> the KubeVirt sidecar's OnDefineDomain finds the socket in the claim's device
// metadata (as the pod mounts it through CDI) -> QEMU on that socket pings the peer behind the VF.
// The parts are the e2e environment's (test/helpers/e2e.ts) with the agent's DRA driver on.
//
// Run: flock /tmp/vio4wd-it.lock node scripts/run-tests.mjs test/e2e/dra.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { E2eEnv, NAMESPACE, NODE, vhostUserNics } from '../helpers/e2e.js';
import { KubeletHarness, startScheduler, vhostQueueNum } from '../helpers/dra.js';
import { Guest } from '../helpers/guest.js';
import { until } from '../helpers/wait.js';
import { POD_METADATA_ROOT } from '../../src/dra/constants.js';

const FIX = 'test/fixtures/kubevirt';
const VF_ADDR = '0000:00:0b.0';
const VF_DEVICE = 'vf-0000-00-0b-0';
const POOL = 'vio4wd.io/e2e-vf';
const CLASS = 'e2e-vf.vio4wd.io';
const CLAIM = 'vm-dra-nic';
const POD = 'virt-launcher-vm-dra';
const MAC = '52:54:00:e2:d0:01';
const PEER = '10.0.5.1';

let env: E2eEnv | undefined;
let scheduler: Awaited<ReturnType<typeof startScheduler>> | undefined;
let harness: KubeletHarness | undefined;
let guest: Guest | undefined;

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} did not start`);
  return v;
}

async function json<T>(e: E2eEnv, ...args: string[]): Promise<T> {
  return JSON.parse(await e.kube.kubectl(...args, '-o', 'json')) as T;
}

async function apply(e: E2eEnv, obj: object): Promise<void> {
  await e.kube.kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

before(async () => {
  const e = (env = await E2eEnv.start({ dra: { standIns: { [VF_ADDR]: 'net_af_packet_e2edra,iface=vfd,qpairs=2' } } }));
  await e.ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  // the VF stand-in: vfd, whose peer is a port of the "PF" bridge; the peer host on another port
  await e.ns.addBridge('pfd');
  await e.ns.addVeth('vfd', 'upd');
  await e.ns.setMaster('upd', 'pfd');
  await e.ns.addVeth('peerd', 'uppd');
  await e.ns.setMaster('uppd', 'pfd');
  await e.ns.addAddress('peerd', `${PEER}/24`);
  // the admin's pool of VFs (this one by its address), and the chart's DeviceClass for it
  const policy = { name: 'e2e-vf', resourceName: POOL, vfs: { pciAddresses: [VF_ADDR] }, limits: { maxQueues: 2 }, namespaces: [NAMESPACE] };
  await apply(e, { apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioForwarderPolicy', metadata: { name: policy.name }, spec: { ...policy, name: undefined } });
  const rendered = await e.kube.helm('template', 't', join(process.cwd(), 'helm', 'vio4wd'), '--set', 'agent.dra.enabled=true', '--set-json', `policies=${JSON.stringify([policy])}`);
  const classes = parseAllDocuments(rendered).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } }).filter((o) => o?.kind === 'DeviceClass');
  assert.deepEqual(classes.map((c) => c.metadata?.name), [CLASS]);
  await apply(e, classes[0]!);
  // the node as kubelet would report it: Ready, with room for pods (no node lifecycle controller
  // runs to lift the not-ready taint the apiserver's admission gave it)
  const now = new Date().toISOString();
  await e.kube.kubectlRun(['patch', 'node', NODE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { capacity: { cpu: '8', memory: '16Gi', pods: '110' }, allocatable: { cpu: '8', memory: '16Gi', pods: '110' }, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'e2e node', lastHeartbeatTime: now, lastTransitionTime: now }] } })]);
  await e.kube.kubectlRun(['taint', 'node', NODE, 'node.kubernetes.io/not-ready:NoSchedule-'], { check: false });
  await e.kube.kubectlRun(['create', 'serviceaccount', 'default', '-n', NAMESPACE], { check: false });
  scheduler = await startScheduler(e.kube, e.dirs.root);
}, { timeout: 240_000 });

after(async () => {
  await guest?.stop();
  await harness?.stop().catch(() => undefined);
  await scheduler?.stop();
  await env?.stop();
}, { timeout: 120_000 });

test('story (DRA): ResourceClaim -> kube-scheduler -> kubelet prepares a free VF -> sidecar reads the device metadata -> QEMU pings with the claim\'s MAC', { timeout: 300_000 }, async () => {
  const e = need(env, 'the environment');
  // the user: a claim for a VF of the pool, with the VM's MAC and 2 queue pairs, and the
  // virt-launcher pod KubeVirt makes for a VM whose network names the claim
  await apply(e, {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name: CLAIM, namespace: NAMESPACE },
    spec: {
      devices: {
        requests: [{ name: 'vf', exactly: { deviceClassName: CLASS } }],
        config: [{ requests: ['vf'], opaque: { driver: 'vio4wd.io', parameters: { apiVersion: 'vio4wd.io/v1alpha1', kind: 'RelayConfig', mac: MAC, queues: 2 } } }],
      },
    },
  });
  await apply(e, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: NAMESPACE },
    spec: { resourceClaims: [{ name: 'nic', resourceClaimName: CLAIM }], containers: [{ name: 'compute', image: 'virt-launcher', resources: { claims: [{ name: 'nic' }] } }] },
  });
  const claim = await until('the scheduler allocates the claim and binds the pod', async () => {
    const c = await json<{ status?: { allocation?: { devices: { results: { pool: string; device: string }[] } }; reservedFor?: unknown[] } }>(e, 'get', 'resourceclaim', '-n', NAMESPACE, CLAIM);
    const p = await json<{ spec: { nodeName?: string } }>(e, 'get', 'pod', '-n', NAMESPACE, POD);
    return c.status?.reservedFor?.length && p.spec.nodeName === NODE ? c : undefined;
  }, { timeoutMs: 60_000, intervalMs: 200, detail: () => scheduler?.log().slice(-3000) ?? '' });
  assert.deepEqual(claim.status!.allocation!.devices.results.map((r) => [r.pool, r.device]), [[`${NODE}/e2e-vf`, VF_DEVICE]]);

  // kubelet: its DRA manager registers the agent's plugin and prepares the pod's claim
  const h = (harness = KubeletHarness.start(e.kube, { registryDir: e.dirs.dra.registry, stateDir: join(e.dirs.root, 'kubelet-dra-state'), cdiDir: e.dirs.dra.cdi, node: NODE, namespace: NAMESPACE, pod: POD }));
  await h.next(['registered']);
  const prep = await h.next(['prepared', 'prepareError']);
  assert.equal(prep.event, 'prepared', `${prep.error}\n${e.agentTail()}`);
  assert.deepEqual(prep.specErrors, {}, 'the CDI library accepts the spec');
  const oci = prep.oci as { mounts: { source: string; destination: string }[]; env: string[] };
  // the container runtime's part: the CDI mounts; the sidecar's container sees the metadata
  for (const m of oci.mounts.filter((x) => x.destination.startsWith(POD_METADATA_ROOT))) {
    const dest = join(e.dirs.dra.podView, m.destination.slice(POD_METADATA_ROOT.length));
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(m.source, dest);
  }
  const toHost = (podPath: string): string => {
    const m = oci.mounts.filter((x) => podPath.startsWith(`${x.destination}/`)).sort((a, b) => b.destination.length - a.destination.length)[0];
    if (!m) throw new Error(`no CDI mount covers ${podPath}: ${oci.mounts.map((x) => x.destination).join(', ')}`);
    return posix.join(m.source, posix.relative(m.destination, podPath));
  };

  // KubeVirt: OnDefineDomain for a VMI whose network names the claim's request; no MAC in the VMI
  const vmi = JSON.parse(readFileSync(join(FIX, 'vmi-dra.json'), 'utf8')) as { metadata: Record<string, unknown>; spec: { domain: { cpu: Record<string, unknown>; devices: Record<string, unknown> }; networks: unknown[]; resourceClaims: unknown[] } };
  vmi.metadata.namespace = NAMESPACE;
  vmi.spec.domain.cpu.cores = 2;
  vmi.spec.domain.devices.networkInterfaceMultiqueue = true;
  vmi.spec.domain.devices.interfaces = [{ name: 'default', masquerade: {} }, { name: 'net1', binding: { name: 'vio4wd' } }];
  vmi.spec.networks = [{ name: 'default', pod: {} }, { name: 'net1', resourceClaim: { claimName: 'nic', requestName: 'vf' } }];
  vmi.spec.resourceClaims = [{ name: 'nic', resourceClaimName: CLAIM }];
  const domain = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), vmi);
  const nics = vhostUserNics(domain, toHost);
  const relayDir = join(e.dirs.sockets, `dra.${VF_DEVICE}`);
  assert.deepEqual(
    nics.map((n) => [n.name, n.podSocketPath, n.socketPath, n.queues, n.mac]),
    [['net1', `/var/run/vio4wd/dra/${CLAIM}/vf/vhost-user.sock`, join(relayDir, 'vhost-user.sock'), 2, MAC]],
    'the relay made for the claim, its 2 queue pairs and the claim\'s MAC',
  );
  // the relay offers the claim's queue pairs; the VF receives for the claim's MAC
  if (nics[0]!.mode === 'client') assert.equal(await vhostQueueNum(nics[0]!.socketPath), 2);
  const fdb = JSON.parse(await e.ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'upd'])) as { mac: string; state?: string }[];
  assert.deepEqual(fdb.filter((x) => x.state === 'static').map((x) => x.mac), [MAC]);

  // libvirt's part: QEMU on the socket; the guest pings the peer behind the VF
  const n = nics[0]!;
  const g = (guest = await Guest.start({
    name: 'vm-dra',
    netns: e.ns,
    nics: [{ socketPath: n.socketPath, mode: n.mode, queues: n.queues, mac: n.mac, ip: '10.0.5.2/24' }],
    job: { kind: 'ping', peer: PEER, count: 5, intervalS: 0.2 },
  }));
  const ready = await g.waitForReady();
  assert.deepEqual(ready.nics.map((x) => [x.mac, x.queues]), [[MAC, 2]]);
  assert.deepEqual(await g.waitForPingSummary(), { sent: 5, received: 5, lost: 0 }, e.agentTail());
  await g.stop();
  guest = undefined;
  // the node also runs the device plugin: the relay made for the claim is not kubelet's to allocate
  assert.deepEqual(e.kubelet.devices(POOL) ?? [], [], 'the device plugin does not offer the made relay');

  // the pod goes: kubelet unprepares, the relay made for the claim is deleted, the VF is free
  h.send('unprepare');
  assert.equal((await h.next(['unprepared', 'unprepareError'])).event, 'unprepared');
  assert.equal(existsSync(relayDir), false, 'the relay and its directory are gone');
});
