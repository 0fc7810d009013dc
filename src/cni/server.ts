// Serves the attachment API on a unix socket only root can open (mode 0600 in a 0700 directory):
// one JSON request line in, one JSON reply line out, then the connection closes.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../util/log.js';
import { VioError } from '../util/errors.js';
import { CniCode, CniError, MAX_REQUEST_BYTES, errorReply, parseRequest, type AttachReply, type AttachRequest } from './protocol.js';

export interface AttachServerOptions {
  path: string;
  handle(req: AttachRequest): Promise<AttachReply>;
  logger: Logger;
  /** How long a client may take to send its line (ms). */
  readTimeoutMs?: number;
}

export class AttachServer {
  private server: Server | undefined;
  private readonly log: Logger;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: AttachServerOptions) {
    this.log = o.logger.child({ component: 'cni-api' });
  }

  async start(): Promise<void> {
    const path = this.o.path;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // a socket left by a killed agent goes; one a live agent answers on, or anything else at
    // the path, is not ours to remove
    const st = await stat(path).catch(() => undefined);
    if (st && !st.isSocket()) throw new VioError('EEXIST', `${path} exists and is not a socket: remove it or set cni.socket to another path`);
    if (st && (await answers(path))) throw new VioError('EADDRINUSE', `another process (a second agent?) serves ${path}: stop it, or set cni.socket to another path`);
    if (st) await rm(path, { force: true });
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // umask-independent: the socket is created, then restricted before anyone is told of it
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    await chmod(path, 0o600);
    this.log.info({ socket: path }, 'attachment API listening (vio4wd-cni)');
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    s.setTimeout(this.o.readTimeoutMs ?? 10_000, () => this.reply(s, errorReply(new CniError(CniCode.IoFailure, 'no complete request line within the timeout'))));
    let buf = '';
    let done = false;
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      if (done) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length <= MAX_REQUEST_BYTES) return;
      done = true;
      s.setTimeout(0);
      if (nl < 0 || nl > MAX_REQUEST_BYTES) {
        this.reply(s, errorReply(new CniError(CniCode.DecodeFailure, `request longer than ${MAX_REQUEST_BYTES} bytes`)));
        return;
      }
      void this.answer(buf.slice(0, nl)).then((r) => this.reply(s, r));
    });
  }

  private async answer(line: string): Promise<AttachReply> {
    let req: AttachRequest;
    try {
      req = parseRequest(line);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'attachment request refused');
      return errorReply(err);
    }
    const r = await this.o.handle(req).catch((err: unknown) => errorReply(err));
    if (!r.ok) this.log.warn({ op: req.op, relay: req.deviceId, container: req.containerId, code: r.code, err: r.msg }, 'attachment request failed');
    return r;
  }

  private reply(s: Socket, r: AttachReply): void {
    if (s.destroyed) return;
    s.end(`${JSON.stringify(r)}\n`);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.o.path, { force: true });
  }
}

/** True when something accepts connections on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
