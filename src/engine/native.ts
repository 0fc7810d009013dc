// Loads the native addon (native/build/vio4wd.node) on first use and types what it exports.
// Importing the facade does not need the addon; starting an engine does.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EngineError } from './errors.js';
import type { EngineSettings, MemoryInfo, NativeHeapInfo, RelayConfig, RelayInfo, RelayStats, VfSource, WorkerInfo } from './types.js';

/** An event as the addon posts it (EngineEvent plus fields of other types left out). */
export interface NativeEvent {
  type: string;
  relayId: number;
  queue?: number;
  enabled?: boolean;
  up?: boolean;
  arrival?: string;
  departure?: string;
  cause?: string;
  on?: boolean;
  connected?: boolean;
  /** 'log': DPDK's RTE_LOG_* level (1 emergency .. 8 debug) and the line */
  level?: number;
  message?: string;
}

/** What start() takes: the settings the engine reports back (EngineSettings), and its EAL. */
export interface NativeStartOptions extends EngineSettings {
  ealArgs: string[];
  /** DPDK's log lines as 'log' events instead of stderr. */
  logEvents?: boolean;
}

export interface NativeLimits {
  maxRelays: number;
  maxQueues: number;
  maxWorkers: number;
  maxBondMembers: number;
  /** sun_path bytes with the NUL */
  pathMax: number;
  /** devargs bytes with the NUL */
  devargsMax: number;
  mtuMin: number;
  mtuMax: number;
}

export interface NativeAddon {
  start(opts: NativeStartOptions, onEvent: (e: NativeEvent) => void): Promise<void>;
  addRelay(cfg: RelayConfig): Promise<RelayInfo>;
  removeRelay(id: number): Promise<void>;
  /** -1 keeps a direction on its worker. */
  setRelayCpus(id: number, vfToVm: number, vmToVf: number): Promise<RelayInfo>;
  detachVf(id: number): Promise<RelayInfo>;
  attachVf(id: number, vf: VfSource): Promise<RelayInfo>;
  preparePools(numaNode: number, queuePairs: number): Promise<void>;
  stop(): Promise<void>;
  relay(id: number): RelayInfo | undefined;
  relayIds(): number[];
  stats(id: number): RelayStats;
  workers(): WorkerInfo[];
  memory(): MemoryInfo;
  settings(): EngineSettings;
  nativeHeap(): NativeHeapInfo;
  /** malloc_trim(0): true when memory went back to the system */
  trimNativeHeap(): boolean;
  version(): string;
  /** TSC ticks per second (the unit of WorkerInfo's cycle counts). */
  tscHz(): number;
  readonly maxRelays: number;
  readonly maxQueues: number;
  /** The limits of native/src/vio.h (VIO_*), mirrored in src/util/limits.ts. */
  readonly limits: NativeLimits;
  /** ethdev ports of the DPDK build (RTE_MAX_ETHPORTS): each relay's VF takes one. */
  readonly maxPorts: number;
}

/** native/build/vio4wd.node, from src/engine/ and from dist/engine/ alike; VIO4WD_ADDON names
 *  another build (e.g. one against a DPDK with more ethdev ports, see bench/README.md). */
export const ADDON_PATH = process.env.VIO4WD_ADDON || fileURLToPath(new URL('../../native/build/vio4wd.node', import.meta.url));

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH))
    throw new EngineError('EIO', `native engine not built (${ADDON_PATH} is missing): run scripts/bootstrap, or make -C native`);
  const require = createRequire(import.meta.url);
  addon = require(ADDON_PATH) as NativeAddon;
  return addon;
}
