// The vio4wd command as a user first meets it: --version and --help.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

test('vio4wd --version prints the package version', () => {
  const out = execFileSync('bin/vio4wd.js', ['--version'], { encoding: 'utf8' });
  assert.equal(out.trim(), pkg.version);
});

test('vio4wd --help lists the subcommands', () => {
  const out = execFileSync('bin/vio4wd.js', ['--help'], { encoding: 'utf8' });
  assert.match(out, /Usage: vio4wd/);
  for (const cmd of ['agent', 'operator', 'relay', 'stats', 'doctor', 'kubevirt-sidecar']) {
    assert.match(out, new RegExp(`^\\s+${cmd}\\b`, 'm'), `--help lists ${cmd}`);
  }
});

test('an unknown subcommand fails with a pointer to --help', () => {
  let status = 0;
  let stderr = '';
  try {
    execFileSync('bin/vio4wd.js', ['no-such-command'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { status: number; stderr: string };
    status = err.status;
    stderr = err.stderr;
  }
  assert.equal(status, 1);
  assert.match(stderr, /--help/);
});
