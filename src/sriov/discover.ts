// PF and VF discovery from sysfs: /sys/class/net/<pf>/device/{sriov_totalvfs,sriov_numvfs,
// virtfnN}, and per VF its ids, driver, NUMA node, netdev/MAC and IOMMU group.
import { join } from 'node:path';
import { list, linkName, pciDeviceDir, readInt, readText, realName } from './sysfs.js';
import { readPfVfMacs } from './mac.js';
import type { CommandRunner, PhysicalFunction, VirtualFunction } from './types.js';

export interface DiscoverOptions {
  /** Directory that holds sys/ (default "/"). */
  root?: string;
  /** When given, VFs without a netdev get their MAC from the PF's VF table (`ip -j link show`). */
  runner?: CommandRunner;
  /** The ip program (default "ip"). */
  ip?: string;
}

// Switchdev representors share the PF's PCI device; their phys_port_name is pfN, pfNvfM or
// pfNsfM. The PF's own (uplink) netdev has an empty phys_port_name or pN.
const REPRESENTOR = /^(c\d+)?pf\d+((vf|sf)\d+)?$/;

/** Every SR-IOV capable network PF (one with sriov_totalvfs), with its VFs. */
export async function discoverPfs(opts: DiscoverOptions = {}): Promise<PhysicalFunction[]> {
  const root = opts.root ?? '/';
  const netDir = join(root, 'sys/class/net');
  const byPci = new Map<string, { name: string; representor: boolean }>();
  for (const name of await list(netDir)) {
    const dev = join(netDir, name, 'device');
    if ((await readInt(join(dev, 'sriov_totalvfs'))) === null) continue;
    const pci = await realName(dev);
    if (!pci) continue;
    const representor = REPRESENTOR.test((await readText(join(netDir, name, 'phys_port_name'))) ?? '');
    const seen = byPci.get(pci);
    if (!seen || (seen.representor && !representor)) byPci.set(pci, { name, representor });
  }
  const singleNode = (await numaNodeCount(root)) <= 1;
  const pfs: PhysicalFunction[] = [];
  for (const [pci, { name }] of [...byPci].sort((a, b) => a[1].name.localeCompare(b[1].name))) {
    pfs.push(await readPf(root, name, pci, singleNode, opts));
  }
  return pfs;
}

/** All VFs of all PFs, ordered by PF name then VF index. */
export async function discoverVfs(opts: DiscoverOptions = {}): Promise<VirtualFunction[]> {
  return (await discoverPfs(opts)).flatMap((pf) => pf.vfs);
}

/** The VF at a PCI address, or null when no discovered PF has it. */
export async function findVf(pciAddress: string, opts: DiscoverOptions = {}): Promise<VirtualFunction | null> {
  return (await discoverVfs(opts)).find((vf) => vf.pciAddress === pciAddress) ?? null;
}

async function numaNodeCount(root: string): Promise<number> {
  return (await list(join(root, 'sys/devices/system/node'))).filter((n) => /^node\d+$/.test(n)).length;
}

/** numa_node is -1 when the firmware does not say; on a one-node host that can only be node 0. */
async function numaNode(devDir: string, singleNode: boolean): Promise<number | null> {
  const n = await readInt(join(devDir, 'numa_node'));
  if (n !== null && n >= 0) return n;
  return singleNode ? 0 : null;
}

async function pciId(path: string): Promise<string> {
  return ((await readText(path)) ?? '').replace(/^0x/i, '').toLowerCase();
}

async function readPf(root: string, name: string, pci: string, singleNode: boolean, opts: DiscoverOptions): Promise<PhysicalFunction> {
  const dev = pciDeviceDir(root, pci);
  const vfs: VirtualFunction[] = [];
  for (const entry of await list(dev)) {
    const m = /^virtfn(\d+)$/.exec(entry);
    if (!m) continue;
    const vfPci = await realName(join(dev, entry));
    if (!vfPci) continue;
    vfs.push(await readVf(root, vfPci, name, pci, Number(m[1]), singleNode));
  }
  vfs.sort((a, b) => a.vfIndex - b.vfIndex);
  if (opts.runner && vfs.some((vf) => vf.mac === null)) {
    const macs = await readPfVfMacs(name, { runner: opts.runner, ip: opts.ip }).catch(() => new Map<number, string>());
    for (const vf of vfs) {
      const mac = macs.get(vf.vfIndex);
      if (vf.mac === null && mac) {
        vf.mac = mac;
        vf.macSource = 'pf';
      }
    }
  }
  return {
    name,
    pciAddress: pci,
    vendor: await pciId(join(dev, 'vendor')),
    device: await pciId(join(dev, 'device')),
    driver: await linkName(join(dev, 'driver')),
    numaNode: await numaNode(dev, singleNode),
    totalVfs: (await readInt(join(dev, 'sriov_totalvfs'))) ?? 0,
    numVfs: (await readInt(join(dev, 'sriov_numvfs'))) ?? 0,
    operState: await readText(join(root, 'sys/class/net', name, 'operstate')),
    vfs,
  };
}

async function readVf(root: string, pci: string, pfName: string, pfPci: string, vfIndex: number, singleNode: boolean): Promise<VirtualFunction> {
  const dev = pciDeviceDir(root, pci);
  const netdev = (await list(join(dev, 'net')))[0] ?? null;
  let mac: string | null = null;
  if (netdev) {
    const addr = (await readText(join(dev, 'net', netdev, 'address')))?.toLowerCase() ?? null;
    if (addr && addr !== '00:00:00:00:00:00') mac = addr;
  }
  const group = await linkName(join(dev, 'iommu_group'));
  const override = await readText(join(dev, 'driver_override'));
  return {
    pciAddress: pci,
    pfName,
    pfPciAddress: pfPci,
    vfIndex,
    vendor: await pciId(join(dev, 'vendor')),
    device: await pciId(join(dev, 'device')),
    numaNode: await numaNode(dev, singleNode),
    driver: await linkName(join(dev, 'driver')),
    driverOverride: override && override !== '(null)' ? override : null,
    netdev,
    mac,
    macSource: mac ? 'netdev' : null,
    iommuGroup: group !== null && /^\d+$/.test(group) ? Number(group) : null,
  };
}
