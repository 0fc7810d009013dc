// Wires the DRA driver into the agent: the ResourceSlice publisher over the RelayManager (with
// the VF facts from sysfs and, in a cluster, the admin's pool policy), the driver that prepares
// claims through the agent's attachment service, and the kubelet plugin sockets.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttachmentService } from '../cni/index.js';
import { DeviceHealthReporter, DraDriver, KubeletPlugin, type HealthDevice, ResourceSlicePublisher, kubeClaimApi, kubeSliceApi, type PoolLimits, type RelayHardware } from '../dra/index.js';
import { kubeClients, resources } from '../kube/index.js';
import { decideDevice } from '../policy/index.js';
import type { RelayManager, RelayStatus } from '../relay/index.js';
import { findVf } from '../sriov/index.js';
import { errorMessage } from '../util/errors.js';
import { isPciAddress } from '../util/identifiers.js';
import type { Logger } from '../util/log.js';
import type { ResolvedConfig } from './config/load.js';
import { NodePolicy } from './node/policy.js';
import { listFreeVfs, vfRelays } from './dra-vfs.js';

export interface DraHandle {
  driver: DraDriver;
  publisher: ResourceSlicePublisher;
  plugin: KubeletPlugin;
  stop(): Promise<void>;
}

async function linkSpeed(sysRoot: string, pf: string): Promise<number | undefined> {
  const text = await readFile(join(sysRoot, 'sys/class/net', pf, 'speed'), 'utf8').catch(() => '');
  const n = Number(text.trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export async function startDra(c: ResolvedConfig, relays: RelayManager, attachments: AttachmentService, log: Logger): Promise<DraHandle> {
  const clients = kubeClients(c.dra.kubeconfig);
  let policy: NodePolicy | undefined;
  if (c.kubernetes.enabled) {
    // the admin's VirtioForwarderPolicies decide which relays a pool may offer as devices
    policy = new NodePolicy({
      clients,
      policies: resources(clients, 'vio4wd-agent').policies,
      nodeName: c.nodeName,
      allowances: { virtualDevices: c.kubernetes.allowVirtualDevices },
      logger: log,
      onChange: () => void publisher.sync(),
    });
  }
  const vfOf = (s: RelayStatus): { pciAddress?: string; devargs?: string } => {
    const devargs = relays.spec(s.name)?.vf.devargs;
    if (devargs) return { devargs };
    const first = s.pciAddress?.split(',')[0];
    if (!first) return {};
    return isPciAddress(first) ? { pciAddress: first.toLowerCase() } : { devargs: first };
  };
  const hardware = async (s: RelayStatus): Promise<RelayHardware> => {
    const { pciAddress, devargs } = vfOf(s);
    if (devargs) return { devargs };
    if (!pciAddress) return {};
    const vf = await findVf(pciAddress, { root: c.sriov.sysRoot });
    if (!vf) return {};
    const speed = await linkSpeed(c.sriov.sysRoot, vf.pfName);
    return { vf, ...(speed !== undefined ? { linkSpeedMbps: speed } : {}) };
  };
  const decision = (s: RelayStatus, hw: RelayHardware) =>
    policy ? decideDevice(s.resourceName, { ...vfOf(s), ...(hw.vf ? { pfName: hw.vf.pfName, vendor: hw.vf.vendor, device: hw.vf.device } : {}) }, policyList(policy), policy.nodeLabels(), { virtualDevices: c.kubernetes.allowVirtualDevices }) : undefined;
  const publisher: ResourceSlicePublisher = new ResourceSlicePublisher({
    nodeName: c.nodeName,
    relays,
    api: kubeSliceApi(clients),
    hardware,
    ...(policy
      ? {
          admit: (s: RelayStatus, hw: RelayHardware) => {
            const d = decision(s, hw)!;
            return d.allowed ? true : d.message;
          },
          freeVfs: () => listFreeVfs(c, relays, policy, (pf) => linkSpeed(c.sriov.sysRoot, pf)),
        }
      : {}),
    logger: log,
    resyncMs: c.dra.resyncSeconds * 1000,
  });
  const poolLimits = (resourceName: string): PoolLimits | undefined => {
    if (!policy) return undefined;
    const s = relays.list().find((r) => r.resourceName === resourceName);
    const d = s ? decision(s, {}) : undefined;
    return d?.allowed ? { policy: d.policy, ...d.limits, namespaces: d.namespaces } : undefined;
  };
  const driver = new DraDriver({
    relays,
    devices: publisher,
    claims: kubeClaimApi(clients),
    // the claim's allocation (the scheduler's, for this claim) is the allocation check
    // and the claim's queues and MTU are applied to the relay (not only checked)
    attach: (req) => attachments.handle(req, { allocated: true, reconfigure: true }),
    poolLimits,
    vfSettingsDenied: (rn, subject, req) => attachments.vfSettingsDenied(rn, subject, req),
    ...(policy ? { vfRelays: vfRelays(c, relays, policy) } : {}),
    cdiDir: c.dra.cdiDir,
    metadataDir: c.dra.metadataDir,
    statePath: c.dra.statePath,
    logger: log,
  });
  await driver.start();
  // the health kubelet shows in the pod's status: of what is published, and of what is prepared
  const health = new DeviceHealthReporter({
    relays,
    devices: () => {
      const all = new Map<string, HealthDevice>();
      for (const d of publisher.published()) all.set(`${d.pool}\0${d.device.name}`, { pool: d.pool, device: d.device.name, relay: d.relay, onDemand: d.vf !== undefined });
      for (const d of driver.preparedDevices()) all.set(`${d.pool}\0${d.device}`, d);
      return [...all.values()];
    },
  });
  const plugin = new KubeletPlugin({ driver, health, registryDir: c.dra.registryDir, pluginDir: c.dra.pluginDir, logger: log });
  await plugin.start();
  // the apiserver may be away for a long time: publishing starts in the background, once the
  // policies are known (before that every relay would look denied and its slice be deleted)
  let stopped = false;
  void (async () => {
    await policy?.start();
    if (!stopped) await publisher.start();
  })().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'DRA ResourceSlice publishing did not start'));
  return {
    driver,
    publisher,
    plugin,
    async stop() {
      stopped = true;
      await plugin.stop();
      // publishing may still wait for the policies' first list: stopping them ends that wait
      await policy?.stop();
      // the slices stay: the relays come back with the next agent (kubelet wipes them if not)
      await publisher.stop(false);
    },
  };
}

function policyList(p: NodePolicy): Parameters<typeof decideDevice>[2] {
  return p.policyObjects();
}
