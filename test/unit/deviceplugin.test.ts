// The device plugin's pure decisions: pool names, Allocate's mapping, device-info, NUMA-aware
// preferred allocation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerResponse, resolveDevices } from '../../src/deviceplugin/allocate.js';
import {
  DevicePluginError,
  deviceEnvPrefix,
  deviceInfo,
  deviceInfoFileName,
  parsePool,
  podMode,
  podSocketDir,
  preferredAllocation,
} from '../../src/deviceplugin/index.js';
import { toDevice } from '../../src/deviceplugin/server.js';
import { ValidationError } from '../../src/util/errors.js';
import type { RelayStatus } from '../../src/relay/types.js';

function relay(name: string, o: Partial<RelayStatus> = {}): RelayStatus {
  return {
    name,
    id: 1,
    origin: 'config',
    phase: 'Ready',
    conditions: [],
    socketPath: `/run/vio4wd/${name}/vhu.sock`,
    mode: 'client',
    queues: 1,
    numaNode: 0,
    resourceName: 'vio4wd.io/vhostuser',
    healthy: true,
    ...o,
  };
}

test('pool names: socket file and env key derive from the resource name', () => {
  assert.deepEqual(parsePool(undefined), {
    resourceName: 'vio4wd.io/vhostuser',
    domain: 'vio4wd.io',
    name: 'vhostuser',
    socketName: 'vio4wd.io_vhostuser.sock',
    envKey: 'VHOSTUSER',
  });
  assert.equal(parsePool('').resourceName, 'vio4wd.io/vhostuser');
  assert.deepEqual([parsePool('vio4wd.io/fast-numa0').socketName, parsePool('vio4wd.io/fast-numa0').envKey], ['vio4wd.io_fast-numa0.sock', 'FAST_NUMA0']);
  assert.deepEqual([parsePool('example.com/vf').socketName, parsePool('example.com/vf').envKey], ['example.com_vf.sock', 'EXAMPLE_COM_VF']);
});

test('pool names kubelet would refuse are rejected with the field and the fix', () => {
  for (const bad of ['vhostuser', 'vio4wd.io/', '/x', 'Vio4wd.io/x', 'vio4wd.io/a/b', 'vio4wd.io/-x', 'kubernetes.io/x', 'a.k8s.io/x', `vio4wd.io/${'x'.repeat(64)}`]) {
    assert.throws(
      () => parsePool(bad, 'spec.resourceName'),
      (e: unknown) => e instanceof ValidationError && e.field === 'spec.resourceName' && e.message.includes('vio4wd.io/<pool>'),
      bad,
    );
  }
});

test('device-info follows the spec: file name, and mode as the role of the application in the pod', () => {
  assert.equal(deviceInfoFileName('vio4wd.io/vhostuser', 'r1'), 'vio4wd.io-vhostuser-r1-device.json');
  // relay is the vhost-user client: QEMU in the pod creates the socket, i.e. "server"
  assert.equal(podMode('client'), 'server');
  assert.equal(podMode('server'), 'client');
  assert.deepEqual(deviceInfo(relay('r1', { mode: 'server', socketPath: '/run/x/r1/a.sock' }), '/var/run/vio4wd/vhostuser-0'), {
    type: 'vhost-user',
    version: '1.1.0',
    'vhost-user': { mode: 'client', path: '/var/run/vio4wd/vhostuser-0/a.sock' },
  });
  // the pod's directory names the pool and the place in the request, never the relay: a migration
  // target's pod has other relays but must have the socket where the source's domain XML says
  assert.equal(podSocketDir(parsePool('vio4wd.io/fast'), 0), '/var/run/vio4wd/fast-0');
  assert.equal(podSocketDir(parsePool('example.com/fast'), 2), '/var/run/vio4wd/example.com_fast-2');
});

test('ListAndWatch devices: health from status.healthy, topology from the NUMA node when known', () => {
  assert.deepEqual(toDevice(relay('a', { numaNode: 1 })), { ID: 'a', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } });
  assert.deepEqual(toDevice(relay('b', { healthy: false, numaNode: -1 })), { ID: 'b', health: 'Unhealthy', topology: null });
});

test('containerResponse maps devices to mounts, env and annotations', () => {
  const pool = parsePool('vio4wd.io/fast');
  const res = containerResponse(pool, [
    relay('a', { socketPath: '/run/vio4wd/a/vhu.sock', queues: 8, mac: '02:00:00:00:00:0a', mtu: 1500, numaNode: 1 }),
    relay('b.1', { mode: 'server', socketPath: '/srv/b/s.sock', numaNode: -1 }),
  ]);
  assert.deepEqual(res.mounts, [
    { container_path: '/var/run/vio4wd/fast-0', host_path: '/run/vio4wd/a', read_only: false },
    { container_path: '/var/run/vio4wd/fast-1', host_path: '/srv/b', read_only: false },
  ]);
  assert.deepEqual(res.envs, {
    VIO4WD_FAST_DEVICES: 'a,b.1',
    VIO4WD_DEVICE_A_SOCKET: '/var/run/vio4wd/fast-0/vhu.sock',
    VIO4WD_DEVICE_A_MODE: 'server',
    VIO4WD_DEVICE_A_QUEUES: '8',
    VIO4WD_DEVICE_A_MAC: '02:00:00:00:00:0a',
    VIO4WD_DEVICE_A_MTU: '1500',
    VIO4WD_DEVICE_A_NUMA_NODE: '1',
    VIO4WD_DEVICE_B_1_SOCKET: '/var/run/vio4wd/fast-1/s.sock',
    VIO4WD_DEVICE_B_1_MODE: 'client',
    VIO4WD_DEVICE_B_1_QUEUES: '1',
  });
  assert.equal(res.annotations['vio4wd.io/fast.devices'], 'a,b.1');
  assert.deepEqual(JSON.parse(res.annotations['vio4wd.io/fast.device-info'] ?? ''), {
    a: { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'server', path: '/var/run/vio4wd/fast-0/vhu.sock' } },
    'b.1': { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'client', path: '/var/run/vio4wd/fast-1/s.sock' } },
  });
  assert.equal(deviceEnvPrefix('web-0.a'), 'VIO4WD_DEVICE_WEB_0_A_');
});

test('resolveDevices refuses unknown, foreign, unhealthy, duplicate and colliding devices', () => {
  const pool = parsePool(undefined);
  const relays = new Map(
    [relay('ok'), relay('a-b'), relay('a.b'), relay('sick', { healthy: false, phase: 'Failed' }), relay('other', { resourceName: 'vio4wd.io/fast' }), relay('rel', { socketPath: 'x.sock' })].map((r) => [r.name, r]),
  );
  const lookup = (id: string) => relays.get(id);
  const fails = (ids: string[], code: string, ...words: string[]) =>
    assert.throws(
      () => resolveDevices(pool, ids, lookup, 'req'),
      (e: unknown) => e instanceof DevicePluginError && e.code === code && words.every((w) => e.message.includes(w)),
      `${ids.join(',')}: ${code}`,
    );
  assert.deepEqual(resolveDevices(pool, ['ok'], lookup, 'req').map((r) => r.name), ['ok']);
  fails([], 'EINVAL', 'req is empty');
  fails(['ok', 'ghost'], 'EUNKNOWNDEVICE', '"ghost"', 'vio4wd.io/vhostuser');
  fails(['other'], 'EUNKNOWNDEVICE', '"other"');
  fails(['sick'], 'EUNHEALTHY', '"sick"', 'Failed');
  fails(['ok', 'ok'], 'EINVAL', 'twice');
  fails(['a-b', 'a.b'], 'EINVAL', '"a-b"', '"a.b"', 'VIO4WD_DEVICE_A_B_');
  fails(['rel'], 'EUNHEALTHY', 'socket path');
});

test('preferred allocation: one NUMA node when possible, must-include kept, deterministic', () => {
  const numa: Record<string, number> = { a0: 0, b0: 0, c0: 0, a1: 1, b1: 1, a2: 2 };
  const of = (id: string) => numa[id];
  const pick = (available: string[], mustInclude: string[], size: number) => preferredAllocation({ available, mustInclude, size }, of);
  const all = Object.keys(numa);
  assert.deepEqual(pick(all, [], 1), ['a2']); // smallest node that fits keeps the bigger ones whole
  assert.deepEqual(pick(all, [], 2), ['a1', 'b1']);
  assert.deepEqual(pick(all, [], 3), ['a0', 'b0', 'c0']);
  assert.deepEqual(pick(all, [], 4), ['a0', 'b0', 'c0', 'a2']); // largest node, then the smallest that fits the rest
  assert.deepEqual(pick(all, ['b1'], 2), ['b1', 'a1']);
  assert.deepEqual(pick(all, ['a0', 'a1'], 3), ['a0', 'a1', 'b0']); // stays on nodes already in use
  assert.deepEqual(pick(all, ['a0', 'b0'], 2), ['a0', 'b0']);
  assert.deepEqual(pick(all, ['a0', 'b0', 'c0'], 2), ['a0', 'b0', 'c0']); // never drops a must-include
  assert.deepEqual(pick(['a0', 'x', 'b1'], [], 3), ['a0', 'b1', 'x']); // unknown NUMA last
  assert.deepEqual(pick(['a0'], [], 3), ['a0']); // cannot do better than what is available
  assert.deepEqual(pick(['r10', 'r9', 'r1'], [], 3), ['r1', 'r9', 'r10']);
  assert.throws(() => pick(all, [], 0), /allocation_size is 0/);
});

test('device-info files a killed agent left are swept at start; those of relays it runs again are kept and owned', async (t) => {
  const { mkdtempSync, writeFileSync, readdirSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { DeviceInfoFiles } = await import('../../src/deviceplugin/deviceinfo.js');
  const { silentLogger } = await import('../../src/util/log.js');
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-devinfo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const info = (p: string) => JSON.stringify({ type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'server', path: `${p}/vhost-user.sock` } });
  writeFileSync(join(dir, 'vio4wd.io-vhostuser-ns.kept-device.json'), info('/var/run/vio4wd/vhostuser-0'));
  writeFileSync(join(dir, 'vio4wd.io-vhostuser-ns.gone-device.json'), info('/var/run/vio4wd/vhostuser-1'));
  writeFileSync(join(dir, 'vio4wd.io-vhostuser-ns.x-device.json.4242.tmp'), '{');
  writeFileSync(join(dir, 'other-plugin-device.json'), '{}');
  const files = new DeviceInfoFiles(dir, silentLogger());
  await files.sweep([relay('ns.kept')]);
  assert.deepEqual(readdirSync(dir).sort(), ['other-plugin-device.json', 'vio4wd.io-vhostuser-ns.kept-device.json']);
  // taken over: removed with its relay
  await files.remove('ns.kept');
  assert.equal(existsSync(join(dir, 'vio4wd.io-vhostuser-ns.kept-device.json')), false);
});

test('Allocate refuses a relay whose socket directory holds another relay socket', () => {
  const pool = parsePool(undefined);
  const shared = [relay('relay-1', { socketPath: '/tmp/virtio-forwarder/virtio-forwarder1.sock' }), relay('relay-2', { socketPath: '/tmp/virtio-forwarder/virtio-forwarder2.sock' })];
  assert.throws(
    () => resolveDevices(pool, ['relay-1'], (id) => shared.find((s) => s.name === id), 'devices_ids', shared),
    /device "relay-1" keeps its socket in \/tmp\/virtio-forwarder, which also holds relay "relay-2"'s: a pod may get only a directory of its own/,
  );
  const own = [relay('relay-1'), relay('relay-2')];
  assert.equal(resolveDevices(pool, ['relay-1'], (id) => own.find((s) => s.name === id), 'devices_ids', own).length, 1);
});
