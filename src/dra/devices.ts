// From the node's relays to ResourceSlices: one DRA pool per vio4wd pool on this node, one device
// per relay of the pool and one per free VF the pool may turn into a relay, with the attributes a
// DeviceClass or a claim selects on. Pure functions.
import { createHash } from 'node:crypto';
import type { RelayStatus } from '../relay/types.js';
import { resourceNameOf } from '../deviceplugin/pool.js';
import { isPciAddress } from '../util/identifiers.js';
import type { VfIdentity } from '../util/vf-selector.js';
import { DRIVER_NAME, MAX_DEVICES_PER_SLICE } from './constants.js';

/** A ResourceSlice device attribute (resource.k8s.io/v1 DeviceAttribute: exactly one value). */
export type DeviceAttribute = { int: number } | { string: string } | { bool: boolean } | { version: string };

export interface SliceDevice {
  name: string;
  attributes: Record<string, DeviceAttribute>;
}

/** What the publisher knows of one relay's VF (undefined fields are not published). */
export interface RelayHardware {
  vf?: VfIdentity;
  /** The PF's link speed in Mbit/s (sysfs speed), when the kernel reports one. */
  linkSpeedMbps?: number;
  /** A DPDK virtual device's devargs (test stand-ins), when the relay has no VF. */
  devargs?: string;
}

/**
 * A VF the pool policy lets a pool draw on that no relay holds: published as a device of its
 * own; preparing a claim for it creates its relay (named relayNameOfVf), unpreparing deletes it.
 */
export interface FreeVf {
  /** vio4wd pool, e.g. vio4wd.io/vhostuser */
  resourceName: string;
  /** the VF's PCI address (or the address a DPDK virtual device stands in for: sriov.standIns) */
  pciAddress: string;
  /** what sysfs tells of a real VF */
  vf?: VfIdentity;
  /** the stand-in's devargs */
  devargs?: string;
  linkSpeedMbps?: number;
  /** queue pairs a claim may ask for (the pool policy's limit, else the engine's) */
  maxQueues: number;
  /** the vhost-user mode its relay gets */
  mode: 'client' | 'server';
  /** the pool policy's limits, checked at prepare */
  maxMtu?: number;
  policy?: string;
}

/** One device as published, and the relay it stands for (for a free VF: the relay prepare creates). */
export interface PublishedDevice {
  /** vio4wd pool, e.g. vio4wd.io/vhostuser */
  resourceName: string;
  /** DRA pool name: "<node>/<pool>" */
  pool: string;
  device: SliceDevice;
  relay: string;
  /** set for a free VF's device */
  vf?: FreeVf;
}

/** The device name of a free VF: "vf-" and its PCI address, e.g. vf-0000-3b-02-1. */
export function vfDeviceName(pciAddress: string): string {
  return `vf-${pciAddress.toLowerCase().replace(/[:.]/g, '-')}`;
}

/** The relay prepare creates for a free VF's device. */
export function relayNameOfVf(pciAddress: string): string {
  return `dra.${vfDeviceName(pciAddress)}`;
}

/** The attributes of a free VF's device: those of a relay on it, and onDemand. */
export function vfDeviceAttributes(v: FreeVf): Record<string, DeviceAttribute> {
  const a: Record<string, DeviceAttribute> = {
    pool: { string: v.resourceName },
    socketMode: { string: v.mode },
    maxQueues: { int: v.maxQueues },
    // the relay is made for the claim (with its queues and MTU) and deleted after it
    onDemand: { bool: true },
    pciAddress: { string: v.pciAddress },
  };
  if (v.vf) {
    if (v.vf.numaNode !== null && v.vf.numaNode !== undefined && v.vf.numaNode >= 0) a.numaNode = { int: v.vf.numaNode };
    a.pfName = { string: v.vf.pfName };
    a.vendor = { string: v.vf.vendor };
    a.deviceId = { string: v.vf.device };
    a.vfIndex = { int: v.vf.vfIndex };
  }
  if (v.devargs) a.virtualDevice = { string: v.devargs.split(',')[0]!.slice(0, 64) };
  if (v.linkSpeedMbps !== undefined && v.linkSpeedMbps > 0) a.linkSpeedMbps = { int: v.linkSpeedMbps };
  return a;
}

export interface ResourceSliceBody {
  apiVersion: 'resource.k8s.io/v1';
  kind: 'ResourceSlice';
  metadata: { name: string; labels: Record<string, string>; ownerReferences?: unknown[] };
  spec: {
    driver: string;
    nodeName: string;
    pool: { name: string; generation: number; resourceSliceCount: number };
    devices: SliceDevice[];
  };
}

/** Label on every slice vio4wd writes: the publisher lists and cleans up by it. */
export const SLICE_LABEL = 'vio4wd.io/dra-pool';

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function shortHash(s: string, n = 8): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

/**
 * A device name (a DNS label, at most 63 characters) for a relay name, which may hold dots and be
 * longer: the name itself when it is a DNS label, otherwise a cleaned-up form with a hash of the
 * original, so that two relays never share a device name.
 */
export function deviceNameOf(relay: string): string {
  if (relay.length <= 63 && DNS_LABEL_RE.test(relay)) return relay;
  const clean = relay.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return `${clean.slice(0, 54).replace(/-+$/, '') || 'relay'}-${shortHash(relay)}`;
}

/** The DRA pool name of a vio4wd pool on a node: "<node>/<pool's name part>" (DNS subdomains joined by "/"). */
export function draPoolName(nodeName: string, resourceName: string): string {
  const slash = resourceName.indexOf('/');
  const domain = resourceName.slice(0, slash);
  const name = resourceName.slice(slash + 1).toLowerCase().replace(/[^a-z0-9.-]+/g, '-');
  return domain === DRIVER_NAME ? `${nodeName}/${name}` : `${nodeName}/${domain}/${name}`;
}

/** The slice object name for a pool: DNS subdomain, stable, unique per node and pool. */
export function sliceName(nodeName: string, resourceName: string, index: number): string {
  const base = `${nodeName}-${resourceName.slice(resourceName.indexOf('/') + 1)}`.toLowerCase().replace(/[^a-z0-9.-]+/g, '-');
  return `vio4wd-${base.slice(0, 200)}-${shortHash(`${nodeName}/${resourceName}`, 6)}-${index}`;
}

/** The attributes of one relay's device. Names are unqualified: they belong to the driver's domain. */
export function deviceAttributes(s: RelayStatus, hw: RelayHardware): Record<string, DeviceAttribute> {
  const a: Record<string, DeviceAttribute> = {
    // string attributes hold at most 64 characters: a longer relay name is left out (the device name maps it)
    ...(s.name.length <= 64 ? { relay: { string: s.name } } : {}),
    pool: { string: resourceNameOf(s) },
    socketMode: { string: s.mode },
    maxQueues: { int: s.queues },
  };
  const numa = hw.vf?.numaNode ?? (s.numaNode >= 0 ? s.numaNode : null);
  if (numa !== null && numa !== undefined && numa >= 0) a.numaNode = { int: numa };
  if (hw.vf) {
    a.pfName = { string: hw.vf.pfName };
    a.pciAddress = { string: hw.vf.pciAddress };
    a.vendor = { string: hw.vf.vendor };
    a.deviceId = { string: hw.vf.device };
    a.vfIndex = { int: hw.vf.vfIndex };
  } else {
    const devargs = hw.devargs ?? (s.pciAddress && !isPciAddress(s.pciAddress.split(',')[0]!) ? s.pciAddress : undefined);
    if (devargs) a.virtualDevice = { string: devargs.split(',')[0]!.slice(0, 64) };
  }
  if (hw.linkSpeedMbps !== undefined && hw.linkSpeedMbps > 0) a.linkSpeedMbps = { int: hw.linkSpeedMbps };
  if (s.mtu !== undefined) a.mtu = { int: s.mtu };
  return a;
}

/** The devices of every pool, grouped by vio4wd pool: relays first, then free VFs; device names unique per pool. */
export function publishedDevices(nodeName: string, relays: readonly { status: RelayStatus; hw: RelayHardware }[], vfs: readonly FreeVf[] = []): Map<string, PublishedDevice[]> {
  const byPool = new Map<string, PublishedDevice[]>();
  const add = (d: PublishedDevice): void => {
    const list = byPool.get(d.resourceName) ?? [];
    byPool.set(d.resourceName, list);
    // a relay someone named like a VF's device keeps the name; the VF is left out
    if (!list.some((x) => x.device.name === d.device.name)) list.push(d);
  };
  for (const { status, hw } of [...relays].sort((x, y) => x.status.name.localeCompare(y.status.name))) {
    const rn = resourceNameOf(status);
    add({ resourceName: rn, pool: draPoolName(nodeName, rn), relay: status.name, device: { name: deviceNameOf(status.name), attributes: deviceAttributes(status, hw) } });
  }
  for (const v of [...vfs].sort((x, y) => x.pciAddress.localeCompare(y.pciAddress))) {
    add({ resourceName: v.resourceName, pool: draPoolName(nodeName, v.resourceName), relay: relayNameOfVf(v.pciAddress), vf: v, device: { name: vfDeviceName(v.pciAddress), attributes: vfDeviceAttributes(v) } });
  }
  return byPool;
}

/** The slices of one pool (at most MAX_DEVICES_PER_SLICE devices each; one empty slice for an empty pool). */
export function poolSlices(nodeName: string, resourceName: string, devices: readonly PublishedDevice[], generation: number): ResourceSliceBody[] {
  const chunks: PublishedDevice[][] = [];
  for (let i = 0; i < devices.length; i += MAX_DEVICES_PER_SLICE) chunks.push(devices.slice(i, i + MAX_DEVICES_PER_SLICE));
  if (chunks.length === 0) chunks.push([]);
  const pool = draPoolName(nodeName, resourceName);
  return chunks.map((chunk, i) => ({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceSlice',
    metadata: { name: sliceName(nodeName, resourceName, i), labels: { [SLICE_LABEL]: shortHash(pool, 16) } },
    spec: {
      driver: DRIVER_NAME,
      nodeName,
      pool: { name: pool, generation, resourceSliceCount: chunks.length },
      devices: chunk.map((d) => d.device),
    },
  }));
}
