// The shape of the source tree (issue #15): no hand-written file in src/ grows past 400 lines,
// so that each concept keeps a file of its own a reader can take in. A file that outgrows it
// is split by concern (see src/metrics/ and src/agent/ for how); generated files are exempt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from '../helpers/programs.js';

const MAX_LINES = 400;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** A generated file says so in its first lines (src/control/wire.gen.ts: "Generated ... do not edit"). */
function generated(text: string): boolean {
  return /\bgenerated\b.*\bdo not edit\b/i.test(text.split('\n', 3).join('\n'));
}

test(`no hand-written file in src/ is over ${MAX_LINES} lines`, () => {
  const files = sources(join(ROOT, 'src'));
  assert.ok(files.length > 50, `found only ${files.length} files under src/`);
  const long = files.flatMap((f) => {
    const text = readFileSync(f, 'utf8');
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    return lines > MAX_LINES && !generated(text) ? [`${relative(ROOT, f)}: ${lines} lines`] : [];
  });
  assert.deepEqual(long, [], `split these by concern (at most ${MAX_LINES} lines each)`);
});
