// NUMA layout: nodes and their CPUs, and whether each node with VFs has isolated CPUs for the
// workers that serve them (a worker on another node reaches the VF across the interconnect).
import type { Check } from '../types.js';
import { kernelCpuList } from '../host.js';
import { formatCpuList } from '../../util/identifiers.js';

export const checkNuma: Check = ({ host, pfs }) => {
  const nodes = host.numaNodes().map((n) => ({ node: n, cpus: kernelCpuList(host.text(`sys/devices/system/node/node${n}/cpulist`)) }));
  const isolated = kernelCpuList(host.text('sys/devices/system/cpu/isolated') ?? host.cmdline().get('isolcpus')?.at(-1));
  const details = { nodes: nodes.map((n) => ({ node: n.node, cpus: formatCpuList(n.cpus), isolated: formatCpuList(n.cpus.filter((c) => isolated.includes(c))) })) };
  if (nodes.length === 0) {
    return [{ id: 'numa', status: 'PASS', message: 'no NUMA information (kernel without NUMA): everything is node 0', details }];
  }
  const layout = nodes.map((n) => `node${n.node} CPUs ${formatCpuList(n.cpus) || 'none'}`).join('; ');
  const base = `${nodes.length} NUMA node${nodes.length === 1 ? '' : 's'}: ${layout}`;
  if (isolated.length > 0) {
    const starved = [...new Set(pfs.filter((pf) => pf.numVfs > 0 && pf.numaNode !== null).map((pf) => pf.numaNode!))].filter(
      (n) => !nodes.find((x) => x.node === n)?.cpus.some((c) => isolated.includes(c)),
    );
    if (starved.length > 0) {
      const names = pfs.filter((pf) => pf.numaNode !== null && starved.includes(pf.numaNode)).map((pf) => pf.name);
      return [
        {
          id: 'numa',
          status: 'WARN',
          message: `${base}; VFs of ${names.join(', ')} sit on node${starved.join(', node')}, which has no isolated CPU: their workers would run on another node`,
          fix: `isolate CPUs on node${starved.join(', node')} too (isolcpus=...), or take VFs from a PF on a node with isolated CPUs`,
          details,
        },
      ];
    }
  }
  return [{ id: 'numa', status: 'PASS', message: base, details }];
};
