// After scripts/bootstrap: every program in its manifest (scripts/packages.tsv) for the test
// profile is on this machine, found the way the tests find it (PATH, with the project's
// node_modules/.bin first, as npm scripts run), and the control plane runs on the project's Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, readManifest } from '../helpers/programs.js';

const PATH = `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`;

function which(program: string): string | undefined {
  const r = spawnSync('bash', ['-c', `source "${ROOT}/test/env/lib.sh" >/dev/null 2>&1; command -v -- "$1"`, 'which', program], { env: { ...process.env, PATH }, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

test('every program the test profile lists is installed', () => {
  const missing: string[] = [];
  for (const row of readManifest().filter((r) => r.profiles.includes('test'))) {
    // the test control plane's programs live in the cache, where test/env/lib.sh points
    if (row.source === 'step:testenv') continue;
    for (const p of row.programs) if (!which(p)) missing.push(`${p} (${row.source})`);
  }
  assert.deepEqual(missing, [], 'scripts/bootstrap test should have installed these');
});

test("the test control plane's programs are in the cache", () => {
  const r = spawnSync('bash', ['-c', `source "${ROOT}/test/env/lib.sh"; for f in "$KUBE_APISERVER_BIN" "$ETCD_BIN" "$KUBECTL_BIN" "$HELM_BIN"; do [[ -x $f ]] || echo "missing: $f"; done`], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), '');
});

test("the tests run on the project's Node.js, the version package.json asks for", () => {
  const want = /"node": ">=(\d+)"/.exec(readFileSync(join(ROOT, 'package.json'), 'utf8'))?.[1];
  assert.ok(want);
  assert.equal(process.versions.node.split('.')[0], want, `this test runs on node ${process.version}: run it through npm test (node_modules/.bin first on PATH)`);
});
