// vfio-pci: the driver that gives a VF to DPDK's PCI bus.
import type { Check } from '../types.js';
import { isPciAddress } from '../../util/identifiers.js';

export const checkVfio: Check = ({ host, hasVfs }) => {
  if (host.exists('sys/bus/pci/drivers/vfio-pci')) {
    const bound = host.list('sys/bus/pci/drivers/vfio-pci').filter((f) => isPciAddress(f));
    return [{ id: 'vfio-pci', status: 'PASS', message: `vfio-pci loaded (${bound.length} device${bound.length === 1 ? '' : 's'} bound)`, details: { loaded: true, bound } }];
  }
  const release = host.text('proc/sys/kernel/osrelease');
  const modDir = release ? `lib/modules/${release}` : null;
  const builtin = modDir ? /vfio-pci\.ko/.test(host.text(`${modDir}/modules.builtin`) ?? '') : false;
  const moduleFile = modDir ? host.list(`${modDir}/kernel/drivers/vfio/pci`).find((f) => /^vfio-pci\.ko/.test(f)) : undefined;
  const details = { loaded: false, kernel: release, module: moduleFile ? `/${modDir}/kernel/drivers/vfio/pci/${moduleFile}` : null, builtin };
  if (moduleFile || builtin) {
    return [
      {
        id: 'vfio-pci',
        status: 'WARN',
        message: `vfio-pci is available${moduleFile ? ` (${details.module})` : ' (built in)'} but not loaded`,
        fix: 'modprobe vfio-pci, and add vfio-pci to /etc/modules-load.d/vio4wd.conf to load it at boot',
        details,
      },
    ];
  }
  const effect = hasVfs ? 'this host\'s VFs cannot be given to DPDK' : 'VFs could not be given to DPDK; DPDK virtual devices still work';
  return [
    {
      id: 'vfio-pci',
      status: hasVfs ? 'FAIL' : 'WARN',
      message: `vfio-pci is neither loaded nor installed for kernel ${release ?? '(unknown)'}: ${effect}`,
      fix: 'install the kernel\'s modules package (vfio-pci ships with it), then modprobe vfio-pci',
      details,
    },
  ];
};
