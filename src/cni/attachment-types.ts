// The attachment service's options: what it needs of the node's relays, of the admin's limits
// and of kubelet (the agent wires them in: src/agent/attachments.ts).
import type { Logger } from '../util/log.js';
import type { VfPort, VfProgrammer } from '../sriov/programmer.js';
import type { VfSettingsRequest } from '../policy/vf-settings.js';
import type { PodRef } from './protocol.js';

/** What the service needs from the relays of this node (the agent wires in RelayManager). */
export interface AttachRelays {
  /** The relay's socket, MTU, spec MAC and resource; undefined when no relay has that name. */
  relay(name: string): { socketPath: string; queues?: number; mtu?: number; specMac?: string; phase: string; resourceName?: string; namespace?: string } | undefined;
  /** Where the relay's VF is; throws CniError TryAgainLater while the relay has no VF yet. */
  port(name: string): Promise<VfPort>;
  /** Shows the attachment's MAC on the relay (status.mac, and what a re-attached VF gets). */
  setMac(name: string, mac: string | undefined): void;
  /** Why `mac` may not go to relay `name` of `namespace` (another namespace's relay has it, by
   *  its spec.mac or its pod's); undefined: it may. Absent: only attachments are compared. */
  macTaken?(name: string, namespace: string, mac: string): string | undefined;
  /** Gives the relay an attachment's queue pairs and MTU (undefined: its own again); resolves
   *  once the relay runs with them. Absent: attachments cannot change them. */
  configure?(name: string, o: { queues?: number; mtu?: number } | undefined): Promise<void>;
}

/** How an in-process caller asks (the DRA driver). */
export interface HandleOptions {
  /** The caller knows the relay was allocated to this attachment (a claim's allocation): kubelet's pod-resources are not asked. */
  allocated?: boolean;
  /** Queue pairs and MTU that differ from the relay's are applied to it (until DEL), not refused. */
  reconfigure?: boolean;
}

/** The admin's limits on what an attachment sets on a VF (src/policy/vf-settings.ts, wired by the agent). */
export interface VfLimitsSource {
  /** Why the limits of pool `resourceName` refuse `req`, or undefined; `subject` names who asks.
   *  Throws CniError (TryAgainLater) while the limits are not known yet. */
  denied(resourceName: string | undefined, subject: string, req: VfSettingsRequest): string | undefined;
  stop?(): Promise<void>;
}

export interface AttachmentServiceOptions {
  relays: AttachRelays;
  limits: VfLimitsSource;
  programmer: VfProgrammer;
  /**
   * The pods kubelet allocated a relay to (its device under the relay's resource name), from
   * kubelet's pod-resources API. Set: ADD attaches a relay only to a pod that holds it, so a
   * network config that writes another pod's relay as deviceID cannot reprogram its VF.
   * Unset (cni.allocationCheck: false): no check, for runtimes outside Kubernetes.
   */
  allocatedTo?: (relay: string, resourceName: string | undefined) => Promise<PodRef[]>;
  /** The checkpoint file (JSON, mode 0600); null: none (tests of pure logic). */
  statePath: string | null;
  logger: Logger;
}
