// The agent's configuration schema: the one source for validation (ajv), the TypeScript type
// (json-schema-to-ts) and schemas/agent-config.schema.json (written by scripts/gen-schemas.mjs).
import type { FromSchema } from 'json-schema-to-ts';
import { RELAY_ID_MAX } from '../../util/limits.js';
import { PCI_ADDRESS_PATTERN } from '../../util/identifiers.js';
import {
  bondModeSchema,
  cpuSchema,
  devargsSchema,
  macSchema,
  mtuSchema,
  pciAddressSchema,
  pciAddressesSchema,
  queuesSchema,
  relayCpusSchema,
  socketPermSchema,
  vfSelectorProperties,
} from '../../util/schema-parts.js';

const cpuList = {
  type: 'array',
  items: cpuSchema,
} as const;

const owner = {
  description: 'User or group, by name or numeric id.',
  oneOf: [{ type: 'string', minLength: 1 }, { type: 'integer', minimum: 0 }],
} as const;

const endpoint = {
  type: 'string',
  pattern: '^$|^(ipc|tcp)://',
  description: 'ZeroMQ address (ipc://PATH or tcp://HOST:PORT); empty: not served.',
} as const;

export const relaySchema = {
  type: 'object',
  description: 'One relay: a VF (or VF stand-in) and a vhost-user socket.',
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
      maxLength: 253,
      description: 'Unique relay name (default relay-<id>); the device ID in Kubernetes.',
    },
    id: { type: 'integer', minimum: 0, maximum: RELAY_ID_MAX, description: 'virtio-forwarder relay number (default: lowest free from 1).' },
    vf: {
      type: 'object',
      description: 'Where the VF comes from: exactly one of pciAddress, pciAddresses, selector, devargs.',
      additionalProperties: false,
      properties: {
        pciAddress: pciAddressSchema,
        pciAddresses: { ...pciAddressesSchema, description: 'Several VFs: bonded.' },
        bondMode: bondModeSchema,
        bondName: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_.-]+$', description: 'Bond device name (a DPDK device name: letters, digits, "_", "-", ".").' },
        devargs: devargsSchema,
        selector: {
          type: 'object',
          additionalProperties: false,
          properties: vfSelectorProperties,
        },
      },
    },
    vhostUser: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: { enum: ['client', 'server'], description: 'server: the relay creates the socket; client: QEMU does.' },
        socketPath: { type: 'string', pattern: '^/', description: 'Absolute socket path (default socketDir + pattern).' },
        socketDir: { type: 'string', pattern: '^/' },
        owner,
        group: owner,
        perm: socketPermSchema,
      },
    },
    queues: queuesSchema,
    guestQueues: {
      ...queuesSchema,
      description: 'Queue pairs offered to the guest (default queues): it may enable up to this many, each served on the VF\'s queues (virtio-forwarder\'s relays offer the most).',
    },
    mac: macSchema,
    mtu: mtuSchema,
    numaNode: { type: 'integer', minimum: 0 },
    cpus: relayCpusSchema,
    ident: { type: 'string', description: 'External label, e.g. a Neutron port id.' },
    resourceName: { type: 'string', pattern: '^[a-z0-9.-]+/[a-zA-Z0-9._-]+$' },
  },
  required: ['vf'],
} as const;

export const agentConfigSchema = {
  $id: 'https://vio4wd.io/schemas/agent-config.json',
  title: 'vio4wd agent configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    nodeName: { type: 'string', minLength: 1, description: 'Node name (default: the host name).' },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] } },
    },
    pidFile: { type: 'string', pattern: '^/', description: 'Write the agent PID here.' },
    handover: {
      type: 'object',
      description: 'Upgrade handover between an old and a new agent on one node (docs/upgrade.md).',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', description: 'Serve the handover socket, and take the relays over from an agent serving it at start (default true).' },
        socket: { type: 'string', pattern: '^/', description: 'Unix socket (root-only) the agents meet at (default <socket root>/.vio4wd-handover.sock).' },
      },
    },
    engine: {
      type: 'object',
      description: 'DPDK EAL and engine settings.',
      additionalProperties: false,
      properties: {
        workerCpus: { ...cpuList, minItems: 1, description: 'CPUs that run poll-mode workers, one worker each.' },
        mainCpu: { type: 'integer', minimum: 0, description: 'CPU of the EAL main (control) thread.' },
        hugeDir: { type: 'string', pattern: '^/', description: 'hugetlbfs mount point.' },
        filePrefix: { type: 'string', pattern: '^[A-Za-z0-9_-]+$' },
        inMemory: { type: 'boolean', description: 'No hugepage files on disk (EAL --in-memory).' },
        socketMemMb: { type: 'array', items: { type: 'integer', minimum: 0 }, description: 'Hugepage MiB per NUMA node.' },
        noPci: { type: 'boolean', description: 'Do not scan PCI (machines without VFs, tests).' },
        extraEalArgs: { type: 'array', items: { type: 'string' } },
        logLevel: { type: 'integer', minimum: 1, maximum: 8 },
        mergeableRxBuffers: { type: 'boolean' },
        tso: { type: 'boolean' },
        jumbo: { type: 'boolean', description: 'Jumbo frames: mbufs hold 9216 bytes and relays without an mtu get VF MTU 9000 (virtio-forwarder\'s VIRTIOFWD_JUMBO).' },
        poolQueuePairs: {
          type: 'integer',
          minimum: 1,
          maximum: 8192,
          description: 'Queue pairs the mbuf pool of each NUMA node is sized for (default 256; 2 MiB pages needed: see vio4wd doctor).',
        },
        rxDescriptors: { type: 'integer', minimum: 64, maximum: 4096, description: 'VF rx ring size (default 256).' },
        txDescriptors: { type: 'integer', minimum: 64, maximum: 4096, description: 'VF tx ring size (default 256).' },
        idleSweepMicros: {
          type: 'integer',
          minimum: 0,
          maximum: 10000,
          description: 'Idle queues are polled once per this many microseconds, busy ones on every pass (default 100; 0 = poll all on every pass). Bounds the latency added to a waking relay; rxDescriptors / idleSweepMicros = the packets per microsecond it takes without loss.',
        },
      },
    },
    vhostUser: {
      type: 'object',
      description: 'Defaults for every relay socket.',
      additionalProperties: false,
      properties: {
        mode: { enum: ['client', 'server'] },
        socketDir: { type: 'string', pattern: '^/' },
        socketNamePattern: { type: 'string', pattern: '^[^/%]*%u[^/%]*$', description: 'File name with exactly one %u (relay id).' },
        precreateSockets: {
          type: 'integer',
          minimum: 0,
          maximum: 511,
          description: 'Make the sockets of relay ids 0..N-1 at start, before any VF is added, as virtio-forwarder does without VIRTIOFWD_DYNAMIC_SOCKETS (it makes 64); a port control ADD or a static relay of such an id gives it its VF (default 0).',
        },
        owner,
        group: owner,
        perm: socketPermSchema,
      },
    },
    control: {
      type: 'object',
      description: 'virtio-forwarder compatible ZeroMQ endpoints.',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        ipcDir: { type: 'string', pattern: '^/', description: 'Directory of the ipc:// endpoints (mode 0750).' },
        group: owner,
        portControl: endpoint,
        stats: endpoint,
        coreSched: endpoint,
        config: endpoint,
        dynamicSockets: { type: 'boolean', description: 'Allow ADD_SOCK/REMOVE_SOCK.' },
        allowRemote: {
          type: 'boolean',
          description: 'Serve an endpoint on a tcp:// address beyond loopback. ZeroMQ has no authentication here: anyone who reaches the port controls the relays as root. Default false (refused).',
        },
        ovsdb: {
          type: 'string',
          pattern: '^/',
          description: 'ovsdb-server unix socket: Interfaces with external_ids:virtio_forwarder=<relay id> get relays (virtio-forwarder\'s OVSDB port control).',
        },
      },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        address: { type: 'string', pattern: '^[^:]*:[0-9]{1,5}$', description: 'host:port of /metrics, /healthz, /readyz (default 127.0.0.1:9464: loopback only).' },
        authorization: {
          type: 'boolean',
          description: 'Serve /metrics only to callers the apiserver authorises (TokenReview + SubjectAccessReview for get on the non-resource URL /metrics, as kube-rbac-proxy does). Needed for an address beyond loopback.',
        },
        allowUnauthenticated: { type: 'boolean', description: 'Allow an address beyond loopback without authorization (a node without a cluster, on a trusted network). The metrics name every relay.' },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['certFile', 'keyFile'],
          description: 'Serve HTTPS, so scrapers\' bearer tokens do not cross the network in clear.',
          properties: { certFile: { type: 'string', pattern: '^/' }, keyFile: { type: 'string', pattern: '^/' } },
        },
        podResourcesSocket: {
          type: 'string',
          pattern: '^(/.*)?$',
          description: "kubelet's pod-resources socket, for vio4wd_relay_pod_info (the pod of each relay); empty: none. Default with kubernetes.enabled: /var/lib/kubelet/pod-resources/kubelet.sock.",
        },
      },
    },
    sriov: {
      type: 'object',
      additionalProperties: false,
      properties: {
        sysRoot: { type: 'string', pattern: '^/', description: 'Root of /sys and /proc (tests).' },
        bindVfio: { type: 'array', items: { type: 'string' }, description: 'PCI addresses, <netdev> (all its VFs) or <netdev>:<count>.' },
        setMac: { type: 'boolean', description: 'Set each VF MAC to the relay MAC through its PF.' },
        standIns: {
          type: 'object',
          description:
            'PCI addresses that stand for DPDK virtual devices (devargs), for machines without VFs (tests, demos): port control, OVSDB and VIRTIOFWD_STATIC_VFS name the address, the engine opens the device.',
          patternProperties: { [PCI_ADDRESS_PATTERN]: { type: 'string', minLength: 1 } },
          additionalProperties: false,
        },
        vfProgrammer: {
          enum: ['netlink', 'standin'],
          description: 'How a VF is programmed for pod attachments: netlink (real VFs, through the PF) or standin (test VFs: a veth on a bridge).',
        },
        vfLimits: {
          type: 'object',
          description:
            "What pod attachments (vio4wd-cni, DRA claims) may set on the VF of a relay whose pool no VirtioForwarderPolicy defines on this node (the relays of this config; every relay of an agent outside a cluster). A pool's policy sets its own (spec.limits.allowedVlans, allowSpoofchkOff).",
          additionalProperties: false,
          properties: {
            allowedVlans: {
              type: 'array',
              description: 'VLAN ids 0..4094 (0: untagged) and ranges such as "100-199" an attachment may put the VF on. Default ["0"]: untagged only.',
              items: { oneOf: [{ type: 'integer', minimum: 0, maximum: 4094 }, { type: 'string', pattern: '^[0-9]{1,4}(-[0-9]{1,4})?$' }] },
            },
            allowSpoofchkOff: { type: 'boolean', description: 'May an attachment turn the VF\'s spoof checking off (spoofchk: false)? Default false.' },
          },
        },
      },
    },
    cni: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', description: 'Serve the attachment API for vio4wd-cni (default: with kubernetes.enabled).' },
        socket: { type: 'string', pattern: '^/', description: 'Unix socket of the attachment API (mode 0600).' },
        statePath: { type: 'string', pattern: '^/', description: 'Checkpoint file of the pod attachments.' },
        allocationCheck: {
          type: 'boolean',
          description:
            "ADD attaches a relay only to the pod kubelet allocated it to (kubelet's pod-resources API; CNI_ARGS name the pod), so a network config cannot name another pod's relay as deviceID. Default: with kubernetes.enabled. Off only where no kubelet runs.",
        },
        podResourcesSocket: { type: 'string', pattern: '^/', description: "kubelet's pod-resources socket for allocationCheck (default: metrics.podResourcesSocket, else /var/lib/kubelet/pod-resources/kubelet.sock)." },
      },
    },
    coreScheduler: {
      type: 'object',
      description: "Dynamic core scheduling: relay directions move between worker CPUs by measured load (virtio-forwarder's vio4wd_core_scheduler, VIO4WD_CORE_SCHED_*).",
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', description: 'Run the core scheduler (default false; VIO4WD_CORE_SCHED_ENABLE=true).' },
        intervalSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 3600, description: 'Seconds between evaluations (default 5; VIO4WD_CORE_SCHED_POLL_INTERVAL).' },
        sensitivity: {
          type: 'number',
          minimum: 0,
          maximum: 100,
          description: 'Move only when the coefficient of variation of the worker loads drops by more than this (default 0.25; higher = fewer moves; VIO4WD_CORE_SCHED_SENSITIVITY).',
        },
        globalNuma: { type: 'boolean', description: 'Balance over all workers instead of within each NUMA node (VIO4WD_CORE_SCHED_GLOBAL_NUMA_OPT).' },
        minLoad: { type: 'number', minimum: 0, maximum: 1, description: 'Leave the workers alone while the busiest is below this share of a core (default 0.05).' },
        movePinned: {
          type: 'boolean',
          description: 'Move relays with pinned CPUs (relays[].cpus, cpuPins, a VirtioRelay\'s spec.cpus, core pinner UPDATE) too, as virtio-forwarder\'s scheduler does (default false; true for a settings file).',
        },
        logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], description: 'Log level of the scheduler (VIO4WD_CORE_SCHED_LOG_LEVEL).' },
      },
    },
    cpuPins: {
      type: 'object',
      description: 'Worker CPUs by relay id ("<id>": [cpu] or [vfToVm, vmToVf]).',
      patternProperties: { '^[0-9]+$': { ...cpuList, minItems: 1, maxItems: 2 } },
      additionalProperties: false,
    },
    kubernetes: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        socketDir: { type: 'string', pattern: '^/', description: 'The socket root: host directory (0755, root) for relay sockets, one subdirectory per relay. VirtioRelays cannot name another.' },
        allowVirtualDevices: {
          type: 'array',
          description: 'DPDK virtual-device drivers (devargs) VirtioRelays may use on this node, e.g. [net_tap] for tests and demos; default none. A pool\'s VirtioForwarderPolicy must list them too. A virtual device reaches the host (net_tap creates interfaces, net_af_packet opens any netdev): never on nodes that serve tenants.',
          items: { type: 'string', pattern: '^net_[a-z0-9_]+$' },
        },
        nosymfollowSocketRoot: {
          type: 'boolean',
          description:
            "Bind-mount the socket root onto itself with nosymfollow in the agent's own mount namespace (its container's: the host and kubelet see nothing of it), so that a client-mode relay never follows a symlink a pod put in its directory. Default false; the chart sets it. Needs CAP_SYS_ADMIN.",
        },
        leaseNamespace: {
          type: 'string',
          pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
          maxLength: 63,
          description: "Namespace of the node's Lease (coordination.k8s.io, named after the node), which the agent renews to say it is alive. Default: the pod's (POD_NAMESPACE, else its ServiceAccount's), else default. The operator watches the Leases in its own namespace: keep both in one.",
        },
        leaseRenewSeconds: {
          type: 'integer',
          minimum: 1,
          maximum: 300,
          description: "Seconds between renewals of the node's Lease (default 10; the Lease lasts four of them, and the operator calls the agent not reporting after that). The VirtioForwarderNode's status is written only when it changes.",
        },
      },
    },
    devicePlugin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        pluginDir: { type: 'string', pattern: '^/' },
        devinfoDir: { type: 'string', pattern: '^/' },
        namespaceCheck: {
          type: 'boolean',
          description:
            "Before a container starts (PreStartContainer), check with kubelet's pod-resources API that a VirtioRelay's relay went to a pod of the relay's namespace; refuse it otherwise. Default: with kubernetes.enabled. Off only where no kubelet runs.",
        },
        podResourcesSocket: { type: 'string', pattern: '^/', description: "kubelet's pod-resources socket for namespaceCheck (default: cni.podResourcesSocket, else metrics.podResourcesSocket, else /var/lib/kubelet/pod-resources/kubelet.sock)." },
      },
    },
    dra: {
      type: 'object',
      description: 'Dynamic Resource Allocation driver (resource.k8s.io/v1): relays published as ResourceSlices, prepared for claims by the kubelet plugin (docs/dra.md).',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', description: 'Run the DRA driver (default false); runs beside the device plugin or alone.' },
        kubeconfig: { type: 'string', pattern: '^/', description: 'kubeconfig for the apiserver (default: kubernetes.kubeconfig, else in-cluster).' },
        registryDir: { type: 'string', pattern: '^/', description: "kubelet's plugin registration directory (default /var/lib/kubelet/plugins_registry)." },
        pluginDir: { type: 'string', pattern: '^/', description: 'Directory of the DRA service socket (default /var/lib/kubelet/plugins/vio4wd.io).' },
        cdiDir: { type: 'string', pattern: '^/', description: 'Where CDI specs are written (default /var/run/cdi).' },
        metadataDir: { type: 'string', pattern: '^/', description: 'Host directory of the device-metadata files mounted into pods (default /var/run/vio4wd/dra).' },
        statePath: { type: 'string', pattern: '^/', description: 'Checkpoint of prepared claims (default /var/lib/vio4wd/dra-claims.json).' },
        resyncSeconds: { type: 'integer', minimum: 1, maximum: 3600, description: 'How often the ResourceSlices are compared with the relays (default 10).' },
      },
    },
    relays: { type: 'array', items: relaySchema },
  },
} as const;

export type AgentConfig = FromSchema<typeof agentConfigSchema>;
export type RelayConfigEntry = FromSchema<typeof relaySchema>;
