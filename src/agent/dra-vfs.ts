// The DRA driver's free VFs: which VFs the admin's pools may turn into relays that no relay holds
// (published as devices of their own), and the relays prepare makes on them (origin 'dra'), held
// to the same pool policy as a VirtioRelay's: its VF, its namespace, its socket's owner and mode.
import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FreeVf, VfRelays } from '../dra/index.js';
import { decideDevice, policiesForPool, selectorMatches, type LabelSelector } from '../policy/index.js';
import type { RelayManager } from '../relay/index.js';
import { discoverVfs, type VirtualFunction } from '../sriov/index.js';
import { VioError } from '../util/errors.js';
import { MAX_QUEUES } from '../util/limits.js';
import type { ResolvedConfig } from './config/load.js';
import type { NodePolicy } from './node/policy.js';
import { relaySpecOf } from './node/relay-spec.js';

/** Drivers DPDK can drive a VF through: a VF bound to another is not offered. */
const DPDK_DRIVERS = new Set(['vfio-pci', 'uio_pci_generic', 'igb_uio']);

/** How long prepare waits for a made relay to be ready (kubelet waits 45 s for the whole call). */
const READY_TIMEOUT_MS = 20_000;

/** The free VFs of every pool the policies define on this node. */
export async function listFreeVfs(c: ResolvedConfig, relays: RelayManager, policy: NodePolicy, linkSpeed: (pf: string) => Promise<number | undefined>): Promise<FreeVf[]> {
  const labels = policy.nodeLabels();
  const policies = policy.policyObjects();
  const pools = [...new Set(policies.filter((p) => selectorMatches(p.spec?.nodeSelector as LabelSelector | undefined, labels)).map((p) => p.spec.resourceName))];
  if (pools.length === 0) return [];
  // what other relays hold; a relay made for a claim keeps its VF's device (the claim's)
  const held = new Set<string>();
  for (const s of relays.list()) {
    if (s.origin === 'dra') continue;
    for (const a of s.pciAddress?.split(',') ?? []) held.add(a.toLowerCase());
    const devargs = relays.spec(s.name)?.vf.devargs;
    if (devargs) held.add(devargs);
  }
  const sysfs: VirtualFunction[] = (await discoverVfs({ root: c.sriov.sysRoot }).catch(() => [])).filter((v) => v.driver && DPDK_DRIVERS.has(v.driver));
  const standIns = Object.entries(c.sriov.standIns);
  const out: FreeVf[] = [];
  const allowances = { virtualDevices: c.kubernetes.allowVirtualDevices };
  for (const pool of pools) {
    const defining = policiesForPool(policies, pool, labels);
    if (defining.length !== 1) continue;
    const base = (d: { policy: string; limits: { maxQueues?: number; maxMtu?: number } }) => ({
      resourceName: pool,
      maxQueues: Math.min(d.limits.maxQueues ?? MAX_QUEUES, MAX_QUEUES),
      mode: c.vhostUser.mode,
      policy: d.policy,
      ...(d.limits.maxMtu !== undefined ? { maxMtu: d.limits.maxMtu } : {}),
    });
    for (const vf of sysfs) {
      if (held.has(vf.pciAddress)) continue;
      const d = decideDevice(pool, vf, policies, labels, allowances);
      if (!d.allowed) continue;
      const speed = await linkSpeed(vf.pfName);
      out.push({ ...base(d), pciAddress: vf.pciAddress, vf, ...(speed !== undefined ? { linkSpeedMbps: speed } : {}) });
    }
    // a stand-in qualifies only by its address in the pool's pciAddresses (as a VirtioRelay's does)
    for (const [addr, devargs] of standIns) {
      if (held.has(addr) || held.has(devargs)) continue;
      const d = decideDevice(pool, { pciAddress: addr }, policies, labels, allowances);
      if (d.allowed) out.push({ ...base(d), pciAddress: addr, devargs });
    }
  }
  return out;
}

/** Makes and deletes the relays of free VFs' devices, through the RelayManager. */
export function vfRelays(c: ResolvedConfig, relays: RelayManager, policy: NodePolicy): VfRelays {
  return {
    async create(vf, name, o) {
      const existing = relays.get(name);
      if (existing && existing.origin !== 'dra') throw new VioError('EEXIST', `a relay named ${name} exists already (origin ${existing.origin}): rename it, it takes the name of VF ${vf.pciAddress}'s relay`);
      // the policy's word on this namespace, VF, queues and MTU, as for a VirtioRelay
      const spec = { vf: { pciAddress: vf.pciAddress }, resourceName: vf.resourceName, queues: o.queues, ...(o.mtu !== undefined ? { mtu: o.mtu } : {}), vhostUser: { mode: vf.mode } };
      const decision = policy.decide(o.namespace, spec as never);
      if (!decision.allowed) throw new VioError('EPERM', `pool policy: ${decision.message}`);
      const made = await relaySpecOf({ metadata: { namespace: o.namespace, name }, spec } as never, name, decision, c.kubernetes.socketDir);
      if ('allowed' in made) throw new VioError('EPERM', made.message);
      relays.apply({ ...made, origin: 'dra', ident: `dra:${o.namespace}/${o.claim}`, guestQueues: o.queues, ...(vf.vf?.numaNode != null && vf.vf.numaNode >= 0 ? { numaNode: vf.vf.numaNode } : {}) });
      await relays.attached(name, READY_TIMEOUT_MS);
    },
    async remove(name) {
      const s = relays.get(name);
      if (s?.origin !== 'dra') return;
      await relays.remove(name);
      // its own directory goes with it (a VirtioRelay's the reconciler removes)
      await rmdir(dirname(s.socketPath)).catch(() => undefined);
    },
  };
}
