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
  virtioForwarderNodeSpecSchema,
  virtioForwarderNodeStatusSchema,
  virtioForwarderPolicySpecSchema,
  virtioRelaySpecSchema,
  virtioRelayStatusSchema,
} from './crd-schemas.js';

interface PrinterColumn {
  name: string;
  type: 'string' | 'boolean' | 'integer' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** What sets one CRD apart from the others; crd() writes the rest, which they share. */
interface CrdShape {
  plural: string;
  singular: string;
  kind: string;
  scope: 'Namespaced' | 'Cluster';
  shortNames: string[];
  description: string;
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
  /** spec must be given (the node's object is written by the agent without one) */
  specRequired: boolean;
  columns: PrinterColumn[];
  selectableFields?: { jsonPath: string }[];
}

/** A CustomResourceDefinition of the group: one served and stored version, status as a
 *  subresource when it has one, the object's age as the last column. */
function crd(c: CrdShape): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${c.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: c.scope,
      names: { plural: c.plural, singular: c.singular, kind: c.kind, listKind: `${c.kind}List`, shortNames: c.shortNames, categories: ['vio4wd'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          ...(c.status ? { subresources: { status: {} } } : {}),
          ...(c.selectableFields ? { selectableFields: c.selectableFields } : {}),
          additionalPrinterColumns: [...c.columns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: c.description,
              ...(c.specRequired ? { required: ['spec'] } : {}),
              properties: {
                apiVersion: { type: 'string', description: 'APIVersion of this object.' },
                kind: { type: 'string', description: 'Kind of this object.' },
                metadata: { type: 'object' },
                spec: c.spec,
                ...(c.status ? { status: c.status } : {}),
              },
            },
          },
        },
      ],
    },
  };
}

/** Whole CustomResourceDefinition objects, as crds/*.yaml hold them. */
export function crdObjects(): Record<string, unknown>[] {
  return [
    crd({
      plural: RELAY_PLURAL,
      singular: 'virtiorelay',
      kind: RELAY_KIND,
      scope: 'Namespaced',
      shortNames: ['vr', 'vrelay'],
      description: 'A VirtioRelay connects one SR-IOV VF to one vhost-user socket on a node, so that a VM gets a virtio NIC backed by the VF.',
      spec: virtioRelaySpecSchema,
      status: virtioRelayStatusSchema,
      specRequired: true,
      selectableFields: [{ jsonPath: '.spec.nodeName' }],
      columns: [
        { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', description: 'Node that runs the relay' },
        { name: 'VF', type: 'string', jsonPath: '.status.pciAddress', description: 'VF in use' },
        { name: 'Socket', type: 'string', jsonPath: '.status.socketPath', description: 'vhost-user socket on the node' },
        { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Relay phase' },
        { name: 'Guest', type: 'boolean', jsonPath: '.status.guestConnected', description: 'A guest is connected', priority: 1 },
        { name: 'Reason', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].reason", description: 'Why it is (not) ready', priority: 1 },
      ],
    }),
    crd({
      plural: NODE_PLURAL,
      singular: 'virtioforwardernode',
      kind: NODE_KIND,
      scope: 'Cluster',
      shortNames: ['vfn', 'vfnode'],
      description: 'What the vio4wd node agent found on a node: VFs, hugepages, workers and relay counts. Written by the agent.',
      spec: virtioForwarderNodeSpecSchema,
      status: virtioForwarderNodeStatusSchema,
      specRequired: false,
      columns: [
        { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status", description: 'The agent serves relays on the node' },
        { name: 'Engine', type: 'boolean', jsonPath: '.status.engine.up', description: 'DPDK engine up' },
        { name: 'Relays', type: 'integer', jsonPath: '.status.relays.total', description: 'Relays on the node' },
        { name: 'Relays-Ready', type: 'integer', jsonPath: '.status.relays.ready', description: 'Relays Ready' },
        { name: 'Relays-Failed', type: 'integer', jsonPath: '.status.relays.failed', description: 'Relays Failed' },
        { name: 'Reason', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].reason", description: 'Why it is (not) ready', priority: 1 },
        { name: 'Since', type: 'date', jsonPath: ".status.conditions[?(@.type=='Ready')].lastTransitionTime", description: 'Since when Ready has this status', priority: 1 },
      ],
    }),
    crd({
      plural: POLICY_PLURAL,
      singular: 'virtioforwarderpolicy',
      kind: POLICY_KIND,
      scope: 'Cluster',
      shortNames: ['vfp'],
      description:
        'A VirtioForwarderPolicy, written by the cluster admin, defines a pool of relays on the nodes it selects: which VFs the pool may use, its limits, who owns its sockets and which namespaces may place VirtioRelays in it. A VirtioRelay only names the pool.',
      spec: virtioForwarderPolicySpecSchema,
      specRequired: true,
      columns: [
        { name: 'Pool', type: 'string', jsonPath: '.spec.resourceName', description: 'Device-plugin resource of the pool' },
        { name: 'Namespaces', type: 'string', jsonPath: '.spec.namespaces', description: 'Namespaces that may use the pool' },
        { name: 'VLANs', type: 'string', jsonPath: '.spec.limits.allowedVlans', description: 'VLANs pod attachments may put a VF on (empty: untagged only)', priority: 1 },
        { name: 'Spoofchk-Off', type: 'boolean', jsonPath: '.spec.limits.allowSpoofchkOff', description: 'May pod attachments turn spoof checking off', priority: 1 },
      ],
    }),
  ];
}
