// How many 2 MiB hugepages relays need on one NUMA node: the engine's own pool formula
// (src/engine/sizing.ts). The pool does not grow with relays: it covers up to poolQueuePairs
// queue pairs (256 by default), so 1 relay and 200 relays need the same.
import { engineSizing } from '../engine/sizing.js';

/** virtio-forwarder's documented figure, for comparison: 1375 x 2 MiB pages for 64 relays. */
export const PAGES_FOR_64_RELAYS = 1375;

/** Pages for `relays` relays of one queue pair each (more queue pairs: engineSizing). */
export function hugepagesForRelays(relays: number): number {
  return engineSizing({ queuePairs: relays }).pages2M;
}
