// Every `vio4wd ...` command line the docs show (code blocks and inline code in README, docs/,
// examples/, bench/, test/ READMEs, the chart's notes and values) names a subcommand and flags the
// real commander program has, and virtio-forwarder-style command lines parse as the drop-in
// parses them: a renamed or removed flag fails here before a user copies it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { isVirtioForwarderCommandLine, parseVirtioForwarderArgs } from '../../src/agent/config/vfwd-args.js';
import { codeBlocks, inlineCode, markdownFiles } from '../helpers/markdown.js';

interface Shown { where: string; line: string }

/** The `vio4wd` command lines a reader sees: code-block lines and inline code starting with it. */
function shownCommands(): Shown[] {
  const out: Shown[] = [];
  // a command, not prose or a results table: vio4wd alone, or followed by a word or an option
  const start = /^(?:\$\s+)?(?:sudo\s+)?vio4wd((?:\s+[a-z-][^\s]*.*)?)$/;
  for (const file of [...markdownFiles(), 'helm/vio4wd/templates/NOTES.txt']) {
    const text = readFileSync(file, 'utf8');
    const blocks = file.endsWith('.md') ? codeBlocks(file, text).filter((b) => ['', 'sh', 'bash', 'console', 'shell'].includes(b.lang)) : [{ file, line: 1, lang: '', text }];
    for (const b of blocks) {
      b.text.split('\n').forEach((l, i) => {
        const m = start.exec(l.trim());
        if (m) out.push({ where: `${file}:${b.line + i}`, line: `vio4wd${m[1]!.replace(/\s+#.*$/, '')}` });
      });
    }
    if (file.endsWith('.md')) {
      for (const s of inlineCode(file, text)) {
        const m = start.exec(s.text);
        if (m) out.push({ where: `${s.file}:${s.line}`, line: `vio4wd${m[1]}` });
      }
    }
  }
  return out;
}

/** Usage notation expanded: `a|b` alternatives, `[--x]` and `(--y | --z)` optional/grouped parts. */
function tokens(line: string): string[][] {
  const words = line.replace(/[[\]()]/g, ' ').split(/\s+/).filter((w) => w !== '' && w !== '|' && w !== '...' && w !== '[...]');
  const alts = words.map((w) => (/^[a-z][a-z-]*(\|[a-z][a-z-]*)+$/.test(w) ? w.split('|') : [w]));
  let lines: string[][] = [[]];
  for (const a of alts) lines = lines.flatMap((l) => a.map((w) => [...l, w]));
  return lines;
}

function optionNames(cmd: Command): Set<string> {
  const names = new Set(['-h', '--help']);
  for (let c: Command | null = cmd; c; c = c.parent) {
    for (const o of c.options) {
      if (o.short) names.add(o.short);
      if (o.long) names.add(o.long);
      if (o.negate && o.long) names.add(o.long);
    }
  }
  return names;
}

/** Checks one command line against the program; returns what is wrong, or nothing. */
function check(program: Command, words: string[]): string | undefined {
  const args = words.slice(1);
  if (isVirtioForwarderCommandLine(args)) {
    const concrete = args.map((a) => a.replace(/=\.\.\.$/, '=ipc:///var/run/virtio-forwarder/port_control')).filter((a) => a !== '...');
    try {
      parseVirtioForwarderArgs(concrete);
      return undefined;
    } catch (e) {
      return `virtio-forwarder command line: ${(e as Error).message}`;
    }
  }
  let cmd = program;
  let i = 0;
  for (; i < args.length && !args[i]!.startsWith('-'); i++) {
    const sub = cmd.commands.find((c) => c.name() === args[i] || c.aliases().includes(args[i]!));
    if (!sub) {
      if (cmd.commands.length === 0) break; // a positional argument
      const of = cmd === program ? '' : ` of "${cmd.name()}"`;
      return `no subcommand "${args[i]}"${of} (it has ${cmd.commands.map((c) => c.name()).join(', ')})`;
    }
    cmd = sub;
  }
  const known = optionNames(cmd);
  if (cmd === program && args.length > 0 && !['-V', '--version', '-h', '--help'].includes(args[0]!)) return `"${args[0]}" is not a vio4wd option`;
  for (const w of args.slice(i)) {
    if (!w.startsWith('-') || /^-\d/.test(w)) continue;
    const flag = w.split('=')[0]!;
    if (!known.has(flag)) return `"vio4wd ${cmd.name() === 'vio4wd' ? '' : commandPath(cmd)}" has no option ${flag} (it has ${[...known].filter((n) => n.startsWith('--')).join(', ')})`;
  }
  return undefined;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

test('the docs show vio4wd command lines (the extraction finds them)', () => {
  const shown = shownCommands();
  assert.ok(shown.length >= 40, `found only ${shown.length}`);
  for (const want of ['vio4wd relay add --id 3 --pci 0000:05:08.1', 'vio4wd doctor --relays N', 'vio4wd stats --workers']) {
    assert.ok(shown.some((s) => s.line.startsWith(want)), `${want} is among them`);
  }
});

test('every vio4wd command line in the docs names a real subcommand and real flags', async () => {
  const program = await buildProgram();
  const wrong: string[] = [];
  for (const s of shownCommands()) {
    for (const words of tokens(s.line)) {
      const why = check(program, words);
      if (why) wrong.push(`${s.where}: ${s.line}: ${why}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the check can fail: a misspelt flag, a missing subcommand, a bad virtio-forwarder option', async () => {
  const program = await buildProgram();
  assert.match(check(program, ['vio4wd', 'stats', '--wacth']) ?? '', /has no option --wacth/);
  assert.match(check(program, ['vio4wd', 'relay', 'list']) ?? '', /no subcommand "list" of "relay"/);
  assert.match(check(program, ['vio4wd', 'stat']) ?? '', /no subcommand "stat"/);
  assert.match(check(program, ['vio4wd', '-C1', '--no-such-option']) ?? '', /virtio-forwarder command line/);
  assert.equal(check(program, ['vio4wd', 'relay', 'add', '--id', '3', '--pci', '0000:05:08.1']), undefined);
  assert.deepEqual(tokens('vio4wd relay ls|add [--json]'), [['vio4wd', 'relay', 'ls', '--json'], ['vio4wd', 'relay', 'add', '--json']]);
});

/** Every command of the program (groups and leaves), but commander's own `help`. */
function allCommands(cmd: Command): Command[] {
  return cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => [c, ...allCommands(c)]);
}

/** A command's whole --help, with the text added after it (its Examples). */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  cmd.outputHelp();
  return out;
}

test('every command\'s --help has examples, and each example is a valid command line', async () => {
  const program = await buildProgram();
  const cmds = allCommands(program);
  assert.ok(cmds.length >= 12, cmds.map((c) => c.name()).join(' '));
  const wrong: string[] = [];
  for (const cmd of cmds) {
    const help = helpOf(cmd);
    const ex = help.split('\nExamples:\n')[1];
    if (ex === undefined) {
      wrong.push(`vio4wd ${commandPath(cmd)}: no Examples in --help`);
      continue;
    }
    const lines = ex.split('\n').map((l) => l.trim().replace(/\s+#.*$/, '').replace(/^(\w+=\S*\s+)+/, '').replace(/\s*<\s*\S+$/, '')).filter((l) => l.startsWith('vio4wd'));
    if (lines.length === 0) wrong.push(`vio4wd ${commandPath(cmd)}: no vio4wd line among its examples`);
    for (const l of lines) {
      const why = check(program, l.split(/\s+/).map((w) => w.replace(/^"(.*)"$/, '$1')));
      if (why) wrong.push(`vio4wd ${commandPath(cmd)} --help: ${l}: ${why}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('every `npm run` script the docs name is in package.json', () => {
  const scripts = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts);
  const named = new Set(markdownFiles().flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/\bnpm run ([a-z][\w:-]*)/g)].map((m) => m[1]!)));
  assert.ok(named.size >= 5, [...named].join(' '));
  assert.deepEqual([...named].filter((s) => !scripts.includes(s)), []);
});

test('the README\'s command table lists every vio4wd command', async () => {
  const program = await buildProgram();
  const readme = readFileSync('README.md', 'utf8');
  const table = readme.slice(readme.indexOf('## The `vio4wd` command'), readme.indexOf('## Standalone'));
  const listed = new Set([...table.matchAll(/^\| `vio4wd ([a-z-]+)/gm)].map((m) => m[1]!));
  assert.deepEqual(program.commands.map((c) => c.name()).filter((n) => n !== 'help' && !listed.has(n)), []);
});
