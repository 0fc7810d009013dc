// The node agent's local attachment API, spoken by vio4wd-cni over a root-only unix socket: one
// JSON object per line each way. Every field is checked here, on the agent's side, because the
// values come from tenants (a NetworkAttachmentDefinition, the pod's network annotation).
import { ValidationError } from '../util/errors.js';
import { isNamespaceName, isObjectName, parseMac } from '../util/identifiers.js';

/** Where the agent serves the attachment API (the chart mounts /run/vio4wd into the agent). */
export const DEFAULT_AGENT_SOCKET = '/run/vio4wd/agent.sock';
/** The plugin's override of the socket path (tests); never read from the network config. */
export const AGENT_SOCKET_ENV = 'VIO4WD_AGENT_SOCKET';
export const PROTOCOL_VERSION = 1;
/** A request line longer than this is refused: nothing legitimate comes near it. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * CNI error codes (spec "Error"): 1-99 are the spec's own, 100+ the plugin's. The agent answers
 * with them so that the plugin passes them through unchanged.
 */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  RelayNotFound: 100,
  RelayInUse: 101,
  VfProgramming: 102,
  AttachmentMissing: 103,
  /** kubelet did not allocate the relay to the pod that asks for it. */
  RelayNotAllocated: 104,
  /** the pool policy does not allow the VF settings asked for (VLAN, spoof checking). */
  PolicyDenied: 105,
} as const;

export type Op = 'add' | 'del' | 'check' | 'status' | 'gc';

export interface AttachRequest {
  version: number;
  op: Op;
  /** CNI_CONTAINERID (add, del, check). */
  containerId?: string;
  /** CNI_IFNAME (add, del, check). */
  ifName?: string;
  /** CNI_NETNS, recorded only. */
  netns?: string;
  /** The network config's name (recorded; gc is per network). */
  network?: string;
  /** The relay's device ID as the device plugin allocated it (= the relay's name). */
  deviceId?: string;
  /** The pod of the attachment, from CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME (set by the runtime). */
  pod?: PodRef;
  mac?: string;
  vlan?: number;
  mtu?: number;
  /** Queue pairs for the relay (in-process callers only: the DRA driver; not on the wire). */
  queues?: number;
  spoofchk?: boolean;
  /** gc: the attachments still valid for `network`. */
  valid?: { containerId: string; ifName: string }[];
}

/** A pod, by namespace and name. */
export interface PodRef {
  namespace: string;
  name: string;
}

export interface Attachment {
  deviceId: string;
  containerId: string;
  ifName: string;
  network: string;
  netns?: string;
  /** The pod, when the runtime named it (CNI_ARGS). */
  pod?: PodRef;
  mac: string;
  vlan: number;
  spoofchk: boolean;
  mtu?: number;
  /** PCI address of a real VF (CNI 1.1 interfaces[].pciID). */
  pciAddress?: string;
  /** Queue pairs and MTU this attachment set on the relay (its own back at DEL). */
  relayConfig?: { queues?: number; mtu?: number };
  /** The relay's socket on the host. */
  socketPath: string;
  since: string;
}

export type AttachReply = { ok: true; attachment?: Attachment; removed?: number } | { ok: false; code: number; msg: string; details?: string };

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details?: string,
  ) {
    super(msg);
    this.name = 'CniError';
  }
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const OPS: readonly Op[] = ['add', 'del', 'check', 'status', 'gc'];
const KNOWN = new Set(['version', 'op', 'containerId', 'ifName', 'netns', 'network', 'deviceId', 'pod', 'mac', 'vlan', 'mtu', 'spoofchk', 'valid']);

function bad(field: string, msg: string): never {
  throw new CniError(CniCode.InvalidConfig, new ValidationError(field, msg).message);
}

function str(v: unknown, field: string, max: number, re?: RegExp, hint = ''): string {
  if (typeof v !== 'string' || v.length === 0) bad(field, `expected a non-empty string${hint ? `, ${hint}` : ''}`);
  if (v.length > max) bad(field, `longer than ${max} characters`);
  if (re && !re.test(v)) bad(field, `"${v}" has characters outside ${re.source}${hint ? `; ${hint}` : ''}`);
  return v;
}

/** CNI's interface name rules (spec "Parameters": at most 15 bytes, no /, :, whitespace, not . or ..). */
export function checkIfName(v: unknown, field = 'ifName'): string {
  const s = str(v, field, 15, undefined, 'the CNI_IFNAME of the attachment');
  if (s === '.' || s === '..' || /[/:\s]/.test(s)) bad(field, `"${s}" is not a valid interface name: no "/", ":" or whitespace, not "." or ".."`);
  return s;
}

/** Parses and checks one request line; throws CniError naming the field and the fix. */
export function parseRequest(line: string): AttachRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new CniError(CniCode.DecodeFailure, `request is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CniError(CniCode.DecodeFailure, 'request must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new CniError(CniCode.UnsupportedField, `unknown field "${k}"; known: ${[...KNOWN].join(', ')}`);
  if (o.version !== PROTOCOL_VERSION) {
    throw new CniError(CniCode.IncompatibleVersion, `protocol version ${JSON.stringify(o.version)} is not ${PROTOCOL_VERSION}: install the vio4wd-cni that ships with this agent`);
  }
  if (typeof o.op !== 'string' || !OPS.includes(o.op as Op)) bad('op', `expected one of ${OPS.join(', ')}`);
  const r: AttachRequest = { version: PROTOCOL_VERSION, op: o.op as Op };
  if (r.op === 'status') return r;
  if (o.network !== undefined) r.network = str(o.network, 'network', 253);
  if (r.op === 'gc') {
    if (!Array.isArray(o.valid)) bad('valid', 'expected the list of attachments still valid, [{"containerId": ..., "ifName": ...}]');
    if (o.valid.length > 100_000) bad('valid', 'more than 100000 entries');
    r.valid = o.valid.map((x: unknown, i) => {
      const e = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
      return { containerId: str(e.containerId, `valid[${i}].containerId`, 256), ifName: checkIfName(e.ifName, `valid[${i}].ifName`) };
    });
    return r;
  }
  r.containerId = str(o.containerId, 'containerId', 256, ID_RE, 'the CNI_CONTAINERID kubelet passes (letters, digits, _ . -)');
  r.ifName = checkIfName(o.ifName);
  if (o.netns !== undefined) r.netns = str(o.netns, 'netns', 4096);
  if (o.deviceId !== undefined) r.deviceId = str(o.deviceId, 'deviceId', 253, ID_RE, 'the relay ID the device plugin allocated (see the pod\'s vio4wd.io/<pool> resource)');
  if (o.pod !== undefined) r.pod = parsePod(o.pod);
  if ((r.op === 'add' || r.op === 'check') && r.deviceId === undefined) {
    bad('deviceID', 'missing: the network attachment must name the pool in its k8s.v1.cni.cncf.io/resourceName annotation, so that Multus passes the allocated relay as deviceID');
  }
  if (o.mac !== undefined) {
    try {
      r.mac = parseMac(o.mac, 'runtimeConfig.mac');
    } catch (err) {
      throw new CniError(CniCode.InvalidConfig, (err as Error).message);
    }
  }
  if (o.vlan !== undefined) {
    if (typeof o.vlan !== 'number' || !Number.isInteger(o.vlan) || o.vlan < 0 || o.vlan > 4094) bad('vlan', `${JSON.stringify(o.vlan)} is not a VLAN id: give 1..4094, or 0 for none`);
    r.vlan = o.vlan;
  }
  if (o.mtu !== undefined) {
    if (typeof o.mtu !== 'number' || !Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 9702) bad('mtu', `${JSON.stringify(o.mtu)} is not an MTU: give 68..9702`);
    r.mtu = o.mtu;
  }
  if (o.spoofchk !== undefined) {
    if (typeof o.spoofchk !== 'boolean') bad('spoofchk', 'expected true or false');
    r.spoofchk = o.spoofchk;
  }
  return r;
}

function parsePod(v: unknown): PodRef {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('pod', 'expected {"namespace": ..., "name": ...} (CNI_ARGS K8S_POD_NAMESPACE and K8S_POD_NAME)');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'namespace' && k !== 'name') bad(`pod.${k}`, 'unknown field; known: namespace, name');
  const namespace = str(o.namespace, 'pod.namespace', 63);
  if (!isNamespaceName(namespace)) bad('pod.namespace', `"${namespace}" is not a namespace name (K8S_POD_NAMESPACE): lower-case letters, digits and -`);
  const name = str(o.name, 'pod.name', 253);
  if (!isObjectName(name)) bad('pod.name', `"${name}" is not a pod name (K8S_POD_NAME): lower-case letters, digits, - and .`);
  return { namespace, name };
}

export function errorReply(err: unknown): AttachReply {
  if (err instanceof CniError) return { ok: false, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  return { ok: false, code: CniCode.IoFailure, msg: err instanceof Error ? err.message : String(err) };
}
