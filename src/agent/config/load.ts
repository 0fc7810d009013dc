// Loads the agent's configuration from YAML or from a virtio-forwarder settings file (told apart
// by content), validates it, and fills in defaults.
import { envFieldName } from './env-fields.js';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { VioError } from '../../util/errors.js';
import type { RelaySpec } from '../../relay/types.js';
import { relayVfOf } from '../../relay/spec.js';
import type { EngineOptions } from '../../engine/types.js';
import type { AgentConfig, RelayConfigEntry } from './schema.js';
import { ConfigError, checkConfig } from './validate.js';
import { DROP_IN_GUEST_QUEUES, envToConfig, looksLikeEnvFile, parseEnvFile } from './envfile.js';
import { DEFAULT_AGENT_SOCKET } from '../../cni/protocol.js';
import { CORE_SCHED_DEFAULTS } from '../../sched/scheduler.js';
import { endpointExposure } from '../../control/ipc.js';
import { DEFAULT_ALLOWED_VLANS, parseVlanRanges, type WrittenVfLimits } from '../../policy/vf-settings.js';

/** Lease renewals by default (kubelet's interval; src/kube/node-lease.ts has the same). */
export const DEFAULT_LEASE_RENEW_SECONDS = 10;

/** The agent pod's namespace (the chart sets POD_NAMESPACE), else its ServiceAccount's, else default. */
function podNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

export interface LoadedConfig {
  format: 'yaml' | 'virtioforwarder';
  config: AgentConfig;
  warnings: string[];
}

export interface ResolvedConfig {
  nodeName: string;
  logLevel: string;
  pidFile?: string;
  /** the upgrade handover (docs/upgrade.md) */
  handover: { enabled: boolean; socket: string };
  engine: EngineOptions;
  vhostUser: {
    mode: 'client' | 'server';
    socketDir: string;
    socketNamePattern: string;
    /** Relay ids 0..precreateSockets-1 get their socket at start, without a VF. */
    precreateSockets: number;
    owner?: string | number;
    group?: string | number;
    perm?: string;
  };
  control: {
    enabled: boolean;
    ipcDir: string;
    group?: string | number;
    portControl: string;
    stats: string;
    coreSched: string;
    config?: string;
    dynamicSockets: boolean;
    ovsdb?: string;
  };
  /** podResourcesSocket: kubelet's pod-resources socket; undefined = no relay-to-pod join. */
  metrics: { enabled: boolean; address: string; authorization: boolean; podResourcesSocket?: string; tls?: { certFile: string; keyFile: string } };
  sriov: { sysRoot: string; bindVfio: string[]; setMac: boolean; standIns: Record<string, string>; vfProgrammer: 'netlink' | 'standin'; vfLimits: WrittenVfLimits };
  /** allocationCheck: ADD only for the pod kubelet allocated the relay to, asked at podResourcesSocket. */
  cni: { enabled: boolean; socket: string; statePath: string; allocationCheck: boolean; podResourcesSocket?: string };
  cpuPins: Record<number, number[]>;
  coreScheduler: { enabled: boolean; intervalSeconds: number; sensitivity: number; globalNuma: boolean; minLoad: number; movePinned: boolean; logLevel?: string };
  kubernetes: { enabled: boolean; kubeconfig?: string; socketDir: string; allowVirtualDevices: string[]; nosymfollowSocketRoot: boolean; leaseNamespace: string; leaseRenewSeconds: number };
  /** podResourcesSocket: with it (devicePlugin.namespaceCheck), a VirtioRelay's relay is refused
   *  at PreStartContainer to a pod of another namespace. */
  devicePlugin: { enabled: boolean; pluginDir: string; devinfoDir: string; podResourcesSocket?: string };
  dra: { enabled: boolean; kubeconfig?: string; registryDir: string; pluginDir: string; cdiDir: string; metadataDir: string; statePath: string; resyncSeconds: number };
  relays: RelaySpec[];
}

export const DEFAULT_IPC_DIR = '/var/run/virtio-forwarder';
const DEFAULT_SOCKET_DIR = '/tmp/virtio-forwarder';
const DEFAULT_K8S_SOCKET_DIR = '/var/run/vio4wd/sockets';

export async function loadConfigFile(path: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new VioError('ENOENT', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  return parseConfigText(text, path);
}

export function parseConfigText(text: string, source: string): LoadedConfig {
  if (looksLikeEnvFile(text)) {
    const { config, warnings } = envToConfig(parseEnvFile(text));
    const problems = checkConfig(config).map((p) => ({ ...p, field: envFieldName(p.field) }));
    if (problems.length) throw new ConfigError(source, problems);
    return { format: 'virtioforwarder', config, warnings };
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new ConfigError(source, [{ field: `line ${e.linePos?.[0]?.line ?? '?'}`, message: `${e.message.split('\n')[0]}: fix the YAML syntax` }]);
  }
  const value = (doc.toJS() ?? {}) as unknown;
  const problems = checkConfig(value);
  if (problems.length) {
    // point at the line in the file as well as the field
    const withLines = problems.map((p) => {
      // the field itself, or (when it is missing) the nearest enclosing one
      const path = pathOf(p.field);
      let line: number | undefined;
      for (let n = path.length; n > 0 && line === undefined; n--) {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
        if (node?.range) line = lc.linePos(node.range[0]).line;
      }
      return line ? { ...p, message: `${p.message} (line ${line})` } : p;
    });
    throw new ConfigError(source, withLines);
  }
  return { format: 'yaml', config: value as AgentConfig, warnings: [] };
}

function pathOf(field: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** Fills in defaults; the result is what the agent runs with. */
export function resolveConfig(c: AgentConfig): ResolvedConfig {
  const e = c.engine ?? {};
  const v = c.vhostUser ?? {};
  const ctl = c.control ?? {};
  const ipcDir = ctl.ipcDir ?? DEFAULT_IPC_DIR;
  const engine: EngineOptions = {
    workerCpus: [...(e.workerCpus ?? [1])],
  };
  if (e.mainCpu !== undefined) engine.mainCpu = e.mainCpu;
  if (e.hugeDir !== undefined) engine.hugeDir = e.hugeDir;
  engine.filePrefix = e.filePrefix ?? 'vio4wd';
  if (e.inMemory !== undefined) engine.inMemory = e.inMemory;
  if (e.socketMemMb !== undefined) engine.socketMemMb = [...e.socketMemMb];
  if (e.noPci !== undefined) engine.noPci = e.noPci;
  if (e.extraEalArgs !== undefined) engine.extraEalArgs = [...e.extraEalArgs];
  if (e.logLevel !== undefined) engine.logLevel = e.logLevel;
  if (e.mergeableRxBuffers !== undefined) engine.mergeableRxBuffers = e.mergeableRxBuffers;
  if (e.tso !== undefined) engine.tso = e.tso;
  if (e.jumbo !== undefined) engine.jumbo = e.jumbo;
  if (e.poolQueuePairs !== undefined) engine.poolQueuePairs = e.poolQueuePairs;
  if (e.rxDescriptors !== undefined) engine.rxDescriptors = e.rxDescriptors;
  if (e.txDescriptors !== undefined) engine.txDescriptors = e.txDescriptors;
  if (e.idleSweepMicros !== undefined) engine.idleSweepMicros = e.idleSweepMicros;

  const cpuPins: Record<number, number[]> = {};
  for (const [k, cpus] of Object.entries(c.cpuPins ?? {})) cpuPins[Number(k)] = [...(cpus as number[])];

  const names = new Set<string>();
  const relays = (c.relays ?? []).map((r, i) => {
    const spec = relayFromConfig(r, cpuPins, v.mode ?? 'server');
    if (names.has(spec.name)) {
      throw new ConfigError('config', [{ field: `relays[${i}].name`, message: `"${spec.name}" is used by another relay: give each relay its own name (or id)` }]);
    }
    names.add(spec.name);
    return spec;
  });
  const ids = new Map<number, number>();
  relays.forEach((r, i) => {
    if (r.id === undefined) return;
    const prev = ids.get(r.id);
    if (prev !== undefined) {
      throw new ConfigError('config', [{ field: `relays[${i}].id`, message: `relay id ${r.id} is also used by relays[${prev}]: give each relay its own id` }]);
    }
    ids.set(r.id, i);
  });
  try {
    parseVlanRanges(c.sriov?.vfLimits?.allowedVlans ?? [], 'sriov.vfLimits.allowedVlans');
  } catch (err) {
    throw new ConfigError('config', [{ field: 'sriov.vfLimits.allowedVlans', message: (err as Error).message }]);
  }
  relays.push(...precreatedSockets(v.precreateSockets ?? 0, ids, cpuPins, v.mode ?? 'server', c.kubernetes?.enabled ?? false));

  // the metrics name every tenant's relays: beyond loopback only to callers the apiserver
  // authorises, unless the node admin says otherwise
  const metricsAddress = c.metrics?.address ?? '127.0.0.1:9464';
  const metricsHost = metricsAddress.slice(0, metricsAddress.lastIndexOf(':'));
  const loopback = /^(127\.[0-9.]+|localhost|\[?::1\]?)$/.test(metricsHost);
  if ((c.metrics?.enabled ?? true) && !loopback && !c.metrics?.authorization && !c.metrics?.allowUnauthenticated) {
    throw new ConfigError('config', [
      { field: 'metrics.address', message: `${metricsAddress} is beyond loopback and would serve every relay's metrics to anyone: set metrics.authorization: true (needs the apiserver), or metrics.allowUnauthenticated: true on a trusted network` },
    ]);
  }
  // port control is root's power over the node (VFs, sockets anywhere): no unauthenticated
  // listener beyond loopback unless the node admin says so
  for (const k of ['portControl', 'stats', 'coreSched', 'config'] as const) {
    const a = c.control?.[k];
    if ((c.control?.enabled ?? true) && a && endpointExposure(a) === 'network' && !c.control?.allowRemote) {
      const fix = `use ipc://PATH (mode 0660, group control.group) or tcp://127.0.0.1:PORT, or set control.allowRemote: true (VIO4WD_ZMQ_ALLOW_REMOTE=y in a virtio-forwarder settings file) on a trusted network`;
      throw new ConfigError('config', [{ field: `control.${k}`, message: `${a} lets anyone who reaches the port ${k === 'stats' ? 'read every relay' : 'control the relays as root'}, without authentication: ${fix}` }]);
    }
  }
  if (c.metrics?.authorization && !(c.kubernetes?.enabled ?? false)) {
    throw new ConfigError('config', [{ field: 'metrics.authorization', message: 'needs the apiserver: set kubernetes.enabled: true (or --kubernetes)' }]);
  }

  return {
    nodeName: c.nodeName ?? process.env.NODE_NAME ?? hostname(),
    logLevel: c.log?.level ?? 'info',
    ...(c.pidFile ? { pidFile: c.pidFile } : {}),
    handover: {
      enabled: c.handover?.enabled ?? true,
      // beside the relays' checkpoint: the host directory both agents of a node mount
      socket: c.handover?.socket ?? join(c.kubernetes?.enabled ? (c.kubernetes.socketDir ?? DEFAULT_K8S_SOCKET_DIR) : (v.socketDir ?? DEFAULT_SOCKET_DIR), '.vio4wd-handover.sock'),
    },
    engine,
    vhostUser: {
      mode: v.mode ?? 'server',
      socketDir: v.socketDir ?? DEFAULT_SOCKET_DIR,
      socketNamePattern: v.socketNamePattern ?? 'virtio-forwarder%u.sock',
      precreateSockets: v.precreateSockets ?? 0,
      ...(v.owner !== undefined ? { owner: v.owner } : {}),
      ...(v.group !== undefined ? { group: v.group } : {}),
      ...(v.perm !== undefined ? { perm: v.perm } : {}),
    },
    control: {
      enabled: ctl.enabled ?? true,
      ipcDir,
      ...(ctl.group !== undefined ? { group: ctl.group } : {}),
      portControl: ctl.portControl ?? `ipc://${ipcDir}/port_control`,
      stats: ctl.stats ?? `ipc://${ipcDir}/stats`,
      coreSched: ctl.coreSched ?? `ipc://${ipcDir}/core_sched`,
      ...(ctl.config ? { config: ctl.config } : {}),
      dynamicSockets: ctl.dynamicSockets ?? true,
      ...(ctl.ovsdb ? { ovsdb: ctl.ovsdb } : {}),
    },
    metrics: {
      enabled: c.metrics?.enabled ?? true,
      address: metricsAddress,
      authorization: c.metrics?.authorization ?? false,
      ...(c.metrics?.tls ? { tls: { ...c.metrics.tls } } : {}),
      ...podResources(c.metrics?.podResourcesSocket, c.kubernetes?.enabled ?? false),
    },
    sriov: {
      sysRoot: c.sriov?.sysRoot ?? '/',
      bindVfio: [...(c.sriov?.bindVfio ?? [])],
      setMac: c.sriov?.setMac ?? true,
      standIns: Object.fromEntries(Object.entries((c.sriov?.standIns ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v])),
      vfProgrammer: c.sriov?.vfProgrammer ?? 'netlink',
      vfLimits: { allowedVlans: [...(c.sriov?.vfLimits?.allowedVlans ?? DEFAULT_ALLOWED_VLANS)], allowSpoofchkOff: c.sriov?.vfLimits?.allowSpoofchkOff ?? false },
    },
    cni: {
      enabled: c.cni?.enabled ?? c.kubernetes?.enabled ?? false,
      socket: c.cni?.socket ?? DEFAULT_AGENT_SOCKET,
      statePath: c.cni?.statePath ?? '/var/lib/vio4wd/attachments.json',
      ...allocationCheck(c),
    },
    cpuPins,
    coreScheduler: {
      enabled: c.coreScheduler?.enabled ?? false,
      intervalSeconds: c.coreScheduler?.intervalSeconds ?? CORE_SCHED_DEFAULTS.intervalSeconds,
      sensitivity: c.coreScheduler?.sensitivity ?? CORE_SCHED_DEFAULTS.sensitivity,
      globalNuma: c.coreScheduler?.globalNuma ?? CORE_SCHED_DEFAULTS.globalNuma,
      minLoad: c.coreScheduler?.minLoad ?? CORE_SCHED_DEFAULTS.minLoad,
      movePinned: c.coreScheduler?.movePinned ?? false,
      ...(c.coreScheduler?.logLevel ? { logLevel: c.coreScheduler.logLevel } : {}),
    },
    kubernetes: {
      enabled: c.kubernetes?.enabled ?? false,
      ...(c.kubernetes?.kubeconfig ? { kubeconfig: c.kubernetes.kubeconfig } : {}),
      socketDir: c.kubernetes?.socketDir ?? DEFAULT_K8S_SOCKET_DIR,
      allowVirtualDevices: [...(c.kubernetes?.allowVirtualDevices ?? [])],
      nosymfollowSocketRoot: c.kubernetes?.nosymfollowSocketRoot ?? false,
      leaseNamespace: c.kubernetes?.leaseNamespace ?? podNamespace(),
      leaseRenewSeconds: c.kubernetes?.leaseRenewSeconds ?? DEFAULT_LEASE_RENEW_SECONDS,
    },
    devicePlugin: {
      enabled: c.devicePlugin?.enabled ?? c.kubernetes?.enabled ?? false,
      pluginDir: c.devicePlugin?.pluginDir ?? '/var/lib/kubelet/device-plugins',
      devinfoDir: c.devicePlugin?.devinfoDir ?? '/var/run/k8s.cni.cncf.io/devinfo/dp',
      ...namespaceCheck(c),
    },
    dra: {
      enabled: c.dra?.enabled ?? false,
      ...((c.dra?.kubeconfig ?? c.kubernetes?.kubeconfig) ? { kubeconfig: (c.dra?.kubeconfig ?? c.kubernetes?.kubeconfig)! } : {}),
      registryDir: c.dra?.registryDir ?? '/var/lib/kubelet/plugins_registry',
      pluginDir: c.dra?.pluginDir ?? '/var/lib/kubelet/plugins/vio4wd.io',
      cdiDir: c.dra?.cdiDir ?? '/var/run/cdi',
      metadataDir: c.dra?.metadataDir ?? '/var/run/vio4wd/dra',
      statePath: c.dra?.statePath ?? '/var/lib/vio4wd/dra-claims.json',
      resyncSeconds: c.dra?.resyncSeconds ?? 10,
    },
    relays,
  };
}

function relayFromConfig(r: RelayConfigEntry, pins: Record<number, number[]>, mode: 'client' | 'server'): RelaySpec {
  const spec: RelaySpec = {
    name: r.name ?? (r.id !== undefined ? `relay-${r.id}` : ''),
    origin: 'config',
    vf: relayVfOf(r.vf),
    vhostUser: { mode: r.vhostUser?.mode ?? mode },
  };
  if (!spec.name) spec.name = `relay-${spec.vf.pciAddresses?.[0]?.replace(/[:]/g, '-') ?? 'x'}`;
  const vu = r.vhostUser;
  if (vu) {
    spec.vhostUser = {
      mode: vu.mode ?? mode,
      ...(vu.socketPath ? { socketPath: vu.socketPath } : {}),
      ...(vu.socketDir ? { socketDir: vu.socketDir } : {}),
      ...(vu.owner !== undefined ? { owner: vu.owner } : {}),
      ...(vu.group !== undefined ? { group: vu.group } : {}),
      ...(vu.perm !== undefined ? { perm: vu.perm } : {}),
    };
  }
  if (r.id !== undefined) spec.id = r.id;
  if (r.queues !== undefined) spec.queues = r.queues;
  if (r.guestQueues !== undefined) spec.guestQueues = r.guestQueues;
  if (r.mac !== undefined) spec.mac = r.mac;
  if (r.mtu !== undefined) spec.mtu = r.mtu;
  if (r.numaNode !== undefined) spec.numaNode = r.numaNode;
  if (r.ident !== undefined) spec.ident = r.ident;
  if (r.resourceName !== undefined) spec.resourceName = r.resourceName;
  const cpus = r.cpus ?? (r.id !== undefined ? pins[r.id] : undefined);
  if (cpus) spec.cpus = [...cpus];
  return spec;
}

/**
 * virtio-forwarder's default sockets: relay ids 0..count-1 that no static relay takes get a
 * relay without a VF, so that their sockets exist (and a guest may connect) before any ADD.
 */
function precreatedSockets(count: number, taken: Map<number, number>, pins: Record<number, number[]>, mode: 'client' | 'server', kubernetes: boolean): RelaySpec[] {
  if (count > 0 && kubernetes) {
    throw new ConfigError('config', [{ field: 'vhostUser.precreateSockets', message: 'is for the standalone agent: VirtioRelays make their own sockets; leave it out with kubernetes.enabled' }]);
  }
  return Array.from({ length: count }, (_, id) => id)
    .filter((id) => !taken.has(id))
    .map((id) => ({
      name: `relay-${id}`,
      id,
      origin: 'config' as const,
      vf: { none: true },
      vhostUser: { mode },
      // as a relay that port control ADDs: the guest's queue count is followed
      guestQueues: DROP_IN_GUEST_QUEUES,
      ...(pins[id] ? { cpus: [...pins[id]] } : {}),
    }));
}

/** cni.allocationCheck (default: with kubernetes.enabled) and the pod-resources socket it asks. */
function allocationCheck(c: AgentConfig): { allocationCheck: boolean; podResourcesSocket?: string } {
  const enabled = c.cni?.enabled ?? c.kubernetes?.enabled ?? false;
  const on = enabled && (c.cni?.allocationCheck ?? c.kubernetes?.enabled ?? false);
  if (!on) return { allocationCheck: false };
  const socket = c.cni?.podResourcesSocket ?? podResources(c.metrics?.podResourcesSocket, true).podResourcesSocket;
  if (!socket) {
    throw new ConfigError('config', [
      {
        field: 'cni.podResourcesSocket',
        message: "cni.allocationCheck needs kubelet's pod-resources socket, and metrics.podResourcesSocket is empty: give cni.podResourcesSocket (e.g. /var/lib/kubelet/pod-resources/kubelet.sock), or set cni.allocationCheck: false where no kubelet runs",
      },
    ]);
  }
  return { allocationCheck: true, podResourcesSocket: socket };
}

/** devicePlugin.namespaceCheck (default: with kubernetes.enabled) and the pod-resources socket it asks. */
function namespaceCheck(c: AgentConfig): { podResourcesSocket?: string } {
  const enabled = c.devicePlugin?.enabled ?? c.kubernetes?.enabled ?? false;
  if (!enabled || !(c.devicePlugin?.namespaceCheck ?? c.kubernetes?.enabled ?? false)) return {};
  const socket = c.devicePlugin?.podResourcesSocket ?? c.cni?.podResourcesSocket ?? podResources(c.metrics?.podResourcesSocket, true).podResourcesSocket;
  if (!socket) {
    throw new ConfigError('config', [
      {
        field: 'devicePlugin.podResourcesSocket',
        message:
          "devicePlugin.namespaceCheck needs kubelet's pod-resources socket, and metrics.podResourcesSocket is empty: give devicePlugin.podResourcesSocket (e.g. /var/lib/kubelet/pod-resources/kubelet.sock), or set devicePlugin.namespaceCheck: false where no kubelet runs (then a pod of any namespace may be given any relay of a pool)",
      },
    ]);
  }
  return { podResourcesSocket: socket };
}

/** The pod-resources socket: as configured ('' = none), else kubelet's default on a Kubernetes node. */
function podResources(configured: string | undefined, kubernetes: boolean): { podResourcesSocket?: string } {
  const socket = configured ?? (kubernetes ? '/var/lib/kubelet/pod-resources/kubelet.sock' : '');
  return socket ? { podResourcesSocket: socket } : {};
}
