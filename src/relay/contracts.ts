// What RelayManager needs from the rest of the agent, and what it is configured with: the engine
// (src/engine's Engine implements RelayEngine), the VF resolver (the agent's, over src/sriov),
// defaults and options. Kept apart from the implementation so that a reader sees the contract.
import type { Logger } from '../util/log.js';
import type { EngineEvent, RelayConfig, RelayInfo, VfSource } from '../engine/types.js';
import type { RelayVf } from './types.js';

/** The part of the engine facade RelayManager drives (src/engine/Engine implements it). */
export interface RelayEngine {
  addRelay(cfg: RelayConfig): Promise<RelayInfo>;
  removeRelay(id: number): Promise<void>;
  setRelayCpus(id: number, cpus: { vfToVm: number; vmToVf: number }): Promise<unknown>;
  /** Attaches a VF to a relay that lost its own, keeping the vhost-user side (the guest stays
   *  connected while the VF is away). */
  attachVf(id: number, vf: VfSource): Promise<RelayInfo>;
  /** Takes a relay's VF away, keeping the vhost-user side and the guest. */
  detachVf(id: number): Promise<RelayInfo>;
  relay(id: number): RelayInfo | undefined;
  on(event: 'event', listener: (e: EngineEvent) => void): unknown;
  off(event: 'event', listener: (e: EngineEvent) => void): unknown;
}

export interface ResolvedVf {
  vf: VfSource;
  /** PCI address(es) or devargs, as status shows them. */
  display: string;
  numaNode?: number;
}

/** Turns a relay's VF (address, selector or devargs) into what the engine attaches, and prepares
 *  real VFs (driver binding, MAC). src/sriov provides the host implementation. */
export interface VfResolver {
  resolve(relayName: string, vf: RelayVf, opts: { mac?: string }): Promise<ResolvedVf>;
  release(relayName: string): void;
}

export interface RelayDefaults {
  /** Directory for sockets of relays that give no socketPath. */
  socketDir: string;
  /** File name with exactly one %u for the relay id (virtio-forwarder's pattern). */
  socketNamePattern: string;
  mode: 'client' | 'server';
  queues: number;
  resourceName: string;
  owner?: number;
  group?: number;
  perm?: number;
  /** Each relay without a socketPath gets a directory of its own, <socketDir>/<relay name>/,
   *  (0750, or 2770 with a group) instead of sharing socketDir: for an agent whose device plugin
   *  mounts a relay's socket directory into a pod. */
  relayDirs?: boolean;
  mergeableRxBuffers?: boolean;
  tso?: boolean;
  /** VF MTU of relays that give none (virtio-forwarder's VIRTIOFWD_JUMBO: 9000). */
  mtu?: number;
}

export interface RelayManagerOptions {
  engine: RelayEngine;
  logger: Logger;
  defaults?: Partial<RelayDefaults>;
  resolver?: VfResolver;
  /** Backoff for retries after a failed attach. */
  retry?: { initialMs: number; maxMs: number };
  /** Backoff for re-attaching a lost VF (default: retry's, at most 5 s apart). */
  vfRetry?: { initialMs: number; maxMs: number };
  /** Largest relay id + 1. */
  maxRelays?: number;
}

export const DEFAULT_RELAY_DEFAULTS: RelayDefaults = {
  socketDir: '/tmp/virtio-forwarder',
  socketNamePattern: 'virtio-forwarder%u.sock',
  mode: 'server',
  queues: 1,
  resourceName: 'vio4wd.io/vhostuser',
};
