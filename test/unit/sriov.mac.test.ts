// Setting a VF's MAC through its PF with `ip link set <pf> vf <n> mac <mac>`; the command runner
// here is a small in-memory stand-in for iproute2 (the real ip runs in
// test/integration/sriov.iproute2.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setVfMac, readPfVfMacs, type CommandRunner } from '../../src/sriov/index.js';
import { VioError } from '../../src/util/errors.js';

/** A PF named ens1f0 with `vfs` VFs; `ignore` makes the driver accept but not apply a MAC. */
function fakeIp(vfs: number, opts: { ignore?: boolean; noVfinfo?: boolean } = {}) {
  const macs = Array.from({ length: vfs }, () => '00:00:00:00:00:00');
  const calls: string[][] = [];
  const runner: CommandRunner = async (cmd, args) => {
    calls.push([cmd, ...args]);
    const a = args.join(' ');
    let m = /^-j link show dev (\S+)$/.exec(a);
    if (m) {
      if (m[1] !== 'ens1f0') return { code: 1, stdout: '', stderr: `Device "${m[1]}" does not exist.\n` };
      const link: Record<string, unknown> = { ifindex: 4, ifname: 'ens1f0', address: '3c:fd:fe:00:00:01' };
      if (!opts.noVfinfo) link.vfinfo_list = macs.map((address, vf) => ({ vf, link_type: 'ether', address }));
      return { code: 0, stdout: JSON.stringify([link]), stderr: '' };
    }
    m = /^link set dev (\S+) vf (\d+) mac (\S+)$/.exec(a);
    if (m) {
      if (m[1] !== 'ens1f0') return { code: 1, stdout: '', stderr: `Cannot find device "${m[1]}"\n` };
      if (Number(m[2]) >= vfs) return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Invalid argument\n' };
      if (!opts.ignore) macs[Number(m[2])] = m[3]!;
      return { code: 0, stdout: '', stderr: '' };
    }
    return { code: 255, stdout: '', stderr: `unexpected: ${a}` };
  };
  return { runner, calls, macs };
}

test('the MAC is set with ip link on the PF and read back from its VF table', async () => {
  const ip = fakeIp(4);
  const r = await setVfMac('ens1f0', 2, '52:54:00:AB:CD:EF', { runner: ip.runner });
  assert.deepEqual(r, { mac: '52:54:00:ab:cd:ef', verified: true });
  assert.deepEqual(ip.calls, [
    ['ip', 'link', 'set', 'dev', 'ens1f0', 'vf', '2', 'mac', '52:54:00:ab:cd:ef'],
    ['ip', '-j', 'link', 'show', 'dev', 'ens1f0'],
  ]);
  assert.equal((await readPfVfMacs('ens1f0', { runner: ip.runner })).get(2), '52:54:00:ab:cd:ef');
});

test('a MAC that the driver accepted but did not apply is an error', async () => {
  await assert.rejects(setVfMac('ens1f0', 1, '52:54:00:00:00:01', { runner: fakeIp(4, { ignore: true }).runner }), (err: unknown) => {
    assert.ok(err instanceof VioError && err.code === 'EVFMAC');
    assert.match(err.message, /still has MAC 00:00:00:00:00:00 after setting 52:54:00:00:00:01/);
    return true;
  });
});

test('a PF whose VF table is not shown: set, but reported unverified', async () => {
  const r = await setVfMac('ens1f0', 1, '52:54:00:00:00:01', { runner: fakeIp(4, { noVfinfo: true }).runner });
  assert.equal(r.verified, false);
});

test('ip failures become errors that quote ip and say what to check', async () => {
  const ip = fakeIp(4);
  await assert.rejects(setVfMac('ens9f9', 0, '52:54:00:00:00:01', { runner: ip.runner }), /ip link set dev ens9f9 vf 0 mac 52:54:00:00:00:01 failed: Cannot find device "ens9f9"; there is no interface ens9f9/);
  await assert.rejects(setVfMac('ens1f0', 7, '52:54:00:00:00:01', { runner: ip.runner }), /RTNETLINK answers: Invalid argument; ens1f0 has no VF 7.*sriov_numvfs/);
});

test('bad input is refused before ip runs', async () => {
  const ip = fakeIp(4);
  await assert.rejects(setVfMac('ens1f0', 0, 'ff:ff:ff:ff:ff:ff', { runner: ip.runner }), /mac: ff:ff:ff:ff:ff:ff is a multicast address/);
  await assert.rejects(setVfMac('ens1f0', -1, '52:54:00:00:00:01', { runner: ip.runner }), /vfIndex: -1 is not a VF index/);
  assert.deepEqual(ip.calls, []);
});
