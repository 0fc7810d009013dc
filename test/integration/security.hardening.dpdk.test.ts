// The agent on the real DPDK engine, started with an apiserver that never answers: it still
// runs its static relays and the relays of its checkpoint (skipping entries a crash left empty),
// sweeps device-info files an earlier, killed agent left behind, and a SIGTERM during that
// start-up cleans up (relays removed, sockets unlinked) and ends the process with status 0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testTempDir } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent.js';

let tmp: { path: string; remove: () => void };
let agent: AgentProcess | undefined;

before(() => {
  tmp = testTempDir('hardening');
});

after(async () => {
  if (agent && agent.exitCode === null) await agent.kill();
  tmp?.remove();
});

test('SIGTERM while the apiserver is unreachable cleans up; checkpoint junk and stale device-info files do not stop the start', async () => {
  const root = tmp.path;
  const sockets = join(root, 'sockets');
  const staticDir = join(root, 'static');
  const devinfo = join(root, 'devinfo');
  const plugins = join(root, 'plugins');
  for (const d of [sockets, devinfo, plugins]) mkdirSync(d, { recursive: true });
  // an apiserver nobody listens on (port 9: discard, closed on loopback)
  const kubeconfig = join(root, 'kubeconfig');
  writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:9', 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { token: 'x' } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'c',
  }));
  // what an agent killed mid-write leaves: a checkpoint with empty entries next to a good one ...
  const restored = {
    name: 'team-a.r1', origin: 'kubernetes', ident: 'team-a/r1',
    vf: { devargs: 'net_null_r1' },
    vhostUser: { mode: 'server', socketPath: join(sockets, 'team-a.r1', 'vhost-user.sock'), owner: 0, group: 0, perm: '0660', directory: { uid: 0, gid: 0, mode: 0o2770 } },
  };
  writeFileSync(join(sockets, '.vio4wd-relays.json'), JSON.stringify({ version: 1, node: 'n1', relays: [null, {}, { key: 'team-a/r1', spec: restored }, { key: 'x/y' }] }));
  // ... and device-info files of relays that are gone
  writeFileSync(join(devinfo, 'vio4wd.io-vhostuser-gone.r9-device.json'), '{"type":"vhost-user"}');
  writeFileSync(join(devinfo, 'vio4wd.io-vhostuser-gone.r9-device.json.77.tmp'), '{');

  agent = await AgentProcess.start({
    workDir: root,
    waitReady: false,
    args: ['--node-name', 'n1'],
    config: {
      log: { level: 'info' },
      engine: { workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true },
      vhostUser: { mode: 'server', socketDir: staticDir },
      control: { enabled: false },
      metrics: { address: '127.0.0.1:0' },
      kubernetes: { enabled: true, kubeconfig, socketDir: sockets, allowVirtualDevices: ['net_null'] },
      devicePlugin: { enabled: true, pluginDir: plugins, devinfoDir: devinfo },
      relays: [{ id: 1, vf: { devargs: 'net_null_s1' } }],
    },
  });
  const a = agent;
  await a.waitForLog(/"msg":"relays restored from the checkpoint/, 60_000);
  await a.waitForLog(/"msg":"device-info files left by an earlier agent removed"/, 30_000);
  await a.waitForLog(/"relay":"team-a\.r1".*"msg":"relay attached"/, 30_000);
  await a.waitForLog(/"relay":"relay-1".*"msg":"relay attached"/, 30_000);
  const warnings = a.logs().filter((l) => l.msg.startsWith('relay checkpoint entry is empty or malformed'));
  assert.equal(warnings.length, 3, 'null, {} and an entry without a spec are skipped with a warning each');
  // the device plugin is on: each static relay has a directory of its own
  assert.ok(existsSync(join(staticDir, 'relay-1', 'virtio-forwarder1.sock')));
  assert.equal(statSync(join(staticDir, 'relay-1')).mode & 0o7777, 0o750);
  assert.ok(existsSync(join(sockets, 'team-a.r1', 'vhost-user.sock')));
  assert.deepEqual(readdirSync(devinfo), []);
  // still waiting for the apiserver: not running yet
  assert.ok(!a.logs().some((l) => l.msg === 'vio4wd agent running'), 'the agent cannot be running without the apiserver');

  const code = await a.stop(20_000);
  assert.equal(code, 0, a.output.slice(-3000));
  assert.ok(a.logs().some((l) => l.msg === 'signal received; shutting down' && l.duringStartup === true));
  assert.ok(a.logs().some((l) => l.msg === 'vio4wd agent stopped'), a.output.slice(-2000));
  assert.equal(existsSync(join(staticDir, 'relay-1')), false, 'static relay socket and its directory removed');
  assert.equal(existsSync(join(sockets, 'team-a.r1', 'vhost-user.sock')), false, 'restored relay socket unlinked');
});
