// The `kubectl get` output the README shows has the columns the CRDs give kubectl (crds/, their
// additionalPrinterColumns; priority-1 columns only with -o wide), and the short names the docs
// use are the CRDs' own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parse } from 'yaml';
import { markdownFiles } from '../helpers/markdown.js';

interface Crd { spec: { names: { plural: string; singular: string; kind: string; shortNames?: string[] }; versions: { additionalPrinterColumns?: { name: string; priority?: number }[] }[] } }
const crds = readdirSync('crds').filter((f) => f.endsWith('.yaml')).map((f) => parse(readFileSync(`crds/${f}`, 'utf8')) as Crd);

function columns(resource: string, wide: boolean): string[] {
  const crd = crds.find((c) => [c.spec.names.plural, c.spec.names.singular, ...(c.spec.names.shortNames ?? [])].includes(resource));
  assert.ok(crd, `a CRD is named ${resource}`);
  return ['NAME', ...(crd.spec.versions[0]!.additionalPrinterColumns ?? []).filter((c) => wide || !c.priority).map((c) => c.name.toUpperCase())];
}

test('the README\'s kubectl get output has the CRDs\' columns', () => {
  const lines = readFileSync('README.md', 'utf8').split('\n');
  let checked = 0;
  lines.forEach((l, i) => {
    const cmd = /^kubectl get (\S+)(.*)$/.exec(l.trim());
    const header = lines[i + 1]?.trim();
    if (!cmd || !header?.startsWith('NAME ')) return;
    assert.deepEqual(header.split(/\s+/), columns(cmd[1]!, /-o wide/.test(cmd[2]!)), `README.md:${i + 2}`);
    checked++;
  });
  assert.ok(checked >= 2, `${checked} outputs`);
});

test('the vio4wd resources the docs\' kubectl commands name exist', () => {
  const names = new Set(crds.flatMap((c) => [c.spec.names.plural, c.spec.names.singular, ...(c.spec.names.shortNames ?? [])]));
  const ours = /^(vr|vrelay|vfn|vfnode|vfp|virtio\w*)(\/|$)/;
  const wrong: string[] = [];
  for (const f of markdownFiles()) {
    for (const m of readFileSync(f, 'utf8').matchAll(/kubectl (?:get|describe|wait|delete|edit|patch|explain)(?: --?[\w-]+(?:[= ]\S+)?)* ([a-z][\w.-]*)/g)) {
      const r = m[1]!.split('/')[0]!;
      if (ours.test(r) && !names.has(r.replace(/\.vio4wd\.io$/, ''))) wrong.push(`${f}: ${m[0]}`);
    }
  }
  assert.deepEqual(wrong, []);
  assert.throws(() => columns('vrs', false));
});
