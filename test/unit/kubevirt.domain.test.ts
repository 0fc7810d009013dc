// The domain XML rewrite on its own: vhost-user NICs where KubeVirt's VMI interfaces say, shared
// memory, the rest of the document as virt-launcher wrote it, and the same result on a second pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { rewriteDomain, parseDomain, type DomainPlan, type NicPlan } from '../../src/kubevirt/domain.js';
import { ValidationError } from '../../src/util/errors.js';

const fixture = (n: string): string => readFileSync(`test/fixtures/kubevirt/${n}`, 'utf8');

function nic(name: string, o: Partial<NicPlan> = {}): NicPlan {
  return {
    name,
    socketPath: `/var/run/vio4wd/${name}/vhost-user.sock`,
    mode: 'server',
    model: 'virtio',
    queues: 1,
    rxQueueSize: 1024,
    txQueueSize: 1024,
    ...o,
  };
}

const planOne: DomainPlan = { nics: [nic('net1', { mac: '02:00:00:a1:00:01' })], vmiInterfaceOrder: ['default', 'net1'] };

function dom(xml: string): Element {
  return new DOMParser().parseFromString(xml, 'text/xml').documentElement!;
}
function kids(el: Element, name: string): Element[] {
  return Array.from(el.childNodes).filter((n): n is Element => n.nodeType === 1 && (n as Element).localName === name);
}
function one(el: Element, path: string): Element | undefined {
  let cur: Element | undefined = el;
  for (const p of path.split('/')) cur = cur ? kids(cur, p)[0] : undefined;
  return cur;
}
/** Each interface as "type alias-or-target". */
function ifaceList(xml: string): string[] {
  return kids(one(dom(xml), 'devices')!, 'interface').map((i) => {
    const alias = one(i, 'alias')?.getAttribute('name');
    return `${i.getAttribute('type')} ${alias ?? one(i, 'target')?.getAttribute('dev')}`;
  });
}
function vhostIface(xml: string, name: string): Element {
  const i = kids(one(dom(xml), 'devices')!, 'interface').find((x) => one(x, 'alias')?.getAttribute('name') === `ua-${name}`);
  assert.ok(i, `interface ua-${name} present`);
  return i;
}
/** True when `a`'s lines appear in `b` in order (b only adds lines). */
function linesKept(a: string, b: string): boolean {
  const bl = b.split('\n');
  let j = 0;
  for (const line of a.split('\n')) {
    while (j < bl.length && bl[j] !== line) j++;
    if (j === bl.length) return false;
    j++;
  }
  return true;
}

test('first call: the NIC joins after the VMI interfaces, before KubeVirt\'s placeholders, which stay', () => {
  const input = fixture('domain-one-first.xml');
  const out = rewriteDomain(input, planOne);
  assert.deepEqual(ifaceList(out), ['ethernet ua-default', 'vhostuser ua-net1', 'ethernet placeholder-0', 'ethernet placeholder-1']);
  const i = vhostIface(out, 'net1');
  assert.deepEqual(
    [one(i, 'source')!.getAttribute('type'), one(i, 'source')!.getAttribute('path'), one(i, 'source')!.getAttribute('mode')],
    ['unix', '/var/run/vio4wd/net1/vhost-user.sock', 'server'],
  );
  assert.equal(one(i, 'model')!.getAttribute('type'), 'virtio');
  assert.equal(one(i, 'mac')!.getAttribute('address'), '02:00:00:a1:00:01');
  assert.deepEqual(['queues', 'rx_queue_size', 'tx_queue_size'].map((a) => one(i, 'driver')!.getAttribute(a)), ['1', '1024', '1024']);
  assert.equal(one(i, 'address'), undefined, 'no PCI address unless the VMI sets one');
  assert.equal(one(dom(out), 'memoryBacking/access')!.getAttribute('mode'), 'shared');
  assert.equal(one(dom(out), 'memoryBacking/source')!.getAttribute('type'), 'memfd');
  // nothing of virt-launcher's text changes: the output only adds lines
  assert.ok(linesKept(input, out), 'every input line is still there, in order');
  assert.match(out, /<interface type="vhostuser">\n\t\t\t<mac address="02:00:00:a1:00:01"><\/mac>\n/);
});

test('second call (libvirt\'s devices, addresses, no placeholders): the same NIC again, other addresses untouched', () => {
  const input = fixture('domain-one-second.xml');
  const out = rewriteDomain(input, planOne);
  assert.deepEqual(ifaceList(out), ['ethernet ua-default', 'vhostuser ua-net1']);
  assert.ok(linesKept(input, out));
  const first = rewriteDomain(fixture('domain-one-first.xml'), planOne);
  const iface = (x: string): string => vhostIface(x, 'net1').toString();
  assert.equal(iface(out), iface(first), 'the NIC is built the same way in both calls');
});

test('applying the rewrite to its own output changes nothing', () => {
  const two: DomainPlan = {
    nics: [nic('net1', { queues: 4, mac: '02:00:00:a1:00:01', pciAddress: { domain: '0x0000', bus: '0x08', slot: '0x00', function: '0x0' }, acpiIndex: 3 }), nic('net2', { queues: 4, mode: 'client', mtu: 9000 })],
    vmiInterfaceOrder: ['net1', 'net2'],
  };
  for (const [f, plan] of [
    ['domain-one-first.xml', planOne],
    ['domain-one-second.xml', planOne],
    ['domain-two-first.xml', two],
  ] as const) {
    const once = rewriteDomain(fixture(f), plan);
    assert.equal(rewriteDomain(once, plan), once, f);
  }
});

test('two NICs keep the VMI order; PCI address, ACPI index, MTU, client mode with reconnect', () => {
  const plan: DomainPlan = {
    nics: [
      nic('net1', { queues: 4, pciAddress: { domain: '0x0000', bus: '0x08', slot: '0x00', function: '0x0' }, acpiIndex: 3 }),
      nic('net2', { queues: 4, mode: 'client', mtu: 9000, bootOrder: 2 }),
    ],
    vmiInterfaceOrder: ['net1', 'net2'],
  };
  const out = rewriteDomain(fixture('domain-two-first.xml'), plan);
  assert.deepEqual(ifaceList(out), ['vhostuser ua-net1', 'vhostuser ua-net2', 'ethernet placeholder-0', 'ethernet placeholder-1']);
  const n1 = vhostIface(out, 'net1');
  assert.deepEqual(['type', 'domain', 'bus', 'slot', 'function'].map((a) => one(n1, 'address')!.getAttribute(a)), ['pci', '0x0000', '0x08', '0x00', '0x0']);
  assert.equal(one(n1, 'acpi')!.getAttribute('index'), '3');
  assert.equal(one(n1, 'driver')!.getAttribute('queues'), '4');
  const n2 = vhostIface(out, 'net2');
  assert.equal(one(n2, 'mtu')!.getAttribute('size'), '9000');
  assert.equal(one(n2, 'source')!.getAttribute('mode'), 'client');
  assert.equal(one(n2, 'source/reconnect')!.getAttribute('enabled'), 'yes');
  assert.equal(one(n2, 'boot')!.getAttribute('order'), '2');
  assert.equal(one(n2, 'rom'), undefined, 'a boot NIC keeps its option ROM');
  // hugepages stay the memory source; access becomes shared
  const mb = one(dom(out), 'memoryBacking')!;
  assert.ok(one(mb, 'hugepages'));
  assert.equal(one(mb, 'source'), undefined);
  assert.equal(one(mb, 'access')!.getAttribute('mode'), 'shared');
});

test('an interface already named ua-<name> is replaced in place and keeps the PCI slot libvirt gave it', () => {
  const input = `<domain type="kvm">
	<name>x</name>
	<memory unit="b">1073741824</memory>
	<devices>
		<interface type="ethernet">
			<address type="pci" domain="0x0000" bus="0x01" slot="0x00" function="0x0"></address>
			<source></source>
			<target dev="tap1" managed="no"></target>
			<model type="virtio-non-transitional"></model>
			<alias name="ua-net1"></alias>
		</interface>
		<interface type="ethernet">
			<source></source>
			<target dev="tap0" managed="no"></target>
			<alias name="ua-default"></alias>
		</interface>
	</devices>
</domain>`;
  const out = rewriteDomain(input, { nics: [nic('net1')], vmiInterfaceOrder: ['net1', 'default'] });
  assert.deepEqual(ifaceList(out), ['vhostuser ua-net1', 'ethernet ua-default']);
  assert.equal(one(vhostIface(out, 'net1'), 'address')!.getAttribute('bus'), '0x01');
  assert.equal(one(vhostIface(out, 'net1'), 'target'), undefined);
});

test('private memory access, also per NUMA cell, becomes shared', () => {
  const input = `<domain type="kvm"><name>x</name><memory unit="b">1073741824</memory><memoryBacking><access mode="private"></access></memoryBacking><devices></devices><cpu><numa><cell id="0" cpus="0-1" memory="1048576" unit="KiB" memAccess="private"></cell><cell id="1" cpus="2-3" memory="1048576" unit="KiB"></cell></numa></cpu></domain>`;
  const out = rewriteDomain(input, { nics: [nic('net1')], vmiInterfaceOrder: ['net1'] });
  const root = dom(out);
  assert.equal(one(root, 'memoryBacking/access')!.getAttribute('mode'), 'shared');
  assert.equal(kids(one(root, 'memoryBacking')!, 'access').length, 1);
  const cells = kids(one(root, 'cpu/numa')!, 'cell');
  assert.deepEqual(cells.map((c) => c.getAttribute('memAccess')), ['shared', null]);
  assert.ok(!out.includes('\n'), 'a compact document stays compact');
});

test('a document written with self-closing tags (libvirt style) gets self-closing new elements', () => {
  const input = "<domain type='kvm'>\n  <name>x</name>\n  <memory unit='KiB'>1048576</memory>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    <disk type='file' device='disk'>\n      <source file='/x.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>\n</domain>\n";
  const out = rewriteDomain(input, { nics: [nic('net1')], vmiInterfaceOrder: ['net1'] });
  assert.match(out, /\n {4}<interface type="vhostuser">\n {6}<source type="unix" path="[^"]+" mode="server"\/>\n/);
  assert.deepEqual(ifaceList(out), ['vhostuser ua-net1']);
  // the NIC goes first among the devices, after the emulator
  const devs = Array.from(one(dom(out), 'devices')!.childNodes).filter((n) => n.nodeType === 1).map((n) => (n as Element).localName);
  assert.deepEqual(devs, ['emulator', 'interface', 'disk']);
});

test('without NICs to add the text is returned as it came', () => {
  const input = fixture('domain-one-first.xml');
  assert.equal(rewriteDomain(input, { nics: [], vmiInterfaceOrder: [] }), input);
});

test('XML that is not a libvirt domain is refused, saying why', () => {
  assert.throws(() => parseDomain('<domain><name>x</name>'), (e: unknown) => e instanceof ValidationError && e.field === 'domainXML' && /well-formed/.test(e.message));
  assert.throws(() => parseDomain('<network><name>x</name></network>'), /expected a libvirt <domain>/);
});
