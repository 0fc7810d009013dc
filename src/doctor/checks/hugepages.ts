// Free 2 MiB hugepages on each NUMA node against what the configured relays need there.
import type { Check, CheckResult } from '../types.js';
import { kernelCpuList } from '../host.js';

const HP = 'hugepages/hugepages-2048kB';

export const checkHugepages: Check = ({ host, relays, hugepagesNeeded }) => {
  const need = hugepagesNeeded;
  const withMemory = host.text('sys/devices/system/node/has_memory');
  const memNodes = withMemory === null ? null : new Set(kernelCpuList(withMemory));
  const nodes = host.numaNodes().filter((n) => memNodes === null || memNodes.has(n));
  const perNode = nodes.map((n) => ({
    node: n as number | null,
    dir: `sys/devices/system/node/node${n}/${HP}`,
  }));
  if (perNode.length === 0) {
    // no NUMA information: the kernel's global pool
    perNode.push({ node: null, dir: `sys/kernel/mm/${HP}` });
  }
  const rows = perNode.map((p) => ({ ...p, total: host.int(`${p.dir}/nr_hugepages`), free: host.int(`${p.dir}/free_hugepages`) }));
  if (rows.every((r) => r.total === null)) {
    return [
      {
        id: 'hugepages',
        status: 'FAIL',
        message: 'the kernel offers no 2 MiB hugepages (no hugepages-2048kB in sysfs): DPDK needs them',
        fix: 'use a kernel built with CONFIG_HUGETLBFS on a CPU with 2 MiB pages',
      },
    ];
  }
  const anyEnough = rows.some((r) => (r.free ?? 0) >= need);
  const who = `${relays} relay${relays === 1 ? '' : 's'} need${relays === 1 ? 's' : ''} ${need}`;
  return rows.map((r): CheckResult => {
    const total = r.total ?? 0;
    const free = r.free ?? 0;
    const where = r.node === null ? 'host' : `node${r.node}`;
    const base = `${where}: ${free} of ${total} 2 MiB hugepages free (${free * 2} MiB); ${who} per node`;
    const details = { node: r.node, pageSizeKb: 2048, total, free, needed: need };
    const id = r.node === null ? 'hugepages' : `hugepages.node${r.node}`;
    if (free >= need) return { id, status: 'PASS', message: base, details };
    const want = total + (need - free);
    const fix =
      `reserve more: echo ${want} > /${r.dir}/nr_hugepages (persist with hugepages=... on the kernel command line, ` +
      `or VIO4WD_HUGEPAGES=... scripts/bootstrap), or run fewer relays (--relays)`;
    return anyEnough
      ? { id, status: 'WARN', message: `${base}: relays whose VF is on ${where} will use remote memory or fail`, fix, details }
      : { id, status: 'FAIL', message: `${base}: no NUMA node has enough, relays cannot start`, fix, details };
  });
};
