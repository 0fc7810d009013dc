// The container image, built from the Dockerfile with podman (chroot isolation) on local base
// images, then checked from its own filesystem in a chroot: the CLI runs as the image's non-root
// user, the native engine loads with the image's DPDK (Debian's, rebuilt with 1024 ethdev
// ports; the machine's build of scripts/build-dpdk.sh is handed in, so it is not compiled twice)
// and carries more relays than Debian's DPDK could, only the wanted DPDK drivers are there and
// all their libraries resolve, and the agent itself runs a relay from the image.
// time limit: 45 min
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  ROOT,
  buildImage,
  chrootRun,
  chrootSpawn,
  cpuLock,
  ensureBaseImages,
  machineDpdk,
  mountImage,
  podmanUnavailable,
  type BuiltImage,
  type ImageRoot,
} from '../helpers/image.js';

const TAG = 'localhost/vio4wd:test';
const SIDECAR_TAG = 'localhost/vio4wd-kubevirt-sidecar:test';
// A machine where podman cannot build is a failure to set up, not a reason to skip: every test
// below fails with the reason (scripts/bootstrap installs podman, debootstrap and uidmap).
const why = podmanUnavailable();
const unavailable = why ? `podman cannot run here: ${why} (run scripts/bootstrap, step podman)` : undefined;
const pkgVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const NONROOT = '65532:65532';
const MAX_PORTS = 1024;
// the DPDK version the image should have: the machine's build that is handed in, else the
// Dockerfile's default (Debian's source package of it)
const machine = machineDpdk();
const DPDK_VERSION =
  typeof machine === 'string' ? /^ARG DPDK_VERSION=(\S+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? '?' : machine.version;
const PREFIX = `/opt/vio4wd-dpdk/${DPDK_VERSION}-ports${MAX_PORTS}`;
// EAL's driver directory is named by the ABI version: 23.0 for DPDK 22.11, 25.0 for 24.11 (an LTS
// release YY.11 has ABI YY+1.0)
const lts = /^(\d+)\.11\./.exec(DPDK_VERSION);
const ABI_MAJOR = lts ? Number(lts[1]) + 1 : NaN;
const ABI = `${ABI_MAJOR}.0`;
const PMDS = `${PREFIX}/lib/dpdk/pmds-${ABI}`;

let image: BuiltImage;
let sidecar: BuiltImage;
let fs: ImageRoot | undefined;

before(async () => {
  if (unavailable) throw new Error(unavailable);
  const t0 = Date.now();
  await ensureBaseImages();
  image = await buildImage(TAG);
  process.stderr.write(`[image] ${TAG}: ${(image.sizeBytes / 1e6).toFixed(1)} MB, built in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  sidecar = await buildImage(SIDECAR_TAG, { target: 'kubevirt-sidecar' });
  fs = await mountImage(TAG);
}, { timeout: 3_600_000 });

after(async () => {
  await fs?.remove();
});

test('the image is small, starts vio4wd, and runs as a non-root user by default', () => {
  assert.deepEqual(image.entrypoint, ['vio4wd']);
  assert.equal(image.user, NONROOT);
  // the runtime stage has no compiler, npm packages for development or DPDK headers
  // about 290 MB: Debian slim 82, its libraries 16, node 26 (stripped) 117, DPDK 11, npm packages 61
  assert.ok(image.sizeBytes < 310e6, `image is ${(image.sizeBytes / 1e6).toFixed(1)} MB; it was about 290 MB: what grew?`);
  for (const absent of ['usr/bin/gcc', 'usr/bin/make', 'usr/include/dpdk', `${PREFIX.slice(1)}/include`, 'opt/vio4wd/node_modules/typescript', 'opt/vio4wd/node_modules/tsx', 'opt/vio4wd/src']) {
    assert.throws(() => readdirSync(join(fs!.root, absent)), /ENOENT|ENOTDIR/, `${absent} should not be in the runtime image`);
  }
});

test('vio4wd --version in a chroot of the image, as the non-root user', async () => {
  const r = await chrootRun(fs!.root, ['vio4wd', '--version'], { user: NONROOT });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), pkgVersion);
  const help = await chrootRun(fs!.root, ['vio4wd', '--help'], { user: NONROOT });
  for (const cmd of ['agent', 'operator', 'kubevirt-sidecar', 'relay', 'stats', 'doctor']) assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
});

test("the native engine loads with the image's DPDK: Debian's version, rebuilt with 1024 ethdev ports", async () => {
  // one DPDK, at the prefix it was built for (its driver directory is compiled in), none of Debian's
  assert.deepEqual(readdirSync(join(fs!.root, 'opt', 'vio4wd-dpdk')), [`${DPDK_VERSION}-ports${MAX_PORTS}`]);
  const debian = readdirSync(join(fs!.root, 'usr/lib/x86_64-linux-gnu')).filter((f) => f.startsWith('librte_'));
  assert.deepEqual(debian, [], "Debian's DPDK libraries (32 ports) must not be in the image");
  const script =
    "const a = require('/opt/vio4wd/native/build/vio4wd.node');" +
    "import('/opt/vio4wd/dist/engine/native.js').then((m) => console.log(JSON.stringify({ direct: a.version(), facade: m.loadAddon().version(), maxRelays: a.maxRelays, maxPorts: a.maxPorts })))";
  const r = await chrootRun(fs!.root, ['node', '-e', script], { user: NONROOT });
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { direct: string; facade: string; maxRelays: number; maxPorts: number };
  assert.equal(v.direct, `DPDK ${DPDK_VERSION}`);
  assert.equal(v.facade, v.direct);
  assert.equal(v.maxRelays, 1024);
  assert.equal(v.maxPorts, MAX_PORTS, 'RTE_MAX_ETHPORTS of the DPDK the addon was compiled against');
});

test('an engine in the image reports limits.ports 1024 and carries more relays than ethdev ports Debian allows (32)', { timeout: 900_000 }, async (t) => {
  const dir = join(fs!.root, 'tmp', 'vio4wd-engine');
  mkdirSync(dir, { recursive: true });
  const relays = 40;
  const script = `
    import('/opt/vio4wd/dist/engine/index.js').then(async ({ Engine }) => {
      const e = await Engine.start({ workerCpus: [1], mainCpu: 0, inMemory: true, noPci: true, filePrefix: 'vio4wd-image-engine-${process.pid}' });
      const out = { limits: e.limits, version: e.version(), ports: [] };
      try {
        for (let id = 0; id < ${relays}; id++) {
          const info = await e.addRelay({ id, vf: { devargs: 'net_null_img' + id }, socketPath: '/tmp/vio4wd-engine/r' + id + '.sock', mode: 'server', queues: 1 });
          out.ports.push(info.portId);
        }
        out.relays = e.relays().length;
      } catch (err) {
        out.error = String(err && err.message || err);
      }
      await e.stop();
      console.log(JSON.stringify(out));
    }).catch((err) => { console.error(err); process.exit(1); });`;
  const lock = await cpuLock(t.signal);
  let r;
  try {
    r = await chrootRun(fs!.root, ['node', '-e', script]);
  } finally {
    await lock.release();
  }
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    limits: { relays: number; queues: number; ports: number };
    version: { dpdk: string };
    ports: number[];
    relays?: number;
    error?: string;
  };
  assert.equal(out.error, undefined, `adding relay ${out.ports.length}: ${out.error}`);
  assert.deepEqual(out.limits, { relays: 1024, queues: 32, ports: MAX_PORTS });
  assert.equal(out.version.dpdk, DPDK_VERSION);
  assert.equal(out.relays, relays);
  assert.equal(new Set(out.ports).size, relays, 'one ethdev port per relay');
  assert.ok(Math.max(...out.ports) >= 32, `port ids ${out.ports.join(' ')}: beyond Debian's 32`);
});

test('only the DPDK drivers the engine uses are installed, and every library they need resolves', async () => {
  // EAL loads every librte_*.so.<ABI> (and *.so) in its driver directory
  const loaded = readdirSync(join(fs!.root, PMDS)).filter((f) => f.endsWith('.so') || f.endsWith(`.so.${ABI}`));
  const drivers = loaded.map((f) => f.replace(/^librte_/, '').replace(`.so.${ABI}`, '').replace(/\.so$/, '')).sort();
  for (const want of ['bus_pci', 'bus_vdev', 'mempool_ring', 'net_vhost', 'net_tap', 'net_af_packet', 'net_bond', 'net_null', 'net_iavf', 'net_i40e', 'net_ice', 'net_ixgbe', 'net_mlx5']) {
    assert.ok(drivers.includes(want), `${want} missing from ${PMDS}: ${drivers.join(' ')}`);
  }
  assert.deepEqual(drivers.filter((d) => loaded.filter((f) => f.includes(`librte_${d}.so`)).length !== 1), [], 'each driver once');
  // what the DPDK build has for tests and other NICs stays out
  const unwanted = drivers.filter((d) => /^(baseband|crypto|compress|event|raw|regex|vdpa|dma)_/.test(d) || /^net_(pcap|ring|af_xdp|virtio|memif|softnic|e1000|nfp|bnxt)$/.test(d));
  assert.deepEqual(unwanted, [], `drivers the engine never loads: ${unwanted.join(' ')}`);
  const libs = readdirSync(join(fs!.root, PREFIX, 'lib')).filter((f) => f.endsWith(`.so.${ABI}`)).map((f) => `${PREFIX}/lib/${f}`);
  const files = [...libs, ...loaded.map((f) => `${PMDS}/${f}`), '/opt/vio4wd/native/build/vio4wd.node'];
  const r = await chrootRun(fs!.root, ['sh', '-c', `for f in ${files.join(' ')}; do ldd "$f" | sed "s|^|$f: |"; done`]);
  assert.equal(r.code, 0, r.stderr);
  const missing = r.stdout.split('\n').filter((l) => l.includes('not found'));
  assert.deepEqual(missing, [], 'libraries that do not resolve in the image');
  // the addon's DPDK comes from the prefix (its rpath), not from anywhere else
  const eal = r.stdout.split('\n').find((l) => l.startsWith('/opt/vio4wd/native/build/vio4wd.node:') && l.includes(`librte_eal.so.${ABI_MAJOR} =>`));
  assert.match(eal ?? '', new RegExp(`=> ${PREFIX}/lib/librte_eal\\.so\\.${ABI_MAJOR} `), 'where the addon finds librte_eal');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

test('the agent runs a relay from the image: EAL with its drivers, ZeroMQ control, metrics, clean stop', { timeout: 900_000 }, async (t) => {
  const port = await freePort();
  const dir = join(fs!.root, 'tmp', 'vio4wd-test');
  mkdirSync(join(dir, 'sockets'), { recursive: true });
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'engine:',
      '  workerCpus: [1]',
      '  mainCpu: 0',
      '  inMemory: true',
      '  noPci: true',
      `  filePrefix: vio4wd-image-${process.pid}`,
      'vhostUser: { mode: server, socketDir: /tmp/vio4wd-test/sockets }',
      'control: { ipcDir: /tmp/vio4wd-test/ipc }',
      `metrics: { address: "127.0.0.1:${port}" }`,
      'relays:',
      '  - id: 1',
      '    vf: { devargs: "net_null_image0" }',
      '',
    ].join('\n'),
  );
  const lock = await cpuLock(t.signal);
  const agent = chrootSpawn(fs!.root, ['vio4wd', 'agent', '--config', '/tmp/vio4wd-test/agent.yaml']);
  let log = '';
  agent.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  agent.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise<number>((resolve) => agent.on('close', (code) => resolve(code ?? 1)));
  try {
    const deadline = Date.now() + 60_000;
    let ready = '';
    while (Date.now() < deadline && agent.exitCode === null) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => (r.ok ? r.text() : ''), () => '');
      if (ready) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(ready, `agent not ready; its log:\n${log}`);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /vio4wd_relay_rx_packets_total\{relay="relay-1",id="1",direction="vf_to_vm"\} \d+/);
    const ls = await chrootRun(fs!.root, ['vio4wd', 'relay', 'ls', '--ipc-dir', '/tmp/vio4wd-test/ipc']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /virtio-forwarder1\.sock/);
    assert.ok(readdirSync(join(dir, 'sockets')).includes('virtio-forwarder1.sock'), 'server-mode socket created');
  } finally {
    if (agent.exitCode === null) process.kill(agent.pid!, 'SIGTERM');
    const code = await exited;
    await lock.release();
    assert.equal(code, 0, `agent exit status; its log:\n${log}`);
  }
  assert.match(log, /vio4wd agent stopped/);
});

test('the kubevirt-sidecar target starts the binding sidecar as a non-root user and serves its hook socket', { timeout: 120_000 }, async () => {
  // KubeVirt starts the binding's sidecarImage without arguments
  assert.deepEqual(sidecar.entrypoint, ['vio4wd', 'kubevirt-sidecar']);
  assert.deepEqual(sidecar.cmd, []);
  assert.equal(sidecar.user, NONROOT);
  const side = await mountImage(SIDECAR_TAG);
  try {
    const hooks = join(side.root, 'tmp', 'hooks');
    mkdirSync(hooks, { recursive: true });
    chownSync(hooks, 107, 107);
    // uid 107: the qemu user virt-launcher runs its sidecars as
    const proc = chrootSpawn(side.root, [...sidecar.entrypoint, '--socket-dir', '/tmp/hooks'], { user: '107:107' });
    let log = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    const exited = new Promise<number>((resolve) => proc.on('close', (code) => resolve(code ?? 1)));
    try {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && proc.exitCode === null && !readdirSync(hooks).some((f) => f.endsWith('.sock'))) await new Promise((r) => setTimeout(r, 100));
      const socks = readdirSync(hooks).filter((f) => f.endsWith('.sock'));
      assert.equal(socks.length, 1, `no hook socket in /tmp/hooks; sidecar log:\n${log}`);
      assert.equal(statSync(join(hooks, socks[0]!)).uid, 107, 'the socket belongs to the sidecar user');
    } finally {
      if (proc.exitCode === null) process.kill(proc.pid!, 'SIGTERM');
      await exited;
    }
  } finally {
    await side.remove();
  }
});
