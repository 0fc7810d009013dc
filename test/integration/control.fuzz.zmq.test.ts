// Hostile input on real ZeroMQ endpoints: more than 10,000 malformed, truncated, random,
// wrong-type, huge, multi-part and oversized requests. Every one must get a reply that decodes
// completely (errors for what cannot be parsed), and afterwards the server must still do its job.
// Repeat a run with VIO4WD_FUZZ_SEED=<seed>.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Request } from 'zeromq';
import {
  codec,
  endpointsInDir,
  startControlServer,
  type ControlServer,
  type EndpointName,
} from '../../src/control/index.js';
import { HANDLERS } from '../../src/control/server.js';
import { MemoryBackend, decodeReply, fuzzCases, rawRequest, runControlFuzz, runControlScenario } from '../helpers/control.js';

const FRAMES = 12_000;
const SEED = Number(process.env.VIO4WD_FUZZ_SEED ?? 0x5eed_4fd);
const tmp = mkdtempSync(join(tmpdir(), 'vio4wd-fuzz-'));
const VFS = ['0000:05:00.1', '0000:05:00.2', '0000:05:00.3'];
const MAX_BYTES = Object.fromEntries(Object.entries(HANDLERS).map(([k, h]) => [k, h.maxRequestBytes])) as Record<EndpointName, number>;
// ZeroMQ drops (without a reply) anything above this; the fuzzer stays below it.
const HARD_CAP = 512 * 1024;

let server: ControlServer;
let backend: MemoryBackend;

before(async () => {
  backend = new MemoryBackend({ vfs: [...VFS, ...Array.from({ length: 256 }, (_, i) => `0000:${i.toString(16).padStart(2, '0')}:00.0`)], socketDir: tmp, cores: [1] });
  server = await startControlServer({ backend, endpoints: endpointsInDir(join(tmp, 'ipc'), true), maxRelays: 64, maxMessageBytes: HARD_CAP });
});

after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test(`${FRAMES} malformed and hostile requests each get a complete reply (seed ${SEED})`, async (t) => {
  const cases = fuzzCases(['portControl', 'stats', 'coreSched', 'config'], FRAMES, SEED, 4096).filter((c) => c.frames.reduce((n, f) => n + f.length, 0) < HARD_CAP);
  assert.ok(cases.length >= 10_000, `only ${cases.length} cases below the hard cap`);
  const report = await runControlFuzz(server.endpoints, cases, { maxRequestBytes: MAX_BYTES, maxRelays: 64, maxBondMembers: 8 });
  t.diagnostic(`sent ${report.sent}, replies ${report.replies}, refused ${report.refused}, by kind ${JSON.stringify(report.byKind)}`);
  assert.equal(report.replies, report.sent);
  assert.ok(report.sent >= 10_000);
  // every kind of hostile input was tried, and most of it had to be refused
  for (const kind of ['random', 'truncated', 'bitflip', 'wrong-type', 'huge-repeated', 'oversized', 'multipart', 'empty', 'hostile']) {
    assert.ok((report.byKind[kind] ?? 0) > 100, `too few ${kind} cases`);
  }
  assert.ok(report.refused > report.sent / 2, `refused ${report.refused} of ${report.sent}`);
});

test('after the fuzzing the server still serves every operation correctly', async () => {
  // fuzzing may have added relays through requests that happened to be valid: start clean
  backend.relays.clear();
  const steps = await runControlScenario(server.endpoints, { vfs: VFS, relayId: 7, maxRelays: 64, dynamicSocketDir: tmp });
  assert.ok(steps.includes('REMOVE the VF'));
});

test('a message above the hard size cap is dropped by ZeroMQ, and the server goes on', async () => {
  const big = new Uint8Array(HARD_CAP + 1024);
  const sock = new Request({ linger: 0, sendTimeout: 2000, receiveTimeout: 500 });
  sock.connect(server.endpoints.stats as string);
  try {
    await sock.send(big);
    await assert.rejects(sock.receive(), (e: { code?: string }) => e.code === 'EAGAIN');
  } finally {
    sock.close();
  }
  const ok = decodeReply('virtioforwarder.StatsResponse', await rawRequest(server.endpoints.stats as string, codec('virtioforwarder.StatsRequest').encode({})));
  assert.equal(ok.status, 0);
});

test('clients that send and vanish do not wedge the endpoints', async () => {
  for (let i = 0; i < 200; i++) {
    const sock = new Request({ linger: 0 });
    sock.connect(server.endpoints.portControl as string);
    await sock.send(codec('virtioforwarder.PortControlRequest').encode({ op: 4, vhost_path: '/nowhere' }));
    sock.close();
  }
  const q = decodeReply('virtioforwarder.PortControlResponse', await rawRequest(server.endpoints.portControl as string, codec('virtioforwarder.PortControlRequest').encode({ op: 4, vhost_path: '/nowhere' })));
  assert.equal(q.status, 0);
  assert.equal(q.error_code, 2);
});
