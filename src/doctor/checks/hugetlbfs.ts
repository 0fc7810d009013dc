// hugetlbfs mounts: DPDK maps hugepages through one; two at the same path deadlock DPDK.
import type { Check } from '../types.js';
import { parseMounts } from '../host.js';

function pageSizeKb(options: string[], defaultKb: number): number {
  const opt = options.find((o) => o.startsWith('pagesize='));
  if (!opt) return defaultKb;
  const m = /^pagesize=(\d+)([KMG]?)/i.exec(opt);
  if (!m) return defaultKb;
  const mult = { '': 1 / 1024, K: 1, M: 1024, G: 1024 * 1024 }[m[2]!.toUpperCase()] ?? 1;
  return Number(m[1]) * mult;
}

const human = (kb: number) => (kb >= 1024 * 1024 ? `${kb / 1024 / 1024} GiB` : `${kb / 1024} MiB`);

export const checkHugetlbfs: Check = ({ host }) => {
  const defaultKb = Number(/^Hugepagesize:\s*(\d+)/m.exec(host.text('proc/meminfo') ?? '')?.[1] ?? 2048);
  const mounts = parseMounts(host.text('proc/mounts') ?? '')
    .filter((m) => m.fstype === 'hugetlbfs')
    .map((m) => ({ target: m.target, kb: pageSizeKb(m.options, defaultKb) }));
  const details = { mounts: mounts.map((m) => ({ path: m.target, pageSizeKb: m.kb })) };
  const byPath = new Map<string, number[]>();
  for (const m of mounts) byPath.set(m.target, [...(byPath.get(m.target) ?? []), m.kb]);
  const doubled = [...byPath].filter(([, sizes]) => sizes.length > 1);
  if (doubled.length > 0) {
    const [path, sizes] = doubled[0]!;
    return [
      {
        id: 'hugetlbfs',
        status: 'FAIL',
        message:
          `${sizes.length} hugetlbfs mounts at ${path} (${sizes.map(human).join(', ')}): ` +
          (new Set(sizes).size > 1
            ? 'DPDK deadlocks at start-up: EAL flock()s the hugepage directory once per page size and, with two sizes at one path, waits for itself'
            : 'the lower mount is hidden, and DPDK deadlocks at start-up as soon as their page sizes differ (EAL flock()s the directory once per page size and waits for itself)'),
        fix: `umount ${path} until one hugetlbfs is left there, and make sure only one mount unit/fstab line mounts it`,
        details,
      },
    ];
  }
  if (mounts.length === 0) {
    return [
      {
        id: 'hugetlbfs',
        status: 'FAIL',
        message: 'no hugetlbfs mounted: DPDK cannot map hugepages',
        fix: 'mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages (scripts/bootstrap does this)',
        details,
      },
    ];
  }
  const list = mounts.map((m) => `${m.target} (${human(m.kb)})`).join(', ');
  if (!mounts.some((m) => m.kb === 2048)) {
    return [
      {
        id: 'hugetlbfs',
        status: 'WARN',
        message: `hugetlbfs mounted at ${list} but none for 2 MiB pages, which vio4wd sizes its memory in`,
        fix: 'mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages (on a path of its own)',
        details,
      },
    ];
  }
  return [{ id: 'hugetlbfs', status: 'PASS', message: `hugetlbfs at ${list}`, details }];
};
