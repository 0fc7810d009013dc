// The DRA driver's types: the claim as the driver reads it, and what the driver needs of the
// apiserver, the ResourceSlice publisher and the agent (small interfaces the wiring passes in).
import type { AllocationConfig } from './config.js';
import type { FreeVf } from './devices.js';

/** resource.k8s.io/v1 ResourceClaim, the parts the driver reads. */
export interface ResourceClaim {
  metadata?: { name?: string; namespace?: string; uid?: string; annotations?: Record<string, string> };
  status?: {
    allocation?: { devices?: { results?: { request: string; driver: string; pool: string; device: string }[]; config?: AllocationConfig[] } };
    reservedFor?: { resource?: string; name?: string; uid?: string }[];
  };
}

/** A claim as kubelet names it in NodePrepareResources. */
export interface ClaimRef {
  namespace: string;
  uid: string;
  name: string;
}

/** Per-device status the driver reports in the claim (status.devices, KEP-4817). */
export interface DeviceStatusReport {
  pool: string;
  device: string;
  ready: boolean;
  reason: string;
  message: string;
  data?: Record<string, unknown>;
  hardwareAddress?: string;
}

/** The apiserver side: read a claim, report device status on it. */
export interface ClaimApi {
  get(namespace: string, name: string): Promise<ResourceClaim>;
  reportStatus(namespace: string, name: string, devices: DeviceStatusReport[]): Promise<void>;
}

/** The device -> relay map the ResourceSlice publisher keeps. */
export interface DeviceLookup {
  relayOf(pool: string, device: string): string | undefined;
  /** A free VF's device: the VF, and the relay prepare creates for it. */
  vfOf?(pool: string, device: string): { vf: FreeVf; relay: string } | undefined;
  /** Publish once now (a claim may name a device published before this agent started). */
  refresh?(): Promise<void>;
}

export interface PoolLimits {
  /** namespaces whose claims may use the pool (VirtioForwarderPolicy spec.namespaces; "*": any) */
  namespaces?: string[];
  maxQueues?: number;
  maxMtu?: number;
  policy: string;
}

/** Relays made for free VFs' devices (the agent's RelayManager), by the relay's name. */
export interface VfRelays {
  /** Creates (or finds) the relay on the VF with the claim's queues and MTU; resolves when it is ready. */
  create(vf: FreeVf, relay: string, o: { queues: number; mtu?: number; namespace: string; claim: string }): Promise<void>;
  /** Deletes it (a relay that is not there is fine). */
  remove(relay: string): Promise<void>;
}
