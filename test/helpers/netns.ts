// Network namespaces for tests: unique names, veth pairs, bridges, addresses, processes run
// inside, and cleanup that happens even when a test fails or the process is killed:
// - destroy() (call it from after()/afterEach) kills the namespace's processes and deletes it;
// - the process-exit registry (exit.ts) does the same for whatever is left;
// - processes are started under `setpriv --pdeathsig SIGKILL`, so they die with this process
//   even if it is SIGKILLed; a namespace left behind by a killed run is swept by the next
//   create() (its name carries the PID of the process that made it).
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { killPid, onProcessExit } from './exit.js';
import { until } from './wait.js';

const execFileP = promisify(execFile);

const NS_PREFIX = 'vio4wd-t';
const NS_NAME_RE = new RegExp(`^${NS_PREFIX}(\\d+)-`);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------- tracked processes
/** A process started by a test helper; killed by PID at cleanup. */
export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns `cmd args` (inside `netns` if given) with a parent-death signal, registered for
 * cleanup at process exit. stdio defaults to ['pipe', 'pipe', 'pipe'].
 */
export function spawnTracked(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { netns?: string } = {},
): TrackedProcess {
  const argv = ['--pdeathsig', 'SIGKILL', '--'];
  if (opts.netns) argv.push('ip', 'netns', 'exec', opts.netns);
  argv.push(cmd, ...args);
  const { netns: _netns, ...spawnOpts } = opts;
  const child = spawn('setpriv', argv, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOpts });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const pid = child.pid;
  let unregister: () => void = () => undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      unregister();
      resolve(code ?? signal ?? -1);
    });
    child.once('error', () => {
      unregister();
      resolve(-1);
    });
  });
  unregister = onProcessExit(() => killPid(pid));
  return {
    child,
    pid,
    exited,
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killPid(pid, 'SIGTERM');
      const timer = setTimeout(() => killPid(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------- namespaces
async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { encoding: 'utf8' });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

function deleteNetnsSync(name: string): void {
  // the namespace's processes first: a namespace with live processes outlives `ip netns del`
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const p of pids.split(/\s+/).filter(Boolean)) killPid(Number(p));
  } catch {
    // namespace already gone
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

function staleNames(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((name) => {
    const m = NS_NAME_RE.exec(name);
    if (!m) return false;
    const pid = Number(m[1]);
    return pid !== process.pid && !pidAlive(pid);
  });
}

/**
 * Deletes what test runs that no longer exist (killed with SIGKILL) left behind: their
 * namespaces (killing the processes inside) and their temp dirs (testTempDir).
 */
export function sweepStaleNetns(): string[] {
  const swept: string[] = [];
  for (const name of staleNames('/run/netns')) {
    deleteNetnsSync(name);
    swept.push(name);
  }
  for (const name of staleNames(tmpdir())) {
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    swept.push(join(tmpdir(), name));
  }
  return swept;
}

/**
 * A new temp dir `<tmp>/vio4wd-t<pid>-<label>-XXXXXX` for sockets and logs. Removed at process
 * exit (or call the returned remove()), and swept by a later run if this process was killed.
 */
export function testTempDir(label: string): { path: string; remove: () => void } {
  if (!/^[a-z0-9-]{1,30}$/.test(label)) throw new Error(`temp dir label "${label}": use 1-30 of a-z, 0-9, -`);
  const path = mkdtempSync(join(tmpdir(), `${NS_PREFIX}${process.pid}-${label}-`));
  const rm = () => rmSync(path, { recursive: true, force: true });
  const unregister = onProcessExit(rm);
  return {
    path,
    remove: () => {
      rm();
      unregister();
    },
  };
}

let nsCounter = 0;

/** A network namespace owned by one test. Every method runs `ip` against this namespace. */
export class Netns {
  private destroyed = false;
  private readonly procs = new Set<TrackedProcess>();
  private readonly unregister: () => void;

  private constructor(readonly name: string) {
    this.unregister = onProcessExit(() => deleteNetnsSync(name));
  }

  /**
   * Creates a namespace named `vio4wd-t<pid>-<n>-<label>` with `lo` up. Sweeps namespaces left
   * by earlier runs that were killed. ipv6: false keeps IPv6 off on the interfaces created in it
   * (no router solicitations or MLD: packet counters stay exact).
   */
  static async create(label = 'ns', opts: { ipv6?: boolean } = {}): Promise<Netns> {
    if (!/^[a-z0-9-]{1,20}$/.test(label)) throw new Error(`netns label "${label}": use 1-20 of a-z, 0-9, -`);
    sweepStaleNetns();
    const name = `${NS_PREFIX}${process.pid}-${++nsCounter}-${label}`;
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    try {
      await ns.ip('link', 'set', 'lo', 'up');
      if (opts.ipv6 === false) {
        await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
        await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
      }
    } catch (e) {
      await ns.destroy();
      throw e;
    }
    return ns;
  }

  /** `ip -n <ns> ARGS...`; returns stdout. */
  ip(...args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace to completion; rejects on a non-zero exit. */
  exec(cmd: string, args: string[] = []): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }

  /** Starts a long-running command inside the namespace; it is killed by destroy() at the latest. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): TrackedProcess {
    this.assertAlive();
    const p = spawnTracked(cmd, args, { ...opts, netns: this.name });
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** A veth pair: `a` here, `b` here too or in `peerNs`. Both ends are brought up. */
  async addVeth(a: string, b: string, peerNs?: Netns): Promise<void> {
    checkIfName(a);
    checkIfName(b);
    const peer = ['peer', 'name', b];
    if (peerNs) peer.push('netns', peerNs.name);
    await this.ip('link', 'add', a, 'type', 'veth', ...peer);
    await this.linkUp(a);
    await (peerNs ?? this).linkUp(b);
  }

  /** A Linux bridge, up, with forwarding delay 0 so enslaved ports forward at once. */
  async addBridge(name: string): Promise<void> {
    checkIfName(name);
    await this.ip('link', 'add', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
    await this.linkUp(name);
  }

  /** Puts `ifname` into `bridge` and brings it up. */
  async setMaster(ifname: string, bridge: string): Promise<void> {
    await this.ip('link', 'set', ifname, 'master', bridge);
    await this.linkUp(ifname);
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    await this.ip('addr', 'add', cidr, 'dev', ifname);
  }

  async linkUp(ifname: string): Promise<void> {
    await this.ip('link', 'set', ifname, 'up');
  }

  async setMtu(ifname: string, mtu: number): Promise<void> {
    await this.ip('link', 'set', ifname, 'mtu', String(mtu));
  }

  /** True when the interface exists in this namespace. */
  async hasLink(ifname: string): Promise<boolean> {
    try {
      await this.ip('link', 'show', 'dev', ifname);
      return true;
    } catch {
      return false;
    }
  }

  /** Waits until an interface (e.g. a tap that DPDK creates) exists here. */
  async waitForLink(ifname: string, timeoutMs = 30_000): Promise<void> {
    await until(`interface ${ifname} in netns ${this.name}`, () => this.hasLink(ifname), { timeoutMs, intervalMs: 100 });
  }

  /** RX/TX packet counters of an interface (from `ip -s -j link`). */
  async linkStats(ifname: string): Promise<{ rxPackets: number; txPackets: number; rxBytes: number; txBytes: number }> {
    const out = JSON.parse(await this.ip('-s', '-j', 'link', 'show', 'dev', ifname)) as Array<{
      stats64: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } };
    }>;
    const s = out[0]?.stats64;
    if (!s) throw new Error(`no statistics for ${ifname} in netns ${this.name}`);
    return { rxPackets: s.rx.packets, txPackets: s.tx.packets, rxBytes: s.rx.bytes, txBytes: s.tx.bytes };
  }

  /** Stops the processes started here (SIGTERM, then SIGKILL), kills any other process left inside, deletes the namespace. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.procs].map((p) => p.stop(2000)));
    deleteNetnsSync(this.name);
    this.unregister();
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error(`netns ${this.name} was already destroyed`);
  }
}

function checkIfName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`interface name "${name}": 1-15 characters of A-Z a-z 0-9 _ . -`);
}
