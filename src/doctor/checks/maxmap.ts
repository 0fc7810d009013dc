// vm.max_map_count against the hugepage count: DPDK maps hugepages one by one (plus its other
// mappings), so the limit must be at least twice the number of pages.
import type { Check } from '../types.js';

export const checkMaxMapCount: Check = ({ host }) => {
  const max = host.int('proc/sys/vm/max_map_count');
  let pages = 0;
  for (const d of host.list('sys/kernel/mm/hugepages')) pages += host.int(`sys/kernel/mm/hugepages/${d}/nr_hugepages`) ?? 0;
  const want = 2 * pages;
  const details = { maxMapCount: max, hugepages: pages, wanted: want };
  const fix = `sysctl -w vm.max_map_count=${Math.max(want, 65530)} and keep it in /etc/sysctl.d/90-vio4wd.conf (scripts/bootstrap raises it)`;
  if (max === null) {
    return [{ id: 'max_map_count', status: 'WARN', message: 'cannot read /proc/sys/vm/max_map_count', fix: 'check that /proc is mounted', details }];
  }
  const base = `vm.max_map_count ${max} for ${pages} hugepages`;
  if (max >= want) return [{ id: 'max_map_count', status: 'PASS', message: `${base} (needs >= ${want})`, details }];
  if (max >= pages) {
    return [{ id: 'max_map_count', status: 'WARN', message: `${base}: below twice the page count (${want}); DPDK may run out of mappings once relays use most pages`, fix, details }];
  }
  return [{ id: 'max_map_count', status: 'FAIL', message: `${base}: below the page count itself; DPDK fails to map its memory`, fix, details }];
};
