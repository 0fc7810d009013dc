// One Go minimum and one version comparison (test/env/go.sh), shared by the bootstrap step that
// fetches Go (scripts/bootstrap.d/68-go.sh) and the test control plane's builds (test/env/lib.sh).
// The go binaries here are two-line scripts that report a version, as `go env GOVERSION` does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/programs.js';

const GO_SH = join(ROOT, 'test', 'env', 'go.sh');

function bash(script: string, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-c', `source "${GO_SH}"; ${script}`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } }).trim();
}

test('GO_MIN is the newest go line of the test control plane modules', () => {
  const envDir = join(ROOT, 'test', 'env');
  const lines = readdirSync(envDir)
    .map((d) => join(envDir, d, 'go.mod'))
    .filter((f) => existsSync(f))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => /^go \d/.test(l)).map((l) => l.slice(3).trim()));
  assert.ok(lines.length >= 2, 'no go.mod under test/env');
  const newest = lines.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1);
  assert.equal(bash('echo "$GO_MIN"'), newest);
  assert.equal(bash('echo "$GO_MIN"', { VIO4WD_GO_MIN: '1.30.1' }), '1.30.1');
});

test('go_at_least compares dotted versions as versions, not as text', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-go-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fakeGo = (version: string): string => {
    const p = join(dir, `go-${version}`);
    writeFileSync(p, `#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo go${version}\n`);
    chmodSync(p, 0o755);
    return p;
  };
  const ok = (go: string, min: string): boolean => bash(`go_at_least "${go}" ${min} && echo yes || echo no`) === 'yes';
  assert.equal(ok(fakeGo('1.26.10'), '1.26.7'), true);
  assert.equal(ok(fakeGo('1.26.7'), '1.26.7'), true);
  assert.equal(ok(fakeGo('1.26.6'), '1.26.7'), false);
  assert.equal(ok(fakeGo('1.9'), '1.24'), false);
  assert.equal(ok(join(dir, 'no-such-go'), '1.24'), false);
});

test('go_build_cached builds once per go.mod/go.sum and build line, names the Go it uses, keeps legacy stamps', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vio4wd-gobuild-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin, join(dir, 'mod')]);
  // a go that reports go1.27.3 and "builds" by writing the -o file, logging each build
  writeFileSync(
    join(bin, 'go'),
    `#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && { echo go1.27.3; exit 0; }\n[ "$1" = build ] || exit 0\nwhile [ "$1" != -o ]; do shift; done\necho tool > "$2"; chmod +x "$2"; echo build >> "${dir}/builds"\n`,
  );
  chmodSync(join(bin, 'go'), 0o755);
  writeFileSync(join(dir, 'mod', 'go.mod'), 'module example.com/w\n\ngo 1.26.7\n');
  writeFileSync(join(dir, 'mod', 'go.sum'), '');
  const out = join(dir, 'cache', 'tool');
  const run = (pre = '', path = `${bin}:${process.env.PATH ?? ''}`): string =>
    execFileSync('/bin/bash', ['-c', `source "${join(ROOT, 'test', 'env', 'lib.sh')}"; ${pre} go_build_cached "${out}" "${dir}/mod" example.com/w/cmd/tool "-s -w" "tool v1" "about 1 min" 2>&1`], {
      encoding: 'utf8',
      env: { PATH: path, HOME: dir, VIO4WD_CACHE: join(dir, 'cache') },
    });
  const builds = (): number => (existsSync(join(dir, 'builds')) ? readFileSync(join(dir, 'builds'), 'utf8').split('\n').filter(Boolean).length : 0);
  const first = run();
  assert.match(first, /building tool v1 with go1\.27\.3 from Go modules \(about 1 min on 2 cores/);
  assert.equal(builds(), 1);
  assert.equal(run(), '', 'built already: nothing to do, nothing said');
  assert.equal(builds(), 1);
  // a binary stamped by the old per-tool script is kept when the table names its stamp for this build
  const stamp = readFileSync(`${out}.stamp`, 'utf8').trim();
  writeFileSync(`${out}.stamp`, 'old-stamp\n');
  assert.equal(run(`LEGACY_STAMPS[${stamp}]=old-stamp;`), '');
  assert.equal(builds(), 1);
  assert.equal(readFileSync(`${out}.stamp`, 'utf8').trim(), 'old-stamp', 'left for a checkout with the old scripts');
  // ... but not once go.mod changed
  writeFileSync(join(dir, 'mod', 'go.mod'), 'module example.com/w\n\ngo 1.26.8\n');
  run(`LEGACY_STAMPS[${stamp}]=old-stamp;`);
  assert.equal(builds(), 2);
  // no Go at all: the message names the module's go line, not a version written in the script
  rmSync(out);
  const noGo = join(dir, 'nogo');
  execFileSync('mkdir', ['-p', noGo]);
  for (const tool of ['cat', 'sha256sum', 'cut', 'sed', 'dirname', 'sort', 'tail', 'head']) execFileSync('ln', ['-s', execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(noGo, tool)]);
  assert.throws(() => run('', noGo), (e: { stdout?: string }) => /no go toolchain on PATH \(install Go >= 1\.26\.8, the go line of .*mod\/go\.mod\)/.test(e.stdout ?? ''));
});
