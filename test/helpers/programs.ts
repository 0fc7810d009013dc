// The programs the project starts, found in its sources, and the bootstrap's manifest of what it
// installs (scripts/packages.tsv). The check that a fresh machine has every program the tests,
// scripts and demo call lives in test/unit/bootstrap.manifest.test.ts (sources against manifest)
// and test/integration/bootstrap.host.test.ts (manifest against the machine).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface ManifestRow {
  /** deb:<package>, npm:<package>, step:<bootstrap step>, base:<package>, machine:<program> */
  source: string;
  profiles: string[];
  programs: string[];
}

export function readManifest(path = join(ROOT, 'scripts', 'packages.tsv')): ManifestRow[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const [source = '', profiles = '', programs = ''] = l.split('\t');
      return { source, profiles: profiles.split(',').filter(Boolean), programs: programs.split(',').filter(Boolean) };
    });
}

function walk(dir: string, keep: (p: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'fixtures') continue;
    if (statSync(p).isDirectory()) out.push(...walk(p, keep));
    else if (keep(p)) out.push(p);
  }
  return out;
}

/** A program name as a command would give it (no path, no variable, no option). */
const PROGRAM = /^[a-z][a-z0-9_.+-]*$/;

// Where a TypeScript source names the program a child process runs: the first argument of the
// child_process calls and of the helpers that wrap them (Netns.exec/spawn, execFileP, run, ...),
// and the program after a wrapper inside an argv (setpriv ... --, taskset -c N, stdbuf -oL,
// ip netns exec NS, a `cmd = '...'` choice).
const TS_PATTERNS: RegExp[] = [
  /\b(?:spawn|spawnSync|execFile|execFileSync|execFileP|execFileAsync)\(\s*'([^'\s]+)'/g,
  /\.(?:spawn|exec|execFile|run|spawnSync)\(\s*'([^'\s]+)'\s*,\s*\[/g,
  /\brun\(\s*'([^'\s]+)'\s*,\s*\[/g,
  /'--'\s*,\s*'([^'\s]+)'/g,
  /'taskset'\s*,\s*'-c'\s*,\s*[^,]+,\s*'([^'\s]+)'/g,
  /'stdbuf'\s*,\s*'-oL'\s*,\s*'([^'\s]+)'/g,
  /'netns'\s*,\s*'exec'\s*,\s*[^,\]]+,\s*'([^'\s]+)'/g,
  /\bcmd\s*=\s*'([^'\s]+)'/g,
];

export interface Use {
  program: string;
  file: string;
}

/** Programs started by the TypeScript under src/, test/ and scripts/. */
export function programsInTypeScript(): Use[] {
  const uses: Use[] = [];
  const files = ['src', 'test', 'scripts'].flatMap((d) => walk(join(ROOT, d), (p) => /\.(ts|mjs)$/.test(p)));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const re of TS_PATTERNS)
      for (const m of text.matchAll(re)) {
        const program = m[1]!;
        if (PROGRAM.test(program)) uses.push({ program, file: relative(ROOT, f) });
      }
  }
  return uses;
}

const SHELL_WORDS = new Set([
  // keywords and builtins
  'if', 'then', 'else', 'elif', 'fi', 'for', 'while', 'until', 'do', 'done', 'case', 'esac', 'in', 'function',
  'local', 'export', 'unset', 'set', 'shift', 'return', 'exit', 'source', 'echo', 'printf', 'read', 'cd',
  'trap', 'wait', 'eval', 'exec', 'declare', 'readonly', 'true', 'false', 'test', 'command', 'type', 'break',
  'continue', 'pushd', 'popd', 'pwd', 'let', 'time', 'kill', 'umask', 'mapfile', 'hash', 'builtin', 'shopt', 'getopts',
]);

/**
 * The code of a shell script with what is not code taken out: comments, heredoc bodies (a
 * Containerfile, a config), and the literal text of quoted strings (each becomes `S`); command
 * substitutions inside double quotes stay, since they run commands.
 */
export function shellCode(text: string): string {
  let out = '';
  let i = 0;
  const n = text.length;
  const pendingHeredocs: string[] = [];
  // one nesting level per open $( ... ) inside a double-quoted string
  const dquoteStack: number[] = [];
  let depth = 0;
  let inDouble = false;
  while (i < n) {
    const c = text[i]!;
    if (inDouble) {
      if (c === '\\') { i += 2; continue; }
      if (c === '"') { inDouble = false; out += 'S'; i++; continue; }
      if (c === '$' && text[i + 1] === '(') { dquoteStack.push(depth); inDouble = false; out += '$('; depth++; i += 2; continue; }
      i++;
      continue;
    }
    if (c === '\\') { out += text.slice(i, i + 2); i += 2; continue; }
    if (c === "'") { const j = text.indexOf("'", i + 1); out += 'S'; i = j < 0 ? n : j + 1; continue; }
    if (c === '"') { inDouble = true; i++; continue; }
    if (c === '#' && (i === 0 || /[\s;(|&]/.test(text[i - 1]!))) { while (i < n && text[i] !== '\n') i++; continue; }
    if (c === '(') { depth++; out += c; i++; continue; }
    if (c === ')') {
      depth--; out += c; i++;
      if (dquoteStack.length && dquoteStack[dquoteStack.length - 1] === depth) { dquoteStack.pop(); inDouble = true; }
      continue;
    }
    if (c === '<' && text[i + 1] === '<' && text[i + 2] !== '<') {
      const m = /^<<-?\s*(['"]?)([A-Za-z_]+)\1/.exec(text.slice(i));
      if (m) { pendingHeredocs.push(m[2]!); out += '<<H'; i += m[0].length; continue; }
    }
    if (c === '\n' && pendingHeredocs.length) {
      out += '\n';
      i++;
      while (pendingHeredocs.length) {
        const end = pendingHeredocs.shift()!;
        while (i < n) {
          const eol = text.indexOf('\n', i);
          const line = text.slice(i, eol < 0 ? n : eol);
          i = eol < 0 ? n : eol + 1;
          if (line.trim() === end) break;
        }
      }
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** The shell scripts the bootstrap and the test environment run on the host. */
export function shellScripts(): string[] {
  return [
    join(ROOT, 'scripts', 'bootstrap'),
    ...walk(join(ROOT, 'scripts'), (p) => p.endsWith('.sh')),
    ...walk(join(ROOT, 'test', 'env'), (p) => p.endsWith('.sh') || p.endsWith('kube-env')),
  ];
}

/** Programs started by the shell scripts the bootstrap and the test environment run. */
export function programsInShell(): Use[] {
  const files = shellScripts().map((f) => ({ f, code: shellCode(readFileSync(f, 'utf8')) }));
  // functions are shared: the bootstrap's steps are sourced, test/env's scripts source lib.sh
  const functions = new Set(files.flatMap(({ code }) => [...code.matchAll(/^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{?/gm)].map((m) => m[1]!)));
  const uses: Use[] = [];
  for (const { f, code } of files) {
    const plain = code
      .replace(/\\\n/g, ' ')
      .replace(/\(\([^\n]*?\)\)/g, 'A') // arithmetic: (( i++ )), $(( n + 1 ))
      .replace(/\[\[[^\n]*?\]\]/g, 'C') // conditions: [[ $p =~ ^(a|b)$ ]]
      .replace(/\b[A-Za-z_]\w*\+?=\([^)]*\)/g, 'V'); // array assignments: x=(a b c)
    for (let line of plain.split('\n')) {
      // a case label (`kubectl) ...`) is not a command
      line = line.replace(/^\s*[^\s()]+\)\s*/, '');
      const re = /(?:^|\|\||&&|[|;(!]|\$\(|\b(?:then|do|else|xargs|time|exec|sudo|nice|setsid|timeout \d+)\b)\s*((?:[A-Za-z_][A-Za-z0-9_]*=[^\s(){}]*\s+)*)([a-z][a-z0-9_.+-]*)(?=\s|$|\))/g;
      for (const m of line.matchAll(re)) {
        const w = m[2]!;
        if (SHELL_WORDS.has(w) || functions.has(w) || !PROGRAM.test(w)) continue;
        uses.push({ program: w, file: relative(ROOT, f) });
      }
    }
  }
  return uses;
}
