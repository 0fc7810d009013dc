// The configuration a user copies from the docs is what the code accepts: the agent config in the
// README and docs (the agent's own ajv validation and resolution), the chart values in docs and
// the `--set` lines of their helm commands (helm/vio4wd/values.schema.json, with values.yaml
// under them, as helm merges them), every setting the prose names by its dotted path (in one of
// the two schemas), and DRA RelayConfig parameters (the driver's own check). The Kubernetes
// objects in docs/ and examples/ go to a real apiserver in test/integration/docs.examples.kube.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { Ajv } from 'ajv';
import { parseConfigText, resolveConfig } from '../../src/agent/config/load.js';
import { parseRelayConfig } from '../../src/dra/config.js';
import { codeBlocks, inlineCode, markdownFiles, prose } from '../helpers/markdown.js';

type Json = Record<string, unknown>;
const valuesSchema = JSON.parse(readFileSync('helm/vio4wd/values.schema.json', 'utf8')) as Json;
const agentSchema = JSON.parse(readFileSync('schemas/agent-config.schema.json', 'utf8')) as Json;
const defaults = parseYaml(readFileSync('helm/vio4wd/values.yaml', 'utf8')) as Json;
const AGENT_KEYS = Object.keys(agentSchema.properties as Json);
const VALUES_KEYS = Object.keys(valuesSchema.properties as Json);

const yamlBlocks = () => markdownFiles().flatMap((f) => codeBlocks(f)).filter((b) => b.lang === 'yaml');

function merge(base: unknown, over: unknown): unknown {
  if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof over !== 'object' || over === null || Array.isArray(over)) return over;
  const out: Json = { ...(base as Json) };
  for (const [k, v] of Object.entries(over as Json)) out[k] = merge(out[k], v);
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validValues = ajv.compile(valuesSchema);
/** helm's check of a values override: values.yaml merged under it, then the schema. */
function valuesProblems(over: Json): string[] {
  return validValues(merge(defaults, over)) ? [] : (validValues.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}

/** The subschema at a dotted path, or undefined where the schema has no such field. */
function at(schema: unknown, path: string[]): unknown {
  if (path.length === 0) return schema;
  const s = schema as Json | undefined;
  if (!s || typeof s !== 'object') return undefined;
  for (const alt of [...((s.oneOf ?? []) as unknown[]), ...((s.anyOf ?? []) as unknown[]), ...((s.allOf ?? []) as unknown[])]) {
    const r = at(alt, path);
    if (r !== undefined) return r;
  }
  const [head, ...rest] = path as [string, ...string[]];
  const props = s.properties as Json | undefined;
  if (props && Object.hasOwn(props, head)) return at(props[head], rest);
  for (const [re, sub] of Object.entries((s.patternProperties ?? {}) as Json)) if (new RegExp(re).test(head)) return at(sub, rest);
  if (typeof s.additionalProperties === 'object') return at(s.additionalProperties, rest);
  if (s.items) return at(s.items, path);
  // a free-form object (agent.extraConfig is the agent config)
  if (s.type === 'object' && s.additionalProperties !== false && !props) return {};
  return undefined;
}

/** `--set a.b=v`, `--set-json 'a.b=[...]'` of the helm command lines in the docs' shell blocks. */
function setFlags(): { where: string; path: string; value: unknown }[] {
  const out: { where: string; path: string; value: unknown }[] = [];
  for (const f of markdownFiles()) {
    for (const b of codeBlocks(f).filter((x) => ['', 'sh', 'bash', 'console'].includes(x.lang))) {
      const text = b.text.replace(/\\\n\s*/g, ' ');
      if (!/\bhelm (install|upgrade|template)\b/.test(text)) continue;
      for (const m of text.matchAll(/--set(-json|-string)?[ =]('([^']*)'|(\S+))/g)) {
        const [path, ...v] = (m[3] ?? m[4]!).split('=');
        const raw = v.join('=');
        out.push({ where: `${f}:${b.line}`, path: path!, value: m[1] === '-json' ? JSON.parse(raw) : m[1] === '-string' ? raw : parseYaml(raw) });
      }
    }
  }
  return out;
}

function nest(path: string, value: unknown): Json {
  return path.split('.').reduceRight<unknown>((v, k) => ({ [k]: v }), value) as Json;
}

test('the agent configs shown in the docs are valid and resolve', () => {
  const agentBlocks = yamlBlocks().filter((b) => {
    const top = Object.keys((parseYaml(b.text) ?? {}) as Json);
    return top.length > 0 && top.every((k) => AGENT_KEYS.includes(k)) && !top.includes('agent');
  });
  assert.ok(agentBlocks.some((b) => b.file === 'README.md'), 'the README\'s standalone config is among them');
  for (const b of agentBlocks) {
    const { config } = parseConfigText(b.text, `${b.file}:${b.line}`);
    assert.doesNotThrow(() => resolveConfig(config), `${b.file}:${b.line}`);
  }
});

test('the chart values shown in the docs pass values.schema.json', () => {
  const chartBlocks = yamlBlocks().filter((b) => Object.keys((parseYaml(b.text) ?? {}) as Json).every((k) => VALUES_KEYS.includes(k)) && /^agent:|^operator:|^policies:|^metrics:/m.test(b.text) && !/^apiVersion:/m.test(b.text));
  assert.ok(chartBlocks.some((b) => b.file === 'docs/sizing.md'), 'docs/sizing.md\'s hugepages values are among them');
  for (const b of chartBlocks) assert.deepEqual(valuesProblems(parseYaml(b.text) as Json), [], `${b.file}:${b.line}`);
});

test('every --set of a helm command in the docs names a chart value and a valid one', () => {
  const sets = setFlags();
  assert.ok(sets.length >= 4, `found ${sets.length}`);
  for (const s of sets) {
    assert.notEqual(at(valuesSchema, s.path.split('.')), undefined, `${s.where}: --set ${s.path}: no such value in values.schema.json`);
    const problems = valuesProblems(nest(s.path, s.value));
    // sizing.md shows the refusal of a too small amount on purpose: the schema accepts the form
    assert.deepEqual(problems, [], `${s.where}: --set ${s.path}`);
  }
});

/** Dotted setting names in the prose (`agent.hugepages.relays`, `kubernetes.leaseRenewSeconds`). */
function namedSettings(): { where: string; path: string }[] {
  const out: { where: string; path: string }[] = [];
  const tops = new Set([...AGENT_KEYS, ...VALUES_KEYS]);
  for (const f of markdownFiles().filter((x) => !x.startsWith('bench/') && !x.startsWith('test/'))) {
    const text = readFileSync(f, 'utf8');
    for (const s of inlineCode(f, text)) {
      for (const part of s.text.split(/\s*\/\s*|,\s*/)) {
        const m = /^([a-z][A-Za-z]*)((?:\.[a-z][A-Za-z]*)+)(?:\.\*)?(?::.*|=.*)?$/.exec(part);
        if (!m || !tops.has(m[1]!) || /\.(io|dev|com|org|sock|json|yaml|md|ts)$/.test(m[0]) || /unknown field/.test(s.text)) continue;
        out.push({ where: `${f}:${s.line}`, path: `${m[1]}${m[2]}` });
      }
    }
    // install.md's values tables: `agent.hugepages.size` / `.relays`, and `flowControl.*`'s rows
    let prefix = '';
    let last = '';
    prose(text).split('\n').forEach((l, i) => {
      const star = /`(\w+(?:\.\w+)*)\.\*`/.exec(l);
      if (star && !l.startsWith('|')) prefix = star[1]!;
      else if (l.trim() !== '' && !l.startsWith('|') && !/^(Values|value)/.test(l)) prefix = '';
      if (!l.startsWith('| `')) return;
      for (const m of l.split('|')[1]!.matchAll(/`([.\w]+)`/g)) {
        let p = m[1]!;
        if (p.startsWith('.')) p = last.split('.').slice(0, -1).join('.') + p;
        else if (!p.includes('.') && prefix) p = `${prefix}.${p}`;
        if (!p.includes('.') && !tops.has(p)) continue;
        last = p;
        if (tops.has(p.split('.')[0]!)) out.push({ where: `${f}:${i + 1}`, path: p });
      }
    });
  }
  return out;
}

test('every setting the docs name by its dotted path exists in the chart values or the agent config', () => {
  const named = namedSettings();
  for (const want of ['agent.hugepages.amount', 'flowControl.lendablePercent', 'kubernetes.leaseRenewSeconds']) {
    assert.ok(named.some((n) => n.path === want), `${want} is among ${named.length}`);
  }
  const wrong = named.filter((n) => at(valuesSchema, n.path.split('.')) === undefined && at(agentSchema, n.path.split('.')) === undefined);
  assert.deepEqual(wrong.map((n) => `${n.where}: ${n.path}`), []);
});

test('the DRA RelayConfig parameters in docs and examples pass the driver\'s check', () => {
  const found: string[] = [];
  const docs = yamlBlocks().map((b) => ({ where: `${b.file}:${b.line}`, text: b.text }));
  const examples = ['examples/kubevirt-dra/10-resourceclaimtemplate.yaml'].map((f) => ({ where: f, text: readFileSync(f, 'utf8') }));
  for (const { where, text } of [...docs, ...examples]) {
    for (const doc of parseAllDocuments(text)) {
      const walk = (o: unknown): void => {
        if (typeof o !== 'object' || o === null) return;
        const r = o as Json;
        if (r.kind === 'RelayConfig') {
          found.push(where);
          assert.equal(r.apiVersion, 'vio4wd.io/v1alpha1', where);
          parseRelayConfig(r, where);
        }
        for (const v of Object.values(r)) walk(v);
      };
      walk(doc.toJS());
    }
  }
  assert.ok(found.length >= 2, `RelayConfigs found in ${found.join(', ')}`);
});

test('the checks can fail: a wrong value, an unknown setting, a bad RelayConfig', () => {
  assert.notDeepEqual(valuesProblems({ agent: { hugepages: { size: '4Mi' } } }), []);
  assert.equal(at(valuesSchema, ['agent', 'hugepages', 'relay']), undefined);
  assert.notEqual(at(valuesSchema, ['agent', 'extraConfig', 'engine']), undefined);
  assert.equal(at(agentSchema, ['engine', 'workerCpu']), undefined);
  assert.throws(() => parseRelayConfig({ apiVersion: 'vio4wd.io/v1alpha1', kind: 'RelayConfig', queues: 64 }, 'x'), /queues/);
});

/** Rows of docs/install.md's `| value | default |` tables: each path with the default shown. */
function defaultsShown(): { where: string; path: string; shown: string }[] {
  const out: { where: string; path: string; shown: string }[] = [];
  const lines = readFileSync('docs/install.md', 'utf8').split('\n');
  let inTable = false;
  let prefix = '';
  lines.forEach((l, i) => {
    const star = /\(`(\w+)\.\*`\)/.exec(l);
    if (star) prefix = star[1]!;
    if (/^\| value \| default \|/.test(l)) inTable = true;
    else if (!l.startsWith('|')) inTable = false;
    if (!inTable || !l.startsWith('| `')) return;
    const [, names, shown] = l.split('|');
    const paths = [...names!.matchAll(/`([.\w]+)`/g)].map((m) => m[1]!);
    const values = shown!.split(' / ').map((v) => /`([^`]*)`/.exec(v)?.[1]);
    let base = '';
    paths.forEach((p, k) => {
      const full = p.startsWith('.') ? `${base}${p}` : p.includes('.') || !prefix ? p : `${prefix}.${p}`;
      if (!p.startsWith('.')) base = full.split('.').slice(0, -1).join('.');
      if (values[k] !== undefined) out.push({ where: `docs/install.md:${i + 1}`, path: full, shown: values[k] });
    });
  });
  return out;
}

test('the defaults docs/install.md shows are values.yaml\'s', () => {
  const rows = defaultsShown();
  assert.ok(rows.length >= 25, `${rows.length} defaults`);
  const wrong: string[] = [];
  for (const r of rows) {
    const actual = r.path.split('.').reduce<unknown>((o, k) => (o as Json | undefined)?.[k], defaults);
    if (JSON.stringify(actual) !== JSON.stringify(parseYaml(r.shown))) wrong.push(`${r.where}: ${r.path}: docs say ${r.shown}, values.yaml has ${JSON.stringify(actual)}`);
  }
  assert.deepEqual(wrong, []);
});
