// virtio-forwarder's OVSDB port control against a real ovsdb-server (Debian's openvswitch, the
// Open_vSwitch schema) and the agent on the real DPDK engine: `ovs-vsctl add-port` with
// external_ids:virtio_forwarder=<id> relays the Interface's VF, `del-port` takes it off, and
// the agent follows an ovsdb-server restart. The VF netdev lives in a fake sysfs (its PCI
// address), and that address stands for a DPDK tap device.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, spawnTracked, testTempDir, type TrackedProcess } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';
import { SysfsTree } from '../helpers/sysfs.js';
import { until as waitUntil } from '../helpers/wait.js';

interface RelayJson {
  id: number;
  vf?: { pci_addr_str?: string };
  vf_to_vm: { internal_state: string };
}

let ns: Netns;
let tmp: { path: string; remove: () => void };
let sys: SysfsTree;
let agent: AgentProcess | undefined;
let server: TrackedProcess | undefined;
let db: string;
let sock: string;
let ipc: string;

function startServer(): TrackedProcess {
  return spawnTracked('ovsdb-server', [`--remote=punix:${sock}`, '--no-chdir', `--unixctl=${join(tmp.path, 'ovsdb.ctl')}`, `--log-file=${join(tmp.path, 'ovsdb.log')}`, db], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function until(what: string, f: () => Promise<boolean>, ms = 20_000): Promise<void> {
  await waitUntil(what, f, { timeoutMs: ms, intervalMs: 200, detail: () => agent?.output.slice(-3000) ?? '' });
}

/** ovs-vsctl's separator between commands of one transaction. */
const AND = '--';
const vsctl = (...args: string[]) => execFileSync('ovs-vsctl', [`--db=unix:${sock}`, '--no-wait', '--timeout=10', ...args], { encoding: 'utf8' });
const relays = async (): Promise<RelayJson[]> => JSON.parse(await agent!.cli('relay', 'ls', '--ipc-dir', ipc, '--json')) as RelayJson[];
const vfOf = async (id: number) => (await relays()).find((r) => r.id === id)?.vf?.pci_addr_str ?? '';

before(async () => {
  ns = await Netns.create('ovsdb');
  tmp = testTempDir('ovsdb');
  db = join(tmp.path, 'conf.db');
  sock = join(tmp.path, 'db.sock');
  ipc = join(tmp.path, 'ipc');
  execFileSync('ovsdb-tool', ['create', db, '/usr/share/openvswitch/vswitch.ovsschema']);
  server = startServer();
  await until('ovsdb-server socket', async () => existsSync(sock));
  vsctl('init');
  vsctl('add-br', 'br-vf');
  // the VF netdev "vfo1" of PCI function 0000:00:13.1, as sysfs shows a VF's netdev
  sys = SysfsTree.create();
  sys.pciDevice('0000:00:13.1', { driver: 'vfio-pci' }).netdev('0000:00:13.1', 'vfo1');
  agent = await AgentProcess.start({
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: join(tmp.path, 'sock') },
      control: { ipcDir: ipc, portControl: '', ovsdb: sock },
      metrics: { address: '127.0.0.1:9469' },
      sriov: { sysRoot: sys.root, standIns: { '0000:00:13.1': 'net_tap_o1,iface=tapo1' } },
    },
    workDir: tmp.path,
    netns: ns,
  });
});

after(async () => {
  if (agent && agent.exitCode === null) await agent.stop();
  await server?.stop();
  await ns?.destroy();
  sys?.cleanup();
  tmp?.remove();
});

test('ovs-vsctl add-port with external_ids:virtio_forwarder relays the VF; del-port takes it off', async () => {
  assert.deepEqual(await relays(), []);
  vsctl('add-port', 'br-vf', 'vfo1', AND, 'set', 'Interface', 'vfo1', 'external_ids:virtio_forwarder=4');
  await until('relay 4 with the VF of vfo1', async () => (await vfOf(4)) === '0000:00:13.1');
  assert.equal(await ns.hasLink('tapo1'), true, 'the VF (its stand-in) is open');
  assert.ok(existsSync(join(tmp.path, 'sock', 'virtio-forwarder4.sock')));

  vsctl('del-port', 'br-vf', 'vfo1');
  await until('relay 4 without its VF', async () => (await vfOf(4)) === '');
  assert.equal(await ns.hasLink('tapo1'), false, 'the VF is closed');
  // as virtio-forwarder: the VF goes, the relay's socket stays for the guest
  assert.equal((await relays()).find((r) => r.id === 4)?.vf_to_vm.internal_state, 'DPDK_UNINIT');
});

test('an ovsdb-server restart is survived: the agent reconnects and follows the table again', async () => {
  await server!.stop();
  await server!.exited;
  await until('the agent noticed', async () => /no connection to ovsdb-server/.test(agent!.output));
  server = startServer();
  await until('ovsdb-server socket', async () => existsSync(sock));
  await until('the agent reconnected', async () => /reconnected to ovsdb-server/.test(agent!.output));
  vsctl('add-port', 'br-vf', 'vfo1', AND, 'set', 'Interface', 'vfo1', 'external_ids:virtio_forwarder=4');
  await until('relay 4 has its VF again', async () => (await vfOf(4)) === '0000:00:13.1');
  // a value that is no relay number is named in the log and changes nothing
  vsctl('set', 'Interface', 'vfo1', 'external_ids:virtio_forwarder=x');
  await until('the bad value logged', async () => /external_ids:virtio_forwarder is not a relay number/.test(agent!.output));
  await until('relay 4 lost its VF (the key is no relay number)', async () => (await vfOf(4)) === '');
  assert.equal(agent!.exitCode, null);
});
