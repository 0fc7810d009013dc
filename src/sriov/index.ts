// SR-IOV on this node: discover PFs and VFs in sysfs, bind a VF to vfio-pci, set a VF's MAC
// through its PF. Selecting VFs is in util/vf-selector.ts (the operator uses it too).
export type { VfIdentity, VirtualFunction, PhysicalFunction, MacSource, CommandRunner, CommandResult, SysfsWriter } from './types.js';
export { discoverPfs, discoverVfs, findVf, type DiscoverOptions } from './discover.js';
export { bindVfDriver, bindVfToVfio, VFIO_PCI, type BindOptions, type BindResult } from './bind.js';
export { setVfMac, readPfVfMacs, execRunner, type IpOptions, type SetVfMacResult } from './mac.js';
export { writeSysfs } from './sysfs.js';
export {
  NetlinkVfProgrammer,
  StandInVfProgrammer,
  vfProgrammer,
  describePort,
  type VfPort,
  type VfSettings,
  type VfProgrammer,
} from './programmer.js';
