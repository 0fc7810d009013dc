// Hugepage memory the engine needs: the same formula as native/src/pool.c, for vio4wd doctor and
// the docs. One mbuf pool per NUMA node that runs relays, sized from the rings, never growing:
//
//   mbufs = Q x (RXD + TXD + 2 x 32) + L x 384        bytes = mbufs x mbuf size + EAL overhead
//
// Q = poolQueuePairs (default 256: the relays' queue pairs must fit), L = lcores (workers + main).
import { ENGINE_DEFAULTS } from './engine.js';

/** Bytes per mbuf in the pool, headers included (rte_mempool object size). */
export const MBUF_BYTES = 2368;
export const JUMBO_MBUF_BYTES = 9536;
/** EAL's own hugepage use besides the pool (memzones, vhost and ethdev structures), measured. */
export const EAL_OVERHEAD_BYTES = 16 * 2 ** 20;

export interface SizingInput {
  /** Queue pairs of all relays on the node; the pool must cover them. */
  queuePairs?: number;
  poolQueuePairs?: number;
  rxDescriptors?: number;
  txDescriptors?: number;
  workers?: number;
  jumbo?: boolean;
}

export interface Sizing {
  poolQueuePairs: number;
  mbufs: number;
  bytes: number;
  /** 2 MiB hugepages per NUMA node that runs relays. */
  pages2M: number;
}

export function engineSizing(i: SizingInput = {}): Sizing {
  const q = Math.max(i.poolQueuePairs ?? ENGINE_DEFAULTS.poolQueuePairs, i.queuePairs ?? 0);
  const perQp = (i.rxDescriptors ?? ENGINE_DEFAULTS.rxDescriptors) + (i.txDescriptors ?? ENGINE_DEFAULTS.txDescriptors) + 64;
  const lcores = (i.workers ?? 1) + 1;
  const mbufs = q * perQp + lcores * 384;
  const bytes = mbufs * (i.jumbo ? JUMBO_MBUF_BYTES : MBUF_BYTES) + EAL_OVERHEAD_BYTES;
  return { poolQueuePairs: q, mbufs, bytes, pages2M: Math.ceil(bytes / (2 * 2 ** 20)) };
}
