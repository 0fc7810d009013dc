// RelayManager and the engine's VF and guest events, against the in-memory engine (what the real engine does is in test/integration/engine.vf-loss.test.ts and
// migration.qemu.test.ts): a lost VF is re-attached with backoff while the relay stays attached
// and the guest connected; guest arrival and departure become GuestConnected reasons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayManager } from '../../src/relay/index.js';
import { guestCondition } from '../../src/relay/conditions.js';
import type { RelayInfo } from '../../src/engine/types.js';
import type { RelayStatus } from '../../src/relay/index.js';
import { MemEngine } from '../helpers/mem-engine.js';
import { silentLogger } from '../../src/util/log.js';
import { until as waitUntil } from '../helpers/wait.js';

const cond = (s: RelayStatus | undefined, type: string) => s?.conditions.find((c) => c.type === type);

async function until(what: string, f: () => boolean, ms = 2000): Promise<void> {
  await waitUntil(what, f, { timeoutMs: ms, intervalMs: 5 });
}

test('a lost VF: relay Failed and unhealthy with VFRemoved, guest still connected, re-attached with backoff when back, never detached', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-relay-'));
  const engine = new MemEngine();
  const mgr = new RelayManager({ engine, logger: silentLogger(), defaults: { socketDir: dir }, retry: { initialMs: 10, maxMs: 40 } });
  try {
    mgr.apply({ name: 'a', origin: 'config', vf: { devargs: 'net_af_packet0,iface=v0' }, vhostUser: { mode: 'server' } });
    await mgr.settled();
    engine.fire({ type: 'guest-connected', relayId: 1, arrival: 'started' });
    assert.equal(mgr.get('a')?.phase, 'Ready');

    engine.vfMissing = true;
    engine.loseVf(1);
    let s = mgr.get('a');
    assert.equal(s?.phase, 'Failed');
    assert.equal(s?.healthy, false);
    assert.equal(cond(s, 'VFAttached')?.reason, 'VFRemoved');
    assert.match(cond(s, 'VFAttached')?.message ?? '', /interface-gone/);
    assert.equal(cond(s, 'Ready')?.reason, 'VFRemoved');
    assert.equal(cond(s, 'GuestConnected')?.status, 'True', 'the guest stays connected');
    await until('two failed attempts', () => engine.attachCalls >= 2);
    assert.match(cond(mgr.get('a'), 'VFAttached')?.message ?? '', /last attempt: .*rte_dev_probe/);

    engine.vfMissing = false;
    await until('Ready again', () => mgr.get('a')?.phase === 'Ready');
    s = mgr.get('a');
    assert.equal(s?.healthy, true);
    assert.equal(cond(s, 'VFAttached')?.reason, 'Attached');
    assert.ok(!engine.calls.some((c) => c.startsWith('rm')), 'the relay itself was never removed');
    assert.deepEqual(engine.calls, ['add 1']);
  } finally {
    await mgr.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GuestConnected tells a migration: in progress, migrating out, migrated in', () => {
  const base: RelayInfo = {
    id: 1, socketPath: '/x', mode: 'server', queues: 1, vhostQueues: 1, numaNode: 0, portId: 0, portName: 'p', mac: '02:00:00:00:00:01',
    linkUp: true, guestConnected: true, enabledQueues: 2, cpus: { vfToVm: 1, vmToVf: 1 },
  };
  const features = { mergeableRxBuffers: true, tso: false, checksum: false, multiqueue: false, guestAnnounce: true, bits: '0x1' };
  assert.deepEqual(guestCondition({ ...base, guestArrival: 'started' }).slice(0, 2), ['True', 'GuestConnected']);
  assert.deepEqual(guestCondition({ ...base, guestFeatures: { ...features, dirtyLogging: true } }).slice(0, 2), ['True', 'MigrationInProgress']);
  assert.deepEqual(guestCondition({ ...base, guestArrival: 'migrated-in' }).slice(0, 2), ['True', 'MigratedIn']);
  const gone = { ...base, guestConnected: false, enabledQueues: 0 };
  assert.deepEqual(guestCondition({ ...gone, guestDeparture: 'migrating-out', socketConnected: true }).slice(0, 2), ['False', 'MigratingOut']);
  assert.match(guestCondition({ ...gone, guestDeparture: 'migrating-out', socketConnected: false })[2], /closed the socket/);
  assert.deepEqual(guestCondition({ ...gone, guestDeparture: 'stopped' }).slice(0, 2), ['False', 'WaitingForGuest']);
});
