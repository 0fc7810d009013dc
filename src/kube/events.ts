// core/v1 Events on objects, for what a user wants to see in `kubectl describe`, with the
// reasons both controllers record as constants.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import type { Reason } from '../relay/reasons.js';
import { kubeErrorMessage } from './client.js';
import { RELAY_KIND, type VirtioRelay } from './crd-schemas.js';
import { API_VERSION } from './resources.js';

/** Reasons of the Events vio4wd records on VirtioRelays (CamelCase words a user can search for). */
export const EventReason = {
  /** operator: a node was picked */
  Scheduled: 'Scheduled',
  /** operator: no node fits (the message says why) */
  FailedScheduling: 'FailedScheduling',
  /** operator: moved off a deleted node (reschedule: OnNodeLoss) */
  Rescheduled: 'Rescheduled',
  /** operator: left on a deleted node (reschedule: Never) */
  NodeLost: 'NodeLost',
  /** operator: the finalizer of a deleted relay without an agent removed */
  FinalizerRemoved: 'FinalizerRemoved',
  /** agent: the relay forwards (the Ready condition's reason; recorded as no Event: the status says it) */
  RelayReady: 'RelayReady',
  /** agent: the relay failed without a more precise reason */
  RelayFailed: 'RelayFailed',
  /** agent: the relay and its socket directory are gone */
  RelayRemoved: 'RelayRemoved',
  /** agent: the spec cannot become a relay */
  InvalidSpec: 'InvalidSpec',
  /** agent: the pool's VirtioForwarderPolicy (or the node's own config) does not allow it */
  PolicyDenied: 'PolicyDenied',
  /** agent: a guest connected to the socket, or went away */
  GuestConnected: 'GuestConnected',
  GuestDisconnected: 'GuestDisconnected',
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

/** Records a core/v1 Event on an object; failures are logged, never thrown. */
export async function recordEvent(
  core: CoreV1Api,
  log: Logger,
  component: string,
  host: string,
  target: EventTarget,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<void> {
  const now = new Date();
  const namespace = target.namespace ?? 'default';
  try {
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${target.name}.`, namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.name,
          namespace: target.namespace,
          uid: target.uid,
          resourceVersion: target.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component, host },
        reportingComponent: `vio4wd.io/${component}`,
        reportingInstance: host,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  } catch (err) {
    log.debug({ reason, err: kubeErrorMessage(err) }, 'could not record event');
  }
}

/** What the recorder holds back at most: more than that while the apiserver is slow, and the
 *  newest Normal ones are dropped (a Warning is always queued), as client-go's broadcaster does. */
const MAX_QUEUED = 1000;
/** Events being written at once. */
const IN_FLIGHT = 4;

/**
 * Records Events on VirtioRelays as one component (vio4wd-agent on a node, vio4wd-operator).
 * Events are written in the background, a few at a time: a controller never waits for one (an
 * Event is a write of its own, and in a burst of relays the apiserver's slowest), and under load
 * the oldest are written first while Normal ones beyond MAX_QUEUED are dropped and counted.
 */
export class EventRecorder {
  private readonly queue: (() => Promise<void>)[] = [];
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  /** Events dropped because too many were waiting. */
  dropped = 0;

  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly component: string,
    private readonly host: string,
  ) {}

  /** reason: an EventReason, or a failed relay's condition reason. Resolves at once. */
  relay(obj: VirtioRelay, type: 'Normal' | 'Warning', reason: EventReason | Reason, message: string): Promise<void> {
    if (type === 'Normal' && this.queue.length >= MAX_QUEUED) {
      if (this.dropped++ === 0) this.log.warn({ reason, queued: this.queue.length }, 'too many events waiting for the apiserver; dropping Normal ones');
      return Promise.resolve();
    }
    const target: EventTarget = {
      apiVersion: API_VERSION,
      kind: RELAY_KIND,
      name: obj.metadata.name!,
      namespace: obj.metadata.namespace!,
      ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
    };
    this.queue.push(() => recordEvent(this.core, this.log, this.component, this.host, target, type, reason, message));
    this.pump();
    return Promise.resolve();
  }

  /** Resolves when every queued event has been written (or failed). */
  flushed(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running < IN_FLIGHT && this.queue.length > 0) {
      const write = this.queue.shift()!;
      this.running++;
      void write().finally(() => {
        this.running--;
        this.pump();
      });
    }
    if (this.queue.length === 0 && this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}
