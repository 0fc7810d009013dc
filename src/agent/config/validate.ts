// Validates agent configuration with ajv and turns ajv's errors into messages that name the
// field (as a dotted path) and say how to fix it.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { AnySchema } from 'ajv';
import { agentConfigSchema, type AgentConfig } from './schema.js';

export interface ConfigProblem {
  /** Dotted path of the field, e.g. relays[0].vf.pciAddress */
  field: string;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'EINVAL';
  readonly problems: ConfigProblem[];
  constructor(source: string, problems: ConfigProblem[]) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  - ${p.field}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
    compiled = ajv.compile(agentConfigSchema as unknown as AnySchema);
  }
  return compiled;
}

/** Returns the problems found in `value`, most useful first; empty when it is valid. */
export function checkConfig(value: unknown): ConfigProblem[] {
  const validate = validator();
  if (validate(value)) return [];
  return explain(validate.errors ?? [], value);
}

export function assertConfig(value: unknown, source: string): asserts value is AgentConfig {
  const problems = checkConfig(value);
  if (problems.length) throw new ConfigError(source, problems);
}

/** instancePath /relays/0/vf -> relays[0].vf */
export function fieldName(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^[0-9]+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || '(top level)';
}

function explain(errors: ErrorObject[], root: unknown): ConfigProblem[] {
  // oneOf failures repeat each branch's error; keep the oneOf line and drop the branch noise
  const oneOfPaths = new Set(errors.filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath));
  const seen = new Set<string>();
  const out: ConfigProblem[] = [];
  for (const e of errors) {
    if (e.keyword !== 'oneOf' && oneOfPaths.has(e.instancePath) && e.schemaPath.includes('/oneOf/')) continue;
    const p = describe(e, root);
    const key = `${p.field}\n${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out;
}

function describe(e: ErrorObject, root: unknown): ConfigProblem {
  const params = e.params as Record<string, unknown>;
  const schema = e.parentSchema as { description?: string } | undefined;
  const hint = schema?.description ? ` (${schema.description})` : '';
  const actual = valueAt(root, e.instancePath);
  switch (e.keyword) {
    case 'required':
      return { field: fieldName(e.instancePath, String(params.missingProperty)), message: 'is required: add it' };
    case 'additionalProperties': {
      const prop = String(params.additionalProperty);
      const allowed = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
      const near = closest(prop, allowed);
      const fix = near ? `did you mean "${near}"?` : allowed.length ? `known fields: ${allowed.join(', ')}` : 'remove it';
      return { field: fieldName(e.instancePath, prop), message: `unknown field: ${fix}` };
    }
    case 'enum':
      return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} is not allowed: use one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'type':
      return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} is not ${article(String(params.type))}: write ${article(String(params.type))} here` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} ${e.message ?? 'is out of range'}${hint}` };
    case 'pattern':
      if (params.pattern === '^/') return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} is not an absolute path: start it with /` };
      return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} has the wrong form${hint || ` (must match ${String(params.pattern)})`}` };
    case 'minItems':
      return { field: fieldName(e.instancePath), message: `needs at least ${String(params.limit)} item(s)${hint}` };
    case 'maxItems':
      return { field: fieldName(e.instancePath), message: `takes at most ${String(params.limit)} item(s)${hint}` };
    case 'minLength':
      return { field: fieldName(e.instancePath), message: `must not be empty${hint}` };
    case 'oneOf':
      return { field: fieldName(e.instancePath), message: `${JSON.stringify(actual)} is not valid${hint}` };
    default:
      return { field: fieldName(e.instancePath), message: `${e.message ?? 'is invalid'}${hint}` };
  }
}

function article(t: string): string {
  const word = t === 'integer' ? 'whole number' : t;
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

function valueAt(root: unknown, instancePath: string): unknown {
  let cur: unknown = root;
  for (const p of instancePath.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

/** The allowed name nearest to `word` (edit distance <= 2, or a case-insensitive match). */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    if (c.toLowerCase() === word.toLowerCase()) return c;
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
