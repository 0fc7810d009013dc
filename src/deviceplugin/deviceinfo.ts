// Device-info files (network plumbing WG device-info spec v1.1.0, section 4.1) for allocated
// relays: written at Allocate, rewritten when the relay changes, removed when it goes away.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RelayStatus } from '../relay/types.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { deviceInfo, deviceInfoFileName } from './allocate.js';
import { DevicePluginError } from './errors.js';
import { resourceNameOf } from './pool.js';

export class DeviceInfoFiles {
  /** Files this process wrote, by device ID: only so they can be removed again. */
  private readonly written = new Map<string, { resourceName: string; path: string; podDir: string }>();
  /** One file operation at a time, so a removal never races an Allocate's write. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  pathFor(resourceName: string, deviceId: string): string {
    return join(this.dir, deviceInfoFileName(resourceName, deviceId));
  }

  /** Writes (atomically) the device-info file of a relay allocated with its socket directory
   *  mounted at podDir in the container. */
  write(status: RelayStatus, podDir: string): Promise<string> {
    return this.serial(() => this.doWrite(status, podDir));
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doWrite(status: RelayStatus, podDir: string): Promise<string> {
    const resourceName = resourceNameOf(status);
    const path = this.pathFor(resourceName, status.name);
    const prev = this.written.get(status.name);
    try {
      await mkdir(this.dir, { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(deviceInfo(status, podDir), null, 2)}\n`, { mode: 0o644 });
      await rename(tmp, path);
    } catch (err) {
      throw new DevicePluginError('EDEVINFO', `cannot write device-info file ${path}: ${errorMessage(err)}; check that the directory is writable (device-info dir option)`, { cause: err });
    }
    this.written.set(status.name, { resourceName, path, podDir });
    if (prev && prev.path !== path) await this.unlink(prev.path);
    return path;
  }

  /** After a relay changed: rewrite its file (if one was written) or drop it when it left its pool. */
  refresh(status: RelayStatus): Promise<void> {
    return this.serial(async () => {
      const prev = this.written.get(status.name);
      if (!prev) return;
      if (prev.resourceName !== resourceNameOf(status)) {
        await this.doRemove(status.name);
        return;
      }
      try {
        await this.doWrite(status, prev.podDir);
      } catch (err) {
        this.log.warn({ device: status.name, err: errorMessage(err) }, 'device-info refresh failed');
      }
    });
  }

  remove(deviceId: string): Promise<void> {
    return this.serial(() => this.doRemove(deviceId));
  }

  removePool(resourceName: string): Promise<void> {
    return this.serial(async () => {
      for (const [id, w] of [...this.written]) if (w.resourceName === resourceName) await this.doRemove(id);
    });
  }

  /**
   * At start: files an earlier agent left (killed before it could remove them) are removed,
   * except those of relays this agent runs again (from its checkpoint), which it takes over.
   */
  sweep(relays: readonly RelayStatus[]): Promise<void> {
    return this.serial(async () => {
      let names: string[];
      try {
        names = await readdir(this.dir);
      } catch {
        return; // no directory yet: nothing left behind
      }
      const mine = new Map(relays.map((s) => [deviceInfoFileName(resourceNameOf(s), s.name), s]));
      let removed = 0;
      for (const n of names) {
        if (!n.startsWith('vio4wd.io-') || !/-device\.json(\.\d+\.tmp)?$/.test(n)) continue;
        const path = join(this.dir, n);
        const s = mine.get(n);
        if (s && !this.written.has(s.name)) {
          try {
            const info = JSON.parse(await readFile(path, 'utf8')) as { 'vhost-user'?: { path?: string } };
            const sock = info['vhost-user']?.path;
            if (sock) {
              this.written.set(s.name, { resourceName: resourceNameOf(s), path, podDir: dirname(sock) });
              continue;
            }
          } catch {
            // unreadable: removed below
          }
        }
        if (s && this.written.has(s.name)) continue;
        await this.unlink(path);
        removed++;
      }
      if (removed) this.log.info({ dir: this.dir, removed }, 'device-info files left by an earlier agent removed');
    });
  }

  removeAll(): Promise<void> {
    return this.serial(async () => {
      for (const id of [...this.written.keys()]) await this.doRemove(id);
    });
  }

  private async doRemove(deviceId: string): Promise<void> {
    const prev = this.written.get(deviceId);
    if (!prev) return;
    this.written.delete(deviceId);
    await this.unlink(prev.path);
  }

  private async unlink(path: string): Promise<void> {
    try {
      await rm(path, { force: true });
      this.log.debug({ path }, 'device-info file removed');
    } catch (err) {
      this.log.warn({ path, err: errorMessage(err) }, 'cannot remove device-info file');
    }
  }
}
