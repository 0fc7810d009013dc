// Parts of a DRA story on one machine: the real kube-scheduler (test/env/build-kube-scheduler.sh)
// against a test apiserver, a TCP path from a test network namespace to that apiserver (an agent
// inside the namespace reaches it at the same 127.0.0.1:PORT), and the kubelet harness
// (test/env/dra-kubelet-harness: kubelet's own plugin watcher and DRA manager) driven line by line.
import { createConnection, createServer, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { KubeEnv } from './kube.js';
import { spawnTracked, type Netns, type TrackedProcess } from './netns.js';
import { until } from './wait.js';

/** Starts kube-scheduler with the admin kubeconfig (no leader election, no serving port). */
export async function startScheduler(kube: KubeEnv, logDir: string): Promise<{ proc: TrackedProcess; log: () => string; stop: () => Promise<void> }> {
  let out = '';
  const proc = spawnTracked(kube.bin.kubeScheduler, ['--kubeconfig', kube.kubeconfigPath, '--leader-elect=false', '--secure-port=0', '-v=2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: logDir,
  });
  proc.child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  await until('kube-scheduler to start', () => /Starting Kubernetes Scheduler/.test(out), {
    timeoutMs: 60_000,
    intervalMs: 100,
    failIf: () => (proc.child.exitCode !== null ? `kube-scheduler exited (${proc.child.exitCode}):\n${out.slice(-3000)}` : undefined),
    detail: () => out.slice(-3000),
  });
  return { proc, log: () => out, stop: () => proc.stop(5000) };
}

/**
 * Makes the apiserver (https://127.0.0.1:PORT on the host) reachable at the same address inside
 * `ns`: a forwarder in the namespace listens on 127.0.0.1:PORT and connects to a unix socket the
 * host side serves, which connects to the apiserver (bytes pass unchanged: TLS stays end to end).
 */
export async function bridgeApiserver(kube: KubeEnv, ns: Netns, dir: string): Promise<{ close: () => Promise<void> }> {
  const port = Number(new URL(kube.server).port);
  const sock = join(dir, 'apiserver-bridge.sock');
  rmSync(sock, { force: true });
  const server: Server = createServer((c) => {
    const up = createConnection({ host: '127.0.0.1', port });
    c.pipe(up).pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const script = `
    const net = require('node:net');
    net.createServer((c) => {
      const up = net.createConnection(${JSON.stringify(sock)});
      c.pipe(up).pipe(c);
      const end = () => { c.destroy(); up.destroy(); };
      c.on('error', end); up.on('error', end);
    }).listen(${port}, '127.0.0.1', () => process.stdout.write('listening\\n'));`;
  const fwd = ns.spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    fwd.child.stdout?.once('data', () => resolve());
    void fwd.exited.then((c) => reject(new Error(`apiserver forwarder in ${ns.name} exited (${c})`)));
  });
  return {
    async close() {
      await fwd.stop(1000);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(sock, { force: true });
    },
  };
}

export interface HarnessEvent {
  event: string;
  error?: string;
  [k: string]: unknown;
}

/** test/env/dra-kubelet-harness for one pod: kubelet's plugin watcher + DRA manager. */
export class KubeletHarness {
  private readonly events: HarnessEvent[] = [];
  private read = 0;
  private stderr = '';

  private constructor(readonly proc: TrackedProcess) {
    createInterface({ input: proc.child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as HarnessEvent);
      } catch {
        this.events.push({ event: 'unparsed', line });
      }
    });
    proc.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-20_000)));
  }

  static start(kube: KubeEnv, o: { registryDir: string; stateDir: string; cdiDir: string; node: string; namespace: string; pod: string }): KubeletHarness {
    const args = [
      '--kubeconfig', kube.kubeconfigPath,
      '--plugins-registry', o.registryDir,
      '--state-dir', o.stateDir,
      '--cdi-dir', o.cdiDir,
      '--node', o.node,
      '--namespace', o.namespace,
      '--pod', o.pod,
      '--timeout', '60s',
      '-v=4',
    ];
    return new KubeletHarness(spawnTracked(kube.bin.draHarness, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** The next event (after those already taken) whose name is one of `names`. */
  async next(names: string[], timeoutMs = 90_000): Promise<HarnessEvent> {
    let fatal: string | undefined;
    const take = (): HarnessEvent | undefined => {
      while (this.read < this.events.length) {
        const e = this.events[this.read++]!;
        if (e.event === 'fatal') fatal = `harness: ${e.error}\n${this.stderr.slice(-4000)}`;
        else if (names.includes(e.event)) return e;
      }
      return undefined;
    };
    return until(`harness event ${names.join('|')}`, take, {
      timeoutMs,
      failIf: () => fatal ?? (this.proc.child.exitCode !== null && this.read >= this.events.length ? `harness exited (${this.proc.child.exitCode}):\n${this.stderr.slice(-4000)}` : undefined),
      detail: () => this.stderr.slice(-4000),
    });
  }

  /** What kubelet would write into the pod's containerStatuses[].allocatedResourcesStatus now. */
  async health(): Promise<{ container: string; name: string; resourceID: string; health: string }[]> {
    this.send('health');
    const e = await this.next(['health']);
    return (e.resources as { container: string; name: string; resourceID: string; health: string }[] | null) ?? [];
  }

  send(cmd: 'prepare' | 'unprepare' | 'health' | 'quit'): void {
    this.proc.child.stdin!.write(`${cmd}\n`);
  }

  get log(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    if (this.proc.child.exitCode === null) this.send('quit');
    const t = setTimeout(() => void this.proc.stop(1000), 5000);
    await this.proc.exited;
    clearTimeout(t);
  }
}

/**
 * Asks a relay's vhost-user socket (the relay is the server) how many queue pairs it offers, as
 * QEMU does before it sets up a multiqueue device: VHOST_USER_GET_QUEUE_NUM (17), version 1.
 */
export async function vhostQueueNum(socketPath: string, timeoutMs = 5000): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const c = createConnection(socketPath);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no GET_QUEUE_NUM answer on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      c.destroy();
      reject(err);
    };
    c.on('error', fail);
    c.on('connect', () => {
      const msg = Buffer.alloc(12);
      msg.writeUInt32LE(17, 0); // request
      msg.writeUInt32LE(1, 4); // flags: version 1
      msg.writeUInt32LE(0, 8); // no payload
      c.write(msg);
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 20) return;
      clearTimeout(timer);
      c.destroy();
      const request = buf.readUInt32LE(0);
      const flags = buf.readUInt32LE(4);
      if (request !== 17 || (flags & 0x4) === 0) reject(new Error(`not a GET_QUEUE_NUM reply: request ${request}, flags 0x${flags.toString(16)}`));
      else resolve(Number(buf.readBigUInt64LE(12)));
    });
  });
}
