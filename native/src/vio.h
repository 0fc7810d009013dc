/* SPDX-License-Identifier: Apache-2.0
 * vio4wd relay engine: the small C API the Node binding (binding.cc) drives.
 *
 * One engine per process (DPDK's EAL starts once). Every call that changes state is a command
 * executed in order on the engine's own control thread (the EAL main lcore); its completion is
 * reported through the command's `done` callback, called on that control thread. Queries
 * (vio_relay_info, vio_relay_stats, ...) are synchronous and cheap: they copy under the
 * control-plane lock, never stop the workers. Events (guest connected, vring state, link)
 * are reported through the event function given to VIO_CMD_START.
 */
#ifndef VIO_H
#define VIO_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIO_MAX_RELAYS 1024
#define VIO_MAX_QUEUES 32
#define VIO_MAX_WORKERS 64
#define VIO_MAX_BOND_MEMBERS 8
#define VIO_MAX_EAL_ARGS 128
#define VIO_PATH_MAX 108 /* sun_path, including the terminating NUL */
#define VIO_DEVARGS_MAX 512 /* a VF's devargs string, including the terminating NUL */
#define VIO_MTU_MIN 68
#define VIO_MTU_MAX 9216 /* the frames the jumbo mbufs are sized for; larger ones would scatter */
/* The limits above are mirrored in src/util/limits.ts; the binding reports them as `limits`
 * and test/integration/limits.addon.test.ts checks that both agree. */
#define VIO_MSG_MAX 512

/* Stable error codes; the binding maps them to the `code` strings of EngineErrorCode. */
enum vio_err {
	VIO_OK = 0,
	VIO_EALREADY,
	VIO_ENOTSTARTED,
	VIO_EINVAL,
	VIO_EEXIST,
	VIO_ENOENT,
	VIO_ENODEV,
	VIO_ENOMEM,
	VIO_EIO,
};

struct vio_error {
	enum vio_err code;
	char msg[VIO_MSG_MAX];
};

const char *vio_err_name(enum vio_err code);

enum vio_event_type {
	VIO_EV_GUEST_CONNECTED,    /* flag = enum vio_arrival */
	VIO_EV_GUEST_DISCONNECTED, /* flag = enum vio_departure */
	VIO_EV_VRING_STATE,        /* queue = vring index, flag = enabled */
	VIO_EV_LINK,               /* flag = up */
	VIO_EV_VF_REMOVED,         /* flag = enum vio_vf_loss; the engine has detached the VF */
	VIO_EV_DIRTY_LOG,          /* flag = dirty-page logging on (live migration) */
	VIO_EV_CONNECTION,         /* flag = a vhost-user connection is open on the socket */
	VIO_EV_LOG,                /* a line of DPDK's log: flag = RTE_LOG_* level, text; relay_id -1 */
};

/* How a guest's virtio device started on a relay (see vhost.c for how it is told). */
enum vio_arrival {
	VIO_ARRIVAL_STARTED = 0,   /* vrings start at index 0: the guest driver just set them up */
	VIO_ARRIVAL_MIGRATED_IN,   /* restored vrings on a connection that waited for them */
	VIO_ARRIVAL_RECONNECTED,   /* restored vrings at once on a new connection: a reconnect */
	VIO_ARRIVAL_RESUMED,       /* restored vrings on a connection that had a device before */
};

enum vio_departure {
	VIO_DEPARTURE_STOPPED = 0, /* device stopped (guest reset, VM stopped, QEMU gone) */
	VIO_DEPARTURE_MIGRATING,   /* stopped with dirty-page logging on: it migrates away */
};

enum vio_vf_loss {
	VIO_VF_LOSS_UNPLUGGED = 0, /* the device reported removal (RTE_ETH_EVENT_INTR_RMV) */
	VIO_VF_LOSS_IFACE_GONE,    /* its kernel interface (tap, af_packet's) disappeared or was
				    * replaced by another of the same name */
	VIO_VF_LOSS_PORT_GONE,     /* the ethdev port is no longer valid */
};

#define VIO_LOG_TEXT_MAX 512

struct vio_event {
	enum vio_event_type type;
	int relay_id;
	int queue;
	int flag;
	char text[VIO_LOG_TEXT_MAX]; /* VIO_EV_LOG only */
};

/* Called from DPDK's threads (vhost, interrupt, control); must not block. */
typedef void (*vio_event_fn)(void *ctx, const struct vio_event *ev);

struct vio_start_opts {
	/* Full EAL argv (argv[0] included), built by the caller; the EAL main lcore is the
	 * control thread, every EAL worker lcore runs one poll-mode worker. */
	int argc;
	char *argv[VIO_MAX_EAL_ARGS];
	/* relay defaults */
	bool mrg_rxbuf;
	bool tso;
	bool jumbo;
	/* VF descriptor ring sizes per queue and the queue pairs each NUMA node's mbuf pool is
	 * sized for (see pool.c for the formula). */
	uint16_t rx_desc;
	uint16_t tx_desc;
	uint32_t pool_queue_pairs;
	/* a worker sweeps its idle (cold) entries once per this many microseconds; 0 = every
	 * entry polled on every pass (worker.c) */
	uint32_t idle_sweep_us;
	vio_event_fn on_event;
	void *event_ctx;
	/* deliver DPDK's log lines as VIO_EV_LOG events instead of printing them to stderr */
	bool log_events;
};

/* -1 in an int field = not set (use the default). */
struct vio_relay_cfg {
	int id;
	char devargs[VIO_DEVARGS_MAX];
	char pci[VIO_MAX_BOND_MEMBERS][32];
	int n_pci;
	int bond_mode;
	char bond_name[64];
	char socket_path[VIO_PATH_MAX];
	bool client;
	int64_t owner, group, perm;
	int queues;
	/* queue pairs offered to the guest (>= queues): the guest may enable up to this many;
	 * each guest tx vring is polled and sent on VF queue q % queues. -1 = queues */
	int vhost_queues;
	int mtu;
	int mrg_rxbuf, tso; /* -1 = engine default, 0/1 */
	int numa;
	int cpu_vf_to_vm, cpu_vm_to_vf;
	/* add only: no VF yet (n_pci 0, devargs empty). The socket and the guest side are made
	 * up front, as virtio-forwarder makes its default sockets; attach_vf gives it a VF. */
	bool no_vf;
};

struct vio_relay_info {
	int id;
	char socket_path[VIO_PATH_MAX];
	bool client;
	int queues;
	int vhost_queues;
	int numa;
	int port_id;
	char port_name[64];
	char mac[18];
	bool link_up;
	bool guest_connected;
	int enabled_queues;
	int cpu_vf_to_vm, cpu_vm_to_vf;
	uint64_t features; /* negotiated virtio feature bits, 0 while no guest is connected */
	bool vf_attached;  /* false after the VF was lost or detached (port_id -1 then) */
	int vf_loss;       /* enum vio_vf_loss of the last automatic detach, -1 = none */
	bool socket_connected; /* a vhost-user connection is open */
	int arrival;       /* enum vio_arrival of the connected guest, -1 = none yet */
	int departure;     /* enum vio_departure of the last guest that stopped, -1 = none */
	uint32_t migrations_in, migrations_out;
};

struct vio_dir_counters {
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
	uint64_t drop_full_pkts, drop_full_bytes;
	uint64_t drop_nc_pkts, drop_nc_bytes;
};

/* The VF's own counters (rte_eth_stats_get; a bond sums its members): what the NIC received
 * and sent, and what it dropped before the relay read it (imissed: rx ring full; rx_nombuf:
 * no mbuf to refill the ring). Drivers that do not count a field report 0. */
struct vio_port_stats {
	bool valid; /* a VF is attached and its driver answered */
	uint64_t ipackets, opackets, ibytes, obytes;
	uint64_t imissed, ierrors, oerrors, rx_nombuf;
};

struct vio_relay_stats {
	int id;
	int queues;
	struct vio_port_stats vf;
	struct vio_dir_counters total[2];                     /* [VIO_DIR_*] */
	struct vio_dir_counters queue[VIO_MAX_QUEUES][2];     /* [queue][VIO_DIR_*] */
};

enum { VIO_DIR_VF_TO_VM = 0, VIO_DIR_VM_TO_VF = 1 };

struct vio_worker_info {
	int cpu;
	int lcore;
	int numa;
	int directions;
	/* TSC cycles of poll passes that moved packets (busy) and of those that found none (idle),
	 * since the engine started; packets received and dropped by the worker's directions */
	uint64_t busy_cycles, idle_cycles;
	uint64_t packets, dropped;
	/* (queue, direction) entries it polls; of those, hot ones (polled every pass, the rest by
	 * the idle sweep or parked); how often a cold entry found packets and turned hot */
	uint32_t entries, hot_entries;
	uint64_t wakeups;
};

struct vio_pool_info {
	int numa;
	char name[32];
	uint32_t size;
	uint32_t in_use;
	uint64_t bytes;
};

struct vio_memory_info {
	int n_pools;
	struct vio_pool_info pools[64];
	/* hugepage memory the EAL has mapped (memsegs), and what of it the rte_malloc heaps
	 * hand out (mempools, rings, ethdev and vhost structures) */
	uint64_t hugepage_bytes;
	uint64_t heap_allocated_bytes;
	uint64_t heap_free_bytes;
};

enum vio_cmd_type {
	VIO_CMD_START,
	VIO_CMD_ADD,
	VIO_CMD_REMOVE,
	VIO_CMD_SET_CPUS,
	VIO_CMD_STOP,
	VIO_CMD_DETACH_VF, /* u.id: detach the VF side, keep the vhost-user side */
	VIO_CMD_ATTACH_VF, /* u.add (id and vf fields only): attach a VF, replacing one attached */
	VIO_CMD_PREPARE_POOLS, /* u.pools: make the mbuf pools for relays to come now (handover) */
};

struct vio_cmd;
typedef void (*vio_done_fn)(struct vio_cmd *cmd);

struct vio_cmd {
	enum vio_cmd_type type;
	union {
		struct vio_start_opts start;
		struct vio_relay_cfg add;
		struct {
			int id;
			int cpu_vf_to_vm, cpu_vm_to_vf; /* -1 = keep */
		} cpus;
		struct {
			int numa;
			int queue_pairs; /* of the relays to come on that NUMA node */
		} pools;
		int id;
	} u;
	/* results */
	struct vio_error err;
	struct vio_relay_info info;
	/* completion, called on the control thread (or in vio_submit when rejected at once) */
	vio_done_fn done;
	void *ctx;
	struct vio_cmd *next; /* queue link, engine-owned */
};

/* Queue a command. Always completes through cmd->done exactly once (immediately, on the
 * calling thread, when it is rejected: EALREADY/ENOTSTARTED). */
void vio_submit(struct vio_cmd *cmd);

/* Stop synchronously (process exit path). Safe to call when not running. */
void vio_stop_sync(void);

bool vio_running(void);

/* Synchronous queries. Return VIO_OK, VIO_ENOTSTARTED or VIO_ENOENT. */
enum vio_err vio_query_relay(int id, struct vio_relay_info *out);
/* Fills ids[] with the relay ids in use, returns how many (0 when not running). */
int vio_query_ids(int *ids, int max);
enum vio_err vio_query_stats(int id, struct vio_relay_stats *out);
int vio_query_workers(struct vio_worker_info *out, int max);
enum vio_err vio_query_memory(struct vio_memory_info *out);
/* The running engine's settings: what vio_start was given (the binding's defaults applied). */
struct vio_settings {
	bool mrg_rxbuf, tso, jumbo;
	uint16_t rx_desc, tx_desc;
	uint32_t pool_queue_pairs;
	uint32_t idle_sweep_us;
};
enum vio_err vio_query_settings(struct vio_settings *out);
const char *vio_dpdk_version(void);
/* TSC ticks per second: the unit of vio_worker_info's cycle counts */
uint64_t vio_tsc_hz(void);
/* ethdev ports this DPDK build allows (RTE_MAX_ETHPORTS): one per relay VF */
int vio_max_ports(void);

#ifdef __cplusplus
}
#endif
#endif
