// DevicePluginManager: one PoolPlugin per resource name found among the node's relays, kept
// registered with kubelet across kubelet restarts and socket removals. Relay state is read from
// the RelayView on every use; the manager keeps only what it owns (servers, files, timers).
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { RelayStatus, RelayView } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import { DEFAULT_DEVICE_INFO_DIR, DEFAULT_DEVICE_PLUGIN_DIR, KUBELET_SOCKET, MAX_DEVICE_ID_LENGTH } from './constants.js';
import { DeviceInfoFiles } from './deviceinfo.js';
import { parsePool, type Pool } from './pool.js';
import { PoolPlugin, fileIdentity } from './server.js';
import type { ListHolders } from './holders.js';
import { CoalescedRunner } from '../util/coalesce.js';

export interface DevicePluginManagerOptions {
  /** The node's relays (RelayManager). */
  view: RelayView;
  /** kubelet's device-plugin directory (kubelet.sock and the plugins' sockets). */
  pluginDir?: string;
  /** Where device-info files are written. */
  deviceInfoDir?: string;
  logger?: Logger;
  /** Fallback check of the sockets when no fs event arrives, in ms (default 500). */
  pollIntervalMs?: number;
  /** Watch the device-plugin directory with fs.watch (default true); false: periodic checks only. */
  watch?: boolean;
  /** kubelet's pod-resources List. Given, PreStartContainer refuses a VirtioRelay's relay to a
   *  pod of another namespace (devicePlugin.namespaceCheck). */
  holders?: ListHolders;
}

/** What one check of the sockets saw, for status and tests. */
export interface PoolState {
  resourceName: string;
  socketPath: string;
  serving: boolean;
  registered: boolean;
  devices: number;
}

export class DevicePluginManager {
  readonly pluginDir: string;
  readonly deviceInfoDir: string;
  readonly kubeletSocket: string;
  private readonly view: RelayView;
  private readonly log: Logger;
  private readonly pollIntervalMs: number;
  private readonly useWatch: boolean;
  private readonly files: DeviceInfoFiles;
  private readonly holders: ListHolders | undefined;
  private readonly plugins = new Map<string, PoolPlugin>();
  private running = false;
  private watcher: FSWatcher | null = null;
  private watchedDirId: string | null = null;
  private poll: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retryDelayMs = 100;
  private kicked: NodeJS.Immediate | null = null;
  private readonly runner = new CoalescedRunner({
    pass: () => this.reconcileOnce(),
    active: () => this.running,
    onError: (err) => {
      this.log.error({ err: errorMessage(err) }, 'device plugin reconcile failed');
      this.scheduleRetry();
    },
  });
  private readonly warned = new Set<string>();

  private readonly onChange = (status: RelayStatus): void => this.relayChanged(status);
  private readonly onRemoved = (name: string): void => this.relayRemoved(name);

  constructor(opts: DevicePluginManagerOptions) {
    this.view = opts.view;
    this.pluginDir = opts.pluginDir ?? DEFAULT_DEVICE_PLUGIN_DIR;
    this.deviceInfoDir = opts.deviceInfoDir ?? DEFAULT_DEVICE_INFO_DIR;
    this.kubeletSocket = join(this.pluginDir, KUBELET_SOCKET);
    this.log = (opts.logger ?? silentLogger()).child({ component: 'deviceplugin' });
    this.pollIntervalMs = opts.pollIntervalMs ?? 500;
    this.useWatch = opts.watch ?? true;
    this.files = new DeviceInfoFiles(this.deviceInfoDir, this.log);
    this.holders = opts.holders;
  }

  /**
   * Starts a server for each pool and registers it (if kubelet is up; otherwise as soon as
   * kubelet.sock appears). Resolves after this first round; never fails for a missing kubelet.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.view.on('change', this.onChange);
    this.view.on('removed', this.onRemoved);
    this.armWatcher();
    this.poll = setInterval(() => this.kick(), this.pollIntervalMs);
    this.poll.unref();
    this.log.info({ pluginDir: this.pluginDir, deviceInfoDir: this.deviceInfoDir }, 'device plugin manager started');
    await this.files.sweep(this.view.list());
    await this.reconcile();
  }

  /** Stops every server (removing its socket and ending ListAndWatch) and removes device-info
   *  files, unless `keepDeviceInfo` (a handover: the new agent's plugin takes them over). */
  async stop(opts: { keepDeviceInfo?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.view.off('change', this.onChange);
    this.view.off('removed', this.onRemoved);
    this.watcher?.close();
    this.watcher = null;
    for (const t of [this.poll, this.retry]) if (t) clearTimeout(t);
    this.poll = this.retry = null;
    if (this.kicked) clearImmediate(this.kicked);
    this.kicked = null;
    await this.runner.settled();
    for (const p of this.plugins.values()) await p.stop();
    this.plugins.clear();
    if (!opts.keepDeviceInfo) await this.files.removeAll();
    this.log.info('device plugin manager stopped');
  }

  /** The pools being served now. */
  pools(): PoolState[] {
    return [...this.plugins.values()].map((p) => ({
      resourceName: p.pool.resourceName,
      socketPath: p.socketPath,
      serving: p.serving,
      registered: p.registeredWith !== null,
      devices: p.relays().length,
    }));
  }

  /** Run one reconcile now (and wait for it); the watcher and timer call this too. */
  reconcile(): Promise<void> {
    if (!this.running) return this.runner.settled();
    return this.runner.request();
  }

  private kick(): void {
    if (!this.running || this.kicked) return;
    this.kicked = setImmediate(() => {
      this.kicked = null;
      void this.reconcile();
    });
  }

  private relayChanged(status: RelayStatus): void {
    for (const p of this.plugins.values()) p.notify();
    void this.files.refresh(status);
    // pools may have appeared or emptied
    this.kick();
  }

  private relayRemoved(name: string): void {
    // the device-info file goes first: whoever sees the device gone from ListAndWatch finds no
    // file of it either (the soak test saw the file outlive the device by a few ms)
    void this.files.remove(name).finally(() => {
      for (const p of this.plugins.values()) p.notify();
      this.kick();
    });
  }

  /** The relay's pool, or undefined (logged once) when its resourceName is not usable. */
  private poolOf(status: RelayStatus): Pool | undefined {
    try {
      if (status.name.length > MAX_DEVICE_ID_LENGTH) {
        this.warnOnce(`${status.name}:id`, { relay: status.name }, `relay name is longer than ${MAX_DEVICE_ID_LENGTH} characters, which kubelet does not accept as a device ID: not advertised; use a shorter name`);
        return undefined;
      }
      return parsePool(status.resourceName, `relay ${status.name}: resourceName`);
    } catch (err) {
      this.warnOnce(`${status.name}:${status.resourceName}`, { relay: status.name }, `${errorMessage(err)}; relay not advertised`);
      return undefined;
    }
  }

  private warnOnce(key: string, fields: object, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }

  private async reconcileOnce(): Promise<void> {
    // pools wanted now
    const wanted = new Map<string, Pool>();
    for (const s of this.view.list()) {
      const pool = this.poolOf(s);
      if (pool) wanted.set(pool.resourceName, pool);
    }
    for (const [rn, plugin] of [...this.plugins]) {
      if (wanted.has(rn)) continue;
      plugin.sendEmpty();
      await plugin.stop();
      this.plugins.delete(rn);
      await this.files.removePool(rn);
      this.log.info({ resource: rn }, 'pool has no relays left: plugin stopped');
    }
    for (const [rn, pool] of wanted) {
      if (!this.plugins.has(rn)) {
        this.plugins.set(rn, new PoolPlugin(pool, this.view, this.pluginDir, this.files, this.log, this.holders));
        this.log.info({ resource: rn, socket: join(this.pluginDir, pool.socketName) }, 'pool appeared');
      }
    }

    this.armWatcher();
    const kubeletId = await fileIdentity(this.kubeletSocket);
    let failed = false;
    for (const plugin of this.plugins.values()) {
      const rn = plugin.pool.resourceName;
      try {
        if (!(await plugin.intact())) {
          if (plugin.serving) this.log.warn({ resource: rn, socket: plugin.socketPath }, 'plugin socket removed: restarting server');
          await plugin.restart();
        } else if (kubeletId !== null && plugin.registeredWith !== null && plugin.registeredWith !== kubeletId) {
          this.log.info({ resource: rn }, 'kubelet restarted: restarting server');
          await plugin.restart();
        }
        if (kubeletId !== null && plugin.registeredWith !== kubeletId) {
          await plugin.register(this.kubeletSocket, kubeletId);
          this.warned.delete(`register:${rn}`);
          this.log.info({ resource: rn, endpoint: plugin.pool.socketName }, 'registered with kubelet');
        }
        plugin.notify();
      } catch (err) {
        failed = true;
        this.warnOnce(`register:${rn}`, { resource: rn, err: errorMessage(err) }, 'device plugin not registered yet: retrying');
      }
    }
    if (kubeletId === null && this.plugins.size > 0) {
      this.warnOnce('kubelet', { socket: this.kubeletSocket }, 'kubelet socket not found: will register when it appears');
    } else {
      this.warned.delete('kubelet');
    }
    if (failed) this.scheduleRetry();
    else this.retryDelayMs = 100;
  }

  /** Quick retries (100 ms doubling up to the poll interval) so re-registration stays fast. */
  private scheduleRetry(): void {
    if (!this.running || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.reconcile();
    }, this.retryDelayMs);
    this.retry.unref();
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.pollIntervalMs);
  }

  /** (Re)arms fs.watch on the plugin directory; recreated directories get a new watcher. */
  private armWatcher(): void {
    if (!this.running || !this.useWatch) return;
    void fileIdentity(this.pluginDir, false).then((dirId) => {
      if (!this.running || (dirId === this.watchedDirId && this.watcher)) return;
      this.watcher?.close();
      this.watcher = null;
      this.watchedDirId = dirId;
      if (dirId === null) return;
      try {
        this.watcher = watch(this.pluginDir, () => this.kick());
        this.watcher.on('error', () => {
          this.watcher?.close();
          this.watcher = null;
          this.watchedDirId = null;
        });
      } catch (err) {
        this.warnOnce('watch', { dir: this.pluginDir, err: errorMessage(err) }, 'cannot watch the device-plugin directory: polling only');
      }
    });
  }
}
