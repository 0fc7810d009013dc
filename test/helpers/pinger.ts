// A ping from inside a test network namespace, every reply timestamped by ping itself (-D), for
// gaps in a relay's traffic (agent restart and upgrade handover: test/integration/handover.*,
// bench/handover.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { onProcessExit } from './exit.js';

export interface PingReply {
  /** ms since the epoch, as ping stamped it */
  at: number;
  seq: number;
}

export class Pinger {
  readonly replies: PingReply[] = [];
  private readonly child: ChildProcess;
  private readonly unregister: () => void;

  /** Pings `target` from namespace `netns` every `intervalMs` (10 ms or more: ping's floor for root). */
  constructor(netns: string, target: string, intervalMs = 10) {
    this.child = spawn('ip', ['netns', 'exec', netns, 'ping', '-D', '-n', '-i', String(intervalMs / 1000), target], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = this.child.pid;
    this.unregister = onProcessExit(() => {
      if (pid) process.kill(pid, 'SIGKILL');
    });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/.exec(line);
        if (m) this.replies.push({ at: Number(m[1]) * 1000, seq: Number(m[2]) });
      }
    });
  }

  /** Replies received after `t` (ms since the epoch). */
  since(t: number): number {
    return this.replies.filter((r) => r.at > t).length;
  }

  /**
   * The longest time without a reply in [from, to]: between two replies, or from `from` to the
   * first reply (ms). Infinity when no reply came after `from`.
   */
  longestGap(from: number, to = Infinity): { gapMs: number; at: number } {
    let prev = from;
    let best = { gapMs: 0, at: from };
    let any = false;
    for (const r of this.replies) {
      if (r.at <= from) continue;
      if (r.at > to) break;
      any = true;
      if (r.at - prev > best.gapMs) best = { gapMs: r.at - prev, at: prev };
      prev = r.at;
    }
    if (!any) return { gapMs: Infinity, at: from };
    return best;
  }

  stop(): void {
    this.child.kill('SIGKILL');
    this.unregister();
  }
}
