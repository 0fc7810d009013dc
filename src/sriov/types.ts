// Plain data describing SR-IOV physical functions (PFs) and their virtual functions (VFs) as
// sysfs shows them. Everything else in src/sriov/ produces or consumes these shapes.
import type { VfIdentity } from '../util/vf-selector.js';

export type { VfIdentity };

export type MacSource = 'netdev' | 'pf';

export interface VirtualFunction extends VfIdentity {
  pfPciAddress: string;
  /** Name of the driver the VF is bound to ("iavf", "vfio-pci"), null when unbound. */
  driver: string | null;
  /** driver_override content, null when empty/absent. */
  driverOverride: string | null;
  /** The VF's own netdev, present only when a kernel network driver owns the VF. */
  netdev: string | null;
  /** Lower-case MAC, null when unknown (no netdev and the PF was not asked, or all-zero). */
  mac: string | null;
  /** Where mac came from: the VF's netdev, or the PF's VF table (`ip link show <pf>`). */
  macSource: MacSource | null;
  /** IOMMU group number, null when the VF has none (IOMMU off: vfio-pci cannot take it). */
  iommuGroup: number | null;
}

export interface PhysicalFunction {
  /** netdev name under /sys/class/net. */
  name: string;
  pciAddress: string;
  vendor: string;
  device: string;
  driver: string | null;
  numaNode: number | null;
  /** sriov_totalvfs: how many VFs the device can have. */
  totalVfs: number;
  /** sriov_numvfs: how many VFs exist now. */
  numVfs: number;
  /** operstate of the PF netdev ("up", "down", ...); VFs pass no traffic while the PF is down. */
  operState: string | null;
  /** VFs found through virtfnN links, ordered by index. */
  vfs: VirtualFunction[];
}

/** Runs a program without a shell; resolves with its exit status and output (never rejects on
 *  a non-zero exit, only when the program cannot be started). */
export type CommandRunner = (cmd: string, args: string[]) => Promise<CommandResult>;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Writes one sysfs attribute. The default writes the file; tests pass one that also plays the
 *  kernel's part (binding, unbinding) in a tree they built. */
export type SysfsWriter = (path: string, value: string) => Promise<void>;
