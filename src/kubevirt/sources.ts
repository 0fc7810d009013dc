// Where the binding finds each interface's relay socket, in this order:
//  1. DRA: a network that names a ResourceClaim request -> the claim's KEP-5304 device metadata
//     file (attributes vhost-user-path, mtu), as KubeVirt's vhostuser binding plugin reads it;
//  2. device plugin + Multus: the kubevirt.io/network-info downward-API file that KubeVirt mounts
//     into binding sidecars registered with `downwardAPI: device-info` (the device-info file
//     vio4wd's Allocate writes, relayed by Multus's network-status);
//  3. explicit configuration: the VMI annotation vio4wd.io/interfaces, then --interface flags
//     and VIO4WD_INTERFACES.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ValidationError, VioError, errorCode } from '../util/errors.js';
import { networkOf, type Vmi } from './vmi.js';
import { parseMac } from '../util/identifiers.js';
import { MAX_QUEUES, MTU_MAX, MTU_MIN } from '../util/limits.js';
import { splitJsonValues } from '../util/json-stream.js';
import { INTERFACES_ANNOTATION, checkPath, explicitFromVmi, parseIntIn, parseMode, type ExplicitInterface, type VhostMode } from './explicit.js';

/** One interface's backend: the socket as the virt-launcher pod sees it, and what we know of it. */
export interface SocketInfo {
  path: string;
  /** QEMU's role on the socket (libvirt's <source mode>); device-info's "mode" means the same. */
  mode: VhostMode;
  mac?: string;
  mtu?: number;
  /** Queue pairs the relay serves; caps the NIC's queues. */
  maxQueues?: number;
  /** Where it came from, for logs and errors. */
  origin: string;
}

export const DEFAULT_NETWORK_INFO_PATH = '/etc/podinfo/network-info';
export const DEFAULT_DRA_METADATA_DIR = '/var/run/kubernetes.io/dra-device-attributes';
export const DRA_METADATA_API_VERSION = 'metadata.resource.k8s.io/v1alpha1';

export interface ResolveOptions {
  networkInfoPath: string;
  /** How long to wait for KubeVirt/kubelet to fill the network-info file. */
  networkInfoTimeoutMs: number;
  pollIntervalMs?: number;
  draMetadataDir: string;
  /** From flags and VIO4WD_INTERFACES, keyed by VMI interface name. */
  explicit: ReadonlyMap<string, ExplicitInterface>;
}

/** No socket could be found for an interface; the message names it and what was searched. */
export class SocketNotFoundError extends VioError {
  readonly iface: string;
  constructor(iface: string, tried: string[]) {
    super(
      'ENOSOCKET',
      `no vhost-user socket found for interface "${iface}": ${tried.join('; ')}. ` +
        `Fix: attach the interface to a NetworkAttachmentDefinition whose k8s.v1.cni.cncf.io/resourceName is a vio4wd pool ` +
        `and register the binding with downwardAPI: device-info, or use a DRA claim, or set the socket path in the ` +
        `${INTERFACES_ANNOTATION} annotation`,
    );
    this.name = 'SocketNotFoundError';
    this.iface = iface;
  }
}

// ---------------------------------------------------------------------------------------------
// network-info downward API (KubeVirt pkg/network/downwardapi)

interface NetworkInfoEntry {
  network?: string;
  deviceInfo?: { type?: string; version?: string; 'vhost-user'?: { mode?: string; path?: string } };
  mac?: string;
}

type NetworkInfoRead = { state: 'absent' } | { state: 'empty' } | { state: 'ok'; entries: NetworkInfoEntry[] };

async function readNetworkInfo(path: string): Promise<NetworkInfoRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { state: 'absent' };
    throw err;
  }
  if (text.trim() === '') return { state: 'empty' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(path, `network-info is not valid JSON (${(err as Error).message})`);
  }
  const ifaces = (v as { interfaces?: unknown })?.interfaces;
  return { state: 'ok', entries: Array.isArray(ifaces) ? (ifaces as NetworkInfoEntry[]) : [] };
}

function socketFromNetworkInfo(iface: string, e: NetworkInfoEntry, path: string): SocketInfo {
  const di = e.deviceInfo!;
  if (di.type !== 'vhost-user') {
    throw new ValidationError(
      `interface "${iface}"`,
      `${path} describes a "${di.type}" device for network "${iface}", not vhost-user: point its NetworkAttachmentDefinition's resourceName at a vio4wd pool`,
    );
  }
  const vu = di['vhost-user'];
  if (!vu?.path) throw new ValidationError(`interface "${iface}"`, `${path} has a vhost-user device for network "${iface}" without a socket path`);
  return {
    path: checkPath(`${path} interfaces[${iface}].deviceInfo.vhost-user.path`, vu.path),
    mode: parseMode(`${path} interfaces[${iface}].deviceInfo.vhost-user.mode`, vu.mode ?? ''),
    // KubeVirt (VEP 127) passes the interface's MAC here: the one vio4wd-cni programmed on the
    // relay's VF and returned in its result, also when the VM spec names none
    ...(e.mac ? { mac: parseMac(e.mac, `${path} interfaces[${iface}].mac`) } : {}),
    origin: `network-info ${path}`,
  };
}

// ---------------------------------------------------------------------------------------------
// DRA device metadata (KEP-5304, as KubeVirt pkg/dra reads it)

interface DraAttribute {
  string?: string;
  int?: number;
  bool?: boolean;
  version?: string;
}
interface DraDevice {
  driver?: string;
  pool?: string;
  device?: string;
  attributes?: Record<string, DraAttribute>;
}
interface DraMetadata {
  apiVersion?: string;
  requests?: { name?: string; devices?: DraDevice[] }[];
}

function attr(dev: DraDevice, key: string): DraAttribute | undefined {
  const attrs = dev.attributes ?? {};
  if (attrs[key]) return attrs[key];
  // attributes may be qualified with the driver's domain: "<domain>/vhost-user-path"
  const q = Object.keys(attrs).find((k) => k.endsWith(`/${key}`));
  return q ? attrs[q] : undefined;
}

type DraRead = { found: SocketInfo } | { miss: string };

async function readDra(vmi: Vmi, iface: string, baseDir: string): Promise<DraRead> {
  const rc = networkOf(vmi, iface)?.resourceClaim;
  if (!rc) return { miss: 'not a DRA network' };
  const claimName = rc.claimName ?? '';
  const requestName = rc.requestName ?? '';
  const podClaim = (vmi.spec?.resourceClaims ?? []).find((c) => c.name === claimName);
  const dir = podClaim?.resourceClaimName
    ? join(baseDir, 'resourceclaims', podClaim.resourceClaimName, requestName)
    : join(baseDir, 'resourceclaimtemplates', claimName, requestName);
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('-metadata.json')).sort();
  } catch {
    files = [];
  }
  if (files.length === 0) return { miss: `DRA metadata: no *-metadata.json in ${dir} (claim "${claimName}", request "${requestName}")` };
  for (const f of files) {
    const path = join(dir, f);
    const text = await readFile(path, 'utf8');
    const md = splitJsonValues(text).values
      .map((s) => JSON.parse(s) as DraMetadata)
      .find((o) => o.apiVersion === DRA_METADATA_API_VERSION);
    if (!md) continue;
    const req = (md.requests ?? []).find((r) => r.name === requestName);
    for (const dev of req?.devices ?? []) {
      const p = attr(dev, 'vhost-user-path');
      if (!p) continue;
      const field = `${path} request "${requestName}" device "${dev.device ?? '?'}"`;
      if (typeof p.string !== 'string') throw new ValidationError(field, 'attribute vhost-user-path is not a string');
      const info: SocketInfo = { path: checkPath(`${field} vhost-user-path`, p.string), mode: 'server', origin: `DRA metadata ${path}` };
      const mtu = attr(dev, 'mtu');
      if (mtu) {
        if (typeof mtu.int !== 'number') throw new ValidationError(`${field} mtu`, 'attribute mtu is not an integer');
        info.mtu = parseIntIn(`${field} mtu`, mtu.int, MTU_MIN, MTU_MAX);
      }
      // vio4wd extensions: a relay in server mode makes QEMU the client; the VF's MAC.
      const mode = attr(dev, 'vhost-user-mode');
      if (mode?.string) info.mode = parseMode(`${field} vhost-user-mode`, mode.string);
      const mac = attr(dev, 'mac');
      if (mac?.string) info.mac = parseMac(mac.string, `${field} mac`);
      // the claim's queue pairs: what the relay offers, so the domain asks for no more
      const queues = attr(dev, 'queues');
      if (queues && typeof queues.int === 'number') info.maxQueues = parseIntIn(`${field} queues`, queues.int, 1, MAX_QUEUES);
      return { found: info };
    }
  }
  return { miss: `DRA metadata in ${dir} has no device with attribute vhost-user-path for request "${requestName}"` };
}

// ---------------------------------------------------------------------------------------------

function withExplicit(found: SocketInfo, e: ExplicitInterface | undefined): SocketInfo {
  if (!e) return found;
  return {
    ...found,
    mac: found.mac ?? e.mac,
    mtu: found.mtu ?? e.mtu,
    maxQueues: found.maxQueues ?? e.queues,
  };
}

function fromExplicit(e: ExplicitInterface, origin: string): SocketInfo {
  return { path: e.path!, mode: e.mode ?? 'server', mac: e.mac, mtu: e.mtu, maxQueues: e.queues, origin };
}

/**
 * Finds the socket of each named interface. Throws SocketNotFoundError naming the first
 * interface that has none. Waits (up to networkInfoTimeoutMs) for the network-info file to
 * name interfaces that only it can answer.
 */
export async function resolveSockets(vmi: Vmi, ifaces: string[], opts: ResolveOptions): Promise<Map<string, SocketInfo>> {
  const fromAnnotation = explicitFromVmi(vmi);
  // per key, the VM's annotation wins over the sidecar's flags and environment
  const explicitOf = (n: string): [ExplicitInterface | undefined, string] => {
    const f = opts.explicit.get(n);
    const a = fromAnnotation.get(n);
    if (!f && !a) return [undefined, ''];
    return [{ ...f, ...a }, a?.path ? `annotation ${INTERFACES_ANNOTATION}` : '--interface/VIO4WD_INTERFACES'];
  };
  const out = new Map<string, SocketInfo>();
  const tried = new Map<string, string[]>();
  const pending: string[] = [];

  for (const name of ifaces) {
    const dra = await readDra(vmi, name, opts.draMetadataDir);
    if ('found' in dra) {
      out.set(name, withExplicit(dra.found, explicitOf(name)[0]));
      continue;
    }
    if (dra.miss === 'not a DRA network') {
      tried.set(name, []);
      pending.push(name);
    } else {
      tried.set(name, [dra.miss]); // a DRA network is not in network-info
    }
  }

  // network-info: poll until every pending interface without an explicit path is named
  const deadline = Date.now() + opts.networkInfoTimeoutMs;
  const interval = opts.pollIntervalMs ?? 200;
  let waiting = pending.slice();
  let last: NetworkInfoRead = { state: 'absent' };
  while (waiting.length > 0) {
    last = await readNetworkInfo(opts.networkInfoPath);
    if (last.state === 'absent') break; // not mounted: the binding was registered without downwardAPI
    const entries = last.state === 'ok' ? last.entries : [];
    waiting = waiting.filter((name) => {
      const e = entries.find((x) => x.network === name && x.deviceInfo);
      if (!e) return true;
      out.set(name, withExplicit(socketFromNetworkInfo(name, e, opts.networkInfoPath), explicitOf(name)[0]));
      return false;
    });
    // interfaces with an explicit path do not wait for network-info
    const mustWait = waiting.filter((n) => !explicitOf(n)[0]?.path);
    if (mustWait.length === 0 || Date.now() >= deadline) break;
    await sleep(interval);
  }
  for (const name of waiting) {
    const why =
      last.state === 'absent'
        ? `network-info ${opts.networkInfoPath} does not exist (binding registered without downwardAPI: device-info?)`
        : last.state === 'empty'
          ? `network-info ${opts.networkInfoPath} stayed empty for ${opts.networkInfoTimeoutMs} ms`
          : last.entries.some((x) => x.network === name)
            ? `network-info ${opts.networkInfoPath} lists network "${name}" without device-info (does its NetworkAttachmentDefinition carry k8s.v1.cni.cncf.io/resourceName: vio4wd.io/<pool>?)`
            : `network-info ${opts.networkInfoPath} has no device-info for network "${name}"`;
    tried.get(name)!.push(why);
  }

  for (const name of ifaces) {
    if (out.has(name)) continue;
    const [explicit, origin] = explicitOf(name);
    if (explicit?.path) {
      out.set(name, fromExplicit(explicit, origin));
      continue;
    }
    throw new SocketNotFoundError(name, [...tried.get(name)!, `no explicit path (${INTERFACES_ANNOTATION} annotation, --interface, VIO4WD_INTERFACES)`]);
  }
  return out;
}
