// A VirtioRelay as the relay this node runs for it: its name, its socket in its own directory
// under the agent's socket root, owned as the pool policy says.
import { join } from 'node:path';
import { errorMessage } from '../../util/errors.js';
import type { RelaySpec } from '../../relay/types.js';
import { relayVfOf } from '../../relay/spec.js';
import type { VirtioRelay } from '../../kube/index.js';
import type { PolicyDecision } from '../../policy/index.js';
import { resolveOwner } from '../owners.js';
import type { RelayStatus } from '../../relay/types.js';
import { relayNamespace } from '../../deviceplugin/index.js';

export const SOCKET_FILE = 'vhost-user.sock';
/** Events' source and the field manager of the agent's writes. */
export const AGENT_COMPONENT = 'vio4wd-agent';

/** The relay name (and device ID) of a VirtioRelay: namespace.name (namespaces have no dots). */
export function relayName(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}

/** The relay as the node runs it: its socket in its own directory under the agent's socket
 *  root, owned as the pool says; or why it may not run here. */
export async function relaySpecOf(
obj: VirtioRelay,
rname: string,
decision: Extract<PolicyDecision, { allowed: true }>,
socketDir: string,
): Promise<RelaySpec | { allowed: false; message: string }> {
  const s = obj.spec;
  const dir = join(socketDir, rname);
  const socketPath = join(dir, SOCKET_FILE);
  const sock = decision.socket;
  let uid = 0;
  let gid = 0;
  try {
    if (sock.owner !== undefined) uid = await resolveOwner(sock.owner, 'user', `VirtioForwarderPolicy ${decision.policy} spec.socket.owner`);
    if (sock.group !== undefined) gid = await resolveOwner(sock.group, 'group', `VirtioForwarderPolicy ${decision.policy} spec.socket.group`);
  } catch (err) {
    return { allowed: false, message: errorMessage(err) };
  }
  const spec: RelaySpec = {
    name: rname,
    origin: 'kubernetes',
    ident: `${obj.metadata.namespace}/${obj.metadata.name}`,
    // bondName is not a VirtioRelay field: the engine names a bond after its relay
    vf: { ...relayVfOf({ ...s.vf, bondName: undefined }), pool: decision.pool },
    // vhostUser.socketDir/owner/group/perm of the VirtioRelay are never read (the apiserver
    // refuses them; an object stored before that keeps them, ignored)
    vhostUser: {
      mode: s.vhostUser?.mode ?? 'client',
      socketPath,
      owner: uid,
      group: gid,
      perm: `0${sock.perm.toString(8)}`,
      directory: { uid, gid, mode: sock.directoryMode },
    },
  };
  if (s.queues !== undefined) spec.queues = s.queues;
  if (s.mac !== undefined) spec.mac = s.mac;
  if (s.mtu !== undefined) spec.mtu = s.mtu;
  if (s.resourceName !== undefined) spec.resourceName = s.resourceName;
  if (s.numaNode !== undefined) spec.numaNode = s.numaNode;
  if (s.cpus !== undefined) spec.cpus = [...s.cpus];
  if (obj.metadata.generation !== undefined) spec.generation = obj.metadata.generation;
  return spec;
}

/**
 * Why `mac` may not go to a relay of `namespace`: a relay of another namespace on this node has
 * it (its spec.mac, or its pod's). The PF switches frames by MAC, so a second VF with it would
 * receive that namespace's frames (spoof check passes: it is the VF's own MAC). Relays of one
 * namespace may share one (a migration's source and target); the node admin's are not counted.
 */
export function macTakenBy(relays: readonly Pick<RelayStatus, 'name' | 'mac' | 'origin' | 'ident'>[], self: string, namespace: string, mac: string, field = 'spec.mac'): string | undefined {
  const m = mac.toLowerCase();
  for (const s of relays) {
    if (s.name === self || s.mac?.toLowerCase() !== m) continue;
    const ns = relayNamespace(s);
    if (ns !== undefined && ns !== namespace) {
      return `${field}: ${m} is already the MAC of relay ${s.name} of namespace ${ns} on this node: a second VF with it would receive that namespace's frames; give this relay (namespace ${namespace}) another MAC`;
    }
  }
  return undefined;
}
