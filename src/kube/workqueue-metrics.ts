// Prometheus metrics of a controller work queue (the operator's relay placement and node
// cleanup, the agent's node reconciler), named after client-go's workqueue metrics with the vio4wd_ prefix; `name` is one
// of a few fixed queue names, so the label stays bounded.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WorkQueueObserver } from '../util/workqueue.js';

/** The queues: the operator's RelayController and NodeCleanupController, the agent's node reconciler. */
export type WorkQueueName = 'relays' | 'node-cleanup' | 'node';

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];

interface QueueMetrics {
  depth: Gauge<'name'>;
  adds: Counter<'name'>;
  retries: Counter<'name'>;
  wait: Histogram<'name'>;
  work: Histogram<'name'>;
}

const byRegistry = new WeakMap<Registry, QueueMetrics>();

function metricsOf(registry: Registry): QueueMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    const registers = [registry];
    m = {
      depth: new Gauge({ name: 'vio4wd_workqueue_depth', help: 'Keys waiting in the work queue', labelNames: ['name'] as const, registers }),
      adds: new Counter({ name: 'vio4wd_workqueue_adds_total', help: 'Keys queued', labelNames: ['name'] as const, registers }),
      retries: new Counter({
        name: 'vio4wd_workqueue_retries_total',
        help: 'Reconciles that failed and were queued again with a backoff',
        labelNames: ['name'] as const,
        registers,
      }),
      wait: new Histogram({
        name: 'vio4wd_workqueue_queue_duration_seconds',
        help: 'How long a key waited in the queue before it was reconciled',
        labelNames: ['name'] as const,
        buckets: BUCKETS,
        registers,
      }),
      work: new Histogram({
        name: 'vio4wd_workqueue_work_duration_seconds',
        help: 'How long one reconcile of a key took',
        labelNames: ['name'] as const,
        buckets: BUCKETS,
        registers,
      }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}

/** An observer that records a queue's adds, depth, waits, work and retries in the registry. */
export function workQueueObserver(registry: Registry, name: WorkQueueName): WorkQueueObserver {
  const m = metricsOf(registry);
  const l = { name };
  // the series exist from the start (0), so that a rule on them has something to read
  m.depth.set(l, 0);
  m.adds.inc(l, 0);
  m.retries.inc(l, 0);
  m.wait.zero(l);
  m.work.zero(l);
  return {
    added: () => m.adds.inc(l),
    depth: (n) => m.depth.set(l, n),
    waited: (s) => m.wait.observe(l, s),
    worked: (s) => m.work.observe(l, s),
    retried: () => m.retries.inc(l),
  };
}
