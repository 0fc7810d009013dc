#!/usr/bin/env node
// Runs every test file under test/ with Node's own test runner (TypeScript through tsx), one file
// at a time (integration tests share the machine's cores and hugepages), each under a time limit,
// and judges the run strictly: a failed, cancelled, skipped or todo test fails it, and so does a
// file that ran no test or ran out of time.
//
// Usage: node scripts/run-tests.mjs [substring...]   (only files whose path contains one)
//
// Time limit: 10 minutes per file unless the file says otherwise in a comment of its own,
// `// time limit: 25 min` (the first such line counts). VIO4WD_TEST_TIME_SCALE (default 1)
// multiplies every limit, for a slower machine. On expiry the file's process group gets SIGTERM,
// 20 s later SIGKILL, and the file counts as failed.
import { readdirSync, readFileSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const DEFAULT_LIMIT_MIN = 10;
const scale = Number(process.env.VIO4WD_TEST_TIME_SCALE ?? '1') || 1;

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

/** The file's own time limit in ms (`// time limit: N min`), or the default. */
function limitMs(file) {
  const head = readFileSync(join(root, file), 'utf8').slice(0, 8192);
  const m = /^\/\/ time limit: (\d+(?:\.\d+)?) min\b/m.exec(head);
  return Math.round((m ? Number(m[1]) : DEFAULT_LIMIT_MIN) * 60_000 * scale);
}

/** Counts from the TAP reporter's closing comments (`# pass 3`, `# skipped 1`, ...). */
function tapCounts(tap) {
  const c = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
  for (const m of tap.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) c[m[1]] = Number(m[2]);
  return c;
}

/** Names of the tests the TAP output marks as skipped or todo (so the reason is visible). */
function tapSkips(tap) {
  return [...tap.matchAll(/^\s*ok \d+ - (.*?) # (SKIP|TODO)\b(.*)$/gm)].map((m) => `${m[2]}: ${m[1]}${m[3]}`);
}

function runFile(file, tapPath) {
  const limit = limitMs(file);
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-concurrency=1',
        '--test-reporter=spec', '--test-reporter-destination=stdout',
        '--test-reporter=tap', `--test-reporter-destination=${tapPath}`, file],
      { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], detached: true },
    );
    let timedOut = false;
    let killer;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`\n[run-tests] ${file}: over its time limit of ${Math.round(limit / 60_000)} min: SIGTERM to its process group`);
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone already */ }
      killer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 20_000);
    }, limit);
    // a Ctrl-C of the whole run reaches the file's group too
    const onSignal = (sig) => { try { process.kill(-child.pid, sig); } catch { /* gone */ } };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve({ code, signal, timedOut, ms: Date.now() - started, limit });
    });
  });
}

const filters = process.argv.slice(2);
// unit tests first: they are fast and point at the cause when an integration test fails
const all = find(join(root, 'test')).sort((a, b) => Number(!a.startsWith('test/unit')) - Number(!b.startsWith('test/unit')) || a.localeCompare(b));
const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'vio4wd-tests-'));
const total = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
const problems = [];
const timings = [];
const t0 = Date.now();
for (const [i, file] of files.entries()) {
  const tapPath = join(tmp, `${i}.tap`);
  const r = await runFile(file, tapPath);
  let tap = '';
  try { tap = readFileSync(tapPath, 'utf8'); } catch { /* the runner died before writing */ }
  const c = tapCounts(tap);
  for (const k of Object.keys(total)) total[k] += c[k];
  timings.push([file, r.ms]);
  const why = [];
  if (r.timedOut) why.push(`ran out of its time limit (${Math.round(r.limit / 60_000)} min)`);
  if (c.fail) why.push(`${c.fail} failed`);
  if (c.cancelled) why.push(`${c.cancelled} cancelled`);
  if (c.skipped || c.todo) why.push(`${c.skipped + c.todo} skipped/todo (${tapSkips(tap).join('; ')})`);
  if (c.tests === 0 && !r.timedOut) why.push('ran no test');
  if (r.code !== 0 && why.length === 0) why.push(`runner exited with ${r.signal ?? r.code}`);
  if (why.length) problems.push(`${file}: ${why.join(', ')}`);
}
rmSync(tmp, { recursive: true, force: true });

const secs = (ms) => (ms / 1000).toFixed(1);
console.log('\n[run-tests] slowest files:');
for (const [f, ms] of [...timings].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${secs(ms).padStart(7)} s  ${f}`);
console.log(`[run-tests] ${files.length} files in ${secs(Date.now() - t0)} s`);
if (problems.length) {
  console.log('[run-tests] FAILED:');
  for (const p of problems) console.log(`  ${p}`);
}
// the closing line CI reads; skipped, todo and cancelled tests count as failed
const failed = total.fail + total.cancelled + problems.filter((p) => p.includes('time limit') || p.includes('ran no test')).length;
console.log(`\ntotal: ${total.pass} passed, ${failed} failed, ${total.skipped + total.todo} skipped`);
process.exit(problems.length ? 1 : 0);
