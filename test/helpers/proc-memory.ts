// A process's memory as the kernel counts it: the RSS by kind (/proc/<pid>/status) and by mapping
// (/proc/<pid>/smaps), grouped so that growth can be put down to its owner: malloc's main heap
// ([heap]), malloc's thread arenas (anonymous mappings at 64 MiB boundaries, glibc's heap size),
// file-backed pages (code touched for the first time), hugepages (DPDK), and the other anonymous
// memory (V8's heap pages, thread stacks, large blocks malloc maps one by one).
import { readFileSync } from 'node:fs';

/** glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heaps are mapped at this alignment. */
const ARENA_ALIGN = 64n * 1024n * 1024n;

export interface ProcMemory {
  rssKb: number;
  anonKb: number;
  fileKb: number;
  shmemKb: number;
  threads: number;
}

export interface Mapping {
  start: bigint;
  name: string;
  rssKb: number;
  anonKb: number;
  hugetlbKb: number;
}

export interface MemoryByOwner {
  /** malloc's main arena (brk) */
  heapKb: number;
  /** malloc's thread arenas, and how many 64 MiB-aligned heaps they have */
  arenasKb: number;
  arenaHeaps: number;
  /** file-backed pages: the node binary, libraries, the addon (grows as new code runs) */
  fileKb: number;
  /** hugetlbfs and memfd hugepages (DPDK's memory; not in VmRSS) */
  hugetlbKb: number;
  /** other anonymous memory: V8's heap pages, thread stacks, malloc's mmap'd blocks */
  otherAnonKb: number;
}

const field = (text: string, name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);

export function procMemory(pid: number): ProcMemory {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKb: field(s, 'VmRSS'), anonKb: field(s, 'RssAnon'), fileKb: field(s, 'RssFile'), shmemKb: field(s, 'RssShmem'), threads: field(s, 'Threads') };
}

export function smapsMappings(pid: number): Map<string, Mapping> {
  const out = new Map<string, Mapping>();
  let cur: Mapping | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      cur = { start: BigInt(`0x${h[1]!}`), name: h[3] ?? '', rssKb: 0, anonKb: 0, hugetlbKb: 0 };
      out.set(`${h[1]!}-${h[2]!}`, cur);
      continue;
    }
    const f = /^(Rss|Anonymous|Private_Hugetlb|Shared_Hugetlb):\s+(\d+)/.exec(line);
    if (!f || !cur) continue;
    if (f[1] === 'Rss') cur.rssKb = Number(f[2]);
    else if (f[1] === 'Anonymous') cur.anonKb = Number(f[2]);
    else cur.hugetlbKb += Number(f[2]);
  }
  return out;
}

/** Which owner a mapping's pages belong to (see MemoryByOwner). */
export function mappingOwner(m: Mapping): keyof Omit<MemoryByOwner, 'arenaHeaps'> {
  if (m.hugetlbKb > 0) return 'hugetlbKb';
  if (m.name === '[heap]') return 'heapKb';
  if (m.name.startsWith('/')) return 'fileKb';
  if (m.name === '' && m.start % ARENA_ALIGN === 0n) return 'arenasKb';
  return 'otherAnonKb';
}

export function memoryByOwner(maps: Map<string, Mapping>): MemoryByOwner {
  const out: MemoryByOwner = { heapKb: 0, arenasKb: 0, arenaHeaps: 0, fileKb: 0, hugetlbKb: 0, otherAnonKb: 0 };
  for (const m of maps.values()) {
    const owner = mappingOwner(m);
    out[owner] += owner === 'hugetlbKb' ? m.hugetlbKb : m.rssKb;
    if (owner === 'arenasKb') out.arenaHeaps++;
  }
  return out;
}

/** The mappings whose RSS grew by at least `minKb` between two readings, largest first. */
export function grownMappings(before: Map<string, Mapping>, after: Map<string, Mapping>, minKb = 256): { range: string; owner: string; name: string; kb: number }[] {
  return [...after]
    .map(([range, m]) => ({ range, owner: mappingOwner(m), name: m.name.split('/').pop() ?? '', kb: m.rssKb - (before.get(range)?.rssKb ?? 0) }))
    .filter((x) => x.kb >= minKb)
    .sort((a, b) => b.kb - a.kb);
}
