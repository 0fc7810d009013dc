// What the node reconciler needs of the apiserver, in one interface: its node's VirtioRelays (a
// cache with change handlers), their metadata and status writes, events, the node's
// Lease and VirtioForwarderNode, and the pool policy. nodeKube() builds it from real clients; a unit
// test gives a fixture instead (test/unit/agent.node-reconciler.test.ts), as sample-controller's
// controller_test.go does.
import type { Logger } from '../../util/log.js';
import {
  EventRecorder,
  resources,
  type EventReason,
  type KubeClients,
  type RelayPatch,
  type VirtioRelay,
  type VirtioRelaySpec,
  type VirtioRelayStatus,
} from '../../kube/index.js';
import type { Reason } from '../../relay/reasons.js';
import type { PolicyDecision } from '../../policy/index.js';
import { NodePolicy } from './policy.js';
import { NodePublisher, type NodePublisherOptions } from './publisher.js';

/** The VirtioRelays scheduled to this node, as a synced cache. */
export interface RelayCache {
  get(name: string, namespace?: string): VirtioRelay | undefined;
  list(): VirtioRelay[];
  readonly hasSynced: boolean;
  start(): Promise<void>;
  synced(): Promise<void>;
  stop(): Promise<void>;
}

export interface RelayHandlers {
  onAdd(obj: VirtioRelay): void;
  onUpdate(obj: VirtioRelay): void;
  onDelete(obj: VirtioRelay): void;
}

export interface NodeKube {
  /** A cache of this node's VirtioRelays that calls the handlers on every change. */
  relayCache(handlers: RelayHandlers): RelayCache;
  /** Merge-patches metadata (conditioned on the resourceVersion: a 409 throws ConflictError,
   *  a 404 NotFoundError). */
  patchRelay(obj: VirtioRelay, body: RelayPatch): Promise<VirtioRelay>;
  patchRelayStatus(obj: VirtioRelay, status: VirtioRelayStatus): Promise<void>;
  event(obj: VirtioRelay, type: 'Normal' | 'Warning', reason: EventReason | Reason, message: string): Promise<void>;
  /** The node's Lease and VirtioForwarderNode status (publisher.ts). */
  nodePublisher(o: NodePublisherInput): NodePublisherView;
  /** The pool policy; onChange when a policy or the node's labels change. */
  policy(onChange: () => void): NodePolicyView;
}

/** What the reconciler gives the node publisher; the apiserver side comes from NodeKube. */
export type NodePublisherInput = Omit<NodePublisherOptions, 'clients' | 'api' | 'nodeName' | 'logger' | 'fieldManager'>;

export interface NodePublisherView {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Something the status shows changed: published soon. */
  changed(): void;
  /** Holds the status writes (a handover) or lets them go again. */
  hold(on: boolean): void;
  /** Status writes done so far. */
  readonly writes: number;
}

export interface NodePolicyView {
  decide(namespace: string, spec: VirtioRelaySpec): PolicyDecision;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The apiserver through real clients, writing as `component` (field manager and event source). */
export function nodeKube(o: { clients: KubeClients; nodeName: string; component: string; virtualDevices: readonly string[]; logger: Logger }): NodeKube {
  const api = resources(o.clients, o.component);
  const events = new EventRecorder(o.clients.core, o.logger, o.component, o.nodeName);
  return {
    relayCache: (h) => api.relays.informer({ fieldSelector: `spec.nodeName=${o.nodeName}`, logger: o.logger, ...h }),
    patchRelay: (obj, body) => api.relays.patch(obj, body),
    patchRelayStatus: (obj, status) => api.relays.patchStatus(obj, { ...status }),
    event: (obj, type, reason, message) => events.relay(obj, type, reason, message),
    nodePublisher: (p) => new NodePublisher({ clients: o.clients, api, nodeName: o.nodeName, logger: o.logger, fieldManager: o.component, ...p }),
    policy: (onChange) =>
      new NodePolicy({
        clients: o.clients,
        policies: api.policies,
        nodeName: o.nodeName,
        allowances: { virtualDevices: [...o.virtualDevices] },
        logger: o.logger,
        onChange,
      }),
  };
}
