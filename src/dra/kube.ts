// The DRA driver's apiserver calls (resource.k8s.io/v1), through client-node's generic object
// API: ResourceSlices of this node (the publisher) and ResourceClaims (read; device status
// written with server-side apply on the status subresource).
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { httpStatus, kubeErrorMessage, type KubeClients } from '../kube/client.js';
import { DRIVER_NAME } from './constants.js';
import type { ClaimApi, DeviceStatusReport, ResourceClaim } from './driver.js';
import type { ResourceSliceBody } from './devices.js';

const GROUP = 'resource.k8s.io';
const VERSION = 'v1';
const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

export interface StoredSlice extends ResourceSliceBody {
  metadata: ResourceSliceBody['metadata'] & { resourceVersion?: string; uid?: string };
}

/** What the publisher needs of the apiserver. */
export interface SliceApi {
  list(nodeName: string): Promise<StoredSlice[]>;
  create(body: ResourceSliceBody): Promise<void>;
  replace(body: ResourceSliceBody, resourceVersion: string): Promise<void>;
  delete(name: string): Promise<void>;
  /** The node's UID (for the slices' owner reference), undefined while there is no Node object. */
  nodeUid(nodeName: string): Promise<string | undefined>;
}

export function kubeSliceApi(clients: KubeClients): SliceApi {
  const c = clients.custom;
  return {
    async list(nodeName) {
      const res = (await c.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', fieldSelector: `spec.nodeName=${nodeName},spec.driver=${DRIVER_NAME}` })) as { items?: StoredSlice[] };
      return res.items ?? [];
    },
    async create(body) {
      await c.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', body, fieldManager: 'vio4wd-agent' });
    },
    async replace(body, resourceVersion) {
      await c.replaceClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'resourceslices',
        name: body.metadata.name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion } },
        fieldManager: 'vio4wd-agent',
      });
    },
    async delete(name) {
      try {
        await c.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', name });
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
      }
    },
    async nodeUid(nodeName) {
      // list with a field selector: the agent's RBAC already allows list on nodes (not get)
      const res = await clients.core.listNode({ fieldSelector: `metadata.name=${nodeName}` });
      return res.items[0]?.metadata?.uid;
    },
  };
}

export function kubeClaimApi(clients: KubeClients): ClaimApi {
  const c = clients.custom;
  return {
    async get(namespace, name) {
      try {
        return (await c.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'resourceclaims', namespace, name })) as ResourceClaim;
      } catch (err) {
        throw new Error(kubeErrorMessage(err), { cause: err });
      }
    },
    async reportStatus(namespace, name, devices: DeviceStatusReport[]) {
      const now = new Date().toISOString();
      const body = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'ResourceClaim',
        metadata: { name, namespace },
        status: {
          devices: devices.map((d) => ({
            driver: DRIVER_NAME,
            pool: d.pool,
            device: d.device,
            conditions: [{ type: 'Ready', status: d.ready ? 'True' : 'False', reason: d.reason, message: d.message.slice(0, 32768), lastTransitionTime: now }],
            ...(d.data ? { data: d.data } : {}),
            ...(d.hardwareAddress ? { networkData: { hardwareAddress: d.hardwareAddress } } : {}),
          })),
        },
      };
      try {
        await c.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: 'resourceclaims', namespace, name, body, fieldManager: `${DRIVER_NAME}/agent`, force: true }, applyPatch);
      } catch (err) {
        throw new Error(kubeErrorMessage(err), { cause: err });
      }
    },
  };
}
