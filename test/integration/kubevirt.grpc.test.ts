// The binding sidecar over real gRPC (grpc-js on a unix socket), driven the way virt-launcher
// 1.7.0 drives it: Info, then OnDefineDomain twice (with KubeVirt's placeholder NICs, then with
// libvirt's device list), on a migration target, and Shutdown.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { BindingSidecar, HookClient, type ExplicitInterface } from '../../src/kubevirt/index.js';
import { silentLogger } from '../../src/util/log.js';

const FIX = 'test/fixtures/kubevirt';
const fixture = (n: string): string => readFileSync(join(FIX, n), 'utf8');

let dir: string;
let sidecar: BindingSidecar | undefined;
let client: HookClient | undefined;
let shutdowns = 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vio4wd-kv-'));
  shutdowns = 0;
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await sidecar?.stop();
  sidecar = undefined;
  rmSync(dir, { recursive: true, force: true });
});

interface Setup {
  networkInfo?: string | null; // file content; null = no file (downward API not mounted)
  explicit?: [string, ExplicitInterface][];
  timeoutMs?: number;
}

/** Starts the sidecar the way KubeVirt lays it out: <hooks>/<container>/vio4wd.sock. */
async function start(s: Setup = {}): Promise<{ hooks: string; networkInfo: string; dra: string }> {
  const hooks = join(dir, 'kubevirt-hooks');
  const networkInfo = join(dir, 'podinfo', 'network-info');
  const dra = join(dir, 'dra-device-attributes');
  if (s.networkInfo !== null) {
    mkdirSync(join(dir, 'podinfo'), { recursive: true });
    writeFileSync(networkInfo, s.networkInfo ?? '');
  }
  sidecar = new BindingSidecar({
    socketPath: join(hooks, 'hook-sidecar-0', 'vio4wd.sock'),
    bindingName: 'vio4wd',
    maxQueues: 32,
    logger: silentLogger(),
    resolve: { networkInfoPath: networkInfo, networkInfoTimeoutMs: s.timeoutMs ?? 5000, pollIntervalMs: 50, draMetadataDir: dra, explicit: new Map(s.explicit ?? []) },
    onShutdown: () => shutdowns++,
  });
  await sidecar.start();
  client = new HookClient(sidecar.socketPath);
  return { hooks, networkInfo, dra };
}

function root(xml: string): Element {
  return new DOMParser().parseFromString(xml, 'text/xml').documentElement!;
}
function kids(el: Element, name: string): Element[] {
  return Array.from(el.childNodes).filter((n): n is Element => n.nodeType === 1 && (n as Element).localName === name);
}
function child(el: Element | undefined, name: string): Element | undefined {
  return el ? kids(el, name)[0] : undefined;
}
function ifaces(xml: string): Element[] {
  return kids(child(root(xml), 'devices')!, 'interface');
}
function nicOf(xml: string, name: string): Element {
  const e = ifaces(xml).find((i) => child(i, 'alias')?.getAttribute('name') === `ua-${name}`);
  assert.ok(e, `domain has an interface with alias ua-${name}`);
  return e;
}
const attr = (e: Element | undefined, a: string): string | null | undefined => e?.getAttribute(a);

function grpcCode(err: unknown): number | undefined {
  return (err as grpc.ServiceError).code;
}

test('Info names the sidecar, both callback versions and its hook points, on KubeVirt\'s wire tags', async () => {
  await start();
  const info = await client!.getInfo();
  assert.equal(info.name, 'vio4wd');
  assert.deepEqual(info.versions, ['v1alpha3', 'v1alpha2']);
  assert.deepEqual(info.hookPoints.map((h) => h.name), ['OnDefineDomain', 'Shutdown']);
  assert.equal(await client!.version(), 'v1alpha3');

  // Decode the raw reply without our .proto: KubeVirt's InfoResult is name=1, hookPoints=3, versions=4.
  const Raw = grpc.makeGenericClientConstructor(
    {
      Info: {
        path: '/kubevirt.hooks.info.Info/Info',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    'Info',
  );
  const raw = new Raw(`unix:${sidecar!.socketPath}`, grpc.credentials.createInsecure()) as unknown as {
    Info: (req: Buffer, cb: (e: grpc.ServiceError | null, r: Buffer) => void) => void;
    close(): void;
  };
  const bytes = await new Promise<Buffer>((resolve, reject) => raw.Info(Buffer.alloc(0), (e, r) => (e ? reject(e) : resolve(r))));
  raw.close();
  const fields: [number, string][] = [];
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    assert.equal(tag & 7, 2, 'every InfoResult field is length-delimited');
    const b = r.bytes();
    fields.push([tag >>> 3, tag >>> 3 === 3 ? 'hookPoint' : Buffer.from(b).toString('utf8')]);
  }
  assert.deepEqual(fields, [
    [1, 'vio4wd'],
    [3, 'hookPoint'],
    [3, 'hookPoint'],
    [4, 'v1alpha3'],
    [4, 'v1alpha2'],
  ]);
});

test('one interface: both OnDefineDomain calls of a domain creation give the NIC on the relay socket from network-info', async () => {
  await start({ networkInfo: fixture('network-info-one.json') });
  const vmi = fixture('vmi-one.json');
  const first = await client!.onDefineDomain(fixture('domain-one-first.xml'), vmi);
  const names = (x: string): (string | null | undefined)[] => ifaces(x).map((i) => attr(child(i, 'alias'), 'name') ?? attr(child(i, 'target'), 'dev'));
  assert.deepEqual(names(first), ['ua-default', 'ua-net1', 'placeholder-0', 'placeholder-1']);
  const n = nicOf(first, 'net1');
  assert.equal(attr(n, 'type'), 'vhostuser');
  assert.equal(attr(child(n, 'source'), 'path'), '/var/run/vio4wd/relay-a0/vhost-user.sock');
  assert.equal(attr(child(n, 'source'), 'mode'), 'server', 'relay in client mode: QEMU serves the socket');
  assert.equal(attr(child(n, 'mac'), 'address'), '02:00:00:a1:00:01');
  assert.equal(attr(child(n, 'model'), 'type'), 'virtio');
  assert.equal(attr(child(n, 'driver'), 'queues'), '1');
  assert.equal(attr(child(child(root(first), 'memoryBacking'), 'access'), 'mode'), 'shared');

  // second call: libvirt's devices, the original interfaces only (our NIC is gone again)
  const second = await client!.onDefineDomain(fixture('domain-one-second.xml'), vmi);
  assert.deepEqual(names(second), ['ua-default', 'ua-net1']);
  assert.equal(nicOf(second, 'net1').toString(), n.toString());
  // libvirt's addresses are untouched
  const disk = kids(child(root(second), 'devices')!, 'disk')[0]!;
  assert.equal(attr(child(disk, 'address'), 'bus'), '0x04');
  // and the v1alpha2 service answers the same
  assert.equal(await client!.onDefineDomain(fixture('domain-one-second.xml'), vmi, 'v1alpha2'), second);
});

test('a VM without a MAC: the NIC gets the MAC that KubeVirt passes in network-info (vio4wd-cni\'s result)', async () => {
  const info = JSON.parse(fixture('network-info-one.json')) as { interfaces: Record<string, unknown>[] };
  info.interfaces[0]!.mac = '0A:58:0A:F4:00:2F';
  const { networkInfo } = await start({ networkInfo: JSON.stringify(info) });
  const vmi = JSON.parse(fixture('vmi-one.json')) as { spec: { domain: { devices: { interfaces: { name: string; macAddress?: string }[] } } } };
  for (const i of vmi.spec.domain.devices.interfaces) delete i.macAddress;
  const out = await client!.onDefineDomain(fixture('domain-one-first.xml'), JSON.stringify(vmi));
  assert.equal(attr(child(nicOf(out, 'net1'), 'mac'), 'address'), '0a:58:0a:f4:00:2f');
  // a MAC in the VM spec wins (it is what Multus passed to the CNI as runtimeConfig.mac)
  const withMac = await client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json'));
  assert.equal(attr(child(nicOf(withMac, 'net1'), 'mac'), 'address'), '02:00:00:a1:00:01');
  // a broken one is refused, naming where it came from
  info.interfaces[0]!.mac = 'zz';
  writeFileSync(networkInfo, JSON.stringify(info));
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), JSON.stringify(vmi)), /interfaces\[net1\]\.mac: "zz" is not a MAC address/);
});

test('two interfaces with multiqueue: 4 queues (2x2 vCPUs), PCI address and ACPI index, MTU from the annotation, client mode', async () => {
  await start({ networkInfo: fixture('network-info-two.json') });
  const vmi = JSON.parse(fixture('vmi-two.json')) as { metadata: { annotations: Record<string, string> } };
  vmi.metadata.annotations['vio4wd.io/interfaces'] = JSON.stringify({ net2: { mtu: 9000, mac: '02:00:00:b1:00:02' } });
  const out = await client!.onDefineDomain(fixture('domain-two-first.xml'), vmi);
  const n1 = nicOf(out, 'net1');
  const n2 = nicOf(out, 'net2');
  assert.deepEqual(ifaces(out).map((i) => attr(child(i, 'alias'), 'name') ?? attr(child(i, 'target'), 'dev')), ['ua-net1', 'ua-net2', 'placeholder-0', 'placeholder-1']);
  for (const n of [n1, n2]) assert.equal(attr(child(n, 'driver'), 'queues'), '4');
  assert.deepEqual([attr(child(n1, 'address'), 'bus'), attr(child(n1, 'address'), 'slot')], ['0x08', '0x00']);
  assert.equal(attr(child(n1, 'acpi'), 'index'), '3');
  assert.equal(child(n1, 'mtu'), undefined, 'no MTU known for net1');
  assert.equal(attr(child(n2, 'mtu'), 'size'), '9000');
  assert.equal(attr(child(n2, 'mac'), 'address'), '02:00:00:b1:00:02', 'MAC from the annotation when the VMI sets none');
  assert.equal(attr(child(n2, 'source'), 'mode'), 'client');
  assert.equal(attr(child(n2, 'source'), 'path'), '/var/run/vio4wd/relay-b1/vhost-user.sock');
  assert.ok(child(child(root(out), 'memoryBacking'), 'hugepages'), 'hugepages kept');
  // apply twice = same result
  assert.equal(await client!.onDefineDomain(out, vmi), out);
});

test('a DRA network: socket path and MTU from the claim\'s KEP-5304 device metadata', async () => {
  const { dra } = await start({ networkInfo: null });
  const reqDir = join(dra, 'resourceclaimtemplates', 'vhost', 'port');
  mkdirSync(reqDir, { recursive: true });
  writeFileSync(join(reqDir, 'vio4wd.io-metadata.json'), fixture('dra-metadata.json'));
  const out = await client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-dra.json'));
  const n = nicOf(out, 'net1');
  assert.equal(attr(child(n, 'source'), 'path'), '/var/run/vio4wd/relay-a2/vhost-user.sock');
  assert.equal(attr(child(n, 'source'), 'mode'), 'server');
  assert.equal(attr(child(n, 'mtu'), 'size'), '9000');
});

test('network-info that KubeVirt fills in after the call started is waited for', async () => {
  const { networkInfo } = await start({ networkInfo: '' });
  const call = client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json'));
  await sleep(300);
  writeFileSync(networkInfo, fixture('network-info-one.json'));
  const out = await call;
  assert.equal(attr(child(nicOf(out, 'net1'), 'source'), 'path'), '/var/run/vio4wd/relay-a0/vhost-user.sock');
});

test('no socket for an interface: FAILED_PRECONDITION naming the interface and what was searched', async () => {
  await start({ networkInfo: null });
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json')), (err: unknown) => {
    assert.equal(grpcCode(err), grpc.status.FAILED_PRECONDITION);
    const msg = (err as grpc.ServiceError).details;
    assert.match(msg, /no vhost-user socket found for interface "net1"/);
    assert.match(msg, /network-info .* does not exist/);
    return true;
  });
  // network-info present but without the interface: waits, then says so
  await sidecar!.stop();
  client!.close();
  await start({ networkInfo: '{"interfaces":[{"network":"other","deviceInfo":{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server","path":"/x.sock"}}}]}', timeoutMs: 200 });
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json')), /has no device-info for network "net1"/);
  // listed without device-info (newer KubeVirt lists every network with its MAC): point at the NAD
  await sidecar!.stop();
  client!.close();
  await start({ networkInfo: '{"interfaces":[{"network":"net1","mac":"0a:58:0a:f4:00:2f"}]}', timeoutMs: 200 });
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json')), /lists network "net1" without device-info .*resourceName/);
});

test('an explicit fallback (--interface) serves an interface the downward API does not name', async () => {
  await start({ networkInfo: null, explicit: [['net1', { path: '/var/run/vio4wd/relay-x/vhost-user.sock', mode: 'client', mtu: 1500 }]] });
  const out = await client!.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json'));
  const n = nicOf(out, 'net1');
  assert.deepEqual([attr(child(n, 'source'), 'path'), attr(child(n, 'source'), 'mode'), attr(child(n, 'mtu'), 'size')], ['/var/run/vio4wd/relay-x/vhost-user.sock', 'client', '1500']);
});

test('bad VMI settings are refused with INVALID_ARGUMENT naming the interface', async () => {
  await start({ networkInfo: fixture('network-info-one.json') });
  const vmi = JSON.parse(fixture('vmi-one.json')) as { spec: { domain: { devices: { interfaces: Record<string, unknown>[] } } } };
  vmi.spec.domain.devices.interfaces[1]!.model = 'e1000';
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), vmi), (err: unknown) => {
    assert.equal(grpcCode(err), grpc.status.INVALID_ARGUMENT);
    assert.match((err as grpc.ServiceError).details, /interface "net1" model: "e1000" is not supported/);
    return true;
  });
  vmi.spec.domain.devices.interfaces[1]!.model = 'virtio';
  vmi.spec.domain.devices.interfaces[1]!.pciAddress = '81:00.0';
  await assert.rejects(client!.onDefineDomain(fixture('domain-one-first.xml'), vmi), /interface "net1" pciAddress: "81:00\.0" is not a PCI address/);
  await assert.rejects(client!.onDefineDomain('<domain><devices>', fixture('vmi-one.json')), (err: unknown) => grpcCode(err) === grpc.status.INVALID_ARGUMENT);
});

test('on a migration target a missing socket does not fail the migration (virt-launcher discards the result)', async () => {
  await start({ networkInfo: null });
  const vmi = JSON.parse(fixture('vmi-one.json')) as { status: Record<string, unknown> };
  vmi.status.migrationState = { targetPod: 'virt-launcher-vm-vio4wd-one-x8x2q', sourcePod: 'virt-launcher-vm-vio4wd-one-7bq4m', targetNode: 'worker-2' };
  const xml = fixture('domain-one-first.xml');
  assert.equal(await client!.onDefineDomain(xml, vmi), xml);
});

test('a VMI without vio4wd interfaces passes through unchanged', async () => {
  await start({ networkInfo: null });
  const vmi = JSON.parse(fixture('vmi-one.json')) as { spec: { domain: { devices: { interfaces: unknown[] } } } };
  vmi.spec.domain.devices.interfaces = [{ name: 'default', masquerade: {} }];
  const xml = fixture('domain-one-first.xml');
  assert.equal(await client!.onDefineDomain(xml, vmi), xml);
});

test('Shutdown (v1alpha3) stops the server and removes its socket', async () => {
  await start();
  const path = sidecar!.socketPath;
  assert.ok(existsSync(path));
  await client!.shutdown();
  for (let i = 0; i < 100 && shutdowns === 0; i++) await sleep(20);
  assert.equal(shutdowns, 1);
  assert.equal(existsSync(path), false);
});

test('vio4wd kubevirt-sidecar: serves the socket, answers Info, exits 0 on Shutdown', async () => {
  const hooks = join(dir, 'hooks', 'c0');
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const { main } = await import('./src/cli/main.ts'); process.exitCode = await main(['node', 'vio4wd', ...process.argv.slice(1)]);",
      'kubevirt-sidecar',
      '--socket-dir',
      hooks,
      '--socket-name',
      'vio4wd-test.sock',
      '--network-info',
      join(dir, 'none'),
      '--interface',
      'net1=/var/run/vio4wd/relay-z/vhost-user.sock',
      '--log-level',
      'silent',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  try {
    const sock = join(hooks, 'vio4wd-test.sock');
    for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(50);
    assert.ok(existsSync(sock), `socket appeared (stderr: ${stderr})`);
    client = new HookClient(sock);
    assert.equal((await client.getInfo()).name, 'vio4wd');
    const out = await client.onDefineDomain(fixture('domain-one-first.xml'), fixture('vmi-one.json'));
    assert.equal(attr(child(nicOf(out, 'net1'), 'source'), 'path'), '/var/run/vio4wd/relay-z/vhost-user.sock');
    await client.shutdown();
    assert.equal(await exited, 0, stderr);
    assert.equal(existsSync(sock), false);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
});

