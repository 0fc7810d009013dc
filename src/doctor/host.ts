// Readers and parsers for the host files the doctor looks at, all under a root directory so that
// tests can point it at a tree they built. Missing files read as null.
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseCpuList } from '../util/identifiers.js';

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

/** A CPU list a kernel wrote ("0-3,8,10-11", isolcpus= with its flag words): sorted numbers,
 *  empty when the text is missing. */
export function kernelCpuList(s: string | null | undefined): number[] {
  return parseCpuList(s, 'cpus', { kernel: true });
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
