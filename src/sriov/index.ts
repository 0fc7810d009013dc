// SR-IOV on this node: discover PFs and VFs in sysfs, bind a VF to vfio-pci, set a VF's MAC
// through its PF, and select VFs (the operator reuses the selector against a node's VF list).
export type { VfIdentity, VirtualFunction, PhysicalFunction, MacSource, CommandRunner, CommandResult, SysfsWriter } from './types.js';
export { parsePciAddress, isPciAddress, parsePciId, parseMac } from './ids.js';
export { discoverPfs, discoverVfs, findVf, type DiscoverOptions } from './discover.js';
export { bindVfDriver, bindVfToVfio, VFIO_PCI, type BindOptions, type BindResult } from './bind.js';
export { setVfMac, readPfVfMacs, execRunner, type IpOptions, type SetVfMacResult } from './mac.js';
export {
  compileVfSelector,
  matchVf,
  selectVfs,
  pickFreeVf,
  parseIndexRange,
  type VfSelector,
  type VfMatcher,
  type IndexRange,
  type PickOptions,
} from './selector.js';
export { writeSysfs } from './sysfs.js';
