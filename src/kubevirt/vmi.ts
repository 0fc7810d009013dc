// The parts of a KubeVirt VirtualMachineInstance (kubevirt.io/v1, as virt-launcher sends it to a
// hook as JSON) that the vio4wd binding reads, and the rules that derive a NIC's settings from it.
import { ValidationError } from '../util/errors.js';
import { parsePciAddress } from '../util/identifiers.js';

export interface VmiInterface {
  name: string;
  binding?: { name?: string };
  macAddress?: string;
  model?: string;
  pciAddress?: string;
  acpiIndex?: number;
  bootOrder?: number;
  /** "absent" marks an interface being hot-unplugged. */
  state?: string;
}

export interface VmiNetwork {
  name: string;
  pod?: object;
  multus?: { networkName?: string; default?: boolean };
  resourceClaim?: { claimName?: string; requestName?: string };
}

export interface VmiResourceClaim {
  name: string;
  resourceClaimName?: string;
  resourceClaimTemplateName?: string;
}

type Quantity = string | number;

export interface Vmi {
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: {
    domain?: {
      cpu?: { cores?: number; sockets?: number; threads?: number };
      resources?: { requests?: Record<string, Quantity>; limits?: Record<string, Quantity> };
      devices?: {
        interfaces?: VmiInterface[];
        networkInterfaceMultiqueue?: boolean;
        useVirtioTransitional?: boolean;
      };
    };
    networks?: VmiNetwork[];
    resourceClaims?: VmiResourceClaim[];
  };
  status?: {
    migrationState?: { targetPod?: string; completed?: boolean; failed?: boolean };
  };
}

/** Parses the VMI JSON that virt-launcher sends; the error names what is wrong. */
export function parseVmi(json: string | Uint8Array): Vmi {
  const text = typeof json === 'string' ? json : Buffer.from(json).toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('vmi', `not valid JSON (${(err as Error).message}); virt-launcher sends the VirtualMachineInstance as JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ValidationError('vmi', 'expected a VirtualMachineInstance object');
  }
  const vmi = v as Vmi;
  const ifaces = vmi.spec?.domain?.devices?.interfaces;
  if (ifaces !== undefined && !Array.isArray(ifaces)) {
    throw new ValidationError('vmi.spec.domain.devices.interfaces', 'must be a list');
  }
  for (const [i, iface] of (ifaces ?? []).entries()) {
    if (typeof iface?.name !== 'string' || iface.name === '') {
      throw new ValidationError(`vmi.spec.domain.devices.interfaces[${i}].name`, 'must be a non-empty string');
    }
  }
  return vmi;
}

export function vmiName(vmi: Vmi): string {
  const m = vmi.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? '?'}` : (m.name ?? '?');
}

/** The VMI's interfaces that name `bindingName` and are not being unplugged, in spec order. */
export function boundInterfaces(vmi: Vmi, bindingName: string): VmiInterface[] {
  return (vmi.spec?.domain?.devices?.interfaces ?? []).filter(
    (i) => i.binding?.name === bindingName && i.state !== 'absent',
  );
}

export function networkOf(vmi: Vmi, ifaceName: string): VmiNetwork | undefined {
  return (vmi.spec?.networks ?? []).find((n) => n.name === ifaceName);
}

/** Whole CPUs in a Kubernetes quantity ("2", "1500m", 2); 0 when it cannot be read. */
function wholeCpus(q: Quantity | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === 'number') return Math.max(0, Math.floor(q));
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(q.trim());
  if (!m) return 0;
  const v = Number(m[1]) / (m[2] === 'm' ? 1000 : 1);
  // KubeVirt uses resource.Quantity.Value(), which rounds up.
  return Math.ceil(v);
}

/**
 * The guest's vCPU count as KubeVirt computes it for network queues: cores x sockets x threads,
 * or, when no topology is given, the CPU limit (else request) as sockets.
 */
export function vcpuCount(vmi: Vmi): number {
  const cpu = vmi.spec?.domain?.cpu;
  const cores = cpu?.cores ?? 0;
  const sockets = cpu?.sockets ?? 0;
  const threads = cpu?.threads ?? 0;
  if (cores === 0 && sockets === 0 && threads === 0) {
    const res = vmi.spec?.domain?.resources;
    const n = wholeCpus(res?.limits?.cpu) || wholeCpus(res?.requests?.cpu);
    return Math.max(1, n);
  }
  return Math.max(1, cores || 1) * Math.max(1, sockets || 1) * Math.max(1, threads || 1);
}

/** Queue pairs for a vhost-user NIC: the vCPU count with multiqueue on, else 1; capped. */
export function queueCount(vmi: Vmi, max: number): number {
  if (vmi.spec?.domain?.devices?.networkInterfaceMultiqueue !== true) return 1;
  return Math.max(1, Math.min(vcpuCount(vmi), max));
}

/** True when this call prepares a live-migration target (virt-launcher discards the result). */
export function isMigrationTarget(vmi: Vmi): boolean {
  const ms = vmi.status?.migrationState;
  return !!ms && !!ms.targetPod && ms.completed !== true && ms.failed !== true;
}

export interface PciAddress {
  domain: string;
  bus: string;
  slot: string;
  function: string;
}

/** A VMI pciAddress ("0000:81:01.0", the domain required) as libvirt's hex fields. */
export function libvirtPciAddress(value: string, field: string): PciAddress {
  const [domain, bus, slotFn] = parsePciAddress(value, field, { requireDomain: true }).split(':') as [string, string, string];
  const [slot, fn] = slotFn.split('.') as [string, string];
  return { domain: `0x${domain}`, bus: `0x${bus}`, slot: `0x${slot}`, function: `0x${fn}` };
}
