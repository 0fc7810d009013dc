// Readers and parsers for the host files the doctor looks at, all under a root directory so that
// tests can point it at a tree they built. Missing files read as null.
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

export class Host {
  constructor(readonly root: string) {}

  path(rel: string): string {
    return join(this.root, rel);
  }

  text(rel: string): string | null {
    try {
      return readFileSync(this.path(rel), 'utf8').trim();
    } catch {
      return null;
    }
  }

  int(rel: string): number | null {
    const s = this.text(rel);
    return s !== null && /^-?\d+$/.test(s) ? Number(s) : null;
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }

  list(rel: string): string[] {
    try {
      return readdirSync(this.path(rel)).sort();
    } catch {
      return [];
    }
  }

  link(rel: string): string | null {
    try {
      return basename(readlinkSync(this.path(rel)));
    } catch {
      return null;
    }
  }

  /** The kernel command line split into key -> values (a key may repeat). */
  cmdline(): Map<string, string[]> {
    return parseCmdline(this.text('proc/cmdline') ?? '');
  }

  /** NUMA node numbers present under sys/devices/system/node, ascending. */
  numaNodes(): number[] {
    return this.list('sys/devices/system/node')
      .map((n) => /^node(\d+)$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }
}

/** "a=1 b c=2,3 -- init args" -> {a:[1], b:[''], c:['2,3']}; stops at "--" (init's arguments). */
export function parseCmdline(line: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const tok of line.trim().split(/\s+/)) {
    if (tok === '--') break;
    if (!tok) continue;
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    const val = eq < 0 ? '' : tok.slice(eq + 1).replace(/^"|"$/g, '');
    out.set(key, [...(out.get(key) ?? []), val]);
  }
  return out;
}

/** Parses a kernel CPU list ("0-3,8,10-11") into sorted CPU numbers; flags words are skipped. */
export function parseCpuList(s: string | null | undefined): number[] {
  const cpus = new Set<number>();
  for (const part of (s ?? '').split(',')) {
    const m = /^\s*(\d+)(?:-(\d+)(?::(\d+)\/(\d+))?)?\s*$/.exec(part);
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    // "0-15:2/4": in each group of 4 take the first 2 (kernel cpulist groups)
    const used = m[3] === undefined ? 1 : Number(m[3]);
    const group = m[4] === undefined ? 1 : Number(m[4]);
    for (let c = a; c <= b; c++) if ((c - a) % group < used) cpus.add(c);
  }
  return [...cpus].sort((x, y) => x - y);
}

/** Formats CPU numbers back as a compact list: [0,1,2,5] -> "0-2,5". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

/** /proc/mounts lines; octal escapes (\040 for a space) decoded. */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    out.push({ source: unescape(f[0]!), target: unescape(f[1]!), fstype: f[2]!, options: f[3]!.split(',') });
  }
  return out;
}
