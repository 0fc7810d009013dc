// vio4wd-cni driven by containernetworking/cni's cnitool (libcni), against the real agent on the
// real DPDK engine: two relays of one pool on VF stand-ins (net_af_packet on a veth whose peer is
// a port of a bridge that forwards to it only the frames for the MAC its FDB entry names). The
// network configs are what Multus hands the plugin: the allocated relay as deviceID, the VM's MAC
// through the "mac" capability (runtimeConfig.mac).
//
// Run: flock /tmp/vio4wd-it.lock node scripts/run-tests.mjs test/integration/cni.cnitool.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { CniDriver } from '../helpers/cni.js';
import { PodResourcesServer, listReply, type Holding } from '../helpers/pod-resources.js';

const MAC_A = '52:54:00:c0:00:01';
const MAC_B = '52:54:00:c0:00:02';
const DEFAULT_A = '02:00:00:0a:00:01'; // relay r-a's spec.mac: the pool default DEL restores

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let cni: CniDriver;
let socket: string;
let vfbOwnMac: string;
// the pods (network namespaces) of the story, kept across its steps
let pod1: Netns;
let pod2: Netns;
let pod3: Netns;

function agentConfig(cniExtra: Record<string, unknown> = {}, vfLimits?: Record<string, unknown>): Record<string, unknown> {
  return {
    log: { level: 'info' },
    engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
    vhostUser: { mode: 'server', socketDir: join(tmp.path, 'sock') },
    control: { enabled: false },
    metrics: { enabled: false },
    sriov: { vfProgrammer: 'standin', ...(vfLimits ? { vfLimits } : {}) },
    cni: { enabled: true, socket, statePath: join(tmp.path, 'state', 'attachments.json'), ...cniExtra },
    relays: [
      { name: 'r-a', vf: { devargs: 'net_af_packet_ra,iface=vfa' }, mac: DEFAULT_A, resourceName: 'vio4wd.io/pool' },
      { name: 'r-b', vf: { devargs: 'net_af_packet_rb,iface=vfb' }, mtu: 1500, resourceName: 'vio4wd.io/pool' },
    ],
  };
}

/** The static FDB entries of a stand-in VF's bridge port: the MACs the VF receives for. */
async function fdb(port: string): Promise<string[]> {
  const all = JSON.parse(await ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', port])) as { mac: string; state?: string }[];
  return all.filter((e) => e.state === 'static').map((e) => e.mac);
}

/** The pool's network config with the relay Multus found allocated to the pod. */
function poolConf(deviceID: string | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', type: 'vio4wd', capabilities: { mac: true }, ...(deviceID ? { deviceID } : {}), ...extra };
}

function cniError(stderr: string): string {
  return stderr.trim();
}

/** One raw request line to the agent's socket (what a hostile local client could send). */
function raw(line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let buf = '';
    s.on('connect', () => s.end(line));
    s.on('data', (d) => (buf += d.toString()));
    s.on('end', () => resolve(buf));
    s.on('error', reject);
  });
}

before(async () => {
  tmp = testTempDir('cni');
  socket = join(tmp.path, 'run', 'agent.sock');
  ns = await Netns.create('cni');
  await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  // the stand-in PF: a bridge; each VF a veth whose peer is one of its ports
  await ns.addBridge('pf0');
  for (const [vf, up] of [['vfa', 'upa'], ['vfb', 'upb']] as const) {
    await ns.addVeth(vf, up);
    await ns.setMaster(up, 'pf0');
  }
  // like a VF fresh from the PF, vfb receives for its own address before anyone programs it
  vfbOwnMac = (JSON.parse(await ns.ip('-j', 'link', 'show', 'dev', 'vfb')) as { address: string }[])[0]!.address;
  await ns.exec('bridge', ['fdb', 'replace', vfbOwnMac, 'dev', 'upb', 'master', 'static', 'sticky']);
  agent = await AgentProcess.start({ config: agentConfig(), workDir: tmp.path, netns: ns });
  cni = new CniDriver(tmp.path, socket);
  await cni.install();
}, { timeout: 180_000 });

after(async () => {
  await cni?.cleanup();
  await agent?.stop();
  await ns?.destroy();
  tmp?.remove();
}, { timeout: 60_000 });

test('the attachment API is a root-only socket, and STATUS and VERSION answer through libcni', async () => {
  assert.equal(statSync(socket).mode & 0o777, 0o600);
  // the installed plugin runs on the node executable and libraries it was installed with
  assert.match(readFileSync(join(cni.binDir, 'vio4wd'), 'utf8'), /exec "[^"]+\/vio4wd\.d\/lib\/ld-linux[^"]*" --library-path "[^"]+\/vio4wd\.d\/lib" "[^"]+\/vio4wd\.d\/node"/);
  // a second agent does not take the socket of a live one
  const { AttachServer } = await import('../../src/cni/server.js');
  const pino = (await import('pino')).default;
  const second = new AttachServer({ path: socket, handle: () => Promise.resolve({ ok: true }), logger: pino({ level: 'silent' }) });
  await assert.rejects(second.start(), /another process \(a second agent\?\) serves .*agent\.sock: stop it, or set cni\.socket/);
  assert.equal(statSync(join(tmp.path, 'run')).mode & 0o077, 0, 'its directory is not open to others');
  cni.writeConf('pool', poolConf('r-a'));
  const pod = await cni.pod('status');
  const r = await cni.run('status', 'pool', pod);
  assert.equal(r.code, 0, r.stderr);
});

test('ADD programs the allocated relay\'s VF with the VM\'s MAC; CHECK agrees; a repeated ADD changes nothing', async () => {
  pod1 = await cni.pod('pod1');
  cni.writeConf('pool', poolConf('r-a'));
  const add = await cni.run('add', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(add.code, 0, add.stderr);
  const result = JSON.parse(add.stdout) as { cniVersion: string; interfaces: { name: string; mac: string; sandbox: string; socketPath?: string }[] };
  assert.equal(result.cniVersion, '1.1.0');
  assert.equal(result.interfaces.length, 1);
  assert.equal(result.interfaces[0]!.name, 'net1');
  assert.equal(result.interfaces[0]!.mac, MAC_A);
  assert.equal(result.interfaces[0]!.sandbox, `/var/run/netns/${pod1.name}`);
  assert.match(result.interfaces[0]!.socketPath ?? '', /\/sock\//, 'CNI 1.1 names the relay\'s vhost-user socket');
  assert.deepEqual(await fdb('upa'), [MAC_A], 'the VF receives for the VM\'s MAC only');

  const check = await cni.run('check', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(check.code, 0, check.stderr);

  const again = await cni.run('add', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout), result);
  assert.deepEqual(await fdb('upa'), [MAC_A]);

  // the checkpoint names the attachment (what an agent restart reads back)
  const cp = JSON.parse(readFileSync(join(tmp.path, 'state', 'attachments.json'), 'utf8')) as { attachments: { deviceId: string; mac: string; containerId: string }[] };
  assert.deepEqual(cp.attachments.map((a) => [a.deviceId, a.mac]), [['r-a', MAC_A]]);
  assert.equal(statSync(join(tmp.path, 'state', 'attachments.json')).mode & 0o777, 0o600);
});

test('a relay attached to one pod is refused to another; the other relay of the pool is not', async () => {
  pod2 = await cni.pod('pod2');
  cni.writeConf('pool', poolConf('r-a'));
  const busy = await cni.run('add', 'pool', pod2, { capArgs: { mac: MAC_B } });
  assert.notEqual(busy.code, 0);
  assert.match(cniError(busy.stderr), /relay "r-a" is attached to container cnitool-[0-9a-f]+ \(net1, MAC 52:54:00:c0:00:01\).*delete that pod/);
  assert.deepEqual(await fdb('upa'), [MAC_A], 'the refused ADD did not touch the VF');

  cni.writeConf('pool', poolConf('r-b'));
  const ok = await cni.run('add', 'pool', pod2, { capArgs: { mac: MAC_B } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(await fdb('upb'), [MAC_B]);
});

test('malformed input: each error is CNI error JSON with a code and a message that names the fix', async () => {
  const pod = await cni.pod('bad');
  const cases: [string, Record<string, unknown> | string, Record<string, unknown> | undefined, RegExp][] = [
    ['old cniVersion', poolConf('r-b', { cniVersion: '0.3.1' }), { mac: MAC_B }, /cniVersion "0.3.1" is not supported: write "cniVersion": "1.0.0" or "1.1.0"/],
    ['no deviceID', poolConf(undefined), { mac: MAC_B }, /deviceID: missing; annotate the NetworkAttachmentDefinition "bad-2" with k8s.v1.cni.cncf.io\/resourceName/],
    ['unknown relay', poolConf('r-zz'), { mac: MAC_B }, /deviceID "r-zz": no relay of that ID on this node/],
    ['multicast MAC', poolConf('r-b'), { mac: '01:00:5e:00:00:01' }, /runtimeConfig.mac: 01:00:5e:00:00:01 is a multicast address/],
    ['not a MAC', poolConf('r-b'), { mac: 'nope' }, /runtimeConfig.mac: "nope" is not a MAC address; write six hex octets/],
    ['bad vlan', poolConf('r-b', { vlan: 5000 }), { mac: MAC_B }, /vlan: 5000 is not a VLAN id: give 1..4094, or 0 for none/],
    ['bad deviceID characters', poolConf('../../etc'), { mac: MAC_B }, /deviceId: "..\/..\/etc" has characters outside/],
    ['mtu the relay does not forward', poolConf('r-b', { mtu: 9000 }), { mac: MAC_B }, /mtu: the attachment asks for 9000 but relay "r-b" forwards 1500; set the VirtioRelay's spec.mtu to 9000/],
  ];
  let i = 0;
  for (const [what, conf, capArgs, re] of cases) {
    const name = `bad-${++i}`;
    cni.writeConf(name, conf as Record<string, unknown>);
    const r = await cni.run('add', name, pod, capArgs ? { capArgs } : {});
    assert.notEqual(r.code, 0, `${what}: ADD must fail`);
    assert.match(r.stderr, re, what);
  }
  assert.deepEqual(await fdb('upb'), [MAC_B], 'no malformed request touched a VF');
  // garbage straight to the socket
  const replies = [await raw('not json\n'), await raw('{"version":1,"op":"add","containerId":"x","ifName":"a/b","deviceId":"r-b"}\n'), await raw('{"version":2,"op":"status"}\n'), await raw(`${'x'.repeat(70_000)}\n`)];
  const parsed = replies.map((r) => JSON.parse(r) as { ok: boolean; code: number; msg: string });
  assert.deepEqual(parsed.map((p) => [p.ok, p.code]), [[false, 6], [false, 7], [false, 1], [false, 6]]);
  assert.match(parsed[1]!.msg, /ifName: "a\/b" is not a valid interface name/);
  assert.match(parsed[2]!.msg, /install the vio4wd-cni that ships with this agent/);
  assert.equal(agent!.exitCode, null, 'the agent is still running');
});

/** The attachments of the agent's checkpoint: relay, MAC, VLAN, spoof check. */
function checkpointed(): [string, string, number, boolean][] {
  const cp = JSON.parse(readFileSync(join(tmp.path, 'state', 'attachments.json'), 'utf8')) as { attachments: { deviceId: string; mac: string; vlan: number; spoofchk: boolean }[] };
  return cp.attachments.map((a) => [a.deviceId, a.mac, a.vlan, a.spoofchk]);
}

test('the node admin\'s VF limits: a VLAN or spoofchk off they do not allow is refused (code 105) and no VF changes; allowed, it is applied', async () => {
  const held: [string, string, number, boolean][] = [['r-a', MAC_A, 0, true], ['r-b', MAC_B, 0, true]];
  assert.deepEqual(checkpointed(), held);
  const stranger = await cni.pod('vlan');
  // the defaults (no sriov.vfLimits): untagged only, spoof checking on; the holder of r-b cannot
  // move it to another VLAN, and a pod asking for a held relay hears the policy first
  const cases: [string, Netns, Record<string, unknown>, RegExp][] = [
    ['a VLAN', pod2, poolConf('r-b', { vlan: 100 }), /vlan: 100 is not allowed for relay "r-b" of pool vio4wd\.io\/pool: the agent config's sriov\.vfLimits\.allowedVlans allows 0 \(untagged only\); use an allowed VLAN, or ask the node admin to add 100 to the agent config's sriov\.vfLimits\.allowedVlans/],
    ['spoofchk off', pod2, poolConf('r-b', { spoofchk: false }), /spoofchk: false \(spoof checking off\) is not allowed for relay "r-b" of pool vio4wd\.io\/pool: the agent config's sriov\.vfLimits\.allowSpoofchkOff is not true/],
    ['a VLAN on another pod\'s relay', stranger, poolConf('r-a', { vlan: 7 }), /vlan: 7 is not allowed for relay "r-a"/],
  ];
  for (const [what, pod, conf, re] of cases) {
    cni.writeConf('tagged', conf);
    const r = await cni.run('add', 'tagged', pod, { capArgs: { mac: MAC_B } });
    assert.notEqual(r.code, 0, `${what}: ADD must fail`);
    assert.match(r.stderr, re, what);
  }
  // the plugin's CNI error JSON carries the code
  const { runPlugin } = await import('../../src/cni/plugin.js');
  const out = await runPlugin({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c-vlan', CNI_IFNAME: 'net1', CNI_NETNS: `/var/run/netns/${stranger.name}`, VIO4WD_AGENT_SOCKET: socket },
    stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'tagged', type: 'vio4wd', deviceID: 'r-a', vlan: 4000, runtimeConfig: { mac: MAC_B } }),
  });
  assert.equal((JSON.parse(out.stdout) as { code: number }).code, 105);
  assert.deepEqual([await fdb('upa'), await fdb('upb')], [[MAC_A], [MAC_B]], 'no VF was touched');
  assert.deepEqual(checkpointed(), held, 'the attachments are as they were');

  // the node admin allows spoof checking off (not VLANs): the holder's ADD applies it
  await agent!.stop();
  agent = await AgentProcess.start({ config: agentConfig({}, { allowSpoofchkOff: true }), workDir: tmp.path, netns: ns });
  cni.writeConf('pool', poolConf('r-b', { spoofchk: false }));
  const off = await cni.run('add', 'pool', pod2, { capArgs: { mac: MAC_B } });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(checkpointed(), [held[0], ['r-b', MAC_B, 0, false]]);
  cni.writeConf('pool', poolConf('r-b', { vlan: 100 }));
  const tagged = await cni.run('add', 'pool', pod2, { capArgs: { mac: MAC_B } });
  assert.match(tagged.stderr, /vlan: 100 is not allowed for relay "r-b"/, 'VLANs are still not allowed');
  cni.writeConf('pool', poolConf('r-b'));
  assert.equal((await cni.run('add', 'pool', pod2, { capArgs: { mac: MAC_B } })).code, 0, 'spoof checking on again');
  assert.deepEqual(checkpointed(), held);
});

test('the plugin\'s error output is CNI error JSON (code, msg) as the spec defines it', async () => {
  const { runPlugin } = await import('../../src/cni/plugin.js');
  const out = await runPlugin({
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'net1', CNI_NETNS: '/var/run/netns/x', VIO4WD_AGENT_SOCKET: socket },
    stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'pool', type: 'vio4wd', deviceID: 'r-a', runtimeConfig: { mac: MAC_B } }),
  });
  assert.equal(out.exitCode, 1);
  const e = JSON.parse(out.stdout) as { cniVersion: string; code: number; msg: string };
  assert.equal(e.cniVersion, '1.0.0');
  assert.equal(e.code, 101);
  assert.match(e.msg, /is attached to container/);
});

test('an agent restart keeps the attachments: the held relay is still refused, CHECK still passes', async () => {
  await agent!.stop();
  agent = await AgentProcess.start({ config: agentConfig(), workDir: tmp.path, netns: ns });
  assert.ok(agent.logs().some((l) => l.msg === 'attachments restored from the checkpoint' && l.attachments === 2), 'both attachments read back');
  cni.writeConf('pool', poolConf('r-a'));
  const check = await cni.run('check', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(check.code, 0, check.stderr);
  pod3 = await cni.pod('pod3');
  cni.writeConf('pool', poolConf('r-a'));
  const busy = await cni.run('add', 'pool', pod3, { capArgs: { mac: MAC_B } });
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, /relay "r-a" is attached to container/);
});

test('DEL puts the pool default back (spec.mac, else the VF\'s own MAC); a second DEL succeeds; CHECK after DEL fails', async () => {
  cni.writeConf('pool', poolConf('r-a'));
  const del1 = await cni.run('del', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(del1.code, 0, del1.stderr);
  assert.deepEqual(await fdb('upa'), [DEFAULT_A], 'r-a is back on its spec.mac');
  const del1again = await cni.run('del', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.equal(del1again.code, 0, del1again.stderr);
  const check = await cni.run('check', 'pool', pod1, { capArgs: { mac: MAC_A } });
  assert.notEqual(check.code, 0, 'CHECK of a deleted attachment fails');

  cni.writeConf('pool', poolConf('r-b'));
  const del2 = await cni.run('del', 'pool', pod2, { capArgs: { mac: MAC_B } });
  assert.equal(del2.code, 0, del2.stderr);
  assert.deepEqual(await fdb('upb'), [vfbOwnMac], 'r-b (no spec.mac) is back on the MAC its VF had');

  // the freed relay goes to the next pod
  cni.writeConf('pool', poolConf('r-a'));
  const add3 = await cni.run('add', 'pool', pod3, { capArgs: { mac: MAC_B } });
  assert.equal(add3.code, 0, add3.stderr);
  assert.deepEqual(await fdb('upa'), [MAC_B]);
  const del3 = await cni.run('del', 'pool', pod3, { capArgs: { mac: MAC_B } });
  assert.equal(del3.code, 0, del3.stderr);
  const cp = JSON.parse(readFileSync(join(tmp.path, 'state', 'attachments.json'), 'utf8')) as { attachments: unknown[] };
  assert.deepEqual(cp.attachments, []);
});

test('with cni.allocationCheck, ADD attaches a relay only to the pod kubelet allocated it to', async () => {
  // kubelet (its pod-resources API over real gRPC) gave r-b to tenant-1/vm-b
  const holdings: Holding[] = [{ namespace: 'tenant-1', pod: 'vm-b', resourceName: 'vio4wd.io/pool', deviceIds: ['r-b'] }];
  const kubelet = await PodResourcesServer.start(join(tmp.path, 'kubelet.sock'), () => listReply(holdings));
  try {
    await agent!.stop();
    agent = await AgentProcess.start({ config: agentConfig({ allocationCheck: true, podResourcesSocket: kubelet.socket }), workDir: tmp.path, netns: ns });
    const pod = await cni.pod('alloc');
    cni.writeConf('pool', poolConf('r-b'));
    const before = await fdb('upb');
    // a network config that writes r-b as deviceID, for a pod that was not given r-b
    const stolen = await cni.run('add', 'pool', pod, { capArgs: { mac: MAC_A }, cniArgs: 'K8S_POD_NAMESPACE=tenant-2;K8S_POD_NAME=intruder' });
    assert.notEqual(stolen.code, 0);
    assert.match(stolen.stderr, /kubelet did not allocate this relay to pod tenant-2\/intruder/);
    assert.doesNotMatch(stolen.stderr, /vm-b/, 'the refusal does not name the holder');
    // no pod named at all (a runtime outside Kubernetes)
    const anonymous = await cni.run('add', 'pool', pod, { capArgs: { mac: MAC_A } });
    assert.notEqual(anonymous.code, 0);
    assert.match(anonymous.stderr, /CNI_ARGS name no pod/);
    assert.deepEqual(await fdb('upb'), before, 'the refused ADDs did not touch the VF');
    // the pod kubelet gave r-b to attaches it
    const mine = await cni.run('add', 'pool', pod, { capArgs: { mac: MAC_A }, cniArgs: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=tenant-1;K8S_POD_NAME=vm-b' });
    assert.equal(mine.code, 0, mine.stderr);
    assert.deepEqual(await fdb('upb'), [MAC_A]);
    assert.equal(kubelet.calls, 2, 'each ADD that named a pod asked kubelet, afresh');
    const del = await cni.run('del', 'pool', pod, { capArgs: { mac: MAC_A }, cniArgs: 'K8S_POD_NAMESPACE=tenant-1;K8S_POD_NAME=vm-b' });
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await fdb('upb'), [vfbOwnMac]);
    assert.equal(agent!.exitCode, null, 'the agent is still running');
  } finally {
    await kubelet.stop();
  }
});
