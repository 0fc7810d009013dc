// The upgrade handover's protocol and its two sides (src/agent/handover.ts, upgrade.ts) with two
// relay managers on in-memory engines that share one set of VFs: a VF is held by one engine at a
// time, as a real VF (or a tap stand-in) is. The real agents and DPDK: test/integration/handover.*.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayManager, type RelaySpec } from '../../src/relay/index.js';
import type { RelayConfig, RelayInfo, VfSource } from '../../src/engine/types.js';
import { VioError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';
import { HandoverClient, HandoverServer, otherFilePrefix } from '../../src/agent/handover.js';
import { serveHandover, takeOver } from '../../src/agent/upgrade.js';
import { MemEngine } from '../helpers/mem-engine.js';

/** An engine whose VFs come from a node-wide set: adding a relay whose VF another engine holds
 *  fails with EBUSY, as opening a VF another process has open does. */
class NodeEngine extends MemEngine {
  constructor(
    private readonly held: Map<string, NodeEngine>,
    readonly log: string[],
    readonly label: string,
  ) {
    super();
  }
  private hold(vf: string): void {
    const owner = this.held.get(vf);
    if (owner && owner !== this) throw new VioError('EBUSY', `${vf} is held by the ${owner.label} agent`);
    this.held.set(vf, this);
    this.log.push(`${this.label} attach ${vf}`);
  }
  override async addRelay(cfg: RelayConfig): Promise<RelayInfo> {
    // no VF: the socket alone (a client-mode relay taken over: the VF comes by attachVf)
    if (cfg.vf) this.hold(cfg.vf.devargs ?? '');
    else this.log.push(`${this.label} socket ${cfg.socketPath}`);
    return super.addRelay(cfg);
  }
  override async attachVf(id: number, vf: VfSource): Promise<RelayInfo> {
    this.hold(vf.devargs ?? '');
    const info = await super.attachVf(id, vf);
    this.configs.set(id, { ...this.configs.get(id)!, vf });
    return info;
  }
  override async removeRelay(id: number): Promise<void> {
    const vf = this.configs.get(id)?.vf?.devargs ?? '';
    await super.removeRelay(id);
    if (this.held.get(vf) === this) this.held.delete(vf);
    this.log.push(`${this.label} release ${vf}`);
  }
}

const spec = (name: string): RelaySpec => ({ name, origin: 'config', vf: { devargs: `net_tap_${name},iface=${name}` }, vhostUser: { mode: 'client' } });

function node(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-handover-'));
  const held = new Map<string, NodeEngine>();
  const log: string[] = [];
  const manager = (label: string) => {
    const engine = new NodeEngine(held, log, label);
    const mgr = new RelayManager({ engine, logger: silentLogger(), defaults: { socketDir: dir }, retry: { initialMs: 20, maxMs: 50 } });
    t.after(() => mgr.close());
    return { engine, mgr };
  };
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, held, log, manager, socket: join(dir, '.vio4wd-handover.sock') };
}

const ready = (m: RelayManager) => m.list().filter((s) => s.phase === 'Ready').map((s) => s.name).sort();

async function oldAgent(t: TestContext, n: ReturnType<typeof node>, names: string[]) {
  const old = n.manager('old');
  for (const x of names) old.mgr.apply(spec(x));
  await old.mgr.settled();
  const calls: string[] = [];
  const server = await serveHandover(
    n.socket,
    {
      filePrefix: 'vio4wd',
      relays: old.mgr,
      reconciler: () => ({ pause: () => calls.push('pause'), resume: () => calls.push('resume'), entries: () => [{ key: 'vms/r1', spec: spec('r1') }] }),
      holds: () => [{ freeze: () => calls.push('freeze'), thaw: () => calls.push('thaw') }, undefined],
      drain: async () => {
        calls.push('drain');
      },
    },
    silentLogger(),
  );
  assert.ok(server, 'the old agent serves the handover socket');
  t.after(() => server.close());
  return { ...old, server, calls };
}

test('a new agent takes every relay over, one at a time: released by the old one, then attached', async (t) => {
  const n = node(t);
  const old = await oldAgent(t, n, ['r1', 'r2', 'r3']);
  assert.equal(statSync(n.socket).mode & 0o777, 0o600, 'the handover socket is root-only');

  const client = await HandoverClient.connect(n.socket);
  assert.ok(client);
  assert.equal(client.hello.filePrefix, 'vio4wd');
  assert.deepEqual(client.hello.relays.map((r) => r.spec.name).sort(), ['r1', 'r2', 'r3']);
  assert.equal(client.hello.relays.find((r) => r.spec.name === 'r1')?.key, 'vms/r1', 'a VirtioRelay carries its key');
  assert.deepEqual(old.calls, ['pause', 'freeze'], 'the old agent freezes its relay set, device plugin view and port control when the handover begins');

  const fresh = n.manager('new');
  const taken = await takeOver(client, fresh.mgr, silentLogger());
  assert.equal(taken.length, 3);
  assert.deepEqual(ready(fresh.mgr), ['r1', 'r2', 'r3']);
  assert.deepEqual(old.mgr.list(), [], 'the old agent holds no relay');
  assert.deepEqual(old.calls, ['pause', 'freeze', 'drain'], 'the old agent drained its ports after the last relay');
  // one at a time: each VF left the old agent just before the new one attached it
  for (const x of ['r1', 'r2', 'r3']) {
    const vf = `net_tap_${x},iface=${x}`;
    const rel = n.log.indexOf(`old release ${vf}`);
    assert.ok(rel >= 0 && n.log[rel + 1] === `new attach ${vf}`, n.log.join('\n'));
  }
  assert.deepEqual(n.log.slice(3).map((l) => l.split(' ').slice(0, 2).join(' ')), ['old release', 'new attach', 'old release', 'new attach', 'old release', 'new attach']);
  assert.equal(await HandoverClient.connect(n.socket), undefined, 'the old agent stopped serving the handover socket');
});

test('the old agent killed midway: the new one runs every relay it had', async (t) => {
  const n = node(t);
  const relays = ['r1', 'r2', 'r3'].map((name) => ({ spec: spec(name) }));
  // an old agent that answers hello, releases r1 and then dies (its connection ends)
  const server = createServer((sock: Socket) => {
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      for (let nl; (nl = buf.indexOf('\n')) >= 0; ) {
        const m = JSON.parse(buf.slice(0, nl)) as { op: string; name?: string };
        buf = buf.slice(nl + 1);
        if (m.op === 'hello') sock.write(`${JSON.stringify({ op: 'hello', pid: 1, filePrefix: 'vio4wd-b', relays })}\n`);
        else if (m.op === 'release' && m.name === 'r1') sock.write(`${JSON.stringify({ op: 'released', name: 'r1', ms: 1 })}\n`);
        else {
          // it dies: its connection and its listener close
          sock.destroy();
          server.close();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(n.socket, r));
  chmodSync(n.socket, 0o600); // root-only, as HandoverServer makes it
  t.after(() => server.close());
  const client = await HandoverClient.connect(n.socket);
  assert.ok(client);
  assert.equal(otherFilePrefix(client.hello.filePrefix), 'vio4wd', 'the new agent takes the other file prefix of the pair');
  const fresh = n.manager('new');
  const taken = await takeOver(client, fresh.mgr, silentLogger());
  assert.equal(taken.length, 3);
  await fresh.mgr.settled();
  assert.deepEqual(ready(fresh.mgr), ['r1', 'r2', 'r3']);
});

test('the new agent killed midway: the old one runs again what it had released', async (t) => {
  const n = node(t);
  const old = await oldAgent(t, n, ['r1', 'r2', 'r3']);
  const client = await HandoverClient.connect(n.socket);
  assert.ok(client);
  const fresh = n.manager('new');
  assert.equal(await client.release('r1'), true);
  fresh.mgr.apply(client.hello.relays.find((r) => r.spec.name === 'r1')!.spec);
  await fresh.mgr.settled();
  assert.equal(await client.release('r2'), true);
  // the new agent dies: its connection ends and the kernel frees its VFs
  client.abandon();
  await fresh.mgr.close();
  await waitFor(() => ready(old.mgr).length === 3, () => `old agent runs ${ready(old.mgr).join(',')}`);
  assert.deepEqual(ready(old.mgr), ['r1', 'r2', 'r3']);
  assert.deepEqual(old.calls, ['pause', 'freeze', 'thaw', 'resume'], 'the old agent thawed, resumed its reconciler and did not drain');
  // and it serves the next attempt
  const again = await HandoverClient.connect(n.socket);
  assert.ok(again);
  assert.equal(again.hello.relays.length, 3);
  again.abandon();
});

test('a relay the old agent refuses to release: what was taken goes back, the start fails', async (t) => {
  const n = node(t);
  const old = await oldAgent(t, n, ['r1', 'r2']);
  const client = await HandoverClient.connect(n.socket);
  assert.ok(client);
  client.hello.relays.push({ spec: spec('ghost') });
  const fresh = n.manager('new');
  await assert.rejects(takeOver(client, fresh.mgr, silentLogger()), /handover from agent \d+ failed at relay ghost: no relay named "ghost"/);
  assert.deepEqual(fresh.mgr.list(), []);
  await waitFor(() => ready(old.mgr).length === 2, () => `old agent runs ${ready(old.mgr).join(',')}`);
});

test('one handover at a time; a second server on a live socket is refused', async (t) => {
  const n = node(t);
  await oldAgent(t, n, ['r1']);
  const first = await HandoverClient.connect(n.socket);
  assert.ok(first);
  await assert.rejects(HandoverClient.connect(n.socket), /handover refused: a handover is already in progress/);
  const other = new HandoverServer(n.socket, { filePrefix: 'x', begin: async () => [], release: async () => undefined, finish: async () => undefined, abort: async () => undefined }, silentLogger());
  await assert.rejects(other.listen(), /is served by another agent/);
  first.abandon();
});

test('a handover socket another user could have made is not trusted: its relays are never taken', async (t) => {
  // the peer's hello carries relay specs the new agent applies as root (VF devargs, socket
  // paths and owners): a socket planted in a directory others can write to must not be asked
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-handover-planted-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const planted = { op: 'hello', pid: 1, filePrefix: 'x', relays: [{ spec: { ...spec('evil'), vf: { devargs: 'net_pcap0,tx_pcap=/etc/passwd' } } }] };
  const server = createServer((s: Socket) => s.once('data', () => s.end(`${JSON.stringify(planted)}\n`)));
  t.after(() => server.close());
  const path = join(dir, '.vio4wd-handover.sock');
  await new Promise<void>((res) => server.listen(path, res));
  chmodSync(path, 0o600);
  chmodSync(dir, 0o777); // as /tmp/virtio-forwarder made by someone else, or group/world-writable
  await assert.rejects(HandoverClient.connect(path), /handover socket .*\.vio4wd-handover\.sock: its directory .* is writable by others/);
  chmodSync(dir, 0o755);
  chmodSync(path, 0o666);
  await assert.rejects(HandoverClient.connect(path), /handover socket .* has mode 0666/);
  chownSync(path, 65534, 65534);
  chmodSync(path, 0o600);
  await assert.rejects(HandoverClient.connect(path), /handover socket .* is owned by uid 65534/);
  chownSync(path, process.getuid!(), process.getgid!());
  const ok = await HandoverClient.connect(path);
  assert.equal(ok?.hello.relays[0]?.spec.name, 'evil', 'a root-only socket in a root-only directory is asked');
  ok?.abandon();
  // none at all: no agent serves it
  assert.equal(await HandoverClient.connect(join(dir, 'none.sock')), undefined);
});

test('the handover socket is root-only from the moment it appears, and close() removes only its own file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-handover-own-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, '.vio4wd-handover.sock');
  const source = { filePrefix: 'x', begin: async () => [], release: async () => undefined, finish: async () => undefined, abort: async () => undefined };
  // a lax umask: a socket made at the path itself would be 0777 until the chmod
  const umask = process.umask(0);
  t.after(() => process.umask(umask));
  const seen = new Set<string>();
  let watching = true;
  const watch = (async () => {
    while (watching) {
      try {
        seen.add((statSync(path).mode & 0o777).toString(8));
      } catch {
        // not there yet
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const old = new HandoverServer(path, source, silentLogger());
  await old.listen();
  watching = false;
  await watch;
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual([...seen].filter((m) => m !== '600'), [], 'the socket never showed another mode at its path');
  assert.deepEqual(readdirSync(dir), ['.vio4wd-handover.sock'], 'no temporary directory left beside it');
  // after a handover the new agent serves its own socket at the same path; the old agent's
  // close() (its shutdown, later) must leave that one alone
  unlinkSync(path);
  const next = new HandoverServer(path, source, silentLogger());
  await next.listen();
  t.after(() => next.close());
  old.close();
  assert.ok(await HandoverClient.connect(path).then((c) => (c?.abandon(), !!c)), "the new agent's socket is still served");
  next.close();
  assert.deepEqual(readdirSync(dir), [], 'its own socket goes with it');
});

test('file prefixes alternate between two', () => {
  assert.equal(otherFilePrefix('vio4wd'), 'vio4wd-b');
  assert.equal(otherFilePrefix('vio4wd-b'), 'vio4wd');
  assert.equal(otherFilePrefix('-b'), 'vio4wd');
});

async function waitFor(cond: () => boolean, detail: () => string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out: ${detail()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
