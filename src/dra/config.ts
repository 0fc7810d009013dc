// The opaque configuration a ResourceClaim (or its DeviceClass) gives vio4wd's devices:
// MAC, queues, MTU, VLAN and spoof check of one relay attachment. Tenant input: every field is
// checked (ajv) and an error names the field, where it was written and the fix.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { VioError } from '../util/errors.js';
import { macSchema, mtuSchema, queuesSchema } from '../util/schema-parts.js';
import { CONFIG_API_VERSION, CONFIG_KIND, DRIVER_NAME } from './constants.js';

/** What a claim may set for its device. */
export interface RelayConfig {
  /** The VM's MAC: programmed on the VF (the one code path the CNI attachments use too). */
  mac?: string;
  /** Queue pairs the guest uses, at most the device's maxQueues. */
  queues?: number;
  mtu?: number;
  /** 802.1Q VLAN the PF tags for the VF, 1..4094; 0 or absent: none. */
  vlan?: number;
  /** The PF drops frames the VF sends from another source MAC (default true). */
  spoofchk?: boolean;
}

export const relayConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind'],
  properties: {
    apiVersion: { const: CONFIG_API_VERSION },
    kind: { const: CONFIG_KIND },
    mac: macSchema,
    queues: queuesSchema,
    mtu: mtuSchema,
    vlan: { type: 'integer', minimum: 0, maximum: 4094, description: '802.1Q VLAN id, 1..4094; 0: none.' },
    spoofchk: { type: 'boolean' },
  },
} as const;

let validator: ValidateFunction | undefined;

/** A claim's configuration is not usable; the message names the field and the fix. */
export class ClaimConfigError extends VioError {
  constructor(message: string) {
    super('EINVAL', message);
    this.name = 'ClaimConfigError';
  }
}

function describe(e: ErrorObject): string {
  const field = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(parameters)';
  switch (e.keyword) {
    case 'additionalProperties':
      return `${field === '(parameters)' ? '' : `${field}.`}${(e.params as { additionalProperty: string }).additionalProperty}: not a field of ${CONFIG_KIND}; use mac, queues, mtu, vlan, spoofchk`;
    case 'required':
      return `${(e.params as { missingProperty: string }).missingProperty}: required; set apiVersion: ${CONFIG_API_VERSION} and kind: ${CONFIG_KIND}`;
    case 'const':
      return `${field}: must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    case 'pattern':
      return `${field}: ${JSON.stringify(e.data)} is not a MAC address; write six hex pairs, e.g. 52:54:00:12:34:56`;
    case 'minimum':
    case 'maximum': {
      const s = relayConfigSchema.properties[field as keyof typeof relayConfigSchema.properties] as { minimum?: number; maximum?: number } | undefined;
      return `${field}: ${JSON.stringify(e.data)} is out of range: use ${s?.minimum ?? '?'}..${s?.maximum ?? '?'}`;
    }
    case 'type':
      return `${field}: ${JSON.stringify(e.data)} must be ${(e.params as { type: string }).type}`;
    default:
      return `${field}: ${e.message ?? 'invalid'}`;
  }
}

/**
 * Checks one opaque parameters object; `where` says where it was written (for the message).
 * Returns the configuration with the MAC in lower case.
 */
export function parseRelayConfig(parameters: unknown, where: string): RelayConfig {
  validator ??= new Ajv({ allErrors: true, strict: true, verbose: true }).compile(relayConfigSchema);
  if (!validator(parameters)) {
    const msgs = (validator.errors ?? []).map(describe);
    throw new ClaimConfigError(`${where}: ${[...new Set(msgs)].join('; ')}`);
  }
  const p = parameters as RelayConfig;
  const out: RelayConfig = {};
  if (p.mac !== undefined) {
    const mac = p.mac.toLowerCase();
    if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new ClaimConfigError(`${where}: mac: ${p.mac} is a multicast address; use a unicast MAC (first octet even), e.g. 52:54:00:12:34:56`);
    if (mac === '00:00:00:00:00:00') throw new ClaimConfigError(`${where}: mac: the all-zero MAC cannot be given to a VF; use a real unicast MAC`);
    out.mac = mac;
  }
  if (p.queues !== undefined) out.queues = p.queues;
  if (p.mtu !== undefined) out.mtu = p.mtu;
  if (p.vlan !== undefined) out.vlan = p.vlan;
  if (p.spoofchk !== undefined) out.spoofchk = p.spoofchk;
  return out;
}

/** resource.k8s.io/v1 DeviceAllocationConfiguration, as far as the driver reads it. */
export interface AllocationConfig {
  source?: string;
  requests?: string[];
  opaque?: { driver?: string; parameters?: unknown };
}

/**
 * The configuration of one allocated device: every opaque entry for this driver that applies to
 * its request, class entries first, then the claim's, later fields winning (the order the
 * allocation lists them in). `request` may be "<request>/<subrequest>".
 */
export function configFor(configs: readonly AllocationConfig[], request: string, claimRef: string): RelayConfig {
  const parent = request.split('/')[0]!;
  let merged: RelayConfig = {};
  let claimIndex = 0;
  let classIndex = 0;
  for (const c of configs) {
    const fromClass = c.source === 'FromClass';
    const idx = fromClass ? classIndex++ : claimIndex++;
    if (c.opaque?.driver !== DRIVER_NAME) continue;
    const reqs = c.requests ?? [];
    if (reqs.length > 0 && !reqs.includes(request) && !reqs.includes(parent)) continue;
    const where = fromClass
      ? `the DeviceClass's config[${idx}].opaque.parameters (request "${request}" of ResourceClaim ${claimRef})`
      : `ResourceClaim ${claimRef} spec.devices.config[${idx}].opaque.parameters`;
    merged = { ...merged, ...parseRelayConfig(c.opaque.parameters, where) };
  }
  return merged;
}
