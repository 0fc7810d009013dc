// What in the host's hugepage set-up keeps the engine from starting, in the doctor's words (the
// field, what was found, the fix): checked by the agent before it starts DPDK and when DPDK's
// start fails, so that a missing mount or no free hugepages is named instead of rte_eal_init's
// bare errno ("Permission denied", "Cannot allocate memory").
import { Host, parseMounts } from './host.js';
import { checkHugepages } from './checks/hugepages.js';
import { checkHugetlbfs } from './checks/hugetlbfs.js';
import { hugepagesForRelays } from './sizing.js';

/** The hugetlbfs mount points under root's /proc/mounts. */
export function hugetlbfsMounts(root = '/'): string[] {
  return parseMounts(new Host(root).text('proc/mounts') ?? '').filter((m) => m.fstype === 'hugetlbfs').map((m) => m.target);
}

/**
 * A configured hugepage directory that is not in a hugetlbfs mount, as a message with the fix (which
 * names `field`); undefined when it is one (or none is configured: EAL then finds the mount).
 */
export function hugeDirProblem(hugeDir: string | undefined, field: string, root = '/'): string | undefined {
  // no /proc to read (a chroot): nothing to tell, DPDK's own error will say it
  if (hugeDir === undefined || new Host(root).text('proc/mounts') === null) return undefined;
  const mounts = hugetlbfsMounts(root);
  const norm = (p: string) => p.replace(/\/+$/, '') || '/';
  // a directory inside a hugetlbfs mount is fine too (DPDK >= 21.08 takes sub-directories)
  const dir = norm(hugeDir);
  if (mounts.map(norm).some((m) => dir === m || dir.startsWith(m === '/' ? '/' : `${m}/`))) return undefined;
  const found = mounts.length > 0 ? `hugetlbfs is mounted at ${mounts.join(', ')}: set ${field} to ${mounts.length > 1 ? 'one of these' : 'it'}, or leave it out (the engine finds the mount)` : 'no hugetlbfs is mounted: mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages (`vio4wd doctor` checks the host)';
  return `${hugeDir} is not in a hugetlbfs mount; ${found}`;
}

/**
 * The doctor's FAILs of the hugetlbfs and hugepages checks for `relays` relays, as sentences
 * (`inMemory`: DPDK maps hugepages without a hugetlbfs mount, so only the pages count).
 */
export function hugepageProblems(opts: { relays?: number; root?: string; inMemory?: boolean } = {}): string[] {
  const relays = opts.relays ?? 1;
  const ctx = { host: new Host(opts.root ?? '/'), relays, hugepagesNeeded: hugepagesForRelays(relays), pfs: [], hasVfs: false };
  return [...(opts.inMemory === true ? [] : checkHugetlbfs(ctx)), ...checkHugepages(ctx)].filter((c) => c.status === 'FAIL').map((c) => `${c.message}${c.fix ? ` (fix: ${c.fix})` : ''}`);
}
