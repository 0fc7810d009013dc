// The node's desired and observed relay state, as RelayManager keeps it. Other roles (ZeroMQ
// control, device plugin, Kubernetes reconciler, metrics) see relays only through these types.
import type { VfPool } from '../util/vf-pool.js';

import type { VfSelector } from '../util/vf-selector.js';
import type { Reason } from './reasons.js';

/** dra: made by the DRA driver for a claim on a free VF (src/dra), deleted when the claim is unprepared. */
export type RelayOrigin = 'config' | 'zmq' | 'kubernetes' | 'dra';

export interface RelayVf {
  /** One VF by PCI address; or several (a bond). */
  pciAddresses?: string[];
  selector?: VfSelector;
  /** DPDK devargs of a virtual device (VF stand-in). */
  devargs?: string;
  bondMode?: number;
  bondName?: string;
  /** What the relay may draw on (a Kubernetes relay's pool): checked before anything is probed. */
  pool?: VfPool;
  /** No VF yet: the socket is made up front (virtio-forwarder's default sockets) and the relay
   *  waits, as after port control REMOVE, for an ADD to give it one (replaceVf). */
  none?: boolean;
}

export interface RelayVhostUser {
  mode: 'client' | 'server';
  /** Directory for the socket; the file name comes from the relay. */
  socketDir?: string;
  /** Full socket path; wins over socketDir. */
  socketPath?: string;
  owner?: string | number;
  group?: string | number;
  /** Octal permission string, e.g. "0660". */
  perm?: string;
  /** The socket's directory is the relay's own: created (after the VF passed its checks) with
   *  this owner, group and mode, and never world-writable. */
  directory?: { uid: number; gid: number; mode: number };
}

/** One relay as the user (config file, ZeroMQ client, VirtioRelay CR) asked for it. */
export interface RelaySpec {
  /** Unique on the node and stable: the device plugin's device ID. [a-z0-9]([-a-z0-9.]*[a-z0-9])? */
  name: string;
  /** virtio-forwarder relay number; chosen by the manager when absent. */
  id?: number;
  origin: RelayOrigin;
  vf: RelayVf;
  vhostUser: RelayVhostUser;
  queues?: number;
  /** Queue pairs offered to the guest (default queues): it may enable up to this many, and each
   *  is served. virtio-forwarder's relays (port control, VIRTIOFWD_STATIC_VFS) offer 32. */
  guestQueues?: number;
  /** The MAC the VM uses; set on the VF through its PF when the VF is a real one. */
  mac?: string;
  mtu?: number;
  /** Device-plugin pool, "vio4wd.io/<pool>" (default vio4wd.io/vhostuser). */
  resourceName?: string;
  numaNode?: number;
  /** Worker CPUs: [both] or [vfToVm, vmToVf]. */
  cpus?: number[];
  /** External label (e.g. a Neutron port id or namespace/name of a CR). */
  ident?: string;
  /** Generation of the object this came from (CRs), echoed in status. */
  generation?: number;
}

export type RelayPhase = 'Pending' | 'Configuring' | 'Ready' | 'Failed' | 'Terminating';

export type ConditionType = 'VFAttached' | 'SocketReady' | 'GuestConnected' | 'Ready';

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  /** CamelCase word a user can search for, e.g. VFNotFound, SocketDirMissing (reasons.ts). */
  reason: Reason;
  message: string;
  lastTransitionTime: string;
}

export interface RelayStatus {
  name: string;
  id: number;
  origin: RelayOrigin;
  phase: RelayPhase;
  conditions: Condition[];
  /** Resolved VF PCI address(es) or devargs. */
  pciAddress?: string;
  socketPath: string;
  mode: 'client' | 'server';
  queues: number;
  mac?: string;
  mtu?: number;
  numaNode: number;
  resourceName: string;
  /** Healthy for the device plugin: VF attached, link up, socket ready, engine healthy. */
  healthy: boolean;
  observedGeneration?: number;
  /** Worker CPUs serving each direction. */
  cpus?: { vfToVm: number; vmToVf: number };
  ident?: string;
}

/** What other roles need from RelayManager; the manager emits 'change' on every status change. */
export interface RelayView {
  list(): RelayStatus[];
  get(name: string): RelayStatus | undefined;
  on(event: 'change', listener: (status: RelayStatus) => void): unknown;
  on(event: 'removed', listener: (name: string) => void): unknown;
  off(event: 'change', listener: (status: RelayStatus) => void): unknown;
  off(event: 'removed', listener: (name: string) => void): unknown;
}
