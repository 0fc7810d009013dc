// Types of the engine facade: the one API the control plane uses to drive the native DPDK relay
// engine (native/). Everything here is plain data; the Engine class lives in ./engine.ts.

/** How the DPDK EAL starts. One engine per process: DPDK cannot be started twice. */
export interface EngineOptions {
  /** CPUs that run poll-mode workers, one worker each. At least one. */
  workerCpus: number[];
  /** CPU of the EAL main lcore (the engine's control thread, which sleeps). Default: workerCpus[0]'s
   *  neighbour not in workerCpus, or the same CPU as the first worker when there is none. */
  mainCpu?: number;
  /** hugetlbfs mount to use (EAL --huge-dir). */
  hugeDir?: string;
  /** EAL --file-prefix; distinct per process that shares a hugetlbfs mount. */
  filePrefix?: string;
  /** EAL --in-memory: no hugepage files on disk, nothing to clean up after a crash. */
  inMemory?: boolean;
  /** EAL --socket-mem, MiB per NUMA node. */
  socketMemMb?: number[];
  /** EAL --no-pci (tests and machines without VFs). */
  noPci?: boolean;
  /** Extra EAL arguments, appended last. */
  extraEalArgs?: string[];
  /** DPDK log level 1..8 (EAL --log-level). */
  logLevel?: number;
  /** Defaults for every relay's vhost-user features (a relay may override). */
  mergeableRxBuffers?: boolean;
  tso?: boolean;
  /** Frames up to 9216 bytes (mbufs sized for jumbo frames). */
  jumbo?: boolean;
  /** VF rx / tx descriptors per queue (default 256 each; multiples of 32, 64..4096). */
  rxDescriptors?: number;
  txDescriptors?: number;
  /** Queue pairs, summed over the relays of one NUMA node, that the node's shared mbuf pool is
   *  sized for (default 256). mbufs = poolQueuePairs x (rxDescriptors + txDescriptors + 64)
   *  + lcores x 384; adding a relay beyond it fails with ENOMEM. */
  poolQueuePairs?: number;
  /** Idle relays: a queue that found no packet for 1 ms is no longer polled on every
   *  pass but by a sweep that visits every idle queue once per this many microseconds (default
   *  100; 0 = poll every queue on every pass). It bounds the latency a waking relay's first
   *  packet gets added; the VF rx ring must hold what arrives meanwhile (rxDescriptors /
   *  idleSweepMicros = the packet rate, per microsecond, a waking queue takes without loss:
   *  2.56 Mpps at the defaults). Shorter costs the busy relays more when many relays are idle
   *  (native/README.md, "Idle relays"). */
  idleSweepMicros?: number;
}

export type VhostMode = 'server' | 'client';

/** Where a relay's VF comes from: exactly one of pciAddresses or devargs. */
export interface VfSource {
  /** One PCI address (DDDD:BB:DD.F) = one VF; two or more = a bond of them. */
  pciAddresses?: string[];
  /** Any DPDK devargs string, e.g. "net_tap0,iface=vf0" (virtual devices as VF stand-ins). */
  devargs?: string;
  /** Bond mode 0..6 when pciAddresses has two or more entries (default 1, active-backup). */
  bondMode?: number;
  /** Bond device name (default net_bonding_vio<relay id>). */
  bondName?: string;
}

export interface RelayConfig {
  /** Engine-wide relay number, 0 <= id < MAX_RELAYS (1024). */
  id: number;
  /** The VF; absent: the relay starts without one (its socket made up front, as
   *  virtio-forwarder makes its default sockets) and attachVf() gives it one later. */
  vf?: VfSource;
  /** Absolute path of the vhost-user socket; its directory must exist. */
  socketPath: string;
  /** server: the relay creates the socket; client: the relay connects (and reconnects) to it. */
  mode: VhostMode;
  /** Socket ownership and permissions (server mode), applied after the socket is created. */
  socketOwner?: number;
  socketGroup?: number;
  socketPerm?: number;
  /** VF queue pairs, 1..32. */
  queues: number;
  /** Queue pairs offered to the guest, queues..32 (default queues): the guest enables up to
   *  this many (QEMU refuses a device with more); each guest tx queue is polled and sent on VF
   *  queue q % queues; VF rx queue q's packets go to the guest rx queues it enabled, spread
   *  by flow hash when it enabled more than the VF has (queue q: its q-th, q+queues-th, ...). */
  vhostQueues?: number;
  mtu?: number;
  mergeableRxBuffers?: boolean;
  tso?: boolean;
  /** NUMA node for the relay's memory; default: the VF's node, else 0. */
  numaNode?: number;
  /** Worker CPUs for each direction; default: the least loaded NUMA-local worker. */
  cpus?: { vfToVm?: number; vmToVf?: number };
}

/** Counters of one direction, with virtio-forwarder's RelayState meanings. */
export interface DirectionCounters {
  /** Received from the source side (VF for vfToVm, VM for vmToVf). */
  rxPackets: number;
  rxBytes: number;
  /** Sent to the far side. */
  txPackets: number;
  txBytes: number;
  /** Dropped because the far side's queue was full. */
  droppedQueueFullPackets: number;
  droppedQueueFullBytes: number;
  /** Dropped because the far side was not connected (no guest, or VF link down). */
  droppedNotConnectedPackets: number;
  droppedNotConnectedBytes: number;
}

/** The VF's own counters, from its driver (rte_eth_stats_get; a bond sums its members). They
 *  count what happened at the NIC, before the relay: rxMissed = packets the NIC dropped because
 *  its rx ring was full (the relay did not read fast enough), rxNoMbuf = no mbuf to refill the
 *  ring. Drivers that do not keep a counter report 0 (the virtual stand-ins net_tap,
 *  net_af_packet and net_vhost keep no rxMissed). Cumulative since the VF was attached. */
export interface VfPortCounters {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  rxMissed: number;
  rxErrors: number;
  txErrors: number;
  rxNoMbuf: number;
}

export interface RelayStats {
  id: number;
  vfToVm: DirectionCounters;
  vmToVf: DirectionCounters;
  /** The same counters per queue pair. */
  queues: { queue: number; vfToVm: DirectionCounters; vmToVf: DirectionCounters }[];
  /** The VF's own counters; absent while no VF is attached. */
  vf?: VfPortCounters;
}

export interface RelayInfo {
  id: number;
  socketPath: string;
  mode: VhostMode;
  queues: number;
  /** Queue pairs offered to the guest. */
  vhostQueues: number;
  numaNode: number;
  /** DPDK port id of the VF (or bond) and its name. */
  portId: number;
  portName: string;
  /** VF MAC address, aa:bb:cc:dd:ee:ff. */
  mac: string;
  linkUp: boolean;
  guestConnected: boolean;
  /** Vrings the guest has enabled. */
  enabledQueues: number;
  cpus: { vfToVm: number; vmToVf: number };
  /** What the connected guest negotiated (absent while no guest is connected). */
  guestFeatures?: GuestFeatures;
  /** A VF is attached. false after the engine lost it (see vfLoss) or detachVf(): the vhost-user
   *  side stays, the guest's packets count as droppedNotConnected, portId is -1. (Engines
   *  before this field: always attached.) */
  vfAttached?: boolean;
  /** Why the engine detached the VF by itself (absent while attached, or after detachVf()). */
  vfLoss?: VfLoss;
  /** A vhost-user connection is open on the socket (a QEMU is there, running or not). */
  socketConnected?: boolean;
  /** How the connected guest's device started (absent while no guest is connected). */
  guestArrival?: GuestArrival;
  /** Why the last guest's device stopped (absent while a guest is connected or before any). */
  guestDeparture?: GuestDeparture;
  /** Live migrations seen by this relay since it was added: guests that arrived (in) and left
   *  (out) by live migration. */
  migrations?: { in: number; out: number };
}

/** How the engine lost a VF: the device reported its removal (unplugged), its kernel interface
 *  disappeared or was replaced (interface-gone: net_tap, net_af_packet stand-ins), or its port
 *  is no longer valid (port-gone). */
export type VfLoss = 'unplugged' | 'interface-gone' | 'port-gone';

/**
 * How a guest's virtio device started on a relay, from the vring indices rte_vhost restored:
 * - started: every vring at 0, a guest driver that just set up its rings (boot, driver reload);
 * - migrated-in: restored indices equal to those of a guest that left a relay of this engine by
 *   live migration, or restored indices on a connection that had waited >= 500 ms for its
 *   device (a migration target's QEMU connects at start-up and starts the device once the
 *   migration is done);
 * - reconnected: restored indices right after a new connection (QEMU restarting the device of a
 *   running VM after a backend or socket reconnect);
 * - resumed: restored indices on a connection that ran a device before (VM stopped and continued,
 *   or a failed migration resumed on its source).
 */
export type GuestArrival = 'started' | 'migrated-in' | 'reconnected' | 'resumed';

/** Why a guest's device stopped: migrating-out when dirty-page logging (VHOST_F_LOG_ALL) was on,
 *  i.e. the source side of a live migration; stopped otherwise. */
export type GuestDeparture = 'stopped' | 'migrating-out';

/** virtio-net features a guest negotiated on a relay's socket. */
export interface GuestFeatures {
  mergeableRxBuffers: boolean;
  /** host TSO (the guest may send segments of up to 64 KiB) */
  tso: boolean;
  /** the guest may leave checksums to the host (VIRTIO_NET_F_CSUM) */
  checksum: boolean;
  multiqueue: boolean;
  /** the guest announces itself after a live migration (VIRTIO_NET_F_GUEST_ANNOUNCE) */
  guestAnnounce: boolean;
  /** dirty-page logging is on: a live migration is in progress (VHOST_F_LOG_ALL) */
  dirtyLogging: boolean;
  /** all negotiated feature bits, hex */
  bits: string;
}

export interface WorkerInfo {
  cpu: number;
  lcore: number;
  numaNode: number;
  /** Relay directions this worker polls. */
  directions: number;
  /** TSC cycles (Engine.tscHz per second) of poll passes that moved packets and of passes that
   *  found none, since the engine started: busy / (busy + idle) is the worker's load. */
  busyCycles: number;
  idleCycles: number;
  /** Packets the worker received (from VFs and guests) and, of those, dropped. */
  packets: number;
  dropped: number;
  /** (relay, queue, direction) entries it polls; of those, the hot ones, polled on every pass
   *  (the others are idle: visited by a sweep that comes round within the engine's idle sweep
   *  period, or parked while their guest is absent); how often an idle entry found packets and
   *  turned hot again. */
  entries: number;
  hotEntries: number;
  wakeups: number;
}

/** The settings the running engine took (native vio_query_settings): what a config asked for,
 *  with the engine's defaults where it asked nothing. */
export interface EngineSettings {
  mergeableRxBuffers: boolean;
  tso: boolean;
  jumbo: boolean;
  rxDescriptors: number;
  txDescriptors: number;
  poolQueuePairs: number;
  /** The idle sweep period: the longest an idle queue waits for its next poll (0: none). */
  idleSweepMicros: number;
}

export interface MemoryInfo {
  mempools: { numaNode: number; name: string; size: number; inUse: number; bytes: number }[];
  /** Hugepage memory the EAL has mapped, bytes (its memsegs: what the engine takes from the
   *  node's hugepages). */
  hugepageBytes: number;
  /** Of that, what the rte_malloc heaps hand out: the mbuf pools, rings, ethdev and vhost
   *  structures; the rest is free in the heaps (mapped in 2 MiB steps, kept for reuse). */
  heapAllocatedBytes: number;
  heapFreeBytes: number;
}

/** The process's C heap (glibc malloc over all arenas), bytes. */
export interface NativeHeapInfo {
  /** taken from the system by the arenas (brk and mmap'd heaps) */
  arenaBytes: number;
  /** large blocks mmap'd one by one */
  mmapBytes: number;
  inUseBytes: number;
  /** free inside the arenas: kept by malloc, counted in the RSS until trimmed */
  freeBytes: number;
  /** malloc arenas (the main one and one per thread group; MALLOC_ARENA_MAX caps them) */
  arenas: number;
}

export type EngineEvent =
  | { type: 'guest-connected'; relayId: number; arrival?: GuestArrival }
  | { type: 'guest-disconnected'; relayId: number; departure?: GuestDeparture }
  /** queue = vring index: 2q is queue pair q's guest rx ring, 2q+1 its tx ring. */
  | { type: 'vring-state'; relayId: number; queue: number; enabled: boolean }
  | { type: 'link'; relayId: number; up: boolean }
  /** The engine lost the relay's VF and detached it (the vhost-user side stays); attachVf()
   *  brings one back. */
  | { type: 'vf-removed'; relayId: number; cause?: VfLoss }
  /** Dirty-page logging switched on (a live migration of the guest started) or off. */
  | { type: 'dirty-log'; relayId: number; on: boolean }
  /** A vhost-user connection opened or closed on the relay's socket. */
  | { type: 'vhost-connection'; relayId: number; connected: boolean };

/** Stable error codes the engine's Errors carry in `code`. */
export type EngineErrorCode =
  | 'EALREADY' // engine already started
  | 'ENOTSTARTED' // call before start
  | 'EINVAL' // bad argument (message names it)
  | 'EEXIST' // relay id or socket path already in use
  | 'ENOENT' // no such relay, or socket directory missing
  | 'ENODEV' // VF not found / probe failed
  | 'ENOMEM' // out of hugepage memory or mbufs
  | 'EIO'; // DPDK call failed (message names the call and rte_strerror)
