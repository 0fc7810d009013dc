// vio4wd-cni: a CNI plugin (spec 1.0.0 and 1.1.0) for vio4wd relays. The container runtime (via
// Multus) runs it with CNI_* in the environment and the network config on stdin; it asks the node
// agent to program the allocated relay's VF and prints the CNI result, or a CNI error, on stdout.
import { createConnection } from 'node:net';
import { AGENT_SOCKET_ENV, CniCode, CniError, DEFAULT_AGENT_SOCKET, PROTOCOL_VERSION, checkIfName, type AttachReply, type AttachRequest, type Attachment } from './protocol.js';

export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** Sends one request to the agent and returns its reply. */
export type AskAgent = (req: AttachRequest) => Promise<AttachReply>;

export interface PluginIo {
  env: NodeJS.ProcessEnv;
  stdin: string;
  ask?: AskAgent;
}

export interface PluginOutcome {
  stdout: string;
  exitCode: number;
}

interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  deviceID?: string;
  mac?: string;
  vlan?: number;
  mtu?: number;
  spoofchk?: boolean;
  prevResult?: { interfaces?: { name?: string; mac?: string; sandbox?: string }[] } & Record<string, unknown>;
  gcValid?: { containerId: string; ifName: string }[];
}

/** Runs one CNI command; never throws: failures become CNI error JSON and exit code 1. */
export async function runPlugin(io: PluginIo): Promise<PluginOutcome> {
  const ask = io.ask ?? askAgent(io.env[AGENT_SOCKET_ENV] || DEFAULT_AGENT_SOCKET);
  let version: string = '1.1.0';
  try {
    const command = io.env.CNI_COMMAND;
    if (command === 'VERSION') {
      return ok({ cniVersion: requestedVersion(io.stdin) ?? version, supportedVersions: [...SUPPORTED_VERSIONS] });
    }
    const conf = parseConf(io.stdin);
    version = conf.cniVersion;
    switch (command) {
      case 'ADD':
        return ok(await add(conf, io.env, ask));
      case 'DEL':
        await call(ask, { ...base('del', io.env, conf) });
        return { stdout: '', exitCode: 0 };
      case 'CHECK':
        await check(conf, io.env, ask);
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
        await call(ask, { version: PROTOCOL_VERSION, op: 'status' }, CniCode.NotAvailable);
        return { stdout: '', exitCode: 0 };
      case 'GC':
        await call(ask, { version: PROTOCOL_VERSION, op: 'gc', network: conf.name, valid: conf.gcValid ?? [] });
        return { stdout: '', exitCode: 0 };
      default:
        throw new CniError(CniCode.InvalidEnv, `CNI_COMMAND=${JSON.stringify(command ?? '')} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION: the container runtime sets it`);
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CniCode.IoFailure, err instanceof Error ? err.message : String(err));
    return {
      stdout: `${JSON.stringify({ cniVersion: version, code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) })}\n`,
      exitCode: 1,
    };
  }
}

function ok(v: unknown): PluginOutcome {
  return { stdout: `${JSON.stringify(v)}\n`, exitCode: 0 };
}

function requestedVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function parseConf(stdin: string): NetConf {
  let v: unknown;
  try {
    v = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DecodeFailure, `the network config on stdin is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CniError(CniCode.DecodeFailure, 'the network config on stdin must be a JSON object');
  const o = v as Record<string, unknown>;
  const cniVersion = o.cniVersion;
  if (typeof cniVersion !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(CniCode.IncompatibleVersion, `cniVersion ${JSON.stringify(cniVersion)} is not supported: write "cniVersion": "1.0.0" or "1.1.0" in the network config`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const conf: NetConf = { cniVersion: cniVersion as CniVersion, name: '', type: '' };
  if (typeof o.name !== 'string' || !o.name) throw new CniError(CniCode.InvalidConfig, 'name: missing; every network config has a "name"');
  conf.name = o.name;
  if (typeof o.type !== 'string') throw new CniError(CniCode.InvalidConfig, 'type: missing; write "type": "vio4wd"');
  conf.type = o.type;
  if (o.deviceID !== undefined) {
    if (typeof o.deviceID !== 'string') throw new CniError(CniCode.InvalidConfig, 'deviceID: expected a string (Multus sets it to the relay the device plugin allocated)');
    conf.deviceID = o.deviceID;
  }
  const rc = o.runtimeConfig;
  if (rc !== undefined && (typeof rc !== 'object' || rc === null || Array.isArray(rc))) throw new CniError(CniCode.InvalidConfig, 'runtimeConfig: expected an object');
  const runtime = (rc ?? {}) as Record<string, unknown>;
  // runtimeConfig (capabilities, from the pod's network selection) wins over the config's own keys
  const pick = (k: string): unknown => (runtime[k] !== undefined ? runtime[k] : o[k]);
  const mac = pick('mac');
  if (mac !== undefined && mac !== '') {
    if (typeof mac !== 'string') throw new CniError(CniCode.InvalidConfig, 'runtimeConfig.mac: expected a MAC string like "52:54:00:12:34:56"');
    conf.mac = mac;
  }
  for (const k of ['vlan', 'mtu'] as const) {
    const n = pick(k);
    if (n === undefined) continue;
    if (typeof n !== 'number') throw new CniError(CniCode.InvalidConfig, `${k}: expected a number`);
    conf[k] = n;
  }
  if (o.spoofchk !== undefined) {
    if (typeof o.spoofchk !== 'boolean') throw new CniError(CniCode.InvalidConfig, 'spoofchk: expected true or false');
    conf.spoofchk = o.spoofchk;
  }
  if (o.prevResult !== undefined && (typeof o.prevResult !== 'object' || o.prevResult === null)) throw new CniError(CniCode.InvalidConfig, 'prevResult: expected an object');
  if (o.prevResult) conf.prevResult = o.prevResult as NetConf['prevResult'];
  const gc = o['cni.dev/valid-attachments'];
  if (gc !== undefined) {
    if (!Array.isArray(gc)) throw new CniError(CniCode.InvalidConfig, 'cni.dev/valid-attachments: expected a list');
    conf.gcValid = gc.map((x: unknown) => {
      const e = (x ?? {}) as Record<string, unknown>;
      return { containerId: String(e.containerID ?? ''), ifName: String(e.ifname ?? '') };
    });
  }
  return conf;
}

function need(env: NodeJS.ProcessEnv, k: string): string {
  const v = env[k];
  if (!v) throw new CniError(CniCode.InvalidEnv, `${k} is not set: the container runtime must set it for this command`);
  return v;
}

function base(op: 'add' | 'del' | 'check', env: NodeJS.ProcessEnv, conf: NetConf): AttachRequest {
  const ifName = need(env, 'CNI_IFNAME');
  try {
    checkIfName(ifName, 'CNI_IFNAME');
  } catch (err) {
    throw new CniError(CniCode.InvalidEnv, (err as Error).message);
  }
  const r: AttachRequest = { version: PROTOCOL_VERSION, op, containerId: need(env, 'CNI_CONTAINERID'), ifName, network: conf.name };
  if (env.CNI_NETNS) r.netns = env.CNI_NETNS;
  if (conf.deviceID !== undefined) r.deviceId = conf.deviceID;
  const pod = podOf(env.CNI_ARGS);
  if (pod) r.pod = pod;
  return r;
}

/**
 * The pod from CNI_ARGS ("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=name;..."), which kubelet's runtime
 * (and Multus, for the delegates it runs) sets; undefined when either is missing. The agent
 * checks the values; the network config cannot set CNI_ARGS.
 */
export function podOf(cniArgs: string | undefined): { namespace: string; name: string } | undefined {
  if (!cniArgs) return undefined;
  const kv = new Map<string, string>();
  for (const part of cniArgs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) kv.set(part.slice(0, i), part.slice(i + 1));
  }
  const namespace = kv.get('K8S_POD_NAMESPACE');
  const name = kv.get('K8S_POD_NAME');
  return namespace && name ? { namespace, name } : undefined;
}

async function add(conf: NetConf, env: NodeJS.ProcessEnv, ask: AskAgent): Promise<unknown> {
  const netns = need(env, 'CNI_NETNS');
  if (conf.deviceID === undefined) {
    throw new CniError(
      CniCode.InvalidConfig,
      `deviceID: missing; annotate the NetworkAttachmentDefinition "${conf.name}" with k8s.v1.cni.cncf.io/resourceName: vio4wd.io/<pool>, so that Multus passes the relay the device plugin allocated`,
    );
  }
  const req: AttachRequest = { ...base('add', env, conf), netns };
  if (conf.mac !== undefined) req.mac = conf.mac;
  if (conf.vlan !== undefined) req.vlan = conf.vlan;
  if (conf.mtu !== undefined) req.mtu = conf.mtu;
  if (conf.spoofchk !== undefined) req.spoofchk = conf.spoofchk;
  const r = await call(ask, req);
  const a = r.attachment;
  if (!a) throw new CniError(CniCode.IoFailure, 'the agent answered ADD without the attachment: agent and plugin versions differ');
  return result(conf, a, netns);
}

/** The CNI result: the pod's interface (a vhost-user socket, not a netdev) with the VF's MAC. */
function result(conf: NetConf, a: Attachment, netns: string): unknown {
  const iface: Record<string, unknown> = { name: a.ifName, mac: a.mac, sandbox: netns };
  if (a.mtu !== undefined) iface.mtu = a.mtu;
  if (conf.cniVersion === '1.1.0') {
    iface.socketPath = a.socketPath;
    if (a.pciAddress) iface.pciID = a.pciAddress;
  }
  const prev = conf.prevResult ?? {};
  const interfaces = [...(Array.isArray(prev.interfaces) ? prev.interfaces : []), iface];
  return { ...prev, cniVersion: conf.cniVersion, interfaces, ips: Array.isArray(prev.ips) ? prev.ips : [], ...(prev.dns ? { dns: prev.dns } : {}) };
}

async function check(conf: NetConf, env: NodeJS.ProcessEnv, ask: AskAgent): Promise<void> {
  need(env, 'CNI_NETNS');
  if (!conf.prevResult) throw new CniError(CniCode.InvalidConfig, 'prevResult: missing; CHECK needs the result of the ADD (the runtime caches it)');
  const req = base('check', env, conf);
  if (conf.mac !== undefined) req.mac = conf.mac;
  const r = await call(ask, req);
  const mine = conf.prevResult.interfaces?.find((i) => i.name === req.ifName);
  if (!mine) throw new CniError(CniCode.InvalidConfig, `prevResult lists no interface ${req.ifName}: the ADD result was not this plugin's`);
  if (r.attachment && mine.mac && mine.mac.toLowerCase() !== r.attachment.mac) {
    throw new CniError(CniCode.VfProgramming, `prevResult says ${req.ifName} has MAC ${mine.mac}, the VF is programmed with ${r.attachment.mac}: recreate the pod`);
  }
}

async function call(ask: AskAgent, req: AttachRequest, unreachableCode: number = CniCode.TryAgainLater): Promise<Extract<AttachReply, { ok: true }>> {
  let r: AttachReply;
  try {
    r = await ask(req);
  } catch (err) {
    throw new CniError(
      unreachableCode,
      `cannot reach the vio4wd agent: ${(err as Error).message}; is the vio4wd agent running on this node (kubectl -n <namespace> get pods -l app.kubernetes.io/component=agent -o wide)?`,
    );
  }
  if (!r.ok) throw new CniError(r.code, r.msg, r.details);
  return r;
}

/** The agent client: one connection per request, a 30 s limit. */
export function askAgent(path: string, timeoutMs = 30_000): AskAgent {
  return (req) =>
    new Promise<AttachReply>((resolve, reject) => {
      const s = createConnection(path);
      let buf = '';
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no answer on ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.setEncoding('utf8');
      s.on('connect', () => s.write(`${JSON.stringify(req)}\n`));
      s.on('data', (d: string) => (buf += d));
      s.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new Error(`${path}: ${err.code ?? err.message}`));
      });
      s.on('end', () => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(buf) as AttachReply);
        } catch {
          reject(new Error(`${path} answered no JSON: ${buf.slice(0, 200)}`));
        }
      });
    });
}
