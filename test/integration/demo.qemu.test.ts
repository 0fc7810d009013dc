// The README's main job, `npm run demo`, as the test suite runs it: a real agent (DPDK), a real
// QEMU guest on the relay socket pinging the peer behind the VF stand-in, and stats that agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

test('the standalone demo pings through the relay and cleans up after itself', () => {
  const netnsBefore = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.includes('demo')) : [];
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { encoding: 'utf8', timeout: 300_000 });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 0, out);
  assert.match(out, /\[demo\] ping: 5 sent, 5 received, 0 lost/);
  // the stats table: the relay moved packets both ways (ARP + ICMP), none dropped for a full queue
  const row = (dir: string) => {
    const m = new RegExp(`^\\s*1\\s+${dir}\\s+(\\S+)\\s+\\d+\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`, 'm').exec(out);
    assert.ok(m, `no stats row for ${dir} in:\n${out}`);
    return { state: m[1], rx: Number(m[2]), tx: Number(m[3]), dropFull: Number(m[5]) };
  };
  const up = row('vf->vm');
  const down = row('vm->vf');
  assert.ok(down.tx >= 5, `guest->VF forwarded ${down.tx} packets, want at least the 5 pings`);
  assert.ok(up.tx >= 5, `VF->guest forwarded ${up.tx} packets, want at least the 5 replies`);
  assert.equal(up.dropFull + down.dropFull, 0);
  // taken while the guest still runs: both directions ready (VF attached, guest connected)
  assert.deepEqual([up.state, down.state], ['DPDK_READY', 'VIRTIO_READY'], out);
  assert.match(out, /socket left behind: none/);
  const netnsAfter = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.includes('demo')) : [];
  assert.deepEqual(netnsAfter, netnsBefore, 'the demo namespace is gone');
});
