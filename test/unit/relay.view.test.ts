// FreezableView (src/relay/view.ts): what the device plugin sees of the relays while an upgrade
// handover moves them to a new agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FreezableView, RelayManager, type RelaySpec } from '../../src/relay/index.js';
import { silentLogger } from '../../src/util/log.js';
import { MemEngine } from '../helpers/mem-engine.js';

const spec = (name: string): RelaySpec => ({ name, origin: 'kubernetes', vf: { devargs: `net_tap_${name},iface=${name}` }, vhostUser: { mode: 'client' } });

test('frozen, the view shows the relays as they were and tells of nothing; thawed, of every difference', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-view-'));
  const relays = new RelayManager({ engine: new MemEngine(), logger: silentLogger(), defaults: { socketDir: dir } });
  t.after(async () => {
    await relays.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const view = new FreezableView(relays);
  const events: string[] = [];
  view.on('change', (s) => events.push(`change ${s.name} ${s.phase}`));
  view.on('removed', (n) => events.push(`removed ${n}`));
  relays.apply(spec('a'));
  relays.apply(spec('b'));
  await relays.settled();
  assert.ok(events.includes('change a Ready'), 'events pass while not frozen');
  const before = view.list();

  view.freeze();
  events.length = 0;
  await relays.remove('a', { handover: true });
  await relays.remove('b', { handover: true });
  assert.equal(events.length, 0, `nothing told while frozen: ${events.join(', ')}`);
  assert.deepEqual(view.list(), before, 'the relays as they were when it froze');
  assert.equal(view.get('a')?.phase, 'Ready');
  assert.equal(view.get('a')?.socketPath, before.find((s) => s.name === 'a')?.socketPath);

  // the handover was given up: b runs here again, a does not
  relays.apply(spec('b'));
  await relays.settled();
  view.thaw();
  assert.deepEqual(view.list().map((s) => s.name), ['b']);
  assert.equal(view.get('a'), undefined);
  assert.ok(events.includes('removed a'), `a's removal told on thaw: ${events.join(', ')}`);
  assert.ok(events.includes('change b Ready'), `b's status told on thaw: ${events.join(', ')}`);
});
