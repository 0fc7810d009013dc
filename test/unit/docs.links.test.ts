// Every relative link in the project's Markdown (README, docs/, examples/, bench/, native/, test/)
// reaches a file, and every #anchor a heading of it, as GitHub renders them; every repository path
// the prose names (`src/...`, `bench/results/...`, `test/integration/...`) exists. The README's
// figures link their bench/RESULTS.md sections and raw results: a renamed section or a moved
// results file fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { anchor, anchors, links, markdownFiles, prose } from '../helpers/markdown.js';

/** What is wrong with a link from `file`, or nothing (external links are not fetched). */
function broken(file: string, target: string): string | undefined {
  if (/^[a-z][a-z+.-]*:/i.test(target)) return undefined;
  const [path, frag] = target.split('#');
  const to = path ? normalize(join(dirname(file), path)) : file;
  if (!existsSync(to)) return `no file ${to}`;
  if (frag !== undefined && to.endsWith('.md') && statSync(to).isFile() && !anchors(readFileSync(to, 'utf8')).has(frag)) return `no heading #${frag} in ${to}`;
  return undefined;
}

test('the Markdown files have links to check', () => {
  const files = markdownFiles();
  for (const f of ['README.md', 'docs/install.md', 'bench/RESULTS.md', 'examples/kubevirt/README.md']) assert.ok(files.includes(f), f);
  assert.ok(files.flatMap((f) => links(f)).filter((l) => l.text.includes('#')).length >= 20, 'links with anchors');
});

test('every relative link reaches a file and every anchor a heading', () => {
  const wrong: string[] = [];
  for (const f of markdownFiles()) {
    for (const l of links(f)) {
      const why = broken(f, l.text);
      if (why) wrong.push(`${f}:${l.line}: (${l.text}): ${why}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('every repository path the prose names exists', () => {
  const re = /(?<![\w./-])((?:src|test|bench|scripts|docs|examples|helm|crds|schemas|native|bin|packaging|proto)\/[\w./-]*\w)/g;
  const wrong: string[] = [];
  for (const f of markdownFiles()) {
    prose(readFileSync(f, 'utf8')).split('\n').forEach((l, i) => {
      for (const m of l.matchAll(re)) {
        const p = m[1]!;
        if (/^native\/build/.test(p) || m.index > 0 && l[m.index + p.length] === '<') continue; // build output, or a pattern
        const ok = [p, join(dirname(f), p), `${p}.test.ts`, `${p}.ts`].some((c) => existsSync(c));
        if (!ok) wrong.push(`${f}:${i + 1}: ${p}`);
      }
    });
  }
  assert.deepEqual(wrong, []);
});

test('the README figures link their bench/RESULTS.md section and raw results', () => {
  const readme = readFileSync('README.md', 'utf8');
  const perf = readme.slice(readme.indexOf('## Performance'), readme.indexOf('## Development'));
  const rows = perf.split('\n').filter((l) => /^\| (?!figure|---)/.test(l));
  assert.ok(rows.length >= 8, `${rows.length} figure rows`);
  for (const row of rows) {
    const where = row.split('|').at(-2)!;
    assert.match(where, /\]\(bench\/RESULTS\.md#[\w-]+\)/, `the figure links its section: ${row.slice(0, 80)}`);
    assert.match(where, /\]\(bench\/results\/[\w.-]+\)|raw not kept/, `the figure links its raw results (or says none were kept): ${row.slice(0, 80)}`);
  }
});

test('the checks can fail: a missing file, a missing anchor, anchors as GitHub makes them', () => {
  assert.match(broken('README.md', 'docs/nope.md') ?? '', /no file docs\/nope\.md/);
  assert.match(broken('README.md', 'docs/install.md#nope') ?? '', /no heading #nope/);
  assert.equal(broken('README.md', 'docs/install.md#3-install'), undefined);
  assert.equal(anchor('A. Throughput: testpmd, OVS-DPDK, `vio4wd` (64 B)'), 'a-throughput-testpmd-ovs-dpdk-vio4wd-64-b');
  assert.deepEqual([...anchors('# Stats\n## Stats\n```\n# not a heading\n```\n')], ['stats', 'stats-1']);
});
