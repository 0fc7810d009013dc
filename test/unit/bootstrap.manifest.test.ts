// Every program that the tests, the scripts and the demo start is one that the bootstrap
// installs (scripts/packages.tsv), so a fresh machine cannot fail for want of a host tool the
// way the e2e once did for ethtool. The programs are read from the sources: the child-process
// calls of the TypeScript, and the commands of the shell scripts the bootstrap and test/env run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, programsInShell, programsInTypeScript, readManifest, shellCode } from '../helpers/programs.js';

const manifest = readManifest();
const listed = new Map(manifest.flatMap((r) => r.programs.map((p) => [p, r.source] as const)));

function unlisted(uses: { program: string; file: string }[]): string[] {
  const missing = new Map<string, Set<string>>();
  for (const u of uses) if (!listed.has(u.program)) (missing.get(u.program) ?? missing.set(u.program, new Set()).get(u.program)!).add(u.file);
  return [...missing].map(([p, files]) => `${p} (started in ${[...files].join(', ')})`);
}

test('the manifest is well formed: known sources and profiles, Debian packages named once', () => {
  const debs = manifest.filter((r) => r.source.startsWith('deb:')).map((r) => r.source);
  assert.deepEqual(debs.filter((d, i) => debs.indexOf(d) !== i), [], 'a Debian package listed twice');
  for (const r of manifest) {
    assert.match(r.source, /^(deb|npm|step|base|machine):[a-z0-9][a-z0-9.+-]*$/, `source "${r.source}"`);
    assert.ok(r.profiles.length > 0, `${r.source}: no profile`);
    for (const p of r.profiles) assert.ok(['demo', 'test', 'image'].includes(p), `${r.source}: unknown profile "${p}"`);
  }
  // every step:<name> row names a real bootstrap step, and every npm:<name> row a locked package
  const steps = readdirSync(join(ROOT, 'scripts', 'bootstrap.d')).map((f) => f.replace(/^\d\d-|\.sh$/g, ''));
  for (const r of manifest.filter((r) => r.source.startsWith('step:'))) assert.ok(steps.includes(r.source.slice(5)), `${r.source}: no such step`);
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  for (const r of manifest.filter((r) => r.source.startsWith('npm:'))) assert.ok(lock.packages[`node_modules/${r.source.slice(4)}`], `${r.source}: not in package-lock.json`);
});

test('every program the TypeScript (src, tests, scripts, demo) starts is in the manifest', () => {
  const uses = programsInTypeScript();
  // the scan sees the calls it must: a few known ones, so a broken pattern cannot pass quietly
  for (const p of ['ethtool', 'ip', 'setpriv', 'taskset', 'dpdk-testpmd', 'ping']) assert.ok(uses.some((u) => u.program === p), `scan found no use of ${p}`);
  assert.deepEqual(unlisted(uses), [], 'add these to scripts/packages.tsv (with the package that provides them)');
});

test('every program the bootstrap and test/env shell scripts start is in the manifest', () => {
  const uses = programsInShell();
  for (const p of ['apt-get', 'go', 'make', 'podman', 'meson']) assert.ok(uses.some((u) => u.program === p), `scan found no use of ${p}`);
  assert.deepEqual(unlisted(uses), [], 'add these to scripts/packages.tsv (with the package that provides them)');
});

test('the shell scan reads code, not comments, strings or heredoc bodies', () => {
  const code = shellCode([
    '# ethtool in a comment',
    'echo "ethtool in a string $(uname -r)" \'ethtool\'',
    'cat >f <<EOF',
    'RUN ethtool',
    'EOF',
    'x=$(readlink -f y) # trailing',
  ].join('\n'));
  assert.doesNotMatch(code, /ethtool/);
  assert.match(code, /uname -r/);
  assert.match(code, /readlink -f y/);
});

test('each step says which profiles need it, and the demo profile builds no test-only part', () => {
  const dir = join(ROOT, 'scripts', 'bootstrap.d');
  const profilesOf = new Map(readdirSync(dir).filter((f) => /^\d\d-.*\.sh$/.test(f)).map((f) => {
    const m = /^# profiles: (.+)$/m.exec(readFileSync(join(dir, f), 'utf8'));
    assert.ok(m, `${f}: no '# profiles:' line`);
    return [f.replace(/^\d\d-|\.sh$/g, ''), m[1]!.split(/\s+/)] as const;
  }));
  for (const step of ['packages', 'hugepages', 'npm', 'native', 'build', 'guest']) assert.ok(profilesOf.get(step)?.includes('demo'), `demo needs step ${step}`);
  for (const step of ['dpdk', 'go', 'testenv', 'podman', 'libvirt', 'control']) assert.ok(!profilesOf.get(step)?.includes('demo'), `demo must not run step ${step}`);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.demo!, /^scripts\/bootstrap demo && /);
  assert.match(pkg.scripts.test!, /^scripts\/bootstrap test && /);
});
