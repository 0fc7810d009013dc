#!/usr/bin/env node
// Runs every test file under test/ with Node's own test runner (TypeScript through tsx), one
// file at a time: integration tests share the machine's cores and hugepages.
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains one)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const filters = process.argv.slice(2);
// unit tests first: they are fast and point at the cause when an integration test fails
const all = find(join(root, 'test')).sort((a, b) => Number(!a.startsWith('test/unit')) - Number(!b.startsWith('test/unit')) || a.localeCompare(b));
const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
