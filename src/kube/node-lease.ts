// An agent's liveness as a coordination.k8s.io/v1 Lease per node, as kubelet keeps its own in
// kube-node-lease: named after the node, in the agent's namespace, created when missing, and then
// renewed by moving spec.renewTime alone (an update of a small object, where rewriting the
// VirtioForwarderNode's status would send the whole inventory to every watcher). The operator
// lists and watches these Leases (nodeLeaseInformer) to tell a silent agent.
import type { KubernetesListObject, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { httpStatus, kubeErrorMessage, type KubeClients } from './client.js';
import { ResilientInformer, type InformerOptions } from './informer.js';
import { microTime } from './leader.js';

/** Label on every node Lease (the operator's Lease for leader election has none). */
export const NODE_LEASE_LABEL = 'vio4wd.io/lease';
export const NODE_LEASE_LABEL_VALUE = 'node';
/** Renew interval by default (kubelet's is 10 s too). */
export const DEFAULT_LEASE_RENEW_SECONDS = 10;
/** A Lease lasts this many renew intervals (kubelet: 40 s for 10 s). */
export const LEASE_DURATION_RENEWALS = 4;

export interface NodeLeaseOptions {
  clients: Pick<KubeClients, 'coordination'>;
  namespace: string;
  nodeName: string;
  logger: Logger;
  /** Seconds between renewals (default 10); the Lease lasts four of them. */
  renewSeconds?: number;
  /** Field manager of the writes. */
  fieldManager: string;
}

export class NodeLease {
  readonly renewMs: number;
  readonly durationSeconds: number;
  private readonly log: Logger;
  /** The Lease as last written or read: renewing it needs no read first. */
  private lease: V1Lease | undefined;
  private failing = false;
  /** Date.now() of the last successful renewal (0: none yet). */
  lastRenewedAt = 0;

  constructor(private readonly o: NodeLeaseOptions) {
    this.log = o.logger.child({ lease: `${o.namespace}/${o.nodeName}` });
    const renew = o.renewSeconds ?? DEFAULT_LEASE_RENEW_SECONDS;
    this.renewMs = renew * 1000;
    this.durationSeconds = Math.max(1, Math.ceil(renew * LEASE_DURATION_RENEWALS));
  }

  /**
   * Creates the Lease or moves its renewTime to now: one write (a read first only when the Lease
   * was never seen or changed under us). Returns false (and logs once per outage) on failure.
   */
  async renew(): Promise<boolean> {
    const api = this.o.clients.coordination;
    const { namespace, nodeName: name } = this.o;
    const now = microTime(new Date()) as unknown as Date; // V1MicroTime: passed through as given
    try {
      if (!this.lease) this.lease = await this.read();
      if (!this.lease) {
        this.lease = await api.createNamespacedLease({ namespace, fieldManager: this.o.fieldManager, body: { metadata: { name, namespace, labels: { [NODE_LEASE_LABEL]: NODE_LEASE_LABEL_VALUE } }, spec: this.spec(now) } });
      } else {
        this.lease = await api.replaceNamespacedLease({ name, namespace, fieldManager: this.o.fieldManager, body: this.body(this.lease, now) });
      }
      this.lastRenewedAt = Date.now();
      if (this.failing) this.log.info('node Lease renewed again');
      this.failing = false;
      return true;
    } catch (err) {
      const code = httpStatus(err);
      // changed or deleted meanwhile: read it again next time
      if (code === 409 || code === 404) this.lease = undefined;
      if (code === 409) return this.renewAfterConflict();
      this.log[this.failing ? 'debug' : 'warn']({ err: kubeErrorMessage(err) }, 'could not renew the node Lease; retrying');
      this.failing = true;
      return false;
    }
  }

  /** One more try after a 409 (someone else wrote the Lease, e.g. a user relabelling it). */
  private async renewAfterConflict(): Promise<boolean> {
    try {
      const lease = await this.read();
      const now = microTime(new Date()) as unknown as Date;
      const { namespace, nodeName: name } = this.o;
      this.lease = lease
        ? await this.o.clients.coordination.replaceNamespacedLease({ name, namespace, fieldManager: this.o.fieldManager, body: this.body(lease, now) })
        : undefined;
      if (!this.lease) return false;
      this.lastRenewedAt = Date.now();
      return true;
    } catch (err) {
      this.lease = undefined;
      this.log.warn({ err: kubeErrorMessage(err) }, 'could not renew the node Lease; retrying');
      this.failing = true;
      return false;
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.o.clients.coordination.readNamespacedLease({ name: this.o.nodeName, namespace: this.o.namespace });
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** The Lease renewed, with its label (the operator lists by it). */
  private body(lease: V1Lease, now: Date): V1Lease {
    return { ...lease, metadata: { ...lease.metadata, labels: { ...lease.metadata?.labels, [NODE_LEASE_LABEL]: NODE_LEASE_LABEL_VALUE } }, spec: this.spec(now) };
  }

  private spec(now: Date): NonNullable<V1Lease['spec']> {
    // the whole spec: times read back are Dates, which would not go out as MicroTime
    return { holderIdentity: this.o.nodeName, leaseDurationSeconds: this.durationSeconds, renewTime: now };
  }
}

/** A cache of the node Leases in a namespace (the operator's view of which agents are alive). */
export function nodeLeaseInformer(clients: KubeClients, namespace: string, opts: Omit<InformerOptions<V1Lease>, 'path' | 'list' | 'labelSelector' | 'fieldSelector'>): ResilientInformer<V1Lease> {
  const labelSelector = `${NODE_LEASE_LABEL}=${NODE_LEASE_LABEL_VALUE}`;
  return new ResilientInformer<V1Lease>(clients.kc, {
    ...opts,
    labelSelector,
    path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    list: async () => (await clients.coordination.listNamespacedLease({ namespace, labelSelector })) as KubernetesListObject<V1Lease>,
  });
}
