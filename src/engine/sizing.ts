// Hugepage memory the engine needs: the same arithmetic as native/src/pool.c plus what the
// engine's other structures take, for vio4wd doctor and the docs. Checked against the engine's
// own report (Engine.memory(): memsegs mapped, rte_malloc heaps) by test/integration/scale.dpdk.
//
//   pools  = ceil(Q / P)                   one mbuf pool of P queue pairs per P the relays use
//   mbufs  = P x (RXD + TXD + 2 x 32) + L x 384          per pool (native/src/pool.c)
//   bytes  = pools x (mbufs x MBUF + ring(mbufs)) + BASE + R x RELAY + Q x QP + SLACK
//
// Q = queue pairs of all relays on the NUMA node, P = poolQueuePairs (default 256), R = relays,
// L = lcores (workers + main). ring(n) is the pool's ring: the next power of two above n, 8
// bytes a slot. RELAY and QP are each relay's ethdev, vhost and counter structures, measured.
import { ENGINE_DEFAULTS } from './engine.js';

/** Bytes per mbuf in the pool, headers included (rte_mempool object size). */
export const MBUF_BYTES = 2368;
export const JUMBO_MBUF_BYTES = 9536;
/** EAL's own hugepage use besides pools and relays (memzones, RCU, ethdev port table), measured:
 *  7.5 MiB on DPDK 22.11 with 1024 ethdev ports. */
export const EAL_BASE_BYTES = 8 * 2 ** 20;
/** Per relay (ethdev and vhost structures, counters), measured 95-101 KiB with one queue pair. */
export const RELAY_BYTES = 96 * 1024;
/** Per queue pair of a relay, measured about 5 KiB. */
export const QUEUE_PAIR_BYTES = 8 * 1024;
/** The heaps map memory in 2 MiB pages and keep some free: up to 6 MiB measured. */
export const SLACK_BYTES = 8 * 2 ** 20;

export interface SizingInput {
  /** Queue pairs of all relays on the node (default: one per relay). */
  queuePairs?: number;
  /** Relays on the node (default 0: only the pool the first relay creates is counted). */
  relays?: number;
  poolQueuePairs?: number;
  rxDescriptors?: number;
  txDescriptors?: number;
  workers?: number;
  jumbo?: boolean;
}

export interface Sizing {
  poolQueuePairs: number;
  /** mbuf pools the relays' queue pairs take (at least one). */
  pools: number;
  /** mbufs per pool */
  mbufs: number;
  bytes: number;
  /** 2 MiB hugepages per NUMA node that runs relays. */
  pages2M: number;
}

function ringBytes(n: number): number {
  return 2 ** Math.ceil(Math.log2(n + 1)) * 8;
}

export function engineSizing(i: SizingInput = {}): Sizing {
  const relays = i.relays ?? 0;
  const qps = i.queuePairs ?? relays;
  const p = i.poolQueuePairs ?? ENGINE_DEFAULTS.poolQueuePairs;
  const perQp = (i.rxDescriptors ?? ENGINE_DEFAULTS.rxDescriptors) + (i.txDescriptors ?? ENGINE_DEFAULTS.txDescriptors) + 64;
  const lcores = (i.workers ?? 1) + 1;
  const mbufs = p * perQp + lcores * 384;
  const pools = Math.max(1, Math.ceil(qps / p));
  const pool = mbufs * (i.jumbo ? JUMBO_MBUF_BYTES : MBUF_BYTES) + ringBytes(mbufs);
  const bytes = pools * pool + EAL_BASE_BYTES + relays * RELAY_BYTES + qps * QUEUE_PAIR_BYTES + SLACK_BYTES;
  return { poolQueuePairs: p, pools, mbufs, bytes, pages2M: Math.ceil(bytes / (2 * 2 ** 20)) };
}
