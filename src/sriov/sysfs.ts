// Small readers for sysfs-style files under a root directory (tests point the root at a tree
// they built). Missing files read as null: sysfs attributes come and go with drivers.
import { readFile, readlink, readdir, realpath, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { SysfsWriter } from './types.js';

export async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

export async function readInt(path: string): Promise<number | null> {
  const s = await readText(path);
  if (s === null || !/^-?\d+$/.test(s)) return null;
  return Number(s);
}

/** Basename of a symlink's target (a `driver` or `iommu_group` link), null when absent. */
export async function linkName(path: string): Promise<string | null> {
  try {
    return basename(await readlink(path));
  } catch {
    return null;
  }
}

export async function realName(path: string): Promise<string | null> {
  try {
    return basename(await realpath(path));
  } catch {
    return null;
  }
}

export async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

export function pciDeviceDir(root: string, pciAddress: string): string {
  return join(root, 'sys/bus/pci/devices', pciAddress);
}

export function pciDriverDir(root: string, driver: string): string {
  return join(root, 'sys/bus/pci/drivers', driver);
}

/** The real kernel interface: one write() of the value. */
export const writeSysfs: SysfsWriter = async (path, value) => {
  await writeFile(path, value);
};
