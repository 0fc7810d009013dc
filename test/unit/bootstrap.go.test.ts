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
