// A real, small QEMU guest for tests: Debian kernel + busybox initramfs (built by
// scripts/bootstrap.d/60-guest.sh), virtio-net-pci NICs on vhost-user sockets, serial console
// on QEMU's stdio (parsed: boot, NICs, pings, command results), QMP on a unix socket (live
// migration). TCG only; guest memory is a shared memfd as vhost-user needs; `vectors=0` on the
// NICs because QEMU 7.2 under TCG crashes with MSI-X on vhost-user virtio-net.
import { existsSync, readFileSync, rmSync, createWriteStream, type WriteStream } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { onProcessExit } from './exit.js';
import { spawnTracked, testTempDir, type Netns, type TrackedProcess } from './netns.js';

// ---------------------------------------------------------------- the image
export interface GuestImage {
  dir: string;
  vmlinuz: string;
  initrd: string;
  kernelRelease: string;
  kernelPackage: string;
  busyboxVersion: string;
}

/** The guest image that bootstrap built: $VIO4WD_GUEST_DIR, else $VIO4WD_CACHE/guest/current. */
export function guestImage(): GuestImage {
  const cache = process.env.VIO4WD_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vio4wd');
  const dir = process.env.VIO4WD_GUEST_DIR ?? join(cache, 'guest', 'current');
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) {
    throw new Error(`no test guest image at ${dir} (manifest.json missing): run scripts/bootstrap (step 60-guest builds it) or set VIO4WD_GUEST_DIR`);
  }
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    vmlinuz: string; initrd: string; kernelRelease: string; kernelPackage: string; busyboxVersion: string;
  };
  return {
    dir,
    vmlinuz: join(dir, m.vmlinuz),
    initrd: join(dir, m.initrd),
    kernelRelease: m.kernelRelease,
    kernelPackage: m.kernelPackage,
    busyboxVersion: m.busyboxVersion,
  };
}

// ---------------------------------------------------------------- options
export interface GuestNicOptions {
  /** vhost-user socket path. */
  socketPath: string;
  /**
   * QEMU's role on the socket. 'client' (default): QEMU connects, with reconnect=1, so the
   * backend is the server and may restart. 'server': QEMU creates the socket and the backend
   * connects (the relay in client mode).
   */
  mode?: 'client' | 'server';
  /** Queue pairs offered by the device (default 1; > 1 sets mq=on). */
  queues?: number;
  /** Queue pairs the guest enables with ethtool -L (default: all offered). */
  guestQueues?: number;
  /** MAC address (default: a locally administered one unique to this process). */
  mac?: string;
  /** Address in the guest, CIDR (e.g. 10.0.0.2/24). */
  ip?: string;
  mtu?: number;
}

export type GuestJob =
  | { kind: 'ping'; peer: string; count: number; intervalS?: number; size?: number; dev?: string }
  | { kind: 'shell' }
  | { kind: 'command'; command: string }
  | { kind: 'none' };

export interface GuestOptions {
  /** Used in file names and errors. Letters, digits, '-'. */
  name?: string;
  /** Run QEMU inside this namespace (netns.spawn: killed when the namespace is destroyed). */
  netns?: Netns;
  /** One or two NICs. */
  nics: GuestNicOptions[];
  /** What the guest does once its NICs are up (default: shell). */
  job?: GuestJob;
  /** After the job: power off (default for ping/command) or stay in shell mode. */
  after?: 'poweroff' | 'shell';
  /** Guest RAM in MiB (default 256). */
  memoryMiB?: number;
  /** Host CPUs QEMU may run on, taskset list (default '0': the DPDK pollers use core 1). null: no pinning. */
  cpus?: string | null;
  /** Wait for an incoming migration on tcp:127.0.0.1:PORT (in QEMU's namespace). */
  incomingPort?: number;
  /** Directory for the QMP socket and logs (default: a new temp dir removed by stop()). */
  workDir?: string;
  /** Extra kernel command line words. */
  append?: string[];
  /** Extra QEMU arguments, appended as they are. */
  extraArgs?: string[];
  image?: GuestImage;
  /**
   * Run QEMU as this user and group from the start (setpriv, no supplementary groups), as
   * libvirt or KubeVirt run it: the work dir and the image must then be readable (and the work
   * dir writable) by that user.
   */
  runAs?: { user: string; group: string };
}

export interface GuestNicInfo { name: string; mac: string; ip: string; mtu: number; queues: number; maxQueues: number }
export interface PingResult { seq: number; rttMs: number; atMs: number }
export interface PingSummary { sent: number; received: number; lost: number }
export interface MigrationResult {
  status: string;
  totalTimeMs: number;
  downtimeMs: number;
  setupTimeMs: number;
  transferredBytes: number;
}

let guestCounter = 0;

function defaultMac(guestNo: number, nic: number): string {
  const h = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  const pid = process.pid;
  return `52:54:${h(pid >> 16)}:${h(pid >> 8)}:${h(pid)}:${h(guestNo * 4 + nic)}`;
}

/** Resolved options: what a migration target must repeat exactly. */
interface Resolved extends GuestOptions {
  name: string;
  nics: (GuestNicOptions & { mac: string; mode: 'client' | 'server'; queues: number })[];
  memoryMiB: number;
  image: GuestImage;
}

function resolve(opts: GuestOptions): Resolved {
  const no = ++guestCounter;
  const name = opts.name ?? `guest${no}`;
  if (!/^[A-Za-z0-9-]{1,40}$/.test(name)) throw new Error(`guest name "${name}": use 1-40 of A-Z a-z 0-9 -`);
  if (opts.nics.length < 1 || opts.nics.length > 2) throw new Error(`nics: give 1 or 2 NICs (got ${opts.nics.length})`);
  const nics = opts.nics.map((n, i) => {
    const queues = n.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > 32) throw new Error(`nics[${i}].queues: an integer 1..32 (got ${queues})`);
    if (n.guestQueues !== undefined && (n.guestQueues < 1 || n.guestQueues > queues)) {
      throw new Error(`nics[${i}].guestQueues: 1..queues (${queues}), got ${n.guestQueues}`);
    }
    if (n.mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(n.mac)) throw new Error(`nics[${i}].mac: like 52:54:00:12:34:56 (got ${n.mac})`);
    if (n.ip && !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(n.ip)) throw new Error(`nics[${i}].ip: an IPv4 CIDR like 10.0.0.2/24 (got ${n.ip})`);
    return { ...n, queues, mode: n.mode ?? 'client', mac: n.mac ?? defaultMac(no, i) };
  });
  return { ...opts, name, nics, memoryMiB: opts.memoryMiB ?? 256, image: opts.image ?? guestImage() };
}

function kernelCommandLine(o: Resolved): string {
  const w = ['console=ttyS0', 'panic=-1', 'quiet', `vio4wd.nics=${o.nics.length}`];
  o.nics.forEach((n, i) => {
    if (n.ip) w.push(`vio4wd.ip${i}=${n.ip}`);
    if (n.mtu) w.push(`vio4wd.mtu${i}=${n.mtu}`);
    if (n.guestQueues) w.push(`vio4wd.queues${i}=${n.guestQueues}`);
  });
  const job = o.job ?? { kind: 'shell' };
  switch (job.kind) {
    case 'ping':
      w.push('vio4wd.run=ping', `vio4wd.peer=${job.peer}`, `vio4wd.count=${job.count}`, `vio4wd.interval=${job.intervalS ?? 1}`);
      if (job.size) w.push(`vio4wd.size=${job.size}`);
      if (job.dev) w.push(`vio4wd.pingdev=${job.dev}`);
      break;
    case 'command':
      w.push(`vio4wd.run=b64:${Buffer.from(job.command).toString('base64')}`);
      break;
    default:
      w.push(`vio4wd.run=${job.kind}`);
  }
  if (o.after) w.push(`vio4wd.after=${o.after}`);
  w.push(...(o.append ?? []));
  const line = w.join(' ');
  // x86 COMMAND_LINE_SIZE
  if (line.length > 2000) throw new Error(`kernel command line too long (${line.length} > 2000): shorten job.command`);
  return line;
}

/** QEMU's argument list (without the binary) for resolved options and a QMP socket path. */
function qemuArgs(o: Resolved, qmpPath: string): string[] {
  const mem = o.memoryMiB;
  const a = [
    '-name', o.name,
    '-nodefaults', '-no-user-config', '-display', 'none', '-accel', 'tcg',
    '-m', `${mem}M`,
    '-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`, '-numa', 'node,memdev=mem',
    '-kernel', o.image.vmlinuz, '-initrd', o.image.initrd, '-append', kernelCommandLine(o),
    '-chardev', 'stdio,id=con0,signal=off', '-serial', 'chardev:con0',
    '-qmp', `unix:${qmpPath},server=on,wait=off`,
    '-no-reboot',
  ];
  o.nics.forEach((n, i) => {
    const chr = [`socket,id=vhu${i}`, `path=${n.socketPath}`];
    chr.push(n.mode === 'server' ? 'server=on,wait=off' : 'reconnect=1');
    const dev = [`virtio-net-pci,netdev=net${i}`, `mac=${n.mac}`, 'vectors=0', 'romfile='];
    if (n.queues > 1) dev.push('mq=on');
    a.push('-chardev', chr.join(','), '-netdev', `vhost-user,id=net${i},chardev=vhu${i},queues=${n.queues}`, '-device', dev.join(','));
  });
  if (o.incomingPort !== undefined) a.push('-incoming', `tcp:127.0.0.1:${o.incomingPort}`);
  a.push(...(o.extraArgs ?? []));
  return a;
}

/** The guest kernel command line for these options (e.g. for a libvirt domain's <cmdline>). */
export function guestKernelAppend(opts: GuestOptions): string {
  return kernelCommandLine(resolve(opts));
}

/** The full QEMU command line the helper would run for these options (for logs and bug reports). */
export function guestCommandLine(opts: GuestOptions, qmpPath = '/tmp/qmp.sock'): string[] {
  return ['qemu-system-x86_64', ...qemuArgs(resolve(opts), qmpPath)];
}

// ---------------------------------------------------------------- QMP
class Qmp {
  private sock?: Socket;
  private buf = '';
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private greeted?: Promise<void>;
  readonly events: { event: string; data?: unknown }[] = [];

  constructor(private readonly path: string, private readonly label: string) {}

  private connect(timeoutMs: number): Promise<void> {
    this.greeted ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      while (!existsSync(this.path)) {
        if (Date.now() > deadline) throw new Error(`${this.label}: QMP socket ${this.path} did not appear`);
        await sleep(50);
      }
      const sock = createConnection(this.path);
      this.sock = sock;
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`${this.label}: no QMP greeting within ${timeoutMs} ms`)), timeoutMs);
        let greeted = false;
        sock.on('data', (d: Buffer) => {
          this.buf += d.toString();
          let nl;
          while ((nl = this.buf.indexOf('\n')) >= 0) {
            const line = this.buf.slice(0, nl).trim();
            this.buf = this.buf.slice(nl + 1);
            if (!line) continue;
            const msg = JSON.parse(line) as { QMP?: unknown; event?: string; data?: unknown; return?: unknown; error?: { desc: string } };
            if (msg.QMP) {
              greeted = true;
              clearTimeout(timer);
              res();
            } else if (msg.event) {
              this.events.push({ event: msg.event, data: msg.data });
            } else {
              const p = this.pending.shift();
              if (msg.error) p?.reject(new Error(`${this.label}: QMP error: ${msg.error.desc}`));
              else p?.resolve(msg.return);
            }
          }
        });
        sock.on('error', (e) => {
          if (!greeted) {
            clearTimeout(timer);
            rej(new Error(`${this.label}: QMP connect ${this.path}: ${e.message}`));
          }
          for (const p of this.pending.splice(0)) p.reject(e);
        });
        sock.on('close', () => {
          for (const p of this.pending.splice(0)) p.reject(new Error(`${this.label}: QMP connection closed`));
        });
      });
      await this.send('qmp_capabilities', undefined);
    })();
    return this.greeted;
  }

  private send(execute: string, args: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock!.write(JSON.stringify(args === undefined ? { execute } : { execute, arguments: args }) + '\n');
    });
  }

  async command(execute: string, args?: unknown, timeoutMs = 60_000): Promise<unknown> {
    await this.connect(timeoutMs);
    return this.send(execute, args);
  }

  close(): void {
    this.sock?.destroy();
  }
}

// ---------------------------------------------------------------- the guest
interface Waiter { re: RegExp; from: number; resolve: (m: { match: RegExpExecArray; index: number }) => void; reject: (e: Error) => void }

const ERROR_RE = /VIO4WD-ERROR msg=(.*)$/;

/** A running QEMU guest. Create with Guest.start(); always stop() it (after()/finally). */
export class Guest extends EventEmitter {
  /** Serial console lines so far (\r stripped). */
  readonly lines: string[] = [];
  /** Host time (ms since QEMU was spawned) at which each line arrived. */
  readonly lineTimes: number[] = [];
  readonly startedAt = Date.now();
  private partial = '';
  private stderrText = '';
  private waiters: Waiter[] = [];
  private exitCode: number | string | undefined;
  private execId = 0;
  private readonly qmpClient: Qmp;
  private readonly ownWorkDir: boolean;
  private readonly unregister: () => void;
  private readonly serialLog: WriteStream;

  private constructor(
    readonly options: Resolved,
    readonly workDir: string,
    readonly qmpPath: string,
    readonly proc: TrackedProcess,
    ownWorkDir: boolean,
  ) {
    super();
    this.ownWorkDir = ownWorkDir;
    this.qmpClient = new Qmp(qmpPath, options.name);
    this.serialLog = createWriteStream(join(workDir, `${options.name}.serial.log`));
    proc.child.stdout?.on('data', (d: Buffer) => this.onSerial(d.toString()));
    proc.child.stderr?.on('data', (d: Buffer) => {
      this.stderrText += d.toString();
    });
    void proc.exited.then((code) => {
      this.exitCode = code;
      if (this.partial) this.pushLine(this.partial);
      this.serialLog.end();
      for (const w of this.waiters.splice(0)) w.reject(this.failure(`QEMU exited (${code}) before ${w.re}`));
      this.emit('exit', code);
    });
    const paths = this.ownedPaths();
    this.unregister = onProcessExit(() => {
      for (const p of paths) rmSync(p, { recursive: true, force: true });
    });
  }

  get name(): string {
    return this.options.name;
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** QEMU's exit code (or signal), undefined while it runs. */
  get exited(): number | string | undefined {
    return this.exitCode;
  }

  /**
   * Spawns QEMU. Returns at once (QEMU itself blocks until every vhost-user backend is
   * connected); for NICs in 'server' mode it first waits until QEMU has created the socket,
   * so the backend can connect right after.
   */
  static async start(opts: GuestOptions): Promise<Guest> {
    const o = resolve(opts);
    const ownWorkDir = !opts.workDir;
    const workDir = opts.workDir ?? testTempDir(o.name.toLowerCase().slice(0, 30)).path;
    const qmpPath = join(workDir, `${o.name}.qmp`);
    rmSync(qmpPath, { force: true });
    for (const n of o.nics) if (n.mode === 'server') rmSync(n.socketPath, { force: true });
    let cmd = 'qemu-system-x86_64';
    let args = qemuArgs(o, qmpPath);
    if (opts.runAs) {
      args = ['--reuid', opts.runAs.user, '--regid', opts.runAs.group, '--clear-groups', cmd, ...args];
      cmd = 'setpriv';
    }
    const cpus = opts.cpus === undefined ? '0' : opts.cpus;
    if (cpus !== null) {
      args = ['-c', cpus, cmd, ...args];
      cmd = 'taskset';
    }
    const spawnOpts = { stdio: ['pipe', 'pipe', 'pipe'] as ('pipe')[] };
    const proc = o.netns ? o.netns.spawn(cmd, args, spawnOpts) : spawnTracked(cmd, args, spawnOpts);
    const g = new Guest(o, workDir, qmpPath, proc, ownWorkDir);
    const deadline = Date.now() + 15_000;
    for (const n of o.nics.filter((x) => x.mode === 'server')) {
      while (!existsSync(n.socketPath)) {
        if (g.exitCode !== undefined) throw g.failure(`QEMU exited (${g.exitCode}) before creating ${n.socketPath}`);
        if (Date.now() > deadline) {
          await g.stop();
          throw g.failure(`QEMU did not create ${n.socketPath} within 15 s`);
        }
        await sleep(50);
      }
    }
    return g;
  }

  /**
   * Starts a second QEMU with this guest's exact configuration (MACs, queues, kernel command
   * line) waiting for an incoming migration on `port`, with its NICs on `socketPaths`
   * (and optionally other socket modes). Migrate with source.migrateTo(target).
   */
  static startMigrationTarget(
    source: Guest,
    t: { port: number; socketPaths: string[]; modes?: ('client' | 'server')[]; name?: string; netns?: Netns; workDir?: string },
  ): Promise<Guest> {
    const s = source.options;
    if (t.socketPaths.length !== s.nics.length) throw new Error(`socketPaths: give ${s.nics.length} paths, one per NIC of ${s.name}`);
    return Guest.start({
      ...s,
      name: t.name ?? `${s.name}-in`,
      netns: t.netns ?? s.netns,
      workDir: t.workDir ?? source.workDir,
      nics: s.nics.map((n, i) => ({ ...n, socketPath: t.socketPaths[i]!, mode: t.modes?.[i] ?? n.mode })),
      incomingPort: t.port,
    });
  }

  // ------------------------------------------------ serial console
  private onSerial(text: string): void {
    this.serialLog.write(text);
    this.partial += text;
    let nl;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r/g, '');
      this.partial = this.partial.slice(nl + 1);
      this.pushLine(line);
    }
  }

  private pushLine(line: string): void {
    const index = this.lines.length;
    this.lines.push(line);
    this.lineTimes.push(Date.now() - this.startedAt);
    this.emit('line', line);
    const err = ERROR_RE.exec(line);
    for (const w of [...this.waiters]) {
      const m = w.re.exec(line);
      if (m && index >= w.from) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve({ match: m, index });
      } else if (err) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.reject(this.failure(`the guest reported an error: ${err[1]}`));
      }
    }
  }

  /** An Error that carries the tail of the console and QEMU's stderr. */
  failure(msg: string): Error {
    const tail = this.lines.slice(-25).join('\n');
    return new Error(`${this.name}: ${msg}\n--- serial (last lines)\n${tail}\n--- qemu stderr\n${this.stderrText.trim()}\n---`);
  }

  /** QEMU's stderr so far. */
  stderr(): string {
    return this.stderrText;
  }

  /**
   * Resolves with the first console line at index >= from (default 0: lines already seen
   * count) that matches `re`. Rejects on timeout, QEMU exit or a VIO4WD-ERROR line.
   */
  waitForLine(re: RegExp, timeoutMs = 60_000, from = 0): Promise<{ match: RegExpExecArray; index: number }> {
    for (let i = from; i < this.lines.length; i++) {
      const m = re.exec(this.lines[i]!);
      if (m) return Promise.resolve({ match: m, index: i });
    }
    if (this.exitCode !== undefined) return Promise.reject(this.failure(`QEMU exited (${this.exitCode}) before ${re}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(this.failure(`no console line matching ${re} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        re,
        from,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** NICs as the guest reported them (VIO4WD-NIC lines). */
  get nics(): GuestNicInfo[] {
    const out: GuestNicInfo[] = [];
    for (const l of this.lines) {
      const m = /VIO4WD-NIC name=(\S+) mac=(\S+) ip=(\S+) mtu=(\d+) queues=(\d+) maxqueues=(\d+)/.exec(l);
      if (m) out.push({ name: m[1]!, mac: m[2]!, ip: m[3]!, mtu: Number(m[4]), queues: Number(m[5]), maxQueues: Number(m[6]) });
    }
    return out;
  }

  /** Waits until the guest's NICs are configured; returns them and the host ms since spawn. */
  async waitForReady(timeoutMs = 120_000): Promise<{ nics: GuestNicInfo[]; uptimeS: number; readyAtMs: number }> {
    const { match, index } = await this.waitForLine(/VIO4WD-READY nics=\d+ uptime=([\d.]+)/, timeoutMs);
    return { nics: this.nics, uptimeS: Number(match[1]), readyAtMs: this.lineTimes[index]! };
  }

  /** Ping replies seen on this QEMU's console from line `from` on (a migrated guest continues on the target's). */
  pingsSince(from = 0): PingResult[] {
    const out: PingResult[] = [];
    for (let i = from; i < this.lines.length; i++) {
      const m = /VIO4WD-PING seq=(\d+) rtt_ms=([\d.]+)/.exec(this.lines[i]!);
      if (m) out.push({ seq: Number(m[1]), rttMs: Number(m[2]), atMs: this.lineTimes[i]! });
    }
    return out;
  }

  /** All ping replies seen on this QEMU's console. */
  get pings(): PingResult[] {
    return this.pingsSince(0);
  }

  /** Waits for the n-th ping reply on this console (1-based, counted from line `from`) and returns it. */
  async waitForPings(n: number, timeoutMs = 120_000, from = 0): Promise<PingResult> {
    const deadline = Date.now() + timeoutMs;
    let next = from;
    for (;;) {
      const got = this.pingsSince(from);
      if (got.length >= n) return got[n - 1]!;
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure(`only ${got.length} of ${n} ping replies within ${timeoutMs} ms`);
      const { index } = await this.waitForLine(/VIO4WD-PING seq=/, left, next);
      next = index + 1;
    }
  }

  /** Waits for a ping summary line (at line `from` or later). */
  async waitForPingSummary(timeoutMs = 120_000, from = 0): Promise<PingSummary> {
    const { match } = await this.waitForLine(/VIO4WD-PING-SUMMARY sent=(\d+) received=(\d+) lost=(-?\d+)/, timeoutMs, from);
    return { sent: Number(match[1]), received: Number(match[2]), lost: Number(match[3]) };
  }

  /**
   * Shell mode: starts a background ping of `peer` (count 0: until stopPing) whose replies
   * appear as pings on the console. Returns the console line index to pass to
   * pingsSince/waitForPings/stopPing.
   */
  async startPing(p: { peer: string; count?: number; intervalS?: number; size?: number; dev?: string }): Promise<number> {
    for (const [k, v] of Object.entries(p)) {
      if (v !== undefined && !/^[A-Za-z0-9.:_-]+$/.test(String(v))) throw new Error(`startPing ${k}: unexpected characters in "${v}"`);
    }
    const from = this.lines.length;
    const args = [p.peer, p.count ?? 0, p.intervalS ?? 1, p.size ?? '""', p.dev ?? '""'].join(' ');
    const r = await this.exec(`vio4wd-ping ${args} </dev/null >/dev/console 2>&1 &`);
    if (r.rc !== 0) throw this.failure(`could not start vio4wd-ping (rc ${r.rc})`);
    return from;
  }

  /** Shell mode: stops the background ping (SIGINT) and returns its summary. */
  async stopPing(from: number, timeoutMs = 30_000): Promise<PingSummary> {
    await this.exec('killall -INT ping');
    return this.waitForPingSummary(timeoutMs, from);
  }

  /** Waits for the end of a 'command' job; returns its exit code. */
  async waitForCommandExit(timeoutMs = 120_000): Promise<number> {
    const { match } = await this.waitForLine(/VIO4WD-EXIT rc=(\d+)/, timeoutMs);
    return Number(match[1]);
  }

  /**
   * Runs a shell command in the guest over the serial console (job 'shell', or after: 'shell')
   * and returns its exit code and output lines.
   */
  async exec(command: string, timeoutMs = 60_000): Promise<{ rc: number; output: string[] }> {
    const ready = await this.waitForLine(/VIO4WD-SHELL\b/, timeoutMs);
    const id = ++this.execId;
    const from = Math.max(this.lines.length, ready.index + 1);
    this.proc.child.stdin?.write(`VIO4WD-EXEC ${id} ${Buffer.from(command).toString('base64')}\n`);
    const { match, index } = await this.waitForLine(new RegExp(`VIO4WD-DONE id=${id} rc=(\\d+)`), timeoutMs, from);
    return { rc: Number(match[1]), output: this.lines.slice(from, index) };
  }

  // ------------------------------------------------ QMP / migration
  /** Runs a QMP command (connects and negotiates on first use). */
  qmp(execute: string, args?: Record<string, unknown>, timeoutMs = 60_000): Promise<unknown> {
    return this.qmpClient.command(execute, args, timeoutMs);
  }

  /** Runs an HMP command line (e.g. 'info migrate') through QMP; returns its text. */
  async hmp(commandLine: string): Promise<string> {
    return (await this.qmp('human-monitor-command', { 'command-line': commandLine })) as string;
  }

  /** The run state from query-status ('running', 'inmigrate', 'postmigrate', 'paused', ...). */
  async runState(): Promise<string> {
    return ((await this.qmp('query-status')) as { status: string }).status;
  }

  /**
   * Live-migrates this guest to `target` (started by Guest.startMigrationTarget) over
   * tcp:127.0.0.1:<target's port> and waits for the end. Resolves with QEMU's figures once
   * the migration completed and the target runs; rejects when it failed or took longer than
   * timeoutMs. The source stays paused ('postmigrate') until stopped.
   */
  async migrateTo(target: Guest, timeoutMs = 120_000): Promise<MigrationResult> {
    const port = target.options.incomingPort;
    if (port === undefined) throw new Error(`${target.name} was not started with incomingPort`);
    // the target listens once its main loop runs, i.e. once its vhost-user backends are connected
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await target.runState();
      if (st === 'inmigrate') break;
      if (Date.now() > deadline) throw target.failure(`target never reached 'inmigrate' (state ${st})`);
      await sleep(100);
    }
    await this.qmp('migrate', { uri: `tcp:127.0.0.1:${port}` });
    for (;;) {
      const info = (await this.qmp('query-migrate')) as {
        status?: string; 'total-time'?: number; downtime?: number; 'setup-time'?: number;
        ram?: { transferred?: number }; 'error-desc'?: string;
      };
      if (info.status === 'completed') {
        // the source finishes first; the target still loads the last pages, then resumes
        for (;;) {
          const st = await target.runState();
          if (st === 'running') break;
          if (st !== 'inmigrate' && st !== 'postmigrate' && st !== 'prelaunch') throw target.failure(`target in state '${st}' after the migration`);
          if (Date.now() > deadline) throw target.failure(`target still '${st}' ${timeoutMs} ms after the migration started`);
          await sleep(20);
        }
        return {
          status: info.status,
          totalTimeMs: info['total-time'] ?? NaN,
          downtimeMs: info.downtime ?? NaN,
          setupTimeMs: info['setup-time'] ?? NaN,
          transferredBytes: info.ram?.transferred ?? NaN,
        };
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw this.failure(`migration ${info.status}: ${info['error-desc'] ?? 'no reason given'}`);
      }
      if (Date.now() > deadline) throw this.failure(`migration still '${info.status}' after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  // ------------------------------------------------ end
  /** Resolves with QEMU's exit code when it exits by itself (e.g. guest powered off). */
  async waitForExit(timeoutMs = 120_000): Promise<number | string> {
    if (this.exitCode !== undefined) return this.exitCode;
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(this.failure(`QEMU still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.proc.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  private ownedPaths(): string[] {
    const p = [this.qmpPath, ...this.options.nics.filter((n) => n.mode === 'server').map((n) => n.socketPath)];
    if (this.ownWorkDir) p.push(this.workDir);
    return p;
  }

  /** Kills QEMU (SIGTERM, then SIGKILL, by PID) and removes its QMP socket, the sockets it created and its own work dir. Idempotent. */
  async stop(): Promise<void> {
    this.qmpClient.close();
    await this.proc.stop(2000);
    for (const p of this.ownedPaths()) rmSync(p, { recursive: true, force: true });
    this.unregister();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
