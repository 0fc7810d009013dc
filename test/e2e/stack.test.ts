// End to end: a VM's packets through the whole vio4wd stack, then the faults a node sees.
//
// Every part is real and started here (test/helpers/e2e.ts): kube-apiserver + etcd with the
// CRDs, `vio4wd operator`, `vio4wd agent --kubernetes` on the real DPDK engine inside a test
// network namespace, a test kubelet (device plugin v1beta1), `vio4wd kubevirt-sidecar`, and a
// QEMU guest. The test plays the parts a cluster would: the user (kubectl apply), kubelet
// (Allocate for a virt-launcher pod), Multus/KubeVirt (the network-info file built from the
// device-info the agent wrote) and virt-launcher/libvirt (OnDefineDomain, then QEMU started
// with the vhost-user options of the rewritten domain, on the host path of the socket that
// Allocate mounted into the pod).
//
// The network: two VF stand-ins, each a veth whose inner end the relay drives with
// net_af_packet (like a VF, it outlives the agent) and whose outer end is the peer behind
// the VF (10.0.1.1 and 10.0.2.1). The guest has two NICs with 2 queue pairs each:
//   eth0 10.0.1.2 <- relay vms.vm1 (vhost-user client: QEMU is the socket server) -> vf1 ~ up1 10.0.1.1
//   eth1 10.0.2.2 <- relay vms.vm2 (vhost-user server: QEMU is the client)        -> vf2 ~ up2 10.0.2.1
//
// Run: node scripts/run-tests.mjs test/e2e/, with nothing else on the cores (needs root, DPDK,
// hugepages, QEMU and the test control plane: scripts/bootstrap). The longer soak is `npm run soak`.
// time limit: 30 min
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { Guest } from '../helpers/guest.js';
import {
  Cleanups,
  E2eEnv,
  GuestPing,
  NAMESPACE,
  NODE,
  RESOURCE,
  freeHugepages,
  longestGap,
  metricValue,
  sleep,
  until,
  vhostUserNics,
  type PodView,
  type Reply,
  type VhostUserNic,
} from '../helpers/e2e.js';
import { runSoak } from './soak-run.js';
import type { VirtioRelay } from '../../src/kube/index.js';
import { ControlClient, PortControlRequest_Op, PortControlResponse_Status } from '../../src/control/index.js';
import { live } from '../../src/agent/handover.js';
import type { AgentProcess } from '../helpers/agent.js';

const FIX = 'test/fixtures/kubevirt';
const VM1 = 'vm1';
const VM2 = 'vm2';
const ID1 = `${NAMESPACE}.${VM1}`;
const ID2 = `${NAMESPACE}.${VM2}`;
const MAC1 = '52:54:00:e2:e0:01';
const MAC2 = '52:54:00:e2:e0:02';
const PEER1 = '10.0.1.1';
const PEER2 = '10.0.2.1';
// the live-migration test's relays (source and target pod), guest MAC and peer
const VM3A = 'vm3a';
const VM3B = 'vm3b';
const ID3A = `${NAMESPACE}.${VM3A}`;
const ID3B = `${NAMESPACE}.${VM3B}`;
const MAC3 = '52:54:00:e2:e0:03';
const PEER3 = '10.0.3.1';
// the same story without vio4wd-cni; the network config Multus would hand vio4wd-cni
const VM4A = 'vm4a';
const VM4B = 'vm4b';
const ID4A = `${NAMESPACE}.${VM4A}`;
const MIG_NET = 'vio4wd-mig';

let env: E2eEnv | undefined;
let guest: Guest | undefined;
let pod: PodView | undefined;
const local = new Cleanups();

function report(t: TestContext, msg: string): void {
  t.diagnostic(msg);
  console.log(`# e2e: ${msg}`);
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} is not there: an earlier step of the story failed`);
  return v;
}

/** A VF stand-in: veth `vf` (driven by the relay's net_af_packet) and `up` (the peer, `addr`). */
async function addVf(e: E2eEnv, vf: string, up: string, addr: string): Promise<void> {
  await e.ns.addVeth(vf, up);
  await e.ns.addAddress(up, addr);
  // the peer's kernel must put whole frames with real checksums on the wire: a packet socket
  // hands on what it gets (no checksum offload, no GSO super-frames) as a VF would see it
  await e.ns.exec('ethtool', ['-K', up, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
  await e.ns.exec('ethtool', ['-K', vf, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
}

/** The VMI virt-launcher hands the sidecar: KubeVirt's fixture with two vio4wd NICs, 2 vCPUs, multiqueue. */
function vmi(): Record<string, unknown> {
  const v = JSON.parse(readFileSync(join(FIX, 'vmi-one.json'), 'utf8')) as {
    metadata: Record<string, unknown>;
    spec: { domain: { cpu: Record<string, unknown>; devices: Record<string, unknown> }; networks: unknown[] };
  };
  v.metadata.name = 'vm-e2e';
  v.metadata.namespace = NAMESPACE;
  v.spec.domain.cpu.cores = 2;
  v.spec.domain.devices.networkInterfaceMultiqueue = true;
  v.spec.domain.devices.interfaces = [
    { name: 'default', masquerade: {} },
    { name: 'net1', binding: { name: 'vio4wd' }, macAddress: MAC1 },
    { name: 'net2', binding: { name: 'vio4wd' }, macAddress: MAC2 },
  ];
  v.spec.networks = [
    { name: 'default', pod: {} },
    { name: 'net1', multus: { networkName: `${NAMESPACE}/vio4wd-a` } },
    { name: 'net2', multus: { networkName: `${NAMESPACE}/vio4wd-b` } },
  ];
  return v;
}

/** The VMI of the migration test: one vio4wd NIC with MAC3, one vCPU. */
function migrationVmi(): Record<string, unknown> {
  const v = vmi() as { metadata: Record<string, unknown>; spec: { domain: { cpu: Record<string, unknown>; devices: Record<string, unknown> }; networks: unknown[] } };
  v.metadata.name = 'vm-mig';
  v.spec.domain.cpu.cores = 1;
  v.spec.domain.devices.networkInterfaceMultiqueue = false;
  v.spec.domain.devices.interfaces = [
    { name: 'default', masquerade: {} },
    { name: 'net1', binding: { name: 'vio4wd' }, macAddress: MAC3 },
  ];
  v.spec.networks = [
    { name: 'default', pod: {} },
    { name: 'net1', multus: { networkName: `${NAMESPACE}/vio4wd-a` } },
  ];
  return v;
}

/** The MACs a VF stand-in's bridge port forwards to it (its static FDB entries). */
async function standInMacs(e: E2eEnv, port: string): Promise<string[]> {
  const all = JSON.parse(await e.ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', port])) as { mac: string; state?: string }[];
  return all.filter((x) => x.state === 'static').map((x) => x.mac);
}

/**
 * The migration's two VF stand-ins, each behind its own stand-in PF (as a migration's source
 * and target VFs are, on two nodes), both PFs on one switch (bridge brm, learning, with the
 * peer's address). A stand-in PF is a bridge whose VF port has learning and unknown-unicast
 * flooding off and one static FDB entry, the VF's MAC: the VF receives only frames for that
 * MAC (and broadcasts). A fresh stand-in VF has its own veth's MAC, as a VF has the MAC its PF
 * gave it; vio4wd-cni's programming (the agent's sriov.vfProgrammer: standin) rewrites the entry.
 */
async function addMigrationVfs(e: E2eEnv, cleanups: Cleanups): Promise<{ vfma: string; vfmb: string }> {
  await e.ns.addBridge('brm');
  await e.ns.addAddress('brm', `${PEER3}/24`);
  cleanups.add('switch', () => e.ns.ip('link', 'del', 'brm'));
  const own: Record<string, string> = {};
  for (const [vf, up, pf] of [['vfma', 'upma', 'pfma'], ['vfmb', 'upmb', 'pfmb']] as const) {
    await e.ns.addBridge(pf);
    cleanups.add(pf, () => e.ns.ip('link', 'del', pf).catch(() => undefined));
    // the PF's uplink to the switch
    await e.ns.addVeth(`${pf}u`, `${pf}s`);
    cleanups.add(`${pf} uplink`, () => e.ns.ip('link', 'del', `${pf}u`).catch(() => undefined));
    await e.ns.setMaster(`${pf}u`, pf);
    await e.ns.setMaster(`${pf}s`, 'brm');
    await e.ns.addVeth(vf, up);
    cleanups.add(vf, () => e.ns.ip('link', 'del', vf).catch(() => undefined));
    for (const i of [vf, up, `${pf}u`, `${pf}s`]) await e.ns.exec('ethtool', ['-K', i, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
    await e.ns.setMaster(up, pf);
    await e.ns.ip('link', 'set', 'dev', up, 'type', 'bridge_slave', 'learning', 'off', 'flood', 'off');
    own[vf] = (JSON.parse(await e.ns.ip('-j', 'link', 'show', 'dev', vf)) as { address: string }[])[0]!.address;
    await e.ns.exec('bridge', ['fdb', 'replace', own[vf]!, 'dev', up, 'master', 'static', 'sticky']);
  }
  return { vfma: own.vfma!, vfmb: own.vfmb! };
}

/** Two relays of the pool on the stand-ins (no MAC of their own), allocated to a source and a
 *  target virt-launcher pod that see them at one socket path. */
async function migrationRelays(e: E2eEnv, cleanups: Cleanups, nameA: string, nameB: string) {
  await e.apply(
    e.relayObject(nameA, { vf: { devargs: `net_af_packet_${nameA},iface=vfma` } }),
    e.relayObject(nameB, { vf: { devargs: `net_af_packet_${nameB},iface=vfmb` } }),
  );
  cleanups.add('relays', async () => {
    await e.deleteRelay(nameA).catch(() => undefined);
    await e.deleteRelay(nameB).catch(() => undefined);
  });
  const ra = await e.waitReady(nameA);
  const rb = await e.waitReady(nameB);
  const idA = `${NAMESPACE}.${nameA}`;
  const idB = `${NAMESPACE}.${nameB}`;
  await e.waitDevices('both migration relays Healthy', (d) => d.get(idA) === 'Healthy' && d.get(idB) === 'Healthy');
  const podA = await e.allocate([idA]);
  const podB = await e.allocate([idB]);
  const pathA = podA.deviceInfo.get(idA)!['vhost-user'].path;
  assert.equal(podB.deviceInfo.get(idB)!['vhost-user'].path, pathA, 'both pods see their relay at one path');
  assert.equal(podA.hostPath(pathA), ra.status!.socketPath);
  assert.equal(podB.hostPath(pathA), rb.status!.socketPath, "the source's path leads to relay B in the target pod");
  return { ra, rb, podA, podB, pathA };
}

/** Pings the peer behind each relay from the guest (P1 over eth0, P2 over eth1) and waits for
 *  `first` replies on each. */
async function pingBoth(g: Guest, intervalS: number, first: number): Promise<[GuestPing, GuestPing]> {
  const p1 = new GuestPing(g, 'P1');
  const p2 = new GuestPing(g, 'P2');
  await p1.start(PEER1, intervalS);
  await p2.start(PEER2, intervalS);
  await p1.more(first);
  await p2.more(first);
  return [p1, p2];
}

/** Seqs missing between the first and the last reply (lost in the middle of a run). */
function missingSeqs(replies: Reply[]): number[] {
  const seqs = new Set(replies.map((r) => r.seq));
  if (seqs.size === 0) return [];
  const lo = Math.min(...seqs);
  const hi = Math.max(...seqs);
  const out: number[] = [];
  for (let s = lo; s <= hi; s++) if (!seqs.has(s)) out.push(s);
  return out;
}

/** Guest per-queue counters of a NIC (virtio-net's ethtool -S). */
async function queueStats(g: Guest, dev: string): Promise<Record<string, number>> {
  const r = await g.exec(`ethtool -S ${dev}`);
  assert.equal(r.rc, 0, r.output.join('\n'));
  const out: Record<string, number> = {};
  for (const l of r.output) {
    const m = /^\s+([rt]x_queue_\d+_packets): (\d+)$/.exec(l);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** UDP datagrams from the peer side to `dst` from many source ports (many flows: spread over queues). */
async function udpFlows(e: E2eEnv, src: string, dst: string, flows = 16, perFlow = 20): Promise<void> {
  const py = `
import socket, sys
src, dst, flows, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 40000 + i))
    for _ in range(per):
        s.sendto(b'x' * 64, (dst, 9))
    s.close()
`;
  await e.ns.exec('python3', ['-c', py, src, dst, String(flows), String(perFlow)]);
}

const SINK = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print('listening', flush=True)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    n += len(d)
print('received', n, flush=True)
`;

const SOURCE = `
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
buf = b'v' * 65536
for _ in range(int(sys.argv[3])): c.sendall(buf)
c.close()
print('sent', flush=True)
`;

before(async () => {
  env = await E2eEnv.start();
  await env.ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await addVf(env, 'vf1', 'up1', `${PEER1}/24`);
  await addVf(env, 'vf2', 'up2', `${PEER2}/24`);
}, { timeout: 180_000 });

after(async () => {
  await local.run();
  await guest?.stop();
  await env?.stop();
}, { timeout: 120_000 });

describe('e2e: a VM through the whole stack', { timeout: 1_500_000 }, () => {
  test('story: VirtioRelays -> operator -> agent -> device plugin -> sidecar -> QEMU; ping and bulk both ways, 2 queue pairs', { timeout: 300_000 }, async (t) => {
    const e = need(env, 'the environment');
    const t0 = Date.now();
    // the user asks for two relays; no nodeName: the operator picks the node
    await e.apply(
      e.relayObject(VM1, { vf: { devargs: 'net_af_packet_vm1,iface=vf1,qpairs=2' }, queues: 2, mac: MAC1 }),
      e.relayObject(VM2, { vf: { devargs: 'net_af_packet_vm2,iface=vf2,qpairs=2' }, queues: 2, mac: MAC2, vhostUser: { mode: 'server' } }),
    );
    for (const name of [VM1, VM2]) {
      await e.waitRelay(name, `is scheduled to ${NODE}`, (r) => r.spec.nodeName === NODE, 60_000);
    }
    const events = await e.kube.kubectl('get', 'events', '-n', NAMESPACE, '--field-selector', `involvedObject.name=${VM1}`, '-o', 'jsonpath={.items[*].reason}');
    assert.match(events, /Scheduled/, 'the operator recorded where it put the relay');

    const r1 = await e.waitReady(VM1);
    const r2 = await e.waitReady(VM2);
    const readyMs = Date.now() - t0;
    assert.equal(r1.status?.socketPath, join(e.dirs.sockets, ID1, 'vhost-user.sock'));
    assert.equal(r1.status?.socketMode, 'client', 'Kubernetes relays default to client mode (QEMU is the server)');
    assert.equal(r2.status?.socketMode, 'server');
    assert.equal(r1.status?.deviceId, ID1);
    assert.equal(r1.status?.nodeName, NODE);
    assert.deepEqual(r1.status?.conditions?.map((c) => `${c.type}=${c.status}`), ['VFAttached=True', 'SocketReady=True', 'GuestConnected=False', 'Ready=True']);
    const vfn = await until('the VirtioForwarderNode counts 2 ready relays', async () => {
      const o = (await e.api.custom.getClusterCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', plural: 'virtioforwardernodes', name: NODE })) as { status?: { relays?: { ready: number }; engine?: { up: boolean } } };
      return o.status?.relays?.ready === 2 && o;
    });
    assert.equal(vfn.status?.engine?.up, true);

    // kubelet: the pool registered, both devices healthy
    const reg = e.kubelet.registrationsFor(RESOURCE);
    assert.ok(reg.length >= 1, 'the device plugin registered with kubelet');
    assert.equal(reg.at(-1)!.request.endpoint, 'vio4wd.io_vhostuser.sock');
    await e.waitDevices('both relays Healthy', (d) => d.get(ID1) === 'Healthy' && d.get(ID2) === 'Healthy');
    const preferred = await e.kubelet.preferred(RESOURCE, [{ available_deviceIDs: [ID1, ID2], must_include_deviceIDs: [], allocation_size: 2 }]);
    assert.deepEqual([...preferred.container_responses[0]!.deviceIDs].sort(), [ID1, ID2]);

    // kubelet hands the pool's relays to a pod of any namespace: the agent refuses another
    // namespace's pod before its container starts
    await assert.rejects(e.allocate([ID1], 'snoop', 'intruder'), (err: { code?: number; message: string }) => err.code === 7 /* PERMISSION_DENIED */ && /VirtioRelay vms\/vm1, but kubelet allocated it to pod intruder\/snoop/.test(err.message));

    // Allocate for the virt-launcher pod's compute container
    const p = await e.allocate([ID1, ID2]);
    pod = p;
    assert.deepEqual(
      p.mounts.map((m) => [m.container_path, m.host_path, m.read_only]),
      [
        ['/var/run/vio4wd/vhostuser-0', join(e.dirs.sockets, ID1), false],
        ['/var/run/vio4wd/vhostuser-1', join(e.dirs.sockets, ID2), false],
      ],
    );
    assert.equal(p.envs.VIO4WD_VHOSTUSER_DEVICES, `${ID1},${ID2}`);
    assert.equal(p.envs.VIO4WD_DEVICE_VMS_VM1_MODE, 'server');
    assert.equal(p.envs.VIO4WD_DEVICE_VMS_VM2_MODE, 'client');
    assert.equal(p.envs.VIO4WD_DEVICE_VMS_VM1_QUEUES, '2');
    assert.deepEqual(p.deviceInfo.get(ID1), { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'server', path: '/var/run/vio4wd/vhostuser-0/vhost-user.sock' } });
    assert.deepEqual(p.deviceInfo.get(ID2)?.['vhost-user'], { mode: 'client', path: '/var/run/vio4wd/vhostuser-1/vhost-user.sock' });

    // KubeVirt: network-info from the device-info, then OnDefineDomain on the sidecar
    await e.writeNetworkInfo(p, [['net1', ID1], ['net2', ID2]]);
    const domain = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), vmi());
    assert.ok(/<memoryBacking>[\s\S]*<access mode="shared"/.test(domain), 'guest memory is shared, as vhost-user needs');
    // libvirt's part: the vhost-user interfaces become QEMU options; the pod's socket paths
    // are turned back into host paths through Allocate's mounts (there is no container here)
    const nics = vhostUserNics(domain, (path) => p.hostPath(path));
    assert.deepEqual(
      nics.map((n: VhostUserNic) => [n.name, n.podSocketPath, n.socketPath, n.mode, n.queues, n.mac]),
      [
        ['net1', '/var/run/vio4wd/vhostuser-0/vhost-user.sock', r1.status!.socketPath, 'server', 2, MAC1],
        ['net2', '/var/run/vio4wd/vhostuser-1/vhost-user.sock', r2.status!.socketPath, 'client', 2, MAC2],
      ],
    );

    const g = await Guest.start({
      name: 'vm-e2e',
      netns: e.ns,
      nics: [
        { socketPath: nics[0]!.socketPath, mode: nics[0]!.mode, queues: nics[0]!.queues, mac: nics[0]!.mac, ip: '10.0.1.2/24' },
        { socketPath: nics[1]!.socketPath, mode: nics[1]!.mode, queues: nics[1]!.queues, mac: nics[1]!.mac, ip: '10.0.2.2/24' },
      ],
      job: { kind: 'shell' },
    });
    guest = g;
    const ready = await g.waitForReady();
    assert.deepEqual(
      ready.nics.map((n) => [n.name, n.mac, n.ip, n.queues, n.maxQueues]),
      [['eth0', MAC1, '10.0.1.2/24', 2, 2], ['eth1', MAC2, '10.0.2.2/24', 2, 2]],
    );
    for (const name of [VM1, VM2]) {
      await e.waitRelay(name, 'shows the guest connected', (r) => r.status?.guestConnected === true);
    }

    // ping through each relay (ARP first: the relays carry broadcast too)
    for (const peer of [PEER1, PEER2]) {
      const r = await g.exec(`ping -c 3 -i 0.2 -W 2 ${peer}`);
      assert.equal(r.rc, 0, `ping ${peer}:\n${r.output.join('\n')}\n${e.agentTail()}`);
      assert.match(r.output.join('\n'), /3 packets transmitted, 3 packets received/);
    }

    // bulk TCP, guest -> peer behind vf1 (10 MiB)
    const sink = e.ns.spawn('python3', ['-c', SINK, PEER1, '5001']);
    local.add('tcp sink', () => sink.stop());
    let sinkOut = '';
    sink.child.stdout?.on('data', (d: Buffer) => (sinkOut += d.toString()));
    await until('the TCP sink listens', () => sinkOut.includes('listening'), 10_000, 50);
    const up = await g.exec(`dd if=/dev/zero bs=65536 count=160 2>/dev/null | nc ${PEER1} 5001`, 180_000);
    assert.equal(up.rc, 0, up.output.join('\n'));
    await sink.exited;
    assert.match(sinkOut, /received 10485760\b/, 'all 10 MiB arrived behind the VF');

    // bulk TCP, peer behind vf2 -> guest (10 MiB through the server-mode relay)
    await g.exec('rm -f /tmp/rx.count; (nc -l -p 5002 | wc -c > /tmp/rx.count) </dev/null >/dev/null 2>&1 &');
    await sleep(300);
    const src = e.ns.spawn('python3', ['-c', SOURCE, '10.0.2.2', '5002', '160']);
    local.add('tcp source', () => src.stop());
    let srcOut = '';
    src.child.stdout?.on('data', (d: Buffer) => (srcOut += d.toString()));
    src.child.stderr?.on('data', (d: Buffer) => (srcOut += d.toString()));
    assert.equal(await src.exited, 0, `the sender failed: ${srcOut}`);
    const count = await until('the guest counted the bytes', async () => {
      const r = await g.exec('cat /tmp/rx.count 2>/dev/null');
      const n = r.output.map((l) => /^\s*(\d+)\s*$/.exec(l)?.[1]).find(Boolean);
      return n !== undefined && Number(n);
    }, 60_000, 500);
    assert.equal(count, 10485760, 'all 10 MiB arrived in the guest');

    // 2 queue pairs: many flows from behind each VF land on both of the guest's rx queues
    const before = { eth0: await queueStats(g, 'eth0'), eth1: await queueStats(g, 'eth1') };
    await udpFlows(e, PEER1, '10.0.1.2');
    await udpFlows(e, PEER2, '10.0.2.2');
    await sleep(500);
    for (const dev of ['eth0', 'eth1'] as const) {
      const now = await queueStats(g, dev);
      const d0 = now.rx_queue_0_packets! - before[dev].rx_queue_0_packets!;
      const d1 = now.rx_queue_1_packets! - before[dev].rx_queue_1_packets!;
      assert.ok(d0 > 0 && d1 > 0, `${dev}: both rx queues carry traffic (queue 0: ${d0}, queue 1: ${d1})`);
      report(t, `${dev} rx per queue after 16 flows: ${d0} / ${d1}; tx per queue so far: ${now.tx_queue_0_packets} / ${now.tx_queue_1_packets}`);
    }

    // the relay's counters agree that traffic went through
    const m = await e.metrics();
    for (const id of [ID1, ID2]) {
      for (const dir of ['vf_to_vm', 'vm_to_vf']) {
        const v = metricValue(m, 'vio4wd_relay_tx_packets_total', { relay: id, direction: dir }) ?? 0;
        assert.ok(v > 100, `${id} ${dir} forwarded ${v} packets`);
      }
    }
    report(t, `relays Ready ${readyMs} ms after kubectl apply; guest ready ${ready.readyAtMs} ms after QEMU start`);
  });

  test('agent SIGKILLed and restarted under the running guest: traffic resumes, statuses kept, nothing leaks', { timeout: 180_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    // Static neighbours on both ends for this fault, so the gap measures the relay and not the
    // ARP timers: a guest whose entry happens to be in its probe phase during the outage adds
    // about a second (seen with dynamic ARP: resumed ~1 s after the relay was back).
    await pinNeighbours(e, g, true);
    try {
      await agentKillAndRestart(t, e, g);
    } finally {
      await pinNeighbours(e, g, false);
    }
  });

  async function agentKillAndRestart(t: TestContext, e: E2eEnv, g: Guest): Promise<void> {
    const [p1, p2] = await pingBoth(g, 0.05, 10);
    // a clock in the guest: a gap in its ticks means the whole guest stood still
    const tickFrom = g.lines.length;
    await g.exec('(echo $$ > /tmp/tick.pid; while :; do echo TICK; sleep 0.05; done) >/dev/console 2>&1 </dev/null &');
    const statusBefore = new Map<string, VirtioRelay>();
    for (const n of [VM1, VM2]) statusBefore.set(n, (await e.getRelay(n))!);
    const treeBefore = e.socketTree();
    const ipcBefore = readdirSync(e.dirs.ipc).sort();
    const oldPid = e.agent.pid;
    const heldPages = (metricValue(await e.metrics(), 'vio4wd_engine_hugepage_bytes') ?? NaN) / (2 * 1024 * 1024);
    const hugeBefore = freeHugepages();

    // watch the VirtioRelays through the whole fault: their status must never disappear
    const seen: { name: string; phase?: string; socketPath?: string; at: number }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const n of [VM1, VM2]) {
          try {
            const r = await e.getRelay(n);
            seen.push({ name: n, phase: r?.status?.phase, socketPath: r?.status?.socketPath, at: Date.now() });
          } catch {
            /* the apiserver is up; a failed read just skips a sample */
          }
        }
        await sleep(100);
      }
    })();

    const killAt = Date.now();
    await e.agent.kill();
    const hugeAfterKill = freeHugepages();
    // the dead agent left the server-mode socket file behind; the restarted agent must take it over
    assert.deepEqual(e.hugepageFiles(), [], 'no hugepage files of the killed agent');
    // its hugepages went back to the system at once (no other DPDK process runs under the CPU lock)
    assert.ok(hugeAfterKill - hugeBefore >= heldPages, `${hugeAfterKill - hugeBefore} hugepages freed by the kill; the agent held ${heldPages}`);
    const spawnAt = Date.now();
    const a = await e.startAgent();
    const runningAt = Date.now();
    assert.notEqual(a.pid, oldPid);

    // nothing is forwarded while no agent runs: a reply read from the console between the kill
    // and the restart was sent before the kill
    const withLog = (err: unknown): never => {
      throw new Error(`${(err as Error).message}\nagent log:\n${e.agentTail(12_000)}`);
    };
    const first1 = await until('P1 replies after the restart', () => p1.replies().find((r) => r.at > spawnAt), 60_000, 20).catch(withLog);
    const first2 = await until('P2 replies after the restart', () => p2.replies().find((r) => r.at > spawnAt), 60_000, 20).catch(withLog);
    const attachLines = a.logs().filter((l) => l.msg === 'relay attached');
    for (const n of [VM1, VM2]) await e.waitRelay(n, 'is Ready with the guest connected', (r) => r.status?.phase === 'Ready' && r.status.guestConnected === true);
    await e.waitDevices('both relays Healthy from the new plugin', (d) => d.get(ID1) === 'Healthy' && d.get(ID2) === 'Healthy');
    await p1.more(20);
    await p2.more(20);
    watching = false;
    await watcher;
    const s1 = await p1.stop();
    const s2 = await p2.stop();
    await g.exec('kill $(cat /tmp/tick.pid)');
    const ticks: Reply[] = [];
    for (let i = tickFrom; i < g.lines.length; i++) if (g.lines[i] === 'TICK') ticks.push({ seq: i, at: g.startedAt + g.lineTimes[i]! });
    const frozen = longestGap(ticks, killAt);

    // figures: the outage as the guest saw it, and what part of it the new agent took
    const gap1 = longestGap(p1.replies(), killAt - 1000);
    const gap2 = longestGap(p2.replies(), killAt - 1000);
    const attachedAt = (id: string): number => Date.parse(String(attachLines.find((l) => l.relay === id)?.time));
    const attached1 = attachedAt(ID1);
    const attached2 = attachedAt(ID2);
    report(
      t,
      `agent SIGKILL: new agent running ${runningAt - spawnAt} ms after spawn; ` +
        `client-mode relay (eth0): traffic gap ${gap1.gapMs} ms, first reply ${first1.at - spawnAt} ms after the restart, ${first1.at - attached1} ms after its relay was attached; ` +
        `server-mode relay (eth1): gap ${gap2.gapMs} ms, first reply ${first2.at - spawnAt} ms after the restart, ${first2.at - attached2} ms after attach; ` +
        `pings eth0 ${s1.received}/${s1.sent}, eth1 ${s2.received}/${s2.sent}; ` +
        `the guest stood still for ${frozen.gapMs} ms from ${frozen.before ? frozen.before.at - spawnAt : NaN} ms after the restart (QEMU blocks while its vhost-user connect to a new server socket waits for an answer); free hugepages ${hugeBefore} running -> ${hugeAfterKill} after kill -> ${freeHugepages()} now`,
    );
    // client mode (the relay reconnects to QEMU): traffic flows again within 2 s of the new
    // agent having the relay; the whole outage, the new agent's start included, stays bounded
    // (about 1.2-2.5 s measured; the start of a Node.js process on a busy core varies)
    assert.ok(first1.at - attached1 < 2000, `eth0 resumed ${first1.at - attached1} ms after the relay was attached`);
    assert.ok(gap1.gapMs < 5000, `eth0 outage ${gap1.gapMs} ms`);
    // server mode: QEMU redials every second (the guest helper's reconnect=1; libvirt's is the
    // domain's <reconnect timeout>, 5 s from the sidecar)
    assert.ok(first2.at - attached2 < 3000, `eth1 resumed ${first2.at - attached2} ms after the relay was attached`);
    assert.ok(gap2.gapMs < 6000, `eth1 outage ${gap2.gapMs} ms`);
    // the restart bound (issue #20): the agent brings its relays back from the checkpoint before
    // it loads anything else. Measured from the spawn to the first reply 411-555 ms (client
    // mode) and 950-2450 ms (server mode: QEMU under TCG redials every second, then stands still
    // for up to 0.6 s while it negotiates); before, 3.3 s and 4.2 s. bench/restart.ts has the
    // phases. The bounds leave room for a loaded 2-core machine: client mode < 1.5 s, server
    // mode < 3.5 s.
    assert.ok(first1.at - spawnAt < 1500, `eth0 (client mode) forwarded again ${first1.at - spawnAt} ms after the new agent was spawned`);
    assert.ok(first2.at - spawnAt < 3500, `eth1 (server mode) forwarded again ${first2.at - spawnAt} ms after the new agent was spawned`);

    // statuses: never gone, same socket, device and node afterwards
    const lost = seen.filter((s) => s.phase === undefined || s.socketPath === undefined);
    assert.deepEqual(lost, [], 'every VirtioRelay kept its status through the restart');
    const phases = (n: string): string => seen.filter((s) => s.name === n).map((s) => s.phase).filter((p, i, a) => i === 0 || a[i - 1] !== p).join(' -> ');
    report(t, `phases seen during the restart: ${VM1}: ${phases(VM1)}; ${VM2}: ${phases(VM2)}`);
    for (const n of [VM1, VM2]) {
      const b = statusBefore.get(n)!.status!;
      const now = (await e.getRelay(n))!.status!;
      assert.deepEqual(
        [now.phase, now.socketPath, now.socketMode, now.deviceId, now.nodeName, now.guestConnected, now.observedGeneration],
        [b.phase, b.socketPath, b.socketMode, b.deviceId, b.nodeName, b.guestConnected, b.observedGeneration],
        `${n}: status after the restart`,
      );
      if (now.relayId !== b.relayId) report(t, `${n}: relay number changed ${b.relayId} -> ${now.relayId}`);
    }

    // nothing leaked: the same sockets, one plugin socket, the same ipc endpoints, no hugepage files
    // (the listing before the kill first: a failure of the second names the restarted agent)
    assert.deepEqual(treeBefore, [`${ID1}/`, `${ID1}/vhost-user.sock (socket)`, `${ID2}/`, `${ID2}/vhost-user.sock (socket)`], 'the socket root before the kill');
    assert.deepEqual(e.socketTree(), treeBefore, 'the socket root after the restart: as before the kill');
    assert.deepEqual(await e.kubelet.sockets(), ['kubelet.sock', 'vio4wd.io_vhostuser.sock']);
    assert.deepEqual(readdirSync(e.dirs.ipc).sort(), ipcBefore);
    assert.deepEqual(e.hugepageFiles(), []);
  }

  test('agent upgraded with a handover: a second agent takes the relays over while the first runs (Kubernetes mode)', { timeout: 180_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    await pinNeighbours(e, g, true);
    try {
      await agentHandover(t, e, g);
    } finally {
      await pinNeighbours(e, g, false);
    }
  });

  // docs/upgrade.md: what a DaemonSet rolling update with maxSurge does on one node. The new
  // agent starts beside the old one, takes the relays over one at a time, binds the ports the
  // old one let go of; then the old pod is deleted (SIGTERM).
  async function agentHandover(t: TestContext, e: E2eEnv, g: Guest): Promise<void> {
    const [p1, p2] = await pingBoth(g, 0.05, 10);
    const statusBefore = new Map<string, VirtioRelay>();
    for (const n of [VM1, VM2]) statusBefore.set(n, (await e.getRelay(n))!);
    const treeBefore = e.socketTree();
    const ipcBefore = readdirSync(e.dirs.ipc).sort();
    const handoverSock = join(e.dirs.sockets, '.vio4wd-handover.sock');
    const identOf = (p: string): string => {
      const st = lstatSync(p, { bigint: true });
      return `${st.ino}:${st.ctimeNs}`;
    };
    const sockBefore = identOf(handoverSock);
    const regsBefore = e.kubelet.registrationsFor(RESOURCE).length;
    const historyFrom = e.kubelet.history.length;
    const old = e.agent;
    const ctl = new ControlClient({ endpoints: { portControl: `ipc://${e.dirs.ipc}/port_control` }, timeoutMs: 10_000 });

    // the VirtioRelays and the node's VirtioForwarderNode through the whole handover
    const seen: { name: string; phase?: string; socketPath?: string; at: number }[] = [];
    const nodeSeen: { total?: number; ready?: number; at: number }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        try {
          for (const n of [VM1, VM2]) {
            const r = await e.getRelay(n);
            seen.push({ name: n, phase: r?.status?.phase, socketPath: r?.status?.socketPath, at: Date.now() });
          }
          const vfn = (await e.api.custom.getClusterCustomObject({ group: 'vio4wd.io', version: 'v1alpha1', plural: 'virtioforwardernodes', name: NODE })) as { status?: { relays?: { total: number; ready: number } } };
          nodeSeen.push({ total: vfn.status?.relays?.total, ready: vfn.status?.relays?.ready, at: Date.now() });
        } catch {
          /* the apiserver is up; a failed read just skips a sample */
        }
        await sleep(100);
      }
    })();

    // port control while the relays move: REMOVE of vm1's VF (a VF stand-in: named by the bond
    // name, as it has no PCI address), sent the moment the old agent has frozen its relay set;
    // it must not be applied to the agent that is giving the relays away
    const relayId1 = statusBefore.get(VM1)!.status!.relayId!;
    const remove = (id: number) => ctl.portControl({ op: PortControlRequest_Op.REMOVE, virtio_id: id, name: 'e2e' });
    const during = old.waitForLog(/"msg":"handover: a new agent takes the relays over"/, 60_000, old.output.length).then(async () => {
      const at = Date.now();
      return { reply: await remove(relayId1), at };
    });
    during.catch(() => undefined);

    const spawnAt = Date.now();
    let b: AgentProcess;
    try {
      b = await e.startAgent();
    } catch (err) {
      throw new Error(`the new agent did not start: ${(err as Error).message}\n--- old agent\n${old.output.slice(-6000)}`, { cause: err });
    }
    const runningAt = Date.now();
    try {
      const taken = b.logs().find((l) => l.msg === 'handover: every relay taken over');
      assert.equal(taken?.relays, 2, `the new agent took both relays over:\n${e.agentTail(8000)}`);
      const doneLine = old.logs().find((l) => /^handover done/.test(l.msg));
      assert.ok(doneLine, `the old agent handed over:\n${old.output.slice(-6000)}`);
      const drainedAt = Date.parse(String(doneLine.time));

      // port control during the handover: a clear "retry", nothing applied
      const { reply, at: askedAt } = await during;
      assert.ok(askedAt < drainedAt, 'the request was sent while the handover ran');
      assert.equal(reply.status, PortControlResponse_Status.ERROR, `REMOVE during the handover was refused: ${JSON.stringify(reply)}`);
      assert.equal(reply.error_code, osConstants.errno.EAGAIN, `EAGAIN: ${JSON.stringify(reply)}`);
      assert.match(reply.error_code_source ?? '', /handover.*retry/i);
      // the retry reaches the new agent on the same endpoint (a REMOVE of no relay: unchanged)
      const retry = await remove(1000);
      assert.equal(retry.status, PortControlResponse_Status.OK, `the new agent answers port control: ${JSON.stringify(retry)}`);

      await e.waitDevices('both relays Healthy from the new plugin', (d) => d.get(ID1) === 'Healthy' && d.get(ID2) === 'Healthy');
      await p1.more(20);
      await p2.more(20);

      // the DaemonSet deletes the old pod: SIGTERM, a clean exit that takes nothing of the new agent's
      const exitAt = Date.now();
      assert.equal(await old.stop(), 0, `the old agent exits cleanly:\n${old.output.slice(-4000)}`);
      const errors = old.logs().filter((l) => l.level >= 50);
      assert.deepEqual(errors.map((l) => l.msg), [], 'the old agent logged no error');
      await p1.more(10);
      await p2.more(10);
      watching = false;
      await watcher;
      const s1 = await p1.stop();
      const s2 = await p2.stop();

      // the guest's view: how long each relay was out
      const gap1 = longestGap(p1.replies(), spawnAt);
      const gap2 = longestGap(p2.replies(), spawnAt);
      const moved = (id: string): number => Number(b.logs().find((l) => l.msg === 'handover: relay taken over' && l.relay === id)?.ms ?? NaN);
      const hist = e.kubelet.history.slice(historyFrom).filter((h) => h.resourceName === RESOURCE);
      const ended = hist.find((h) => h.devices === null);
      const relisted = hist.find((h) => ended && h.at >= ended.at && h.devices);
      report(
        t,
        `handover: new agent running ${runningAt - spawnAt} ms after spawn; client-mode relay (eth0) gap ${gap1.gapMs} ms (taken in ${moved(ID1)} ms), ` +
          `server-mode relay (eth1) gap ${gap2.gapMs} ms (taken in ${moved(ID2)} ms); pings eth0 ${s1.received}/${s1.sent}, eth1 ${s2.received}/${s2.sent}; ` +
          `kubelet: old plugin's stream ended -> new plugin's first list ${ended && relisted ? relisted.at - ended.at : NaN} ms; old agent stopped in ${Date.now() - exitAt} ms`,
      );
      // bounds a loaded 2-core machine holds (docs/upgrade.md: ~0.5 s client mode, QEMU's
      // reconnect interval of 1 s plus that in server mode)
      assert.ok(gap1.gapMs < 4000, `eth0 (client mode) out for ${gap1.gapMs} ms`);
      assert.ok(gap2.gapMs < 5000, `eth1 (server mode) out for ${gap2.gapMs} ms`);

      // the VirtioRelays stayed Ready with their socket all along; afterwards as before
      const off = seen.filter((x) => x.phase !== 'Ready' || x.socketPath !== statusBefore.get(x.name)!.status!.socketPath);
      assert.deepEqual(off, [], 'every VirtioRelay stayed Ready, same socket, through the handover');
      for (const n of [VM1, VM2]) {
        const bs = statusBefore.get(n)!.status!;
        const now = (await e.getRelay(n))!.status!;
        assert.deepEqual(
          [now.phase, now.socketPath, now.socketMode, now.deviceId, now.nodeName, now.guestConnected, now.observedGeneration, now.pciAddress],
          [bs.phase, bs.socketPath, bs.socketMode, bs.deviceId, bs.nodeName, bs.guestConnected, bs.observedGeneration, bs.pciAddress],
          `${n}: status after the handover`,
        );
      }
      // the node: its VirtioForwarderNode never counted fewer relays, its Lease is renewed by the new agent
      assert.deepEqual(nodeSeen.filter((x) => x.total !== 2 || x.ready !== 2), [], 'VirtioForwarderNode counted 2 Ready relays throughout');
      const lease = (await e.api.coordination.listLeaseForAllNamespaces({ labelSelector: 'vio4wd.io/lease=node' })).items.find((l) => l.metadata?.name === NODE);
      const renewed = new Date(String(lease?.spec?.renewTime)).getTime();
      assert.ok(renewed > drainedAt, `the node Lease was renewed after the old agent let go (${lease?.spec?.renewTime} vs ${doneLine.time})`);

      // kubelet: one new registration, and the devices never went away or unhealthy
      const regs = e.kubelet.registrationsFor(RESOURCE);
      assert.equal(regs.length, regsBefore + 1, 'the new agent registered its device plugin once');
      const bad = hist.filter((h) => h.devices && !(h.devices.length === 2 && h.devices.every((d) => d.health === 'Healthy')));
      assert.deepEqual(bad.map((h) => h.devices?.map((d) => `${d.ID}:${d.health}`)), [], 'every device list kubelet got during the handover had both devices Healthy');
      // the pod's device-info files (written at Allocate) are still there for Multus
      for (const id of [ID1, ID2]) assert.ok(existsSync(e.deviceInfoPath(id)), `device-info file of ${id} kept`);

      // the checkpoint is the new agent's: written after the old one had let go, with both relays
      const cp = join(e.dirs.sockets, '.vio4wd-relays.json');
      await until('the new agent wrote the checkpoint', () => statSync(cp).mtimeMs > drainedAt, 10_000);
      const entries = (JSON.parse(readFileSync(cp, 'utf8')) as { relays: { key: string }[] }).relays.map((r) => r.key).sort();
      assert.deepEqual(entries, [`${NAMESPACE}/${VM1}`, `${NAMESPACE}/${VM2}`]);

      // nothing leaked; the handover socket is the new agent's (served), the old one's gone
      assert.deepEqual(e.socketTree(), treeBefore, 'the socket root after the handover: as before');
      assert.notEqual(identOf(handoverSock), sockBefore, "the old agent's handover socket is gone");
      assert.ok(await live(handoverSock), 'the new agent serves the handover socket for the next upgrade');
      assert.deepEqual(await e.kubelet.sockets(), ['kubelet.sock', 'vio4wd.io_vhostuser.sock']);
      assert.deepEqual(readdirSync(e.dirs.ipc).sort(), ipcBefore);
      assert.deepEqual(e.hugepageFiles(), [], 'no hugepage files of either agent');
    } finally {
      watching = false;
      if (old.exitCode === null) await old.stop();
    }
  }

  test('kubelet restarts: the device plugin registers again and Allocate still works', { timeout: 60_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    const p = new GuestPing(g, 'P1');
    await p.start(PEER1, 0.1);
    await p.more(5);
    const regs = e.kubelet.registrationsFor(RESOURCE).length;
    const restartedAt = await e.kubelet.restart();
    const reg = await e.kubelet.until('the plugin registers again', () => e.kubelet.registrationsFor(RESOURCE)[regs], 10_000);
    const devices = await e.waitDevices('both devices after the restart', (d) => d.get(ID1) === 'Healthy' && d.get(ID2) === 'Healthy');
    const listedAt = performance.now();
    assert.equal(devices.size, 2);
    const again = await e.allocate([ID1]);
    // the same mount as the pod got before the restart
    assert.deepEqual(again.mounts, need(pod, 'the first allocation').mounts.slice(0, 1));
    assert.equal(again.envs.VIO4WD_DEVICE_VMS_VM1_SOCKET, '/var/run/vio4wd/vhostuser-0/vhost-user.sock');
    await p.more(5);
    const s = await p.stop();
    assert.deepEqual(missingSeqs(p.replies()), [], 'the data path did not notice');
    report(t, `kubelet restart: registered again ${(reg.at - restartedAt).toFixed(1)} ms after kubelet.sock came back, devices listed after ${(listedAt - restartedAt).toFixed(1)} ms; pings ${s.received}/${s.sent}`);
  });

  test('apiserver down for 30 s: relays keep forwarding; status catches up after', { timeout: 180_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    const [p1, p2] = await pingBoth(g, 0.1, 5);
    const hbBefore = await heartbeat(e);

    await e.kube.stopApiserver();
    const downAt = Date.now();
    try {
      await sleep(30_000);
      // the node carried on: relays Ready in the agent, devices Healthy for kubelet
      const m = await e.metrics();
      for (const id of [ID1, ID2]) assert.equal(metricValue(m, 'vio4wd_relay_phase', { relay: id, phase: 'Ready' }), 1, `${id} is Ready in the agent`);
      assert.equal(e.devices().get(ID1), 'Healthy');
      assert.equal(e.devices().get(ID2), 'Healthy');
      assert.equal(e.agent.exitCode, null, 'the agent kept running');
    } finally {
      await e.kube.startApiserver();
    }
    const upAt = Date.now();
    // a change right after it is back: a new relay is scheduled, attached and its status written
    await e.createRelay('vm3', { vf: { devargs: 'net_tap_vm3,iface=vf3' } });
    const createdAt = Date.now();
    const r3 = await e.waitReady('vm3', 90_000);
    const readyAt = Date.now();
    assert.equal(r3.spec.nodeName, NODE);
    const hb = await until('a new heartbeat (node Lease renewed)', async () => {
      const h = await heartbeat(e);
      return h > hbBefore && Date.parse(h) > downAt && h;
    }, 60_000, 500);
    await e.waitDevices('vm3 advertised', (d) => d.get(`${NAMESPACE}.vm3`) === 'Healthy');
    await e.deleteRelay('vm3');
    await e.waitDevices('vm3 gone', (d) => !d.has(`${NAMESPACE}.vm3`));

    await p1.more(3);
    await p2.more(3);
    const s1 = await p1.stop();
    const s2 = await p2.stop();
    const miss1 = missingSeqs(p1.replies());
    const miss2 = missingSeqs(p2.replies());
    report(
      t,
      `apiserver outage ${upAt - downAt} ms (30 s + restart): new relay Ready ${readyAt - createdAt} ms after it was created (${readyAt - upAt} ms after the apiserver was back); ` +
        `heartbeat ${hb}; pings eth0 ${s1.received}/${s1.sent} (missing ${miss1.length}), eth1 ${s2.received}/${s2.sent} (missing ${miss2.length})`,
    );
    assert.deepEqual(miss1, [], 'no ping lost on eth0 while the apiserver was away');
    assert.deepEqual(miss2, [], 'no ping lost on eth1 while the apiserver was away');
  });

  test('agent restarted while the apiserver is down: its relays come back from the checkpoint and forward before the apiserver does', { timeout: 180_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    const [p1, p2] = await pingBoth(g, 0.1, 5);
    const oldPid = e.agent.pid;
    await e.kube.stopApiserver();
    let spawnAt = 0;
    let first1: Reply;
    let first2: Reply;
    try {
      await e.agent.kill();
      spawnAt = Date.now();
      const a = await e.startAgent({ waitReady: false });
      assert.notEqual(a.pid, oldPid);
      await a.waitForLog(/"msg":"relays restored from the checkpoint/, 30_000);
      // both relays forward again, with no apiserver to tell the agent about them
      first1 = await until('P1 replies from the restarted agent', () => p1.replies().find((r) => r.at > spawnAt), 30_000, 20);
      first2 = await until('P2 replies from the restarted agent', () => p2.replies().find((r) => r.at > spawnAt), 30_000, 20);
      await p1.more(5);
      await p2.more(5);
      const m = await e.metrics();
      for (const id of [ID1, ID2]) assert.equal(metricValue(m, 'vio4wd_relay_phase', { relay: id, phase: 'Ready' }), 1, `${id} is Ready in the restarted agent`);
      // and kubelet has them again
      await e.waitDevices('both devices offered again', (d) => d.get(ID1) === 'Healthy' && d.get(ID2) === 'Healthy');
      assert.ok(!a.output.includes('"msg":"vio4wd agent running"'), 'the agent still waits for the apiserver');
    } finally {
      await e.kube.startApiserver();
    }
    // the apiserver is back: the agent finishes starting and the statuses are its own
    await e.agent.waitForLog(/"msg":"vio4wd agent running"/, 60_000);
    for (const name of [VM1, VM2]) {
      await e.waitRelay(name, 'is Ready with the guest connected after the restart', (r) => r.status?.phase === 'Ready' && r.status.guestConnected === true, 60_000);
    }
    await p1.more(3);
    await p2.more(3);
    const s1 = await p1.stop();
    const s2 = await p2.stop();
    report(
      t,
      `agent SIGKILLed with the apiserver down: relays restored from the checkpoint; first reply ${first1!.at - spawnAt} ms (eth0, client mode) and ` +
        `${first2!.at - spawnAt} ms (eth1, server mode) after the restart; pings eth0 ${s1.received}/${s1.sent}, eth1 ${s2.received}/${s2.sent}`,
    );
  });

  test('a VF stand-in disappears and comes back: relay Unhealthy with a reason, others keep forwarding, then recovery', { timeout: 120_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    const p1 = new GuestPing(g, 'P1');
    await p1.start(PEER1, 0.1);
    await p1.more(5);
    // the peer behind the VF keeps its MAC when the VF comes back (as a real switch port or host
    // would); otherwise the guest's ARP entry for the peer points at a MAC that is gone
    const peerMac = JSON.parse(await e.ns.ip('-j', 'link', 'show', 'dev', 'up2'))[0].address as string;
    await e.ns.ip('link', 'del', 'vf2'); // takes its peer up2 with it
    try {
      const down = await e.waitRelay(VM2, 'reports its VF gone', (r) => r.status?.phase !== 'Ready' && r.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False' && c.reason !== '') === true, 20_000);
      const ready = down.status!.conditions!.find((c) => c.type === 'Ready')!;
      report(t, `${VM2} with its VF gone: phase ${down.status!.phase}, Ready=False reason ${ready.reason}: ${ready.message}`);
      // the engine keeps the vhost-user side: the guest's eth1 stays connected while the VF is away
      const guestCond = down.status!.conditions!.find((c) => c.type === 'GuestConnected');
      assert.equal(guestCond?.status, 'True', `the guest stays connected to ${VM2} while its VF is gone: ${JSON.stringify(guestCond)}`);
      await e.waitDevices(`${ID2} Unhealthy`, (d) => d.get(ID2) === 'Unhealthy' && d.get(ID1) === 'Healthy', 10_000);
      await p1.more(20);
      assert.equal((await e.getRelay(VM1))!.status?.phase, 'Ready');
    } finally {
      if (!(await e.ns.hasLink('vf2'))) {
        await addVf(e, 'vf2', 'up2', `${PEER2}/24`);
        await e.ns.ip('link', 'set', 'dev', 'up2', 'address', peerMac);
      }
    }
    await e.waitReady(VM2, 60_000);
    await e.waitDevices(`${ID2} Healthy again`, (d) => d.get(ID2) === 'Healthy', 30_000);
    const r = await g.exec(`ping -c 3 -i 0.2 -W 2 ${PEER2}`);
    assert.equal(r.rc, 0, `ping through the recovered relay:\n${r.output.join('\n')}`);
    const s = await p1.stop();
    assert.deepEqual(missingSeqs(p1.replies()), [], `eth0 lost pings while vf2 was gone (${s.received}/${s.sent})`);
  });

  test('live migration as KubeVirt does it: the target pod gets another relay of the pool, vio4wd-cni gives its VF the VM\'s MAC, the guest keeps pinging', { timeout: 240_000 }, async (t) => {
    const e = need(env, 'the environment');
    const cleanups = new Cleanups();
    try {
      // two relays of one pool, each on a VF stand-in that (like a real VF) receives only the
      // frames for the MAC programmed on it; neither relay names the VM's MAC
      const own = await addMigrationVfs(e, cleanups);
      const { ra, podA, podB, pathA } = await migrationRelays(e, cleanups, VM3A, VM3B);
      assert.deepEqual(await standInMacs(e, 'upma'), [own.vfma], 'before any pod, the VF receives for its own MAC only');

      // Multus's part for the source pod and, at its creation (before the migration), the
      // target pod: vio4wd-cni with the relay each pod got and the VM's MAC
      const sandboxA = await e.cni.pod('mig-src');
      const sandboxB = await e.cni.pod('mig-dst');
      for (const [sandbox, id, pod] of [[sandboxA, ID3A, podA], [sandboxB, ID3B, podB]] as const) {
        e.cni.writeConf(MIG_NET, { cniVersion: '1.0.0', type: 'vio4wd', capabilities: { mac: true }, deviceID: id });
        // the agent checks with kubelet's pod-resources API that the relay is this pod's
        const r = await e.cni.run('add', MIG_NET, sandbox, { capArgs: { mac: MAC3 }, cniArgs: pod.cniArgs });
        assert.equal(r.code, 0, `CNI ADD of ${id}: ${r.stderr}`);
        assert.equal((JSON.parse(r.stdout) as { interfaces: { mac: string }[] }).interfaces[0]!.mac, MAC3);
      }
      assert.deepEqual(await standInMacs(e, 'upma'), [MAC3], "the source pod's VF receives for the VM's MAC");
      assert.deepEqual(await standInMacs(e, 'upmb'), [MAC3], "so does the target pod's, before the guest moves there");
      await e.waitRelay(VM3B, 'shows the VM\'s MAC (kubectl get vr)', (r) => r.status?.mac === MAC3);

      // source: the sidecar's domain, QEMU on it (libvirt's part, the pod path mapped by the mounts)
      await e.writeNetworkInfo(podA, [['net1', ID3A]]);
      const domainA = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), migrationVmi());
      const [nicA] = vhostUserNics(domainA, (path) => podA.hostPath(path));
      assert.ok(nicA);
      assert.deepEqual([nicA.podSocketPath, nicA.socketPath, nicA.mac], [pathA, ra.status!.socketPath, MAC3]);
      // the target pod's sidecar is called too (virt-launcher discards its result): same path
      await e.writeNetworkInfo(podB, [['net1', ID3B]]);
      const target = migrationVmi();
      target.status = { migrationState: { targetPod: 'virt-launcher-vm-mig-b', completed: false } };
      const domainB = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), target);
      assert.equal(vhostUserNics(domainB, (path) => podB.hostPath(path))[0]?.podSocketPath, pathA);

      const count = 120;
      const src = await Guest.start({
        name: 'vm-mig-a',
        netns: e.ns,
        nics: [{ socketPath: nicA.socketPath, mode: nicA.mode, mac: nicA.mac, ip: '10.0.3.2/24' }],
        job: { kind: 'ping', peer: PEER3, count, intervalS: 0.25 },
        after: 'shell',
      });
      cleanups.add('source guest', () => src.stop());
      await src.waitForPings(8, 120_000);
      await e.waitRelay(VM3A, 'shows the guest connected', (r) => r.status?.guestConnected === true);
      // the target QEMU is started from the source's configuration: its socket is the source
      // domain's pod path, resolved in the target pod
      const dst = await Guest.startMigrationTarget(src, { port: 20000 + ((process.pid * 11) % 20000), socketPaths: [podB.hostPath(nicA.podSocketPath)], name: 'vm-mig-b' });
      cleanups.add('target guest', () => dst.stop());
      const result = await src.migrateTo(dst);
      assert.equal(result.status, 'completed');
      const lastOnSource = Math.max(...src.pings.map((x) => x.seq));
      const summary = await dst.waitForPingSummary(120_000);
      const why = async (): Promise<string> =>
        `source ${src.pings.length} replies (last seq ${lastOnSource}), target ${dst.pings.length}, summary ${JSON.stringify(summary)}, migration ${JSON.stringify(result)}; ` +
        `FDB: ${await e.ns.exec('bridge', ['fdb', 'show']).catch(() => '?')}; ` +
        `counters (rx/tx packets): ${(await Promise.all(['vfma', 'upma', 'pfmau', 'pfmas', 'vfmb', 'upmb', 'pfmbu', 'pfmbs'].map(async (i) => { const st = await e.ns.linkStats(i).catch(() => undefined); return `${i} ${st?.rxPackets}/${st?.txPackets}`; }))).join(', ')}`;
      assert.ok(dst.pings.length > 0 && Math.min(...dst.pings.map((x) => x.seq)) > lastOnSource, `the guest pings on through relay B: ${await why()}`);
      assert.ok(dst.pings.some((x) => x.seq === count - 1), 'the last ping was answered after the migration');
      assert.equal(summary.received + summary.lost, count);
      assert.equal(summary.lost, 0, `no ping lost at 4/s across the migration: ${await why()}`);

      const a = await e.waitRelay(VM3A, 'shows the guest gone by migration', (r) => r.status?.conditions?.some((c) => c.type === 'GuestConnected' && c.reason === 'MigratingOut') === true);
      const b = await e.waitRelay(VM3B, 'shows the guest arrived by migration', (r) => r.status?.conditions?.some((c) => c.type === 'GuestConnected' && c.status === 'True' && c.reason === 'MigratedIn') === true);
      assert.equal(a.status?.phase, 'Ready', 'the source relay keeps its VF and stays Ready');
      assert.equal(b.status?.phase, 'Ready');
      const m = await e.metrics();
      assert.equal(metricValue(m, 'vio4wd_relay_migrations_total', { relay: ID3A, direction: 'out' }), 1);
      assert.equal(metricValue(m, 'vio4wd_relay_migrations_total', { relay: ID3B, direction: 'in' }), 1);

      // the source pod goes (its CNI DEL): relay A's VF is back on the pool default
      e.cni.writeConf(MIG_NET, { cniVersion: '1.0.0', type: 'vio4wd', capabilities: { mac: true }, deviceID: ID3A });
      const del = await e.cni.run('del', MIG_NET, sandboxA, { capArgs: { mac: MAC3 }, cniArgs: podA.cniArgs });
      assert.equal(del.code, 0, del.stderr);
      assert.deepEqual(await standInMacs(e, 'upma'), [own.vfma], "the source's VF receives for its own MAC again");
      assert.deepEqual(await standInMacs(e, 'upmb'), [MAC3]);
      await e.waitRelay(VM3A, 'shows the pool default MAC again', (r) => r.status?.mac === own.vfma);
      e.cni.writeConf(MIG_NET, { cniVersion: '1.0.0', type: 'vio4wd', capabilities: { mac: true }, deviceID: ID3B });
      assert.equal((await e.cni.run('del', MIG_NET, sandboxB, { capArgs: { mac: MAC3 }, cniArgs: podB.cniArgs })).code, 0);
      report(t, `KubeVirt-style migration ${ID3A} -> ${ID3B} at pod path ${pathA}, VFs filtering by MAC: ${result.totalTimeMs} ms total, ${result.downtimeMs} ms downtime; pings ${summary.received}/${count}, ${summary.lost} lost (${src.pings.length} on the source pod, ${dst.pings.length} on the target pod)`);
    } finally {
      await cleanups.run();
    }
  });

  test('the same story without vio4wd-cni: the VF stand-in drops the frames for the VM\'s MAC, no ping is answered', { timeout: 180_000 }, async (t) => {
    const e = need(env, 'the environment');
    const cleanups = new Cleanups();
    try {
      const own = await addMigrationVfs(e, cleanups);
      const { ra, podA, pathA } = await migrationRelays(e, cleanups, VM4A, VM4B);
      await e.writeNetworkInfo(podA, [['net1', ID4A]]);
      const domainA = await e.defineDomain(readFileSync(join(FIX, 'domain-one-first.xml'), 'utf8'), migrationVmi());
      const [nicA] = vhostUserNics(domainA, (path) => podA.hostPath(path));
      assert.ok(nicA);
      assert.deepEqual([nicA.podSocketPath, nicA.socketPath, nicA.mac], [pathA, ra.status!.socketPath, MAC3]);
      const src = await Guest.start({
        name: 'vm-nocni',
        netns: e.ns,
        nics: [{ socketPath: nicA.socketPath, mode: nicA.mode, mac: nicA.mac, ip: '10.0.3.2/24' }],
        job: { kind: 'ping', peer: PEER3, count: 80, intervalS: 0.25 },
        after: 'shell',
      });
      cleanups.add('guest', () => src.stop());
      await e.waitRelay(VM4A, 'shows the guest connected', (r) => r.status?.guestConnected === true);
      const summary = await src.waitForPingSummary(120_000);
      assert.equal(summary.received, 0, `the VF receives for ${own.vfma}, not the VM's ${MAC3}: nothing comes back`);
      // the guest's frames do leave through the VF (the peer learnt its MAC from them): the
      // replies are what the VF filters
      const neigh = await e.ns.ip('neigh', 'show', '10.0.3.2', 'dev', 'brm');
      assert.match(neigh, new RegExp(`lladdr ${MAC3}`), neigh);
      assert.deepEqual(await standInMacs(e, 'upma'), [own.vfma]);
      report(t, `without vio4wd-cni: ${summary.received}/${summary.received + summary.lost} pings answered (VF stand-in on ${own.vfma}, VM on ${MAC3})`);
    } finally {
      await cleanups.run();
    }
  });

  test('soak (short): relays created and deleted in a loop while the guest pings; no lost ping, flat memory, nothing leaks', { timeout: 300_000 }, async (t) => {
    const e = need(env, 'the environment');
    const g = need(guest, 'the guest');
    const seconds = Number(process.env.VIO4WD_E2E_SOAK_SECONDS ?? 60);
    const r = await runSoak(e, g, { durationMs: seconds * 1000, peer: PEER1, report: (m) => report(t, m) });
    r.assertHealthy();
  });
});

/** Permanent neighbour entries for both links on the guest and the peers (or back to ARP). */
async function pinNeighbours(e: E2eEnv, g: Guest, pin: boolean): Promise<void> {
  const links = [
    { dev: 'eth0', up: 'up1', peer: PEER1, guestIp: '10.0.1.2', mac: MAC1 },
    { dev: 'eth1', up: 'up2', peer: PEER2, guestIp: '10.0.2.2', mac: MAC2 },
  ];
  for (const l of links) {
    if (!(await e.ns.hasLink(l.up))) continue;
    if (pin) {
      const upMac = JSON.parse(await e.ns.ip('-j', 'link', 'show', 'dev', l.up))[0].address as string;
      await g.exec(`ip neigh replace ${l.peer} lladdr ${upMac} dev ${l.dev} nud permanent`);
      await e.ns.ip('neigh', 'replace', l.guestIp, 'lladdr', l.mac, 'dev', l.up, 'nud', 'permanent');
    } else {
      await g.exec(`ip neigh del ${l.peer} dev ${l.dev}`);
      await e.ns.ip('neigh', 'del', l.guestIp, 'dev', l.up).catch(() => undefined);
    }
  }
}

/** The renewTime of the agent's node Lease (named after the node, in the agent's namespace:
 *  default here, where no POD_NAMESPACE is set). */
async function heartbeat(e: E2eEnv): Promise<string> {
  const l = await e.api.coordination.readNamespacedLease({ name: NODE, namespace: 'default' }).catch(() => undefined);
  const t = l?.spec?.renewTime as unknown;
  return t instanceof Date ? t.toISOString() : String(t ?? '');
}
