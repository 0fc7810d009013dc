// PCI addresses between the wire (four uint32 fields) and text (DDDD:BB:SS.F, as sysfs spells
// it), in the wire's types; the parsing is util/identifiers.ts's.
import { checkPciFields, formatPciAddress, pciFields } from '../util/identifiers.js';
import type { PortControlRequest_PciAddress } from './wire.gen.js';
import type { PciAddr } from './types.js';

/** Canonical lower-case text form, e.g. 0000:05:08.1. */
export function formatPci(a: PortControlRequest_PciAddress): PciAddr {
  return formatPciAddress(a);
}

/** Why a wire address is not a PCI function address, or null when it is one. */
export function checkPci(a: PortControlRequest_PciAddress): string | null {
  return checkPciFields(a);
}

/** Parses DDDD:BB:SS.F or BB:SS.F (domain 0); undefined when text is not such an address. */
export function parsePci(text: string): PortControlRequest_PciAddress | undefined {
  return pciFields(text);
}
