// Typed clients for vio4wd's resources, VirtioRelay, VirtioForwarderNode and (read-only)
// VirtioForwarderPolicy: the only place
// that spells their group, version and plural. Patches carry a field manager, so
// `kubectl get --show-managed-fields` says which side (agent or operator) wrote what.
import type { KubernetesListObject } from '@kubernetes/client-node';
import { VioError } from '../util/errors.js';
import { httpStatus, kubeErrorMessage, mergePatch, type KubeClients } from './client.js';
import {
  GROUP,
  NODE_KIND,
  NODE_PLURAL,
  POLICY_PLURAL,
  RELAY_PLURAL,
  VERSION,
  type VirtioForwarderNode,
  type VirtioForwarderPolicy,
  type VirtioRelay,
} from './crd-schemas.js';
import { ResilientInformer, type InformerOptions } from './informer.js';

export const API_VERSION = `${GROUP}/${VERSION}`;
/** Guards a relay's engine state and socket directory until its agent has removed them. */
export const FINALIZER = 'vio4wd.io/relay-cleanup';

/** The object changed since it was read (409): retry with the current version. */
export class ConflictError extends VioError {
  constructor(message: string) {
    super('ECONFLICT', message);
    this.name = 'ConflictError';
  }
}

/** The object is gone (404). */
export class NotFoundError extends VioError {
  constructor(message: string) {
    super('ENOTFOUND', message);
    this.name = 'NotFoundError';
  }
}

/** The apiserver refused the change (422), e.g. a CEL rule. */
export class InvalidError extends VioError {
  constructor(message: string) {
    super('EINVAL', message);
    this.name = 'InvalidError';
  }
}

/** namespace/name of a namespaced object (the work-queue key). */
export function objectKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** Callbacks and selectors of an informer over one of the resources. */
export type WatchOptions<T extends VirtioRelay | VirtioForwarderNode | VirtioForwarderPolicy> = Omit<InformerOptions<T>, 'path' | 'list'>;

/** A merge-patch body for metadata and spec; null removes a field. */
export interface RelayPatch {
  metadata?: Record<string, unknown>;
  spec?: Record<string, unknown>;
}

export class VirtioRelayClient {
  constructor(
    private readonly clients: KubeClients,
    private readonly fieldManager: string,
  ) {}

  /** A cache of the VirtioRelays (of one node with fieldSelector `spec.nodeName=<node>`). */
  informer(opts: WatchOptions<VirtioRelay>): ResilientInformer<VirtioRelay> {
    const fieldSelector = opts.fieldSelector;
    return new ResilientInformer<VirtioRelay>(this.clients.kc, {
      ...opts,
      path: `/apis/${GROUP}/${VERSION}/${RELAY_PLURAL}`,
      list: async () =>
        (await this.clients.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: RELAY_PLURAL, ...(fieldSelector ? { fieldSelector } : {}) })) as KubernetesListObject<VirtioRelay>,
    });
  }

  /**
   * Merge-patches metadata and spec, conditioned on obj's resourceVersion (compare-and-swap).
   * Throws ConflictError (409), NotFoundError (404), InvalidError (422).
   */
  async patch(obj: VirtioRelay, body: RelayPatch): Promise<VirtioRelay> {
    const patch = { ...body, metadata: { ...(body.metadata ?? {}), resourceVersion: obj.metadata.resourceVersion } };
    try {
      return (await this.clients.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, plural: RELAY_PLURAL, namespace: obj.metadata.namespace!, name: obj.metadata.name!, body: patch, fieldManager: this.fieldManager },
        mergePatch,
      )) as VirtioRelay;
    } catch (err) {
      throw this.error(err, `patching VirtioRelay ${objectKey(obj)}`);
    }
  }

  /**
   * Merge-patches status through the status subresource. With guard, conditioned on obj's
   * resourceVersion (a 409 throws ConflictError). A relay deleted meanwhile (404) is no error.
   */
  async patchStatus(obj: VirtioRelay, status: Record<string, unknown>, opts: { guard?: boolean } = {}): Promise<void> {
    const body = opts.guard ? { metadata: { resourceVersion: obj.metadata.resourceVersion }, status } : { status };
    try {
      await this.clients.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: RELAY_PLURAL, namespace: obj.metadata.namespace!, name: obj.metadata.name!, body, fieldManager: this.fieldManager },
        mergePatch,
      );
    } catch (err) {
      const e = this.error(err, `status update of VirtioRelay ${objectKey(obj)}`);
      if (e instanceof NotFoundError) return;
      throw e;
    }
  }

  private error(err: unknown, what: string): Error {
    const code = httpStatus(err);
    if (code === 409) return new ConflictError(`${what}: it changed meanwhile; retrying with the current version`);
    if (code === 404) return new NotFoundError(`${what}: the VirtioRelay was deleted`);
    if (code === 422) return new InvalidError(kubeErrorMessage(err));
    return new Error(`${what}: ${kubeErrorMessage(err)}`, { cause: err });
  }
}

export class VirtioForwarderNodeClient {
  constructor(
    private readonly clients: KubeClients,
    private readonly fieldManager: string,
  ) {}

  /** A cache of the VirtioForwarderNodes (of one node with fieldSelector `metadata.name=<node>`). */
  informer(opts: WatchOptions<VirtioForwarderNode>): ResilientInformer<VirtioForwarderNode> {
    const fieldSelector = opts.fieldSelector;
    return new ResilientInformer<VirtioForwarderNode>(this.clients.kc, {
      ...opts,
      path: `/apis/${GROUP}/${VERSION}/${NODE_PLURAL}`,
      list: async () =>
        (await this.clients.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: NODE_PLURAL, ...(fieldSelector ? { fieldSelector } : {}) })) as KubernetesListObject<VirtioForwarderNode>,
    });
  }

  /** Creates a node's VirtioForwarderNode (no status yet); the existing one when there is one. */
  async create(name: string): Promise<VirtioForwarderNode> {
    const api = this.clients.custom;
    try {
      return (await api.createClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: NODE_PLURAL,
        body: { apiVersion: API_VERSION, kind: NODE_KIND, metadata: { name }, spec: { nodeName: name } },
        fieldManager: this.fieldManager,
      })) as VirtioForwarderNode;
    } catch (err) {
      if (httpStatus(err) !== 409) throw new Error(`creating VirtioForwarderNode ${name}: ${kubeErrorMessage(err)}`, { cause: err });
      return (await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: NODE_PLURAL, name })) as VirtioForwarderNode;
    }
  }

  /**
   * Merge-patches a node's status (only the fields given; null removes one). With resourceVersion,
   * conditioned on it (ConflictError when the object changed since). NotFoundError when it is gone.
   */
  async patchStatus(name: string, status: unknown, opts: { resourceVersion?: string } = {}): Promise<VirtioForwarderNode> {
    const body = opts.resourceVersion ? { metadata: { resourceVersion: opts.resourceVersion }, status } : { status };
    try {
      return (await this.clients.custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: NODE_PLURAL, name, body, fieldManager: this.fieldManager },
        mergePatch,
      )) as VirtioForwarderNode;
    } catch (err) {
      const code = httpStatus(err);
      if (code === 404) throw new NotFoundError(`status update of VirtioForwarderNode ${name}: it was deleted`);
      if (code === 409) throw new ConflictError(`status update of VirtioForwarderNode ${name}: it changed meanwhile; retrying with the current version`);
      throw new Error(`status update of VirtioForwarderNode ${name}: ${kubeErrorMessage(err)}`, { cause: err });
    }
  }

  /** Deletes the VirtioForwarderNode with this uid; false when it is gone or was replaced. */
  async delete(name: string, uid: string | undefined): Promise<boolean> {
    try {
      await this.clients.custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: NODE_PLURAL, name, body: { preconditions: { uid } } });
      return true;
    } catch (err) {
      const code = httpStatus(err);
      if (code === 404 || code === 409) return false; // gone already, or a new one of the same name
      throw new Error(`deleting VirtioForwarderNode ${name}: ${kubeErrorMessage(err)}`, { cause: err });
    }
  }
}

/** The admin's pools: read, never written, by vio4wd. */
export class VirtioForwarderPolicyClient {
  constructor(private readonly clients: KubeClients) {}

  informer(opts: WatchOptions<VirtioForwarderPolicy>): ResilientInformer<VirtioForwarderPolicy> {
    return new ResilientInformer<VirtioForwarderPolicy>(this.clients.kc, {
      ...opts,
      path: `/apis/${GROUP}/${VERSION}/${POLICY_PLURAL}`,
      list: async () => (await this.clients.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: POLICY_PLURAL })) as KubernetesListObject<VirtioForwarderPolicy>,
    });
  }
}

/** The clients a controller uses, all writing as one field manager. */
export interface Resources {
  relays: VirtioRelayClient;
  nodes: VirtioForwarderNodeClient;
  policies: VirtioForwarderPolicyClient;
}

export function resources(clients: KubeClients, fieldManager: string): Resources {
  return { relays: new VirtioRelayClient(clients, fieldManager), nodes: new VirtioForwarderNodeClient(clients, fieldManager), policies: new VirtioForwarderPolicyClient(clients) };
}

