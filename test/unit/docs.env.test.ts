// Every environment or settings variable the docs tell a user to set (VIO4WD_*, and the
// VIRTIOFWD_* of virtio-forwarder's settings file that the drop-in reads) is one the code reads:
// a migrating operator's variable named in the docs but ignored by vio4wd would silently do
// nothing. The device plugin's per-device variables (VIO4WD_DEVICE_<ID>_SOCKET, ...) are checked
// by their suffix in the code that writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { markdownFiles } from '../helpers/markdown.js';

function files(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return /^(node_modules|build.*|results)$/.test(n) ? [] : files(p);
    return /\.(ts|mjs|js|sh|c|h|cc|tpl|yaml)$|^[\w-]+$/.test(n) ? [p] : [];
  });
}

const code = [...['src', 'scripts', 'bench', 'test', 'packaging', 'native/src', 'helm'].flatMap(files), 'Dockerfile', 'package.json', 'native/Makefile']
  .filter((f) => !f.startsWith('test/unit/docs.'))
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');
const allocate = readFileSync('src/deviceplugin/allocate.ts', 'utf8');

function named(): { where: string; name: string }[] {
  const out: { where: string; name: string }[] = [];
  for (const f of markdownFiles().filter((x) => !x.startsWith('bench/RESULTS'))) {
    readFileSync(f, 'utf8').split('\n').forEach((l, i) => {
      for (const m of l.matchAll(/\b(?:VIO4WD|VIRTIOFWD)_[A-Z0-9_]*[A-Z0-9]\b/g)) out.push({ where: `${f}:${i + 1}`, name: m[0] });
    });
  }
  return out;
}

function read(name: string): boolean {
  const dev = /^VIO4WD_DEVICE_[A-Z0-9_]+?_(SOCKET|MODE|QUEUES|MAC|MTU|NUMA_NODE)$/.exec(name);
  if (dev) return allocate.includes(`\${p}${dev[1]}`);
  if (/^VIO4WD_[A-Z0-9_]+_DEVICES$/.test(name)) return allocate.includes('_DEVICES`');
  return new RegExp(`\\b${name}\\b`).test(code);
}

test('the docs name VIO4WD_ and VIRTIOFWD_ variables', () => {
  const names = new Set(named().map((n) => n.name));
  for (const want of ['VIRTIOFWD_CPU_MASK', 'VIRTIOFWD_STATIC_VFS', 'VIO4WD_CORE_SCHED_ENABLE', 'VIO4WD_IPC_DIR']) assert.ok(names.has(want), want);
});

test('every variable the docs name is read by the code', () => {
  const wrong = named().filter((n) => !read(n.name)).map((n) => `${n.where}: ${n.name}`);
  assert.deepEqual([...new Set(wrong)], []);
  assert.equal(read('VIRTIOFWD_NO_SUCH_SETTING'), false);
  assert.equal(read('VIO4WD_DEVICE_R1_SOCKET'), true);
});

test('docs/cni.md\'s error table has every code vio4wd-cni returns', async () => {
  const { CniCode } = await import('../../src/cni/protocol.js');
  const table = readFileSync('docs/cni.md', 'utf8').split('## Errors')[1]!.split('\n## ')[0]!;
  const shown = new Set([...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1])));
  const returned = new Set<number>();
  for (const f of files('src/cni').concat(files('src/agent'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/CniCode\.(\w+)/g)) returned.add(CniCode[m[1] as keyof typeof CniCode]);
  }
  assert.ok(returned.size >= 8);
  assert.deepEqual([...returned].filter((c) => c !== undefined && !shown.has(c)).sort((a, b) => a - b), []);
});
