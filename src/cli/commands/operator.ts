// `vio4wd operator`: the cluster operator (a Deployment). Replicas elect a leader with a Lease;
// the leader schedules VirtioRelays onto nodes and cleans up after deleted nodes.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { createLogger } from '../../util/log.js';
import { ValidationError } from '../../util/errors.js';
import type { Operator } from '../../operator/operator.js';
import { examples } from '../help.js';

export interface OperatorCliOptions {
  kubeconfig?: string;
  namespace: string;
  leaseName: string;
  identity: string;
  metricsAddress?: string;
  logLevel?: string;
  /** relays placed (their patches in flight) at the same time */
  concurrency?: string;
}

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The pod's namespace when in a cluster, else "default". */
function defaultNamespace(): string {
  try {
    return readFileSync(SA_NAMESPACE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

/** Starts an operator replica; resolves once it campaigns for the Lease. */
export async function startOperator(opts: OperatorCliOptions): Promise<Operator> {
  // loaded here, not at the top: the Kubernetes client takes most of a second to import, and
  // every other vio4wd command would pay for it
  const [{ kubeClients }, { Operator }] = await Promise.all([import('../../kube/index.js'), import('../../operator/operator.js')]);
  const logger = createLogger({ level: opts.logLevel });
  const op = new Operator({
    clients: kubeClients(opts.kubeconfig),
    logger,
    namespace: opts.namespace,
    leaseName: opts.leaseName,
    identity: opts.identity,
    ...(opts.metricsAddress ? { metricsAddress: opts.metricsAddress } : {}),
    ...(opts.concurrency !== undefined ? { scheduler: { concurrency: concurrencyOf(opts.concurrency) } } : {}),
  });
  await op.start();
  return op;
}

function concurrencyOf(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new ValidationError('--concurrency', `"${text}" is not a whole number from 1 to 1024 (relays placed at the same time; default 32)`);
  return n;
}

export function register(program: Command): void {
  program
    .command('operator')
    .description('run the cluster operator: schedule VirtioRelays onto nodes with a free matching VF, move relays off deleted nodes (reschedule: OnNodeLoss), clean up after deleted nodes; replicas elect a leader with a Lease')
    .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)')
    .addOption(new Option('--namespace <ns>', "namespace of the leader-election Lease and of the agents' node Leases").env('POD_NAMESPACE').default(defaultNamespace(), "the pod's namespace, else default"))
    .option('--lease-name <name>', 'name of the leader-election Lease', 'vio4wd-operator')
    .addOption(
      new Option('--identity <id>', 'this replica\'s name in the Lease, unique among replicas').env('POD_NAME').default(`${hostname()}_${process.pid}`, 'hostname_pid'),
    )
    .option('--metrics-address <host:port>', 'serve /metrics, /healthz and /readyz here, e.g. :8080')
    .option('--concurrency <n>', 'relays reconciled (placement patches in flight) at the same time, 1-1024 (default 32)')
    .addOption(new Option('--log-level <level>', 'pino log level').env('VIO4WD_LOG_LEVEL'))
    .addHelpText('after', examples('vio4wd operator --metrics-address :8080', 'vio4wd operator --kubeconfig ~/.kube/config --namespace vio4wd-system --concurrency 64'))
    .action(async (opts: OperatorCliOptions) => {
      const op = await startOperator(opts);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void op.stop().then(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
