// What a prepared claim gives its pod's containers, written as files the runtime and the pod read:
// a CDI spec per claim (tags.cncf.io/container-device-interface format) whose devices mount the
// relay's socket directory and set the device plugin's environment variables, and per device a
// KEP-5304 device-metadata file (mounted by the same CDI device) that KubeVirt's network binding
// reads for the socket path and MTU.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { deviceEnvPrefix, podMode } from '../deviceplugin/allocate.js';
import { CONTAINER_SOCKET_ROOT } from '../deviceplugin/constants.js';
import { envName } from '../deviceplugin/pool.js';
import type { RelayStatus } from '../relay/types.js';
import { VioError } from '../util/errors.js';
import { CDI_KIND, DRIVER_NAME, METADATA_API_VERSION, POD_METADATA_ROOT } from './constants.js';

/** The CDI spec version written: env and mounts need no newer one. */
export const CDI_VERSION = '0.6.0';

/** One device of a prepared claim, with everything the files need. */
export interface PreparedDevice {
  /** the allocation result's request ("<request>" or "<request>/<subrequest>") */
  request: string;
  /** DRA pool and device name (ResourceSlice) */
  pool: string;
  device: string;
  relay: string;
  resourceName: string;
  /** CDI device name (without kind): "<claim uid>-<device>" */
  cdiName: string;
  /** socket directory as the pod sees it */
  podDir: string;
  /** the attachment's MAC and VLAN (from the claim, or the relay's default) */
  mac?: string;
  vlan: number;
  /** queue pairs the guest should use, and the MTU */
  queues: number;
  mtu?: number;
}

export interface ClaimIdentity {
  uid: string;
  namespace: string;
  name: string;
  /** the pod's name for the claim (resource.kubernetes.io/pod-claim-name), for claims made from a template */
  podClaimName?: string;
}

export function cdiQualifiedName(cdiName: string): string {
  return `${CDI_KIND}=${cdiName}`;
}

/** CDI device names allow [A-Za-z0-9_.:-]. */
export function cdiNameOf(claimUid: string, device: string): string {
  return `${claimUid}-${device}`.replace(/[^A-Za-z0-9_.:-]/g, '_');
}

/**
 * The socket directory in the container: named after the pod's claim and the request, not after
 * the relay, so a live-migration target's pod (same VMI, other relay) sees the same path.
 */
export function draPodSocketDir(claim: ClaimIdentity, request: string, index: number): string {
  const claimPart = claim.podClaimName ?? claim.name;
  const req = request.replaceAll('/', '-');
  return posix.join(CONTAINER_SOCKET_ROOT, 'dra', claimPart, index > 0 ? `${req}-${index}` : req);
}

/** Where KubeVirt's binding looks for the metadata of a request (src/kubevirt/sources.ts). */
export function podMetadataPath(claim: ClaimIdentity, request: string): string {
  const parent = request.split('/')[0]!;
  const dir = claim.podClaimName ? posix.join('resourceclaimtemplates', claim.podClaimName) : posix.join('resourceclaims', claim.name);
  return posix.join(POD_METADATA_ROOT, dir, parent, `${DRIVER_NAME}-metadata.json`);
}

/** A claim's UID or request name as part of a file name: one path component, never `.`/`..`
 *  (a UID `..` would make an unprepare remove the metadata directory's parent). */
function fileNamePart(field: string, v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/.test(v) || v.includes('..')) {
    throw new VioError('EINVAL', `${field}: ${JSON.stringify(v.slice(0, 80))} is not a ResourceClaim UID or request name (letters, digits, "-", "_", "."); kubelet sends the apiserver's`);
  }
  return v;
}

export function cdiSpecPath(cdiDir: string, claimUid: string): string {
  return join(cdiDir, `${CDI_KIND.replace('/', '-')}_${fileNamePart('claim uid', claimUid)}.json`);
}

export function metadataHostPath(metadataDir: string, claimUid: string, request: string): string {
  return join(metadataDir, fileNamePart('claim uid', claimUid), `${fileNamePart('request', request.split('/')[0]!)}-metadata.json`);
}

/** The device-plugin environment of one device (docs/deviceplugin.md), for the DRA path. */
export function deviceEnv(d: PreparedDevice, status: RelayStatus): Record<string, string> {
  const p = deviceEnvPrefix(d.relay);
  const env: Record<string, string> = {
    [`${p}SOCKET`]: posix.join(d.podDir, posix.basename(status.socketPath)),
    [`${p}MODE`]: podMode(status.mode),
    [`${p}QUEUES`]: String(d.queues),
  };
  if (d.mac) env[`${p}MAC`] = d.mac;
  if (d.mtu !== undefined) env[`${p}MTU`] = String(d.mtu);
  if (status.numaNode >= 0) env[`${p}NUMA_NODE`] = String(status.numaNode);
  return env;
}

/** KEP-5304 metadata of one request's devices (attributes as KubeVirt's binding reads them). */
export function metadataDocument(claim: ClaimIdentity, request: string, devices: readonly { d: PreparedDevice; status: RelayStatus }[]): object {
  return {
    apiVersion: METADATA_API_VERSION,
    kind: 'DeviceMetadata',
    metadata: { name: claim.name, namespace: claim.namespace, uid: claim.uid },
    requests: [
      {
        name: request.split('/')[0],
        devices: devices.map(({ d, status }) => ({
          driver: DRIVER_NAME,
          pool: d.pool,
          device: d.device,
          attributes: {
            'vhost-user-path': { string: posix.join(d.podDir, posix.basename(status.socketPath)) },
            'vhost-user-mode': { string: podMode(status.mode) },
            ...(d.mtu !== undefined ? { mtu: { int: d.mtu } } : {}),
            ...(d.mac ? { mac: { string: d.mac } } : {}),
            queues: { int: d.queues },
            relay: { string: d.relay },
          },
        })),
      },
    ],
  };
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: { name: string; containerEdits: { env: string[]; mounts: { hostPath: string; containerPath: string; options: string[] }[] } }[];
}

/** The claim's CDI spec: one CDI device per allocated relay. */
export function cdiSpec(claim: ClaimIdentity, devices: readonly { d: PreparedDevice; status: RelayStatus }[], metadataDir: string): CdiSpec {
  const byPool = new Map<string, string[]>();
  for (const { d } of devices) byPool.set(d.resourceName, [...(byPool.get(d.resourceName) ?? []), d.relay]);
  const metadataMounted = new Set<string>();
  return {
    cdiVersion: CDI_VERSION,
    kind: CDI_KIND,
    devices: devices.map(({ d, status }) => {
      const env = deviceEnv(d, status);
      const pool = d.resourceName.slice(d.resourceName.indexOf('/') + 1);
      const poolKey = envName(d.resourceName.startsWith(`${DRIVER_NAME}/`) ? pool : d.resourceName.replace('/', '_'));
      env[`VIO4WD_${poolKey}_DEVICES`] = (byPool.get(d.resourceName) ?? []).join(',');
      // one metadata file per request: mounted once, with the request's first device
      const request = d.request.split('/')[0]!;
      const mountMetadata = !metadataMounted.has(request);
      metadataMounted.add(request);
      return {
        name: d.cdiName,
        containerEdits: {
          env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          mounts: [
            // read-write: in vhost-user server mode QEMU creates the socket in this directory
            { hostPath: posix.dirname(status.socketPath), containerPath: d.podDir, options: ['rbind', 'rw'] },
            ...(mountMetadata
              ? [{ hostPath: metadataHostPath(metadataDir, claim.uid, d.request), containerPath: podMetadataPath(claim, d.request), options: ['rbind', 'ro'] }]
              : []),
          ],
        },
      };
    }),
  };
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

/** Writes the claim's metadata files and its CDI spec (metadata first: the spec mounts them). */
export async function writeClaimFiles(cdiDir: string, metadataDir: string, claim: ClaimIdentity, devices: readonly { d: PreparedDevice; status: RelayStatus }[]): Promise<string[]> {
  const written: string[] = [];
  const byRequest = new Map<string, { d: PreparedDevice; status: RelayStatus }[]>();
  for (const x of devices) {
    const r = x.d.request.split('/')[0]!;
    byRequest.set(r, [...(byRequest.get(r) ?? []), x]);
  }
  await mkdir(join(metadataDir, fileNamePart('claim uid', claim.uid)), { recursive: true, mode: 0o755 });
  for (const [request, devs] of byRequest) {
    const path = metadataHostPath(metadataDir, claim.uid, request);
    await writeAtomic(path, `${JSON.stringify(metadataDocument(claim, request, devs), null, 2)}\n`, 0o644);
    written.push(path);
  }
  await mkdir(cdiDir, { recursive: true, mode: 0o755 });
  const specPath = cdiSpecPath(cdiDir, claim.uid);
  await writeAtomic(specPath, `${JSON.stringify(cdiSpec(claim, devices, metadataDir), null, 2)}\n`, 0o644);
  written.push(specPath);
  return written;
}

/** Removes what writeClaimFiles wrote for a claim (missing files are fine). */
export async function removeClaimFiles(cdiDir: string, metadataDir: string, claimUid: string): Promise<void> {
  await rm(cdiSpecPath(cdiDir, claimUid), { force: true });
  await rm(join(metadataDir, fileNamePart('claim uid', claimUid)), { recursive: true, force: true });
}
