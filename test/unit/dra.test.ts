// The DRA driver's pure parts: the claim's opaque configuration (checked field by field, merged
// class-then-claim), device names and attributes, pool and slice names, and the CDI spec and
// device metadata a prepared device gets. The real apiserver, scheduler and kubelet DRA manager
// drive the rest in test/integration/dra.kube.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClaimConfigError, configFor, parseRelayConfig } from '../../src/dra/config.js';
import { deviceAttributes, deviceNameOf, draPoolName, poolSlices, publishedDevices, relayNameOfVf, vfDeviceAttributes, vfDeviceName } from '../../src/dra/devices.js';
import { cdiSpec, cdiSpecPath, draPodSocketDir, metadataDocument, podMetadataPath, removeClaimFiles, type PreparedDevice } from '../../src/dra/cdi.js';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decideDevice } from '../../src/policy/index.js';
import type { RelayStatus } from '../../src/relay/types.js';
import type { VirtioForwarderPolicy } from '../../src/kube/crd-schemas.js';

const base = { apiVersion: 'vio4wd.io/v1alpha1', kind: 'RelayConfig' };

function status(name: string, over: Partial<RelayStatus> = {}): RelayStatus {
  return {
    name, id: 1, origin: 'config', phase: 'Ready', conditions: [], socketPath: `/run/s/${name}/vf1.sock`, mode: 'server', queues: 4,
    numaNode: 1, resourceName: 'vio4wd.io/fast', healthy: true, ...over,
  };
}

test('opaque config: every field is checked and an error names the field, where it was written and the fix', () => {
  assert.deepEqual(parseRelayConfig({ ...base, mac: '52:54:00:AB:CD:EF', queues: 2, mtu: 1500, vlan: 10, spoofchk: false }, 'x'), {
    mac: '52:54:00:ab:cd:ef', queues: 2, mtu: 1500, vlan: 10, spoofchk: false,
  });
  assert.throws(() => parseRelayConfig({ ...base, mac: 'nope' }, 'W'), ClaimConfigError);
  assert.throws(() => parseRelayConfig({ ...base, mac: 'nope' }, 'W'), /^ClaimConfigError: W: mac: "nope" is not a MAC address; write six hex pairs/);
  assert.throws(() => parseRelayConfig({ ...base, queues: 33 }, 'W'), /W: queues: 33 is out of range: use 1\.\.32/);
  assert.throws(() => parseRelayConfig({ ...base, vlan: -1 }, 'W'), /vlan: -1 is out of range: use 0\.\.4094/);
  assert.throws(() => parseRelayConfig({ ...base, mtu: 'big' }, 'W'), /mtu: "big" must be integer/);
  assert.throws(() => parseRelayConfig({ ...base, macc: '52:54:00:00:00:01' }, 'W'), /macc: not a field of RelayConfig; use mac, queues, mtu, vlan, spoofchk/);
  assert.throws(() => parseRelayConfig({ kind: 'RelayConfig' }, 'W'), /apiVersion: required; set apiVersion: vio4wd\.io\/v1alpha1 and kind: RelayConfig/);
  assert.throws(() => parseRelayConfig({ ...base, kind: 'Other' }, 'W'), /kind: must be "RelayConfig"/);
  assert.throws(() => parseRelayConfig({ ...base, mac: '01:00:5e:00:00:01' }, 'W'), /multicast address/);
  assert.throws(() => parseRelayConfig('text', 'W'), /must be object/);
});

test('opaque config: class entries first, then the claim\'s; only this driver\'s, only for the request', () => {
  const cfg = configFor(
    [
      { source: 'FromClass', opaque: { driver: 'vio4wd.io', parameters: { ...base, queues: 1, mtu: 1500 } } },
      { source: 'FromClaim', requests: ['other'], opaque: { driver: 'vio4wd.io', parameters: { ...base, queues: 3 } } },
      { source: 'FromClaim', opaque: { driver: 'gpu.example.com', parameters: { anything: true } } },
      { source: 'FromClaim', requests: ['nic'], opaque: { driver: 'vio4wd.io', parameters: { ...base, queues: 2, mac: '52:54:00:00:00:01' } } },
    ],
    'nic/fast',
    'ns/c',
  );
  assert.deepEqual(cfg, { queues: 2, mtu: 1500, mac: '52:54:00:00:00:01' });
  assert.throws(
    () => configFor([{ source: 'FromClass', opaque: { driver: 'vio4wd.io', parameters: { ...base } } }, { source: 'FromClaim', opaque: { driver: 'vio4wd.io', parameters: { ...base, vlan: 9999 } } }], 'nic', 'ns/c'),
    /ResourceClaim ns\/c spec\.devices\.config\[0\]\.opaque\.parameters: vlan: 9999 is out of range/,
  );
  assert.throws(() => configFor([{ source: 'FromClass', opaque: { driver: 'vio4wd.io', parameters: { ...base, queues: 0 } } }], 'nic', 'ns/c'), /the DeviceClass's config\[0\]\.opaque\.parameters \(request "nic" of ResourceClaim ns\/c\): queues: 0/);
});

test('devices: names are DNS labels unique per relay; attributes carry what a claim selects on', () => {
  assert.equal(deviceNameOf('r-a'), 'r-a');
  const long = deviceNameOf('vms.a-very-long-virtio-relay-name-that-goes-on-and-on-and-on-and-on');
  assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
  assert.notEqual(deviceNameOf('vms.a'), deviceNameOf('vms-a'), 'a dot and a dash do not collide');
  assert.equal(draPoolName('node1', 'vio4wd.io/fast'), 'node1/fast');
  const vf = { pciAddress: '0000:3b:02.1', pfName: 'ens1f0', vfIndex: 3, vendor: '8086', device: '154c', numaNode: 1 };
  assert.deepEqual(deviceAttributes(status('r1', { mtu: 9000, pciAddress: '0000:3b:02.1' }), { vf, linkSpeedMbps: 25000 }), {
    relay: { string: 'r1' }, pool: { string: 'vio4wd.io/fast' }, socketMode: { string: 'server' }, maxQueues: { int: 4 }, numaNode: { int: 1 },
    pfName: { string: 'ens1f0' }, pciAddress: { string: '0000:3b:02.1' }, vendor: { string: '8086' }, deviceId: { string: '154c' }, vfIndex: { int: 3 },
    linkSpeedMbps: { int: 25000 }, mtu: { int: 9000 },
  });
  const virt = deviceAttributes(status('r2', { pciAddress: 'net_af_packet0,iface=v', numaNode: -1 }), {});
  assert.equal(virt.virtualDevice && 'string' in virt.virtualDevice ? virt.virtualDevice.string : '', 'net_af_packet0');
  assert.equal(virt.numaNode, undefined, 'an unknown NUMA node is left out, not published as -1');
  const pools = publishedDevices('n1', [{ status: status('b'), hw: {} }, { status: status('a'), hw: {} }, { status: status('c', { resourceName: 'vio4wd.io/slow' }), hw: {} }]);
  assert.deepEqual([...pools.keys()].sort(), ['vio4wd.io/fast', 'vio4wd.io/slow']);
  const slices = poolSlices('n1', 'vio4wd.io/fast', pools.get('vio4wd.io/fast')!, 3);
  assert.equal(slices.length, 1);
  assert.deepEqual(slices[0]!.spec.devices.map((d) => d.name), ['a', 'b']);
  assert.deepEqual(slices[0]!.spec.pool, { name: 'n1/fast', generation: 3, resourceSliceCount: 1 });
  const many = poolSlices('n1', 'vio4wd.io/fast', Array.from({ length: 130 }, (_, i) => ({ resourceName: 'vio4wd.io/fast', pool: 'n1/fast', relay: `r${i}`, device: { name: `r${i}`, attributes: {} } })), 1);
  assert.deepEqual(many.map((s) => [s.spec.devices.length, s.spec.pool.resourceSliceCount]), [[128, 2], [2, 2]]);
  assert.notEqual(many[0]!.metadata.name, many[1]!.metadata.name);
});

test('CDI spec and device metadata: the relay\'s own socket directory, the device plugin\'s environment, KubeVirt\'s attributes', () => {
  const claim = { uid: 'u1', namespace: 'vms', name: 'vm1-net-x7k', podClaimName: 'net' };
  const d: PreparedDevice = { request: 'nic', pool: 'n1/fast', device: 'r1', relay: 'r1', resourceName: 'vio4wd.io/fast', cdiName: 'u1-r1', podDir: draPodSocketDir(claim, 'nic', 0), mac: '52:54:00:00:00:01', vlan: 0, queues: 2, mtu: 1500 };
  assert.equal(d.podDir, '/var/run/vio4wd/dra/net/nic', 'named after the pod\'s claim and request: the same on a migration target');
  const st = status('r1');
  const spec = cdiSpec(claim, [{ d, status: st }], '/var/run/vio4wd/dra');
  assert.equal(spec.kind, 'vio4wd.io/relay');
  assert.equal(spec.devices[0]!.name, 'u1-r1');
  assert.deepEqual(spec.devices[0]!.containerEdits.mounts, [
    { hostPath: '/run/s/r1', containerPath: '/var/run/vio4wd/dra/net/nic', options: ['rbind', 'rw'] },
    { hostPath: '/var/run/vio4wd/dra/u1/nic-metadata.json', containerPath: '/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/net/nic/vio4wd.io-metadata.json', options: ['rbind', 'ro'] },
  ]);
  assert.deepEqual(spec.devices[0]!.containerEdits.env.sort(), [
    'VIO4WD_DEVICE_R1_MAC=52:54:00:00:00:01', 'VIO4WD_DEVICE_R1_MODE=client', 'VIO4WD_DEVICE_R1_MTU=1500', 'VIO4WD_DEVICE_R1_NUMA_NODE=1',
    'VIO4WD_DEVICE_R1_QUEUES=2', 'VIO4WD_DEVICE_R1_SOCKET=/var/run/vio4wd/dra/net/nic/vf1.sock', 'VIO4WD_FAST_DEVICES=r1',
  ]);
  assert.equal(podMetadataPath({ ...claim, podClaimName: undefined } as never, 'nic/sub'), '/var/run/kubernetes.io/dra-device-attributes/resourceclaims/vm1-net-x7k/nic/vio4wd.io-metadata.json');
  const md = metadataDocument(claim, 'nic', [{ d, status: st }]) as { apiVersion: string; requests: { name: string; devices: { attributes: Record<string, unknown> }[] }[] };
  assert.equal(md.apiVersion, 'metadata.resource.k8s.io/v1alpha1');
  assert.deepEqual(md.requests[0]!.devices[0]!.attributes['vhost-user-path'], { string: '/var/run/vio4wd/dra/net/nic/vf1.sock' });
  assert.deepEqual(md.requests[0]!.devices[0]!.attributes['vhost-user-mode'], { string: 'client' }, 'QEMU connects: the relay serves the socket');
  assert.deepEqual(md.requests[0]!.devices[0]!.attributes.mtu, { int: 1500 });
});

test('pool policy for DRA devices: one policy must define the pool here, and the VF must be one it may draw on', () => {
  const policy = (name: string, spec: Record<string, unknown>): VirtioForwarderPolicy => ({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'VirtioForwarderPolicy', metadata: { name }, spec: { resourceName: 'vio4wd.io/fast', namespaces: ['*'], vfs: {}, ...spec } }) as VirtioForwarderPolicy;
  const node = { virtualDevices: ['net_af_packet'] };
  const p1 = policy('p1', { vfs: { pfNames: ['ens1f0'], virtualDevices: ['net_af_packet'] }, limits: { maxQueues: 4 } });
  assert.deepEqual(decideDevice('vio4wd.io/fast', { pciAddress: '0000:3b:02.1', pfName: 'ens1f0' }, [p1], {}, node), { allowed: true, policy: 'p1', limits: { maxQueues: 4 }, namespaces: ['*'] });
  assert.match((decideDevice('vio4wd.io/fast', { pciAddress: '0000:3b:02.1', pfName: 'ens2' }, [p1], {}, node) as { message: string }).message, /VF 0000:3b:02\.1 is not one pool vio4wd\.io\/fast may draw on \(VirtioForwarderPolicy p1 spec\.vfs\)/);
  assert.equal(decideDevice('vio4wd.io/fast', { devargs: 'net_af_packet0,iface=v' }, [p1], {}, node).allowed, true);
  assert.equal(decideDevice('vio4wd.io/fast', { devargs: 'net_af_packet0,iface=v' }, [p1], {}, { virtualDevices: [] }).allowed, false, 'the node must allow the driver too');
  assert.equal(decideDevice('vio4wd.io/fast', { devargs: 'net_null0' }, [p1], {}, { virtualDevices: ['net_null'] }).allowed, false);
  assert.match((decideDevice('vio4wd.io/slow', { pciAddress: '0000:3b:02.1' }, [p1], {}, node) as { message: string }).message, /no VirtioForwarderPolicy defines pool vio4wd\.io\/slow/);
  assert.match((decideDevice('vio4wd.io/fast', { pciAddress: '0000:3b:02.1' }, [p1, policy('p2', {})], {}, node) as { message: string }).message, /more than one VirtioForwarderPolicy \(p1, p2\)/);
  assert.equal(decideDevice('vio4wd.io/fast', { pciAddress: '0000:3b:02.1', pfName: 'ens1f0' }, [policy('p3', { vfs: { pfNames: ['ens1f0'] }, nodeSelector: { matchLabels: { a: 'b' } } })], {}, node).allowed, false, 'a policy for other nodes does not count');
});

test('devices: a free VF is a device of its own (onDemand), named after its address; a relay keeps a name a VF would take', () => {
  const vf = { pciAddress: '0000:3b:02.1', pfName: 'ens1f0', vfIndex: 3, vendor: '8086', device: '154c', numaNode: 1 };
  const free = { resourceName: 'vio4wd.io/fast', pciAddress: '0000:3b:02.1', vf, linkSpeedMbps: 25000, maxQueues: 8, mode: 'client' as const };
  assert.equal(vfDeviceName('0000:3B:02.1'), 'vf-0000-3b-02-1');
  assert.equal(relayNameOfVf('0000:3b:02.1'), 'dra.vf-0000-3b-02-1');
  assert.deepEqual(vfDeviceAttributes(free), {
    pool: { string: 'vio4wd.io/fast' }, socketMode: { string: 'client' }, maxQueues: { int: 8 }, onDemand: { bool: true }, pciAddress: { string: '0000:3b:02.1' },
    numaNode: { int: 1 }, pfName: { string: 'ens1f0' }, vendor: { string: '8086' }, deviceId: { string: '154c' }, vfIndex: { int: 3 }, linkSpeedMbps: { int: 25000 },
  });
  const standIn = vfDeviceAttributes({ resourceName: 'vio4wd.io/fast', pciAddress: '0000:00:0a.0', devargs: 'net_af_packet_c,iface=vfc', maxQueues: 4, mode: 'server' });
  assert.deepEqual(standIn.virtualDevice, { string: 'net_af_packet_c' });
  const pools = publishedDevices('n1', [{ status: status('vf-0000-00-0a-0'), hw: {} }, { status: status('a'), hw: {} }], [free, { ...free, pciAddress: '0000:00:0a.0', vf: undefined }]);
  const devs = pools.get('vio4wd.io/fast')!;
  assert.deepEqual(devs.map((d) => [d.device.name, d.relay, d.vf?.pciAddress]), [
    ['a', 'a', undefined],
    ['vf-0000-00-0a-0', 'vf-0000-00-0a-0', undefined],
    ['vf-0000-3b-02-1', 'dra.vf-0000-3b-02-1', '0000:3b:02.1'],
  ]);
});

test('a claim UID or request that is not one file name component is refused before any file is touched', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vio4wd-dra-uid-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const metadataDir = join(root, 'run', 'dra');
  const cdiDir = join(root, 'cdi');
  mkdirSync(join(metadataDir, 'u1'), { recursive: true });
  mkdirSync(cdiDir);
  writeFileSync(join(root, 'run', 'sockets-of-every-relay'), '');
  // "..": the unprepare of such a claim would have removed the metadata directory's parent
  for (const uid of ['..', '', '.', '../run', 'a/b', '.hidden']) {
    await assert.rejects(removeClaimFiles(cdiDir, metadataDir, uid), /claim uid: .* is not a ResourceClaim UID/, JSON.stringify(uid));
  }
  assert.ok(existsSync(join(root, 'run', 'sockets-of-every-relay')) && existsSync(join(metadataDir, 'u1')));
  assert.throws(() => cdiSpecPath(cdiDir, '../../etc/x'), /claim uid/);
  await removeClaimFiles(cdiDir, metadataDir, 'u1');
  assert.ok(!existsSync(join(metadataDir, 'u1')));
  assert.equal(cdiSpecPath('/var/run/cdi', '0f3c0a6e-7a8b-4c1d-9e2f-1234567890ab'), '/var/run/cdi/vio4wd.io-relay_0f3c0a6e-7a8b-4c1d-9e2f-1234567890ab.json');
});
