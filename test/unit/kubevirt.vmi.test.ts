// What the binding reads from a VMI: which interfaces are ours, queues from multiqueue and vCPUs,
// PCI addresses and MACs, migration targets; and the hand-written fallback settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  boundInterfaces,
  isMigrationTarget,
  libvirtPciAddress,
  parseVmi,
  queueCount,
  vcpuCount,
  type Vmi,
} from '../../src/kubevirt/vmi.js';
import { explicitFromVmi, parseInterfaceSpec, parseInterfacesEnv } from '../../src/kubevirt/explicit.js';
import { ValidationError } from '../../src/util/errors.js';
import { parseMac } from '../../src/util/identifiers.js';

const fixture = (n: string): string => readFileSync(`test/fixtures/kubevirt/${n}`, 'utf8');

function vmiWith(domain: NonNullable<Vmi['spec']>['domain']): Vmi {
  return { spec: { domain } };
}

test('the interfaces bound to vio4wd are picked in spec order; unplugged ones and other bindings are not', () => {
  const vmi = parseVmi(fixture('vmi-two.json'));
  assert.deepEqual(boundInterfaces(vmi, 'vio4wd').map((i) => i.name), ['net1', 'net2']);
  assert.deepEqual(boundInterfaces(parseVmi(fixture('vmi-one.json')), 'vio4wd').map((i) => i.name), ['net1']);
  assert.deepEqual(boundInterfaces(vmi, 'other'), []);
  const unplug = vmiWith({ devices: { interfaces: [{ name: 'a', binding: { name: 'vio4wd' }, state: 'absent' }, { name: 'b', binding: { name: 'vio4wd' } }] } });
  assert.deepEqual(boundInterfaces(unplug, 'vio4wd').map((i) => i.name), ['b']);
});

test('queues: 1 without multiqueue; with it, the vCPUs as KubeVirt counts them, capped', () => {
  assert.equal(queueCount(parseVmi(fixture('vmi-one.json')), 32), 1);
  const two = parseVmi(fixture('vmi-two.json'));
  assert.equal(vcpuCount(two), 4); // 2 cores x 2 sockets x 1 thread (maxSockets does not count)
  assert.equal(queueCount(two, 32), 4);
  assert.equal(queueCount(two, 2), 2);
  const byLimit = vmiWith({ devices: { networkInterfaceMultiqueue: true }, resources: { limits: { cpu: '6' }, requests: { cpu: '2' } } });
  assert.equal(queueCount(byLimit, 32), 6);
  const byRequest = vmiWith({ devices: { networkInterfaceMultiqueue: true }, resources: { requests: { cpu: '2500m' } } });
  assert.equal(queueCount(byRequest, 32), 3);
  const big = vmiWith({ devices: { networkInterfaceMultiqueue: true }, cpu: { cores: 16, sockets: 4, threads: 2 } });
  assert.equal(queueCount(big, 32), 32);
  assert.equal(vcpuCount(vmiWith({})), 1);
});

test('a VMI pciAddress becomes libvirt hex fields; a bad one is refused with the form to use', () => {
  assert.deepEqual(libvirtPciAddress('0000:81:1F.7', 'f'), { domain: '0x0000', bus: '0x81', slot: '0x1f', function: '0x7' });
  for (const bad of ['81:01.0', '0000:81:01', '0000:81:01.8', 'zzzz:00:00.0']) {
    assert.throws(() => libvirtPciAddress(bad, 'interface "net1" pciAddress'), (e: unknown) => e instanceof ValidationError && /net1/.test(e.message) && /0000:81:01\.0/.test(e.message), bad);
  }
});

test('MACs: unicast only, lower-cased', () => {
  assert.equal(parseMac('02:AA:bb:00:00:01', 'f'), '02:aa:bb:00:00:01');
  assert.throws(() => parseMac('01:00:5e:00:00:01', 'f'), /multicast/);
  assert.throws(() => parseMac('02:00:00:00:01', 'f'), /not a MAC/);
});

test('a migration target is recognised from the VMI status', () => {
  assert.equal(isMigrationTarget(parseVmi(fixture('vmi-one.json'))), false);
  assert.equal(isMigrationTarget({ status: { migrationState: { targetPod: 'virt-launcher-x-abcde' } } }), true);
  assert.equal(isMigrationTarget({ status: { migrationState: { targetPod: 'virt-launcher-x-abcde', completed: true } } }), false);
  assert.equal(isMigrationTarget({ status: { migrationState: { targetPod: 'virt-launcher-x-abcde', failed: true } } }), false);
});

test('a VMI that is not JSON, or has nameless interfaces, is refused naming the field', () => {
  assert.throws(() => parseVmi('{'), (e: unknown) => e instanceof ValidationError && e.field === 'vmi');
  assert.throws(() => parseVmi('[]'), /VirtualMachineInstance object/);
  assert.throws(
    () => parseVmi(JSON.stringify({ spec: { domain: { devices: { interfaces: [{ binding: { name: 'vio4wd' } }] } } } })),
    (e: unknown) => e instanceof ValidationError && e.field === 'vmi.spec.domain.devices.interfaces[0].name',
  );
});

test('--interface and VIO4WD_INTERFACES: short and long forms, checked', () => {
  assert.deepEqual(parseInterfaceSpec('net1=/var/run/vio4wd/r1/vhost.sock'), ['net1', { path: '/var/run/vio4wd/r1/vhost.sock' }]);
  assert.deepEqual(parseInterfaceSpec('net2:path=/x/y.sock,mode=client,mac=02:00:00:00:00:0A,mtu=9000,queues=4'), [
    'net2',
    { path: '/x/y.sock', mode: 'client', mac: '02:00:00:00:00:0a', mtu: 9000, queues: 4 },
  ]);
  assert.throws(() => parseInterfaceSpec('net1:path=relative.sock'), /absolute path/);
  assert.throws(() => parseInterfaceSpec('net1:mode=both'), /client or server/);
  assert.throws(() => parseInterfaceSpec('net1:mtu=20000'), /68\.\.9216/);
  assert.throws(() => parseInterfaceSpec('net1:colour=blue'), /unknown key/);
  assert.throws(() => parseInterfaceSpec('NET1=/x'), /NAME=PATH/);
  const env = parseInterfacesEnv('net1=/a.sock; net2:path=/b.sock,mtu=1500\n');
  assert.deepEqual([...env.keys()], ['net1', 'net2']);
  assert.equal(env.get('net2')!.mtu, 1500);
  assert.equal(parseInterfacesEnv(undefined).size, 0);
});

test('the vio4wd.io/interfaces annotation is read per interface and checked', () => {
  const vmi: Vmi = { metadata: { annotations: { 'vio4wd.io/interfaces': '{"net1": {"path": "/var/run/vio4wd/r7/vhost.sock", "mac": "02:00:00:00:07:01", "mtu": 9000}}' } } };
  assert.deepEqual(explicitFromVmi(vmi).get('net1'), { path: '/var/run/vio4wd/r7/vhost.sock', mac: '02:00:00:00:07:01', mtu: 9000 });
  assert.throws(() => explicitFromVmi({ metadata: { annotations: { 'vio4wd.io/interfaces': '{net1}' } } }), /not valid JSON/);
  assert.throws(() => explicitFromVmi({ metadata: { annotations: { 'vio4wd.io/interfaces': '{"net1": {"mac": "zz"}}' } } }), /vio4wd\.io\/interfaces\.net1\.mac/);
});
