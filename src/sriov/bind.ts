// Driver binding of a VF: driver_override, unbind from the current driver, drivers_probe, and a
// check that the kernel did what was asked. vfio-pci (what DPDK uses) gets its own preflight.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { VioError, errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import { parsePciAddress } from '../util/identifiers.js';
import { linkName, pciDeviceDir, pciDriverDir, readText, writeSysfs } from './sysfs.js';
import type { SysfsWriter } from './types.js';

export const VFIO_PCI = 'vfio-pci';

export interface BindOptions {
  /** Directory that holds sys/ (default "/"). */
  root?: string;
  /** How attributes are written (default: plain writes to sysfs). */
  write?: SysfsWriter;
  logger?: Logger;
}

export interface BindResult {
  pciAddress: string;
  driver: string;
  /** The driver the VF had before, null when it was unbound. */
  previousDriver: string | null;
  /** False when the VF was already bound to the wanted driver (nothing written). */
  changed: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Binds a VF to vfio-pci, the driver DPDK's PCI bus uses. Idempotent. */
export function bindVfToVfio(pciAddress: string, opts: BindOptions = {}): Promise<BindResult> {
  return bindVfDriver(pciAddress, VFIO_PCI, opts);
}

/**
 * Binds the PCI function to `driver`: writes driver_override (so no other driver grabs it on a
 * re-probe), unbinds it from its current driver, asks the bus to probe it, and checks the
 * `driver` link. Throws VioError with codes ENOVF, ENODRIVER, ENOIOMMU, EUNBIND, EBIND.
 */
export async function bindVfDriver(pciAddress: string, driver: string, opts: BindOptions = {}): Promise<BindResult> {
  const pci = parsePciAddress(pciAddress, 'pciAddress');
  const root = opts.root ?? '/';
  const write = opts.write ?? writeSysfs;
  const log = (opts.logger ?? silentLogger()).child({ component: 'sriov', pciAddress: pci, driver });
  const dev = pciDeviceDir(root, pci);
  const sys = (p: string) => join('/sys', p.slice(join(root, 'sys').length));

  if (!(await exists(dev))) {
    throw new VioError('ENOVF', `no PCI device ${pci} (${sys(dev)} is missing); check the address with \`lspci -D\` and that the PF's sriov_numvfs created it`);
  }
  const drvDir = pciDriverDir(root, driver);
  if (!(await exists(drvDir))) {
    const fix = driver === VFIO_PCI ? 'load it with `modprobe vfio-pci` (and list it in /etc/modules-load.d/ to keep it after a reboot)' : `load the ${driver} module`;
    throw new VioError('ENODRIVER', `driver ${driver} is not loaded (${sys(drvDir)} is missing); ${fix}`);
  }
  if (driver === VFIO_PCI && (await linkName(join(dev, 'iommu_group'))) === null) {
    const noiommu = (await readText(join(root, 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode'))) === 'Y';
    if (!noiommu) {
      throw new VioError(
        'ENOIOMMU',
        `${pci} has no IOMMU group, so vfio-pci cannot give it to DPDK; turn the IOMMU on: enable VT-d/AMD-Vi in the firmware and boot with ` +
          '`intel_iommu=on iommu=pt` (Intel) or `iommu=pt` (AMD)',
      );
    }
    log.warn('VF has no IOMMU group; relying on vfio unsafe no-IOMMU mode');
  }

  const previous = await linkName(join(dev, 'driver'));
  if (previous === driver) return { pciAddress: pci, driver, previousDriver: previous, changed: false };

  try {
    await write(join(dev, 'driver_override'), driver);
  } catch (err) {
    throw new VioError('EBIND', `cannot write driver_override of ${pci}: ${errorMessage(err)}; run as root on a kernel >= 3.16`, { cause: err });
  }
  // On failure, leave the VF as it was: override cleared and, if it lost its driver, re-probed
  // (it goes back to its own driver). Returns what to tell the user about that.
  const restore = async (): Promise<string> => {
    try {
      await write(join(dev, 'driver_override'), '\n');
      if ((await linkName(join(dev, 'driver'))) === null && previous !== null) {
        await write(join(root, 'sys/bus/pci/drivers_probe'), pci).catch(() => undefined);
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'could not restore the VF after a failed bind');
    }
    const back = await linkName(join(dev, 'driver'));
    if (previous === null) return '';
    return back === previous ? ` It is back on ${previous}.` : ` It is now bound to ${back ?? 'no driver'} (it was on ${previous}).`;
  };
  if (previous !== null) {
    try {
      await write(join(pciDriverDir(root, previous), 'unbind'), pci);
    } catch (err) {
      const state = await restore();
      throw new VioError('EUNBIND', `unbinding ${pci} from ${previous} failed: ${errorMessage(err)}; check dmesg, and that nothing uses the VF's netdev.${state}`, { cause: err });
    }
    const still = await linkName(join(dev, 'driver'));
    if (still !== null) {
      await restore();
      throw new VioError('EUNBIND', `${pci} is still bound to ${still} after unbind; check dmesg for why ${previous} kept it`);
    }
    log.info({ previous }, 'unbound VF');
  }
  try {
    await write(join(root, 'sys/bus/pci/drivers_probe'), pci);
  } catch (err) {
    // drivers_probe fails with ENODEV when no driver accepted the device; the check below says which
    log.debug({ err: errorMessage(err) }, 'drivers_probe write failed');
  }
  let now = await linkName(join(dev, 'driver'));
  if (now === null) {
    // a kernel or driver that ignores driver_override on probe: ask the driver directly
    try {
      await write(join(drvDir, 'bind'), pci);
    } catch (err) {
      log.debug({ err: errorMessage(err) }, 'bind write failed');
    }
    now = await linkName(join(dev, 'driver'));
  }
  if (now !== driver) {
    const state = await restore();
    throw new VioError('EBIND', `${pci} is bound to ${now ?? 'no driver'} instead of ${driver} after probing; check dmesg for ${driver}'s reason.${state}`);
  }
  log.info({ previous }, 'bound VF');
  return { pciAddress: pci, driver, previousDriver: previous, changed: true };
}
