// Publishes this node's relays as ResourceSlices and keeps them current: on every relay change
// (debounced) and on a timer, the slices in the apiserver are compared with what they should be
// and fixed (created, replaced with a new pool generation, or deleted), so a slice someone
// deleted (kubelet wipes a driver's slices when its plugin goes away) comes back.
import type { RelayStatus, RelayView } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { kubeErrorMessage } from '../kube/client.js';
import { poolSlices, publishedDevices, type FreeVf, type PublishedDevice, type RelayHardware, type ResourceSliceBody } from './devices.js';
import type { DeviceLookup } from './driver.js';
import type { SliceApi, StoredSlice } from './kube.js';
import { CoalescedRunner } from '../util/coalesce.js';

export interface PublisherOptions {
  nodeName: string;
  relays: RelayView;
  api: SliceApi;
  /** The VF behind a relay (sysfs), for NUMA node, PF, ids and link speed. */
  hardware: (status: RelayStatus) => Promise<RelayHardware>;
  /** Whether the admin's policy lets this relay's device into its pool; a string says why not. */
  admit?: (status: RelayStatus, hw: RelayHardware) => true | string;
  /** The VFs the pools may turn into relays that no relay holds (one device each); a VF held by
   *  a relay the driver made for a claim stays one (its device is the claim's). */
  freeVfs?: () => Promise<FreeVf[]>;
  logger: Logger;
  /** Full resync period (default 10 s). */
  resyncMs?: number;
  /** Quiet time after a relay change before publishing (default 200 ms). */
  debounceMs?: number;
}

export class ResourceSlicePublisher implements DeviceLookup {
  private readonly log: Logger;
  private devices = new Map<string, PublishedDevice>();
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private running = false;
  private readonly runner = new CoalescedRunner({
    pass: () => this.syncOnce(),
    active: () => this.running,
    onError: (err) => this.log.warn({ err: kubeErrorMessage(err) }, 'publishing ResourceSlices failed: retrying at the next resync'),
  });
  private readonly denied = new Map<string, string>();
  private readonly onChange = (): void => this.kick();

  constructor(private readonly o: PublisherOptions) {
    this.log = o.logger.child({ component: 'dra-slices' });
  }

  /** The relay behind a published device (for prepare). */
  relayOf(pool: string, device: string): string | undefined {
    const d = this.devices.get(`${pool}\0${device}`);
    return d && !d.vf ? d.relay : undefined;
  }

  /** The free VF behind a published device (prepare creates its relay), and that relay's name. */
  vfOf(pool: string, device: string): { vf: FreeVf; relay: string } | undefined {
    const d = this.devices.get(`${pool}\0${device}`);
    return d?.vf ? { vf: d.vf, relay: d.relay } : undefined;
  }

  /** One publishing round now (when started): prepare's lookup of a device not seen yet. */
  async refresh(): Promise<void> {
    if (this.running) await this.sync();
  }

  published(): PublishedDevice[] {
    return [...this.devices.values()];
  }

  async start(): Promise<void> {
    this.running = true;
    this.o.relays.on('change', this.onChange);
    this.o.relays.on('removed', this.onChange);
    this.timer = setInterval(() => void this.sync(), this.o.resyncMs ?? 10_000);
    this.timer.unref();
    await this.sync();
  }

  /** Stops publishing; with removeSlices, deletes this node's slices (the node leaves DRA). */
  async stop(removeSlices = false): Promise<void> {
    this.running = false;
    this.o.relays.off('change', this.onChange);
    this.o.relays.off('removed', this.onChange);
    for (const t of [this.timer, this.debounce]) if (t) clearTimeout(t);
    this.timer = this.debounce = null;
    await this.runner.settled();
    if (removeSlices) {
      try {
        for (const s of await this.o.api.list(this.o.nodeName)) await this.o.api.delete(s.metadata.name);
      } catch (err) {
        this.log.warn({ err: kubeErrorMessage(err) }, 'cannot remove the node\'s ResourceSlices');
      }
    }
  }

  private kick(): void {
    if (!this.running || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.sync();
    }, this.o.debounceMs ?? 200);
    this.debounce.unref();
  }

  /** One comparison of the wanted and the stored slices (serialized; runs again if asked meanwhile). */
  sync(): Promise<void> {
    return this.runner.request();
  }

  private async syncOnce(): Promise<void> {
    const node = this.o.nodeName;
    const entries: { status: RelayStatus; hw: RelayHardware }[] = [];
    for (const status of this.o.relays.list()) {
      // a relay that cannot serve (Failed: its reason is in its status) is not offered; one still
      // coming up is (prepare refuses it until it is healthy, and kubelet retries)
      // a relay the driver made for a free VF is published as that VF's device, not as its own
      if (status.phase === 'Terminating' || status.phase === 'Failed' || status.origin === 'dra') continue;
      let hw: RelayHardware = {};
      try {
        hw = await this.o.hardware(status);
      } catch (err) {
        this.log.debug({ relay: status.name, err: errorMessage(err) }, 'no hardware facts for the relay');
      }
      const verdict = this.o.admit ? this.o.admit(status, hw) : true;
      if (verdict !== true) {
        if (this.denied.get(status.name) !== verdict) this.log.warn({ relay: status.name, reason: verdict }, 'relay not published as a DRA device: the pool policy does not allow it');
        this.denied.set(status.name, verdict);
        continue;
      }
      this.denied.delete(status.name);
      entries.push({ status, hw });
    }
    let vfs: FreeVf[] = [];
    try {
      vfs = (await this.o.freeVfs?.()) ?? [];
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'cannot list the free VFs: none published this round');
    }
    const byPool = publishedDevices(node, entries, vfs);
    const stored = await this.o.api.list(node);
    const storedByName = new Map(stored.map((s) => [s.metadata.name, s]));
    const uid = await this.o.api.nodeUid(node).catch(() => undefined);
    const wantNames = new Set<string>();
    let changed = 0;
    for (const [rn, devs] of byPool) {
      const pool = devs[0]!.pool;
      const mine = stored.filter((s) => s.spec.pool.name === pool);
      const storedGen = Math.max(0, ...mine.map((s) => s.spec.pool.generation));
      let want = this.withOwner(poolSlices(node, rn, devs, storedGen), uid);
      const differs =
        mine.length === 0 ||
        new Set(mine.map((s) => s.spec.pool.generation)).size > 1 ||
        want.some((w) => !sameSlice(storedByName.get(w.metadata.name), w)) ||
        mine.some((s) => !want.some((w) => w.metadata.name === s.metadata.name));
      if (differs) {
        // a new generation: the scheduler uses only the slices of a pool's highest one
        want = this.withOwner(poolSlices(node, rn, devs, storedGen + 1), uid);
        for (const w of want) {
          const cur = storedByName.get(w.metadata.name);
          if (cur?.metadata.resourceVersion) await this.o.api.replace(w, cur.metadata.resourceVersion);
          else await this.o.api.create(w);
          changed++;
        }
      }
      for (const w of want) wantNames.add(w.metadata.name);
    }
    for (const s of stored) {
      if (wantNames.has(s.metadata.name)) continue;
      await this.o.api.delete(s.metadata.name);
      changed++;
    }
    const next = new Map<string, PublishedDevice>();
    for (const devs of byPool.values()) for (const d of devs) next.set(`${d.pool}\0${d.device.name}`, d);
    this.devices = next;
    if (changed) this.log.info({ pools: [...byPool.keys()], devices: next.size, slicesWritten: changed }, 'ResourceSlices published');
  }

  private withOwner(slices: ResourceSliceBody[], uid: string | undefined): ResourceSliceBody[] {
    if (!uid) return slices;
    // the slices go with the Node object (garbage collection), as kubelet's own helper does
    const owner = { apiVersion: 'v1', kind: 'Node', name: this.o.nodeName, uid, controller: true };
    return slices.map((s) => ({ ...s, metadata: { ...s.metadata, ownerReferences: [owner] } }));
  }
}

/** JSON with object keys sorted: the apiserver returns maps in its own key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function sameSlice(cur: StoredSlice | undefined, want: ResourceSliceBody): boolean {
  if (!cur) return false;
  const strip = (s: ResourceSliceBody) =>
    canonical([s.spec.nodeName, s.spec.driver, s.spec.pool.name, s.spec.pool.resourceSliceCount, s.spec.devices ?? [], s.metadata.labels, (s.metadata.ownerReferences ?? []).length]);
  return strip(cur) === strip(want);
}
