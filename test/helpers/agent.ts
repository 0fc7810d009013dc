// The real `vio4wd agent` as a child process (the same code the DaemonSet runs), optionally
// inside a test network namespace, with its JSON logs collected and parsed.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { spawnTracked, type Netns, type TrackedProcess } from './netns.js';
import { until } from './wait.js';

const execFileP = promisify(execFile);

export interface AgentProcessOptions {
  /** Agent configuration (written as YAML), or the path of a config file. */
  config: Record<string, unknown> | string;
  /** Run `vio4wd COMMAND...` instead of `vio4wd agent --config ...` (virtio-forwarder's flags). */
  command?: string[];
  /** Directory for the config file and logs. */
  workDir: string;
  netns?: Netns;
  /** Extra `vio4wd agent` flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for "vio4wd agent running" (default true). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
}

export interface LogLine {
  level: number;
  msg: string;
  component?: string;
  [k: string]: unknown;
}

/**
 * What the image (Dockerfile ENV) and packaging/systemd/vio4wd.service give the agent: at most 2
 * malloc arenas. glibc's default, 8 per core, spread relay set-up over an arena per thread whose
 * freed pages stayed resident (issue #20; bench/churn-memory.ts, bench/RESULTS.md K).
 */
export const AGENT_ENV: NodeJS.ProcessEnv = { MALLOC_ARENA_MAX: '2' };

export interface AgentMemory {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** V8's heap spaces: committed (size) and resident (physical) bytes, and what is used */
  spaces: Record<string, { size: number; physical: number; used: number }>;
  /** the addon's mallinfo2 (Engine.nativeHeap), absent before the agent loaded the addon */
  nativeHeap?: { arenaBytes: number; mmapBytes: number; inUseBytes: number; freeBytes: number; arenas: number };
  /** the same just before the GC: what was resident as the agent ran (the young generation at
   *  the size V8 had grown it to; a forced full GC shrinks it) */
  beforeGc?: Omit<AgentMemory, 'beforeGc'>;
}

/** Runs in the agent: its memory as V8 and malloc see it, as JSON. */
const MEMORY_EXPRESSION = `(() => {
  const mu = process.memoryUsage();
  const spaces = {};
  for (const s of process.getBuiltinModule('v8').getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, physical: s.physical_space_size, used: s.space_used_size };
  const cache = process.getBuiltinModule('module').createRequire('/').cache;
  const addon = Object.keys(cache).find((k) => k.endsWith('.node') && typeof cache[k].exports?.nativeHeap === 'function');
  return JSON.stringify({ rssBytes: mu.rss, heapUsedBytes: mu.heapUsed, heapTotalBytes: mu.heapTotal, externalBytes: mu.external, arrayBuffersBytes: mu.arrayBuffers, spaces, nativeHeap: addon ? cache[addon].exports.nativeHeap() : undefined });
})()`;

/**
 * Runs in the agent's namespace: connects to its inspector (DevTools URL argv[3]), forces a full
 * GC, evaluates argv[1] (by value) and prints it; with argv[2], first writes a heap snapshot there;
 * with argv[4] ('before'), evaluates it before the GC too and prints both as a JSON array.
 */
const INSPECTOR_SCRIPT = `
const [expr, snapshot, wsUrl, before] = process.argv.slice(1);
const ws = new WebSocket(wsUrl);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
const pending = new Map();
const chunks = [];
let id = 0;
ws.onmessage = (m) => {
  const d = JSON.parse(m.data);
  if (d.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(d.params.chunk);
  else pending.get(d.id)?.(d);
};
const call = (method, params = {}) => new Promise((r) => { pending.set(++id, r); ws.send(JSON.stringify({ id, method, params })); });
const evaluate = async () => {
  const ev = await call('Runtime.evaluate', { expression: expr, returnByValue: true });
  if (ev.result.exceptionDetails) throw new Error(JSON.stringify(ev.result.exceptionDetails));
  return ev.result.result.value;
};
await call('HeapProfiler.enable');
const first = before ? await evaluate() : undefined;
await call('HeapProfiler.collectGarbage');
if (snapshot) {
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  process.getBuiltinModule('fs').writeFileSync(snapshot, chunks.join(''));
}
const value = await evaluate();
ws.close();
process.stdout.write(before ? JSON.stringify([first, value]) : String(value));`;

export class AgentProcess {
  private out = '';
  /** the inspector was opened (heapAfterGc) */
  private inspecting = false;
  private constructor(
    readonly proc: TrackedProcess,
    readonly configPath: string,
    private readonly netns: Netns | undefined,
  ) {
    proc.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    proc.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
  }

  static async start(o: AgentProcessOptions): Promise<AgentProcess> {
    const configPath = typeof o.config === 'string' ? o.config : join(o.workDir, 'agent.yaml');
    if (typeof o.config !== 'string') writeFileSync(configPath, stringify(o.config));
    const args = o.command ? ['bin/vio4wd.js', ...o.command] : ['bin/vio4wd.js', 'agent', '--config', configPath, ...(o.args ?? [])];
    // malloc's arenas capped as the image and the systemd unit do (undefined in o.env unsets it)
    const spawnOpts = { stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[], env: { ...AGENT_ENV, ...process.env, ...o.env } };
    const proc = o.netns ? o.netns.spawn(process.execPath, args, spawnOpts) : spawnTracked(process.execPath, args, spawnOpts);
    const a = new AgentProcess(proc, configPath, o.netns);
    if (o.waitReady ?? true) await a.waitForLog(/"msg":"vio4wd agent running"/, o.readyTimeoutMs ?? 60_000);
    return a;
  }

  get pid(): number {
    return this.proc.pid;
  }

  get output(): string {
    return this.out;
  }

  get exitCode(): number | null {
    return this.proc.child.exitCode;
  }

  /** Parsed JSON log lines (other output, e.g. DPDK's own, is skipped). */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.out.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  async waitForLog(re: RegExp, timeoutMs = 30_000, from = 0): Promise<string> {
    const child = this.proc.child;
    const found = await until(`${re} in the agent's log`, () => re.exec(this.out.slice(from)), {
      timeoutMs,
      detail: () => this.out.slice(-4000),
      // a match the agent wrote before it exited still counts
      failIf: () => (child.exitCode !== null || child.signalCode !== null) && !re.test(this.out.slice(from)) ? `agent exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${this.out.slice(-4000)}` : undefined,
    });
    return found[0];
  }

  /** Runs `vio4wd ARGS` (in the agent's namespace); resolves with stdout, rejects on failure. */
  async cli(...args: string[]): Promise<string> {
    const cmd = this.netns ? 'ip' : process.execPath;
    const argv = this.netns ? ['netns', 'exec', this.netns.name, process.execPath, 'bin/vio4wd.js', ...args] : ['bin/vio4wd.js', ...args];
    const { stdout } = await execFileP(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
    return stdout;
  }

  /** An HTTP GET inside the agent's namespace (metrics/health live on its loopback). */
  async http(url: string): Promise<{ status: number; body: string }> {
    const script = `fetch(${JSON.stringify(url)}).then(async r => { process.stdout.write(r.status + '\\n' + await r.text()); }, e => { process.stdout.write('0\\n' + e.message); })`;
    const cmd = this.netns ? 'ip' : process.execPath;
    const argv = this.netns ? ['netns', 'exec', this.netns.name, process.execPath, '-e', script] : ['-e', script];
    const { stdout } = await execFileP(cmd, argv, { encoding: 'utf8', timeout: 30_000 });
    const nl = stdout.indexOf('\n');
    return { status: Number(stdout.slice(0, nl)), body: stdout.slice(nl + 1) };
  }

  /**
   * The agent's memory right after a full garbage collection (what it retains, not the GC's
   * sawtooth), as V8 and malloc see it: the JS heap used and committed by space (the young
   * generation grows in steps as V8 sizes it to the load), and the C heap (mallinfo2 through the
   * addon, when the agent has loaded it). Opens Node's inspector on the agent's loopback
   * (SIGUSR1, as `node --inspect` would, port 9229 in its namespace) and asks over the DevTools
   * protocol.
   */
  async memoryAfterGc(): Promise<AgentMemory> {
    const [before, after] = (JSON.parse(await this.evaluateAfterGc(MEMORY_EXPRESSION, undefined, true)) as string[]).map((x) => JSON.parse(x) as AgentMemory);
    return { ...after!, beforeGc: before! };
  }

  /** The JS heap used and committed right after a full GC (see memoryAfterGc). */
  async heapAfterGc(): Promise<{ usedBytes: number; totalBytes: number }> {
    const m = await this.memoryAfterGc();
    return { usedBytes: m.heapUsedBytes, totalBytes: m.heapTotalBytes };
  }

  /**
   * A full GC in the agent, then `expression` evaluated in it (a string, returned by value).
   * `snapshotPath` also writes a heap snapshot there (after the GC), for bench/churn-memory.ts;
   * `alsoBefore` evaluates it before the GC too and returns both as a JSON array.
   */
  async evaluateAfterGc(expression: string, snapshotPath?: string, alsoBefore = false): Promise<string> {
    if (!this.inspecting) {
      process.kill(this.pid, 'SIGUSR1');
      this.inspecting = true;
    }
    // the inspector opens a moment after the signal
    const list = await until('the agent\'s inspector on 127.0.0.1:9229', async () => {
      const r = await this.http('http://127.0.0.1:9229/json/list');
      return r.status === 200 ? (JSON.parse(r.body) as { webSocketDebuggerUrl: string }[]) : undefined;
    }, { timeoutMs: 10_000 });
    const cmd = this.netns ? 'ip' : process.execPath;
    const argv = [...(this.netns ? ['netns', 'exec', this.netns.name, process.execPath] : []), '--input-type=module', '-e', INSPECTOR_SCRIPT, expression, snapshotPath ?? '', list[0]!.webSocketDebuggerUrl, alsoBefore ? 'before' : ''];
    const { stdout } = await execFileP(cmd, argv, { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 2 ** 20 });
    return stdout;
  }
  /** SIGTERM (clean shutdown); resolves with the exit code. */
  async stop(graceMs = 15_000): Promise<number | string> {
    await this.proc.stop(graceMs);
    return this.proc.exited;
  }

  /** SIGKILL: the agent dies with no chance to clean up. */
  async kill(): Promise<void> {
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
  }
}
