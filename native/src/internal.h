/* SPDX-License-Identifier: Apache-2.0
 * Engine internals shared by the control plane (engine.c, relay.c, port.c, vhost.c, pool.c)
 * and the data plane (worker.c). Fields read by workers are marked [dp].
 */
#ifndef VIO_INTERNAL_H
#define VIO_INTERNAL_H

#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>

#include "vio.h"

#define VIO_BURST 32
#define VIO_NUMA_MAX 8
/* mbuf pools per NUMA node: the node's pool grows by one more of poolQueuePairs queue pairs
 * when the relays' queue pairs outgrow it (pool.c) */
#define VIO_POOL_CHUNKS 32
#define VIO_NO_VRING 0xff

/* Counters of one direction of one queue pair. Exactly one worker writes a cell at a time
 * (a direction moves between workers only across an RCU grace period), so plain stores
 * suffice; one cell = one cache line, so workers never share a written line. */
struct vio_ctr {
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
	uint64_t drop_full_pkts, drop_full_bytes;
	uint64_t drop_nc_pkts, drop_nc_bytes;
} __rte_cache_aligned;

struct vio_relay {
	/* [dp] read by workers on every burst; written by the control plane and callbacks */
	int vid;                              /* vhost device id, -1 = no guest */
	uint8_t link_up;                      /* VF link */
	uint64_t vring_enabled;               /* bit per vring the guest enabled */
	uint8_t rx_vring[VIO_MAX_QUEUES];     /* VF queue q -> guest rx vring, VIO_NO_VRING */
	/* the guest rx vrings enabled, in order; when there are more of them than VF queues, VF
	 * queue q spreads its packets by flow hash over rx_spread[q], [q + nb_queues], ... */
	uint8_t rx_spread[VIO_MAX_QUEUES];
	uint8_t n_spread;
	uint16_t port_id;
	uint16_t nb_queues;                   /* VF queue pairs */
	uint16_t nb_vqp;                      /* guest queue pairs offered (>= nb_queues) */
	struct rte_mempool *mp;
	int pool_chunk;                       /* which of the NUMA node's pools mp is, -1 = none */
	struct vio_ctr *ctr;                  /* [nb_vqp * 2], index q * 2 + dir: VF->VM by VF
					       * rx queue, VM->VF by guest tx vring pair */

	/* control plane only (under eng.lock where JS-thread queries read it) */
	uint64_t features;                    /* virtio features the guest negotiated, 0 = none */
	int id;
	char path[VIO_PATH_MAX];
	bool client;
	int numa;
	int worker[2];                        /* worker index per direction */
	char port_name[RTE_ETH_NAME_MAX_LEN];
	struct rte_ether_addr mac;
	bool ready;                           /* fully added: visible to queries */
	bool port_attached;                   /* a VF is attached (false after it was lost) */
	bool vhost_registered;
	bool polled;                          /* has entries in worker lists */
	bool vf_removed;                      /* RMV event seen: the control thread detaches */
	int vf_loss;                          /* enum vio_vf_loss of the last detach, -1 = none */
	bool lsc_cb, rmv_cb;
	/* the kernel interface behind a virtual VF stand-in (net_tap, net_af_packet), watched by
	 * the control thread: gone or replaced (new ifindex) = VF lost; its flags = link */
	char ifname[IF_NAMESIZE];
	unsigned ifindex;
	/* vhost-user side, for telling how a guest arrived (vhost.c) */
	bool conn_open;
	bool conn_had_device;                 /* this connection ran a device before */
	uint64_t conn_at;                     /* rte_get_timer_cycles() at connection */
	int arrival, departure;               /* enum vio_arrival / vio_departure, -1 = none */
	uint32_t mig_in, mig_out;
	/* VF: one device, or a bond of members */
	bool bonded;
	char bond_name[64];
	int n_members;
	uint16_t members[VIO_MAX_BOND_MEMBERS];
	bool mrg_rxbuf, tso;
	int mtu;
};

/* Worker time for the idle logic: TSC >> VIO_TICK_SHIFT, 32 bits */
#define VIO_TICK_SHIFT 10

/* One polled (relay, queue, direction). Each worker owns its copy; seen, hot and parked are its
 * scratch (worker.c: hot entries are polled every pass, cold ones by a sweep of bounded period,
 * parked ones not at all until a vhost event). */
struct vio_entry {
	struct vio_relay *r;
	struct vio_ctr *ctr;
	uint16_t port;
	uint16_t q;
	uint16_t txvring;                     /* VM->VF: guest tx vring 2q+1 */
	uint8_t dir;
	uint8_t has_vf;                       /* 0 while the relay's VF is detached */
	uint32_t seen;                        /* tick of its last packet (or of turning hot) */
	uint8_t hot;                          /* in the list's hot[] */
	uint8_t parked;                       /* VM->VF with no guest or vring disabled */
};

struct vio_plist {
	uint32_t n;
	uint32_t n_hot;                       /* hot[0..n_hot) at publication (then the worker's) */
	uint32_t *hot;                        /* [n] indices into e[], same allocation */
	struct vio_entry e[];
};

/* Bumped (release) after a vhost callback changed a relay's vid or vring_enabled: workers then
 * poll their parked VM->VF entries again. On a cache line of its own: read once per pass. */
struct vio_wake {
	uint32_t gen;
} __rte_cache_aligned;
extern struct vio_wake vio_wake;

/* A worker's load, written only by the worker, once per pass (not per packet), on a cache line
 * of its own; queries read it with relaxed loads. */
struct vio_wstats {
	uint64_t busy_cycles;                 /* TSC cycles of passes that moved packets */
	uint64_t idle_cycles;                 /* TSC cycles of passes that found nothing */
	uint64_t packets;                     /* received from VFs and guests */
	uint64_t dropped;                     /* of those, dropped (far side full or absent) */
	uint64_t wakeups;                     /* cold entries that found packets */
	uint32_t entries, hot_entries;        /* of its current list */
} __rte_cache_aligned;

struct vio_worker {
	struct vio_wstats st;                 /* [dp] written by the worker only */
	struct vio_plist *list;               /* [dp] published with release, read with acquire */
	volatile int stop;                    /* [dp] */
	unsigned lcore;
	unsigned idx;                         /* RCU thread id */
	int cpu;
	int numa;
	int directions;                       /* control plane bookkeeping */
} __rte_cache_aligned;

struct vio_engine {
	/* command queue */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct vio_cmd *qhead, *qtail;
	pthread_t ctl;
	int state; /* enum below */

	/* guards relays[] and what queries read, vs. the control thread and callbacks */
	pthread_mutex_t lock;
	struct vio_relay *relays[VIO_MAX_RELAYS];
	int n_relays;

	struct vio_worker workers[VIO_MAX_WORKERS];
	unsigned n_workers;
	struct rte_rcu_qsbr *qs;

	struct rte_mempool *pools[VIO_NUMA_MAX][VIO_POOL_CHUNKS];
	uint32_t pool_qp_used[VIO_NUMA_MAX][VIO_POOL_CHUNKS];

	struct vio_start_opts opts;
	char *argv_copy[VIO_MAX_EAL_ARGS];

	/* events */
	pthread_mutex_t evlock;
	bool ev_enabled;
	bool log_live;                        /* DPDK log lines go out as VIO_EV_LOG events */

	/* control thread: VF watch */
	bool poll_now;                        /* under qlock: poll VFs at once (RMV event) */
	int ifr_fd;                           /* socket for SIOCGIFFLAGS */
};

enum { ST_NONE, ST_STARTING, ST_RUNNING, ST_STOPPING, ST_STOPPED, ST_FAILED };

extern struct vio_engine eng;

/* errors */
int vio_fail(struct vio_error *e, enum vio_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum vio_err vio_err_of_errno(int err);

/* events (engine.c) */
void vio_emit(enum vio_event_type type, int relay_id, int queue, int flag);

/* relay lookups under eng.lock (engine.c) */
struct vio_relay *vio_relay_by_path_locked(const char *path);

/* pool.c */
/* reserves r->nb_queues queue pairs in a pool of r->numa (creating one when all are full):
 * sets r->mp and r->pool_chunk */
int vio_pool_reserve(struct vio_relay *r, struct vio_error *e);
void vio_pool_release(struct vio_relay *r);
void vio_cmd_prepare_pools(struct vio_cmd *cmd);
void vio_pool_free_all(void);
uint32_t vio_pool_size(unsigned n_lcores);

void vio_wake_ctl(void);
void vio_log_init(void);
void vio_log_stop(void);

/* port.c */
int vio_port_attach(struct vio_relay *r, const struct vio_relay_cfg *c, struct vio_error *e);
int vio_port_start(struct vio_relay *r, struct vio_error *e);
void vio_port_detach(struct vio_relay *r);
/* Checks an attached VF on the control thread: returns an enum vio_vf_loss when it is gone,
 * else -1 and its link in *up. */
int vio_port_check(struct vio_relay *r, int *up);

/* vhost.c */
int vio_vhost_register(struct vio_relay *r, const struct vio_relay_cfg *c, struct vio_error *e);
void vio_vhost_unregister(struct vio_relay *r);
/* removes the engine's wake-up socket (vhost.c); at engine stop, after every relay is gone */
void vio_vhost_wake_fini(void);

/* worker.c */
int vio_worker_main(void *arg);
void vio_rcu_wait(void);

/* relay.c */
void vio_cmd_add(struct vio_cmd *cmd);
void vio_cmd_remove(struct vio_cmd *cmd);
void vio_cmd_set_cpus(struct vio_cmd *cmd);
void vio_cmd_detach_vf(struct vio_cmd *cmd);
void vio_cmd_attach_vf(struct vio_cmd *cmd);
void vio_poll_vfs(void);
void vio_remove_all(void);
void vio_fill_info_locked(const struct vio_relay *r, struct vio_relay_info *out);

#endif
