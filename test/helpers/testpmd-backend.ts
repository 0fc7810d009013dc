// dpdk-testpmd as a stand-in relay for guest tests: a net_tap "VF" (its tap interface in the
// test's netns) forwarded (io mode) to a net_vhost port on the guest's vhost-user socket.
// It is the reference backend, not vio4wd's engine: tests of the guest helper and the
// migration benchmark's baseline use it.
import { createWriteStream, existsSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Netns, TrackedProcess } from './netns.js';
import { until } from './wait.js';

export interface TestpmdBackendOptions {
  /** Namespace that testpmd (and so its tap interface) lives in. */
  netns: Netns;
  /** vhost-user socket path of the guest NIC. */
  socketPath: string;
  /** true: testpmd connects to a socket QEMU created (QEMU in server mode). Default false: testpmd creates it. */
  vhostClient?: boolean;
  /** Queue pairs on both ports (default 1). */
  queues?: number;
  /** Name of the tap interface created in the namespace (the VF stand-in), at most 15 characters. */
  tapName: string;
  /**
   * MAC of the tap interface. Default: derived from tapName, so a restarted backend keeps it
   * (a new MAC would leave the guest's ARP entry pointing at the old one for up to a minute).
   */
  tapMac?: string;
  /** EAL --lcores (default '0@1,1@1': main and forwarding lcore on CPU 1). */
  lcores?: string;
  /** Directory for the log file (testpmd-<tap>-<n>.log). */
  workDir: string;
}

let counter = 0;

export class TestpmdBackend {
  private constructor(
    readonly opts: TestpmdBackendOptions,
    readonly proc: TrackedProcess,
    readonly logPath: string,
    private readonly log: () => string,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  /** Everything testpmd printed so far. */
  output(): string {
    return this.log();
  }

  /**
   * Starts testpmd and waits until its tap interface exists and, when testpmd is the vhost-user
   * server, its socket exists (the mbuf pool setup under --in-memory can take seconds).
   */
  static async start(opts: TestpmdBackendOptions, timeoutMs = 60_000): Promise<TestpmdBackend> {
    const queues = opts.queues ?? 1;
    const prefix = `vio4wd-tpmd-${process.pid}-${++counter}`;
    const vhost = [`net_vhost${counter}`, `iface=${opts.socketPath}`, `queues=${queues}`];
    if (opts.vhostClient) vhost.push('client=1');
    const args = [
      '--lcores', opts.lcores ?? '0@1,1@1',
      '--in-memory', '--no-pci', '--file-prefix', prefix, '--log-level', 'lib.eal:notice',
      '--vdev', `net_tap${counter},iface=${opts.tapName},mac=${opts.tapMac ?? macFor(opts.tapName)}`,
      '--vdev', vhost.join(','),
      '--',
      '--forward-mode=io', '--auto-start', '--nb-cores=1', `--rxq=${queues}`, `--txq=${queues}`,
    ];
    // a socket left by a killed predecessor makes rte_vhost's bind fail
    if (!opts.vhostClient) rmSync(opts.socketPath, { force: true });
    const logPath = join(opts.workDir, `testpmd-${opts.tapName}-${counter}.log`);
    const file = createWriteStream(logPath);
    let text = '';
    // stdin stays an open pipe: testpmd without -i exits when its stdin reaches EOF.
    // stdbuf: line-buffered stdout, so "Press enter to exit" (ports started) arrives at once.
    const proc = opts.netns.spawn('stdbuf', ['-oL', 'dpdk-testpmd', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    for (const s of [proc.child.stdout, proc.child.stderr]) {
      s?.on('data', (d: Buffer) => {
        text += d.toString();
        file.write(d);
      });
    }
    void proc.exited.then(() => file.end());
    const backend = new TestpmdBackend(opts, proc, logPath, () => text);
    let exited = false;
    void proc.exited.then(() => (exited = true));
    try {
      await until(
        `dpdk-testpmd ready (tap ${opts.tapName}, socket ${opts.socketPath})`,
        async () => (await opts.netns.hasLink(opts.tapName)) && (opts.vhostClient || existsSync(opts.socketPath)) && text.includes('Press enter to exit'),
        { timeoutMs, intervalMs: 100, detail: () => tail(text), failIf: () => (exited ? `dpdk-testpmd exited during start-up:\n${tail(text)}` : undefined) },
      );
    } catch (e) {
      if (!exited) await backend.stop();
      throw e;
    }
    return backend;
  }

  /** Kills testpmd with SIGKILL, as a crash would (its socket file stays behind). */
  async kill(): Promise<void> {
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
  }

  /** Asks testpmd to quit (Enter on stdin), kills it by PID if it does not, and removes its socket. */
  async stop(): Promise<void> {
    const c = this.proc.child;
    if (c.exitCode === null && c.signalCode === null) {
      c.stdin?.write('\n');
      const timer = setTimeout(() => void this.proc.stop(1000), 5000);
      await this.proc.exited;
      clearTimeout(timer);
    }
    if (!this.opts.vhostClient) rmSync(this.opts.socketPath, { force: true });
  }
}

function macFor(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return ['02', '76', '34', h[0], h[1], h[2]].map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b)).join(':');
}

function tail(s: string, lines = 30): string {
  return s.split('\n').slice(-lines).join('\n');
}
