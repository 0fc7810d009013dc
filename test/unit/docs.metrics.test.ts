// Every Prometheus metric name the docs, the README and the chart's alerts and dashboard use is one
// the agent or the operator defines (src/), so a renamed metric cannot leave a dashboard panel or
// an alert silently empty. Brace lists expand (`vio4wd_relay_{rx,tx}_total`); a `*` matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { markdownFiles } from '../helpers/markdown.js';

function files(dir: string, re: RegExp): string[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p, re) : re.test(n) ? [p] : [];
  });
}

/** Names and name prefixes (`vio4wd_process_`) the code registers. */
function defined(): { names: Set<string>; prefixes: string[] } {
  const names = new Set<string>();
  const prefixes: string[] = [];
  for (const f of files('src', /\.ts$/)) {
    for (const m of readFileSync(f, 'utf8').matchAll(/['"`](vio4wd_[a-z_]+)['"`]/g)) {
      if (m[1]!.endsWith('_')) prefixes.push(m[1]!);
      else names.add(m[1]!);
    }
  }
  return { names, prefixes };
}

function expand(name: string): string[] {
  const m = /\{([^{}]*)\}/.exec(name);
  if (!m) return [name];
  return m[1]!.split(',').flatMap((alt) => expand(name.slice(0, m.index) + alt + name.slice(m.index + m[0].length)));
}

/** Metric names used: `vio4wd_...` spans followed by a label set, a PromQL bracket or a word end. */
function used(): { where: string; name: string }[] {
  const out: { where: string; name: string }[] = [];
  const sources = [...markdownFiles().filter((f) => !f.startsWith('bench/')), ...files('helm/vio4wd', /\.(yaml|json|tpl|txt)$/)];
  for (const f of sources) {
    readFileSync(f, 'utf8').split('\n').forEach((l, i) => {
      for (const m of l.matchAll(/\bvio4wd_(?:[a-z_*]|\{[a-z_]+(?:,[a-z_]+)+\})+/g)) {
        // not metrics: the stats request's vio4wd_extended field, the .deb file name
        if (/^vio4wd_(extended|core_scheduler)$/.test(m[0]) || /^[<\d.]/.test(l[m.index + m[0].length] ?? '')) continue;
        for (const name of expand(m[0])) out.push({ where: `${f}:${i + 1}`, name });
      }
    });
  }
  return out;
}

function known(name: string, d: { names: Set<string>; prefixes: string[] }): boolean {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  if (d.names.has(name) || d.names.has(base) || d.prefixes.some((p) => name.startsWith(p))) return true;
  if (name.includes('*')) {
    const re = new RegExp(`^${name.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[a-z_]*')}$`);
    return [...d.names].some((n) => re.test(n));
  }
  return false;
}

test('the docs and the chart use metrics (the extraction finds them)', () => {
  const names = new Set(used().map((u) => u.name));
  assert.ok(names.size >= 40, `${names.size} names`);
  for (const want of ['vio4wd_relay_rx_packets_total', 'vio4wd_vf_dropped_packets_total', 'vio4wd_operator_leader']) assert.ok(names.has(want), want);
});

test('every metric name in the docs and the chart is one the code defines', () => {
  const d = defined();
  const wrong = used().filter((u) => !known(u.name, d)).map((u) => `${u.where}: ${u.name}`);
  assert.deepEqual([...new Set(wrong)], []);
});

test('the check can fail: a misspelt or removed metric is not known', () => {
  const d = defined();
  assert.equal(known('vio4wd_relay_rx_packet_total', d), false);
  assert.equal(known('vio4wd_workqueue_work_duration_seconds_bucket', d), true);
  assert.equal(known('vio4wd_operator_*_total', d), true);
  assert.deepEqual(expand('vio4wd_relay_{rx,tx}_{packets,bytes}_total').length, 4);
  assert.equal(known('vio4wd_relays', d), true);
});
