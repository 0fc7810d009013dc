// The VF MAC path against the real iproute2, in a network namespace this test creates. The
// machine has no SR-IOV NIC, so the real `ip link set <pf> vf N mac` is driven on a veth, where
// the kernel refuses it: the test checks that the refusal reaches the user with a useful fix.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { discoverPfs, execRunner, readPfVfMacs, setVfMac, type CommandRunner } from '../../src/sriov/index.js';
import { VioError } from '../../src/util/errors.js';

const NS = `vio4wd-sriov-${process.pid}`;

execFileSync('ip', ['netns', 'add', NS]);
after(() => {
  execFileSync('ip', ['netns', 'del', NS]);
});
execFileSync('ip', ['-n', NS, 'link', 'add', 'pf0', 'type', 'veth', 'peer', 'name', 'pf0p']);

/** The real runner, with every ip call placed in the test's namespace. */
const inNs: CommandRunner = (cmd, args) => execRunner(cmd, cmd === 'ip' ? ['-n', NS, ...args] : args);

test('setting a VF MAC on a device without SR-IOV fails with the kernel\'s reason and a fix', async () => {
  await assert.rejects(setVfMac('pf0', 0, '52:54:00:12:34:56', { runner: inNs }), (err: unknown) => {
    assert.ok(err instanceof VioError);
    assert.equal(err.code, 'EVFMAC');
    assert.match(err.message, /ip link set dev pf0 vf 0 mac 52:54:00:12:34:56 failed: RTNETLINK answers: Operation not supported/);
    assert.match(err.message, /pf0 does not support VF settings.*sriov_numvfs/);
    return true;
  });
});

test('a PF name that does not exist is reported as such', async () => {
  await assert.rejects(setVfMac('nosuchpf', 0, '52:54:00:12:34:56', { runner: inNs }), /Cannot find device "nosuchpf"; there is no interface nosuchpf/);
});

test('the VF table of a device without VFs is read from ip\'s JSON as empty', async () => {
  const macs = await readPfVfMacs('pf0', { runner: inNs });
  assert.equal(macs.size, 0);
  await assert.rejects(readPfVfMacs('nosuchpf', { runner: inNs }), /ip -j link show dev nosuchpf failed \(exit 1\): Device "nosuchpf" does not exist/);
});

test('discovery on this machine finds exactly the netdevs whose device has sriov_totalvfs', async () => {
  const expected = readdirSync('/sys/class/net')
    .filter((n) => existsSync(`/sys/class/net/${n}/device/sriov_totalvfs`))
    .sort();
  const pfs = await discoverPfs();
  assert.deepEqual(pfs.map((p) => p.name).sort(), expected);
});
