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
  /** agent: the relay forwards */
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

/** Records Events on VirtioRelays as one component (vio4wd-agent on a node, vio4wd-operator). */
export class EventRecorder {
  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly component: string,
    private readonly host: string,
  ) {}

  /** reason: an EventReason, or a failed relay's condition reason. */
  relay(obj: VirtioRelay, type: 'Normal' | 'Warning', reason: EventReason | Reason, message: string): Promise<void> {
    return recordEvent(
      this.core,
      this.log,
      this.component,
      this.host,
      {
        apiVersion: API_VERSION,
        kind: RELAY_KIND,
        name: obj.metadata.name!,
        namespace: obj.metadata.namespace!,
        ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
      },
      type,
      reason,
      message,
    );
  }
}
