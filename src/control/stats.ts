// Stats endpoint: relay state and counters, with rates measured over the request's delay by
// sampling the counters twice.
import type {
  RelayState,
  RelayState_VFPort,
  RelayState_VFtoVM,
  RelayState_VMtoVF,
  StatsRequest,
  StatsResponse,
  StatsResponse_Worker,
} from './wire.gen.js';
import { StatsResponse_Status as Status } from './wire.gen.js';
import type { Counters, DirectionSnapshot, RelaySnapshot, VfPortSnapshot, WorkerSnapshot } from './types.js';
import { endpoint, type EndpointHandler, type HandlerContext, type RejectReason } from './handler.js';
import { errorMessage } from '../util/errors.js';

/** A counter fit for a uint64 field, or undefined (absent, negative, not a number). */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

/** Per-second rate between two samples; 0 without a previous sample or elapsed time. */
function rate(cur: number | undefined, prev: number | undefined, elapsedMs: number): number {
  if (cur === undefined || prev === undefined || elapsedMs <= 0 || cur < prev) return 0;
  const r = ((cur - prev) * 1000) / elapsedMs;
  return Number.isFinite(r) ? r : 0;
}

type CounterKey = keyof Counters;

function direction(
  d: DirectionSnapshot | undefined,
  prev: DirectionSnapshot | undefined,
  elapsedMs: number,
  names: Record<CounterKey, string>,
  rates: Record<string, CounterKey>,
  side: 'DPDK' | 'VIRTIO',
): Record<string, unknown> {
  const active = d?.active === true;
  // virtio-forwarder's words: DPDK_* for the VF side (VF to VM), VIRTIO_* for the guest side
  const out: Record<string, unknown> = {
    active,
    internal_state: typeof d?.state === 'string' && d.state !== '' ? d.state : `${side}_${active ? 'READY' : 'UNINIT'}`,
  };
  const c = d?.counters;
  if (c) {
    for (const [key, field] of Object.entries(names) as [CounterKey, string][]) {
      const v = count(c[key]);
      if (v !== undefined) out[field] = v;
    }
  }
  for (const [field, key] of Object.entries(rates)) {
    out[field] = rate(count(c?.[key]), count(prev?.counters?.[key]), elapsedMs);
  }
  return out;
}

const UP_NAMES: Record<CounterKey, string> = {
  rxPackets: 'pkts_rx_from_vf',
  rxBytes: 'bytes_rx_from_vf',
  txPackets: 'pkts_tx_to_vm',
  txBytes: 'bytes_tx_to_vm',
  droppedQueueFullPackets: 'pkts_dropped_vm_queue_full',
  droppedQueueFullBytes: 'bytes_dropped_vm_queue_full',
  droppedNotConnectedPackets: 'pkts_dropped_vm_not_connected',
  droppedNotConnectedBytes: 'bytes_dropped_vm_not_connected',
};
const UP_RATES: Record<string, CounterKey> = {
  pkt_rate_rx_from_vf: 'rxPackets',
  byte_rate_rx_from_vf: 'rxBytes',
  pkt_rate_tx_to_vm: 'txPackets',
  byte_rate_tx_to_vm: 'txBytes',
};
const DOWN_NAMES: Record<CounterKey, string> = {
  rxPackets: 'pkts_rx_from_vm',
  rxBytes: 'bytes_rx_from_vm',
  txPackets: 'pkts_tx_to_vf',
  txBytes: 'bytes_tx_to_vf',
  droppedQueueFullPackets: 'pkts_dropped_vf_queue_full',
  droppedQueueFullBytes: 'bytes_dropped_vf_queue_full',
  droppedNotConnectedPackets: 'pkts_dropped_vf_not_connected',
  droppedNotConnectedBytes: 'bytes_dropped_vf_not_connected',
};
const DOWN_RATES: Record<string, CounterKey> = {
  pkt_rate_rx_from_vm: 'rxPackets',
  byte_rate_rx_from_vm: 'rxBytes',
  pkt_rate_tx_to_vf: 'txPackets',
  byte_rate_tx_to_vf: 'txBytes',
};

const cpuOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff ? v : undefined);

/** One relay's RelayState from its latest sample and, for rates, the one before. */
export function relayState(s: RelaySnapshot, prev: RelaySnapshot | undefined, elapsedMs: number): RelayState {
  const st: RelayState = {
    id: s.id,
    active: s.active === true,
    vhost: { vhost_socket_name: typeof s.socketPath === 'string' ? s.socketPath : '' },
    vf_to_vm: direction(s.vfToVm, prev?.vfToVm, elapsedMs, UP_NAMES, UP_RATES, 'DPDK') as unknown as RelayState_VFtoVM,
    vm_to_vf: direction(s.vmToVf, prev?.vmToVf, elapsedMs, DOWN_NAMES, DOWN_RATES, 'VIRTIO') as unknown as RelayState_VMtoVF,
    // NUMA node; unknown (-1) reads as node 0.
    socket_id: count(s.numaNode) ?? 0,
  };
  if (typeof s.ident === 'string' && s.ident !== '') st.ident = s.ident;
  const up = cpuOf(s.vfToVm?.cpu);
  const down = cpuOf(s.vmToVf?.cpu);
  if (up !== undefined || down !== undefined) {
    st.cpu = {};
    if (up !== undefined) st.cpu.vf_to_vm = up;
    if (down !== undefined) st.cpu.vm_to_vf = down;
  }
  if (typeof s.pciAddress === 'string' && s.pciAddress !== '') st.vf = { pci_addr_str: s.pciAddress };
  return st;
}

const VF_PORT_NAMES: Record<keyof VfPortSnapshot, keyof RelayState_VFPort> = {
  rxPackets: 'rx_packets',
  txPackets: 'tx_packets',
  rxBytes: 'rx_bytes',
  txBytes: 'tx_bytes',
  rxMissed: 'rx_missed',
  rxErrors: 'rx_errors',
  txErrors: 'tx_errors',
  rxNoMbuf: 'rx_nombuf',
};

/** vio4wd extension: a relay's VF driver counters. */
export function vfPort(v: VfPortSnapshot): RelayState_VFPort {
  const out: Record<string, number> = {};
  for (const [key, field] of Object.entries(VF_PORT_NAMES) as [keyof VfPortSnapshot, string][]) {
    const n = count(v[key]);
    if (n !== undefined) out[field] = n;
  }
  return out as RelayState_VFPort;
}

/** vio4wd extension: a worker's counters and its load between two samples (or since start). */
export function workerState(w: WorkerSnapshot, prev: WorkerSnapshot | undefined, elapsedMs: number): StatsResponse_Worker {
  const d = (k: 'busyCycles' | 'idleCycles' | 'packets'): number => {
    const cur = count(w[k]) ?? 0;
    const before = prev ? (count(prev[k]) ?? 0) : 0;
    return cur >= before ? cur - before : cur;
  };
  const busy = d('busyCycles');
  const idle = d('idleCycles');
  const pkts = d('packets');
  const out: StatsResponse_Worker = {
    cpu: cpuOf(w.cpu) ?? -1,
    directions: count(w.directions) ?? 0,
    busy_cycles: count(w.busyCycles) ?? 0,
    idle_cycles: count(w.idleCycles) ?? 0,
    packets: count(w.packets) ?? 0,
    dropped: count(w.dropped) ?? 0,
    busy_ratio: busy + idle > 0 ? busy / (busy + idle) : 0,
    pkt_rate: prev ? rate(count(w.packets), count(prev.packets), elapsedMs) : 0,
    cycles_per_pkt: pkts > 0 ? busy / pkts : 0,
  };
  return out;
}

/** What virtio-forwarder reports for a relay number that has nothing on it (its socket name
 *  "NONE": virtio_forwarder_get_stats for a relay without a socket). */
export function emptyRelayState(id: number): RelayState {
  return relayState(
    {
      id,
      active: false,
      socketPath: 'NONE',
      numaNode: 0,
      vfToVm: { active: false, state: 'DPDK_UNINIT' },
      vmToVf: { active: false, state: 'VIRTIO_UNINIT' },
    },
    undefined,
    0,
  );
}

export async function serveStats(msg: StatsRequest, ctx: HandlerContext): Promise<StatsResponse> {
  const asked = msg.relay ?? [];
  if (asked.length > ctx.maxRelays) {
    ctx.log.warn({ endpoint: 'stats', relays: asked.length }, `stats request for more than ${ctx.maxRelays} relays refused`);
    return { status: Status.E2BIG, relay: [] };
  }
  const delay = msg.delay ?? 0;
  if (delay > ctx.maxStatsDelayMs) {
    ctx.log.warn({ endpoint: 'stats', delay }, `stats delay above ${ctx.maxStatsDelayMs} ms refused`);
    return { status: Status.EBADR, relay: [] };
  }
  // proto2 default: include_inactive is true unless the request says false.
  const includeInactive = msg.include_inactive !== false;
  const inRange = asked.filter((id) => id < ctx.maxRelays);
  const ids = asked.length ? [...new Set(inRange)] : undefined;

  const extended = msg.vio4wd_extended === true;
  const workers = async (): Promise<WorkerSnapshot[]> => (extended && ctx.backend.workers ? await ctx.backend.workers() : []);
  let first: RelaySnapshot[];
  let second: RelaySnapshot[];
  let w1: WorkerSnapshot[];
  let w2: WorkerSnapshot[];
  let elapsed = 0;
  try {
    first = await ctx.backend.relayStates(ids);
    w1 = await workers();
    if (delay > 0) {
      const t0 = ctx.now();
      await ctx.sleep(delay);
      second = await ctx.backend.relayStates(ids);
      w2 = await workers();
      elapsed = ctx.now() - t0;
    } else {
      second = first;
      w2 = w1;
    }
  } catch (err) {
    ctx.log.error({ endpoint: 'stats', err: errorMessage(err) }, 'reading relay states failed');
    return { status: Status.ENOMEM, relay: [] };
  }
  const before = new Map(first.map((s) => [s.id, s]));
  const now = new Map(second.map((s) => [s.id, s]));
  const out: RelayState[] = [];
  const keep = (s: RelaySnapshot): boolean => includeInactive || s.active === true;
  const state = (s: RelaySnapshot): RelayState => {
    const st = relayState(s, delay > 0 ? before.get(s.id) : undefined, elapsed);
    if (extended && s.vf) st.vf_port = vfPort(s.vf);
    return st;
  };
  if (ids) {
    for (const id of asked) {
      if (id >= ctx.maxRelays) continue; // out of range: left out, as the protocol says
      const s = now.get(id);
      if (!s) {
        if (includeInactive) out.push(emptyRelayState(id));
        continue;
      }
      if (keep(s)) out.push(state(s));
    }
  } else {
    for (const s of [...now.values()].sort((a, b) => a.id - b.id)) {
      if (s.id < 0 || s.id >= ctx.maxRelays || !Number.isInteger(s.id)) continue;
      if (keep(s)) out.push(state(s));
    }
  }
  ctx.log.debug({ endpoint: 'stats', asked: asked.length, returned: out.length, delay, includeInactive, extended }, 'stats request done');
  if (!extended) return { status: Status.OK, relay: out };
  const wBefore = new Map(w1.map((w) => [w.cpu, w]));
  const worker = w2.map((w) => workerState(w, delay > 0 ? wBefore.get(w.cpu) : undefined, elapsed)).sort((a, b) => a.cpu - b.cpu);
  return { status: Status.OK, relay: out, worker };
}

const REJECT_STATUS: Record<RejectReason, StatsResponse['status']> = {
  malformed: Status.EBADR,
  oversized: Status.E2BIG,
  timeout: Status.ENOMEM,
  internal: Status.ENOMEM,
};

export const statsEndpoint: EndpointHandler = endpoint({
  name: 'stats',
  request: 'virtioforwarder.StatsRequest',
  response: 'virtioforwarder.StatsResponse',
  // 1024 packed relay numbers take at most ~2 KiB.
  maxRequestBytes: 8192,
  serve: serveStats,
  reject: (reason) => ({ status: REJECT_STATUS[reason], relay: [] }),
});
