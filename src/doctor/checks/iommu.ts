// IOMMU: vfio-pci hands a VF to DPDK only inside an IOMMU group; passthrough mode (iommu=pt)
// keeps DMA translation off the host's other devices.
import type { Check } from '../types.js';

export const checkIommu: Check = ({ host, hasVfs }) => {
  const cmd = host.cmdline();
  const last = (k: string) => cmd.get(k)?.at(-1);
  const intel = last('intel_iommu');
  const amd = last('amd_iommu');
  const iommu = last('iommu');
  const pt = iommu === 'pt' || last('iommu.passthrough') === '1';
  const groups = host.list('sys/kernel/iommu_groups').filter((g) => /^\d+$/.test(g)).length;
  const noiommu = host.text('sys/module/vfio/parameters/enable_unsafe_noiommu_mode') === 'Y';
  const said = [intel && `intel_iommu=${intel}`, amd && `amd_iommu=${amd}`, iommu && `iommu=${iommu}`].filter(Boolean).join(' ') || 'no IOMMU options';
  const details = { groups, cmdline: { intel_iommu: intel ?? null, amd_iommu: amd ?? null, iommu: iommu ?? null }, passthrough: pt, unsafeNoIommu: noiommu };
  const bootFix = 'enable VT-d (Intel) or AMD-Vi in the firmware, boot with `intel_iommu=on iommu=pt` (Intel) or `iommu=pt` (AMD), reboot';
  if (groups === 0) {
    if (noiommu) {
      return [{ id: 'iommu', status: 'WARN', message: `no IOMMU groups; vfio runs in unsafe no-IOMMU mode, so a VF's DMA is not confined (kernel command line: ${said})`, fix: bootFix, details }];
    }
    const effect = hasVfs ? 'vfio-pci cannot take this host\'s VFs, so relays on them cannot start' : 'vfio-pci could not take VFs; relays can use DPDK virtual devices only';
    return [{ id: 'iommu', status: hasVfs ? 'FAIL' : 'WARN', message: `IOMMU off: /sys/kernel/iommu_groups is empty (kernel command line: ${said}); ${effect}`, fix: bootFix, details }];
  }
  if (!pt) {
    return [
      {
        id: 'iommu',
        status: 'WARN',
        message: `IOMMU on (${groups} groups) but not in passthrough mode (${said}): every host DMA is translated, which costs the host's own drivers throughput`,
        fix: 'add iommu=pt to the kernel command line and reboot',
        details,
      },
    ];
  }
  return [{ id: 'iommu', status: 'PASS', message: `IOMMU on, passthrough mode (${said}; ${groups} groups)`, details }];
};
