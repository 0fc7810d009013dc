// The relay engine's limits, written once: they mirror native/src/vio.h (the addon reports its
// own values as `limits`, and test/integration/limits.addon.test.ts checks that both agree).
// The agent's config schema, the CRDs, the engine facade, the ZeroMQ and KubeVirt front ends
// all take their ranges from here. Change a limit in vio.h and here, nowhere else.

/** Relays per engine; relay ids are 0..MAX_RELAYS-1 (VIO_MAX_RELAYS). */
export const MAX_RELAYS = 1024;
/** Highest relay id. */
export const RELAY_ID_MAX = MAX_RELAYS - 1;
/** Queue pairs per relay (VIO_MAX_QUEUES). */
export const MAX_QUEUES = 32;
/** Worker threads per engine (VIO_MAX_WORKERS). */
export const MAX_WORKERS = 64;
/** VFs in one bond (VIO_MAX_BOND_MEMBERS). */
export const MAX_BOND_MEMBERS = 8;
/** Bytes of a vhost-user socket path: sun_path holds 108 with the terminating NUL (VIO_PATH_MAX). */
export const MAX_SOCKET_PATH = 107;
/** Characters of a VF's DPDK devargs string (VIO_DEVARGS_MAX, with the NUL). */
export const MAX_DEVARGS = 511;
/** MTU range of a relay (VIO_MTU_MIN, VIO_MTU_MAX): IPv4's minimum, and the largest frame the
 *  engine's jumbo mbufs are sized for. */
export const MTU_MIN = 68;
export const MTU_MAX = 9216;
/** CPU numbers the engine accepts for workers (0..MAX_CPUS-1). */
export const MAX_CPUS = 1024;
