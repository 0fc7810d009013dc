// The node agent's wiring: engine, relay manager, VF resolver, ZeroMQ control, metrics and,
// in a cluster, the VirtioRelay reconciler and the kubelet device plugin. Roles meet only here.
import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../util/log.js';
import { VERSION } from '../util/version.js';
import { errorMessage } from '../util/errors.js';
import { Engine } from '../engine/index.js';
import { startEngine } from './engine-start.js';
import type { EngineEvent } from '../engine/types.js';
import { FreezableView, Reason, RelayManager, viewWithout, type RelayStatus } from '../relay/index.js';
import type { ControlServer } from '../control/index.js';
import type { AgentMetrics, HttpServerHandle } from '../metrics/index.js';
import type { DevicePluginManager } from '../deviceplugin/index.js';
import type { NodeReconciler } from './node/reconciler.js';
import type { AttachServer, AttachmentService } from '../cni/index.js';
import type { ResolvedConfig } from './config/load.js';
import { HostVfResolver } from './vf-resolver.js';
import { AgentControlBackend } from './control-backend.js';
import { applyConfigRelays, resolveOwner } from './owners.js';
import { startOvsdbControl, type OvsdbMonitor } from './ovsdb.js';
import { bindConfiguredVfs, nodeInventory } from './host.js';
import { startAttachments } from './attachments.js';
import { holdersAt } from './pod-resources.js';
import { metricsSources } from './metrics-sources.js';
import { checkpointPathFor, restoreCheckpoint, type CheckpointEntry } from './node/checkpoint.js';
import { prepareSocketRoot } from '../relay/socketdir.js';
import type { DraHandle } from './dra.js';
import { startCoreScheduler } from './core-sched.js';
import type { CoreScheduler } from '../sched/index.js';
import { HandoverClient, otherFilePrefix, type HandoverServer } from './handover.js';
import { preloadControlPlane, preparePools, serveHandover, takeOver } from './upgrade.js';

/** The VF MTU virtio-forwarder sets when jumbo frames are on (its JUMBO_IP_MTU). */
export const JUMBO_MTU = 9000;

/**
 * At start, the relays of the config and of the checkpoint get this long to attach before the
 * rest of the agent (Kubernetes client, gRPC, ZeroMQ, metrics) loads: loading those modules
 * holds the event loop for a second or more, which would delay every relay still attaching.
 */
export const DATA_PATH_FIRST_MS = 5000;

/** Delay from a relay removal to giving malloc's free memory back (see trackMigrations). */
export const TRIM_AFTER_REMOVAL_MS = 2000;

export interface AgentOptions {
  logger: Logger;
}

export class Agent {
  readonly log: Logger;
  engine: Engine | undefined;
  relays: RelayManager | undefined;
  private control: ControlServer | undefined;
  private ovsdb: OvsdbMonitor | undefined;
  coreScheduler: CoreScheduler | undefined;
  private metricsServer: HttpServerHandle | undefined;
  metrics: AgentMetrics | undefined;
  private devicePlugins: DevicePluginManager | undefined;
  private reconciler: NodeReconciler | undefined;
  private resolver: HostVfResolver | undefined;
  private attachServer: AttachServer | undefined;
  attachments: AttachmentService | undefined;
  dra: DraHandle | undefined;
  private ready = false;
  private trimTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  /** run() while it is in progress: stop() lets it reach a safe point first */
  private running: Promise<void> | undefined;
  private requestStop: () => void = () => undefined;
  private handover: HandoverServer | undefined;
  private holds: { pluginView?: FreezableView; backend?: AgentControlBackend } = {}; // still in a handover
  /** the relays were handed to a new agent: this one only waits to be stopped */
  drained = false;
  /** resolves when stop() is called: start-up waits that could last (the apiserver) give up */
  private readonly stopRequested = new Promise<void>((resolve) => (this.requestStop = resolve));
  private readonly onEngineEvent = (e: EngineEvent): void => {
    this.log.debug({ event: e }, 'engine event');
  };

  private constructor(
    readonly config: ResolvedConfig,
    opts: AgentOptions,
  ) {
    this.log = opts.logger.child({ component: 'agent', node: config.nodeName });
  }

  /** Starts everything the configuration asks for; on failure, stops what had started. */
  static async start(config: ResolvedConfig, opts: AgentOptions): Promise<Agent> {
    const { agent, started } = Agent.launch(config, opts);
    await started;
    return agent;
  }

  /**
   * Starts the agent and hands it out at once, so that a signal during start-up (e.g. while the
   * apiserver is unreachable) can stop() it: `started` then rejects, after everything that had
   * started is cleaned up. On a failed start, too, what had started is stopped.
   */
  static launch(config: ResolvedConfig, opts: AgentOptions): { agent: Agent; started: Promise<void> } {
    const agent = new Agent(config, opts);
    agent.running = agent.run();
    const started = agent.running.then(
      () => {
        if (agent.stopping) throw new Error('agent stopped during start-up');
      },
      async (err: unknown) => {
        await agent.stop().catch(() => undefined);
        throw err;
      },
    );
    return { agent, started };
  }

  private async run(): Promise<void> {
    const c = this.config;
    const log = this.log;
    // processStart: when this process began (restart figures: bench/restart.ts)
    log.info(
      { version: VERSION, processStart: new Date(performance.timeOrigin).toISOString(), config: { engine: c.engine, relays: c.relays.length, kubernetes: c.kubernetes.enabled } },
      'vio4wd agent starting',
    );
    if (c.pidFile) {
      await mkdir(dirname(c.pidFile), { recursive: true });
      await writeFile(c.pidFile, `${process.pid}\n`);
    }
    await bindConfiguredVfs(c.sriov.bindVfio, c.sriov.sysRoot, log);
    // an agent that runs on this node already (an upgrade: docs/upgrade.md) hands its relays over
    const from = c.handover.enabled
      ? await HandoverClient.connect(c.handover.socket).catch((err: unknown) => {
          log.warn({ err: errorMessage(err), socket: c.handover.socket }, 'handover: the running agent refused; starting on the checkpoint');
          return undefined;
        })
      : undefined;
    // two DPDK primaries on one node: hugepage files and runtime directory under distinct prefixes
    const engineOptions = from ? { ...c.engine, filePrefix: otherFilePrefix(from.hello.filePrefix) } : c.engine;
    if (from) log.info({ from: from.hello.pid, relays: from.hello.relays.length, filePrefix: engineOptions.filePrefix }, 'handover: an agent runs on this node; taking its relays over once this one is up');

    // The data path first: engine, then the relays of the config and of the checkpoint, before
    // anything they do not need loads (the Kubernetes client alone holds the event loop ~0.8 s).
    this.engine = await startEngine(engineOptions, { logger: log });
    this.engine.on('event', this.onEngineEvent);
    const engine = this.engine;

    const v = c.vhostUser;
    this.resolver = new HostVfResolver({ sysRoot: c.sriov.sysRoot, setMac: c.sriov.setMac, logger: log, standIns: c.sriov.standIns });
    this.relays = new RelayManager({
      engine,
      logger: log,
      resolver: this.resolver,
      defaults: {
        socketDir: v.socketDir,
        socketNamePattern: v.socketNamePattern,
        mode: v.mode,
        // the device plugin and the DRA driver mount a relay's socket directory into a pod: one per relay
        relayDirs: c.devicePlugin.enabled || c.dra.enabled,
        ...(v.owner !== undefined ? { owner: await resolveOwner(v.owner, 'user', 'vhostUser.owner') } : {}),
        ...(v.group !== undefined ? { group: await resolveOwner(v.group, 'group', 'vhostUser.group') } : {}),
        ...(v.perm !== undefined ? { perm: parseInt(v.perm, 8) } : {}),
        ...(c.engine.mergeableRxBuffers !== undefined ? { mergeableRxBuffers: c.engine.mergeableRxBuffers } : {}),
        ...(c.engine.tso !== undefined ? { tso: c.engine.tso } : {}),
        // virtio-forwarder's jumbo switch also raises the VF MTU to 9000
        ...(c.engine.jumbo ? { mtu: JUMBO_MTU } : {}),
      },
    });
    const relays = this.relays;
    this.trackMigrations(relays);

    // the relays of the old agent (an upgrade), then those of the config and of this agent's
    // previous life (the VirtioRelays' checkpoint), before the apiserver has answered
    let restored: CheckpointEntry[] | undefined;
    if (c.kubernetes.enabled) await prepareSocketRoot(c.kubernetes.socketDir);
    if (from) {
      // initialise fully first (what loads later would hold the event loop mid-handover)
      await preloadControlPlane(c.kubernetes.enabled);
      await preparePools(engine, from.hello.relays, log);
      const taken = await takeOver(from, relays, log);
      restored = taken.flatMap((r) => (r.key ? [{ key: r.key, spec: r.spec }] : []));
    }
    await applyConfigRelays(c.relays, relays, log);
    if (!from && c.kubernetes.enabled) restored = await restoreCheckpoint(relays, checkpointPathFor(c.kubernetes.socketDir), c.nodeName, log);
    const attaching = relays.list().length;
    if (attaching) {
      const t0 = Date.now();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([relays.settled(), new Promise<void>((r) => (timer = setTimeout(r, DATA_PATH_FIRST_MS))), this.stopRequested]);
      clearTimeout(timer);
      if (this.stopping) return;
      log.info({ relays: attaching, attached: relays.list().filter((r) => r.conditions.some((x) => x.type === 'VFAttached' && x.status === 'True')).length, ms: Date.now() - t0 }, 'data path up; starting the control plane');
    }

    const { AgentMetrics, startMetricsServer } = await import('../metrics/index.js');

    const sources = await metricsSources(c, engine, relays, { up: () => !this.stopping && this.engine !== undefined, ready: () => this.ready }, log);
    this.metrics = new AgentMetrics(sources);
    if (c.metrics.enabled) {
      const authorize = c.metrics.authorization
        ? (await import('./metrics-auth.js')).kubeMetricsAuthorizer({ ...(c.kubernetes.kubeconfig ? { kubeconfig: c.kubernetes.kubeconfig } : {}), logger: log })
        : undefined;
      this.metricsServer = await startMetricsServer(this.metrics, sources, c.metrics.address, log, {
        ...(authorize ? { authorize } : {}),
        ...(c.metrics.tls ? { tls: c.metrics.tls } : {}),
      });
    }

    const backend = (this.holds.backend = new AgentControlBackend({
      relays,
      engine: { stats: (id) => (engine.relay(id) ? engine.stats(id) : undefined), workers: () => engine.workers() },
      mode: v.mode,
      dynamicSockets: c.control.dynamicSockets,
      cpuPins: c.cpuPins,
    }));
    if (c.control.ovsdb) this.ovsdb = startOvsdbControl(c.control.ovsdb, c.sriov.sysRoot, backend, log);
    if (c.control.enabled) {
      const { ControlServer } = await import('../control/index.js');
      this.control = new ControlServer({
        backend,
        logger: log,
        endpoints: {
          portControl: c.control.portControl,
          stats: c.control.stats,
          coreSched: c.control.coreSched,
          config: c.control.config ?? '',
        },
        ...(c.control.group !== undefined ? { ipcGroup: c.control.group } : {}),
      });
      await this.control.start();
    }

    if (c.coreScheduler.enabled) {
      this.coreScheduler = startCoreScheduler(c.coreScheduler, { engine, relays, metrics: this.metrics, logger: log, external: backend.placedByUpdate });
    }

    let reconcilerStarted: Promise<void> | undefined;
    if (c.kubernetes.enabled) {
      const [{ NodeReconciler }, { kubeClients }, { workQueueObserver }] = await Promise.all([
        import('./node/reconciler.js'),
        import('../kube/index.js'),
        import('../kube/workqueue-metrics.js'),
      ]);
      const clients = kubeClients(c.kubernetes.kubeconfig);
      this.reconciler = new NodeReconciler({
        clients,
        nodeName: c.nodeName,
        relays,
        logger: log,
        socketDir: c.kubernetes.socketDir,
        allowVirtualDevices: c.kubernetes.allowVirtualDevices,
        nosymfollowSocketRoot: c.kubernetes.nosymfollowSocketRoot,
        nodeStatus: () => this.nodeInventory(),
        ...(c.devicePlugin.enabled ? { devicePlugins: () => this.devicePlugins?.pools().map((p) => ({ resourceName: p.resourceName, registered: p.registered })) ?? [] } : {}),
        leaseNamespace: c.kubernetes.leaseNamespace,
        leaseRenewSeconds: c.kubernetes.leaseRenewSeconds,
        queueObserver: workQueueObserver(this.metrics.registry, 'node'),
        ...(restored ? { restored } : {}),
      });
      // restores the relays of the checkpoint at once, then waits for the apiserver's first
      // list: meanwhile the device plugin below already offers the restored relays to kubelet
      reconcilerStarted = this.reconciler.start();
      reconcilerStarted.catch(() => undefined);
    }
    if (c.devicePlugin.enabled) {
      const { DevicePluginManager } = await import('../deviceplugin/index.js');
      this.devicePlugins = new DevicePluginManager({
        // the relays the DRA driver made for claims are the claims' pods', not kubelet's to allocate
        view: (this.holds.pluginView = new FreezableView(viewWithout(relays, 'dra'))),
        pluginDir: c.devicePlugin.pluginDir,
        deviceInfoDir: c.devicePlugin.devinfoDir,
        logger: log,
        ...(c.devicePlugin.podResourcesSocket ? { holders: holdersAt(c.devicePlugin.podResourcesSocket) } : {}),
      });
      await this.devicePlugins.start();
    }
    // the attachment service programs VFs for vio4wd-cni and the DRA driver alike
    if (c.cni.enabled || c.dra.enabled) {
      const { service, server } = await startAttachments(c, relays, log);
      this.attachments = service;
      this.attachServer = server;
    }
    if (c.dra.enabled && this.attachments) {
      const { startDra } = await import('./dra.js');
      this.dra = await startDra(c, relays, this.attachments, log);
    }
    // the apiserver may not answer for a long time: a stop meanwhile ends the start-up here
    await Promise.race([Promise.all([reconcilerStarted, relays.settled()]), this.stopRequested]);
    if (this.stopping) return;
    if (c.handover.enabled) await this.serveHandover(c.handover.socket);
    this.ready = true;
    const all = relays.list();
    log.info(
      { relays: all.length, ready: all.filter((r) => r.phase === 'Ready').length, failed: all.filter((r) => r.phase === 'Failed').length, metrics: this.metricsServer?.address },
      'vio4wd agent running',
    );
  }

  /** Serves the next agent's handover (an upgrade): see handover.ts and upgrade.ts. */
  private async serveHandover(path: string): Promise<void> {
    this.handover = await serveHandover(path, {
      filePrefix: this.engine!.options.filePrefix ?? 'rte',
      relays: this.relays!,
      reconciler: () => this.reconciler,
      holds: () => [this.holds.pluginView, this.holds.backend, this.attachments],
      drain: async () => {
        this.drained = true;
        this.ready = false;
        await this.stopControlPlane(true, true);
      },
    }, this.log);
  }

  /** Counts live migrations: a guest leaving with dirty-page logging on, and arriving after. */
  private trackMigrations(relays: RelayManager): void {
    const guest = new Map<string, boolean>();
    relays.on('change', (s: RelayStatus) => {
      const c = s.conditions.find((x) => x.type === 'GuestConnected');
      const now = c?.status === 'True';
      const was = guest.get(s.name) ?? false;
      guest.set(s.name, now);
      if (was !== now && c?.reason === Reason.MigratedIn) this.metrics?.countMigration(s.name, 'in');
      if (was !== now && c?.reason === Reason.MigratingOut) this.metrics?.countMigration(s.name, 'out');
    });
    relays.on('removed', (n: string) => {
      guest.delete(n);
      this.metrics?.forgetRelay(n);
      // what the relay's set-up allocated natively (DPDK's device probe, vhost, TLS) went back to
      // malloc's arenas, which keep it: hand it back soon after (at most once per delay), so
      // that relay churn leaves the RSS flat (issue #20, bench/RESULTS.md K)
      this.trimTimer ??= setTimeout(() => {
        this.trimTimer = undefined;
        Engine.trimNativeHeap();
      }, TRIM_AFTER_REMOVAL_MS).unref();
    });
  }

  /** VirtioForwarderNode status: VFs, hugepages, workers and engine health. */
  private nodeInventory(): ReturnType<typeof nodeInventory> {
    return nodeInventory({
      root: this.config.sriov.sysRoot,
      usage: this.resolver?.usage() ?? new Map<string, string>(),
      relays: this.relays?.list() ?? [],
      engine: this.engine,
      engineUp: !this.stopping,
    });
  }

  /** Clean shutdown: relays removed (sockets unlinked), engine stopped, hugepages released. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.requestStop();
      // a start-up in progress reaches a safe point first (its slow waits give up at once),
      // so that nothing it starts afterwards outlives the shutdown
      const running = this.running;
      this.stopping = (running ? running.catch(() => undefined) : Promise.resolve()).then(() => this.shutdown());
    }
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const log = this.log;
    log.info('vio4wd agent stopping');
    clearTimeout(this.trimTimer);
    this.ready = false;
    const step = (what: string, f: () => Promise<unknown> | undefined) => this.step(what, f);
    this.handover?.close();
    await this.stopControlPlane(false);
    await step('relays', () => this.relays?.close());
    await step('engine', () => this.engine?.stop());
    await step('metrics', () => this.metricsServer?.close());
    // a new agent (handover) may have written its own PID there meanwhile
    const pidFile = this.config.pidFile;
    if (pidFile && (await readFile(pidFile, 'utf8').catch(() => '')).trim() === String(process.pid)) await step('pid file', () => rm(pidFile, { force: true }));
    log.info('vio4wd agent stopped');
  }

  private async step(what: string, f: () => Promise<unknown> | undefined): Promise<void> {
    try {
      await f();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, `shutdown: ${what} failed`);
    }
  }

  /** Stops all but the data path, each part once; `handover`: device-info files stay (docs/upgrade.md). */
  private async stopControlPlane(metrics = true, handover = false): Promise<void> {
    const parts: [string, () => Promise<unknown> | undefined][] = [
      ['reconciler', () => this.reconciler?.stop()],
      ['device plugin', () => this.devicePlugins?.stop({ keepDeviceInfo: handover })],
      ['DRA driver', () => this.dra?.stop()],
      ['core scheduler', () => this.coreScheduler?.stop()],
      ['ovsdb', () => this.ovsdb?.stop()],
      ['control', () => this.control?.close()],
      ['attachment API', () => Promise.all([this.attachServer?.close(), this.attachments?.stop()])],
      ...(metrics ? [['metrics', () => this.metricsServer?.close()] as [string, () => Promise<unknown> | undefined]] : []),
    ];
    for (const [what, f] of parts) await this.step(what, f);
    this.reconciler = this.devicePlugins = this.dra = this.coreScheduler = this.ovsdb = this.control = this.attachServer = undefined;
    if (metrics) this.metricsServer = undefined;
  }
}
