// The VF MAC path against the real iproute2, in a network namespace this test creates. The
// machine has no SR-IOV NIC, so the real `ip link set <pf> vf N mac` is driven on a veth, where
// the kernel refuses it: the test checks that the refusal reaches the user with a useful fix.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { NetlinkVfProgrammer, StandInVfProgrammer, discoverPfs, execRunner, readPfVfMacs, setVfMac, type CommandRunner } from '../../src/sriov/index.js';
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

test('the VF programmer for pod attachments (netlink) fails here with the kernel\'s reason and a fix', async () => {
  const p = new NetlinkVfProgrammer({ runner: inNs });
  const port = { kind: 'pci' as const, pciAddress: '0000:3b:02.0', pfName: 'pf0', vfIndex: 0 };
  await assert.rejects(p.program(port, { mac: '52:54:00:12:34:56', vlan: 100, spoofchk: true }), (err: unknown) => {
    assert.ok(err instanceof VioError);
    assert.equal(err.code, 'EVFPROG');
    assert.match(err.message, /ip link set dev pf0 vf 0 mac 52:54:00:12:34:56 vlan 100 spoofchk on failed: RTNETLINK answers: Operation not supported/);
    assert.match(err.message, /pf0 does not take VF settings.*sriov_numvfs.*vio4wd doctor/);
    return true;
  });
  await assert.rejects(p.program({ ...port, pfName: 'nosuchpf' }, { mac: '52:54:00:12:34:56', vlan: 0, spoofchk: true }), /Cannot find device "nosuchpf"; there is no interface nosuchpf/);
  assert.equal(await p.readMac(port), undefined, 'a device without VFs reports no VF MAC');
  // a DPDK virtual device has no PF: the error says what to use instead
  await assert.rejects(p.program({ kind: 'devargs', devargs: 'net_af_packet0,iface=x' }, { mac: '52:54:00:12:34:56', vlan: 0, spoofchk: true }), /not an SR-IOV VF.*vfProgrammer: standin/);
});

test('the stand-in VF: its bridge port passes only the frames for the MAC programmed on it', async () => {
  // no IPv6 chatter (router solicitations, MLD) in the counts below
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  // vf (the relay's side) ~ vfp, a port of bridge sw with the peer's address on the bridge
  for (const a of [
    ['link', 'add', 'sw', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'],
    ['link', 'add', 'vfs', 'type', 'veth', 'peer', 'name', 'vfp'],
    ['link', 'set', 'vfp', 'master', 'sw'],
    ['addr', 'add', '10.9.0.1/24', 'dev', 'sw'],
  ]) execFileSync('ip', ['-n', NS, ...a]);
  for (const i of ['sw', 'vfs', 'vfp']) execFileSync('ip', ['-n', NS, 'link', 'set', i, 'up']);
  const p = new StandInVfProgrammer({ runner: (cmd, args) => execRunner('ip', ['netns', 'exec', NS, cmd, ...args]) });
  const port = { kind: 'devargs' as const, devargs: 'net_af_packet_t,iface=vfs' };
  const a = '52:54:00:0a:00:01';
  const b = '52:54:00:0a:00:02';
  await p.program(port, { mac: a, vlan: 0, spoofchk: true });
  assert.equal(await p.readMac(port), a);
  await p.program(port, { mac: b, vlan: 0, spoofchk: true });
  assert.equal(await p.readMac(port), b, 'reprogramming replaces the MAC, it does not add one');
  const fdb = execFileSync('ip', ['netns', 'exec', NS, 'bridge', 'fdb', 'show', 'dev', 'vfp'], { encoding: 'utf8' });
  assert.ok(!fdb.includes(a), fdb);
  assert.match(fdb, new RegExp(`${b} sticky master sw static`), 'sticky: learning on another port cannot take the VF\'s MAC away');
  await new Promise((r) => setTimeout(r, 1000)); // links just came up: let their own chatter pass
  // what the port forwards: pings from the bridge to a neighbour with MAC a do not reach vfs, with b they do
  assert.equal(countQuiet(a), 0, 'frames for a MAC the VF does not hold are not delivered to it');
  assert.ok(countQuiet(b) >= 3, 'frames for the VF\'s MAC are');
  await assert.rejects(p.program(port, { mac: a, vlan: 5, spoofchk: true }), /cannot tag VLAN 5/);
  await assert.rejects(p.program({ kind: 'devargs', devargs: 'net_null0' }, { mac: a, vlan: 0, spoofchk: true }), /names no iface=/);

  function countQuiet(mac: string): number {
    execFileSync('ip', ['-n', NS, 'neigh', 'replace', '10.9.0.2', 'lladdr', mac, 'dev', 'sw', 'nud', 'permanent']);
    const rx = (): number => Number(execFileSync('ip', ['netns', 'exec', NS, 'cat', '/sys/class/net/vfs/statistics/rx_packets'], { encoding: 'utf8' }));
    const before = rx();
    try {
      execFileSync('ip', ['netns', 'exec', NS, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.9.0.2'], { stdio: 'ignore' });
    } catch {
      /* no reply: nobody answers on vf */
    }
    return rx() - before;
  }
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
