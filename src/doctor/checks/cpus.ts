// CPU isolation: poll-mode workers spin on their cores, so those cores should be kept away from
// the scheduler (isolcpus) and its tick (nohz_full).
import type { Check } from '../types.js';
import { kernelCpuList } from '../host.js';
import { formatCpuList } from '../../util/identifiers.js';

export const checkCpus: Check = ({ host }) => {
  const cmd = host.cmdline();
  const online = kernelCpuList(host.text('sys/devices/system/cpu/online'));
  // isolcpus=[flags,]list: flags are words (domain, nohz, managed_irq) that kernelCpuList skips
  const fromCmdline = kernelCpuList(cmd.get('isolcpus')?.at(-1));
  const sysIsolated = host.text('sys/devices/system/cpu/isolated');
  const isolated = sysIsolated !== null ? kernelCpuList(sysIsolated) : fromCmdline;
  const nohz = kernelCpuList(host.text('sys/devices/system/cpu/nohz_full') ?? cmd.get('nohz_full')?.at(-1));
  const details = { online, isolated, isolcpusCmdline: fromCmdline, nohzFull: nohz };
  if (isolated.length === 0) {
    return [
      {
        id: 'cpus',
        status: 'WARN',
        message: `no isolated CPUs (online ${formatCpuList(online) || 'unknown'}): poll-mode workers share their cores with everything else, so throughput and latency jitter`,
        fix: 'boot with isolcpus=<cpus> nohz_full=<cpus> rcu_nocbs=<cpus> (leave CPU 0 of each NUMA node out) and give those CPUs to the relays',
        details,
      },
    ];
  }
  const housekeeping = online.filter((c) => !isolated.includes(c));
  if (online.length > 0 && housekeeping.length === 0) {
    return [
      {
        id: 'cpus',
        status: 'FAIL',
        message: `every online CPU (${formatCpuList(online)}) is isolated: nothing is left for the kernel, the agent and the EAL main thread`,
        fix: 'take at least one CPU per NUMA node out of isolcpus/nohz_full',
        details,
      },
    ];
  }
  const missingTick = isolated.filter((c) => !nohz.includes(c));
  if (missingTick.length > 0) {
    return [
      {
        id: 'cpus',
        status: 'WARN',
        message: `isolated CPUs ${formatCpuList(isolated)}, but ${formatCpuList(missingTick)} still get the scheduler tick (not in nohz_full)`,
        fix: `add nohz_full=${formatCpuList(isolated)} rcu_nocbs=${formatCpuList(isolated)} to the kernel command line`,
        details,
      },
    ];
  }
  return [{ id: 'cpus', status: 'PASS', message: `isolated CPUs ${formatCpuList(isolated)} (nohz_full ${formatCpuList(nohz)}); housekeeping CPUs ${formatCpuList(housekeeping)}`, details }];
};
