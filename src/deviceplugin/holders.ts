// Which pod got a relay. kubelet's Allocate names no pod, so any pod that requests a pool's
// resource may be handed any relay of the pool, also one a VirtioRelay of another namespace made.
// PreStartContainer (required when this check is on) runs before the container starts and so
// before kubelet mounts the relay's socket directory into it; by then kubelet's pod-resources API
// lists the pod as the device's holder. A relay made for a VirtioRelay is refused to a pod of
// another namespace there: the container does not start, and never sees the socket.
import type { RelayStatus } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import { DevicePluginError } from './errors.js';
import type { Pool } from './pool.js';

/** A device kubelet allocated to a container, as its pod-resources API lists it. */
export interface DeviceHolder {
  resourceName: string;
  deviceId: string;
  namespace: string;
  pod: string;
  container: string;
}

/** One pod-resources List: every device of every container on the node. */
export type ListHolders = () => Promise<DeviceHolder[]>;

/** The namespace of the VirtioRelay (or ResourceClaim: ident dra:<ns>/<claim>) a relay was made
 *  for; undefined for the node admin's own relays (agent config, port control), which any pod of
 *  the node may be given. */
export function relayNamespace(status: Pick<RelayStatus, 'origin' | 'ident'>): string | undefined {
  if ((status.origin !== 'kubernetes' && status.origin !== 'dra') || !status.ident) return undefined;
  const ident = status.origin === 'dra' ? status.ident.replace(/^dra:/, '') : status.ident;
  const slash = ident.indexOf('/');
  return slash > 0 ? ident.slice(0, slash) : undefined;
}

export interface HolderCheckOptions {
  /** How long to wait for kubelet to list the allocation (default 2000 ms). */
  timeoutMs?: number;
  /** Between two List calls (default 200 ms). */
  retryMs?: number;
  /** Where List asks, for messages. */
  source?: string;
}

/**
 * Resolves when every VirtioRelay device of `ids` is held by a pod of the relay's namespace.
 * Rejects with EFORBIDDEN (PERMISSION_DENIED) naming the relay, its namespace and the pod when a
 * pod of another namespace holds it, or with ENOHOLDER when kubelet does not list the allocation
 * in time (fails closed: the container does not start).
 */
export async function checkHolders(
  pool: Pick<Pool, 'resourceName'>,
  ids: readonly string[],
  lookup: (id: string) => RelayStatus | undefined,
  list: ListHolders,
  opts: HolderCheckOptions = {},
): Promise<void> {
  const wanted = new Map<string, string>();
  for (const id of ids) {
    const ns = relayNamespace(lookup(id) ?? { origin: 'config' });
    if (ns !== undefined) wanted.set(id, ns);
  }
  if (wanted.size === 0) return;
  const deadline = Date.now() + (opts.timeoutMs ?? 2000);
  const source = opts.source ?? "kubelet's pod-resources API";
  for (;;) {
    let why: string;
    try {
      const holders = await list();
      const missing: string[] = [];
      for (const [id, ns] of wanted) {
        const h = holders.find((x) => x.resourceName === pool.resourceName && x.deviceId === id);
        if (!h) {
          missing.push(id);
          continue;
        }
        if (h.namespace !== ns) {
          throw new DevicePluginError(
            'EFORBIDDEN',
            `device "${id}" of ${pool.resourceName} is the relay of VirtioRelay ${ns}/${id.slice(ns.length + 1)}, but kubelet allocated it to pod ${h.namespace}/${h.pod} (container ${h.container}): ` +
              `a pod gets only relays of its own namespace; create a VirtioRelay in namespace ${h.namespace} (its pool's VirtioForwarderPolicy must list the namespace), and delete pod ${h.namespace}/${h.pod} so that it releases the device`,
          );
        }
      }
      if (missing.length === 0) return;
      why = `${source} lists no pod holding device(s) ${missing.join(', ')} of ${pool.resourceName}`;
    } catch (err) {
      if (err instanceof DevicePluginError) throw err;
      why = `cannot ask ${source}: ${errorMessage(err)}`;
    }
    if (Date.now() >= deadline) {
      throw new DevicePluginError(
        'ENOHOLDER',
        `${why}, so the agent cannot check that the pod is in the relay's namespace: the container is not started. Fix: mount kubelet's pod-resources socket into the agent (chart: agent.podResources.enabled), or turn the check off where no kubelet runs (devicePlugin.namespaceCheck: false)`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.retryMs ?? 200));
  }
}
