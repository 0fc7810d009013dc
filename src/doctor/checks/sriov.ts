// SR-IOV PFs: each with its VF count and the driver each VF is bound to.
import type { Check, CheckResult } from '../types.js';
import type { PhysicalFunction } from '../../sriov/index.js';
import { formatCpuList } from '../../util/identifiers.js';

function driverSummary(pf: PhysicalFunction): string {
  const byDriver = new Map<string, number[]>();
  for (const vf of pf.vfs) {
    const d = vf.driver ?? 'unbound';
    byDriver.set(d, [...(byDriver.get(d) ?? []), vf.vfIndex]);
  }
  // formatCpuList compacts any number list: VF indexes 0,1,2,5 -> "0-2,5"
  return [...byDriver].map(([d, idx]) => `${d}: VF ${formatCpuList(idx)}`).join('; ');
}

export const checkSriov: Check = ({ pfs }) => {
  if (pfs.length === 0) {
    return [
      {
        id: 'sriov',
        status: 'WARN',
        message: 'no SR-IOV PF found (no netdev under /sys/class/net has sriov_totalvfs): relays can use DPDK virtual devices (vf.devargs) only',
        fix: 'on a host with an SR-IOV NIC: enable SR-IOV in the firmware, then echo N > /sys/class/net/<pf>/device/sriov_numvfs',
        details: { pfs: [] },
      },
    ];
  }
  return pfs.map((pf): CheckResult => {
    const id = `sriov.${pf.name}`;
    const where = `${pf.name} (${pf.pciAddress}, ${pf.driver ?? 'no driver'}, NUMA ${pf.numaNode ?? 'unknown'})`;
    const details = {
      pf: pf.name,
      pciAddress: pf.pciAddress,
      driver: pf.driver,
      numaNode: pf.numaNode,
      totalVfs: pf.totalVfs,
      numVfs: pf.numVfs,
      operState: pf.operState,
      vfs: pf.vfs.map((vf) => ({ vfIndex: vf.vfIndex, pciAddress: vf.pciAddress, driver: vf.driver, numaNode: vf.numaNode, mac: vf.mac, iommuGroup: vf.iommuGroup })),
    };
    const sysNum = `/sys/class/net/${pf.name}/device/sriov_numvfs`;
    if (pf.vfs.length !== pf.numVfs) {
      return {
        id,
        status: 'FAIL',
        message: `${where}: sriov_numvfs says ${pf.numVfs} but ${pf.vfs.length} VFs exist; VF creation failed part way`,
        fix: `read dmesg for the PF driver's error, then echo 0 > ${sysNum} and echo ${pf.numVfs} > ${sysNum}`,
        details,
      };
    }
    if (pf.numVfs === 0) {
      return {
        id,
        status: 'WARN',
        message: `${where}: 0 of ${pf.totalVfs} VFs created`,
        fix: `echo ${Math.min(8, pf.totalVfs)} > ${sysNum} (keep it with a udev rule or systemd unit)`,
        details,
      };
    }
    const base = `${where}: ${pf.numVfs} of ${pf.totalVfs} VFs; ${driverSummary(pf)}`;
    if (pf.operState !== null && pf.operState !== 'up' && pf.operState !== 'unknown') {
      return { id, status: 'WARN', message: `${base}; PF link is ${pf.operState}, so its VFs pass no traffic`, fix: `ip link set ${pf.name} up, and check the cable/switch port`, details };
    }
    return { id, status: 'PASS', message: base, details };
  });
};
