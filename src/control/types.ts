// What the ZeroMQ control server needs from the rest of the agent (the ControlBackend the
// agent's wiring implements on top of RelayManager and the engine), and the server's options.
// Nothing here knows about ZeroMQ, protobuf, Kubernetes or DPDK.
import type { Logger } from '../util/log.js';

/** PCI addresses are canonical lower-case DDDD:BB:SS.F, as in sysfs ("0000:05:08.1"). */
export type PciAddr = string;

/**
 * How a port-control operation went. 'unchanged': the desired state was already in place
 * (same VF(s) on the same relay / same socket pairing). The server turns 'unchanged' into OK for
 * conditional requests and into EEXIST (add) / ENOENT (remove) for unconditional ones, so a
 * backend never needs to look at `conditional` itself. Failures are thrown (see ControlBackend).
 */
export type PortChange = 'changed' | 'unchanged';

export interface AddVfRequest {
  virtioId: number;
  /** One VF, or two or more to bond. */
  pciAddrs: PciAddr[];
  /** Bond device name; absent for one VF (and for a bond: the backend picks a default). */
  bondName?: string;
  /** Bond mode 0..6; set only for bonds (default 1, active-backup). */
  bondMode?: number;
}

export interface RemoveVfRequest {
  virtioId: number;
  /** The VF to remove; for a bond its members (may be empty when bondName is given). */
  pciAddrs: PciAddr[];
  bondName?: string;
}

/** Dynamic sockets (VIRTIOFWD_DYNAMIC_SOCKETS): a vhost-user socket paired with VF(s). */
export interface AddSocketRequest {
  vhostPath: string;
  pciAddrs: PciAddr[];
  bondName?: string;
  bondMode?: number;
}

export interface RemoveSocketRequest {
  vhostPath: string;
  pciAddrs: PciAddr[];
  bondName?: string;
}

/** Counters of one direction; field names match the engine's DirectionCounters. */
export interface Counters {
  rxPackets?: number;
  rxBytes?: number;
  txPackets?: number;
  txBytes?: number;
  droppedQueueFullPackets?: number;
  droppedQueueFullBytes?: number;
  droppedNotConnectedPackets?: number;
  droppedNotConnectedBytes?: number;
}

export interface DirectionSnapshot {
  /** vfToVm: a VF is attached and running; vmToVf: a guest is connected. */
  active: boolean;
  /** virtio-forwarder's state word: DPDK_UNINIT, DPDK_ADDED, DPDK_READY (VF side), VIRTIO_UNINIT, VIRTIO_READY (guest side). */
  state: string;
  /** Cumulative counters; absent when the direction has never run. */
  counters?: Counters;
  /** Worker CPU polling this direction. */
  cpu?: number;
}

/** One relay as the stats endpoint reports it, sampled at one instant. */
export interface RelaySnapshot {
  id: number;
  /** Fully active: VF attached and guest connected. */
  active: boolean;
  /** External label (Neutron port id, namespace/name of a VirtioRelay). */
  ident?: string;
  socketPath: string;
  /** PCI address(es) of the VF, comma separated for a bond (or DPDK devargs for a stand-in). */
  pciAddress?: string;
  /** NUMA node of the relay's memory. */
  numaNode: number;
  vfToVm: DirectionSnapshot;
  vmToVf: DirectionSnapshot;
  /** The VF's own counters from its driver (vio4wd extension); absent while no VF is attached. */
  vf?: VfPortSnapshot;
}

/** A VF's driver counters (field names match the engine's VfPortCounters). */
export interface VfPortSnapshot {
  rxPackets?: number;
  txPackets?: number;
  rxBytes?: number;
  txBytes?: number;
  rxMissed?: number;
  rxErrors?: number;
  txErrors?: number;
  rxNoMbuf?: number;
}

/** A poll-mode worker's load counters (vio4wd extension), cumulative since the engine started. */
export interface WorkerSnapshot {
  cpu: number;
  /** Relay directions it polls. */
  directions: number;
  busyCycles: number;
  idleCycles: number;
  packets: number;
  dropped: number;
}

/** Worker CPUs of one relay (ConfigResponse/CoreSchedRequest RelayCPU). */
export interface RelayCpu {
  relay: number;
  vfToVmCpu: number;
  vmToVfCpu: number;
}

/**
 * The agent as the control server sees it. Every method may be sync or async. Failures are
 * thrown; the reply carries an errno chosen from the error's `code` (a VioError code such as
 * EINVAL, EEXIST, ENOENT, ENODEV, EBUSY, ENOMEM, or any errno name), else its numeric `errno`,
 * else EIO. The error message reaches the client in error_code_source, so make it say the fix.
 */
export interface ControlBackend {
  addVf(req: AddVfRequest): PortChange | Promise<PortChange>;
  removeVf(req: RemoveVfRequest): PortChange | Promise<PortChange>;
  addSocket(req: AddSocketRequest): PortChange | Promise<PortChange>;
  removeSocket(req: RemoveSocketRequest): PortChange | Promise<PortChange>;
  /** PCI address(es) of the VF relayed to the socket at vhostPath; undefined when none is. */
  queryPci(vhostPath: string): PciAddr | undefined | Promise<PciAddr | undefined>;
  /**
   * Relays that exist, in any order: those with the given ids (unknown ids left out), or all of
   * them when ids is undefined. Called twice per stats request when rates are asked for.
   */
  relayStates(ids?: readonly number[]): RelaySnapshot[] | Promise<RelaySnapshot[]>;
  /** Worker CPUs of every relay that has both directions placed. */
  relayCpuMap(): RelayCpu[] | Promise<RelayCpu[]>;
  /** Move relay directions to other worker CPUs (core scheduler UPDATE). */
  updateCpuMap(map: RelayCpu[]): void | Promise<void>;
  /** CPUs the EAL runs workers on (core scheduler GET_EAL_CORES). */
  ealCores(): number[] | Promise<number[]>;
  /** The workers' load counters, for stats requests with vio4wd_extended (optional: a backend
   *  without them reports no workers). */
  workers?(): WorkerSnapshot[] | Promise<WorkerSnapshot[]>;
}

export type EndpointName = 'portControl' | 'stats' | 'coreSched' | 'config';

export const ENDPOINT_NAMES: readonly EndpointName[] = ['portControl', 'stats', 'coreSched', 'config'];

/** ZeroMQ addresses (ipc://PATH, tcp://HOST:PORT); an unset or empty one is not served. */
export type ControlEndpoints = Partial<Record<EndpointName, string>>;

/** virtio-forwarder's directory for its IPC endpoints. */
export const DEFAULT_IPC_DIR = '/var/run/virtio-forwarder';

/** File names of the endpoints inside an IPC directory (virtio-forwarder's names). */
export const IPC_FILE_NAMES: Record<EndpointName, string> = {
  portControl: 'port_control',
  stats: 'stats',
  coreSched: 'core_sched',
  config: 'config',
};

/** ipc:// addresses of the endpoints in dir. config is left out unless withConfig. */
export function endpointsInDir(dir: string, withConfig = false): ControlEndpoints {
  const d = dir.replace(/\/+$/, '') || '/';
  const out: ControlEndpoints = {};
  for (const name of ENDPOINT_NAMES) {
    if (name === 'config' && !withConfig) continue;
    out[name] = `ipc://${d === '/' ? '' : d}/${IPC_FILE_NAMES[name]}`;
  }
  return out;
}

/** virtio-forwarder's defaults: port control, stats and core scheduling; config unset. */
export const DEFAULT_ENDPOINTS: ControlEndpoints = endpointsInDir(DEFAULT_IPC_DIR);

export interface ControlServerOptions {
  backend: ControlBackend;
  logger?: Logger;
  /** Default DEFAULT_ENDPOINTS. Give an empty string to leave an endpoint out. */
  endpoints?: ControlEndpoints;
  /**
   * Group (name or gid) allowed to use the IPC endpoints: it owns the IPC directory (mode 0750)
   * and the socket files (mode 0660). Default: the agent's own group (root).
   */
  ipcGroup?: string | number;
  /** Relay numbers are 0 <= id < maxRelays (default 1024, the engine's MAX_RELAYS). */
  maxRelays?: number;
  /** Bond members per request (default 8, as virtio-forwarder's MAX_NUM_BOND_SLAVES). */
  maxBondMembers?: number;
  /** Longest StatsRequest.delay accepted, ms (default 10000); longer ones get EBADR. */
  maxStatsDelayMs?: number;
  /** A backend call that takes longer is answered with ETIMEDOUT (default 30000 ms). */
  requestTimeoutMs?: number;
  /** Frames above this are dropped by ZeroMQ itself, with no reply (default 4 MiB). */
  maxMessageBytes?: number;
}
