// The agent's part in an upgrade handover (protocol: handover.ts; design: docs/upgrade.md):
// taking the relays over from the agent that runs them, one at a time.
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import type { RelayStatus } from '../relay/index.js';
import type { RelaySpec } from '../relay/types.js';
import { HandoverServer, type HandoverClient, type HandoverRelay } from './handover.js';
import type { CheckpointEntry } from './node/checkpoint.js';

/** How long one relay may take to attach in the new agent before the next one is taken. */
export const TAKE_TIMEOUT_MS = 10_000;

/** What takeOver needs of the relay manager. */
export interface HandoverRelays {
  apply(spec: RelaySpec): RelayStatus;
  remove(name: string, opts?: { handover?: boolean }): Promise<boolean>;
  get(name: string): RelayStatus | undefined;
  on(event: 'change', listener: (s: RelayStatus) => void): unknown;
  off(event: 'change', listener: (s: RelayStatus) => void): unknown;
}

const settledStatus = (s: RelayStatus | undefined): boolean =>
  !!s && (s.phase === 'Failed' || s.conditions.some((c) => c.type === 'VFAttached' && c.status === 'True'));

/** The old agent went away midway: wait until its files are closed (VFs, sockets, ports). */
async function oldAgentGone(client: HandoverClient, log: Logger): Promise<true> {
  const t0 = performance.now();
  const gone = await client.waitGone();
  if (gone) log.warn({ from: client.hello.pid, ms: Math.round(performance.now() - t0) }, 'handover: the old agent went away midway; its VFs and sockets are free');
  else log.warn({ from: client.hello.pid }, 'handover: the old agent dropped the connection but still listens; taking its relays anyway');
  return true;
}

/** Resolves when the relay's VF and socket are in the engine (or it failed, or time ran out). */
function attached(relays: HandoverRelays, name: string, timeoutMs: number): Promise<RelayStatus | undefined> {
  return new Promise((resolve) => {
    const finish = (): void => {
      relays.off('change', onChange);
      clearTimeout(timer);
      resolve(relays.get(name));
    };
    const onChange = (s: RelayStatus): void => {
      if (s.name === name && settledStatus(s)) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    relays.on('change', onChange);
    if (settledStatus(relays.get(name))) finish();
  });
}

/**
 * Takes every relay of the old agent over: asks it to release one (VF closed, socket released),
 * applies it here at once and waits until it is attached, then the next. When the old agent goes
 * away midway, every relay not yet taken is applied at once (the kernel freed its VFs and
 * sockets). Returns the relays taken. When the old agent refuses one, what was taken is handed
 * back (released here, the old agent runs it again) and this throws: the start fails.
 */
export async function takeOver(client: HandoverClient, relays: HandoverRelays, log: Logger): Promise<HandoverRelay[]> {
  const taken: HandoverRelay[] = [];
  const t0 = performance.now();
  let gone = false;
  for (const r of client.hello.relays) {
    const name = r.spec.name;
    const t = performance.now();
    let released = false;
    if (client.lost && !gone) gone = await oldAgentGone(client, log);
    if (!client.lost) {
      try {
        released = await client.release(name);
        if (!released) gone = await oldAgentGone(client, log);
      } catch (err) {
        log.error({ relay: name, err: errorMessage(err) }, 'handover: the old agent did not release a relay; giving back what was taken');
        for (const x of taken) await relays.remove(x.spec.name, { handover: true });
        client.abandon();
        throw new Error(`handover from agent ${client.hello.pid} failed at relay ${name}: ${errorMessage(err)}`, { cause: err });
      }
    }
    try {
      relays.apply(r.spec);
    } catch (err) {
      log.error({ relay: name, err: errorMessage(err) }, 'handover: relay rejected here');
      continue;
    }
    taken.push(r);
    if (!released) continue; // the old agent is gone: no need to go one at a time
    const st = await attached(relays, name, TAKE_TIMEOUT_MS);
    log.info({ relay: name, ms: Math.round((performance.now() - t) * 10) / 10, phase: st?.phase }, 'handover: relay taken over');
  }
  if (client.lost) {
    if (!gone) await oldAgentGone(client, log);
    log.warn({ from: client.hello.pid, relays: taken.length }, 'handover interrupted: the old agent went away; this agent runs every relay it had');
  } else if (!(await client.done())) {
    await oldAgentGone(client, log);
    log.warn({ from: client.hello.pid }, 'handover: the old agent went away before it closed its ports');
  }
  log.info({ from: client.hello.pid, relays: taken.length, ms: Math.round(performance.now() - t0) }, 'handover: every relay taken over');
  return taken;
}

/** What the serving (old) agent gives its handover server. */
export interface HandoverDeps {
  filePrefix: string;
  relays: HandoverRelays & { specs(): RelaySpec[] };
  /** the node reconciler, when there is one: paused while the relays move */
  reconciler: () => { pause(): void; resume(): void; entries(): CheckpointEntry[] } | undefined;
  /** what else holds still while the relays move (the device plugin's view of the relays: kubelet
   *  keeps seeing them Healthy; port control: a change is refused with "retry") */
  holds: () => ({ freeze(): unknown; thaw(): void } | undefined)[];
  /** every relay was taken: stop every listener the new agent binds (ports, sockets) */
  drain: () => Promise<void>;
}

/** Serves the handover socket for the next agent; undefined when it cannot (logged). */
export async function serveHandover(path: string, d: HandoverDeps, log: Logger): Promise<HandoverServer | undefined> {
  const server: HandoverServer = new HandoverServer(
    path,
    {
      filePrefix: d.filePrefix,
      begin: async () => {
        const reconciler = d.reconciler();
        reconciler?.pause();
        await Promise.all(d.holds().map((h) => h?.freeze()));
        const keys = new Map(reconciler?.entries().map((e) => [e.spec.name, e.key]));
        return d.relays.specs().map((spec): HandoverRelay => {
          const key = keys.get(spec.name);
          const st = d.relays.get(spec.name);
          return { spec, ...(key ? { key } : {}), ...(st?.numaNode !== undefined ? { numaNode: st.numaNode } : {}), ...(st ? { queues: st.queues } : {}) };
        });
      },
      release: async (name) => {
        await d.relays.remove(name, { handover: true });
      },
      finish: async () => {
        server.close();
        await d.drain();
      },
      abort: async (released) => {
        for (const r of released) d.relays.apply(r.spec);
        for (const h of d.holds()) h?.thaw();
        d.reconciler()?.resume();
      },
    },
    log,
  );
  try {
    await server.listen();
    return server;
  } catch (err) {
    log.warn({ err: errorMessage(err), socket: path }, 'handover socket not served: a later agent cannot take the relays over without a gap');
    return undefined;
  }
}

/** Loads the modules the control plane needs before a handover moves the first relay: loading
 *  them holds the event loop (the Kubernetes client alone ~0.8 s), which must not happen while
 *  a relay is between the two agents. */
export async function preloadControlPlane(kubernetes: boolean): Promise<void> {
  await Promise.all([
    import('../metrics/index.js'),
    import('../control/index.js'),
    ...(kubernetes
      ? [import('./node/reconciler.js'), import('../kube/index.js'), import('../kube/workqueue-metrics.js'), import('../deviceplugin/index.js'), import('./pod-resources.js')]
      : []),
  ]);
}

/** Makes the mbuf pools the relays to take over need before the first one moves (making one
 *  takes a few hundred ms, which the first relay on a NUMA node would otherwise wait for). */
export async function preparePools(engine: { preparePools(numaNode: number, queuePairs: number): Promise<void> }, relays: readonly HandoverRelay[], log: Logger): Promise<void> {
  const perNode = new Map<number, number>();
  for (const r of relays) perNode.set(r.numaNode ?? 0, (perNode.get(r.numaNode ?? 0) ?? 0) + (r.queues ?? 1));
  for (const [numa, queuePairs] of perNode) {
    const t0 = performance.now();
    try {
      await engine.preparePools(numa, queuePairs);
      log.info({ numaNode: numa, queuePairs, ms: Math.round(performance.now() - t0) }, 'handover: mbuf pools made for the relays to take over');
    } catch (err) {
      // the relays then make what they need, as on any start
      log.warn({ numaNode: numa, queuePairs, err: errorMessage(err) }, 'handover: mbuf pools not made ahead');
    }
  }
}
