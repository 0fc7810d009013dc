// Builds fake host trees (sys/, proc/, DPDK files) in a temporary directory, laid out the way the
// kernel lays out the real ones (relative symlinks included), and a fake kernel that reacts to
// sysfs writes (driver_override, unbind, drivers_probe, bind) as Linux does. Used by the sriov
// and doctor tests; reusable wherever code reads a host under a configurable root.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import type { SysfsWriter } from '../../src/sriov/index.js';

export interface FakeVf {
  /** Default: derived from the PF's address (bus + 1, device 0x02 + index / 8, function index % 8). */
  pci?: string;
  vendor?: string;
  device?: string;
  /** Bound driver; null/absent = unbound. */
  driver?: string | null;
  /** Driver the fake kernel probes when no driver_override is set (default: `driver`). */
  nativeDriver?: string;
  /** The VF's netdev (only makes sense with a kernel network driver). */
  netdev?: string;
  mac?: string;
  /** IOMMU group; null = none (IOMMU off). Default: none. */
  iommuGroup?: number | null;
  numaNode?: number;
}

export interface FakePf {
  name: string;
  pci: string;
  vendor?: string;
  device?: string;
  driver?: string;
  numaNode?: number;
  totalVfs?: number;
  /** sriov_numvfs; default vfs.length (set it apart to fake a half-created VF set). */
  numVfs?: number;
  operState?: string;
  mac?: string;
  physPortName?: string;
  vfs?: FakeVf[];
}

export interface FakeDevice {
  vendor?: string;
  device?: string;
  driver?: string | null;
  nativeDriver?: string;
  iommuGroup?: number | null;
  numaNode?: number;
}

export class SysfsTree {
  readonly root: string;
  /** The driver each device goes back to on a probe without driver_override. */
  readonly nativeDrivers = new Map<string, string>();

  private constructor(root: string) {
    this.root = root;
  }

  /** A new empty tree in a fresh temporary directory. Call cleanup() (e.g. in t.after). */
  static create(): SysfsTree {
    return new SysfsTree(mkdtempSync(join(tmpdir(), 'vio4wd-sysfs-')));
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  abs(rel: string): string {
    return join(this.root, rel);
  }

  file(rel: string, content: string | number): this {
    mkdirSync(dirname(this.abs(rel)), { recursive: true });
    writeFileSync(this.abs(rel), `${content}\n`);
    return this;
  }

  dir(rel: string): this {
    mkdirSync(this.abs(rel), { recursive: true });
    return this;
  }

  /** A relative symlink at `rel` pointing at `target` (both relative to the root), as sysfs has. */
  symlink(rel: string, target: string): this {
    const at = this.abs(rel);
    mkdirSync(dirname(at), { recursive: true });
    if (existsSync(at) || isLink(at)) unlinkSync(at);
    symlinkSync(relative(dirname(at), this.abs(target)), at);
    return this;
  }

  read(rel: string): string | null {
    try {
      return readFileSync(this.abs(rel), 'utf8').trim();
    } catch {
      return null;
    }
  }

  /** Basename of where a link points, null when there is no link. */
  link(rel: string): string | null {
    try {
      return basename(readlinkSync(this.abs(rel)));
    } catch {
      return null;
    }
  }

  // --- /proc ---------------------------------------------------------------------------------

  cmdline(line: string): this {
    return this.file('proc/cmdline', line);
  }

  /** /proc/mounts lines ("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0"). */
  mounts(...lines: string[]): this {
    return this.file('proc/mounts', ['sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0', 'proc /proc proc rw,relatime 0 0', ...lines].join('\n'));
  }

  maxMapCount(n: number): this {
    return this.file('proc/sys/vm/max_map_count', n);
  }

  osRelease(release: string): this {
    return this.file('proc/sys/kernel/osrelease', release);
  }

  // --- CPUs, NUMA, hugepages -----------------------------------------------------------------

  cpus(opts: { online: string; isolated?: string; nohzFull?: string }): this {
    this.file('sys/devices/system/cpu/online', opts.online);
    this.file('sys/devices/system/cpu/isolated', opts.isolated ?? '');
    if (opts.nohzFull !== undefined) this.file('sys/devices/system/cpu/nohz_full', opts.nohzFull);
    return this;
  }

  /** A NUMA node with its CPUs and its 2 MiB hugepage pool; the global pool is kept as the sum. */
  numaNode(n: number, opts: { cpus: string; hugepages?: { total: number; free: number } }): this {
    const base = `sys/devices/system/node/node${n}`;
    this.file(`${base}/cpulist`, opts.cpus);
    const hp = opts.hugepages ?? { total: 0, free: 0 };
    this.file(`${base}/hugepages/hugepages-2048kB/nr_hugepages`, hp.total);
    this.file(`${base}/hugepages/hugepages-2048kB/free_hugepages`, hp.free);
    this.file(`${base}/hugepages/hugepages-2048kB/surplus_hugepages`, 0);
    let total = 0;
    let free = 0;
    for (const name of listDir(this.abs('sys/devices/system/node'))) {
      if (!/^node\d+$/.test(name)) continue;
      total += Number(this.read(`sys/devices/system/node/${name}/hugepages/hugepages-2048kB/nr_hugepages`) ?? 0);
      free += Number(this.read(`sys/devices/system/node/${name}/hugepages/hugepages-2048kB/free_hugepages`) ?? 0);
    }
    return this.globalHugepages({ total, free });
  }

  /** The kernel-wide pool only (a kernel without NUMA nodes in sysfs). */
  globalHugepages(hp: { total: number; free: number }, sizeKb = 2048): this {
    this.file(`sys/kernel/mm/hugepages/hugepages-${sizeKb}kB/nr_hugepages`, hp.total);
    return this.file(`sys/kernel/mm/hugepages/hugepages-${sizeKb}kB/free_hugepages`, hp.free);
  }

  // --- IOMMU, vfio ---------------------------------------------------------------------------

  iommuGroups(...groups: number[]): this {
    for (const g of groups) this.dir(`sys/kernel/iommu_groups/${g}/devices`);
    return this;
  }

  /** A loaded PCI driver: sys/bus/pci/drivers/<name> with its bind/unbind/new_id files. */
  pciDriver(name: string): this {
    for (const f of ['bind', 'unbind', 'new_id', 'remove_id']) this.file(`sys/bus/pci/drivers/${name}/${f}`, '');
    this.file('sys/bus/pci/drivers_probe', '');
    return this;
  }

  /** vfio-pci as an installed but not loaded module of kernel `release`. */
  vfioModuleFile(release: string): this {
    this.osRelease(release);
    return this.file(`lib/modules/${release}/kernel/drivers/vfio/pci/vfio-pci.ko.xz`, 'module');
  }

  // --- PCI devices, SR-IOV -------------------------------------------------------------------

  devicePath(pci: string): string {
    return `sys/devices/pci0000:00/${pci}`;
  }

  /** A PCI function with the attributes the kernel gives every one. */
  pciDevice(pci: string, opts: FakeDevice = {}): this {
    const dev = this.devicePath(pci);
    this.file(`${dev}/vendor`, `0x${opts.vendor ?? '8086'}`);
    this.file(`${dev}/device`, `0x${opts.device ?? '1889'}`);
    this.file(`${dev}/class`, '0x020000');
    this.file(`${dev}/numa_node`, opts.numaNode ?? -1);
    this.file(`${dev}/driver_override`, '(null)');
    this.symlink(`sys/bus/pci/devices/${pci}`, dev);
    if (opts.iommuGroup !== undefined && opts.iommuGroup !== null) {
      this.iommuGroups(opts.iommuGroup);
      this.symlink(`${dev}/iommu_group`, `sys/kernel/iommu_groups/${opts.iommuGroup}`);
      this.symlink(`sys/kernel/iommu_groups/${opts.iommuGroup}/devices/${pci}`, dev);
    }
    const native = opts.nativeDriver ?? opts.driver ?? undefined;
    if (native) this.nativeDrivers.set(pci, native);
    if (opts.driver) this.bindDriver(pci, opts.driver);
    return this;
  }

  /** Links the device and the driver both ways, as a successful probe does. */
  bindDriver(pci: string, driver: string): this {
    if (!existsSync(this.abs(`sys/bus/pci/drivers/${driver}`))) this.pciDriver(driver);
    this.symlink(`${this.devicePath(pci)}/driver`, `sys/bus/pci/drivers/${driver}`);
    this.symlink(`sys/bus/pci/drivers/${driver}/${pci}`, this.devicePath(pci));
    return this;
  }

  unbindDriver(pci: string): this {
    const driver = this.link(`${this.devicePath(pci)}/driver`);
    if (driver) {
      rmSync(this.abs(`${this.devicePath(pci)}/driver`), { force: true });
      rmSync(this.abs(`sys/bus/pci/drivers/${driver}/${pci}`), { force: true });
    }
    return this;
  }

  /** A netdev of a PCI device: sys/class/net/<name> -> .../<pci>/net/<name>. */
  netdev(pci: string, name: string, opts: { mac?: string; operState?: string; physPortName?: string } = {}): this {
    const nd = `${this.devicePath(pci)}/net/${name}`;
    this.file(`${nd}/address`, opts.mac ?? '00:00:00:00:00:00');
    this.file(`${nd}/operstate`, opts.operState ?? 'up');
    this.file(`${nd}/phys_port_name`, opts.physPortName ?? '');
    this.symlink(`${nd}/device`, this.devicePath(pci));
    return this.symlink(`sys/class/net/${name}`, nd);
  }

  /** An SR-IOV PF with a netdev and its VFs (virtfnN / physfn links). Returns the VF addresses. */
  pf(spec: FakePf): string[] {
    const numa = spec.numaNode;
    this.pciDevice(spec.pci, { vendor: spec.vendor ?? '8086', device: spec.device ?? '1592', driver: spec.driver ?? 'ice', numaNode: numa });
    this.netdev(spec.pci, spec.name, { mac: spec.mac ?? '3c:fd:fe:00:00:01', operState: spec.operState ?? 'up', physPortName: spec.physPortName });
    const vfs = spec.vfs ?? [];
    const dev = this.devicePath(spec.pci);
    this.file(`${dev}/sriov_totalvfs`, spec.totalVfs ?? 64);
    this.file(`${dev}/sriov_numvfs`, spec.numVfs ?? vfs.length);
    const addrs: string[] = [];
    vfs.forEach((vf, i) => {
      const pci = vf.pci ?? vfAddress(spec.pci, i);
      addrs.push(pci);
      this.pciDevice(pci, {
        vendor: vf.vendor ?? '8086',
        device: vf.device ?? '1889',
        driver: vf.driver ?? null,
        nativeDriver: vf.nativeDriver,
        iommuGroup: vf.iommuGroup ?? null,
        numaNode: vf.numaNode ?? numa,
      });
      this.symlink(`${dev}/virtfn${i}`, this.devicePath(pci));
      this.symlink(`${this.devicePath(pci)}/physfn`, dev);
      if (vf.netdev) this.netdev(pci, vf.netdev, { mac: vf.mac });
    });
    return addrs;
  }

  // --- DPDK files ----------------------------------------------------------------------------

  /** What Debian's dpdk + libdpdk-dev packages leave on disk. Each part optional. */
  dpdk(opts: { pcVersion?: string; debVersion?: string; ealAbi?: number; triplet?: string }): this {
    const lib = `usr/lib/${opts.triplet ?? 'x86_64-linux-gnu'}`;
    if (opts.pcVersion) this.file(`${lib}/pkgconfig/libdpdk.pc`, `prefix=/usr\nName: DPDK\nDescription: The Data Plane Development Kit (DPDK).\nVersion: ${opts.pcVersion}\nRequires: libdpdk-libs\n`);
    if (opts.ealAbi !== undefined) {
      this.file(`${lib}/librte_eal.so.${opts.ealAbi}.0`, 'ELF');
      this.symlink(`${lib}/librte_eal.so.${opts.ealAbi}`, `${lib}/librte_eal.so.${opts.ealAbi}.0`);
    }
    if (opts.debVersion) {
      this.file(
        'var/lib/dpkg/status',
        [
          'Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\n',
          `Package: dpdk\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: ${opts.debVersion}\n`,
        ].join('\n'),
      );
    }
    return this;
  }
}

/** VF i of a PF at bb:dd.f: bus bb+1, device 0x02 + i/8, function i%8 (an ice-like layout). */
export function vfAddress(pfPci: string, i: number): string {
  const [dom, bus] = pfPci.split(':') as [string, string];
  const b = (parseInt(bus, 16) + 1).toString(16).padStart(2, '0');
  const d = (0x02 + Math.floor(i / 8)).toString(16).padStart(2, '0');
  return `${dom}:${b}:${d}.${i % 8}`;
}

function isLink(p: string): boolean {
  try {
    readlinkSync(p);
    return true;
  } catch {
    return false;
  }
}

function listDir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export interface FakeKernelOptions {
  /** How `echo <pci> > driver/unbind` goes wrong: 'error' = the write fails (EBUSY),
   *  'ignored' = the write succeeds but the device stays bound. */
  unbind?: 'ok' | 'error' | 'ignored';
  /** 'ignored' = probes and bind writes take no effect at all. */
  probe?: 'ok' | 'ignored';
  /** A driver whose probe refuses the device (the device stays unbound when it is the only choice). */
  refuse?: string;
}

/** Every write the fake kernel saw, in order: [path relative to the root, value]. */
export type WriteLog = [string, string][];

/**
 * A SysfsWriter that plays the kernel's part in `tree`: driver_override is stored, unbind drops
 * the driver links, drivers_probe binds to the override (or the device's native driver) when
 * that driver is loaded, a driver's bind file binds unless driver_override names another driver.
 */
export function fakeKernel(tree: SysfsTree, opts: FakeKernelOptions = {}): { write: SysfsWriter; log: WriteLog } {
  const log: WriteLog = [];
  const write: SysfsWriter = async (path, value) => {
    const rel = relative(tree.root, path);
    log.push([rel, value]);
    const pci = value.trim();
    const m = /^sys\/bus\/pci\/drivers\/([^/]+)\/(unbind|bind)$/.exec(rel);
    if (m) {
      const [, driver, op] = m as unknown as [string, string, string];
      if (op === 'unbind') {
        if (opts.unbind === 'error') throw Object.assign(new Error(`EBUSY: device or resource busy, write '${path}'`), { code: 'EBUSY' });
        if (opts.unbind === 'ignored') return;
        if (tree.link(`${tree.devicePath(pci)}/driver`) !== driver) throw Object.assign(new Error('ENODEV: no such device'), { code: 'ENODEV' });
        tree.unbindDriver(pci);
        return;
      }
      const override = overrideOf(tree, pci);
      if (opts.probe === 'ignored' || opts.refuse === driver || (override && override !== driver) || tree.link(`${tree.devicePath(pci)}/driver`)) {
        throw Object.assign(new Error('ENODEV: no such device'), { code: 'ENODEV' });
      }
      tree.bindDriver(pci, driver);
      return;
    }
    if (rel === 'sys/bus/pci/drivers_probe') {
      if (opts.probe === 'ignored' || tree.link(`${tree.devicePath(pci)}/driver`)) return;
      const want = overrideOf(tree, pci) ?? tree.nativeDrivers.get(pci);
      if (want && want !== opts.refuse && existsSync(tree.abs(`sys/bus/pci/drivers/${want}`))) tree.bindDriver(pci, want);
      return;
    }
    if (rel.endsWith('/driver_override')) {
      writeFileSync(path, value === '' || value === '\n' ? '(null)\n' : `${value.trim()}\n`);
      return;
    }
    writeFileSync(path, value);
  };
  return { write, log };
}

function overrideOf(tree: SysfsTree, pci: string): string | null {
  const v = tree.read(`${tree.devicePath(pci)}/driver_override`);
  return v && v !== '(null)' ? v : null;
}
