// vio4wd as virtio-forwarder with a real guest: the agent (real DPDK engine), a QEMU guest on a
// relay made by ZeroMQ port control, VFs that are DPDK tap devices PCI addresses stand for.
// REMOVE takes only the VF away: ADD of another VF under the running, pinging guest, and the
// guest never reconnects.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { Guest } from '../helpers/guest.js';

interface RelayJson {
  id: number;
  vf?: { pci_addr_str?: string };
  vf_to_vm: { internal_state: string };
  vm_to_vf: { internal_state: string; pkts_rx_from_vm?: number; pkts_dropped_vf_not_connected?: number };
}

let ns: Netns;
let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;
let guest: Guest | undefined;
let sockDir: string;
let ipc: string;

before(async () => {
  ns = await Netns.create('dropinq');
  tmp = testTempDir('dropinq');
  sockDir = join(tmp.path, 'sock');
  ipc = join(tmp.path, 'ipc');
  agent = await AgentProcess.start({
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: sockDir },
      control: { ipcDir: ipc },
      metrics: { address: '127.0.0.1:9467' },
      sriov: {
        standIns: {
          '0000:00:11.1': 'net_tap_q1,iface=vfq1',
          '0000:00:11.2': 'net_tap_q2,iface=vfq2',
        },
      },
    },
    workDir: tmp.path,
    netns: ns,
  });
});

after(async () => {
  await guest?.stop();
  if (agent && agent.exitCode === null) await agent.stop();
  await ns?.destroy();
  tmp?.remove();
});

const stats = async (id: number): Promise<RelayJson | undefined> =>
  (JSON.parse(await agent!.cli('stats', '--ipc-dir', ipc, '--relay', String(id), '--json')) as RelayJson[])[0];

/** The peer behind a VF: 10.0.0.1 on the tap, with one MAC whichever VF it is behind. */
async function peerOn(ifname: string): Promise<void> {
  await ns.exec('ip', ['link', 'set', ifname, 'address', '02:00:00:00:00:01']);
  await ns.addAddress(ifname, '10.0.0.1/24');
  await ns.linkUp(ifname);
}

test('REMOVE then ADD of another VF under a pinging guest: the guest never reconnects, pings resume', async () => {
  const a = agent!;
  assert.match(await a.cli('relay', 'add', '--ipc-dir', ipc, '--id', '1', '--pci', '0000:00:11.1'), /relay 1: added 0000:00:11\.1/);
  await peerOn('vfq1');
  const sock = join(sockDir, 'virtio-forwarder1.sock');
  guest = await Guest.start({
    name: 'swap', netns: ns,
    nics: [{ socketPath: sock, ip: '10.0.0.2/24', mac: '52:54:00:00:01:02' }],
    job: { kind: 'shell' },
  });
  await guest.waitForReady();
  const from = await guest.startPing({ peer: '10.0.0.1', intervalS: 0.2 });
  await guest.waitForPings(3, 60_000, from);
  const connectedLogs = () => a.logs().filter((l) => l.relay === 'relay-1' && typeof l.guestConnected === 'string').map((l) => `${String(l.guestConnected)}/${String(l.reason)}`);
  assert.deepEqual(connectedLogs(), ['False/WaitingForGuest', 'True/GuestConnected']);

  // REMOVE: the VF goes, the socket and the guest stay
  assert.match(await a.cli('relay', 'rm', '--ipc-dir', ipc, '--id', '1', '--pci', '0000:00:11.1'), /relay 1: removed/);
  assert.ok(existsSync(sock), 'the socket stays');
  assert.equal(await ns.hasLink('vfq1'), false, 'the VF is closed');
  let s = await stats(1);
  assert.equal(s?.vf?.pci_addr_str ?? '', '');
  assert.deepEqual([s?.vf_to_vm.internal_state, s?.vm_to_vf.internal_state], ['DPDK_UNINIT', 'VIRTIO_READY']);
  // the guest goes on sending; its packets are dropped as not connected
  await new Promise((r) => setTimeout(r, 500)); // replies already under way arrive
  const lineAtRemove = guest.lines.length;
  await new Promise((r) => setTimeout(r, 1000));
  s = await stats(1);
  assert.ok((s?.vm_to_vf.pkts_dropped_vf_not_connected ?? 0) > 0, JSON.stringify(s));
  assert.equal(guest.pingsSince(lineAtRemove).length, 0, 'no replies without a VF');

  // ADD of another VF under the same number: attached in place, pings resume
  assert.match(await a.cli('relay', 'add', '--ipc-dir', ipc, '--id', '1', '--pci', '0000:00:11.2'), /relay 1: added 0000:00:11\.2/);
  await peerOn('vfq2');
  await guest.waitForPings(3, 60_000, lineAtRemove);
  assert.equal((await a.cli('relay', 'query-pci', '--ipc-dir', ipc, '--socket', sock)).trim(), '0000:00:11.2');
  s = await stats(1);
  assert.deepEqual([s?.vf?.pci_addr_str, s?.vf_to_vm.internal_state, s?.vm_to_vf.internal_state], ['0000:00:11.2', 'DPDK_READY', 'VIRTIO_READY']);
  // the guest never left: one connection for the whole test
  assert.deepEqual(connectedLogs(), ['False/WaitingForGuest', 'True/GuestConnected'], a.output.slice(-3000));
  assert.doesNotMatch(a.output, /"relay":"relay-1"[^\n]*"msg":"relay (removed|detached)/);
  const summary = await guest.stopPing(from);
  assert.ok(summary.received >= 6, JSON.stringify(summary));
});
