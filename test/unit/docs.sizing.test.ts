// docs/sizing.md's table of relays -> hugepages is the engine's formula (src/engine/sizing.ts),
// the one vio4wd doctor and the chart use: recomputed here so the docs cannot drift from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { engineSizing } from '../../src/engine/sizing.js';
import { hugepagesForRelays } from '../../src/doctor/index.js';

const cell = (pages: number): string => `${pages} (${pages * 2}Mi)`;

test('docs/sizing.md: every row of the relays -> hugepages table is what the formula gives', () => {
  const text = readFileSync('docs/sizing.md', 'utf8');
  const rows = [...text.matchAll(/^\| (\d+) \| (\d+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$/gm)];
  assert.ok(rows.length >= 8, `found ${rows.length} rows`);
  for (const [, r, pools, plain, big, jumbo] of rows) {
    const relays = Number(r);
    assert.equal(Number(pools), engineSizing({ relays }).pools, `${relays} relays: pools`);
    assert.equal(plain!.trim(), cell(hugepagesForRelays(relays, { workers: 1 })), `${relays} relays: default pool`);
    assert.equal(big!.trim(), cell(hugepagesForRelays(relays, { workers: 1, poolQueuePairs: 1024 })), `${relays} relays: poolQueuePairs 1024`);
    assert.equal(jumbo!.trim(), cell(hugepagesForRelays(relays, { workers: 1, jumbo: true })), `${relays} relays: jumbo`);
  }
  // the chart's default (values.yaml: relays 512) is the row the docs quote
  assert.match(text, new RegExp(`hugepages-2Mi: ${hugepagesForRelays(512, { workers: 1 }) * 2}Mi`));
});

test('docs/install.md quotes the formula for the first relay and for the chart\'s default', () => {
  const text = readFileSync('docs/install.md', 'utf8').replace(/\s+/g, ' ');
  const one = hugepagesForRelays(1, { workers: 1 });
  const chart = hugepagesForRelays(512, { workers: 1 });
  assert.match(text, new RegExp(`the first relay needs ${one} x 2 MiB pages \\(${one * 2} MiB`));
  assert.match(text, new RegExp(`512 relays ${chart} pages \\(${chart * 2} MiB`));
});
