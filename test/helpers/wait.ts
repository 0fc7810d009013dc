// The one wait of the tests: poll a condition until it holds or a deadline passes, and fail
// naming what was awaited. Asserting on what a user sees often means waiting for it first.
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

export interface WaitOptions {
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
  /** between two checks (default 50 ms) */
  intervalMs?: number;
  /** what to add to the timeout's message (e.g. the last lines a process wrote) */
  detail?: () => string;
  /** checked before each try: a message here (e.g. "the agent exited") fails the wait at once */
  failIf?: () => string | undefined;
}

type Falsy = undefined | null | false;

/**
 * Calls `check` until it returns something truthy, and returns that. Rejects after timeoutMs
 * with "timed out after N ms waiting for <what>" (and the last error `check` threw, if any: a
 * check may throw while what it reads is not there yet).
 */
export async function until<T>(what: string, check: () => T | Falsy | Promise<T | Falsy>, opts: WaitOptions | number = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 50, detail, failIf } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const fatal = failIf?.();
    if (fatal !== undefined) throw new Error(`${fatal} (while waiting for ${what})`);
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${detail ? `\n${detail()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}
