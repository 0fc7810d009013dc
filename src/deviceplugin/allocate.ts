// Allocate as a pure mapping: relay statuses -> the mounts, environment, annotations and
// device-info kubelet hands to a container. The names are documented in docs/deviceplugin.md.
import { posix } from 'node:path';
import type { RelayStatus } from '../relay/types.js';
import { CONTAINER_SOCKET_ROOT, DEVICE_INFO_VERSION } from './constants.js';
import { DevicePluginError } from './errors.js';
import { envName, resourceNameOf, type Pool } from './pool.js';
import type { ContainerAllocateResponse } from './proto.js';

/** Device-info for a vhost-user device (device-info spec v1.1.0, section 3.1.5). */
export interface VhostUserDeviceInfo {
  type: 'vhost-user';
  version: string;
  'vhost-user': {
    /** The role of the application in the pod: "client" attaches to a socket the host created. */
    mode: 'client' | 'server';
    /** The socket path as the pod sees it. */
    path: string;
  };
}

/**
 * Directory in the container where the relay's socket directory is mounted: named after the
 * pool and the device's place in the container's request (`vhostuser-0`, `vhostuser-1`, ...), not
 * after the relay. A live-migration target's virt-launcher gets other relays than the source's,
 * but libvirt defines the target's domain from the source's XML: the socket path in it must
 * exist in both pods, so it must not depend on which relay a pod got.
 */
export function podSocketDir(pool: Pick<Pool, 'domain' | 'name'>, slot: number): string {
  const base = pool.domain === 'vio4wd.io' ? pool.name : `${pool.domain}_${pool.name}`;
  return posix.join(CONTAINER_SOCKET_ROOT, `${base}-${slot}`);
}

/** The relay's socket as the pod sees it, with its socket directory mounted at podDir. */
export function podSocketPath(status: Pick<RelayStatus, 'socketPath'>, podDir: string): string {
  return posix.join(podDir, posix.basename(status.socketPath));
}

/**
 * The device-info spec's vhost-user mode names what the application in the pod (QEMU) does:
 * "client" when the host side creates the socket, "server" when the pod creates it. A relay in
 * vhost-user client mode connects to a socket QEMU creates, so the pod's mode is "server".
 */
export function podMode(relayMode: RelayStatus['mode']): 'client' | 'server' {
  return relayMode === 'client' ? 'server' : 'client';
}

export function deviceInfo(status: RelayStatus, podDir: string): VhostUserDeviceInfo {
  return {
    type: 'vhost-user',
    version: DEVICE_INFO_VERSION,
    'vhost-user': { mode: podMode(status.mode), path: podSocketPath(status, podDir) },
  };
}

/** "<resourceName with / as ->-<deviceID>-device.json" (device-info spec, section 4.1). */
export function deviceInfoFileName(resourceName: string, deviceId: string): string {
  return `${resourceName.replaceAll('/', '-')}-${deviceId}-device.json`;
}

/** Env var prefix of one device: VIO4WD_DEVICE_<ID>_ (ID upper-cased, [^A-Z0-9] -> "_"). */
export function deviceEnvPrefix(deviceId: string): string {
  return `VIO4WD_DEVICE_${envName(deviceId)}_`;
}

/**
 * Looks up each requested device in this pool and checks it can serve a guest now. `field`
 * names the request field in error messages, e.g. container_requests[0].devices_ids.
 */
export function resolveDevices(
  pool: Pool,
  ids: readonly string[],
  lookup: (id: string) => RelayStatus | undefined,
  field: string,
  /** every relay of the node: a socket directory another relay shares is never mounted */
  all: readonly RelayStatus[] = [],
): RelayStatus[] {
  if (ids.length === 0) throw new DevicePluginError('EINVAL', `${field} is empty: name at least one device of ${pool.resourceName}`);
  const seen = new Set<string>();
  const prefixes = new Map<string, string>();
  return ids.map((id) => {
    if (seen.has(id)) throw new DevicePluginError('EINVAL', `${field} lists device "${id}" twice`);
    seen.add(id);
    const status = lookup(id);
    if (!status || resourceNameOf(status) !== pool.resourceName) {
      throw new DevicePluginError('EUNKNOWNDEVICE', `${field}: unknown device "${id}": no relay of that name in ${pool.resourceName} on this node`);
    }
    if (!status.healthy) {
      throw new DevicePluginError('EUNHEALTHY', `${field}: device "${id}" is unhealthy (relay phase ${status.phase}${notReadyReason(status)}); pick a healthy device`);
    }
    if (!posix.isAbsolute(status.socketPath)) {
      throw new DevicePluginError('EUNHEALTHY', `${field}: device "${id}" has no absolute socket path ("${status.socketPath}")`);
    }
    const dir = posix.dirname(status.socketPath);
    const sharing = all.find((o) => o.name !== id && posix.dirname(o.socketPath) === dir);
    if (sharing) {
      // the pod would get a read-write mount of the other relay's socket too
      throw new DevicePluginError(
        'EUNHEALTHY',
        `${field}: device "${id}" keeps its socket in ${dir}, which also holds relay "${sharing.name}"'s: a pod may get only a directory of its own (standalone agents give each relay one when the device plugin is on)`,
      );
    }
    const prefix = deviceEnvPrefix(id);
    const other = prefixes.get(prefix);
    if (other !== undefined) {
      throw new DevicePluginError('EINVAL', `${field}: devices "${other}" and "${id}" both map to environment variables ${prefix}*; rename one of the relays`);
    }
    prefixes.set(prefix, id);
    return status;
  });
}

function notReadyReason(status: RelayStatus): string {
  const bad = status.conditions.find((c) => c.status !== 'True' && c.type !== 'GuestConnected');
  return bad ? `, ${bad.type} ${bad.reason}: ${bad.message}` : '';
}

/** What kubelet adds to one container for the given (already resolved) devices. */
export function containerResponse(pool: Pool, devices: readonly RelayStatus[]): Required<Pick<ContainerAllocateResponse, 'envs' | 'mounts' | 'annotations'>> {
  const envs: Record<string, string> = { [`VIO4WD_${pool.envKey}_DEVICES`]: devices.map((d) => d.name).join(',') };
  const infos: Record<string, VhostUserDeviceInfo> = {};
  const mounts = devices.map((d, slot) => {
    const dir = podSocketDir(pool, slot);
    const info = deviceInfo(d, dir);
    infos[d.name] = info;
    const p = deviceEnvPrefix(d.name);
    envs[`${p}SOCKET`] = info['vhost-user'].path;
    envs[`${p}MODE`] = info['vhost-user'].mode;
    envs[`${p}QUEUES`] = String(d.queues);
    if (d.mac) envs[`${p}MAC`] = d.mac;
    if (d.mtu !== undefined) envs[`${p}MTU`] = String(d.mtu);
    if (d.numaNode >= 0) envs[`${p}NUMA_NODE`] = String(d.numaNode);
    // read-write: in vhost-user server mode QEMU creates the socket in this directory
    return { container_path: dir, host_path: posix.dirname(d.socketPath), read_only: false };
  });
  const annotations = {
    [`${pool.resourceName}.devices`]: devices.map((d) => d.name).join(','),
    [`${pool.resourceName}.device-info`]: JSON.stringify(infos),
  };
  return { envs, mounts, annotations };
}
