// Real DPDK parts for engine tests: dpdk-testpmd peers (net_virtio_user on a relay's sockets,
// driven through its interactive prompt), an engine in a child process (optionally inside a
// network namespace). Everything started here is tracked and cleaned up by PID (testpmd also
// dies with this process: setpriv --pdeathsig), even when a test fails. Namespaces: netns.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onProcessExit } from './exit.js';
import { sleep, until } from './wait.js';

const tracked = new Set<ChildProcess>();
let hooked = false;
let seq = 0;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  onProcessExit(() => {
    for (const p of tracked) killProc(p);
  });
}

function killProc(p: ChildProcess, sig: NodeJS.Signals = 'SIGKILL'): void {
  if (p.pid && p.exitCode === null && p.signalCode === null) {
    try {
      process.kill(p.pid, sig);
    } catch {
      // gone already
    }
  }
}

export { sleep };

/** A unique name for DPDK --file-prefix, sockets and interfaces of this test process. */
export function uniqueName(tag: string): string {
  return `${tag}${process.pid % 100000}x${++seq}`;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `vio4wd-${tag}-`));
}

export function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

export const waitForSocket = async (path: string, timeoutMs = 10_000): Promise<void> => {
  await until(`socket ${path}`, () => isSocket(path), { timeoutMs, intervalMs: 20 });
};

// ------------------------------------------------------------------------------ testpmd

export interface TestpmdOptions {
  /** --vdev arguments, e.g. net_virtio_user0,path=/tmp/x.sock,queues=1 */
  vdevs: string[];
  /** CPU for both of testpmd's lcores (default 0: the engine's worker polls CPU 1). */
  cpu?: number;
  /** forwarding mode (default rxonly: count what arrives; tx_first sends). */
  fwd?: 'rxonly' | 'io' | 'txonly';
  burst?: number;
  queues?: number;
  /** extra testpmd application arguments (after --) */
  args?: string[];
  /** run in this network namespace */
  netns?: string;
  /** stop waiting for the prompt after this long (the in-memory mbuf pool can take seconds) */
  startTimeoutMs?: number;
}

export interface PortStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

/** dpdk-testpmd in interactive mode with its stdin kept open; one command at a time. */
export class Testpmd {
  private out = '';
  private exited = false;
  private constructor(
    private readonly proc: ChildProcess,
    readonly ports: number,
  ) {
    proc.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.on('exit', () => {
      this.exited = true;
      tracked.delete(proc);
    });
  }

  static async start(o: TestpmdOptions): Promise<Testpmd> {
    hookExit();
    const cpu = o.cpu ?? 0;
    const q = o.queues ?? 1;
    const argv = [
      '--pdeathsig', 'SIGKILL', '--', 'taskset', '-c', String(cpu), 'stdbuf', '-oL', 'dpdk-testpmd',
      '--lcores', `0@${cpu},1@${cpu}`, '--in-memory', '--no-pci', '--single-file-segments', '--log-level=5',
      `--file-prefix=${uniqueName('tp')}`,
      ...o.vdevs.flatMap((v) => ['--vdev', v]),
      '--', '-i', '--nb-cores=1', `--forward-mode=${o.fwd ?? 'rxonly'}`, `--burst=${o.burst ?? 8}`,
      `--rxq=${q}`, `--txq=${q}`, `--total-num-mbufs=${4096 * q}`,
      ...(o.vdevs.length === 1 ? ['--port-topology=loop'] : []),
      ...(o.args ?? []),
    ];
    const cmd = o.netns ? 'ip' : 'setpriv';
    const args = o.netns ? ['netns', 'exec', o.netns, 'setpriv', ...argv] : argv;
    const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    tracked.add(proc);
    const t = new Testpmd(proc, o.vdevs.length);
    try {
      await until('testpmd prompt', () => t.out.includes('testpmd> ') || t.exited, { timeoutMs: o.startTimeoutMs ?? 30_000, intervalMs: 20 }).catch((err: unknown) => {
        // what testpmd printed says where it stopped (EAL, a vdev's handshake, port start)
        throw new Error(`${(err as Error).message}; dpdk-testpmd ${argv.slice(argv.indexOf('dpdk-testpmd') + 1).join(' ')} printed:\n${t.out.slice(-2000)}`);
      });
      if (t.exited || /No probed ethernet devices|Fail/i.test(t.out.slice(0, t.out.indexOf('testpmd> '))))
        throw new Error(`dpdk-testpmd did not start its ports:\n${t.out.slice(-2000)}`);
    } catch (err) {
      t.kill();
      throw err;
    }
    return t;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get log(): string {
    return this.out;
  }

  /** Sends one command line and returns its output (up to the next prompt). */
  async cmd(line: string, timeoutMs = 10_000): Promise<string> {
    if (this.exited) throw new Error(`testpmd exited; cannot run "${line}"`);
    const from = this.out.length;
    this.proc.stdin?.write(`${line}\n`);
    await until(`testpmd to answer "${line}"`, () => this.out.indexOf('testpmd> ', from) >= 0 || this.exited, { timeoutMs, intervalMs: 10 });
    const end = this.out.indexOf('testpmd> ', from);
    return this.out.slice(from, end < 0 ? undefined : end);
  }

  async portStats(port: number): Promise<PortStats> {
    const text = await this.cmd(`show port stats ${port}`);
    const num = (re: RegExp): number => {
      const m = re.exec(text);
      if (!m?.[1]) throw new Error(`cannot parse port stats:\n${text}`);
      return Number(m[1]);
    };
    return {
      rxPackets: num(/RX-packets:\s+(\d+)/),
      rxBytes: num(/RX-bytes:\s+(\d+)/),
      txPackets: num(/TX-packets:\s+(\d+)/),
      txBytes: num(/TX-bytes:\s+(\d+)/),
    };
  }

  /** Waits until port `port` has received `packets` in total. */
  async waitRx(port: number, packets: number, timeoutMs = 10_000): Promise<PortStats> {
    let last: PortStats | undefined;
    return until(
      `port ${port} to receive ${packets} packets`,
      async () => {
        last = await this.portStats(port);
        return last.rxPackets >= packets ? last : undefined;
      },
      { timeoutMs, detail: () => `port ${port} received ${last?.rxPackets ?? 0} of ${packets} packets` },
    );
  }

  /** Link of a port as testpmd sees it. */
  async linkUp(port: number): Promise<boolean> {
    const text = await this.cmd(`show port info ${port}`);
    return /Link status:\s+up/i.test(text);
  }

  async quit(): Promise<void> {
    if (this.exited) return;
    this.proc.stdin?.write('quit\n');
    const end = Date.now() + 5000;
    while (!this.exited && Date.now() < end) await sleep(20);
    this.kill();
  }

  kill(): void {
    killProc(this.proc);
  }

  async waitExit(timeoutMs = 5000): Promise<void> {
    await until('testpmd to exit', () => this.exited, { timeoutMs, intervalMs: 20 });
  }
}

// ------------------------------------------------------------------ engine in a child process

const CHILD = fileURLToPath(new URL('./engine-child.ts', import.meta.url));

interface Reply {
  seq: number;
  ok: boolean;
  value?: unknown;
  error?: { code: string; message: string };
}

/** An Engine in its own process (DPDK starts once per process), driven over JSON lines. */
export class EngineChild {
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private n = 0;
  readonly events: { type: string; relayId: number; [k: string]: unknown }[] = [];
  private exited = false;
  stderr = '';

  private constructor(private readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let msg: Reply & { event?: { type: string; relayId: number } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.event) this.events.push(msg.event);
      else this.waiting.get(msg.seq)?.(msg);
    });
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    proc.on('exit', () => {
      this.exited = true;
      tracked.delete(proc);
      for (const [seq, fn] of this.waiting) fn({ seq, ok: false, error: { code: 'EXITED', message: `engine child exited:\n${this.stderr.slice(-2000)}` } });
      this.waiting.clear();
    });
  }

  /** Starts the child (inside `netns`, pinned to `cpus` when given); no engine runs until
   *  call('start'). */
  static spawn(opts: { netns?: string; cpus?: string } = {}): EngineChild {
    hookExit();
    let argv = [process.execPath, '--import', 'tsx', CHILD];
    if (opts.cpus !== undefined) argv = ['taskset', '-c', opts.cpus, ...argv];
    if (opts.netns !== undefined) argv = ['ip', 'netns', 'exec', opts.netns, ...argv];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    tracked.add(proc);
    return new EngineChild(proc);
  }

  /** Calls an Engine method in the child; rejects with an Error carrying the engine's code. */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(new Error('engine child exited'));
    const seq = ++this.n;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(seq, (r) => {
        this.waiting.delete(seq);
        if (r.ok) resolve(r.value as T);
        else reject(Object.assign(new Error(r.error?.message ?? 'failed'), { code: r.error?.code }));
      });
      this.proc.stdin!.write(`${JSON.stringify({ seq, method, args })}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    this.proc.stdin!.end();
    const end = Date.now() + 15_000;
    while (!this.exited && Date.now() < end) await sleep(20);
    killProc(this.proc);
  }
}

/** Removes a directory tree (sockets of a test), ignoring what is already gone. */
export function removeDir(dir: string): void {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
