// How many 2 MiB hugepages relays need on one NUMA node. An estimate until the engine exports
// its own sizing formula (pass that as DoctorOptions.hugepagesForRelays then).

/** virtio-forwarder's documented figure: 1375 x 2 MiB pages serve 64 relays (per NUMA node
 *  that runs relays), i.e. about 21.5 pages (43 MiB) per relay, rounded up. */
export const PAGES_FOR_64_RELAYS = 1375;

export function hugepagesForRelays(relays: number): number {
  return Math.ceil((relays * PAGES_FOR_64_RELAYS) / 64);
}
