// Several nodes' agents in one process, for test/helpers/cluster-scale.ts: each is the agent's
// real Kubernetes code (NodeReconciler: VirtioRelay informer with its field selector, status,
// finalizers, events, its node Lease and VirtioForwarderNode) over RelayManager and the in-memory
// engine, with its own ServiceAccount token (kubeconfig) and socket directory.
//
//   node --import tsx test/helpers/cluster-agents.ts SPEC.json
//
// SPEC: { leaseNamespace, agents: [{ node, kubeconfig, socketDir }] }. Prints "ready" once every
// agent started. On stdin: "stop NODE" stops that node's agent (printing "stopped NODE"),
// "report" prints one JSON line { report: [{ node, cached, foreign, events, queue }] }: the relays
// each agent's informer holds, how many of them belong to another node, the watch events (adds
// and updates) it received, and its work queue's adds, longest and mean wait and deepest queue. Ends on SIGTERM or when stdin closes.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { NodeReconciler } from '../../src/agent/node/reconciler.js';
import { RelayManager } from '../../src/relay/index.js';
import { kubeClients, type VirtioRelay } from '../../src/kube/index.js';
import { silentLogger } from '../../src/util/log.js';
import { MemEngine } from './mem-engine.js';

interface Spec {
  leaseNamespace: string;
  agents: { node: string; kubeconfig: string; socketDir: string }[];
}
const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Spec;
const log = silentLogger();
const inventory = {
  vfs: [],
  hugepages: [{ numaNode: 0, pageSizeKiB: 2048, total: 1024, free: 1024 }],
  workerCpus: [1],
  engine: { up: true, dpdkVersion: '22.11.11', agentVersion: 'cluster-scale' },
};

interface Running {
  node: string;
  rec: NodeReconciler;
  relays: RelayManager;
  events: number;
  queue: { adds: number; waits: number; waitSum: number; maxWait: number; maxDepth: number };
}
const running = new Map<string, Running>();

async function startOne(a: Spec['agents'][number]): Promise<void> {
  const q: Running['queue'] = { adds: 0, waits: 0, waitSum: 0, maxWait: 0, maxDepth: 0 };
  const relays = new RelayManager({ engine: new MemEngine(), logger: log, defaults: { socketDir: a.socketDir } });
  const rec = new NodeReconciler({
    clients: kubeClients(a.kubeconfig),
    nodeName: a.node,
    relays,
    logger: log,
    socketDir: a.socketDir,
    allowVirtualDevices: ['net_null'],
    leaseNamespace: spec.leaseNamespace,
    checkpointPath: null,
    nodeStatus: async () => structuredClone(inventory),
    queueObserver: {
      added: () => void q.adds++,
      depth: (n) => void (q.maxDepth = Math.max(q.maxDepth, n)),
      waited: (s) => {
        q.waits++;
        q.waitSum += s;
        q.maxWait = Math.max(q.maxWait, s);
      },
      worked: () => undefined,
      retried: () => undefined,
    },
  });
  const r: Running = { node: a.node, rec, relays, events: 0, queue: q };
  // every add and update the informer's ListWatch delivers, counted by one more handler on it
  const lw = (rec as unknown as { informer: { lw: { on(ev: 'add' | 'update', h: (o: VirtioRelay) => void): void } } }).informer.lw;
  for (const ev of ['add', 'update'] as const) lw.on(ev, () => void r.events++);
  await rec.start();
  running.set(a.node, r);
}

function report(): unknown[] {
  return [...running.values()].map((r) => {
    const cached = (r.rec as unknown as { informer: { list(): VirtioRelay[] } }).informer.list();
    const q = r.queue;
    return {
      node: r.node,
      cached: cached.length,
      foreign: cached.filter((o) => o.spec.nodeName !== r.node).length,
      events: r.events,
      queue: { adds: q.adds, maxWaitMs: q.maxWait * 1000, meanWaitMs: q.waits ? (q.waitSum / q.waits) * 1000 : 0, maxDepth: q.maxDepth },
    };
  });
}

// start them a few at a time, as a DaemonSet's pods come up
const queue = [...spec.agents];
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (let a = queue.shift(); a; a = queue.shift()) await startOne(a);
  }),
);
process.stdout.write('ready\n');

const stopAll = async (): Promise<void> => {
  await Promise.all([...running.values()].map(async (r) => {
    await r.rec.stop();
    await r.relays.close();
  }));
  process.exit(0);
};
process.once('SIGTERM', () => void stopAll());
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'stop' && arg) {
    const r = running.get(arg);
    running.delete(arg);
    void (async () => {
      await r?.rec.stop();
      await r?.relays.close();
      process.stdout.write(`stopped ${arg}\n`);
    })();
  } else if (cmd === 'report') process.stdout.write(JSON.stringify({ report: report() }) + '\n');
});
rl.on('close', () => void stopAll());
