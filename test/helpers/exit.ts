// The one process-exit registry of the test helpers: what must not outlive a test process
// (child processes, network namespaces, temp dirs, kube-apiserver environments) registers a
// synchronous clean-up here. It runs at exit, normal or by an uncaught error, and on
// SIGINT/SIGTERM/SIGHUP (after which the signal is raised again, so that the process ends as it
// would have). Clean-ups run newest first.

type SyncCleanup = () => void;
const cleanups = new Set<SyncCleanup>();
let installed = false;

function runCleanups(): void {
  for (const fn of [...cleanups].reverse()) {
    try {
      fn();
    } catch {
      // best effort: the process is going away
    }
  }
  cleanups.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runCleanups();
      process.removeListener(sig, onSignal);
      // raised again so the process ends the way it would have without this hook
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * Registers a synchronous clean-up for process exit. Returns a function that unregisters it
 * (call that once the resource was cleaned up the ordinary way).
 */
export function onProcessExit(fn: SyncCleanup): () => void {
  install();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Kills a process we started (by PID) and ignores "no such process". */
export function killPid(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
