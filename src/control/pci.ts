// PCI addresses between the wire (four uint32 fields) and text (DDDD:BB:SS.F, as sysfs spells it).
import type { PortControlRequest_PciAddress } from './wire.gen.js';
import type { PciAddr } from './types.js';

const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');

/** Canonical lower-case text form, e.g. 0000:05:08.1. */
export function formatPci(a: PortControlRequest_PciAddress): PciAddr {
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(a.slot, 2)}.${hex(a.function, 1)}`;
}

/** Why a wire address is not a PCI function address, or null when it is one. */
export function checkPci(a: PortControlRequest_PciAddress): string | null {
  if (a.domain > 0xffff) return `domain ${a.domain} is above 0xffff`;
  if (a.bus > 0xff) return `bus ${a.bus} is above 0xff`;
  if (a.slot > 0x1f) return `slot ${a.slot} is above 0x1f`;
  if (a.function > 7) return `function ${a.function} is above 7`;
  return null;
}

const PCI_RE = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i;

/** Parses DDDD:BB:SS.F or BB:SS.F (domain 0); undefined when text is not such an address. */
export function parsePci(text: string): PortControlRequest_PciAddress | undefined {
  const m = PCI_RE.exec(text.trim());
  if (!m) return undefined;
  const a = {
    domain: parseInt(m[1] ?? '0', 16),
    bus: parseInt(m[2] as string, 16),
    slot: parseInt(m[3] as string, 16),
    function: parseInt(m[4] as string, 16),
  };
  return checkPci(a) ? undefined : a;
}
