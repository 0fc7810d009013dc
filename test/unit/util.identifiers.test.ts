// Identifiers (PCI addresses, MACs, CPU lists) parse in one place, and the JSON schemas of the
// agent config and the CRDs accept what the parsers accept, within the engine's limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAC_PATTERN,
  PCI_ADDRESS_PATTERN,
  formatCpuList,
  formatPciAddress,
  isMacAddress,
  isPciAddress,
  parseCpuList,
  parseMac,
  parsePciAddress,
  pciFields,
} from '../../src/util/identifiers.js';
import { MAX_DEVARGS, MAX_QUEUES, MTU_MAX, MTU_MIN, RELAY_ID_MAX } from '../../src/util/limits.js';
import { virtioRelaySpecSchema } from '../../src/kube/crd-schemas.js';
import { relaySchema } from '../../src/agent/config/schema.js';
import { ValidationError } from '../../src/util/errors.js';

test('a PCI address in its canonical form, short form and the wire\'s loose form', () => {
  assert.equal(parsePciAddress('0000:3B:02.1'), '0000:3b:02.1');
  assert.equal(parsePciAddress(' 3b:02.1 '), '0000:3b:02.1', 'without a domain: domain 0000');
  assert.throws(() => parsePciAddress('3b:02.1', 'f', { requireDomain: true }), /f: "3b:02\.1" is not a PCI address/);
  assert.throws(() => parsePciAddress('3b:2.1', 'f'), (e: unknown) => e instanceof ValidationError && e.field === 'f');
  assert.throws(() => parsePciAddress('0000:3b:20.1', 'f'), /device number 20 is above 1f/);
  assert.throws(() => parsePciAddress(7, 'f'), /got number/);
  assert.deepEqual(pciFields('0:5:8.1'), { domain: 0, bus: 5, slot: 8, function: 1 });
  assert.equal(pciFields('0000:05:20.1'), undefined, 'slot above 1f');
  assert.equal(formatPciAddress({ domain: 1, bus: 0xaf, slot: 0x1f, function: 7 }), '0001:af:1f.7');
});

test('isPciAddress and the schemas\' pattern accept the same strings', () => {
  const re = new RegExp(PCI_ADDRESS_PATTERN);
  for (const s of ['0000:03:00.1', '0000:AF:1f.7', '03:00.1', '0000:03:00.8', '0000:3:00.1', 'eth0', '0000:03:00.1 ']) {
    assert.equal(isPciAddress(s.trim()), re.test(s.trim()), s);
  }
});

test('MACs: unicast, lower-cased; the pattern agrees with isMacAddress', () => {
  assert.equal(parseMac('52-54-00-AB-CD-EF'), '52:54:00:ab:cd:ef');
  assert.throws(() => parseMac('01:00:5e:00:00:01', 'spec.mac'), /spec\.mac: 01:00:5e:00:00:01 is a multicast address/);
  assert.throws(() => parseMac('00:00:00:00:00:00'), /all-zero/);
  const re = new RegExp(MAC_PATTERN);
  for (const s of ['52:54:00:12:34:56', '52:54:00:12:34', '52-54-00-12-34-56', 'zz:54:00:12:34:56']) assert.equal(isMacAddress(s), re.test(s), s);
});

test('CPU lists: lists, ranges, masks; sorted without duplicates; errors name the field', () => {
  assert.deepEqual(parseCpuList('8,0-3,2'), [0, 1, 2, 3, 8]);
  assert.deepEqual(parseCpuList('0x3a'), [1, 3, 4, 5]);
  assert.throws(() => parseCpuList('3-1', 'engine.workerCpus'), /engine\.workerCpus: range 3-1 runs backwards: write 1-3 \(bad CPU list "3-1"\)/);
  assert.throws(() => parseCpuList('', 'f'), /is empty/);
  assert.throws(() => parseCpuList('1024', 'f'), /above 1023/);
});

test('CPU lists a kernel wrote: flag words skipped, cpulist groups, nothing throws', () => {
  assert.deepEqual(parseCpuList('domain,managed_irq,2-3', 'isolcpus', { kernel: true }), [2, 3]);
  assert.deepEqual(parseCpuList('0-15:2/4', 'cpus', { kernel: true }), [0, 1, 4, 5, 8, 9, 12, 13]);
  assert.deepEqual(parseCpuList(null, 'cpus', { kernel: true }), []);
  assert.equal(formatCpuList([5, 0, 1, 2, 2]), '0-2,5');
});

test('the CRD and the agent config schema take their ranges from limits.ts (the engine\'s)', () => {
  const crd = virtioRelaySpecSchema.properties;
  const cfg = relaySchema.properties;
  assert.deepEqual([crd.mtu.minimum, crd.mtu.maximum], [MTU_MIN, MTU_MAX]);
  assert.deepEqual([cfg.mtu.minimum, cfg.mtu.maximum], [MTU_MIN, MTU_MAX]);
  assert.equal(crd.vf.properties.devargs.maxLength, MAX_DEVARGS);
  assert.equal(cfg.vf.properties.devargs.maxLength, MAX_DEVARGS);
  assert.equal(cfg.queues.maximum, MAX_QUEUES);
  assert.equal(cfg.id.maximum, RELAY_ID_MAX);
  assert.equal(crd.vf.properties.pciAddress.pattern, PCI_ADDRESS_PATTERN);
  assert.equal(cfg.mac.pattern, MAC_PATTERN);
});
