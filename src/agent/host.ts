// What the agent reads of and does to its host: VFs bound to vfio-pci at start-up, hugepages
// per NUMA node, and the inventory it publishes as the VirtioForwarderNode status.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';
import { VERSION } from '../util/version.js';
import { errorMessage } from '../util/errors.js';
import { formatPciAddress, pciFields } from '../util/identifiers.js';
import type { Engine } from '../engine/index.js';
import type { RelayStatus } from '../relay/index.js';
import type { VirtioForwarderNodeStatus } from '../kube/index.js';
import { bindVfToVfio, discoverPfs, discoverVfs } from '../sriov/index.js';

export interface HugepageCount {
  numaNode: number;
  pageSizeKiB: number;
  total: number;
  free: number;
}

/** Hugepages per NUMA node and page size, from sysfs under root. */
export async function hugepages(root: string): Promise<HugepageCount[]> {
  const out: HugepageCount[] = [];
  const nodesDir = join(root, 'sys/devices/system/node');
  const nodes = (await readdir(nodesDir).catch(() => [] as string[])).filter((n) => /^node\d+$/.test(n));
  for (const n of nodes) {
    const hpDir = join(nodesDir, n, 'hugepages');
    for (const size of await readdir(hpDir).catch(() => [] as string[])) {
      const kib = Number(/hugepages-(\d+)kB/.exec(size)?.[1]);
      const read = async (f: string) => Number((await readFile(join(hpDir, size, f), 'utf8').catch(() => '0')).trim());
      out.push({ numaNode: Number(n.slice(4)), pageSizeKiB: kib, total: await read('nr_hugepages'), free: await read('free_hugepages') });
    }
  }
  return out;
}

/**
 * sriov.bindVfio: binds each listed VF (a PCI address, with or without the domain, or
 * `PF[:count]`) to vfio-pci. A bad item is logged; the others are bound regardless.
 */
export async function bindConfiguredVfs(want: readonly string[], root: string, log: Logger): Promise<void> {
  if (!want.length) return;
  const pfs = await discoverPfs({ root });
  const addrs: string[] = [];
  for (const item of want) {
    // a PCI address, with or without the domain (virtio-forwarder assumes 0000:)
    const pci = pciFields(item);
    if (pci) {
      addrs.push(formatPciAddress(pci));
      continue;
    }
    const [pfName, count] = item.split(':');
    const pf = pfs.find((p) => p.name === pfName);
    if (!pf) {
      log.error({ item }, `sriov.bindVfio: no SR-IOV PF named ${pfName} on this node`);
      continue;
    }
    const n = count !== undefined ? Number(count) : pf.vfs.length;
    addrs.push(...pf.vfs.slice(0, n).map((v) => v.pciAddress));
  }
  for (const a of addrs) {
    try {
      const r = await bindVfToVfio(a, { root, logger: log });
      log.info({ vf: a, driver: r.driver }, 'VF bound for DPDK');
    } catch (err) {
      log.error({ vf: a, err: errorMessage(err) }, 'could not bind VF to vfio-pci');
    }
  }
}

export interface InventoryInput {
  root: string;
  /** VF PCI address -> the relay using it (the resolver's). */
  usage: Map<string, string>;
  relays: readonly RelayStatus[];
  engine: Engine | undefined;
  /** False once the agent is stopping. */
  engineUp: boolean;
}

/** VirtioForwarderNode status: VFs, hugepages, workers and engine health. */
export async function nodeInventory(i: InventoryInput): Promise<Pick<VirtioForwarderNodeStatus, 'vfs' | 'hugepages' | 'workerCpus' | 'engine'>> {
  const byName = new Map(i.relays.map((r) => [r.name, r.ident ?? r.name]));
  const vfs = (await discoverVfs({ root: i.root }).catch(() => [])).map((vf) => ({
    pciAddress: vf.pciAddress,
    pfName: vf.pfName,
    vfIndex: vf.vfIndex,
    vendor: vf.vendor,
    device: vf.device,
    ...(vf.numaNode !== null ? { numaNode: vf.numaNode } : {}),
    ...(vf.driver ? { driver: vf.driver } : {}),
    ...(vf.mac ? { mac: vf.mac } : {}),
    ...(i.usage.has(vf.pciAddress) ? { usedBy: byName.get(i.usage.get(vf.pciAddress)!) ?? i.usage.get(vf.pciAddress)! } : {}),
  }));
  return {
    vfs,
    hugepages: (await hugepages(i.root)).map((h) => ({ ...h })),
    workerCpus: i.engine?.workers().map((w) => w.cpu) ?? [],
    engine: { up: !!i.engine && i.engineUp, agentVersion: VERSION, ...(i.engine ? { dpdkVersion: i.engine.version().dpdk } : {}) },
  };
}
