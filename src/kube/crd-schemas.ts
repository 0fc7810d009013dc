// The CRDs' OpenAPI schemas, written once: crds/*.yaml are generated from these
// (npm run gen:crds), the TypeScript types come from them (json-schema-to-ts) and so do the
// ajv validators the agent uses on objects it reads.
import type { FromSchema } from 'json-schema-to-ts';
import { MAC_PATTERN } from '../util/identifiers.js';
import { MAX_QUEUES, MTU_MAX, MTU_MIN } from '../util/limits.js';
import {
  bondModeSchema,
  devargsSchema,
  mtuSchema,
  pciAddressSchema,
  pciAddressesSchema,
  relayCpusSchema,
  vfSelectorProperties,
} from '../util/schema-parts.js';

export const GROUP = 'vio4wd.io';
export const VERSION = 'v1alpha1';
export const RELAY_KIND = 'VirtioRelay';
export const RELAY_PLURAL = 'virtiorelays';
export const NODE_KIND = 'VirtioForwarderNode';
export const NODE_PLURAL = 'virtioforwardernodes';
export const POLICY_KIND = 'VirtioForwarderPolicy';
export const POLICY_PLURAL = 'virtioforwarderpolicies';

const pci = pciAddressSchema;
/** A VLAN id 0..4094 as text (0: untagged). */
const VLAN_ID = '(0|[1-9][0-9]{0,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-4])';

/** A Kubernetes-style condition (metav1.Condition's shape); typeText names the types it takes. */
function conditionSchema<const D extends string, const R extends string>(typeText: D, reasonExample: R) {
  return {
    type: 'object',
    description: 'A Kubernetes-style condition.',
    required: ['type', 'status', 'reason', 'lastTransitionTime'],
    properties: {
      type: { type: 'string', description: typeText },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'True, False or Unknown.' },
      reason: { type: 'string', description: `CamelCase reason, e.g. ${reasonExample}.` },
      message: { type: 'string', description: 'Human-readable detail.' },
      lastTransitionTime: { type: 'string', format: 'date-time', description: 'When status last changed.' },
      observedGeneration: { type: 'integer', description: 'Generation this condition was computed from.' },
    },
  } as const;
}

const condition = conditionSchema('VFAttached, SocketReady, GuestConnected or Ready.', 'VFNotFound');

export const virtioRelaySpecSchema = {
  type: 'object',
  description: 'What the relay should be: one VF and one vhost-user socket on one node.',
  required: ['vf'],
  properties: {
    nodeName: {
      type: 'string',
      description: 'Node that runs the relay. Leave it out and the vio4wd operator picks a node with a free matching VF.',
      maxLength: 253,
    },
    vf: {
      type: 'object',
      description: 'The VF: exactly one of pciAddress, pciAddresses (a bond), selector or devargs.',
      properties: {
        pciAddress: pci,
        pciAddresses: { ...pciAddressesSchema, minItems: 2 },
        bondMode: bondModeSchema,
        selector: {
          type: 'object',
          description: 'Pick any free VF that matches all given fields.',
          properties: vfSelectorProperties,
        },
        devargs: {
          ...devargsSchema,
          description: 'DPDK devargs of a virtual device used as the VF (testing), e.g. net_tap0,iface=vf0. Only on nodes whose agent config allows the driver (kubernetes.allowVirtualDevices) and in pools whose VirtioForwarderPolicy lists it (spec.vfs.virtualDevices).',
        },
      },
      'x-kubernetes-validations': [
        {
          rule: '[has(self.pciAddress), has(self.pciAddresses), has(self.selector), has(self.devargs)].filter(x, x).size() == 1',
          message: 'set exactly one of vf.pciAddress, vf.pciAddresses, vf.selector or vf.devargs',
        },
        { rule: '!has(self.bondMode) || has(self.pciAddresses)', message: 'vf.bondMode needs vf.pciAddresses (two or more VFs)' },
      ],
    },
    vhostUser: {
      type: 'object',
      description: 'The vhost-user socket the VM uses. Where it lives and who owns it is the node admin\'s (the agent\'s socket root and the pool\'s VirtioForwarderPolicy), never the relay\'s.',
      properties: {
        mode: {
          type: 'string',
          description: 'client (default): QEMU creates the socket and the relay connects, so either side can restart. server: the relay creates the socket.',
          enum: ['client', 'server'],
        },
        // no longer accepted (a host path and host ids chosen by a tenant): still declared so
        // that the apiserver refuses them by name instead of pruning them silently
        socketDir: { type: 'string', description: 'Not accepted: the socket directory is the node agent\'s (kubernetes.socketDir).', maxLength: 4096 },
        owner: { type: 'string', description: 'Not accepted: set by the pool\'s VirtioForwarderPolicy (spec.socket.owner).', maxLength: 256 },
        group: { type: 'string', description: 'Not accepted: set by the pool\'s VirtioForwarderPolicy (spec.socket.group).', maxLength: 256 },
        perm: { type: 'string', description: 'Not accepted: set by the pool\'s VirtioForwarderPolicy (spec.socket.perm).', maxLength: 16 },
      },
      'x-kubernetes-validations': [
        {
          rule: '!has(self.socketDir)',
          message: 'vhostUser.socketDir is not accepted: the socket directory belongs to the node agent (its kubernetes.socketDir); remove the field',
          fieldPath: '.socketDir',
        },
        {
          rule: '!has(self.owner) && !has(self.group) && !has(self.perm)',
          message: 'vhostUser.owner, vhostUser.group and vhostUser.perm are not accepted: the pool\'s VirtioForwarderPolicy sets them (spec.socket); remove the fields',
        },
      ],
    },
    queues: { type: 'integer', description: `Queue pairs, 1..${MAX_QUEUES} (default 1).` },
    mac: { type: 'string', description: 'The VM\'s MAC address; set on the VF so frames pass it (the relay rewrites nothing).', maxLength: 17 },
    mtu: mtuSchema,
    resourceName: {
      type: 'string',
      description: 'The pool: the device-plugin resource the socket is offered as (default vio4wd.io/vhostuser). A VirtioForwarderPolicy for this pool must select the node and list the relay\'s namespace.',
      pattern: '^vio4wd\\.io/[a-zA-Z0-9._-]+$',
      // a pool name is at most 63 characters (an extended resource name's)
      maxLength: 73,
    },
    numaNode: { type: 'integer', description: 'NUMA node for the relay\'s memory and workers (default: the VF\'s).', minimum: 0 },
    cpus: relayCpusSchema,
    reschedule: {
      type: 'string',
      description: 'Never (default): the relay stays on its node. OnNodeLoss: the operator moves it when its node is deleted.',
      enum: ['Never', 'OnNodeLoss'],
    },
  },
  'x-kubernetes-validations': [
    { rule: `!has(self.queues) || (self.queues >= 1 && self.queues <= ${MAX_QUEUES})`, message: `queues must be between 1 and ${MAX_QUEUES}` },
    {
      rule: `!has(self.mac) || self.mac.matches('${MAC_PATTERN}')`,
      message: 'mac must look like 52:54:00:12:34:56',
    },
    { rule: 'self.vf == oldSelf.vf', message: 'vf cannot be changed after creation: delete and recreate the VirtioRelay' },
    {
      rule: '(has(self.vhostUser) ? (has(self.vhostUser.mode) ? self.vhostUser.mode : "client") : "client") == (has(oldSelf.vhostUser) ? (has(oldSelf.vhostUser.mode) ? oldSelf.vhostUser.mode : "client") : "client")',
      message: 'vhostUser.mode cannot be changed after creation: delete and recreate the VirtioRelay',
    },
    {
      rule: '(has(self.resourceName) ? self.resourceName : "") == (has(oldSelf.resourceName) ? oldSelf.resourceName : "")',
      message: 'resourceName cannot be changed after creation: delete and recreate the VirtioRelay',
    },
    {
      rule: '!has(oldSelf.nodeName) || (has(self.nodeName) && self.nodeName == oldSelf.nodeName) || (has(self.reschedule) && self.reschedule == "OnNodeLoss")',
      message: 'nodeName cannot be changed once set (set reschedule: OnNodeLoss to let the operator move the relay)',
    },
  ],
} as const;

export const virtioRelayStatusSchema = {
  type: 'object',
  description: 'What the node agent observed.',
  properties: {
    phase: { type: 'string', description: 'Pending, Scheduled, Configuring, Ready, Failed or Terminating.', enum: ['Pending', 'Scheduled', 'Configuring', 'Ready', 'Failed', 'Terminating'] },
    message: { type: 'string', description: 'Why the relay is in this phase.' },
    conditions: { type: 'array', description: 'VFAttached, SocketReady, GuestConnected and Ready.', items: condition, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
    nodeName: { type: 'string', description: 'Node whose agent serves the relay.' },
    pciAddress: { type: 'string', description: 'PCI address(es) of the VF in use (or the devargs).' },
    socketPath: { type: 'string', description: 'Host path of the vhost-user socket.' },
    socketMode: { type: 'string', description: 'client or server: the relay\'s side of the socket.' },
    relayId: { type: 'integer', description: 'Relay number on the node (virtio-forwarder numbering).' },
    deviceId: { type: 'string', description: 'Device ID the kubelet device plugin offers this relay as.' },
    resourceName: { type: 'string', description: 'Resource name of the device (vio4wd.io/<pool>).' },
    numaNode: { type: 'integer', description: 'NUMA node of the relay.' },
    mac: { type: 'string', description: 'MAC address of the VF.' },
    guestConnected: { type: 'boolean', description: 'A guest is connected to the socket.' },
    observedGeneration: { type: 'integer', description: 'The spec generation this status describes.' },
  },
} as const;

export const virtioForwarderNodeSpecSchema = {
  type: 'object',
  description: 'Nothing to set: the object is named after its node.',
  properties: { nodeName: { type: 'string', description: 'The node (same as metadata.name).' } },
} as const;

export const virtioForwarderNodeStatusSchema = {
  type: 'object',
  description: 'What the node agent found on its node.',
  properties: {
    vfs: {
      type: 'array',
      description: 'VFs on the node.',
      items: {
        type: 'object',
        required: ['pciAddress'],
        properties: {
          pciAddress: pci,
          pfName: { type: 'string', description: 'PF netdev name.' },
          vfIndex: { type: 'integer', description: 'Index of the VF on its PF.' },
          vendor: { type: 'string', description: 'PCI vendor id.' },
          device: { type: 'string', description: 'PCI device id.' },
          numaNode: { type: 'integer', description: 'NUMA node.' },
          driver: { type: 'string', description: 'Kernel driver the VF is bound to.' },
          mac: { type: 'string', description: 'MAC address, when known.' },
          usedBy: { type: 'string', description: 'namespace/name of the VirtioRelay using it.' },
        },
      },
    },
    hugepages: {
      type: 'array',
      description: 'Hugepages per NUMA node.',
      items: {
        type: 'object',
        properties: {
          numaNode: { type: 'integer', description: 'NUMA node.' },
          pageSizeKiB: { type: 'integer', description: 'Page size in KiB.' },
          total: { type: 'integer', description: 'Pages reserved.' },
          free: { type: 'integer', description: 'Pages free.' },
        },
      },
    },
    workerCpus: { type: 'array', description: 'CPUs running relay workers.', items: { type: 'integer' } },
    relays: {
      type: 'object',
      description: 'Relay counts by phase.',
      properties: {
        total: { type: 'integer', description: 'All relays on the node.' },
        ready: { type: 'integer', description: 'Relays Ready.' },
        failed: { type: 'integer', description: 'Relays Failed.' },
      },
    },
    engine: {
      type: 'object',
      description: 'Health of the DPDK engine.',
      properties: {
        up: { type: 'boolean', description: 'The engine runs.' },
        dpdkVersion: { type: 'string', description: 'DPDK version.' },
        agentVersion: { type: 'string', description: 'vio4wd version.' },
        message: { type: 'string', description: 'Detail when not up.' },
      },
    },
    conditions: {
      type: 'array',
      description:
        'EngineRunning, HugepagesAvailable, DevicePluginRegistered (with the device plugin on) and Ready, as the agent sees them; all Unknown (reason AgentNotReporting) when the operator saw the agent\'s Lease go unrenewed. The agent writes this status only when it changes: its Lease (coordination.k8s.io, named after the node, in the agent\'s namespace) says it is alive.',
      items: conditionSchema('EngineRunning, HugepagesAvailable, DevicePluginRegistered or Ready.', 'EngineStopped'),
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
    observedGeneration: { type: 'integer', description: 'The generation of this object the status describes.' },
  },
} as const;

const labelSelector = {
  type: 'object',
  description: 'Which nodes, by their labels (a Kubernetes label selector). Leave it out for every node.',
  properties: {
    matchLabels: { type: 'object', description: 'Labels the node must have, with these values.', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      description: 'Label requirements, all of which must hold.',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', description: 'Label key.' },
          operator: { type: 'string', description: 'In, NotIn, Exists or DoesNotExist.', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', description: 'Values for In and NotIn.', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

/** A pool, as the node admin defines it: where it exists, what it may draw on, who may use it. */
export const virtioForwarderPolicySpecSchema = {
  type: 'object',
  description: 'One pool of relays (one device-plugin resource) on the nodes it selects: the VFs it may use, its limits, how its sockets are owned, and which namespaces may place relays in it.',
  required: ['resourceName', 'namespaces', 'vfs'],
  properties: {
    resourceName: {
      type: 'string',
      description: 'The pool: the device-plugin resource its relays are offered as, e.g. vio4wd.io/vhostuser. VirtioRelays name it in spec.resourceName.',
      pattern: '^vio4wd\\.io/[a-zA-Z0-9._-]+$',
      maxLength: 253,
    },
    nodeSelector: labelSelector,
    namespaces: {
      type: 'array',
      description: 'Namespaces whose VirtioRelays may use the pool ("*": every namespace).',
      minItems: 1,
      items: { type: 'string', pattern: '^(\\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$', maxLength: 63 },
    },
    vfs: {
      type: 'object',
      description: 'What the pool may draw on: a VF qualifies when it matches any entry (its PF name, its PCI address or its vendor:device); virtual devices only by DPDK driver name, and only on nodes whose agent allows them.',
      properties: {
        pfNames: { type: 'array', description: 'PF netdev names, e.g. ens1f0: any VF of these PFs.', items: { type: 'string', maxLength: 15 } },
        pciAddresses: { type: 'array', description: 'PCI addresses of VFs.', items: pci },
        devices: {
          type: 'array',
          description: 'VF vendor and device ids (hex), e.g. {vendor: "8086", device: "154c"}.',
          items: {
            type: 'object',
            required: ['vendor', 'device'],
            properties: {
              vendor: { type: 'string', description: 'PCI vendor id, hex.', pattern: '^[0-9a-fA-F]{4}$' },
              device: { type: 'string', description: 'PCI device id, hex.', pattern: '^[0-9a-fA-F]{4}$' },
            },
          },
        },
        virtualDevices: {
          type: 'array',
          description: 'DPDK virtual-device drivers (devargs) the pool may use, e.g. net_tap (testing). The node agent must allow them too (kubernetes.allowVirtualDevices).',
          items: { type: 'string', pattern: '^net_[a-z0-9_]+$', maxLength: 32 },
        },
      },
      'x-kubernetes-validations': [
        {
          rule: '[has(self.pfNames) && size(self.pfNames) > 0, has(self.pciAddresses) && size(self.pciAddresses) > 0, has(self.devices) && size(self.devices) > 0, has(self.virtualDevices) && size(self.virtualDevices) > 0].exists(x, x)',
          message: 'vfs must list at least one of pfNames, pciAddresses, devices or virtualDevices',
        },
      ],
    },
    limits: {
      type: 'object',
      description: 'Limits on what a relay of the pool may ask for.',
      properties: {
        maxQueues: { type: 'integer', description: `Most queue pairs per relay, 1..${MAX_QUEUES}.`, minimum: 1, maximum: MAX_QUEUES },
        maxMtu: { type: 'integer', description: `Largest MTU, ${MTU_MIN}..${MTU_MAX}.`, minimum: MTU_MIN, maximum: MTU_MAX },
        allowedVlans: {
          type: 'array',
          description:
            'VLANs a pod attachment (vio4wd-cni\'s vlan, a DRA claim\'s RelayConfig vlan) may put a VF of the pool on: ids 0..4094 (0: untagged) and ranges such as "100-199". Default ["0"]: untagged only. List 0 too to keep untagged attachments allowed.',
          maxItems: 256,
          items: {
            // an id as a number or a string, or a range "a-b": the apiserver's int-or-string
            // (pattern binds strings only, minimum/maximum numbers only)
            'x-kubernetes-int-or-string': true,
            anyOf: [{ type: 'integer' }, { type: 'string' }],
            allOf: [{ minimum: 0, maximum: 4094 }, { pattern: `^${VLAN_ID}(-${VLAN_ID})?$` }],
          },
        },
        allowSpoofchkOff: {
          type: 'boolean',
          description: 'May a pod attachment turn the VF\'s spoof checking off (spoofchk: false), so its VM sends from any source MAC? Default false.',
        },
      },
    },
    socket: {
      type: 'object',
      description: 'How the pool\'s socket directories and sockets are owned. Each relay gets a directory of its own under the agent\'s socket root.',
      properties: {
        owner: { type: 'string', description: 'Owner of the relay directory and socket: a user name (resolved on the node through NSS) or a uid. Default root.', pattern: '^[a-z_0-9][-a-z0-9_.$]*$', maxLength: 32 },
        group: { type: 'string', description: 'Group of the relay directory and socket: a group name (NSS) or a gid, e.g. the group QEMU runs as. Default root.', pattern: '^[a-z_0-9][-a-z0-9_.$]*$', maxLength: 32 },
        directoryMode: {
          type: 'string',
          description: '0750: only the owner creates files (QEMU runs as the owner); 2770 (default): the group may create the socket (QEMU runs in the group), and the socket inherits the group.',
          enum: ['0750', '2770'],
        },
        perm: { type: 'string', description: 'Socket permissions: 0660 (default) or 0600.', enum: ['0660', '0600'] },
      },
    },
  },
} as const;

export type VirtioRelaySpec = FromSchema<typeof virtioRelaySpecSchema>;
export type VirtioForwarderPolicySpec = FromSchema<typeof virtioForwarderPolicySpecSchema>;
export type VirtioRelayStatus = FromSchema<typeof virtioRelayStatusSchema>;
export type VirtioForwarderNodeStatus = FromSchema<typeof virtioForwarderNodeStatusSchema>;

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  finalizers?: string[];
  /** (a string on the wire; typed as client-node types it) */
  deletionTimestamp?: Date;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: Date;
}

export interface VirtioRelay {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: VirtioRelaySpec;
  status?: VirtioRelayStatus;
}

export interface VirtioForwarderNode {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { nodeName?: string };
  status?: VirtioForwarderNodeStatus;
}

export interface VirtioForwarderPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: VirtioForwarderPolicySpec;
}
