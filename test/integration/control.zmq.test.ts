// The control server on real ZeroMQ IPC endpoints (with an in-memory agent behind it), driven by
// a zeromq client and by the vio4wd CLI: every operation, the request checks, the IPC directory's
// permissions, stale and stolen sockets, slow and hung requests.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import {
  ControlServer,
  PortControlRequest_Op as Op,
  codec,
  endpointsInDir,
  errnoName,
  startControlServer,
  type ControlEndpoints,
} from '../../src/control/index.js';
import { MemoryBackend, decodeReply, rawRequest, runControlScenario } from '../helpers/control.js';

const tmp = mkdtempSync(join(tmpdir(), 'vio4wd-control-'));
const ipcDir = join(tmp, 'run', 'virtio-forwarder');
const VFS = ['0000:05:00.1', '0000:05:00.2', '0000:05:00.3'];
const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  }),
);
const daemonGid = Number(readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('daemon:'))?.split(':')[2]);

let backend: MemoryBackend;
let server: ControlServer;
let endpoints: ControlEndpoints;

before(async () => {
  backend = new MemoryBackend({ vfs: VFS, socketDir: tmp, cores: [1, 2] });
  server = await startControlServer({ backend, logger, endpoints: endpointsInDir(ipcDir, true), ipcGroup: 'daemon', maxRelays: 64 });
  endpoints = server.endpoints;
});

after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('serves the four endpoints at virtio-forwarder\'s file names in the IPC directory', () => {
  assert.deepEqual(endpoints, {
    portControl: `ipc://${ipcDir}/port_control`,
    stats: `ipc://${ipcDir}/stats`,
    coreSched: `ipc://${ipcDir}/core_sched`,
    config: `ipc://${ipcDir}/config`,
  });
});

test('the IPC directory is mode 0750 and the sockets 0660, owned by the configured group', () => {
  assert.ok(Number.isInteger(daemonGid), 'the test needs a "daemon" group in /etc/group');
  const d = statSync(ipcDir);
  assert.equal((d.mode & 0o777).toString(8), '750');
  assert.equal(d.gid, daemonGid);
  for (const name of ['port_control', 'stats', 'core_sched', 'config']) {
    const s = statSync(join(ipcDir, name));
    assert.ok(s.isSocket(), name);
    assert.equal((s.mode & 0o777).toString(8), '660', name);
    assert.equal(s.gid, daemonGid, name);
  }
});

test('every control operation, request check and reply rule (runControlScenario)', async () => {
  const steps = await runControlScenario(endpoints, { vfs: VFS, relayId: 3, maxRelays: 64, dynamicSocketDir: tmp });
  // the optional parts ran too: core scheduling, config, bonds, dynamic sockets
  for (const part of [/^core scheduling: UPDATE/, /^config:/, /^ADD a bond/, /^ADD_SOCK/, /^REMOVE_SOCK/]) {
    assert.ok(steps.some((st) => part.test(st)), `no step matching ${part}`);
  }
  assert.equal(backend.relays.size, 0, 'the scenario leaves no relay behind');
});

test('ADD_SOCK ignores virtio_id with a warning in the log', async () => {
  const path = join(tmp, 'dyn-warn.sock');
  const pc = codec('virtioforwarder.PortControlRequest');
  const res = decodeReply('virtioforwarder.PortControlResponse', await rawRequest(endpoints.portControl as string, pc.encode({ op: Op.ADD_SOCK, vhost_path: path, virtio_id: 12, pci_addrs: [{ domain: 0, bus: 5, slot: 0, function: 3 }] })));
  assert.equal(res.status, 1);
  const call = backend.calls.filter(([m]) => m === 'addSocket').at(-1)?.[1] as Record<string, unknown>;
  assert.deepEqual(call, { vhostPath: path, pciAddrs: ['0000:05:00.3'] });
  assert.ok(logs.some((l) => l.level === 40 && /virtio_id ignored/.test(l.msg) && l.component === 'control'), 'no warning logged');
  decodeReply('virtioforwarder.PortControlResponse', await rawRequest(endpoints.portControl as string, pc.encode({ op: Op.REMOVE_SOCK, vhost_path: path, pci_addrs: [{ domain: 0, bus: 5, slot: 0, function: 3 }] })));
});

test('a multi-frame request gets one error reply and the socket keeps serving', async () => {
  const st = codec('virtioforwarder.StatsRequest').encode({});
  const r = decodeReply('virtioforwarder.StatsResponse', await rawRequest(endpoints.stats as string, [st, st]));
  assert.equal(r.status, 400);
  const ok = decodeReply('virtioforwarder.StatsResponse', await rawRequest(endpoints.stats as string, st));
  assert.equal(ok.status, 0);
});

test('a slow request on one endpoint does not hold up the others', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const original = backend.relayStates.bind(backend);
  backend.relayStates = (ids) => gate.then(() => original(ids)) as never;
  try {
    let statsDone = false;
    const slow = rawRequest(endpoints.stats as string, codec('virtioforwarder.StatsRequest').encode({})).then((b) => {
      statsDone = true;
      return b;
    });
    const q = decodeReply('virtioforwarder.PortControlResponse', await rawRequest(endpoints.portControl as string, codec('virtioforwarder.PortControlRequest').encode({ op: Op.QUERY_PCI, vhost_path: '/nowhere' })));
    assert.equal(errnoName(q.error_code as number), 'ENOENT');
    const cores = decodeReply('virtioforwarder.CoreSchedResponse', await rawRequest(endpoints.coreSched as string, codec('virtioforwarder.CoreSchedRequest').encode({ op: 1 })));
    assert.deepEqual(cores.eal_cores, [1, 2]);
    assert.equal(statsDone, false, 'the stats request should still be waiting on the backend');
    release();
    assert.equal(decodeReply('virtioforwarder.StatsResponse', await slow).status, 0);
  } finally {
    backend.relayStates = original;
  }
});

test('a backend call that never returns is answered with ETIMEDOUT, and the endpoint goes on', async () => {
  const dir = join(tmp, 'hung');
  const hung = new MemoryBackend({ vfs: VFS, socketDir: tmp });
  hung.addVf = () => new Promise(() => undefined) as never;
  const s = await startControlServer({ backend: hung, endpoints: { portControl: `ipc://${dir}/port_control`, stats: '', coreSched: '' }, requestTimeoutMs: 300 });
  try {
    const pc = codec('virtioforwarder.PortControlRequest');
    const r = decodeReply('virtioforwarder.PortControlResponse', await rawRequest(s.endpoints.portControl as string, pc.encode({ op: Op.ADD, virtio_id: 1, pci_addrs: [{ domain: 0, bus: 5, slot: 0, function: 1 }] })));
    assert.equal(errnoName(r.error_code as number), 'ETIMEDOUT');
    const q = decodeReply('virtioforwarder.PortControlResponse', await rawRequest(s.endpoints.portControl as string, pc.encode({ op: Op.QUERY_PCI, vhost_path: '/x' })));
    assert.equal(errnoName(q.error_code as number), 'ENOENT');
  } finally {
    await s.close();
  }
  assert.equal(existsSync(dir), false, 'the IPC directory it created is removed on close');
});

test('a second server on the same endpoints is refused; the first keeps serving', async () => {
  const second = new ControlServer({ backend, endpoints });
  await assert.rejects(second.start(), (e: { code: string; message: string }) => e.code === 'EADDRINUSE' && /served by another process/.test(e.message));
  const ok = decodeReply('virtioforwarder.StatsResponse', await rawRequest(endpoints.stats as string, codec('virtioforwarder.StatsRequest').encode({})));
  assert.equal(ok.status, 0);
});

/** A unix socket file nobody listens on, as a killed daemon leaves behind. */
function staleSocket(path: string): void {
  execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', path]);
  assert.ok(statSync(path).isSocket());
}

test('a stale socket file is replaced; a file that is not a socket is refused', async () => {
  const path = join(tmp, 'stale_stats');
  staleSocket(path);
  const s = await startControlServer({ backend, endpoints: { stats: `ipc://${path}`, portControl: '', coreSched: '' } });
  try {
    const ok = decodeReply('virtioforwarder.StatsResponse', await rawRequest(`ipc://${path}`, codec('virtioforwarder.StatsRequest').encode({})));
    assert.equal(ok.status, 0);
  } finally {
    await s.close();
  }
  const file = join(tmp, 'not-a-socket');
  writeFileSync(file, 'x');
  await assert.rejects(startControlServer({ backend, endpoints: { stats: `ipc://${file}`, portControl: '', coreSched: '' } }), /not a socket/);
  await assert.rejects(startControlServer({ backend, endpoints: { stats: `ipc://${file}2`, portControl: `ipc://${file}2`, coreSched: '' } }), /also the/);
  await assert.rejects(startControlServer({ backend, endpoints: { stats: `ipc://${tmp}/g`, portControl: '', coreSched: '' }, ipcGroup: 'no-such-group-vio4wd' }), /no group named "no-such-group-vio4wd"/);
});

test('virtio-forwarder\'s own client stack (protoc-generated Python, pyzmq) gets complete replies', async () => {
  // Debian's protoc, python3-protobuf and python3-zmq (scripts/bootstrap.d/40-control.sh).
  const pb2 = join(tmp, 'pb2');
  execFileSync('mkdir', ['-p', pb2]);
  const protoDir = join(import.meta.dirname, '..', '..', 'proto', 'virtioforwarder');
  execFileSync('protoc', [`--proto_path=${protoDir}`, `--python_out=${pb2}`, 'virtioforwarder.proto']);
  const script = join(import.meta.dirname, '..', 'fixtures', 'control', 'vf_client.py');
  const out = await new Promise<string>((resolve, reject) => {
    execFile('/usr/bin/python3', [script, pb2, ipcDir, '0000:05:00.2', '9'], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out) as Record<string, unknown> & { stats: Record<string, unknown>[] };
  assert.deepEqual(r.add, { status: 'OK' });
  assert.deepEqual(r.add_again_strict, { status: 'ERROR', error_code: 17, error_code_source: 'addVf: relay 9 already has 0000:05:00.2; send conditional=true to accept a request that changes nothing' });
  assert.equal(r.stats_status, 'OK');
  assert.equal(r.stats.length, 1);
  const st = r.stats[0] as Record<string, unknown>;
  assert.equal(st.id, 9);
  assert.equal(st.pci, '0000:05:00.2');
  assert.equal(st.socket, join(tmp, 'virtio-forwarder9.sock'));
  assert.ok((st.up_rate as number) > 0 && (st.up_rx as number) > 0);
  assert.equal(st.down_state, 'VIRTIO_READY');
  assert.deepEqual(r.query, { status: 'OK', query_string: '0000:05:00.2' });
  assert.equal((r.no_virtio_id as { error_code: number }).error_code, 22);
  assert.deepEqual(r.eal_cores, [1, 2]);
  assert.deepEqual(r.cpu_map, [[9, 1, 1]]);
  assert.deepEqual(r.remove, { status: 'OK' });
  assert.equal(r.garbage, 'ERROR');
});

// --- the CLI (bin/vio4wd.js, built from src/) -------------------------------------------------

const root = join(import.meta.dirname, '..', '..');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.VIO4WD_IPC_DIR;
    execFile(process.execPath, [join(root, 'bin', 'vio4wd.js'), ...args], { cwd: root, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.equal(r.code, 0, `vio4wd ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

test('CLI: build', () => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' });
});

test('CLI: relay add, ls, query-pci, stats and rm through the agent\'s endpoints', async () => {
  const d = ['--ipc-dir', ipcDir];
  assert.equal(await ok(['relay', 'add', '--pci', '0000:05:00.1', '--id', '5', ...d]), 'relay 5: added 0000:05:00.1\n');
  const ls = await ok(['relay', 'ls', ...d]);
  assert.match(ls.split('\n')[0] ?? '', /^ID\s+ACTIVE\s+VF\s+SOCKET/);
  const sock = join(tmp, 'virtio-forwarder5.sock');
  assert.match(ls, new RegExp(`^\\s*5\\s+yes\\s+0000:05:00\\.1\\s+${sock.replace(/[.]/g, '\\.')}`, 'm'));
  const lsJson = JSON.parse(await ok(['relay', 'ls', '--json', ...d])) as { id: number; vhost: { vhost_socket_name: string } }[];
  assert.deepEqual(lsJson.map((r) => [r.id, r.vhost.vhost_socket_name]), [[5, sock]]);
  assert.equal(await ok(['relay', 'query-pci', '--socket', sock, ...d]), '0000:05:00.1\n');

  const table = await ok(['stats', '--relay', '5', '--delay', '50', ...d]);
  assert.match(table, /^RELAY\s+DIR\s+STATE\s+CPU\s+RX PKTS/);
  assert.match(table, /^\s*5\s+vf->vm\s+DPDK_READY\s+1\s+\d+/m);
  assert.match(table, /^\s*5\s+vm->vf\s+VIRTIO_READY\s+1\s+\d+/m);
  const js = JSON.parse(await ok(['stats', '--json', '--relay', '5', '--relay', '900', '--delay', '50', ...d])) as Record<string, Record<string, number>>[];
  assert.equal(js.length, 1, 'relay 900 is out of range (maxRelays 64) and left out');
  assert.ok((js[0]?.vf_to_vm?.pkt_rate_rx_from_vf ?? 0) > 0, 'rate over the delay');
  assert.ok((js[0]?.vf_to_vm?.pkts_rx_from_vf ?? 0) > 0);

  const watch = (await ok(['stats', '--watch', '1', '--count', '2', '--json', '--delay', '0', ...d])).trim().split('\n');
  assert.equal(watch.length, 2);
  for (const line of watch) assert.deepEqual((JSON.parse(line) as { relays: { id: number }[] }).relays.map((r) => r.id), [5]);

  const again = await cli(['relay', 'add', '--pci', '0000:05:00.1', '--id', '5', '--strict', ...d]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /relay add refused by the agent: addVf: relay 5 already has 0000:05:00\.1.*\[EEXIST\]/);
  assert.equal((await cli(['relay', 'add', '--pci', '0000:05:00.1', '--id', '5', ...d])).code, 0, 'conditional by default');

  assert.equal(await ok(['relay', 'rm', '--pci', '0000:05:00.1', '--id', '5', ...d]), 'relay 5: removed 0000:05:00.1\n');
  assert.equal(await ok(['relay', 'ls', ...d]), 'no relays\n');
});

test('CLI: bonds and dynamic sockets', async () => {
  const d = ['--ipc-dir', ipcDir];
  await ok(['relay', 'add', '--pci', '0000:05:00.2', '--pci', '0000:05:00.3', '--id', '6', '--bond-name', 'net_bonding_t', '--bond-mode', '4', ...d]);
  const bond = backend.calls.filter(([m]) => m === 'addVf').at(-1)?.[1];
  assert.deepEqual(bond, { virtioId: 6, pciAddrs: ['0000:05:00.2', '0000:05:00.3'], bondName: 'net_bonding_t', bondMode: 4 });
  assert.equal(await ok(['relay', 'rm', '--id', '6', '--bond-name', 'net_bonding_t', ...d]), 'relay 6: removed net_bonding_t\n');
  const sock = join(tmp, 'dyn-cli.sock');
  assert.equal(await ok(['relay', 'add', '--socket', sock, '--pci', '0000:05:00.1', ...d]), `socket ${sock}: added 0000:05:00.1\n`);
  assert.equal(await ok(['relay', 'query-pci', '--socket', sock, '--json', ...d]), `${JSON.stringify({ socket: sock, pci: '0000:05:00.1' })}\n`);
  await ok(['relay', 'rm', '--socket', sock, '--pci', '0000:05:00.1', ...d]);
  assert.equal(backend.relays.size, 0);
});

test('CLI: bad flags are refused naming the flag', async () => {
  const d = ['--ipc-dir', ipcDir];
  const noId = await cli(['relay', 'add', '--pci', '0000:05:00.1', ...d]);
  assert.equal(noId.code, 1);
  assert.match(noId.stderr, /--id: give the relay number/);
  const badPci = await cli(['relay', 'add', '--pci', 'eth0', '--id', '1', ...d]);
  assert.equal(badPci.code, 1);
  assert.match(badPci.stderr, /"eth0" is not a PCI address/);
  const badMode = await cli(['relay', 'add', '--pci', '0000:05:00.1', '--pci', '0000:05:00.2', '--id', '1', '--bond-mode', '9', ...d]);
  assert.equal(badMode.code, 1);
  assert.match(badMode.stderr, /--bond-mode takes a whole number 0\.\.6/);
});

test('CLI: clear errors when no agent is there', async () => {
  const missing = await cli(['stats', '--ipc-dir', join(tmp, 'nothing-here')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no agent at ipc:\/\/.*nothing-here\/stats: .* does not exist\. Is the agent running/);
  const stale = join(tmp, 'dead-agent');
  staleSocket(stale);
  const dead = await cli(['relay', 'ls', '--endpoint', `ipc://${stale}`, '--timeout', '300']);
  assert.equal(dead.code, 1);
  assert.match(dead.stderr, /no reply from ipc:\/\/.*dead-agent within 300 ms.*\[ETIMEDOUT\]/);
  // --endpoint wins over --ipc-dir
  assert.equal(await ok(['relay', 'ls', '--ipc-dir', join(tmp, 'nothing-here'), '--endpoint', endpoints.stats as string]), 'no relays\n');
});

test('who may connect: a world-writable IPC directory without the sticky bit is refused, tcp:// and abstract sockets are logged as open to every local user', async () => {
  // anyone may write the directory: anyone could swap the socket for a symlink before its mode is set
  const open = join(tmp, 'open');
  execFileSync('install', ['-d', '-m', '0777', open]);
  await assert.rejects(
    startControlServer({ backend, endpoints: { stats: `ipc://${open}/stats`, portControl: '', coreSched: '' } }),
    (e: { code: string; message: string }) => e.code === 'EPERM' && /writable by every user without the sticky bit \(mode 0777\).*chmod 0750/.test(e.message),
  );
  assert.ok(!existsSync(join(open, 'stats')), 'nothing bound there');
  // sticky (as /tmp): others cannot remove or rename root's socket
  const sticky = join(tmp, 'sticky');
  execFileSync('install', ['-d', '-m', '1777', sticky]);
  const s = await startControlServer({ backend, logger, endpoints: { stats: `ipc://${sticky}/stats`, portControl: 'tcp://127.0.0.1:0', coreSched: 'ipc://@vio4wd-test-core-sched' } });
  try {
    assert.equal((statSync(join(sticky, 'stats')).mode & 0o777).toString(8), '660');
    const warned = logs.filter((l) => /every local user may connect/.test(l.msg)).map((l) => l.endpoint);
    assert.deepEqual(warned.sort(), ['coreSched', 'portControl']);
  } finally {
    await s.close();
  }
});
