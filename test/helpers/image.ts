// The container image for tests: podman builds the Dockerfile (chroot isolation: containers cannot
// run on these machines), then a created container's filesystem is mounted and commands run in a
// chroot of it, in a private mount namespace (with /proc, /sys and /dev) that vanishes with the
// command. Base images come from scripts/podman-base-images.sh (debootstrap; cached).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
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

/** debian:bookworm-slim and node:26-bookworm-slim, made locally (minutes the first time). */
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

/** The machine's DPDK build (scripts/bootstrap.d/35-dpdk.sh, named in native/dpdk.env). */
export interface MachineDpdk {
  /** /opt/vio4wd-dpdk/<version>-ports<N>, the prefix compiled in (a link to the cached files) */
  prefix: string;
  /** where its files are: the image build's `--build-context dpdk=` */
  files: string;
  /** upstream version (22.11.11) and ethdev ports: the Dockerfile's DPDK_VERSION, DPDK_MAX_PORTS */
  version: string;
  maxPorts: number;
}

/** The DPDK this machine built with scripts/build-dpdk.sh, or why there is none. */
export function machineDpdk(): MachineDpdk | string {
  const env = join(ROOT, 'native', 'dpdk.env');
  if (!existsSync(env)) return 'native/dpdk.env is missing (scripts/bootstrap writes it unless VIO4WD_DPDK_MAX_PORTS<=32)';
  const prefix = /^DPDK_PREFIX=(.+)$/m.exec(readFileSync(env, 'utf8'))?.[1]?.trim() ?? '';
  const m = /^\/opt\/vio4wd-dpdk\/([0-9.]+)-ports([0-9]+)$/.exec(prefix);
  if (!m) return `native/dpdk.env names ${prefix || 'no prefix'}, not a build of scripts/build-dpdk.sh (/opt/vio4wd-dpdk/<version>-ports<N>)`;
  if (!existsSync(join(prefix, '.complete'))) return `${prefix} is not a finished build (no .complete): run scripts/bootstrap`;
  return { prefix, files: realpathSync(prefix), version: m[1]!, maxPorts: Number(m[2]) };
}

export interface BuildOptions {
  target?: string;
  buildArgs?: Record<string, string>;
  /** Hand the machine's DPDK build to the Dockerfile (--build-context dpdk=...) instead of letting
   *  its dpdk-build stage compile the same thing again (10-17 minutes). Default true. */
  machineDpdk?: boolean;
}

/**
 * Builds the repository's Dockerfile into `tag` (layers cached by podman between runs). The image
 * the tag pointed at before is removed when nothing else uses it.
 */
export async function buildImage(tag: string, opts: BuildOptions = {}): Promise<BuiltImage> {
  const before = (await run('podman', ['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  const args = ['build', '--isolation', 'chroot', '--pull=never', '--layers', '-t', tag, '-f', 'Dockerfile'];
  const ca = caBundle();
  if (ca) args.push('--secret', `id=ca-certificates,src=${ca}`);
  if (opts.machineDpdk !== false) {
    const dpdk = machineDpdk();
    if (typeof dpdk === 'string') progress(`no DPDK build of this machine to hand in (${dpdk}): the Dockerfile builds DPDK itself (10-17 minutes)`);
    else args.push('--build-context', `dpdk=${dpdk.files}`, '--build-arg', `DPDK_VERSION=${dpdk.version}`, '--build-arg', `DPDK_MAX_PORTS=${dpdk.maxPorts}`);
  }
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
 * Takes the CPU lock named by $VIO4WD_CPU_LOCK (a flock file that developers sharing a machine
 * put around DPDK pollers and QEMU guests); resolves once held. The holder is a child process
 * that keeps it until release(). Without the variable it does nothing: the test runner already
 * runs one test file at a time, and a lock taken here would deadlock under `flock FILE npm test`.
 */
export function cpuLock(signal?: AbortSignal): Promise<{ release: () => Promise<void> }> {
  const file = process.env.VIO4WD_CPU_LOCK;
  if (!file) return Promise.resolve({ release: async () => undefined });
  return new Promise((resolve, reject) => {
    const holder = spawn('flock', [file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let held = false;
    const exited = new Promise<void>((r) => holder.on('close', () => r()));
    holder.on('error', reject);
    // `signal` (a test's t.signal) aborts when the test times out or ends: give up waiting, or
    // release, so that a timed-out test does not take the lock later and keep it to the end
    const onAbort = (): void => {
      holder.stdin.end(); // cat, which holds the lock, ends with its stdin
      if (!held) holder.kill('SIGTERM'); // flock still waiting
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    void exited.then(() => signal?.removeEventListener('abort', onAbort));
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
      if (!held) reject(new Error(`flock ${file} exited with ${code} before taking the lock`));
    });
  });
}
