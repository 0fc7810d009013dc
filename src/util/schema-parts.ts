// JSON-schema pieces that both the agent's config schema (src/agent/config/schema.ts) and the
// CRDs (src/kube/crd-schemas.ts) are built from, so that a relay field accepts the same values
// whichever way it is written. Forms come from identifiers.ts, ranges from limits.ts.
import { MAC_PATTERN, PCI_ADDRESS_PATTERN, PCI_ID_PATTERN } from './identifiers.js';
import { MAX_BOND_MEMBERS, MAX_CPUS, MAX_DEVARGS, MAX_QUEUES, MTU_MAX, MTU_MIN } from './limits.js';

export const pciAddressSchema = {
  type: 'string',
  description: 'PCI address in the form 0000:03:00.1.',
  pattern: PCI_ADDRESS_PATTERN,
} as const;

export const pciAddressesSchema = {
  type: 'array',
  description: `Two or more VFs bonded together (at most ${MAX_BOND_MEMBERS}).`,
  minItems: 1,
  maxItems: MAX_BOND_MEMBERS,
  items: pciAddressSchema,
} as const;

export const bondModeSchema = { type: 'integer', description: 'DPDK bond mode 0..6 for pciAddresses (default 1, active-backup).', minimum: 0, maximum: 6 } as const;

export const devargsSchema = {
  type: 'string',
  description: 'DPDK devargs of a virtual device used as the VF (testing), e.g. net_tap0,iface=vf0.',
  minLength: 1,
  maxLength: MAX_DEVARGS,
} as const;

/** The fields of a VF selector (util/vf-selector.ts checks them again, with the fix). */
export const vfSelectorProperties = {
  // IFNAMSIZ - 1: no netdev name is longer
  pfName: { type: 'string', description: 'Name of the PF netdev, e.g. ens1f0.', minLength: 1, maxLength: 15 },
  vendor: { type: 'string', description: 'PCI vendor id of the VF (hex), e.g. 8086.', pattern: PCI_ID_PATTERN },
  device: { type: 'string', description: 'PCI device id of the VF (hex), e.g. 154c.', pattern: PCI_ID_PATTERN },
  vfIndexRange: { type: 'string', description: 'VF index range on the PF, e.g. 0-7 or 3.', pattern: '^[0-9]+(-[0-9]+)?$', maxLength: 11 },
} as const;

export const socketPermSchema = { type: 'string', description: 'Socket permissions in octal, e.g. 0660.', pattern: '^0?[0-7]{3}$' } as const;

export const queuesSchema = { type: 'integer', description: `Queue pairs, 1..${MAX_QUEUES}.`, minimum: 1, maximum: MAX_QUEUES } as const;

export const macSchema = {
  type: 'string',
  description: 'The VM\'s MAC address; set on the VF so frames pass it (the relay rewrites nothing).',
  pattern: MAC_PATTERN,
  maxLength: 17,
} as const;

export const mtuSchema = { type: 'integer', description: `MTU of the VF and the guest interface, ${MTU_MIN}..${MTU_MAX}.`, minimum: MTU_MIN, maximum: MTU_MAX } as const;

export const cpuSchema = { type: 'integer', minimum: 0, maximum: MAX_CPUS - 1 } as const;

export const relayCpusSchema = {
  type: 'array',
  description: 'Worker CPUs: one for both directions, or two (VF->VM, VM->VF).',
  minItems: 1,
  maxItems: 2,
  items: cpuSchema,
} as const;
