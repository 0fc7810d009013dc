// Resolves a relay's VF on this host (src/sriov): a PCI address is checked in sysfs, a selector
// picks a free matching VF, and a real VF gets the VM's MAC through its PF. A relay with a pool
// (Kubernetes) gets only a VF or virtual device of its pool, checked before anything is probed.
import type { Logger } from '../util/log.js';
import { VioError } from '../util/errors.js';
import type { ResolvedVf, VfResolver } from '../relay/contracts.js';
import type { RelayVf } from '../relay/types.js';
import { discoverVfs, findVf, setVfMac, type CommandRunner, type VirtualFunction } from '../sriov/index.js';
import { pickFreeVf } from '../util/vf-selector.js';
import { allowedVirtualDriver, vfInPool, virtualDeviceDenied } from '../util/vf-pool.js';

/** Drivers DPDK can drive a VF through. */
const DPDK_DRIVERS = new Set(['vfio-pci', 'uio_pci_generic', 'igb_uio']);

export interface HostVfResolverOptions {
  sysRoot: string;
  setMac: boolean;
  logger: Logger;
  runner?: CommandRunner;
  /** PCI address -> devargs of a DPDK virtual device standing in for that VF (no NICs here). */
  standIns?: Record<string, string>;
}

export class HostVfResolver implements VfResolver {
  /** relay name -> PCI addresses it holds */
  private readonly held = new Map<string, string[]>();
  private readonly log: Logger;

  constructor(private readonly o: HostVfResolverOptions) {
    this.log = o.logger.child({ component: 'sriov' });
  }

  async resolve(relayName: string, vf: RelayVf, opts: { mac?: string }): Promise<ResolvedVf> {
    const pool = vf.pool;
    if (vf.devargs) {
      if (pool && !allowedVirtualDriver(vf.devargs, pool.virtualDevices)) throw virtualDeviceDenied(pool);
      return { vf: { devargs: vf.devargs }, display: vf.devargs };
    }
    if (pool && vf.pciAddresses?.length && this.o.standIns?.[vf.pciAddresses[0]!.toLowerCase()]) {
      // a stand-in has no sysfs VF: only an address the pool lists by name qualifies
      const off = vf.pciAddresses.find((x) => !pool.pciAddresses.includes(x.toLowerCase()));
      if (off) throw new VioError('EPERM', `vf.pciAddress: ${off} is not in pool ${pool.name} (VirtioForwarderPolicy ${pool.policy} spec.vfs.pciAddresses)`);
    }
    const standIn = this.standIn(relayName, vf);
    if (standIn) return standIn;
    let vfs: VirtualFunction[];
    if (vf.selector) {
      const inUse = [...this.held.entries()].filter(([n]) => n !== relayName).flatMap(([, a]) => a);
      const found = await discoverVfs({ root: this.o.sysRoot });
      const all = pool ? found.filter((v) => vfInPool(v, pool)) : found;
      const pick = pickFreeVf(all, { selector: vf.selector, inUse });
      if (!pick) {
        const sel = Object.entries(vf.selector).map(([k, v]) => `${k}=${String(v)}`).join(',');
        const counts = pool ? `${all.length} of ${found.length} VF(s) in pool ${pool.name}` : `${all.length} VF(s) found`;
        const fix = found.length === 0
          ? 'this node has no SR-IOV VFs: create them (echo 8 > /sys/class/net/<pf>/device/sriov_numvfs; vio4wd doctor lists the PFs) or let the relay go to a node that has free ones'
          : 'free a VF of another relay, create more VFs (sriov_numvfs), or widen the selector (kubectl get vfn <node> -o yaml lists the VFs)';
        throw new VioError('ENODEV', `vf.selector: no free VF on this node matches ${sel} (${counts}, ${inUse.length} in use): ${fix}`);
      }
      vfs = [pick];
    } else {
      const addrs = vf.pciAddresses ?? [];
      vfs = [];
      for (const a of addrs) {
        const found = await findVf(a, { root: this.o.sysRoot });
        if (!found) {
          // a tenant may name any PCI address: one that is no VF is refused, never probed
          if (pool) throw new VioError('EPERM', `vf.pciAddress: ${a} is not a VF of pool ${pool.name} on this node (no such VF)`);
          throw new VioError('ENODEV', `vf.pciAddress: VF ${a} is not on this node (no such PCI device, or not a VF): check the address (lspci -D | grep 'Virtual Function' lists this node's VFs)`);
        }
        if (pool && !vfInPool(found, pool)) {
          throw new VioError('EPERM', `vf.pciAddress: VF ${a} (PF ${found.pfName}, ${found.vendor}:${found.device}) is not in pool ${pool.name} (VirtioForwarderPolicy ${pool.policy} spec.vfs)`);
        }
        for (const [other, held] of this.held) {
          if (other !== relayName && held.includes(found.pciAddress)) throw new VioError('EBUSY', `VF ${a} is already used by relay "${other}"`);
        }
        vfs.push(found);
      }
    }
    for (const v of vfs) {
      if (!v.driver || !DPDK_DRIVERS.has(v.driver)) {
        throw new VioError(
          'ENODEV',
          `VF ${v.pciAddress} is bound to ${v.driver ?? 'no driver'}, which DPDK cannot use: bind it to vfio-pci (sriov.bindVfio in the agent config, or VIRTIOFWD_BIND_VFIO_PCI)`,
        );
      }
    }
    if (opts.mac && this.o.setMac && vfs.length === 1) {
      const v = vfs[0]!;
      const r = await setVfMac(v.pfName, v.vfIndex, opts.mac, this.o.runner ? { runner: this.o.runner } : {});
      this.log.info({ vf: v.pciAddress, pf: v.pfName, index: v.vfIndex, mac: r.mac, verified: r.verified }, 'VF MAC set to the VM MAC');
    }
    const addrs = vfs.map((v) => v.pciAddress);
    this.held.set(relayName, addrs);
    const numa = vfs[0]?.numaNode;
    return {
      vf: { pciAddresses: addrs, ...(vf.bondMode !== undefined ? { bondMode: vf.bondMode } : {}), ...(vf.bondName ? { bondName: vf.bondName } : {}) },
      display: addrs.join(','),
      ...(numa !== null && numa !== undefined ? { numaNode: numa } : {}),
    };
  }

  /** A single VF whose address stands for a DPDK virtual device: that device, shown by the address. */
  private standIn(relayName: string, vf: RelayVf): ResolvedVf | undefined {
    const addrs = vf.pciAddresses ?? [];
    const devargs = addrs.length === 1 ? this.o.standIns?.[addrs[0]!.toLowerCase()] : undefined;
    if (!devargs) return undefined;
    const a = addrs[0]!.toLowerCase();
    for (const [other, held] of this.held) {
      if (other !== relayName && held.includes(a)) throw new VioError('EBUSY', `VF ${a} is already used by relay "${other}"`);
    }
    this.held.set(relayName, [a]);
    return { vf: { devargs }, display: a };
  }

  release(relayName: string): void {
    this.held.delete(relayName);
  }

  /** PCI address -> relay name, for VirtioForwarderNode's usedBy. */
  usage(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [name, addrs] of this.held) for (const a of addrs) out.set(a, name);
    return out;
  }
}
