// Parsing and validation of the identifiers users write: PCI addresses, vendor/device ids,
// MAC addresses. Errors name the field and show the expected form.
import { ValidationError } from '../util/errors.js';

const PCI_FULL = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;
const PCI_SHORT = /^([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;

/** Normalizes "0000:3B:02.1" or "3b:02.1" to "0000:3b:02.1"; throws ValidationError otherwise. */
export function parsePciAddress(input: unknown, field = 'pciAddress'): string {
  if (typeof input !== 'string') {
    throw new ValidationError(field, `expected a PCI address string like "0000:3b:02.1", got ${typeof input}`);
  }
  const s = input.trim();
  let m = PCI_FULL.exec(s);
  let parts: [string, string, string, string] | null = null;
  if (m) parts = [m[1]!, m[2]!, m[3]!, m[4]!];
  else if ((m = PCI_SHORT.exec(s))) parts = ['0000', m[1]!, m[2]!, m[3]!];
  if (!parts) {
    throw new ValidationError(
      field,
      `"${input}" is not a PCI address; write it as DDDD:BB:DD.F (domain:bus:device.function, hex), e.g. "0000:3b:02.1" ` +
        '(see `lspci -D` or the virtfnN links under /sys/class/net/<pf>/device)',
    );
  }
  const dev = parseInt(parts[2], 16);
  if (dev > 0x1f) {
    throw new ValidationError(field, `"${input}": PCI device number ${parts[2]} is above 1f; check the address with \`lspci -D\``);
  }
  return `${parts[0]}:${parts[1]}:${parts[2]}.${parts[3]}`.toLowerCase();
}

export function isPciAddress(input: string): boolean {
  return PCI_FULL.test(input.trim());
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

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Validates a unicast Ethernet MAC and returns it in lower case. */
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
