// A relay's pool: which VFs (or DPDK virtual devices) a relay may draw on. The VF resolver
// checks a relay's VF against it before anything is probed; src/policy builds it from the
// admin's VirtioForwarderPolicy. Shared by the relay layer and src/policy, so it lives here.
import { VioError } from './errors.js';

/** The VFs a relay may draw on, as the VF resolver enforces it. */
export interface VfPool {
  /** the pool (resource name) and the policy defining it, for messages */
  name: string;
  policy: string;
  pfNames: string[];
  pciAddresses: string[];
  devices: { vendor: string; device: string }[];
  /** DPDK virtual-device drivers: the policy's list narrowed to what the node allows */
  virtualDevices: string[];
}

/**
 * The DPDK driver a devargs string names, as DPDK's vdev bus picks it (the device name starts
 * with the driver name: `net_tap0,iface=x` and `net_tap_vm1` are both net_tap). Returns the
 * driver from `allowed` that the name is an instance of, or undefined. Aliases (eth_tap, ...)
 * are not matched: an admin lists exactly what is allowed.
 */
export function allowedVirtualDriver(devargs: string, allowed: readonly string[]): string | undefined {
  const devName = devargs.split(',', 1)[0]!.trim();
  return allowed.find((d) => devName.startsWith(d) && /^[A-Za-z0-9_]*$/.test(devName.slice(d.length)));
}

/** Does this VF belong to the pool (by PF name, PCI address or vendor:device)? */
export function vfInPool(vf: { pciAddress: string; pfName?: string; vendor?: string; device?: string }, pool: VfPool): boolean {
  const addr = vf.pciAddress.toLowerCase();
  if (pool.pciAddresses.some((a) => a.toLowerCase() === addr)) return true;
  if (vf.pfName && pool.pfNames.includes(vf.pfName)) return true;
  const ven = vf.vendor?.toLowerCase().replace(/^0x/, '');
  const dev = vf.device?.toLowerCase().replace(/^0x/, '');
  return pool.devices.some((d) => d.vendor.toLowerCase() === ven && d.device.toLowerCase() === dev);
}

/** The error a relay gets for a virtual device its pool does not allow. */
export function virtualDeviceDenied(pool: VfPool): VioError {
  const allowed = pool.virtualDevices.length ? pool.virtualDevices.join(', ') : 'none';
  return new VioError('EPERM', `vf.devargs: pool ${pool.name} (VirtioForwarderPolicy ${pool.policy}) allows no such virtual device on this node (allowed: ${allowed})`);
}
