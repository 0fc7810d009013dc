// The vio4wd network binding: from a VMI and its domain XML to the domain XML with one
// vhost-user NIC per interface whose binding names vio4wd. No gRPC here (see server.ts).
import type { Logger } from '../util/log.js';
import { ValidationError } from '../util/errors.js';
import { DEFAULT_QUEUE_SIZE, rewriteDomain, type NicPlan } from './domain.js';
import { resolveSockets, type ResolveOptions } from './sources.js';
import { parseMac } from '../util/identifiers.js';
import { boundInterfaces, isMigrationTarget, libvirtPciAddress, parseVmi, queueCount, vmiName, type Vmi } from './vmi.js';

export const DEFAULT_BINDING_NAME = 'vio4wd';

export interface BindingOptions {
  bindingName: string;
  /** Cap on queue pairs per NIC (the relay's limit). */
  maxQueues: number;
  resolve: ResolveOptions;
  logger: Logger;
}

export interface DefineResult {
  domainXML: string;
  /** Interfaces rewritten (empty when the VMI has none bound to vio4wd). */
  interfaces: string[];
  migrationTarget: boolean;
}

function modelFor(vmi: Vmi, ifaceName: string, model: string | undefined): string {
  if (model !== undefined && model !== '' && model !== 'virtio') {
    throw new ValidationError(`interface "${ifaceName}" model`, `"${model}" is not supported: a vhost-user NIC is virtio; remove the model or set it to virtio`);
  }
  return vmi.spec?.domain?.devices?.useVirtioTransitional === true ? 'virtio-transitional' : 'virtio';
}

/** Handles one OnDefineDomain call. Throws (naming the interface) when the VMI cannot be served. */
export async function defineDomain(domainXML: string, vmiJSON: string | Uint8Array, opts: BindingOptions): Promise<DefineResult> {
  const vmi = parseVmi(vmiJSON);
  const log = opts.logger.child({ vmi: vmiName(vmi) });
  const bound = boundInterfaces(vmi, opts.bindingName);
  const migrationTarget = isMigrationTarget(vmi);
  if (bound.length === 0) {
    log.info({ binding: opts.bindingName }, 'no interface uses this binding; domain left unchanged');
    return { domainXML, interfaces: [], migrationTarget };
  }
  let sockets;
  try {
    sockets = await resolveSockets(
      vmi,
      bound.map((i) => i.name),
      opts.resolve,
    );
  } catch (err) {
    if (migrationTarget) {
      // virt-launcher discards the result on a migration target; failing would abort the migration
      log.warn({ err }, 'migration target: sockets not resolved, domain left unchanged');
      return { domainXML, interfaces: [], migrationTarget };
    }
    throw err;
  }
  const queues = queueCount(vmi, opts.maxQueues);
  const nics: NicPlan[] = bound.map((iface) => {
    const s = sockets.get(iface.name)!;
    const mac = iface.macAddress ? parseMac(iface.macAddress, `interface "${iface.name}" macAddress`) : s.mac;
    if (!mac) {
      log.warn({ iface: iface.name }, 'no MAC in the VMI or the relay settings: libvirt picks one, and the VF drops its frames unless it accepts any MAC');
    }
    return {
      name: iface.name,
      socketPath: s.path,
      mode: s.mode,
      model: modelFor(vmi, iface.name, iface.model),
      queues: Math.min(queues, s.maxQueues ?? queues),
      rxQueueSize: DEFAULT_QUEUE_SIZE,
      txQueueSize: DEFAULT_QUEUE_SIZE,
      mac,
      mtu: s.mtu,
      pciAddress: iface.pciAddress ? libvirtPciAddress(iface.pciAddress, `interface "${iface.name}" pciAddress`) : undefined,
      acpiIndex: iface.acpiIndex !== undefined && iface.acpiIndex > 0 ? iface.acpiIndex : undefined,
      bootOrder: iface.bootOrder !== undefined && iface.bootOrder > 0 ? iface.bootOrder : undefined,
    };
  });
  const out = rewriteDomain(domainXML, {
    nics,
    vmiInterfaceOrder: (vmi.spec?.domain?.devices?.interfaces ?? []).map((i) => i.name),
  });
  for (const n of nics) {
    const s = sockets.get(n.name)!;
    log.info({ iface: n.name, socket: n.socketPath, mode: n.mode, queues: n.queues, mac: n.mac, mtu: n.mtu, from: s.origin, migrationTarget }, 'vhost-user interface set');
  }
  return { domainXML: out, interfaces: nics.map((n) => n.name), migrationTarget };
}
