// The identifiers users and hosts write, parsed in one place: PCI addresses, PCI vendor/device
// ids, MAC addresses and CPU lists. Errors name the field and show the form to use. The JSON
// schemas (agent config, CRDs) take their patterns from here too; a lint rule keeps PCI-address
// regexes out of every other file.
import { ValidationError } from './errors.js';
import { MAX_CPUS } from './limits.js';

// ---- PCI addresses -------------------------------------------------------------------------

/** The canonical form DDDD:BB:SS.F as a JSON-schema pattern (either case). */
export const PCI_ADDRESS_PATTERN = '^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$';

/** Any spelling: domain optional, leading zeros optional (virtio-forwarder clients send both). */
const PCI_ANY = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i;

/** The numeric fields of a PCI function address. */
export interface PciFields {
  domain: number;
  bus: number;
  slot: number;
  function: number;
}

const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');

/** Canonical lower-case text: 0000:05:08.1. */
export function formatPciAddress(a: PciFields): string {
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(a.slot, 2)}.${hex(a.function, 1)}`;
}

/** Why fields are not a PCI function address, or null when they are one. */
export function checkPciFields(a: PciFields): string | null {
  if (a.domain > 0xffff) return `domain ${a.domain} is above 0xffff`;
  if (a.bus > 0xff) return `bus ${a.bus} is above 0xff`;
  if (a.slot > 0x1f) return `slot ${a.slot} is above 0x1f`;
  if (a.function > 7) return `function ${a.function} is above 7`;
  return null;
}

interface ReadPci {
  fields: PciFields;
  /** written with a domain */
  hasDomain: boolean;
  /** every field at full width (DDDD, BB, SS) */
  fullWidth: boolean;
}

function readPci(text: string): ReadPci | undefined {
  const m = PCI_ANY.exec(text.trim());
  if (!m) return undefined;
  return {
    fields: { domain: parseInt(m[1] ?? '0', 16), bus: parseInt(m[2]!, 16), slot: parseInt(m[3]!, 16), function: parseInt(m[4]!, 16) },
    hasDomain: m[1] !== undefined,
    fullWidth: (m[1] === undefined || m[1].length === 4) && m[2]!.length === 2 && m[3]!.length === 2,
  };
}

/** Fields of any spelling (DDDD:BB:SS.F, BB:SS.F, short hex); undefined when it is no address. */
export function pciFields(text: string): PciFields | undefined {
  const r = readPci(text);
  return r && !checkPciFields(r.fields) ? r.fields : undefined;
}

/** True for the canonical form DDDD:BB:SS.F (either case). */
export function isPciAddress(text: string): boolean {
  const r = readPci(text);
  return !!r && r.hasDomain && r.fullWidth;
}

export interface PciParseOptions {
  /** Refuse BB:SS.F without a domain (default: read as domain 0000). */
  requireDomain?: boolean;
}

/**
 * Normalizes "0000:3B:02.1" (or "3b:02.1" unless requireDomain) to "0000:3b:02.1"; throws a
 * ValidationError naming `field` otherwise.
 */
export function parsePciAddress(input: unknown, field = 'pciAddress', opts: PciParseOptions = {}): string {
  if (typeof input !== 'string') {
    throw new ValidationError(field, `expected a PCI address string like "0000:81:01.0", got ${typeof input}`);
  }
  const r = readPci(input);
  if (!r || !r.fullWidth || (opts.requireDomain && !r.hasDomain)) {
    throw new ValidationError(
      field,
      `"${input}" is not a PCI address; write it as DDDD:BB:DD.F (domain:bus:device.function, hex), e.g. "0000:81:01.0" ` +
        '(see `lspci -D` or the virtfnN links under /sys/class/net/<pf>/device)',
    );
  }
  if (r.fields.slot > 0x1f) {
    throw new ValidationError(field, `"${input}": PCI device number ${hex(r.fields.slot, 2)} is above 1f; check the address with \`lspci -D\``);
  }
  return formatPciAddress(r.fields);
}

/** Normalizes a PCI vendor or device id ("0x8086", "8086", "8086\n") to 4 lower-case hex digits. */
export function parsePciId(input: unknown, field: string): string {
  const s = typeof input === 'number' ? input.toString(16) : typeof input === 'string' ? input.trim() : null;
  const m = s === null ? null : /^(?:0x)?([0-9a-f]{1,4})$/i.exec(s);
  if (!m) {
    throw new ValidationError(field, `${JSON.stringify(input)} is not a PCI id; write 4 hex digits, e.g. "8086" (see \`lspci -nn\`)`);
  }
  return m[1]!.toLowerCase().padStart(4, '0');
}

/** A PCI vendor or device id as a JSON-schema pattern. */
export const PCI_ID_PATTERN = '^[0-9a-fA-F]{4}$';

// ---- MAC addresses -------------------------------------------------------------------------

/** Six colon-separated hex octets as a JSON-schema pattern. */
export const MAC_PATTERN = '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$';
const MAC = new RegExp(MAC_PATTERN);

/** True for six colon-separated hex octets (either case). */
export function isMacAddress(text: string): boolean {
  return MAC.test(text);
}

/** Validates a unicast Ethernet MAC ("-" separators allowed) and returns it in lower case. */
export function parseMac(input: unknown, field = 'mac'): string {
  if (typeof input !== 'string' || !MAC.test(input.trim().replace(/-/g, ':'))) {
    throw new ValidationError(field, `${JSON.stringify(input)} is not a MAC address; write six hex octets, e.g. "52:54:00:12:34:56"`);
  }
  const mac = input.trim().replace(/-/g, ':').toLowerCase();
  if (parseInt(mac.slice(0, 2), 16) & 1) {
    throw new ValidationError(field, `${mac} is a multicast address; a VF needs a unicast MAC (lowest bit of the first octet 0), e.g. "52:54:00:12:34:56"`);
  }
  if (mac === '00:00:00:00:00:00') {
    throw new ValidationError(field, 'the all-zero MAC is not a usable address; give the VM\'s MAC, e.g. "52:54:00:12:34:56"');
  }
  return mac;
}

// ---- CPU lists -----------------------------------------------------------------------------

export interface CpuListOptions {
  /**
   * Text a kernel wrote (sysfs cpulists, isolcpus=): words between the numbers (isolcpus's
   * flags) are skipped, an empty list is no error, nothing throws.
   */
  kernel?: boolean;
}

/**
 * Parses a CPU list: the kernel's format "0-3,8,10-11" (also "0-15:2/4": in each group of 4 the
 * first 2), or a hex mask "0x3a". Sorted, without duplicates. Throws a ValidationError naming
 * `field` unless opts.kernel.
 */
export function parseCpuList(text: string | null | undefined, field = 'cpus', opts: CpuListOptions = {}): number[] {
  const fail = (why: string): never => {
    throw new ValidationError(field, `${why} (bad CPU list "${text ?? ''}")`);
  };
  const t = (text ?? '').trim();
  const cpus = new Set<number>();
  if (/^0x[0-9a-f]+$/i.test(t)) {
    const mask = BigInt(t);
    for (let b = 0; b < MAX_CPUS && mask >> BigInt(b); b++) if ((mask >> BigInt(b)) & 1n) cpus.add(b);
    if (!cpus.size && !opts.kernel) fail('the mask selects no CPU: give a non-zero mask or a list like 1,3-5');
  } else {
    for (const part of t.split(',')) {
      const m = /^\s*(\d+)(?:-(\d+)(?::(\d+)\/(\d+))?)?\s*$/.exec(part);
      if (!m) {
        if (opts.kernel || part.trim() === '') continue;
        fail(`"${part.trim()}" is not a CPU or range: use a list like 1,3-5 or a mask like 0x6`);
      }
      const a = Number(m![1]);
      const b = m![2] === undefined ? a : Number(m![2]);
      if (b < a && !opts.kernel) fail(`range ${part.trim()} runs backwards: write ${b}-${a}`);
      if (b >= MAX_CPUS && !opts.kernel) fail(`CPU ${b} is above ${MAX_CPUS - 1}`);
      const used = m![3] === undefined ? 1 : Number(m![3]);
      const group = m![4] === undefined ? 1 : Number(m![4]);
      for (let c = a; c <= b; c++) if ((c - a) % group < used) cpus.add(c);
    }
    if (!cpus.size && !opts.kernel) fail('it is empty: give CPUs like 1,3-5');
  }
  return [...cpus].sort((x, y) => x - y);
}

/** Formats numbers back as a compact list: [0,1,2,5] -> "0-2,5". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

// ---- Kubernetes object names ---------------------------------------------------------------

/** An RFC 1123 label (a namespace; one part of a subdomain), without anchors. */
export const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const LABEL = new RegExp(`^${DNS_LABEL}$`);
const SUBDOMAIN = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);

/** True for a namespace name: an RFC 1123 label of at most 63 characters. */
export function isNamespaceName(text: string): boolean {
  return text.length <= 63 && LABEL.test(text);
}

/** True for a pod name (and most object names): an RFC 1123 subdomain of at most 253 characters. */
export function isObjectName(text: string): boolean {
  return text.length <= 253 && SUBDOMAIN.test(text);
}
