// The device plugin against a test kubelet over real gRPC on unix sockets: registration, the
// device list following relays, Allocate with device-info, preferred allocation, kubelet
// restarts, socket removal and bad requests.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { DevicePluginManager } from '../../src/deviceplugin/index.js';
import type { RelayStatus, RelayView } from '../../src/relay/types.js';
import { TestKubelet } from '../helpers/kubelet.js';
import { PodResourcesServer, listReply, type Holding } from '../helpers/pod-resources.js';
import { listPodResources } from '../../src/agent/pod-resources.js';
import { until } from '../helpers/wait.js';

const DEFAULT = 'vio4wd.io/vhostuser';
const FAST = 'vio4wd.io/fast';
const OPTIONS = { pre_start_required: false, get_preferred_allocation_available: true };

/** RelayManager's view reduced to its state: relays by name, 'change' and 'removed' events. */
class MemoryRelays extends EventEmitter implements RelayView {
  private readonly relays = new Map<string, RelayStatus>();
  list(): RelayStatus[] {
    return [...this.relays.values()].map((s) => structuredClone(s));
  }
  get(name: string): RelayStatus | undefined {
    const s = this.relays.get(name);
    return s && structuredClone(s);
  }
  set(s: RelayStatus): void {
    this.relays.set(s.name, s);
    this.emit('change', structuredClone(s));
  }
  update(name: string, patch: Partial<RelayStatus>): void {
    const s = this.relays.get(name);
    assert.ok(s, `no relay ${name}`);
    this.set({ ...s, ...patch });
  }
  remove(name: string): void {
    this.relays.delete(name);
    this.emit('removed', name);
  }
}

interface Env {
  kubelet: TestKubelet;
  relays: MemoryRelays;
  manager: DevicePluginManager;
  devinfo: string;
  sockRoot: string;
}

let nextId = 1;
function relay(env: Pick<Env, 'sockRoot'>, name: string, o: Partial<RelayStatus> = {}): RelayStatus {
  return {
    name,
    id: nextId++,
    origin: 'config',
    phase: 'Ready',
    conditions: [],
    socketPath: join(env.sockRoot, name, `${name}.sock`),
    mode: 'client',
    queues: 2,
    numaNode: 0,
    resourceName: DEFAULT,
    healthy: true,
    ...o,
  };
}

/** A test kubelet, an in-memory relay view and a manager, all in fresh temp dirs, cleaned up after. */
async function setup(
  t: TestContext,
  opts: { relays?: (env: Pick<Env, 'sockRoot'>) => RelayStatus[]; kubelet?: boolean; watch?: boolean; podResources?: string } = {},
): Promise<Env> {
  const root = await mkdtemp(join(tmpdir(), 'vio4wd-dp-'));
  const pluginDir = join(root, 'device-plugins');
  const devinfo = join(root, 'devinfo', 'dp');
  const sockRoot = join(root, 'relays');
  await mkdir(pluginDir);
  const relays = new MemoryRelays();
  for (const r of opts.relays?.({ sockRoot }) ?? []) relays.set(r);
  const kubelet = opts.kubelet === false ? (undefined as unknown as TestKubelet) : await TestKubelet.start(pluginDir);
  const podSocket = opts.podResources;
  const manager = new DevicePluginManager({
    view: relays,
    pluginDir,
    deviceInfoDir: devinfo,
    watch: opts.watch ?? true,
    ...(podSocket ? { holders: () => listPodResources(podSocket) } : {}),
  });
  const env = { kubelet, relays, manager, devinfo, sockRoot };
  t.after(async () => {
    await env.manager.stop();
    await env.kubelet?.stop();
    await rm(root, { recursive: true, force: true });
  });
  return env;
}

const ids = (devs: { ID: string; health: string }[] | undefined): string[] | undefined => devs?.map((d) => `${d.ID}:${d.health}`);

function grpcError(code: grpcStatus, ...fragments: string[]) {
  return (err: unknown): boolean => {
    const e = err as { code: number; details: string };
    assert.equal(e.code, code, `gRPC status ${e.code} (${e.details}), expected ${code}`);
    for (const f of fragments) assert.ok(e.details.includes(f), `"${e.details}" should mention ${f}`);
    return true;
  };
}

test('registers one plugin per pool with kubelet, each serving its own socket', async (t) => {
  const env = await setup(t, {
    relays: (e) => [relay(e, 'r1', { numaNode: 0 }), relay(e, 'f1', { resourceName: FAST, numaNode: 1 })],
  });
  await env.manager.start();
  const { kubelet } = env;
  await kubelet.until('two registrations', () => kubelet.registrations.length >= 2);
  const reqs = kubelet.registrations.map((r) => r.request).sort((a, b) => a.resource_name.localeCompare(b.resource_name));
  assert.deepEqual(reqs, [
    { version: 'v1beta1', endpoint: 'vio4wd.io_fast.sock', resource_name: FAST, options: OPTIONS },
    { version: 'v1beta1', endpoint: 'vio4wd.io_vhostuser.sock', resource_name: DEFAULT, options: OPTIONS },
  ]);
  assert.deepEqual(await kubelet.sockets(), ['kubelet.sock', 'vio4wd.io_fast.sock', 'vio4wd.io_vhostuser.sock']);
  assert.deepEqual(await kubelet.options(DEFAULT), OPTIONS);
  await kubelet.preStart(DEFAULT, ['r1']);
  // ListAndWatch: the whole list at once, with the relay's NUMA node as topology
  const d = await kubelet.until('default pool list', () => kubelet.devices(DEFAULT));
  assert.deepEqual(d, [{ ID: 'r1', health: 'Healthy', topology: { nodes: [{ ID: 0 }] } }]);
  const f = await kubelet.until('fast pool list', () => kubelet.devices(FAST));
  assert.deepEqual(f, [{ ID: 'f1', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } }]);
  assert.deepEqual(env.manager.pools().map((p) => [p.resourceName, p.serving, p.registered, p.devices]).sort(), [
    [FAST, true, true, 1],
    [DEFAULT, true, true, 1],
  ]);
});

test('registers as soon as kubelet appears when it was not running at start', async (t) => {
  const env = await setup(t, { kubelet: false, relays: (e) => [relay(e, 'r1')] });
  await env.manager.start();
  assert.deepEqual(env.manager.pools().map((p) => [p.serving, p.registered]), [[true, false]]);
  env.kubelet = await TestKubelet.start(env.manager.pluginDir);
  const kubelet = env.kubelet;
  await kubelet.until('registration', () => kubelet.registrationsFor(DEFAULT).length === 1);
  assert.deepEqual(ids(await kubelet.until('device list', () => kubelet.devices(DEFAULT))), ['r1:Healthy']);
});

test('the device list follows relays as they come, turn unhealthy and go', async (t) => {
  const env = await setup(t, { relays: (e) => [relay(e, 'r1')] });
  const { kubelet, relays } = env;
  await env.manager.start();
  const list = (want: string[]) => kubelet.until(`list ${want.join(',')}`, () => JSON.stringify(ids(kubelet.devices(DEFAULT))) === JSON.stringify(want));
  await list(['r1:Healthy']);

  relays.set(relay(env, 'r2', { numaNode: 1 }));
  await list(['r1:Healthy', 'r2:Healthy']);
  assert.deepEqual(kubelet.devices(DEFAULT)?.find((d) => d.ID === 'r2')?.topology, { nodes: [{ ID: 1 }] });

  relays.update('r1', { healthy: false, phase: 'Failed' });
  await list(['r1:Unhealthy', 'r2:Healthy']);
  // a status change that leaves the device list alone is not resent
  relays.update('r2', { conditions: [{ type: 'GuestConnected', status: 'True', reason: 'GuestConnected', message: '', lastTransitionTime: new Date().toISOString() }] });
  relays.update('r1', { healthy: true, phase: 'Ready' });
  await list(['r1:Healthy', 'r2:Healthy']);

  relays.remove('r2');
  await list(['r1:Healthy']);

  // no NUMA node known: no topology, so kubelet's topology manager sees no preference
  relays.set(relay(env, 'r3', { numaNode: -1 }));
  await list(['r1:Healthy', 'r3:Healthy']);
  assert.equal(kubelet.devices(DEFAULT)?.find((d) => d.ID === 'r3')?.topology, null);

  const history = kubelet.lists(DEFAULT).map((l) => JSON.stringify(ids(l)));
  for (let i = 1; i < history.length; i++) assert.notEqual(history[i], history[i - 1], `list ${i} repeats list ${i - 1}`);

  // a relay with an unusable pool name is left out; the others are unaffected
  relays.set(relay(env, 'bad', { resourceName: 'not a resource' }));
  relays.update('r3', { healthy: false });
  await list(['r1:Healthy', 'r3:Unhealthy']);
});

test('pools appear and disappear with their relays', async (t) => {
  const env = await setup(t, { relays: (e) => [relay(e, 'r1')] });
  const { kubelet, relays } = env;
  await env.manager.start();
  relays.set(relay(env, 'f1', { resourceName: FAST }));
  await kubelet.until('fast pool registered', () => kubelet.registrationsFor(FAST).length === 1);
  assert.deepEqual(ids(await kubelet.until('fast list', () => kubelet.devices(FAST))), ['f1:Healthy']);
  assert.ok((await kubelet.sockets()).includes('vio4wd.io_fast.sock'));

  // moving the only relay of the pool elsewhere empties it: kubelet hears "no devices", then the server goes
  relays.update('f1', { resourceName: DEFAULT });
  await kubelet.until('default list has f1', () => JSON.stringify(ids(kubelet.devices(DEFAULT))) === '["f1:Healthy","r1:Healthy"]');
  await kubelet.until('fast stream ended', () => kubelet.streamEnded(FAST));
  assert.deepEqual(kubelet.lists(FAST).at(-1), []);
  assert.deepEqual(await kubelet.sockets(), ['kubelet.sock', 'vio4wd.io_vhostuser.sock']);
  assert.deepEqual(env.manager.pools().map((p) => p.resourceName), [DEFAULT]);
});

test('Allocate mounts each relay socket directory, names it in env and annotations, and writes device-info', async (t) => {
  const env = await setup(t, {
    relays: (e) => [
      relay(e, 'r1', { mode: 'client', queues: 4, mac: '02:00:00:00:00:01' }),
      relay(e, 'r2', { mode: 'server', numaNode: 1, mtu: 9000, mac: '02:00:00:00:00:02' }),
      relay(e, 'web-0.a', { queues: 1 }),
    ],
  });
  const { kubelet, relays, devinfo, sockRoot } = env;
  await env.manager.start();
  await kubelet.until('list', () => kubelet.devices(DEFAULT));

  const one = await kubelet.allocate(DEFAULT, [['r1']]);
  assert.equal(one.container_responses.length, 1);
  assert.deepEqual(one.container_responses[0], {
    envs: {
      VIO4WD_VHOSTUSER_DEVICES: 'r1',
      VIO4WD_DEVICE_R1_SOCKET: '/var/run/vio4wd/vhostuser-0/r1.sock',
      VIO4WD_DEVICE_R1_MODE: 'server',
      VIO4WD_DEVICE_R1_QUEUES: '4',
      VIO4WD_DEVICE_R1_MAC: '02:00:00:00:00:01',
      VIO4WD_DEVICE_R1_NUMA_NODE: '0',
    },
    mounts: [{ container_path: '/var/run/vio4wd/vhostuser-0', host_path: join(sockRoot, 'r1'), read_only: false }],
    devices: [],
    annotations: {
      'vio4wd.io/vhostuser.devices': 'r1',
      'vio4wd.io/vhostuser.device-info': JSON.stringify({ r1: { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'server', path: '/var/run/vio4wd/vhostuser-0/r1.sock' } } }),
    },
    cdi_devices: [],
  });
  // device-info: <resourceName with - for />-<deviceID>-device.json; relay in client mode -> QEMU is the server
  assert.deepEqual(await readdir(devinfo), ['vio4wd.io-vhostuser-r1-device.json']);
  assert.deepEqual(JSON.parse(await readFile(join(devinfo, 'vio4wd.io-vhostuser-r1-device.json'), 'utf8')), {
    type: 'vhost-user',
    version: '1.1.0',
    'vhost-user': { mode: 'server', path: '/var/run/vio4wd/vhostuser-0/r1.sock' },
  });

  // several devices in one container, and a second container
  const many = await kubelet.allocate(DEFAULT, [['r2', 'r1'], ['web-0.a']]);
  const [c0, c1] = many.container_responses;
  assert.ok(c0 && c1);
  assert.equal(c0.envs.VIO4WD_VHOSTUSER_DEVICES, 'r2,r1');
  assert.equal(c0.envs.VIO4WD_DEVICE_R2_SOCKET, '/var/run/vio4wd/vhostuser-0/r2.sock');
  assert.equal(c0.envs.VIO4WD_DEVICE_R2_MODE, 'client');
  assert.equal(c0.envs.VIO4WD_DEVICE_R2_QUEUES, '2');
  assert.equal(c0.envs.VIO4WD_DEVICE_R2_MTU, '9000');
  assert.equal(c0.envs.VIO4WD_DEVICE_R2_NUMA_NODE, '1');
  assert.equal(c0.envs.VIO4WD_DEVICE_R1_SOCKET, '/var/run/vio4wd/vhostuser-1/r1.sock');
  assert.deepEqual(c0.mounts.map((m) => [m.container_path, m.host_path, m.read_only]), [
    ['/var/run/vio4wd/vhostuser-0', join(sockRoot, 'r2'), false],
    ['/var/run/vio4wd/vhostuser-1', join(sockRoot, 'r1'), false],
  ]);
  assert.equal(c0.annotations['vio4wd.io/vhostuser.devices'], 'r2,r1');
  assert.deepEqual(Object.keys(JSON.parse(c0.annotations['vio4wd.io/vhostuser.device-info'] ?? '{}') as object), ['r2', 'r1']);
  // the ID is sanitised in env names (upper case, anything else than A-Z0-9 -> _); the pod's
  // directory is the pool's first one whichever relay it got (a migration target gets another
  // relay than the source, but the socket path in the domain XML it receives must exist)
  assert.deepEqual(c1.envs, {
    VIO4WD_VHOSTUSER_DEVICES: 'web-0.a',
    VIO4WD_DEVICE_WEB_0_A_SOCKET: '/var/run/vio4wd/vhostuser-0/web-0.a.sock',
    VIO4WD_DEVICE_WEB_0_A_MODE: 'server',
    VIO4WD_DEVICE_WEB_0_A_QUEUES: '1',
    VIO4WD_DEVICE_WEB_0_A_NUMA_NODE: '0',
  });
  assert.deepEqual((await readdir(devinfo)).sort(), [
    'vio4wd.io-vhostuser-r1-device.json',
    'vio4wd.io-vhostuser-r2-device.json',
    'vio4wd.io-vhostuser-web-0.a-device.json',
  ]);
  assert.deepEqual(JSON.parse(await readFile(join(devinfo, 'vio4wd.io-vhostuser-r2-device.json'), 'utf8')), {
    type: 'vhost-user',
    version: '1.1.0',
    'vhost-user': { mode: 'client', path: '/var/run/vio4wd/vhostuser-0/r2.sock' },
  });

  // a changed relay gets its device-info rewritten; a removed one loses it
  relays.update('r2', { mode: 'client', socketPath: join(sockRoot, 'r2', 'other.sock') });
  await waitFor(async () => (await readFile(join(devinfo, 'vio4wd.io-vhostuser-r2-device.json'), 'utf8')).includes('/var/run/vio4wd/vhostuser-0/other.sock'));
  relays.remove('r2');
  await waitFor(async () => !existsSync(join(devinfo, 'vio4wd.io-vhostuser-r2-device.json')));
  assert.deepEqual((await readdir(devinfo)).sort(), ['vio4wd.io-vhostuser-r1-device.json', 'vio4wd.io-vhostuser-web-0.a-device.json']);

  // stopping removes the sockets, ends the streams and removes the device-info files
  await env.manager.stop();
  assert.deepEqual(await kubelet.sockets(), ['kubelet.sock']);
  assert.deepEqual(await readdir(devinfo), []);
  await kubelet.until('stream ended', () => kubelet.streamEnded(DEFAULT));
});

async function waitFor(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  await until('the condition', fn, { timeoutMs, intervalMs: 20 });
}

test('preferred allocation keeps to one NUMA node and honours must-include devices', async (t) => {
  const env = await setup(t, {
    relays: (e) => [
      relay(e, 'n0a', { numaNode: 0 }),
      relay(e, 'n0b', { numaNode: 0 }),
      relay(e, 'n1a', { numaNode: 1 }),
      relay(e, 'n1b', { numaNode: 1 }),
      relay(e, 'n1c', { numaNode: 1 }),
    ],
  });
  const { kubelet } = env;
  await env.manager.start();
  await kubelet.until('list', () => kubelet.devices(DEFAULT));
  const all = ['n1c', 'n0a', 'n1a', 'n0b', 'n1b'];
  const res = await kubelet.preferred(DEFAULT, [
    { available_deviceIDs: all, must_include_deviceIDs: [], allocation_size: 2 },
    { available_deviceIDs: all, must_include_deviceIDs: [], allocation_size: 3 },
    { available_deviceIDs: all, must_include_deviceIDs: ['n1b'], allocation_size: 2 },
    { available_deviceIDs: all, must_include_deviceIDs: ['n0a'], allocation_size: 3 },
    { available_deviceIDs: ['n0a', 'n0b', 'n1a', 'n1c'], must_include_deviceIDs: ['n1c'], allocation_size: 3 },
  ]);
  assert.deepEqual(res.container_responses.map((r) => r.deviceIDs), [
    ['n0a', 'n0b'], // both nodes can serve 2: the one that fits exactly keeps node 1 whole
    ['n1a', 'n1b', 'n1c'], // only node 1 has 3
    ['n1b', 'n1a'], // must-include on node 1, filled from node 1
    ['n0a', 'n0b', 'n1a'], // node 0 first, then one more node
    ['n1c', 'n1a', 'n0a'],
  ]);
  await assert.rejects(
    kubelet.preferred(DEFAULT, [{ available_deviceIDs: all, must_include_deviceIDs: [], allocation_size: 0 }]),
    grpcError(grpcStatus.INVALID_ARGUMENT, 'allocation_size'),
  );
});

test('kubelet restart: the plugins restart and register again within a second', async (t) => {
  const env = await setup(t, { relays: (e) => [relay(e, 'r1'), relay(e, 'f1', { resourceName: FAST })] });
  const { kubelet } = env;
  await env.manager.start();
  await kubelet.until('registrations', () => kubelet.registrations.length === 2);
  const measured: number[] = [];
  for (let round = 1; round <= 3; round++) {
    const at = await kubelet.restart();
    assert.deepEqual(await kubelet.sockets(), ['kubelet.sock']);
    for (const rn of [DEFAULT, FAST]) {
      const reg = await kubelet.until(`re-registration ${round} of ${rn}`, () => kubelet.registrationsFor(rn)[round]);
      measured.push(reg.at - at);
    }
    assert.deepEqual(ids(await kubelet.until('list after restart', () => kubelet.devices(DEFAULT))), ['r1:Healthy']);
    assert.deepEqual(ids(await kubelet.until('list after restart', () => kubelet.devices(FAST))), ['f1:Healthy']);
    assert.deepEqual(await kubelet.sockets(), ['kubelet.sock', 'vio4wd.io_fast.sock', 'vio4wd.io_vhostuser.sock']);
  }
  t.diagnostic(`re-registration after kubelet restart (ms): ${measured.map((m) => m.toFixed(1)).join(' ')}`);
  // the target is 1 s; the bound is generous so a loaded machine does not fail the test
  for (const m of measured) assert.ok(m < 5000, `re-registration took ${m.toFixed(0)} ms`);
});

test('without fs events the periodic check still notices a kubelet restart and a removed socket', async (t) => {
  const env = await setup(t, { watch: false, relays: (e) => [relay(e, 'r1')] });
  const { kubelet } = env;
  await env.manager.start();
  await kubelet.until('registration', () => kubelet.registrationsFor(DEFAULT).length === 1);
  const at = await kubelet.restart();
  const reg = await kubelet.until('re-registration', () => kubelet.registrationsFor(DEFAULT)[1]);
  t.diagnostic(`re-registration by periodic check (500 ms interval): ${(reg.at - at).toFixed(1)} ms`);
  assert.ok(reg.at - at < 5000);
  await rm(join(env.manager.pluginDir, 'vio4wd.io_vhostuser.sock'));
  await kubelet.until('re-registration after socket removal', () => kubelet.registrationsFor(DEFAULT).length === 3);
  assert.deepEqual(ids(await kubelet.until('list', () => kubelet.devices(DEFAULT))), ['r1:Healthy']);
});

test('a removed plugin socket makes the plugin restart its server and register again', async (t) => {
  const env = await setup(t, { relays: (e) => [relay(e, 'r1')] });
  const { kubelet } = env;
  await env.manager.start();
  await kubelet.until('registration', () => kubelet.registrationsFor(DEFAULT).length === 1);
  const socket = join(env.manager.pluginDir, 'vio4wd.io_vhostuser.sock');
  await rm(socket);
  await kubelet.until('re-registration', () => kubelet.registrationsFor(DEFAULT).length === 2);
  assert.ok(existsSync(socket), 'socket recreated');
  assert.deepEqual(ids(await kubelet.until('list', () => kubelet.devices(DEFAULT))), ['r1:Healthy']);
  const res = await kubelet.allocate(DEFAULT, [['r1']]);
  assert.equal(res.container_responses[0]?.envs.VIO4WD_DEVICE_R1_SOCKET, '/var/run/vio4wd/vhostuser-0/r1.sock');
});

test('bad requests fail with a gRPC error naming the device or field', async (t) => {
  const env = await setup(t, {
    relays: (e) => [relay(e, 'r1'), relay(e, 'sick', { healthy: false, phase: 'Failed', conditions: [{ type: 'VFAttached', status: 'False', reason: 'VFNotFound', message: 'no VF 0000:01:02.3', lastTransitionTime: '' }] }), relay(e, 'f1', { resourceName: FAST })],
  });
  const { kubelet, devinfo } = env;
  await env.manager.start();
  await kubelet.until('list', () => kubelet.devices(DEFAULT));
  await assert.rejects(kubelet.allocate(DEFAULT, [['r1', 'nope']]), grpcError(grpcStatus.NOT_FOUND, '"nope"', 'container_requests[0].devices_ids'));
  await assert.rejects(kubelet.allocate(DEFAULT, [['sick']]), grpcError(grpcStatus.FAILED_PRECONDITION, '"sick"', 'unhealthy', 'VFNotFound'));
  await assert.rejects(kubelet.allocate(DEFAULT, [['f1']]), grpcError(grpcStatus.NOT_FOUND, '"f1"', DEFAULT));
  await assert.rejects(kubelet.allocate(DEFAULT, []), grpcError(grpcStatus.INVALID_ARGUMENT, 'container_requests is empty'));
  await assert.rejects(kubelet.allocate(DEFAULT, [['r1'], []]), grpcError(grpcStatus.INVALID_ARGUMENT, 'container_requests[1].devices_ids is empty'));
  await assert.rejects(kubelet.allocate(DEFAULT, [['r1', 'r1']]), grpcError(grpcStatus.INVALID_ARGUMENT, '"r1" twice'));
  await assert.rejects(kubelet.preferred(DEFAULT, []), grpcError(grpcStatus.INVALID_ARGUMENT, 'container_requests is empty'));
  // a refused request writes no device-info
  assert.equal(existsSync(devinfo) ? (await readdir(devinfo)).length : 0, 0);
});

test('a VirtioRelay\'s relay is refused before start to a pod of another namespace', async (t) => {
  // kubelet's Allocate names no pod: any pod requesting the pool's resource may be handed any of
  // its relays. PreStartContainer (required now) asks kubelet's pod-resources API who holds them.
  const tmp = await mkdtemp(join(tmpdir(), 'vio4wd-dp-pr-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const holdings: Holding[] = [];
  const pr = await PodResourcesServer.start(join(tmp, 'kubelet.sock'), () => listReply(holdings));
  t.after(() => pr.stop());
  const env = await setup(t, {
    podResources: pr.socket,
    relays: (e) => [
      relay(e, 'vms.vm1', { origin: 'kubernetes', ident: 'vms/vm1' }),
      relay(e, 'vms.vm2', { origin: 'kubernetes', ident: 'vms/vm2' }),
      relay(e, 'admin1', { origin: 'config' }),
    ],
  });
  const { kubelet } = env;
  await env.manager.start();
  await kubelet.until('registration', () => kubelet.registrationsFor(DEFAULT).length === 1);
  const checking = { ...OPTIONS, pre_start_required: true };
  assert.deepEqual(kubelet.registrationsFor(DEFAULT)[0]?.request.options, checking, 'kubelet is told to call PreStartContainer');
  assert.deepEqual(await kubelet.options(DEFAULT), checking);

  // a pod of namespace "intruder" got vms/vm1's relay: refused, naming relay, namespaces and the fix
  await kubelet.allocate(DEFAULT, [['vms.vm1']]);
  holdings.push({ namespace: 'intruder', pod: 'snoop', resourceName: DEFAULT, deviceIds: ['vms.vm1'] });
  await assert.rejects(
    kubelet.preStart(DEFAULT, ['vms.vm1']),
    grpcError(grpcStatus.PERMISSION_DENIED, '"vms.vm1"', 'VirtioRelay vms/vm1', 'pod intruder/snoop', 'own namespace', 'create a VirtioRelay in namespace intruder'),
  );
  // the pod of the relay's own namespace starts
  holdings.push({ namespace: 'vms', pod: 'virt-launcher-vm2', resourceName: DEFAULT, deviceIds: ['vms.vm2'] });
  await kubelet.preStart(DEFAULT, ['vms.vm2']);
  // the node admin's relays (agent config, port control) have no namespace: any pod may get them
  const calls = pr.calls;
  await kubelet.preStart(DEFAULT, ['admin1']);
  assert.equal(pr.calls, calls, 'no pod-resources call for an admin relay');
  // kubelet lists no holder (pod-resources not mounted, or a lie): fails closed, naming the fix
  holdings.length = 0;
  const t0 = Date.now();
  await assert.rejects(kubelet.preStart(DEFAULT, ['vms.vm2']), grpcError(grpcStatus.FAILED_PRECONDITION, 'lists no pod holding device(s) vms.vm2', 'agent.podResources.enabled', 'devicePlugin.namespaceCheck: false'));
  assert.ok(Date.now() - t0 >= 1500, 'waited for kubelet to list the allocation before refusing');
  // kubelet's pod-resources socket gone: also refused, naming it
  await pr.stop();
  await assert.rejects(kubelet.preStart(DEFAULT, ['vms.vm2']), grpcError(grpcStatus.FAILED_PRECONDITION, 'cannot ask', 'pod-resources'));
});
