// Prometheus metrics and health endpoints of the agent. Values are read at scrape time from
// RelayManager and the engine's counters: nothing here keeps a copy of relay state.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DirectionCounters, RelayStats, VfPortCounters, WorkerInfo } from '../engine/types.js';
import type { RelayPhase, RelayStatus } from '../relay/types.js';
import type { Logger } from '../util/log.js';

export interface MetricsSources {
  relays(): RelayStatus[];
  /** Engine counters of a relay by id, undefined when the engine does not hold it. */
  stats(id: number): RelayStats | undefined;
  /** Engine health: true while the engine runs. */
  engineUp(): boolean;
  /** Hugepage bytes mapped and mbufs in use, when known. */
  memory?(): { hugepageBytes: number; mbufsInUse: number; mbufsTotal: number } | undefined;
  /** Ready for /readyz: started and the configured relays reconciled once. */
  ready(): boolean;
  /** The poll-mode workers' load counters, and the TSC rate their cycle counts are in. */
  workers?(): WorkerInfo[];
  tscHz?(): number;
  /** What runs: vio4wd's version and git commit, DPDK's and Node's versions. */
  buildInfo?(): BuildInfo;
  /** Hugepages of the node per NUMA node and page size (sysfs), read at scrape time. */
  hugepages?(): Promise<{ numaNode: number; pageSizeKiB: number; total: number; free: number }[]>;
  /** The pod using each relay (kubelet's pod-resources), by `${resourceName}/${relayName}`;
   *  ok false when kubelet could not be asked. */
  relayPods?(): Promise<{ ok: boolean; pods: Map<string, { namespace: string; pod: string; container: string }> }>;
}

export interface BuildInfo {
  version: string;
  commit: string;
  dpdk: string;
  node: string;
}

const PHASES: RelayPhase[] = ['Pending', 'Configuring', 'Ready', 'Failed', 'Terminating'];

type Dir = 'vf_to_vm' | 'vm_to_vf';

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly migrations: Counter<'relay' | 'direction'>;

  constructor(private readonly src: MetricsSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'vio4wd_process_' });
    const perDir = (name: string, help: string, pick: (c: DirectionCounters) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['relay', 'id', 'direction'] as const,
        registers: [r],
        collect() {
          this.reset();
          for (const s of src.relays()) {
            const st = src.stats(s.id);
            if (!st) continue;
            for (const [dir, c] of [['vf_to_vm', st.vfToVm], ['vm_to_vf', st.vmToVf]] as [Dir, DirectionCounters][]) {
              this.inc({ relay: s.name, id: String(s.id), direction: dir }, pick(c));
            }
          }
        },
      });
    perDir('vio4wd_relay_rx_packets_total', 'Packets received from the source side of the direction (VF for vf_to_vm, VM for vm_to_vf)', (c) => c.rxPackets);
    perDir('vio4wd_relay_rx_bytes_total', 'Bytes received from the source side of the direction', (c) => c.rxBytes);
    perDir('vio4wd_relay_tx_packets_total', 'Packets sent to the far side of the direction', (c) => c.txPackets);
    perDir('vio4wd_relay_tx_bytes_total', 'Bytes sent to the far side of the direction', (c) => c.txBytes);
    new Counter({
      name: 'vio4wd_relay_queue_tx_packets_total',
      help: 'Packets sent to the far side, per queue pair: vf_to_vm by VF rx queue, vm_to_vf by guest tx queue',
      labelNames: ['relay', 'id', 'queue', 'direction'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const s of src.relays()) {
          const st = src.stats(s.id);
          if (!st) continue;
          for (const q of st.queues) {
            // queue 0 always; others once they carried something (a relay may offer 32)
            if (q.queue > 0 && q.vfToVm.txPackets === 0 && q.vmToVf.txPackets === 0) continue;
            for (const [dir, c] of [['vf_to_vm', q.vfToVm], ['vm_to_vf', q.vmToVf]] as [Dir, DirectionCounters][]) {
              this.inc({ relay: s.name, id: String(s.id), queue: String(q.queue), direction: dir }, c.txPackets);
            }
          }
        }
      },
    });
    new Counter({
      name: 'vio4wd_relay_dropped_packets_total',
      help: 'Packets dropped: queue_full = the far queue was full, not_connected = the far side was not connected',
      labelNames: ['relay', 'id', 'direction', 'reason'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const s of src.relays()) {
          const st = src.stats(s.id);
          if (!st) continue;
          for (const [dir, c] of [['vf_to_vm', st.vfToVm], ['vm_to_vf', st.vmToVf]] as [Dir, DirectionCounters][]) {
            const l = { relay: s.name, id: String(s.id), direction: dir };
            this.inc({ ...l, reason: 'queue_full' }, c.droppedQueueFullPackets);
            this.inc({ ...l, reason: 'not_connected' }, c.droppedNotConnectedPackets);
          }
        }
      },
    });
    // The VF's own counters (its driver's), per relay: what the NIC did before the relay.
    const perVf = (name: string, help: string, pick: (v: VfPortCounters) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['relay', 'id'] as const,
        registers: [r],
        collect() {
          this.reset();
          for (const s of src.relays()) {
            const vf = src.stats(s.id)?.vf;
            if (vf) this.inc({ relay: s.name, id: String(s.id) }, pick(vf));
          }
        },
      });
    perVf('vio4wd_vf_rx_packets_total', "Packets the relay's VF received (its driver's count)", (v) => v.rxPackets);
    perVf('vio4wd_vf_tx_packets_total', "Packets the relay's VF sent (its driver's count)", (v) => v.txPackets);
    perVf('vio4wd_vf_rx_bytes_total', "Bytes the relay's VF received", (v) => v.rxBytes);
    perVf('vio4wd_vf_tx_bytes_total', "Bytes the relay's VF sent", (v) => v.txBytes);
    new Counter({
      name: 'vio4wd_vf_dropped_packets_total',
      help:
        "Packets the relay's VF dropped, by its driver's count: direction rx, reason missed = its rx ring was full (the relay did not read in time), no_mbuf = no buffer to refill the ring, error = bad frames; direction tx, reason error = send errors",
      labelNames: ['relay', 'id', 'direction', 'reason'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const s of src.relays()) {
          const vf = src.stats(s.id)?.vf;
          if (!vf) continue;
          const l = { relay: s.name, id: String(s.id) };
          this.inc({ ...l, direction: 'rx', reason: 'missed' }, vf.rxMissed);
          this.inc({ ...l, direction: 'rx', reason: 'no_mbuf' }, vf.rxNoMbuf);
          this.inc({ ...l, direction: 'rx', reason: 'error' }, vf.rxErrors);
          this.inc({ ...l, direction: 'tx', reason: 'error' }, vf.txErrors);
        }
      },
    });
    if (src.workers) {
      const workers = src.workers.bind(src);
      const hz = src.tscHz ? src.tscHz.bind(src) : () => 0;
      const perWorker = (name: string, help: string, pick: (w: WorkerInfo) => number | undefined) =>
        new Counter({
          name,
          help,
          labelNames: ['cpu'] as const,
          registers: [r],
          collect() {
            this.reset();
            for (const w of workers()) {
              const v = pick(w);
              if (v !== undefined) this.inc({ cpu: String(w.cpu) }, v);
            }
          },
        });
      const seconds = (cycles: number): number | undefined => {
        const h = hz();
        return h > 0 ? cycles / h : undefined;
      };
      perWorker('vio4wd_worker_busy_seconds_total', 'Time the poll-mode worker spent in polls that moved packets (TSC-measured, per poll pass)', (w) => seconds(w.busyCycles));
      perWorker('vio4wd_worker_idle_seconds_total', 'Time the poll-mode worker spent in polls that found no packet', (w) => seconds(w.idleCycles));
      perWorker('vio4wd_worker_busy_cycles_total', 'TSC cycles of polls that moved packets (packets per busy cycle = rate(packets) / rate(busy cycles))', (w) => w.busyCycles);
      perWorker('vio4wd_worker_packets_total', 'Packets the worker received from VFs and guests', (w) => w.packets);
      perWorker('vio4wd_worker_dropped_packets_total', "Packets the worker received and dropped (the far side's queue full, or not connected)", (w) => w.dropped);
      new Gauge({
        name: 'vio4wd_worker_relay_directions',
        help: 'Relay directions (VF->VM, VM->VF) the worker polls',
        labelNames: ['cpu'] as const,
        registers: [r],
        collect() {
          this.reset();
          for (const w of workers()) this.set({ cpu: String(w.cpu) }, w.directions);
        },
      });
    }
    new Gauge({
      name: 'vio4wd_relay_phase',
      help: 'Relay phase (1 for the current phase)',
      labelNames: ['relay', 'id', 'phase'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const s of src.relays()) for (const p of PHASES) this.set({ relay: s.name, id: String(s.id), phase: p }, s.phase === p ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vio4wd_relay_guest_connected',
      help: '1 when a guest is connected to the relay socket',
      labelNames: ['relay', 'id'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const s of src.relays()) {
          const c = s.conditions.find((x) => x.type === 'GuestConnected');
          this.set({ relay: s.name, id: String(s.id) }, c?.status === 'True' ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'vio4wd_relays',
      help: 'Relays on this node by phase',
      labelNames: ['phase'] as const,
      registers: [r],
      collect() {
        this.reset();
        const all = src.relays();
        for (const p of PHASES) this.set({ phase: p }, all.filter((s) => s.phase === p).length);
      },
    });
    new Gauge({
      name: 'vio4wd_engine_up',
      help: '1 while the DPDK engine runs',
      registers: [r],
      collect() {
        this.set(src.engineUp() ? 1 : 0);
      },
    });
    if (src.memory) {
      const mem = src.memory.bind(src);
      new Gauge({
        name: 'vio4wd_engine_hugepage_bytes',
        help: 'Hugepage memory mapped by the engine',
        registers: [r],
        collect() {
          const m = mem();
          if (m) this.set(m.hugepageBytes);
        },
      });
      new Gauge({
        name: 'vio4wd_engine_mbufs_in_use',
        help: 'Packet buffers in use across the engine mempools',
        registers: [r],
        collect() {
          const m = mem();
          if (m) this.set(m.mbufsInUse);
        },
      });
      new Gauge({
        name: 'vio4wd_engine_mbufs_capacity',
        help: 'Packet buffers the engine mempools hold (in use or free)',
        registers: [r],
        collect() {
          const m = mem();
          if (m) this.set(m.mbufsTotal);
        },
      });
    }
    if (src.hugepages) {
      const hp = src.hugepages.bind(src);
      const size = (kib: number): string => (kib % 1048576 === 0 ? `${kib / 1048576}Gi` : kib % 1024 === 0 ? `${kib / 1024}Mi` : `${kib}Ki`);
      for (const [name, help, pick] of [
        ['vio4wd_node_hugepages_capacity_bytes', 'Hugepage memory the node has (nr_hugepages x page size), per NUMA node and page size', 'total'],
        ['vio4wd_node_hugepages_free_bytes', 'Hugepage memory nobody holds yet (free_hugepages x page size): what VMs and the engine can still get', 'free'],
      ] as const) {
        new Gauge({
          name,
          help,
          labelNames: ['numa', 'page_size'] as const,
          registers: [r],
          async collect() {
            this.reset();
            for (const h of await hp()) this.set({ numa: String(h.numaNode), page_size: size(h.pageSizeKiB) }, h[pick] * h.pageSizeKiB * 1024);
          },
        });
      }
    }
    if (src.relayPods) {
      const relayPods = src.relayPods.bind(src);
      // both gauges ask; the source answers both from one List (cached for a few seconds)
      new Gauge({
        name: 'vio4wd_relay_pod_info',
        help: "Always 1: the pod (and container) kubelet gave the relay's device to, from kubelet's pod-resources API (pod_* labels: Prometheus's own namespace and pod labels name the agent)",
        labelNames: ['relay', 'id', 'pod_namespace', 'pod_name', 'pod_container'] as const,
        registers: [r],
        async collect() {
          this.reset();
          const last = await relayPods();
          for (const s of src.relays()) {
            const p = last.pods.get(`${s.resourceName}/${s.name}`);
            if (p) this.set({ relay: s.name, id: String(s.id), pod_namespace: p.namespace, pod_name: p.pod, pod_container: p.container }, 1);
          }
        },
      });
      new Gauge({
        name: 'vio4wd_pod_resources_up',
        help: "1 when kubelet's pod-resources API answered the last List (vio4wd_relay_pod_info is empty otherwise)",
        registers: [r],
        async collect() {
          this.set((await relayPods()).ok ? 1 : 0);
        },
      });
    }
    if (src.buildInfo) {
      const info = src.buildInfo.bind(src);
      new Gauge({
        name: 'vio4wd_build_info',
        help: 'Always 1; the labels say which vio4wd (version, git commit), DPDK and Node.js run',
        labelNames: ['version', 'commit', 'dpdk_version', 'node_version'] as const,
        registers: [r],
        collect() {
          this.reset();
          const b = info();
          this.set({ version: b.version, commit: b.commit, dpdk_version: b.dpdk, node_version: b.node }, 1);
        },
      });
    }
    this.migrations = new Counter({
      name: 'vio4wd_relay_migrations_total',
      help: 'Live migrations seen on a relay: out = the guest left with dirty logging on, in = a migrated guest arrived',
      labelNames: ['relay', 'direction'] as const,
      registers: [r],
    });
  }

  countMigration(relay: string, direction: 'in' | 'out'): void {
    this.migrations.inc({ relay, direction });
  }

  /** A removed relay's series go with it (the other metrics follow the relay list anyway). */
  forgetRelay(relay: string): void {
    for (const direction of ['in', 'out'] as const) this.migrations.remove({ relay, direction });
  }
}

export interface HttpServerHandle {
  server: Server;
  address: string;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz and /readyz on host:port (loopback by default). */
/** Who may read /metrics: decides from the request's bearer token (e.g. TokenReview and
 *  SubjectAccessReview against the apiserver, as kube-rbac-proxy does). */
export type MetricsAuthorizer = (bearerToken: string | undefined, req: IncomingMessage) => Promise<{ allowed: true } | { allowed: false; status: 401 | 403 | 500; reason: string }>;

export interface MetricsServerOptions {
  /** When set, /metrics answers only callers it allows; /healthz and /readyz stay open (they
   *  tell nothing about relays). */
  authorize?: MetricsAuthorizer;
  /** Serve HTTPS with this certificate and key (PEM files), so bearer tokens are not sent in clear. */
  tls?: { certFile: string; keyFile: string };
}

export async function startMetricsServer(metrics: AgentMetrics, src: MetricsSources, address: string, log: Logger, opts: MetricsServerOptions = {}): Promise<HttpServerHandle> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i) || '127.0.0.1';
  const port = Number(address.slice(i + 1));
  const mlog = log.child({ component: 'metrics' });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics' && opts.authorize) {
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
      opts.authorize(token, req).then(
        (d) => {
          if (d.allowed) return serveMetrics(res);
          res.writeHead(d.status, { 'content-type': 'text/plain', ...(d.status === 401 ? { 'www-authenticate': 'Bearer' } : {}) });
          res.end(`${d.reason}\n`);
        },
        (err: unknown) => {
          mlog.warn({ err: String(err) }, 'metrics authorization failed');
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('authorization failed\n');
        },
      );
      return;
    }
    if (url === '/metrics') {
      serveMetrics(res);
      return;
    }
    route(url, res);
  };
  const serveMetrics = (res: ServerResponse): void => {
    metrics.registry
      .metrics()
      .then((body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`metrics failed: ${String(err)}\n`);
      });
  };
  const route = (url: string | undefined, res: ServerResponse): void => {
    if (url === '/healthz') {
      const ok = src.engineUp();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'engine down\n');
      return;
    }
    if (url === '/readyz') {
      const ok = src.engineUp() && src.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ready\n' : 'not ready\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /metrics, /healthz or /readyz\n');
  };
  const server: Server = opts.tls
    ? createTlsServer({ cert: await readFile(opts.tls.certFile), key: await readFile(opts.tls.keyFile) }, handler)
    : createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const bound = a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : address;
  mlog.info({ address: bound, tls: !!opts.tls, authorization: !!opts.authorize }, 'serving /metrics, /healthz, /readyz');
  return {
    server,
    address: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
