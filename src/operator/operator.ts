// `vio4wd operator` wiring: leader election decides which replica runs the Scheduler; the
// others wait. Optional Prometheus metrics and health endpoints.
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../util/log.js';
import { ValidationError } from '../util/errors.js';
import { LeaderElector, type KubeClients, type LeaderElectorOptions } from '../kube/index.js';
import { Scheduler, type SchedulerCounters, type SchedulerOptions } from './scheduler.js';
import type { WorkQueueObserver } from '../kube/index.js';
import { workQueueObserver, type WorkQueueName } from '../kube/index.js';
import { GIT_COMMIT, VERSION } from '../util/version.js';

export interface OperatorOptions {
  clients: KubeClients;
  logger: Logger;
  /** Namespace and name of the Lease the replicas compete for; the agents' node Leases are
   *  looked for in the same namespace (unless scheduler.leaseNamespace says another). */
  namespace: string;
  leaseName: string;
  /** This replica's name in the Lease (unique among replicas). */
  identity: string;
  /** host:port for /metrics, /healthz and /readyz. */
  metricsAddress?: string;
  election?: Pick<LeaderElectorOptions, 'leaseDurationMs' | 'renewIntervalMs' | 'renewDeadlineMs' | 'retryIntervalMs'>;
  scheduler?: Pick<SchedulerOptions, 'concurrency' | 'retryPendingMs' | 'orphanGraceMs' | 'staleAfterMs' | 'leaseNamespace'>;
}

/** Events: 'leading' (Scheduler started), 'following' (Scheduler stopped). */
export class Operator extends EventEmitter {
  readonly elector: LeaderElector;
  private readonly log: Logger;
  private scheduler: Scheduler | undefined;
  private transition: Promise<void> = Promise.resolve();
  private server: Server | undefined;
  private stopped = false;
  private queueObserver: ((name: WorkQueueName) => WorkQueueObserver) | undefined;
  /** Totals over every term this replica led. */
  readonly counters: SchedulerCounters = { scheduled: 0, failedScheduling: 0, rescheduled: 0, nodeLost: 0, finalizersRemoved: 0, nodesCleanedUp: 0, agentsNotReporting: 0 };

  constructor(private readonly o: OperatorOptions) {
    super();
    this.log = o.logger.child({ component: 'operator', identity: o.identity });
    this.elector = new LeaderElector({
      coordination: o.clients.coordination,
      namespace: o.namespace,
      name: o.leaseName,
      identity: o.identity,
      logger: this.log,
      ...o.election,
    });
    this.elector.on('started', () => this.lead());
    this.elector.on('stopped', () => this.follow());
    this.elector.on('leader', (holder: string) => {
      if (holder !== o.identity) this.log.info({ leader: holder }, 'another replica leads');
    });
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** The running Scheduler (leader only). */
  get activeScheduler(): Scheduler | undefined {
    return this.scheduler;
  }

  async start(): Promise<void> {
    if (this.o.metricsAddress) await this.serveMetrics(this.o.metricsAddress);
    await this.elector.start();
  }

  /** Stops scheduling first, then gives up the Lease so a standby takes over at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.transition = this.transition.then(() => this.stopScheduler());
    await this.transition;
    await this.elector.stop();
    await this.transition;
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Resolves when the Scheduler (if any) has no work queued (tests). */
  async idle(): Promise<void> {
    await this.transition;
    await this.scheduler?.idle();
  }

  private lead(): void {
    this.transition = this.transition.then(async () => {
      if (this.stopped || !this.elector.isLeader || this.scheduler) return;
      const s = new Scheduler({
        clients: this.o.clients,
        logger: this.o.logger.child({ identity: this.o.identity }),
        identity: this.o.identity,
        leaseNamespace: this.o.namespace,
        ...this.o.scheduler,
        ...(this.queueObserver ? { queueObservers: this.queueObserver } : {}),
      });
      this.scheduler = s;
      // not awaited: while the apiserver is unreachable the caches never fill, and stepping
      // down must still be possible
      s.start().then(
        () => {
          if (this.scheduler === s) this.emit('leading');
        },
        (err: unknown) => this.log.error({ err }, 'scheduler failed to start'),
      );
    });
  }

  private follow(): void {
    this.transition = this.transition.then(async () => {
      await this.stopScheduler();
      this.emit('following');
    });
  }

  private async stopScheduler(): Promise<void> {
    const s = this.scheduler;
    if (!s) return;
    this.scheduler = undefined;
    await s.stop();
    for (const k of Object.keys(this.counters) as (keyof SchedulerCounters)[]) this.counters[k] += s.counters[k];
  }

  private total(k: keyof SchedulerCounters): number {
    return this.counters[k] + (this.scheduler?.counters[k] ?? 0);
  }

  private async serveMetrics(address: string): Promise<void> {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m || Number(m[2]) > 65535) throw new ValidationError('--metrics-address', `"${address}" is not host:port; write e.g. 0.0.0.0:8080 or :8080`);
    const host = m[1] || '0.0.0.0';
    const port = Number(m[2]);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'vio4wd_operator_process_' });
    const observers = new Map<WorkQueueName, WorkQueueObserver>();
    for (const name of ['relays', 'node-cleanup'] as const) observers.set(name, workQueueObserver(registry, name));
    this.queueObserver = (name) => observers.get(name) ?? workQueueObserver(registry, name);
    new Gauge({
      name: 'vio4wd_build_info',
      help: 'Always 1; the labels say which vio4wd (version, git commit) and Node.js run',
      labelNames: ['version', 'commit', 'node_version'] as const,
      registers: [registry],
    }).set({ version: VERSION, commit: GIT_COMMIT, node_version: process.versions.node }, 1);
    const isLeader = (): number => (this.isLeader ? 1 : 0);
    const pending = (): number => this.scheduler?.pendingCount() ?? 0;
    const total = (k: keyof SchedulerCounters): number => this.total(k);
    const notReporting = (): number => this.scheduler?.notReportingCount() ?? 0;
    new Gauge({
      name: 'vio4wd_operator_agents_not_reporting',
      help: 'Nodes whose agent has not renewed its node Lease in time: no new relays go there, their conditions are Unknown (leader only)',
      registers: [registry],
      collect() {
        this.set(notReporting());
      },
    });
    new Gauge({
      name: 'vio4wd_operator_leader',
      help: '1 while this replica holds the Lease and schedules',
      registers: [registry],
      collect() {
        this.set(isLeader());
      },
    });
    new Gauge({
      name: 'vio4wd_operator_pending_relays',
      help: 'VirtioRelays waiting for a node (leader only)',
      registers: [registry],
      collect() {
        this.set(pending());
      },
    });
    const counters: [keyof SchedulerCounters, string, string][] = [
      ['scheduled', 'vio4wd_operator_scheduled_total', 'VirtioRelays given a node'],
      ['failedScheduling', 'vio4wd_operator_failed_scheduling_total', 'FailedScheduling events (a relay that cannot be placed, or a new reason)'],
      ['rescheduled', 'vio4wd_operator_rescheduled_total', 'VirtioRelays moved off a deleted node'],
      ['nodeLost', 'vio4wd_operator_node_lost_total', 'VirtioRelays left on a deleted node (reschedule: Never)'],
      ['finalizersRemoved', 'vio4wd_operator_finalizers_removed_total', 'Finalizers removed from deleted VirtioRelays whose node is gone'],
      ['nodesCleanedUp', 'vio4wd_operator_nodes_cleaned_up_total', 'VirtioForwarderNodes deleted after their node'],
      ['agentsNotReporting', 'vio4wd_operator_agents_not_reporting_total', 'VirtioForwarderNodes marked AgentNotReporting (their agent stopped renewing its node Lease)'],
    ];
    for (const [k, name, help] of counters) {
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(total(k));
        },
      });
    }
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      } else if (path === '/healthz' || path === '/readyz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`ok${this.isLeader ? ' (leader)' : ''}\n`);
      } else {
        res.writeHead(404).end('not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.log.info({ address: `${host}:${(server.address() as { port: number }).port}` }, 'serving /metrics, /healthz and /readyz');
  }

  /** Port of the metrics server (0 when none); for tests that listen on port 0. */
  get metricsPort(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }
}
