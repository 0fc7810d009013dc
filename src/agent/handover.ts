// The upgrade handover between two agents on one node (docs/upgrade.md): the running ("old")
// agent serves a root-only unix socket; a starting ("new") agent that finds it live takes the
// relays over one at a time, then the old one lets go of its ports and stays idle until it is
// stopped. JSON lines, one request and one reply at a time, the new agent asking.
//   new -> {op:"hello", pid}            old -> {op:"hello", pid, filePrefix, relays:[{spec, key?}]}
//   new -> {op:"release", name}         old -> {op:"released", name, ms} | {op:"error", name, message}
//   new -> {op:"done"}                  old -> {op:"closed"}
// A connection that ends before "done" is an interrupted handover: the old agent runs again
// what it had released. One that ends before "closed" leaves the new agent to run every relay.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdtemp, rename, rmdir, unlink } from 'node:fs/promises';
import { lstatSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { RelaySpec } from '../relay/types.js';

/** A relay as one agent hands it to the other: its spec and, for a VirtioRelay, its key. */
export interface HandoverRelay {
  spec: RelaySpec;
  /** namespace/name of the VirtioRelay (the node reconciler's checkpoint entry) */
  key?: string;
  /** where its memory is and how many queue pairs it has: the new agent makes the mbuf pools
   *  for them before the first relay moves */
  numaNode?: number;
  queues?: number;
}

export interface HandoverHello {
  pid: number;
  /** the old agent's EAL file prefix: the new one takes another (hugepage files, runtime dir) */
  filePrefix: string;
  relays: HandoverRelay[];
}

/** What the serving (old) agent does at each step. */
export interface HandoverSource {
  filePrefix: string;
  /** the relays now, with the relay set frozen from here on (the reconciler pauses) */
  begin(): Promise<HandoverRelay[]>;
  /** stops the relay in the engine (VF closed, socket released), keeping its directory */
  release(name: string): Promise<void>;
  /** every relay was taken: close every port and socket a new agent binds, stay idle */
  finish(): Promise<void>;
  /** the new agent went away before it was done: run `released` again, unfreeze */
  abort(released: HandoverRelay[]): Promise<void>;
}

type Msg = Record<string, unknown> & { op: string };

/** The other EAL file prefix of a pair, so that agents alternate between two. */
export function otherFilePrefix(prefix: string): string {
  return prefix.endsWith('-b') ? prefix.slice(0, -2) || 'vio4wd' : `${prefix}-b`;
}

/** Reads JSON lines from a socket; `next()` is the next message, or undefined at its end. */
class Lines {
  private buf = '';
  private readonly queue: Msg[] = [];
  private waiter: ((m: Msg | undefined) => void) | undefined;
  ended = false;

  constructor(readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        let m: Msg;
        try {
          m = JSON.parse(line) as Msg;
        } catch {
          sock.destroy();
          return;
        }
        if (typeof m?.op !== 'string') {
          sock.destroy();
          return;
        }
        this.push(m);
      }
      if (this.buf.length > 1 << 24) sock.destroy(); // no line is this long
    });
    const end = (): void => {
      this.ended = true;
      this.waiter?.(undefined);
      this.waiter = undefined;
    };
    sock.on('close', end);
    sock.on('error', () => sock.destroy());
  }

  private push(m: Msg): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else this.queue.push(m);
  }

  next(): Promise<Msg | undefined> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  send(m: Msg): void {
    if (!this.sock.destroyed) this.sock.write(`${JSON.stringify(m)}\n`);
  }
}

/** True when something accepts connections at `path`. */
export function live(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A file's identity: device, inode and change time (an inode number is soon used again). */
function fileIdent(path: string): string {
  const st = lstatSync(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.ctimeNs}`;
}

/**
 * Serves the handover socket (the old agent's side). Refuses to start while another agent
 * serves it (that one is being handed over from); a socket file nobody listens on is removed.
 */
export class HandoverServer {
  private server: Server | undefined;
  /** the socket file this server made (close() removes only that one): fileIdent */
  private ident: string | undefined;
  private busy = false;
  private readonly log: Logger;

  constructor(
    readonly path: string,
    private readonly source: HandoverSource,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'handover' });
  }

  /**
   * Listens at `path`. The socket is made in a directory of its own (0700, beside `path`),
   * made 0600 there, then renamed into place: at `path` it is never reachable by anyone but
   * root, whatever the umask (listen() makes a socket file with the process's umask).
   */
  async listen(): Promise<void> {
    if (await live(this.path)) throw new Error(`handover socket ${this.path} is served by another agent`);
    await unlink(this.path).catch(() => undefined);
    const dir = await mkdtemp(join(dirname(this.path), `.${basename(this.path)}.`));
    const tmp = join(dir, 's');
    const server = createServer((sock) => void this.serve(sock));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tmp, () => resolve());
      });
      // root-only: the peer can make this agent stop forwarding
      await chmod(tmp, 0o600);
      await rename(tmp, this.path);
      this.ident = fileIdent(this.path);
      this.server = server;
    } catch (err) {
      server.close();
      throw err;
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
  }

  /**
   * Stops listening; a handover in progress keeps its connection. The socket file is removed
   * only while it is still this server's (same device and inode): after a handover the next
   * agent serves its own socket at the same path, which this one must never remove. (libuv
   * unlinks the path it listened on when it closes: that is the temporary name, gone already.)
   */
  close(): void {
    if (!this.server) return;
    this.server.close();
    this.server = undefined;
    const id = this.ident;
    this.ident = undefined;
    try {
      if (id && fileIdent(this.path) === id) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }

  private async serve(sock: Socket): Promise<void> {
    const lines = new Lines(sock);
    if (this.busy) {
      lines.send({ op: 'error', message: 'a handover is already in progress' });
      sock.end();
      return;
    }
    this.busy = true;
    const released: HandoverRelay[] = [];
    let relays: HandoverRelay[] = [];
    let done = false;
    try {
      const hello = await lines.next();
      if (hello?.op !== 'hello') return;
      relays = await this.source.begin();
      this.log.info({ peer: hello.pid, relays: relays.length }, 'handover: a new agent takes the relays over');
      lines.send({ op: 'hello', pid: process.pid, filePrefix: this.source.filePrefix, relays });
      for (;;) {
        const m = await lines.next();
        if (!m) break;
        if (m.op === 'release' && typeof m.name === 'string') {
          const r = relays.find((x) => x.spec.name === m.name);
          if (!r) {
            lines.send({ op: 'error', name: m.name, message: `no relay named "${m.name}" to hand over` });
            continue;
          }
          const t0 = performance.now();
          try {
            if (!released.includes(r)) {
              await this.source.release(r.spec.name);
              released.push(r);
            }
            const ms = Math.round((performance.now() - t0) * 10) / 10;
            this.log.info({ relay: r.spec.name, ms }, 'handover: relay released');
            lines.send({ op: 'released', name: r.spec.name, ms });
          } catch (err) {
            lines.send({ op: 'error', name: r.spec.name, message: errorMessage(err) });
          }
        } else if (m.op === 'done') {
          done = true;
          await this.source.finish();
          this.log.info({ relays: released.length }, 'handover done: the new agent runs every relay; this one only waits to be stopped');
          lines.send({ op: 'closed' });
          sock.end();
          break;
        }
      }
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'handover failed');
    } finally {
      if (!done && relays.length) {
        this.log.warn({ released: released.length }, 'handover interrupted: the new agent went away; running the released relays again');
        await this.source.abort(released).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'handover: resuming failed'));
      }
      this.busy = false;
      sock.destroy();
    }
  }
}

/**
 * Whether the socket at `path` can only be this agent's user's (root's): a socket of that user,
 * 0600, in a directory of that user that no one else may write to (or sticky). The peer's hello
 * carries relay specs the new agent applies as root (VF devargs, socket paths and owners), so a
 * socket someone else could have planted (e.g. in a /tmp/virtio-forwarder another user made) is
 * refused, naming why. False: there is none.
 */
async function trustedSocket(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return false;
  const uid = process.getuid?.() ?? 0;
  const dir = dirname(path);
  const ds = await lstat(dir);
  const why = !st.isSocket()
    ? ' is not a socket'
    : st.uid !== uid
      ? ` is owned by uid ${st.uid}`
      : st.mode & 0o077
        ? ` has mode 0${(st.mode & 0o777).toString(8)}`
        : !ds.isDirectory() || ds.uid !== uid
          ? `: its directory ${dir} is not a directory of uid ${uid}`
          : ds.mode & 0o022 && !(ds.mode & 0o1000)
            ? `: its directory ${dir} is writable by others (mode 0${(ds.mode & 0o7777).toString(8)})`
            : undefined;
  if (why) throw new Error(`handover socket ${path}${why}: not trusted (another user could have made it, and the relays it offers would run as root); remove it and make ${dir} root's, mode 0755, or set handover.socket to such a directory`);
  return true;
}

/** The starting (new) agent's side of a handover. */
export class HandoverClient {
  private constructor(
    private readonly lines: Lines,
    readonly hello: HandoverHello,
    private readonly path: string,
  ) {}

  /**
   * Connects to the old agent and says hello; undefined when no agent serves `path` (a first
   * start, or a restart after a crash: then the checkpoint is the source).
   */
  static async connect(path: string, timeoutMs = 10_000): Promise<HandoverClient | undefined> {
    if (!(await trustedSocket(path))) return undefined;
    const sock = await new Promise<Socket | undefined>((resolve) => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(undefined));
    });
    if (!sock) return undefined;
    const lines = new Lines(sock);
    lines.send({ op: 'hello', pid: process.pid });
    let timer: NodeJS.Timeout | undefined;
    const m = await Promise.race([lines.next(), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)))]);
    clearTimeout(timer);
    if (m?.op !== 'hello' || !Array.isArray(m.relays) || typeof m.filePrefix !== 'string') {
      sock.destroy();
      if (m?.op === 'error') throw new Error(`handover refused: ${String(m.message)}`);
      return undefined;
    }
    const relays = (m.relays as unknown[]).filter((r): r is HandoverRelay => !!r && typeof r === 'object' && typeof (r as HandoverRelay).spec?.name === 'string');
    return new HandoverClient(lines, { pid: Number(m.pid), filePrefix: m.filePrefix, relays }, path);
  }

  /** The old agent is gone (killed, or the connection broke). */
  get lost(): boolean {
    return this.lines.ended;
  }

  /**
   * After the old agent went away: waits until it has no socket open any more (it listens on
   * the handover socket until the kernel closes its files, VFs, vhost-user sockets and ports
   * alike, the listener among the last), so that nothing the new agent opens next finds one of
   * them still held. A live old agent that only dropped the connection is waited for `timeoutMs`.
   */
  async waitGone(timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (await live(this.path)) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 100));
    return true;
  }

  /** Asks the old agent to release a relay; false when it is gone (it released everything). */
  async release(name: string): Promise<boolean> {
    this.lines.send({ op: 'release', name });
    const m = await this.lines.next();
    if (!m) return false;
    if (m.op === 'released') return true;
    throw new Error(String(m.message ?? `unexpected reply "${m.op}"`));
  }

  /** Every relay taken: the old agent closes its ports. False when it is gone already. */
  async done(): Promise<boolean> {
    this.lines.send({ op: 'done' });
    const m = await this.lines.next();
    this.lines.sock.destroy();
    return m?.op === 'closed';
  }

  /** Ends the handover without "done" (the old agent runs what it released again). */
  abandon(): void {
    this.lines.sock.destroy();
  }
}
