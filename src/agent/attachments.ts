// The attachment service: pod attachments program their relay's VF, asked by vio4wd-cni (over
// the attachment API's socket) or by the DRA driver (in process).
import type { Logger } from '../util/log.js';
import type { RelayManager, RelayStatus } from '../relay/index.js';
import { findVf, vfProgrammer, type VfPort } from '../sriov/index.js';
import { relayNamespace, resourceNameOf } from '../deviceplugin/index.js';
import { listPodResources } from './pod-resources.js';
import { macTakenBy } from './node/relay-spec.js';
import type { AttachServer, AttachmentService, VfLimitsSource } from '../cni/index.js';
import type { ResolvedConfig } from './config/load.js';
import { DEFAULT_POOL, vfLimitsFor, vfLimitsOf, vfSettingsDenied, type VfLimits } from '../policy/index.js';
import { errorMessage } from '../util/errors.js';

/** Starts the attachment service, and its socket when cni.enabled; the caller closes the server on shutdown. */
export async function startAttachments(c: ResolvedConfig, relays: RelayManager, log: Logger): Promise<{ service: AttachmentService; server: AttachServer | undefined }> {
  const { AttachServer, AttachmentService, CniCode, CniError } = await import('../cni/index.js');
  const programmer = vfProgrammer(c.sriov.vfProgrammer);
  const port = async (name: string): Promise<VfPort> => {
    const spec = relays.spec(name);
    const status = relays.get(name);
    if (!spec || !status) throw new CniError(CniCode.RelayNotFound, `relay "${name}" is gone from this node`);
    if (spec.vf.devargs) return { kind: 'devargs', devargs: spec.vf.devargs };
    const addrs = status.pciAddress?.split(',') ?? [];
    // a PCI address that stands for a DPDK virtual device (sriov.standIns) is that device
    const standIn = addrs.length === 1 ? c.sriov.standIns[addrs[0]!.toLowerCase()] : undefined;
    if (standIn) return { kind: 'devargs', devargs: standIn };
    if (addrs.length > 1) throw new CniError(CniCode.InvalidConfig, `relay "${name}" bonds ${addrs.length} VFs: vio4wd-cni programs single-VF relays only; give the pool's relays one VF each`);
    if (!addrs[0] || status.phase === 'Pending') throw new CniError(CniCode.TryAgainLater, `relay "${name}" has no VF yet (phase ${status.phase}): try again when it is Ready`);
    const vf = await findVf(addrs[0], { root: c.sriov.sysRoot });
    if (!vf) throw new CniError(CniCode.VfProgramming, `VF ${addrs[0]} of relay "${name}" is not on this node any more: check \`vio4wd doctor\``);
    return { kind: 'pci', pciAddress: vf.pciAddress, pfName: vf.pfName, vfIndex: vf.vfIndex };
  };
  const podSocket = c.cni.allocationCheck ? c.cni.podResourcesSocket : undefined;
  const service = new AttachmentService({
    programmer,
    limits: await vfLimitsSource(c, log),
    // a fresh List on every ADD: the allocation of a pod being created is seconds old
    ...(podSocket
      ? {
          allocatedTo: async (relay: string, resourceName: string | undefined) =>
            (await listPodResources(podSocket))
              .filter((a) => a.deviceId === relay && (resourceName === undefined || a.resourceName === resourceName))
              .map((a) => ({ namespace: a.namespace, name: a.pod })),
        }
      : {}),
    statePath: c.cni.statePath,
    logger: log,
    relays: {
      relay: (name) => {
        const s = relays.get(name);
        const spec = relays.spec(name);
        if (!s || !spec) return undefined;
        const namespace = relayNamespace(s);
        return {
          socketPath: s.socketPath,
          phase: s.phase,
          queues: s.queues,
          resourceName: resourceNameOf(spec),
          ...(s.mtu !== undefined ? { mtu: s.mtu } : {}),
          ...(spec.mac ? { specMac: spec.mac.toLowerCase() } : {}),
          ...(namespace !== undefined ? { namespace } : {}),
        };
      },
      port,
      setMac: (name, mac) => {
        relays.setAttachedMac(name, mac);
      },
      macTaken: (name, namespace, mac) => macTakenBy(relays.list(), name, namespace, mac, 'mac'),
      configure: async (name, o) => {
        await relays.setAttachConfig(name, o);
      },
    },
  });
  await service.start();
  // a relay restored after the checkpoint was read (the reconciler's) shows its pod's MAC again
  const seen = new Set(relays.list().map((r) => r.name));
  relays.on('change', (st: RelayStatus) => {
    if (seen.has(st.name)) return;
    seen.add(st.name);
    service.relayAppeared(st.name);
  });
  relays.on('removed', (n: string) => seen.delete(n));
  if (!c.cni.enabled) return { service, server: undefined };
  const server = new AttachServer({ path: c.cni.socket, handle: (r) => service.handle(r), logger: log });
  await server.start();
  return { service, server };
}

/**
 * Where the attachments' VF limits come from: in a cluster, the pool's VirtioForwarderPolicy
 * (watched here, with the node's labels), else the agent config's sriov.vfLimits.
 */
async function vfLimitsSource(c: ResolvedConfig, log: Logger): Promise<VfLimitsSource> {
  const node = c.sriov.vfLimits;
  const source = (limits: (rn: string | undefined) => VfLimits, stop?: () => Promise<void>): VfLimitsSource => ({
    denied: (rn, subject, req) => vfSettingsDenied(req, limits(rn), `${subject}${rn ? ` of pool ${rn}` : ''}`),
    ...(stop ? { stop } : {}),
  });
  if (!c.kubernetes.enabled) return source(() => vfLimitsOf(node, 'the agent config\'s sriov.vfLimits', 'the node admin'));
  const { CniCode, CniError } = await import('../cni/index.js');
  const { kubeClients, resources } = await import('../kube/index.js');
  const { NodePolicy } = await import('./node/policy.js');
  const clients = kubeClients(c.kubernetes.kubeconfig);
  const policy = new NodePolicy({
    clients,
    policies: resources(clients, 'vio4wd-agent').policies,
    nodeName: c.nodeName,
    allowances: { virtualDevices: c.kubernetes.allowVirtualDevices },
    logger: log,
    onChange: () => undefined,
  });
  // the apiserver may be away for long: attachments wait for the first list, nothing else does
  policy.start().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'attachments: cannot watch the VirtioForwarderPolicies'));
  return source(
    (rn) => {
      if (!policy.hasSynced) throw new CniError(CniCode.TryAgainLater, 'the agent has not read the VirtioForwarderPolicies from the apiserver yet, so it cannot tell which VLANs the pool allows: try again');
      return vfLimitsFor(rn ?? DEFAULT_POOL, policy.policyObjects(), policy.nodeLabels(), node);
    },
    () => policy.stop(),
  );
}
