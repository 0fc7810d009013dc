// The CustomResourceDefinitions as whole objects, built from the schemas in crd-schemas.ts:
// crds/*.yaml and the Helm chart's copies are written from these (npm run gen:crds).
import {
  GROUP,
  NODE_KIND,
  NODE_PLURAL,
  POLICY_KIND,
  POLICY_PLURAL,
  RELAY_KIND,
  RELAY_PLURAL,
  VERSION,
  virtioForwarderNodeStatusSchema,
  virtioForwarderPolicySpecSchema,
  virtioRelaySpecSchema,
  virtioRelayStatusSchema,
} from './crd-schemas.js';

/** Whole CustomResourceDefinition objects, as crds/*.yaml hold them. */
export function crdObjects(): Record<string, unknown>[] {
  return [
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${RELAY_PLURAL}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Namespaced',
        names: { plural: RELAY_PLURAL, singular: 'virtiorelay', kind: RELAY_KIND, listKind: `${RELAY_KIND}List`, shortNames: ['vr', 'vrelay'], categories: ['vio4wd'] },
        versions: [
          {
            name: VERSION,
            served: true,
            storage: true,
            subresources: { status: {} },
            selectableFields: [{ jsonPath: '.spec.nodeName' }],
            additionalPrinterColumns: [
              { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', description: 'Node that runs the relay' },
              { name: 'VF', type: 'string', jsonPath: '.status.pciAddress', description: 'VF in use' },
              { name: 'Socket', type: 'string', jsonPath: '.status.socketPath', description: 'vhost-user socket on the node' },
              { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Relay phase' },
              { name: 'Guest', type: 'boolean', jsonPath: '.status.guestConnected', description: 'A guest is connected', priority: 1 },
              { name: 'Reason', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].reason", description: 'Why it is (not) ready', priority: 1 },
              { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            ],
            schema: {
              openAPIV3Schema: {
                type: 'object',
                description: 'A VirtioRelay connects one SR-IOV VF to one vhost-user socket on a node, so that a VM gets a virtio NIC backed by the VF.',
                required: ['spec'],
                properties: {
                  apiVersion: { type: 'string', description: 'APIVersion of this object.' },
                  kind: { type: 'string', description: 'Kind of this object.' },
                  metadata: { type: 'object' },
                  spec: virtioRelaySpecSchema,
                  status: virtioRelayStatusSchema,
                },
              },
            },
          },
        ],
      },
    },
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${NODE_PLURAL}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Cluster',
        names: { plural: NODE_PLURAL, singular: 'virtioforwardernode', kind: NODE_KIND, listKind: `${NODE_KIND}List`, shortNames: ['vfn'], categories: ['vio4wd'] },
        versions: [
          {
            name: VERSION,
            served: true,
            storage: true,
            subresources: { status: {} },
            additionalPrinterColumns: [
              { name: 'Engine', type: 'boolean', jsonPath: '.status.engine.up', description: 'DPDK engine up' },
              { name: 'Relays', type: 'integer', jsonPath: '.status.relays.total', description: 'Relays on the node' },
              { name: 'Ready', type: 'integer', jsonPath: '.status.relays.ready', description: 'Relays Ready' },
              { name: 'Failed', type: 'integer', jsonPath: '.status.relays.failed', description: 'Relays Failed' },
              { name: 'Heartbeat', type: 'date', jsonPath: '.status.heartbeatTime', description: 'Last status update', priority: 1 },
              { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            ],
            schema: {
              openAPIV3Schema: {
                type: 'object',
                description: 'What the vio4wd node agent found on a node: VFs, hugepages, workers and relay counts. Written by the agent.',
                properties: {
                  apiVersion: { type: 'string', description: 'APIVersion of this object.' },
                  kind: { type: 'string', description: 'Kind of this object.' },
                  metadata: { type: 'object' },
                  spec: {
                    type: 'object',
                    description: 'Nothing to set: the object is named after its node.',
                    properties: { nodeName: { type: 'string', description: 'The node (same as metadata.name).' } },
                  },
                  status: virtioForwarderNodeStatusSchema,
                },
              },
            },
          },
        ],
      },
    },
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${POLICY_PLURAL}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Cluster',
        names: {
          plural: POLICY_PLURAL,
          singular: 'virtioforwarderpolicy',
          kind: POLICY_KIND,
          listKind: 'VirtioForwarderPolicyList',
          shortNames: ['vfp'],
          categories: ['vio4wd'],
        },
        versions: [
          {
            name: VERSION,
            served: true,
            storage: true,
            additionalPrinterColumns: [
              { name: 'Pool', type: 'string', jsonPath: '.spec.resourceName', description: 'Device-plugin resource of the pool' },
              { name: 'Namespaces', type: 'string', jsonPath: '.spec.namespaces', description: 'Namespaces that may use the pool' },
              { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            ],
            schema: {
              openAPIV3Schema: {
                type: 'object',
                description: 'A VirtioForwarderPolicy, written by the cluster admin, defines a pool of relays on the nodes it selects: which VFs the pool may use, its limits, who owns its sockets and which namespaces may place VirtioRelays in it. A VirtioRelay only names the pool.',
                required: ['spec'],
                properties: {
                  apiVersion: { type: 'string', description: 'APIVersion of this object.' },
                  kind: { type: 'string', description: 'Kind of this object.' },
                  metadata: { type: 'object' },
                  spec: virtioForwarderPolicySpecSchema,
                },
              },
            },
          },
        ],
      },
    },
  ];
}
