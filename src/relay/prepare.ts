// What an attach needs first, and a relay's status as it starts: the VF resolved to what the
// engine attaches, the socket directory present, the status fields that follow from the spec.
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VioError } from '../util/errors.js';
import type { RelayDefaults, ResolvedVf, VfResolver } from './contracts.js';
import { initialConditions } from './conditions.js';
import { allowedVirtualDriver, virtualDeviceDenied } from '../util/vf-pool.js';
import { prepareRelayDir, prepareSharedSocketDir } from './socketdir.js';
import type { RelaySpec, RelayStatus } from './types.js';

/** The VF of a spec as the engine attaches it: through the resolver (real VFs), else as given.
 *  `attachedMac`: a pod attachment's MAC, which a re-resolved VF must keep. */
export async function resolveVf(spec: RelaySpec, resolver: VfResolver | undefined, attachedMac?: string): Promise<ResolvedVf> {
  const vf = spec.vf;
  if (resolver) return resolver.resolve(spec.name, vf, { mac: attachedMac ?? spec.mac });
  if (vf.devargs) {
    if (vf.pool && !allowedVirtualDriver(vf.devargs, vf.pool.virtualDevices)) throw virtualDeviceDenied(vf.pool);
    return { vf: { devargs: vf.devargs }, display: vf.devargs };
  }
  if (vf.pool && vf.pciAddresses?.length) throw new VioError('EPERM', `pool ${vf.pool.name}: this agent has no VF discovery to check ${vf.pciAddresses.join(',')} against the pool`);
  if (vf.pciAddresses?.length) {
    return {
      vf: { pciAddresses: vf.pciAddresses, bondMode: vf.bondMode, bondName: vf.bondName },
      display: vf.pciAddresses.join(','),
    };
  }
  throw new VioError('EINVAL', 'vf.selector needs VF discovery, which this agent was started without');
}

/** The socket's directory: the relay's own (vhostUser.directory, or one per relay with
 *  relayDirs), the agent's (made here), or the user's, which must exist. */
export async function ensureSocketDir(socketPath: string, spec: RelaySpec, defaults: RelayDefaults): Promise<void> {
  const dir = dirname(socketPath);
  const own = spec.vhostUser.directory;
  if (own) {
    await prepareRelayDir(dir, own);
    return;
  }
  const managed = !spec.vhostUser.socketPath;
  if (managed && defaults.relayDirs) {
    await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
    const v = spec.vhostUser;
    const uid = typeof v.owner === 'number' ? v.owner : (defaults.owner ?? 0);
    const gid = typeof v.group === 'number' ? v.group : defaults.group;
    await prepareRelayDir(dir, { uid, gid: gid ?? 0, mode: gid !== undefined ? 0o2770 : 0o750 });
    return;
  }
  if (managed) {
    await prepareSharedSocketDir(dir);
    return;
  }
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw new VioError('ENOENT', `socket directory ${dir} is not a directory`);
  } catch (err) {
    if (err instanceof VioError) throw err;
    throw new VioError('ENOENT', `socket directory ${dir} does not exist: create it or fix vhostUser.socketPath`);
  }
}

/** A new relay's status: Pending, every condition Unknown. */
export function initialStatus(spec: RelaySpec, id: number, socketPath: string, defaults: RelayDefaults): RelayStatus {
  const status: RelayStatus = {
    name: spec.name,
    id,
    origin: spec.origin,
    phase: 'Pending',
    conditions: initialConditions(new Date().toISOString()),
    socketPath,
    mode: spec.vhostUser.mode,
    queues: spec.queues ?? defaults.queues,
    numaNode: spec.numaNode ?? 0,
    resourceName: spec.resourceName ?? defaults.resourceName,
    healthy: false,
  };
  refreshStatus(status, spec, defaults);
  return status;
}

/** The status fields that follow from the spec alone (and a pod attachment's MAC), after it changed. */
export function refreshStatus(s: RelayStatus, spec: RelaySpec, defaults: RelayDefaults, attachedMac?: string): void {
  s.mode = spec.vhostUser.mode;
  s.queues = spec.queues ?? defaults.queues;
  s.resourceName = spec.resourceName ?? defaults.resourceName;
  s.mac = attachedMac ?? spec.mac?.toLowerCase() ?? s.mac;
  s.mtu = spec.mtu ?? defaults.mtu;
  s.ident = spec.ident;
  if (spec.numaNode !== undefined) s.numaNode = spec.numaNode;
  if (spec.generation !== undefined) s.observedGeneration = spec.generation;
}
