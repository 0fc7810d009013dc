// How many 2 MiB hugepages relays need on one NUMA node: the engine's own sizing
// (src/engine/sizing.ts). The mbuf pool comes in steps of poolQueuePairs queue pairs (256 by
// default), so 1 relay and 200 relays differ only by the relays' own structures (~100 KiB each).
import { engineSizing, type SizingInput } from '../engine/sizing.js';

/** virtio-forwarder's documented figure, for comparison: 1375 x 2 MiB pages for 64 relays. */
export const PAGES_FOR_64_RELAYS = 1375;

/** Pages for `relays` relays of one queue pair each, with the engine options of a config
 *  (poolQueuePairs, descriptors, workers, jumbo). */
export function hugepagesForRelays(relays: number, engine: Omit<SizingInput, 'relays' | 'queuePairs'> = {}): number {
  return engineSizing({ ...engine, relays }).pages2M;
}
