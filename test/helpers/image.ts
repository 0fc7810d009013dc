// The container image for tests: podman builds the Dockerfile (chroot isolation: containers cannot
// run on these machines), then a created container's filesystem is mounted and commands run in a
// chroot of it, in a private mount namespace (with /proc, /sys and /dev) that vanishes with the
// command. Base images come from scripts/podman-base-images.sh (debootstrap; cached).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BASE_IMAGES = fileURLToPath(new URL('../../scripts/podman-base-images.sh', import.meta.url));

/** Why podman cannot build here, or undefined when it can. */
export function podmanUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (podman storage, chroot and mount namespaces need root)';
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'podman is not installed (scripts/bootstrap installs it: step 75-podman)';
  const info = spawnSync('podman', ['info', '--format', '{{.Store.GraphDriverName}}'], { encoding: 'utf8', timeout: 60_000 });
  if (info.status !== 0) return `podman cannot run here: ${(info.stderr || info.stdout).trim().split('\n').pop()}`;
  if (spawnSync('unshare', ['--version']).status !== 0) return 'unshare (util-linux) is missing';
  return undefined;
}

function progress(line: string): void {
  process.stderr.write(`[image] ${line}\n`);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; lines matching `show` go to stderr as progress. */
export function run(cmd: string, args: string[], opts: { show?: RegExp; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 1_800_000 });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const onData = (d: string, which: 'out' | 'err'): void => {
      if (which === 'out') stdout += d;
      else stderr += d;
      if (!opts.show) return;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (opts.show.test(l)) progress(l.length > 160 ? `${l.slice(0, 157)}...` : l);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => onData(d, 'out'));
    child.stderr.setEncoding('utf8').on('data', (d: string) => onData(d, 'err'));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${(r.stderr || r.stdout).trim().split('\n').slice(-25).join('\n')}`);
  return r.stdout;
}

/** debian:bookworm-slim and node:20-bookworm-slim, made locally (minutes the first time). */
export async function ensureBaseImages(): Promise<void> {
  await must(BASE_IMAGES, [], { show: /./ });
}

/** A CA bundle for the build's npm (a TLS-inspecting proxy's CA is in the system bundle). */
function caBundle(): string | undefined {
  for (const f of [process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt']) if (f && existsSync(f)) return f;
  return undefined;
}

export interface BuiltImage {
  tag: string;
  id: string;
  sizeBytes: number;
  user: string;
  entrypoint: string[];
  cmd: string[];
  env: string[];
  labels: Record<string, string>;
}

export async function inspectImage(tag: string): Promise<BuiltImage> {
  const [img] = JSON.parse(await must('podman', ['image', 'inspect', tag])) as {
    Id: string;
    Size: number;
    Config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; Labels?: Record<string, string> };
  }[];
  if (!img) throw new Error(`podman image inspect ${tag}: no image`);
  return {
    tag,
    id: img.Id,
    sizeBytes: img.Size,
    user: img.Config.User ?? '',
    entrypoint: img.Config.Entrypoint ?? [],
    cmd: img.Config.Cmd ?? [],
    env: img.Config.Env ?? [],
    labels: img.Config.Labels ?? {},
  };
}

/**
 * Builds the repository's Dockerfile into `tag` (layers cached by podman between runs). The image
 * the tag pointed at before is removed when nothing else uses it.
 */
export async function buildImage(tag: string, opts: { target?: string; buildArgs?: Record<string, string> } = {}): Promise<BuiltImage> {
  const before = (await run('podman', ['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  const args = ['build', '--isolation', 'chroot', '--pull=never', '--layers', '-t', tag, '-f', 'Dockerfile'];
  const ca = caBundle();
  if (ca) args.push('--secret', `id=ca-certificates,src=${ca}`);
  for (const [k, v] of Object.entries(opts.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  if (opts.target) args.push('--target', opts.target);
  args.push('.');
  progress(`podman ${args.join(' ')}`);
  await must('podman', args, { show: /^\[\d+\/\d+\] STEP|^STEP|^Successfully|^Error|rror:/ });
  const built = await inspectImage(tag);
  if (before && before !== built.id) await run('podman', ['rmi', before]); // fails harmlessly while in use
  return built;
}

export interface ImageRoot {
  /** the container's root filesystem (writable, thrown away by remove) */
  root: string;
  container: string;
  remove: () => Promise<void>;
}

/** Creates (never starts) a container of the image and mounts its filesystem. */
export async function mountImage(tag: string): Promise<ImageRoot> {
  const container = (await must('podman', ['create', '--pull=never', tag])).trim();
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await run('podman', ['umount', container]);
    await run('podman', ['rm', '-f', container]);
  };
  try {
    const root = (await must('podman', ['mount', container])).trim();
    return { root, container, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

export interface ChrootOptions {
  /** uid:gid to run as (chroot --userspec); default root */
  user?: string;
  /** environment inside (default: PATH and NODE_ENV as the image sets them) */
  env?: Record<string, string>;
}

const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function chrootArgv(root: string, argv: string[], o: ChrootOptions): { cmd: string; args: string[] } {
  const env = { PATH: IMAGE_PATH, NODE_ENV: 'production', HOME: '/nonexistent', ...o.env };
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  // private mount namespace: these mounts go away when the command ends, whatever happens
  const script = [
    `mount -t proc proc ${q(`${root}/proc`)}`,
    `mount --rbind /sys ${q(`${root}/sys`)}`,
    `mount --rbind /dev ${q(`${root}/dev`)}`,
    `exec chroot ${o.user ? `--userspec=${q(o.user)} ` : ''}${q(root)} env -i ${Object.entries(env)
      .map(([k, v]) => q(`${k}=${v}`))
      .join(' ')} ${argv.map(q).join(' ')}`,
  ].join(' && ');
  // unshare and sh exec into chroot, env and the command: the child's PID is the command's
  return { cmd: 'unshare', args: ['--mount', '--propagation', 'private', 'sh', '-c', script] };
}

/** Runs argv inside the image's filesystem and waits for it. */
export function chrootRun(root: string, argv: string[], o: ChrootOptions = {}): Promise<Run> {
  const { cmd, args } = chrootArgv(root, argv, o);
  return run(cmd, args, { timeoutMs: 600_000 });
}

/** Starts argv inside the image's filesystem; the caller stops it (by its PID). */
export function chrootSpawn(root: string, argv: string[], o: ChrootOptions = {}): ChildProcess {
  const { cmd, args } = chrootArgv(root, argv, o);
  return spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Takes the machine's CPU lock (/tmp/vio4wd-cpu.lock, shared by every DPDK poller and QEMU
 * guest); resolves once held. The holder is a child process that keeps it until release().
 */
export function cpuLock(): Promise<{ release: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const holder = spawn('flock', ['/tmp/vio4wd-cpu.lock', 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let held = false;
    const exited = new Promise<void>((r) => holder.on('close', () => r()));
    holder.on('error', reject);
    holder.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (held || !d.includes('locked')) return;
      held = true;
      resolve({
        release: async () => {
          holder.stdin.end();
          await exited;
        },
      });
    });
    holder.on('close', (code) => {
      if (!held) reject(new Error(`flock /tmp/vio4wd-cpu.lock exited with ${code} before taking the lock`));
    });
  });
}
