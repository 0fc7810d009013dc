// Pure logic of the engine facade: the EAL command line built from EngineOptions, and the
// argument checks that name the field at fault. (The engine itself: test/integration/engine.*.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowedCpus, buildEalArgs, validateEngineOptions, validateRelayConfig } from '../../src/engine/index.js';
import { parseCpuList } from '../../src/util/identifiers.js';
import { EngineError, fromNative } from '../../src/engine/errors.js';
import type { RelayConfig } from '../../src/engine/index.js';
import { ValidationError } from '../../src/util/errors.js';

test('CPU lists parse like the kernel writes them', () => {
  assert.deepEqual(parseCpuList('0-3,8,10-11'), [0, 1, 2, 3, 8, 10, 11]);
  assert.deepEqual(parseCpuList('1'), [1]);
  assert.throws(() => parseCpuList('a-b'), /bad CPU list/);
  assert.deepEqual(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-1\n'), [0, 1]);
});

test('EAL args: main lcore 0 on a free CPU, one worker lcore per worker CPU', () => {
  const plan = buildEalArgs({ workerCpus: [1], inMemory: true, noPci: true, filePrefix: 'p1' }, [0, 1]);
  assert.equal(plan.mainCpu, 0);
  assert.deepEqual(plan.args.slice(0, 4), ['--lcores', '0@0,1@1', '--main-lcore', '0']);
  assert.ok(plan.args.includes('--in-memory'));
  assert.ok(plan.args.includes('--no-pci'));
  assert.deepEqual(plan.args.slice(plan.args.indexOf('--file-prefix'), plan.args.indexOf('--file-prefix') + 2), ['--file-prefix', 'p1']);
  assert.ok(plan.args.includes('--log-level=5'));
});

test('EAL args: pinned to one CPU (taskset -c 1), the main lcore shares it with the worker', () => {
  const plan = buildEalArgs({ workerCpus: [1] }, [1]);
  assert.equal(plan.mainCpu, 1);
  assert.equal(plan.args[1], '0@1,1@1');
});

test('EAL args: several workers, explicit main CPU, memory and extra arguments last', () => {
  const plan = buildEalArgs(
    { workerCpus: [2, 3], mainCpu: 0, hugeDir: '/dev/hugepages', socketMemMb: [512, 0], logLevel: 7, extraEalArgs: ['--iova-mode=va'] },
    [0, 1, 2, 3],
  );
  assert.equal(plan.args[1], '0@0,1@2,2@3');
  assert.deepEqual(plan.workerLcores, [1, 2]);
  assert.ok(plan.args.join(' ').includes('--huge-dir /dev/hugepages'));
  assert.ok(plan.args.join(' ').includes('--socket-mem 512,0'));
  assert.equal(plan.args.at(-1), '--iova-mode=va');
  assert.ok(plan.args.includes('--log-level=7'));
});

test('EAL args: bad options name the field', () => {
  const bad: [object, RegExp][] = [
    [{ workerCpus: [] }, /^workerCpus: give at least one/],
    [{ workerCpus: [5] }, /^workerCpus: CPU 5 is not in this process's CPU affinity/],
    [{ workerCpus: [1, 1] }, /^workerCpus: duplicate CPU/],
    [{ workerCpus: [1], mainCpu: 9 }, /^mainCpu: CPU 9/],
    [{ workerCpus: [1], filePrefix: 'a b' }, /^filePrefix:/],
    [{ workerCpus: [1], hugeDir: 'rel' }, /^hugeDir:/],
    [{ workerCpus: [1], logLevel: 9 }, /^logLevel: 9 is out of range 1\.\.8/],
    [{ workerCpus: [1], socketMemMb: [-1] }, /^socketMemMb:/],
  ];
  for (const [opts, re] of bad) {
    assert.throws(() => buildEalArgs(opts as never, [0, 1]), (e: unknown) => e instanceof ValidationError && re.test(e.message), JSON.stringify(opts));
  }
});

test('engine options: descriptor counts and pool size are checked', () => {
  assert.doesNotThrow(() => validateEngineOptions({ workerCpus: [1], rxDescriptors: 512, poolQueuePairs: 64 }));
  assert.throws(() => validateEngineOptions({ workerCpus: [1], rxDescriptors: 100 }), /rxDescriptors: 100 is not a multiple of 32/);
  assert.throws(() => validateEngineOptions({ workerCpus: [1], txDescriptors: 8192 }), /txDescriptors: 8192 is not an integer in 64\.\.4096/);
  assert.throws(() => validateEngineOptions({ workerCpus: [1], poolQueuePairs: 0 }), /poolQueuePairs/);
  assert.doesNotThrow(() => validateEngineOptions({ workerCpus: [1], idleSweepMicros: 0 }));
  assert.throws(() => validateEngineOptions({ workerCpus: [1], idleSweepMicros: 20_000 }), /idleSweepMicros: 20000 is not an integer in 0\.\.10000/);
  assert.throws(() => validateEngineOptions({ workerCpus: [1], idleSweepMicros: 1.5 }), /idleSweepMicros/);
  assert.throws(() => validateEngineOptions({ workerCpus: [1], tso: 'yes' as never }), /tso: "yes" is not a boolean/);
});

test('relay config: every bad field is named, with the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-unit-'));
  try {
    const good: RelayConfig = { id: 3, vf: { devargs: 'net_tap0,iface=vf0' }, socketPath: join(dir, 'r3.sock'), mode: 'server', queues: 2 };
    assert.doesNotThrow(() => validateRelayConfig(good, [1]));
    assert.doesNotThrow(() => validateRelayConfig({ ...good, vf: { pciAddresses: ['0000:03:00.1', '0000:03:00.2'], bondMode: 4 } }, [1]));
    const cases: [Partial<RelayConfig> & Record<string, unknown>, string, RegExp][] = [
      [{ id: 1024 }, 'EINVAL', /^id: 1024 is not an integer in 0\.\.1023/],
      [{ id: -1 }, 'EINVAL', /^id:/],
      [{ queues: 33 }, 'EINVAL', /^queues: 33 is not an integer in 1\.\.32/],
      [{ queues: 0 }, 'EINVAL', /^queues:/],
      [{ vf: {} }, 'EINVAL', /^vf: give exactly one of vf\.pciAddresses and vf\.devargs/],
      [{ vf: { devargs: 'x', pciAddresses: ['0000:03:00.1'] } }, 'EINVAL', /^vf: give exactly one/],
      [{ vf: { pciAddresses: ['03:00.1'] } }, 'EINVAL', /^vf\.pciAddresses: "03:00\.1" is not a PCI address like 0000:03:00\.1/],
      [{ vf: { pciAddresses: ['0000:03:00.1', '0000:03:00.1'] } }, 'EINVAL', /listed twice/],
      [{ vf: { pciAddresses: ['0000:03:00.1', '0000:03:00.2'], bondMode: 7 } }, 'EINVAL', /^vf\.bondMode: 7/],
      [{ vf: { devargs: '' } }, 'EINVAL', /^vf\.devargs:/],
      [{ mode: 'both' as never }, 'EINVAL', /^mode: "both": use "server" or "client"/],
      [{ socketPath: 'relative.sock' }, 'EINVAL', /^socketPath: "relative\.sock" is not an absolute path/],
      [{ socketPath: join(dir, 'missing', 'x.sock') }, 'ENOENT', /^socketPath: directory .*missing does not exist; create it first/],
      [{ socketPath: '/' + 'x'.repeat(120) }, 'EINVAL', /at most 107/],
      [{ socketPerm: 0o10000 }, 'EINVAL', /^socketPerm:/],
      [{ mtu: 10000 }, 'EINVAL', /^mtu: 10000 is not an integer in 68\.\.9216/],
      [{ numaNode: 8 }, 'EINVAL', /^numaNode:/],
      [{ cpus: { vfToVm: 0 } }, 'EINVAL', /^cpus\.vfToVm: CPU 0 runs no worker \(worker CPUs: 1\)/],
    ];
    for (const [patch, code, re] of cases) {
      assert.throws(
        () => validateRelayConfig({ ...good, ...patch } as RelayConfig, [1]),
        (e: unknown) => (e as { code?: string }).code === code && re.test((e as Error).message),
        JSON.stringify(patch),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('native errors become EngineErrors with a known code', () => {
  const e = fromNative(Object.assign(new Error('relay 3: rte_eth_dev_start(port 0 net_tap0) failed: I/O error'), { code: 'EIO' }));
  assert.ok(e instanceof EngineError);
  assert.equal(e.code, 'EIO');
  assert.match(e.message, /rte_eth_dev_start/);
  assert.equal(fromNative(new Error('odd')).code, 'EIO');
  assert.equal(fromNative(Object.assign(new Error('x'), { code: 'ENOENT' })).code, 'ENOENT');
});
