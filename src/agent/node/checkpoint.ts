// The relays a node runs for VirtioRelays, kept in a file so that an agent that starts again
// (e.g. after a crash) runs them at once, before the apiserver has answered.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../util/log.js';
import { errorCode, errorMessage } from '../../util/errors.js';
import type { RelaySpec } from '../../relay/types.js';

export interface CheckpointEntry {
  /** namespace/name of the VirtioRelay */
  key: string;
  spec: RelaySpec;
}

interface CheckpointFile {
  version: 1;
  node: string;
  relays: CheckpointEntry[];
}

/** Where the node reconciler keeps its checkpoint by default: beside the relays' sockets. */
export function checkpointPathFor(socketDir: string): string {
  return join(socketDir, '.vio4wd-relays.json');
}

export class RelayCheckpoint {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  /** entries() gives what to write; it is called when a scheduled write happens. */
  constructor(
    readonly path: string,
    private readonly node: string,
    private readonly log: Logger,
    private readonly entries: () => CheckpointEntry[],
  ) {}

  /** The relays of the file; none when it is missing, unreadable or for another node. */
  async read(): Promise<CheckpointEntry[]> {
    let cp: CheckpointFile;
    try {
      cp = JSON.parse(await readFile(this.path, 'utf8')) as CheckpointFile;
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') this.log.warn({ path: this.path, err: errorMessage(err) }, 'relay checkpoint unreadable; waiting for the apiserver instead');
      return [];
    }
    if (cp.version !== 1 || cp.node !== this.node || !Array.isArray(cp.relays)) {
      this.log.warn({ path: this.path, node: cp.node }, 'relay checkpoint is not for this node or version; ignored');
      return [];
    }
    // an entry a crash or a hand edit left empty (null, {}) is skipped, not a reason to
    // crash-loop the agent: its VirtioRelay brings the relay back
    return cp.relays.filter((e: unknown, index) => {
      const ok = !!e && typeof e === 'object' && typeof (e as CheckpointEntry).key === 'string' && typeof (e as CheckpointEntry).spec?.name === 'string';
      if (!ok) this.log.warn({ path: this.path, index, entry: e }, 'relay checkpoint entry is empty or malformed; skipped');
      return ok;
    });
  }

  /** Writes the file soon (changes in one burst make one write). */
  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, 50);
  }

  /** Writes a scheduled change now and waits for every write to finish. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.write();
    }
    await this.writing;
  }

  private write(): void {
    const path = this.path;
    const cp: CheckpointFile = { version: 1, node: this.node, relays: this.entries() };
    this.writing = this.writing.then(async () => {
      try {
        const tmp = `${path}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(cp), { mode: 0o600 });
        await rename(tmp, path);
      } catch (err) {
        this.log.warn({ path, err: errorMessage(err) }, 'cannot write the relay checkpoint');
      }
    });
  }
}

/**
 * Applies the relays of the node reconciler's checkpoint at `path` (the VirtioRelays this node
 * ran before it restarted) and returns those taken, for the reconciler to own. The agent calls
 * it before it loads the Kubernetes client, so that they forward again at once.
 */
export async function restoreCheckpoint(relays: { apply(spec: RelaySpec): unknown }, path: string, node: string, log: Logger): Promise<CheckpointEntry[]> {
  const cp = new RelayCheckpoint(path, node, log, () => []);
  const taken: CheckpointEntry[] = [];
  for (const entry of await cp.read()) {
    try {
      // the relay's directory is created by the relay manager with the owner and mode in the
      // spec (spec.vhostUser.directory), after its VF passed the pool's checks
      relays.apply(entry.spec);
      taken.push(entry);
    } catch (err) {
      log.warn({ relay: entry.spec.name, err: errorMessage(err) }, 'relay from the checkpoint not restored; the VirtioRelay will bring it');
    }
  }
  if (taken.length) log.info({ relays: taken.length, path: cp.path }, 'relays restored from the checkpoint; reconciling them once the apiserver answers');
  return taken;
}
