// VF selectors: which VFs a relay (or a VirtioRelay CR) may use. The agent matches them against
// the VFs it discovered in sysfs; the operator matches the same selector against a node's VF
// list. Shared by both sides, so it lives here rather than in either role.
import { ValidationError } from './errors.js';
import { parsePciAddress, parsePciId } from './identifiers.js';

/** The fields a selector matches on: what the operator knows about a node's VF as well. */
export interface VfIdentity {
  /** Full PCI address, lower case: DDDD:BB:DD.F, e.g. "0000:3b:02.1". */
  pciAddress: string;
  /** Name of the PF's netdev, e.g. "ens1f0". */
  pfName: string;
  /** N of the PF's virtfnN link. */
  vfIndex: number;
  /** PCI vendor id, 4 lower-case hex digits without 0x, e.g. "8086". */
  vendor: string;
  /** PCI device id, 4 lower-case hex digits, e.g. "1889". */
  device: string;
  /** NUMA node; null when the platform does not say (numa_node -1 on a multi-node host). */
  numaNode: number | null;
}

/** A selector as users write it. Fields combine with AND; at least one is required. */
export interface VfSelector {
  /** PF netdev name, e.g. "ens1f0". */
  pfName?: string;
  /** PCI vendor id, hex ("8086"). */
  vendor?: string;
  /** PCI device id of the VF, hex ("1889"). */
  device?: string;
  /** VF indexes on the PF: "3", "0-7", or a list "0-3,6". */
  vfIndexRange?: string;
  /** One VF by PCI address. */
  pciAddress?: string;
}

export interface IndexRange {
  start: number;
  end: number;
}

/** A validated selector: normalized fields plus a match function. */
export interface VfMatcher {
  selector: Readonly<VfSelector>;
  ranges: readonly IndexRange[] | null;
  matches(vf: VfIdentity): boolean;
}

const KEYS = ['pfName', 'vendor', 'device', 'vfIndexRange', 'pciAddress'] as const;

/** Parses "3", "0-7" or "0-3,6" into inclusive ranges. */
export function parseIndexRange(input: unknown, field = 'vfIndexRange'): IndexRange[] {
  const fix = 'write a VF index or an inclusive range of them, e.g. "3", "0-7" or "0-3,6"';
  if (typeof input !== 'string' && typeof input !== 'number') throw new ValidationError(field, `expected a string; ${fix}`);
  const ranges: IndexRange[] = [];
  for (const part of String(input).split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new ValidationError(field, `"${input}" is not an index range; ${fix}`);
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    if (end < start) throw new ValidationError(field, `"${part.trim()}" runs backwards; write the lower index first, e.g. "${end}-${start}"`);
    ranges.push({ start, end });
  }
  return ranges;
}

/** Validates a selector (ValidationError naming `field`.<key> and the fix) and compiles it. */
export function compileVfSelector(input: unknown, field = 'selector'): VfMatcher {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError(field, `expected an object with any of ${KEYS.join(', ')}`);
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new ValidationError(`${field}.${key}`, `unknown selector field; use ${KEYS.join(', ')}`);
    }
  }
  const sel: VfSelector = {};
  if (raw.pfName !== undefined) {
    if (typeof raw.pfName !== 'string' || !/^[^\s/]{1,15}$/.test(raw.pfName)) {
      throw new ValidationError(`${field}.pfName`, `${JSON.stringify(raw.pfName)} is not an interface name; give the PF's netdev name as \`ip link\` shows it, e.g. "ens1f0"`);
    }
    sel.pfName = raw.pfName;
  }
  if (raw.vendor !== undefined) sel.vendor = parsePciId(raw.vendor, `${field}.vendor`);
  if (raw.device !== undefined) sel.device = parsePciId(raw.device, `${field}.device`);
  if (raw.pciAddress !== undefined) sel.pciAddress = parsePciAddress(raw.pciAddress, `${field}.pciAddress`);
  let ranges: IndexRange[] | null = null;
  if (raw.vfIndexRange !== undefined) {
    ranges = parseIndexRange(raw.vfIndexRange, `${field}.vfIndexRange`);
    sel.vfIndexRange = String(raw.vfIndexRange).replace(/\s+/g, '');
  }
  if (Object.keys(sel).length === 0) {
    throw new ValidationError(field, `the selector is empty and would take any VF; give at least one of ${KEYS.join(', ')}`);
  }
  const matches = (vf: VfIdentity): boolean =>
    (sel.pfName === undefined || vf.pfName === sel.pfName) &&
    (sel.vendor === undefined || vf.vendor.toLowerCase() === sel.vendor) &&
    (sel.device === undefined || vf.device.toLowerCase() === sel.device) &&
    (sel.pciAddress === undefined || vf.pciAddress.toLowerCase() === sel.pciAddress) &&
    (ranges === null || ranges.some((r) => vf.vfIndex >= r.start && vf.vfIndex <= r.end));
  return { selector: Object.freeze(sel), ranges, matches };
}

/** True when the VF satisfies the selector (validated on each call; compile once for loops). */
export function matchVf(selector: VfSelector | VfMatcher, vf: VfIdentity): boolean {
  return toMatcher(selector).matches(vf);
}

/** The VFs of `vfs` that the selector picks, in the given order. */
export function selectVfs<T extends VfIdentity>(selector: VfSelector | VfMatcher, vfs: readonly T[]): T[] {
  const m = toMatcher(selector);
  return vfs.filter((vf) => m.matches(vf));
}

function toMatcher(s: VfSelector | VfMatcher): VfMatcher {
  return typeof (s as VfMatcher).matches === 'function' ? (s as VfMatcher) : compileVfSelector(s);
}

export interface PickOptions {
  /** Only VFs this selector picks (default: any VF). */
  selector?: VfSelector | VfMatcher;
  /** PCI addresses already given to relays. */
  inUse?: Iterable<string>;
  /** Prefer VFs on this NUMA node (the VM's node, or where the relay's CPUs are). */
  numaNode?: number | null;
  /** With numaNode: take no VF from another (or an unknown) node. */
  strictNuma?: boolean;
}

/**
 * A free VF for a new relay: one the selector picks and no relay uses, on the wanted NUMA node
 * if there is one, else (unless strictNuma) on an unknown node, else on any node. Ties go to the
 * lowest PF name and VF index, so the choice is stable. Null when none is free.
 */
export function pickFreeVf<T extends VfIdentity>(vfs: readonly T[], opts: PickOptions = {}): T | null {
  const used = new Set([...(opts.inUse ?? [])].map((a) => a.toLowerCase()));
  const m = opts.selector ? toMatcher(opts.selector) : null;
  const free = vfs.filter((vf) => !used.has(vf.pciAddress.toLowerCase()) && (!m || m.matches(vf)));
  const want = opts.numaNode;
  const rank = (vf: T): number => {
    if (want === undefined || want === null) return 0;
    if (vf.numaNode === want) return 0;
    return vf.numaNode === null ? 1 : 2;
  };
  const candidates = free
    .filter((vf) => !(opts.strictNuma && want !== undefined && want !== null && vf.numaNode !== want))
    .sort((a, b) => rank(a) - rank(b) || a.pfName.localeCompare(b.pfName) || a.vfIndex - b.vfIndex);
  return candidates[0] ?? null;
}
