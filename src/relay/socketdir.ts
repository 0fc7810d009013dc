// A relay's own socket directory: created with the owner, group and mode its pool sets, and
// checked to be a real directory (not a symlink planted by someone else) every time.
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readFile, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VioError } from '../util/errors.js';

/** Modes a relay directory may have: owner-only writes, or group writes with setgid. */
export const RELAY_DIR_MODES = [0o750, 0o2770] as const;

/**
 * Creates `dir` (its parent must exist: it is the agent's socket root) or takes the existing
 * one over, then sets owner, group and mode. Never world-writable, never through a symlink.
 */
export async function prepareRelayDir(dir: string, own: { uid: number; gid: number; mode: number }): Promise<void> {
  if ((own.mode & 0o7777) !== own.mode || own.mode & 0o002) {
    throw new VioError('EINVAL', `socket directory mode 0${own.mode.toString(8)} for ${dir} is world-writable or not a mode: use 0750 or 2770`);
  }
  const parent = dirname(dir);
  const ps = await lstat(parent).catch(() => undefined);
  if (!ps?.isDirectory()) throw new VioError('ENOENT', `socket root ${parent} does not exist or is not a directory (the agent creates it at start)`);
  if (ps.mode & 0o002 && !(ps.mode & 0o1000)) throw new VioError('EPERM', `socket root ${parent} is world-writable without the sticky bit: chmod 0755 it`);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await lstat(dir);
  if (!st.isDirectory() || st.isSymbolicLink()) throw new VioError('EEXIST', `socket directory ${dir} exists and is not a directory: remove it`);
  await chown(dir, own.uid, own.gid);
  // chmod after chown: the setgid bit of 2770 survives only this way round on some filesystems
  await chmod(dir, own.mode);
}

/** The agent's socket root: created 0755 root-owned; a world-writable one from an older
 *  version is tightened (it held a 0777 directory per relay). */
export async function prepareSocketRoot(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o755 });
  const st = await lstat(root);
  if (!st.isDirectory()) throw new VioError('EEXIST', `socket root ${root} is not a directory`);
  if (st.mode & 0o022) await chmod(root, 0o755);
}

/**
 * The agent's shared socket directory (no directory per relay: the virtio-forwarder layout,
 * /tmp/virtio-forwarder by default), made if missing. An existing one must be the agent's own
 * and not writable by everyone without the sticky bit: whoever owns it could swap the relays'
 * sockets for their own.
 */
export async function prepareSharedSocketDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new VioError('EEXIST', `socket directory ${dir} is not a directory (a symlink or a file): remove it, the agent makes it`);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid) {
    throw new VioError('EPERM', `socket directory ${dir} belongs to uid ${st.uid}, not the agent (uid ${uid}): its owner could replace the relays' sockets; remove it (the agent makes it) or set vhostUser.socketDir`);
  }
  if (st.mode & 0o002 && !(st.mode & 0o1000)) {
    throw new VioError('EPERM', `socket directory ${dir} is writable by everyone without the sticky bit (mode 0${(st.mode & 0o7777).toString(8)}): chmod 0755 it (or 1777)`);
  }
}

/**
 * Removes a relay's directory. Its group (QEMU's, so the tenant's pod that had it mounted) may
 * have left anything in it: node's recursive rm walks by path, so a directory swapped for a
 * symlink while it runs would make it delete the link target's files as root. The socket is
 * unlinked and the directory removed; anything else there goes with coreutils rm, which walks by
 * directory descriptor and never follows a link (`--one-file-system`: nor a mount point).
 * Resolves to the number of leftovers handed to rm (0: the directory held only the socket).
 */
export async function removeRelayDir(dir: string, socketFile: string): Promise<number> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return 0;
  await unlink(join(dir, socketFile)).catch(() => undefined);
  try {
    await rmdir(dir);
    return 0;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 0;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  await new Promise<void>((resolve, reject) =>
    execFile('rm', ['-rf', '--one-file-system', '--', dir], { timeout: 60_000 }, (err, _out, stderr) =>
      err ? reject(new VioError('EIO', `rm -rf ${dir} failed: ${stderr.trim() || err.message}`)) : resolve(),
    ),
  );
  return 1;
}

/** The mount a path lives on, from /proc/self/mountinfo: its mount point, type and per-mount
 *  options (nosymfollow among them); undefined when mountinfo cannot be read. */
export async function mountOf(path: string, mountinfo = '/proc/self/mountinfo'): Promise<{ mountPoint: string; fsType: string; options: string[] } | undefined> {
  const text = await readFile(mountinfo, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let best: { mountPoint: string; fsType: string; options: string[] } | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 7 || dash < 6) continue;
    const mountPoint = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    // later lines are mounted over earlier ones at the same point
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, fsType: f[dash + 1] ?? '', options: f[5]!.split(',') };
  }
  return best;
}

/**
 * Why the socket root should be a mount of its own with `nosymfollow`, or undefined when it is.
 * A pod has its relay's directory mounted read-write; in vhost-user client mode the relay (root)
 * connects to the path where QEMU makes its socket, and connect() follows a symlink the pod put
 * there instead: to another VM's socket, or any socket of the host. On a nosymfollow mount the
 * kernel refuses that (ELOOP); a size limit also keeps pods from filling the host's /run.
 */
export async function socketRootRisk(root: string, mountinfo?: string): Promise<string | undefined> {
  const m = await mountOf(root, mountinfo);
  if (!m || m.options.includes('nosymfollow')) return undefined;
  return `socket root ${root} is on ${m.fsType} ${m.mountPoint} without nosymfollow: a pod could put a symlink where QEMU's socket belongs in its relay's directory, and a client-mode relay (root) would connect to the socket it names (another VM's). Mount a tmpfs of its own there before the agent starts: mount -t tmpfs -o nosymfollow,nodev,noexec,nosuid,size=16m,mode=0755 tmpfs ${root} (docs/security.md)`;
}

/**
 * The agent's own view of the socket root made nosymfollow: the root bind-mounted onto itself and
 * remounted with nosymfollow, in the agent's mount namespace. In a container (the chart's, with
 * the default mount propagation) the host and kubelet see nothing of it, while every path the
 * agent and its engine resolve below the root stops at a symlink. Nothing done when the root is
 * nosymfollow already. Resolves to a warning when it still is not (no CAP_SYS_ADMIN, old kernel).
 */
export async function pinSocketRoot(root: string): Promise<string | undefined> {
  if ((await socketRootRisk(root)) === undefined) return undefined;
  const mount = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) =>
      execFile('mount', args, { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve())),
    );
  try {
    await mount(['--bind', root, root]);
    await mount(['-o', 'remount,bind,nosymfollow', root]);
  } catch (err) {
    return `kubernetes.nosymfollowSocketRoot: cannot remount ${root} nosymfollow (${(err as Error).message}); ${(await socketRootRisk(root)) ?? ''}`;
  }
  return socketRootRisk(root);
}
