// Files behind ipc:// endpoints: the directory only root or the configured group may enter
// (mode 0750), socket files that group may connect to (mode 0660), refusing to steal a socket
// another live process serves, and removing stale ones.
import { chmod, chown, lchown, lstat, mkdir, readFile, rmdir, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../util/log.js';
import { ValidationError, VioError, errorCode } from '../util/errors.js';

export const IPC_DIR_MODE = 0o750;
export const IPC_SOCKET_MODE = 0o660;

/** The file path of an ipc:// address; undefined for other transports and abstract sockets. */
export function ipcPath(address: string): string | undefined {
  if (!address.startsWith('ipc://')) return undefined;
  const p = address.slice('ipc://'.length);
  if (p === '' || p.startsWith('@')) return undefined;
  return p;
}

/**
 * Who besides root and the ipc group could reach an endpoint: 'network' for a tcp:// address
 * beyond loopback (`tcp://*:5555`, `tcp://0.0.0.0:5555`, `tcp://eth0:5555`), 'local' for tcp://
 * on loopback and abstract ipc://@names (no file, so no permissions: every local process may
 * connect), undefined for an ipc:// path (its directory and socket modes decide).
 */
export function endpointExposure(address: string): 'network' | 'local' | undefined {
  if (address.startsWith('ipc://')) return ipcPath(address) === undefined ? 'local' : undefined;
  if (!address.startsWith('tcp://')) return 'network';
  const hostPort = address.slice('tcp://'.length);
  const host = hostPort.slice(0, hostPort.lastIndexOf(':'));
  return /^(127\.[0-9.]+|localhost|lo|\[?::1\]?)$/.test(host) ? 'local' : 'network';
}

/** A group name or gid as a gid; names are looked up in /etc/group. */
export async function resolveGroup(group: string | number, groupFile = '/etc/group'): Promise<number> {
  if (typeof group === 'number' || /^\d+$/.test(group)) {
    const gid = Number(group);
    if (!Number.isInteger(gid) || gid < 0) throw new ValidationError('control.group', `${group} is not a group id`);
    return gid;
  }
  const text = await readFile(groupFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new ValidationError('control.group', `no group named "${group}" in ${groupFile}; create it (groupadd ${group}) or give a numeric gid`);
}

/** True when something accepts connections on the unix socket at path. */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    const done = (alive: boolean): void => {
      c.destroy();
      resolve(alive);
    };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    c.setTimeout(1000, () => done(false));
  });
}

export interface PreparedIpc {
  path: string;
  /** Directory this process created (removed again on cleanup when empty). */
  createdDir?: string;
}

/**
 * Gets an ipc:// endpoint's directory ready before bind: creates it with mode 0750 (and the
 * configured group) when missing, warns when an existing one is open to every user, and removes
 * a stale socket file. Refuses a socket that a live process still serves.
 */
export async function prepareIpc(address: string, opts: { gid?: number; log: Logger }): Promise<PreparedIpc | undefined> {
  const path = ipcPath(address);
  if (!path) return undefined;
  const dir = dirname(path);
  let createdDir: string | undefined;
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new VioError(errorCode(err) ?? 'EIO', `IPC directory ${dir}: ${err.message}`);
  });
  if (!st) {
    await mkdir(dir, { recursive: true });
    // mkdir's mode is cut by the umask: set it explicitly.
    await chmod(dir, IPC_DIR_MODE);
    if (opts.gid !== undefined) await chown(dir, process.getuid?.() ?? 0, opts.gid);
    createdDir = dir;
    opts.log.info({ dir, mode: IPC_DIR_MODE.toString(8), gid: opts.gid }, 'created IPC directory');
  } else if (!st.isDirectory()) {
    throw new VioError('ENOTDIR', `IPC directory ${dir} is not a directory; choose another endpoint address`);
  } else if (st.mode & 0o002 && !(st.mode & 0o1000)) {
    // anyone could swap the socket file for a symlink before its owner and mode are set
    throw new VioError('EPERM', `IPC directory ${dir} is writable by every user without the sticky bit (mode 0${(st.mode & 0o7777).toString(8)}): anyone could replace the endpoint's socket; chmod 0750 it (or 1777), or choose another endpoint address`);
  } else if (st.mode & 0o007) {
    opts.log.warn({ dir, mode: (st.mode & 0o777).toString(8) }, 'IPC directory is open to every user; anyone may reach the control endpoints (chmod 0750 it)');
  }
  const sock = await lstat(path).catch(() => undefined);
  if (sock) {
    if (!sock.isSocket()) throw new VioError('EEXIST', `${path} exists and is not a socket; remove it or choose another endpoint address`);
    if (await socketAlive(path)) {
      throw new VioError('EADDRINUSE', `${address} is served by another process (a running agent or virtio-forwarder); stop it or choose another address`);
    }
    await unlink(path);
    opts.log.info({ path }, 'removed stale IPC socket');
  }
  return { path, ...(createdDir ? { createdDir } : {}) };
}

/** After bind: the socket file gets mode 0660 and the configured group. */
export async function secureIpcSocket(p: PreparedIpc, gid: number | undefined): Promise<void> {
  // never through a link put in the socket's place (chmod has no lchmod on Linux: check first;
  // the directory is one only root may write, or sticky, so the socket cannot be swapped after)
  const st = await lstat(p.path);
  if (!st.isSocket()) throw new VioError('EEXIST', `${p.path} is not the socket just bound (a ${st.isSymbolicLink() ? 'symlink' : 'file'}): someone replaced it; left alone`);
  if (gid !== undefined) await lchown(p.path, process.getuid?.() ?? 0, gid);
  await chmod(p.path, IPC_SOCKET_MODE);
}

/** After close: removes the socket files, then the directories this process made if empty. */
export async function cleanupIpc(prepared: PreparedIpc[]): Promise<void> {
  for (const p of prepared) await unlink(p.path).catch(() => undefined);
  for (const p of prepared) if (p.createdDir) await rmdir(p.createdDir).catch(() => undefined);
}
