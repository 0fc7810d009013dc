// What the sidecar hands to libvirt is a domain libvirt takes: it passes libvirt's own schema
// check (virt-xml-validate, Debian's libvirt-clients), and libvirt's QEMU driver defines it and
// reads back the vhost-user NICs as written (a session libvirtd run as `nobody` in a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BindingSidecar, HookClient } from '../../src/kubevirt/index.js';
import { silentLogger } from '../../src/util/log.js';

const FIX = 'test/fixtures/kubevirt';
const fixture = (n: string): string => readFileSync(join(FIX, n), 'utf8');

let dir: string;
let sidecar: BindingSidecar;
let client: HookClient;
const outputs = new Map<string, string>();

interface Scenario {
  name: string;
  domain: string;
  vmi: string;
  networkInfo?: string;
}

const scenarios: Scenario[] = [
  { name: 'one NIC, first call', domain: 'domain-one-first.xml', vmi: 'vmi-one.json', networkInfo: 'network-info-one.json' },
  { name: 'one NIC, second call', domain: 'domain-one-second.xml', vmi: 'vmi-one.json', networkInfo: 'network-info-one.json' },
  { name: 'two NICs, multiqueue, hugepages', domain: 'domain-two-first.xml', vmi: 'vmi-two.json', networkInfo: 'network-info-two.json' },
  { name: 'DRA claim', domain: 'domain-one-first.xml', vmi: 'vmi-dra.json' },
];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vio4wd-kvlv-'));
  const dra = join(dir, 'dra');
  mkdirSync(join(dra, 'resourceclaimtemplates', 'vhost', 'port'), { recursive: true });
  writeFileSync(join(dra, 'resourceclaimtemplates', 'vhost', 'port', 'vio4wd.io-metadata.json'), fixture('dra-metadata.json'));
  // one sidecar per network-info file would be needed; the file is swapped between calls instead
  const networkInfo = join(dir, 'network-info');
  sidecar = new BindingSidecar({
    socketPath: join(dir, 'hooks', 'c', 'vio4wd.sock'),
    bindingName: 'vio4wd',
    maxQueues: 32,
    logger: silentLogger(),
    resolve: { networkInfoPath: networkInfo, networkInfoTimeoutMs: 2000, draMetadataDir: dra, explicit: new Map() },
  });
  await sidecar.start();
  client = new HookClient(sidecar.socketPath);
  for (const s of scenarios) {
    if (s.networkInfo) writeFileSync(networkInfo, fixture(s.networkInfo));
    else rmSync(networkInfo, { force: true });
    outputs.set(s.name, await client.onDefineDomain(fixture(s.domain), fixture(s.vmi)));
  }
});

after(async () => {
  client?.close();
  await sidecar?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function validate(file: string): { ok: boolean; out: string } {
  const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
  if (r.error) throw new Error(`virt-xml-validate: ${r.error.message}; install it with scripts/bootstrap (step 65-libvirt)`);
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

test('the fixtures and every rewritten domain pass libvirt\'s schema (virt-xml-validate)', () => {
  for (const s of scenarios) {
    const inFile = join(dir, `in-${s.domain}`);
    writeFileSync(inFile, fixture(s.domain));
    assert.ok(validate(inFile).ok, `fixture ${s.domain} is valid to begin with`);
    const outFile = join(dir, `out-${s.name.replaceAll(/\W+/g, '-')}.xml`);
    writeFileSync(outFile, outputs.get(s.name)!);
    const v = validate(outFile);
    assert.ok(v.ok, `${s.name}: ${v.out}`);
    assert.match(outputs.get(s.name)!, /<interface type="vhostuser">/);
  }
});

test('a broken domain is caught by the same check (the check can fail)', () => {
  const bad = outputs.get('one NIC, first call')!.replace('<source type="unix"', '<source type="tcp"');
  const f = join(dir, 'bad.xml');
  writeFileSync(f, bad);
  assert.equal(validate(f).ok, false);
});

// ---------------------------------------------------------------------------------------------
// libvirt's QEMU driver

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

function asNobody(home: string, cmd: string[]): string[] {
  return ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'env', `HOME=${home}`, `XDG_RUNTIME_DIR=${join(home, 'run')}`, ...cmd];
}

test('libvirt\'s QEMU driver defines each rewritten domain and reads the vhost-user NICs back', async () => {
  assert.ok(isRoot, 'needs root to run a session libvirtd as nobody: run the suite as root, as npm test does');
  if (!existsSync('/usr/sbin/libvirtd')) assert.fail('libvirtd missing: run scripts/bootstrap (step 65-libvirt installs libvirt-daemon-driver-qemu)');
  const home = join(dir, 'libvirt-home');
  mkdirSync(join(home, 'run'), { recursive: true });
  chownSync(home, NOBODY, NOBODY);
  chownSync(join(home, 'run'), NOBODY, NOBODY);
  chmodSync(join(home, 'run'), 0o700);
  chmodSync(dir, 0o755);
  // libvirtd is our child (not daemonized): stopped by PID below, reaped by us
  const [cmd, ...args] = asNobody(home, ['libvirtd', '--timeout=300']);
  const daemon: ChildProcess = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const virsh = (...a: string[]): { status: number | null; out: string } => {
    const [c, ...rest] = asNobody(home, ['virsh', '-c', 'qemu:///session', ...a]);
    const r = spawnSync(c!, rest, { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  try {
    const sock = join(home, 'run', 'libvirt', 'libvirt-sock');
    for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(50);
    assert.ok(existsSync(sock), `session libvirtd came up: ${log}`);
    for (const s of scenarios) {
      // adapted to this machine only: no KVM for nobody (TCG), and Debian's QEMU binary
      const xml = outputs
        .get(s.name)!
        .replace('<domain type="kvm"', '<domain type="qemu"')
        .replace('<emulator>/usr/libexec/qemu-kvm</emulator>', '<emulator>/usr/bin/qemu-system-x86_64</emulator>');
      const f = join(home, `${s.name.replaceAll(/\W+/g, '-')}.xml`);
      writeFileSync(f, xml);
      chmodSync(f, 0o644);
      const name = /<name>([^<]+)<\/name>/.exec(xml)![1]!;
      const def = virsh('define', f);
      assert.equal(def.status, 0, `${s.name}: ${def.out}`);
      try {
        const dump = virsh('dumpxml', '--inactive', name);
        assert.equal(dump.status, 0, dump.out);
        const nics = dump.out.match(/<interface type='vhostuser'>[\s\S]*?<\/interface>/g) ?? [];
        const want = (xml.match(/<interface type="vhostuser">/g) ?? []).length;
        assert.equal(nics.length, want, `${s.name}: libvirt kept ${want} vhost-user NIC(s)`);
        for (const m of xml.matchAll(/<source type="unix" path="([^"]+)" mode="(\w+)"/g)) {
          assert.ok(dump.out.includes(`<source type='unix' path='${m[1]}' mode='${m[2]}'`), `${s.name}: ${m[1]} in mode ${m[2]}`);
        }
        if (s.vmi === 'vmi-two.json') assert.equal((dump.out.match(/queues='4' rx_queue_size='1024' tx_queue_size='1024'/g) ?? []).length, 2);
        assert.match(dump.out, /<access mode='shared'\/>/);
      } finally {
        virsh('undefine', name);
      }
    }
  } finally {
    daemon.kill('SIGTERM');
    if (daemon.exitCode === null) await new Promise((resolve) => daemon.once('exit', resolve));
  }
});
