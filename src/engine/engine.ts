// The Engine: the typed facade over the native DPDK relay engine. One per process (DPDK's EAL
// starts once). Slow calls return Promises and run on the engine's control thread; stats(),
// relay(), workers() and memory() are synchronous and cheap. Events arrive as 'event'
// (EngineEvent) and, for convenience, under their type ('guest-connected', 'link', ...).
// With a logger, DPDK's own log lines (EAL, PMDs, vhost) go to it (component 'dpdk') instead of
// stderr. Like a listening server, a running engine keeps the process alive until stop().
import { EventEmitter } from 'node:events';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { allowedCpus, buildEalArgs } from './eal.js';
import { EngineError, fromNative } from './errors.js';
import { loadAddon, type NativeAddon, type NativeEvent } from './native.js';
import type {
  EngineEvent,
  EngineOptions,
  EngineSettings,
  GuestArrival,
  GuestDeparture,
  MemoryInfo,
  NativeHeapInfo,
  RelayConfig,
  RelayInfo,
  RelayStats,
  VfLoss,
  VfSource,
  WorkerInfo,
} from './types.js';
import { validateEngineOptions, validateRelayConfig, validateVfSource } from './validate.js';

/** Defaults of the sizing options (see native/src/pool.c and bench/README.md). */
export const ENGINE_DEFAULTS = { rxDescriptors: 256, txDescriptors: 256, poolQueuePairs: 256, idleSweepMicros: 100 } as const;

export interface EngineDeps {
  logger?: Logger;
  /** Where DPDK's own log lines go: 'logger' (default when a logger is given: structured, at the
   *  mapped level) or 'stderr' (DPDK's default). */
  dpdkLog?: 'logger' | 'stderr';
}

function toEvent(e: NativeEvent): EngineEvent | undefined {
  switch (e.type) {
    case 'guest-connected':
      return { type: e.type, relayId: e.relayId, arrival: (e.arrival ?? 'started') as GuestArrival };
    case 'guest-disconnected':
      return { type: e.type, relayId: e.relayId, departure: (e.departure ?? 'stopped') as GuestDeparture };
    case 'vf-removed':
      return { type: e.type, relayId: e.relayId, cause: (e.cause ?? 'unplugged') as VfLoss };
    case 'dirty-log':
      return { type: e.type, relayId: e.relayId, on: e.on === true };
    case 'vhost-connection':
      return { type: e.type, relayId: e.relayId, connected: e.connected === true };
    case 'vring-state':
      return { type: 'vring-state', relayId: e.relayId, queue: e.queue ?? 0, enabled: e.enabled === true };
    case 'link':
      return { type: 'link', relayId: e.relayId, up: e.up === true };
    default:
      return undefined;
  }
}

export class Engine extends EventEmitter {
  private stopping: Promise<void> | undefined;
  private stopped = false;

  private constructor(
    private readonly native: NativeAddon,
    readonly options: Readonly<EngineOptions>,
    /** The CPU of the EAL main lcore (the control thread). */
    readonly mainCpu: number,
    private readonly log: Logger,
    private readonly dpdkLog: Logger,
  ) {
    super();
  }

  /** Starts DPDK's EAL and the workers. Fails with EALREADY when an engine ran in this process. */
  static async start(opts: EngineOptions, deps: EngineDeps = {}): Promise<Engine> {
    validateEngineOptions(opts);
    const plan = buildEalArgs(opts, allowedCpus());
    const native = loadAddon();
    const log = (deps.logger ?? silentLogger()).child({ component: 'engine' });
    const logEvents = (deps.dpdkLog ?? (deps.logger ? 'logger' : 'stderr')) === 'logger';
    const engine = new Engine(native, { ...opts }, plan.mainCpu, log, (deps.logger ?? silentLogger()).child({ component: 'dpdk' }));
    const t0 = Date.now();
    try {
      await native.start(
        {
          ealArgs: plan.args,
          mergeableRxBuffers: opts.mergeableRxBuffers ?? true,
          tso: opts.tso ?? false,
          jumbo: opts.jumbo ?? false,
          rxDescriptors: opts.rxDescriptors ?? ENGINE_DEFAULTS.rxDescriptors,
          txDescriptors: opts.txDescriptors ?? ENGINE_DEFAULTS.txDescriptors,
          poolQueuePairs: opts.poolQueuePairs ?? ENGINE_DEFAULTS.poolQueuePairs,
          idleSweepMicros: opts.idleSweepMicros ?? ENGINE_DEFAULTS.idleSweepMicros,
          logEvents,
        },
        (e) => engine.dispatch(e),
      );
    } catch (err) {
      throw fromNative(err);
    }
    log.info({ workerCpus: opts.workerCpus, mainCpu: plan.mainCpu, ealArgs: plan.args, settings: engine.settings(), dpdk: engine.version().dpdk, ms: Date.now() - t0 }, 'engine started');
    return engine;
  }

  private dispatch(e: NativeEvent): void {
    if (e.type === 'log') {
      this.logDpdk(e.level ?? 7, e.message ?? '');
      return;
    }
    const ev = toEvent(e);
    if (!ev) return;
    this.emit('event', ev);
    this.emit(ev.type, ev);
  }

  /** DPDK's RTE_LOG_* levels: 1-4 emergency..error, 5 warning, 6 notice, 7 info, 8 debug. */
  private logDpdk(level: number, message: string): void {
    const msg = message.trimEnd();
    if (!msg) return;
    if (level <= 4) this.dpdkLog.error(msg);
    else if (level === 5) this.dpdkLog.warn(msg);
    else if (level <= 7) this.dpdkLog.info(msg);
    else this.dpdkLog.debug(msg);
  }

  private workerCpus(): number[] {
    return this.options.workerCpus;
  }

  private guard(): void {
    if (this.stopped || this.stopping) throw new EngineError('ENOTSTARTED', 'engine stopped');
  }

  /** Attaches the VF, opens the vhost-user socket and gives both directions to workers. */
  async addRelay(cfg: RelayConfig): Promise<RelayInfo> {
    this.guard();
    validateRelayConfig(cfg, this.workerCpus());
    const t0 = performance.now();
    try {
      const info = await this.native.addRelay(cfg);
      // ms: on the engine's control thread, queueing included (handover figures: bench/handover.ts)
      this.log.debug({ relay: cfg.id, port: info.portName, socket: info.socketPath, cpus: info.cpus, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'relay added');
      return info;
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Stops polling the relay, closes its socket and detaches its VF. ENOENT when unknown. */
  async removeRelay(id: number): Promise<void> {
    this.guard();
    if (!Number.isInteger(id)) throw new EngineError('EINVAL', `${JSON.stringify(id)} is not a relay id`, { field: 'id' });
    const t0 = performance.now();
    try {
      await this.native.removeRelay(id);
      this.log.debug({ relay: id, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'relay removed');
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Moves a relay's directions to other worker CPUs (a direction left out stays). */
  async setRelayCpus(id: number, cpus: { vfToVm?: number; vmToVf?: number }): Promise<RelayInfo> {
    this.guard();
    if (!Number.isInteger(id)) throw new EngineError('EINVAL', `${JSON.stringify(id)} is not a relay id`, { field: 'id' });
    const workers = this.workerCpus();
    for (const d of ['vfToVm', 'vmToVf'] as const) {
      const c = cpus?.[d];
      if (c !== undefined && (!Number.isInteger(c) || !workers.includes(c)))
        throw new EngineError('EINVAL', `CPU ${String(c)} runs no worker (worker CPUs: ${workers.join(',')})`, { field: `cpus.${d}` });
    }
    try {
      return await this.native.setRelayCpus(id, cpus?.vfToVm ?? -1, cpus?.vmToVf ?? -1);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Detaches a relay's VF and keeps its vhost-user side: the guest stays connected, its packets
   *  count as droppedNotConnected until attachVf(). Resolves with the relay's info. */
  async detachVf(id: number): Promise<RelayInfo> {
    this.guard();
    if (!Number.isInteger(id)) throw new EngineError('EINVAL', `${JSON.stringify(id)} is not a relay id`, { field: 'id' });
    try {
      const info = await this.native.detachVf(id);
      this.log.info({ relay: id }, 'VF detached, vhost-user side kept');
      return info;
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Creates now the mbuf pools that relays with `queuePairs` queue pairs in all on NUMA node
   *  `numaNode` will need (the first relay on a node otherwise pays a few hundred ms for it):
   *  an agent taking relays over from another does it first (docs/upgrade.md). */
  async preparePools(numaNode: number, queuePairs: number): Promise<void> {
    this.guard();
    if (!Number.isInteger(numaNode) || numaNode < 0) throw new EngineError('EINVAL', `numaNode: ${JSON.stringify(numaNode)} is not a NUMA node`, { field: 'numaNode' });
    if (!Number.isInteger(queuePairs) || queuePairs < 1) throw new EngineError('EINVAL', `queuePairs: ${JSON.stringify(queuePairs)} is not a positive integer`, { field: 'queuePairs' });
    try {
      await this.native.preparePools(numaNode, queuePairs);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Attaches a VF to a relay whose VF is detached (after a 'vf-removed' event or detachVf()),
   *  or replaces its VF; forwarding resumes at once. ENODEV while the VF is not there. */
  async attachVf(id: number, vf: VfSource): Promise<RelayInfo> {
    this.guard();
    if (!Number.isInteger(id)) throw new EngineError('EINVAL', `${JSON.stringify(id)} is not a relay id`, { field: 'id' });
    validateVfSource(vf);
    try {
      const info = await this.native.attachVf(id, vf);
      this.log.info({ relay: id, port: info.portName }, 'VF attached');
      return info;
    } catch (err) {
      throw fromNative(err);
    }
  }

  relay(id: number): RelayInfo | undefined {
    if (this.stopped) return undefined;
    return this.native.relay(id);
  }

  relays(): RelayInfo[] {
    if (this.stopped) return [];
    const out: RelayInfo[] = [];
    for (const id of this.native.relayIds()) {
      const r = this.native.relay(id);
      if (r) out.push(r);
    }
    return out;
  }

  /** Counters of a relay, summed over queues and per queue. ENOENT when unknown. */
  stats(id: number): RelayStats {
    if (this.stopped) throw new EngineError('ENOTSTARTED', 'engine stopped');
    try {
      return this.native.stats(id);
    } catch (err) {
      throw fromNative(err);
    }
  }

  workers(): WorkerInfo[] {
    return this.stopped ? [] : this.native.workers();
  }

  memory(): MemoryInfo {
    if (this.stopped) throw new EngineError('ENOTSTARTED', 'engine stopped');
    try {
      return this.native.memory();
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** The settings the engine runs with, as the engine itself reports them. */
  settings(): EngineSettings {
    if (this.stopped) throw new EngineError('ENOTSTARTED', 'engine stopped');
    try {
      return this.native.settings();
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** The process's C heap (all malloc arenas): what native code holds outside the JS heap. */
  static nativeHeap(): NativeHeapInfo {
    return loadAddon().nativeHeap();
  }

  /** Returns the free memory of every malloc arena to the system (glibc's malloc_trim). */
  static trimNativeHeap(): boolean {
    return loadAddon().trimNativeHeap();
  }

  /** Capacity: relay ids, queue pairs per relay, and ethdev ports of the DPDK build (each
   *  relay's VF takes one; Debian's DPDK 22.11 has 32, see scripts/bootstrap.d/35-dpdk.sh). */
  get limits(): { relays: number; queues: number; ports: number } {
    return { relays: this.native.maxRelays, queues: this.native.maxQueues, ports: this.native.maxPorts };
  }

  /** TSC ticks per second: WorkerInfo.busyCycles / tscHz() = seconds. */
  tscHz(): number {
    return this.native.tscHz();
  }

  version(): { dpdk: string } {
    return { dpdk: this.native.version().replace(/^DPDK\s+/, '') };
  }

  /** Removes every relay, stops the workers and releases DPDK's memory. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = this.native.stop().then(
        () => {
          this.stopped = true;
          this.log.info('engine stopped');
        },
        (err: unknown) => {
          throw fromNative(err);
        },
      );
    }
    return this.stopping;
  }
}
