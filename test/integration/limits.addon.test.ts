// The engine's limits are written twice, in native/src/vio.h and src/util/limits.ts, because the
// control plane checks input before it reaches the addon. The built addon reports its own: they
// must agree, or the CRD, the config schema and the engine facade accept what the engine refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../../src/engine/native.js';
import * as limits from '../../src/util/limits.js';

test('src/util/limits.ts agrees with the limits the native addon reports (native/src/vio.h)', () => {
  const native = loadAddon().limits;
  assert.deepEqual(
    {
      maxRelays: limits.MAX_RELAYS,
      maxQueues: limits.MAX_QUEUES,
      maxWorkers: limits.MAX_WORKERS,
      maxBondMembers: limits.MAX_BOND_MEMBERS,
      pathMax: limits.MAX_SOCKET_PATH + 1,
      devargsMax: limits.MAX_DEVARGS + 1,
      mtuMin: limits.MTU_MIN,
      mtuMax: limits.MTU_MAX,
    },
    native,
  );
  assert.equal(limits.RELAY_ID_MAX, native.maxRelays - 1);
});
