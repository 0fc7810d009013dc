// The project's Markdown as a user reads it: which files, their fenced code blocks, inline code
// spans and links, with line numbers, for the tests that keep the docs true to the code.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Every Markdown file git tracks (README, docs/, examples/, bench/, native/, test/). */
export function markdownFiles(): string[] {
  return execFileSync('git', ['ls-files', '*.md'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).sort();
}

export interface CodeBlock { file: string; line: number; lang: string; text: string }
export interface Span { file: string; line: number; text: string }

/** Fenced code blocks (``` or ~~~, any indent), with the line of their first content line. */
export function codeBlocks(file: string, text = readFileSync(file, 'utf8')): CodeBlock[] {
  const out: CodeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence!); j++) body.push(lines[j]!.slice(Math.min(indent!.length, lines[j]!.length - lines[j]!.trimStart().length)));
    out.push({ file, line: i + 2, lang: lang!.toLowerCase(), text: body.join('\n') });
    i = j;
  }
  return out;
}

/** The text outside fenced code blocks, with those lines blanked (line numbers stay). */
export function prose(text: string): string {
  let fence: string | undefined;
  return text.split('\n').map((l) => {
    const m = /^\s*(```+|~~~+)/.exec(l);
    if (m) {
      if (fence === undefined) fence = m[1];
      else if (l.trimStart().startsWith(fence)) fence = undefined;
      return '';
    }
    return fence === undefined ? l : '';
  }).join('\n');
}

/** Inline code spans of the prose (tables unescape `\|`). */
export function inlineCode(file: string, text = readFileSync(file, 'utf8')): Span[] {
  const out: Span[] = [];
  prose(text).split('\n').forEach((l, i) => {
    for (const m of l.matchAll(/(`+)(.+?)\1/g)) out.push({ file, line: i + 1, text: m[2]!.replaceAll('\\|', '|').trim() });
  });
  return out;
}

/** Markdown links `[text](target)` of the prose (code spans removed first). */
export function links(file: string, text = readFileSync(file, 'utf8')): Span[] {
  const out: Span[] = [];
  prose(text).split('\n').forEach((l, i) => {
    const bare = l.replace(/(`+).+?\1/g, '');
    for (const m of bare.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ file, line: i + 1, text: m[1]! });
  });
  // links whose text spans a line break: `[API Priority and\nFairness](https://...)`
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function anchor(heading: string): string {
  return heading.trim().toLowerCase()
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings, duplicates numbered as GitHub does (-1, -2 ...). */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of prose(text).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (!m) continue;
    const a = anchor(m[1]!);
    const n = seen.get(a) ?? 0;
    seen.set(a, n + 1);
    out.add(n === 0 ? a : `${a}-${n}`);
  }
  return out;
}
