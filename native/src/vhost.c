/* SPDX-License-Identifier: Apache-2.0
 * vhost-user sockets through rte_vhost: one registration per relay socket, server or client
 * mode (client mode reconnects: rte_vhost retries every second until the VM side is back).
 * The callbacks run on rte_vhost's threads; they only update relay state and post events.
 * destroy_device waits for one worker pass (microseconds) so that no worker still uses the
 * device when rte_vhost frees it.
 *
 * Live migration: nothing here switches off VHOST_F_LOG_ALL or the protocol features it uses
 * (LOG_SHMFD, REPLY_ACK); rte_vhost logs the guest pages and used rings it writes in
 * rte_vhost_enqueue_burst/dequeue_burst itself. Guest announce: a guest with
 * VIRTIO_NET_F_GUEST_ANNOUNCE announces itself; for one without, QEMU sends
 * VHOST_USER_SEND_RARP (the RARP protocol feature stays on) and rte_vhost injects a RARP into
 * the next dequeue, which goes out of the VF.
 *
 * How a guest arrived and left (for status and migration counts):
 * - left with dirty-page logging on (VHOST_F_LOG_ALL): the source side of a live migration;
 *   its final vring indices are remembered for a while;
 * - arrived with every vring at index 0: a guest driver that just set its rings up;
 * - arrived with restored (non-zero) indices, which QEMU does after a migration, after a
 *   backend reconnect and after `cont`:
 *     same indices as a guest that migrated away from a relay of this engine: migrated in;
 *     the connection ran a device before: resumed (e.g. the VM was stopped and continued);
 *     the connection waited >= VIO_MIGRATION_WAIT_MS for the device: migrated in (a target
 *     QEMU connects at start-up and starts the device when the migration is done);
 *     else: reconnected (QEMU starts the device of a running VM at once on a new connection).
 *   Limits: an incoming migration that completes within VIO_MIGRATION_WAIT_MS of the target
 *   QEMU's connection, from another node, counts as a reconnect.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_net.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <rte_vhost.h>

#include "internal.h"
#include "sockown.h"

static struct vio_relay *relay_of_vid_locked(int vid)
{
	char path[VIO_PATH_MAX + 16];

	if (rte_vhost_get_ifname(vid, path, sizeof(path)) != 0)
		return NULL;
	return vio_relay_by_path_locked(path);
}

/* VF queue q -> guest rx vring: its own when enabled, else spread over the enabled ones
 * (a guest may enable fewer queue pairs than the VF spreads traffic over). A guest that enabled
 * more rx queues than the VF has gets the VF's packets spread over all of them by flow hash
 * (worker.c), as virtio-forwarder does. */
static void update_rx_map_locked(struct vio_relay *r)
{
	uint8_t enabled[VIO_MAX_QUEUES];
	int n = 0;

	for (int q = 0; q < VIO_MAX_QUEUES; q++)
		if (r->vring_enabled & (1ULL << (2 * q)))
			enabled[n++] = (uint8_t)(2 * q);
	/* workers read the list without a lock: fewer first, then the list, then the count */
	if (n < r->n_spread)
		__atomic_store_n(&r->n_spread, (uint8_t)n, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++)
		__atomic_store_n(&r->rx_spread[i], enabled[i], __ATOMIC_RELAXED);
	__atomic_store_n(&r->n_spread, (uint8_t)n, __ATOMIC_RELEASE);
	for (int q = 0; q < r->nb_queues; q++) {
		uint8_t v;
		if (r->vring_enabled & (1ULL << (2 * q)))
			v = (uint8_t)(2 * q);
		else if (n > 0)
			v = enabled[q % n];
		else
			v = VIO_NO_VRING;
		__atomic_store_n(&r->rx_vring[q], v, __ATOMIC_RELAXED);
	}
}

#ifndef VIO_MIGRATION_WAIT_MS
#define VIO_MIGRATION_WAIT_MS 500
#endif
#define VIO_DEPARTURE_SLOTS 16
#define VIO_DEPARTURE_KEEP_S 600

/* Final vring indices of guests that left a relay of this engine with dirty logging on. */
struct departure {
	bool used;
	uint16_t nvr;
	uint16_t avail[VIO_MAX_QUEUES * 2];
	uint64_t at;
};

static struct departure departures[VIO_DEPARTURE_SLOTS]; /* under eng.lock */
static unsigned departure_next;

/* last_avail_idx of each vring; true when any is non-zero (restored state) */
static bool vring_indices(int vid, uint16_t *avail, uint16_t *nvr_out)
{
	uint16_t nvr = rte_vhost_get_vring_num(vid);
	bool restored = false;

	if (nvr > VIO_MAX_QUEUES * 2)
		nvr = VIO_MAX_QUEUES * 2;
	for (uint16_t i = 0; i < nvr; i++) {
		uint16_t a = 0, u = 0;
		if (rte_vhost_get_vring_base(vid, i, &a, &u) != 0)
			a = u = 0;
		avail[i] = a;
		restored |= a != 0 || u != 0;
	}
	*nvr_out = nvr;
	return restored;
}

static bool match_departure_locked(const uint16_t *avail, uint16_t nvr)
{
	uint64_t now = rte_get_timer_cycles(), hz = rte_get_timer_hz();

	for (unsigned i = 0; i < VIO_DEPARTURE_SLOTS; i++) {
		struct departure *d = &departures[i];
		if (!d->used || d->nvr != nvr || now - d->at > VIO_DEPARTURE_KEEP_S * hz)
			continue;
		if (memcmp(d->avail, avail, nvr * sizeof(uint16_t)) == 0) {
			d->used = false;
			return true;
		}
	}
	return false;
}

#ifdef VIO_TRACE_VHOST
/* diagnostics (make CPPFLAGS=-DVIO_TRACE_VHOST): every vhost-user message with the time QEMU
 * took to send it after the previous one was handled, and how long its handling took */
static uint64_t trace_t0, trace_last;

static enum rte_vhost_msg_result trace_pre(int vid, void *msg)
{
	uint64_t now = rte_get_timer_cycles(), hz = rte_get_timer_hz();

	if (!trace_t0)
		trace_t0 = now;
	RTE_LOG(WARNING, USER1, "TRACE vid %d req %u at %lu us, %lu us after the last\n", vid,
		*(const uint32_t *)msg, (now - trace_t0) * 1000000 / hz,
		trace_last ? (now - trace_last) * 1000000 / hz : 0);
	trace_last = now;
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static enum rte_vhost_msg_result trace_post(int vid, void *msg)
{
	uint64_t now = rte_get_timer_cycles(), hz = rte_get_timer_hz();

	RTE_LOG(WARNING, USER1, "TRACE vid %d req %u handled in %lu us\n", vid,
		*(const uint32_t *)msg, (now - trace_last) * 1000000 / hz);
	trace_last = now;
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

#endif

/* The offered queue pairs. DPDK 22.11 has no rte_vhost_driver_set_max_queue_num (23.03 added
 * it) and answers VHOST_USER_GET_QUEUE_NUM with its own maximum (128): a guest could enable
 * queues no worker polls. The relay answers it instead, with nb_vqp, so QEMU refuses a device
 * with more queue pairs than the relay serves ("the maximum number of queue pairs supported
 * by backend is N") rather than stalling its flows on the extra queues. */
#define VHOST_USER_GET_QUEUE_NUM 17

struct vu_msg_head { /* the start of a vhost-user message as rte_vhost hands it over */
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint64_t u64;
} __attribute__((packed));

static enum rte_vhost_msg_result queue_num_pre(int vid, void *msg)
{
	struct vu_msg_head *m = msg;

#ifdef VIO_TRACE_VHOST
	trace_pre(vid, msg);
#endif
	if (m->request != VHOST_USER_GET_QUEUE_NUM)
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	uint64_t n = r ? r->nb_vqp : 1;
	pthread_mutex_unlock(&eng.lock);
	m->u64 = n;
	m->size = sizeof(m->u64);
	return RTE_VHOST_MSG_RESULT_REPLY;
}

static enum rte_vhost_msg_result queue_num_post(int vid, void *msg)
{
#ifdef VIO_TRACE_VHOST
	return trace_post(vid, msg);
#else
	(void)vid;
	(void)msg;
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
#endif
}

static const struct rte_vhost_user_extern_ops queue_num_ops = { queue_num_pre, queue_num_post };

static int new_connection(int vid)
{
	rte_vhost_extern_callback_register(vid, &queue_num_ops, NULL);
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = -1;
	if (r) {
		id = r->id;
		r->conn_open = true;
		r->conn_had_device = false;
		r->conn_at = rte_get_timer_cycles();
	}
	pthread_mutex_unlock(&eng.lock);
	if (id >= 0)
		vio_emit(VIO_EV_CONNECTION, id, 0, 1);
	return 0;
}

static void destroy_connection(int vid)
{
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = -1;
	if (r) {
		id = r->id;
		r->conn_open = false;
	}
	pthread_mutex_unlock(&eng.lock);
	if (id >= 0)
		vio_emit(VIO_EV_CONNECTION, id, 0, 0);
}

static int new_device(int vid)
{
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = r ? r->id : -1;
	pthread_mutex_unlock(&eng.lock);
	if (id < 0)
		return 0;
	/* the workers poll: the guest need not kick us */
	uint16_t nvr = rte_vhost_get_vring_num(vid);
	for (uint16_t i = 0; i < nvr; i++)
		rte_vhost_enable_guest_notification(vid, i, 0);
	uint64_t features = 0;
	rte_vhost_get_negotiated_features(vid, &features);
	uint16_t avail[VIO_MAX_QUEUES * 2];
	bool restored = vring_indices(vid, avail, &nvr);
	int arrival = VIO_ARRIVAL_STARTED;
	pthread_mutex_lock(&eng.lock);
	r = relay_of_vid_locked(vid);
	if (r) {
		if (restored) {
			uint64_t waited_ms = (rte_get_timer_cycles() - r->conn_at) * 1000 / rte_get_timer_hz();
			if (match_departure_locked(avail, nvr))
				arrival = VIO_ARRIVAL_MIGRATED_IN;
			else if (r->conn_had_device)
				arrival = VIO_ARRIVAL_RESUMED;
			else if (waited_ms >= VIO_MIGRATION_WAIT_MS)
				arrival = VIO_ARRIVAL_MIGRATED_IN;
			else
				arrival = VIO_ARRIVAL_RECONNECTED;
		}
		if (arrival == VIO_ARRIVAL_MIGRATED_IN)
			r->mig_in++;
		r->arrival = arrival;
		r->departure = -1;
		r->conn_had_device = true;
		r->features = features;
		__atomic_store_n(&r->vid, vid, __ATOMIC_RELEASE);
		__atomic_fetch_add(&vio_wake.gen, 1, __ATOMIC_RELEASE); /* workers: unpark */
	}
	pthread_mutex_unlock(&eng.lock);
	if (r)
		vio_emit(VIO_EV_GUEST_CONNECTED, id, 0, arrival);
	return 0;
}

static void destroy_device(int vid)
{
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = -1;
	bool migrating = false;
	if (r && r->vid == vid) {
		id = r->id;
		migrating = (r->features >> VHOST_F_LOG_ALL) & 1;
		__atomic_store_n(&r->vid, -1, __ATOMIC_RELEASE);
		r->features = 0;
		r->departure = migrating ? VIO_DEPARTURE_MIGRATING : VIO_DEPARTURE_STOPPED;
		if (migrating)
			r->mig_out++;
		__atomic_store_n(&r->vring_enabled, 0, __ATOMIC_RELAXED);
		update_rx_map_locked(r);
	}
	pthread_mutex_unlock(&eng.lock);
	if (id < 0)
		return;
	vio_rcu_wait();
	if (migrating) {
		/* no worker touches the vrings any more and the VM is stopped: these are the indices
		 * QEMU hands to the migration target */
		struct departure d = { .used = true, .at = rte_get_timer_cycles() };
		if (vring_indices(vid, d.avail, &d.nvr)) {
			pthread_mutex_lock(&eng.lock);
			departures[departure_next++ % VIO_DEPARTURE_SLOTS] = d;
			pthread_mutex_unlock(&eng.lock);
		}
	}
	vio_emit(VIO_EV_GUEST_DISCONNECTED, id, 0, migrating ? VIO_DEPARTURE_MIGRATING : VIO_DEPARTURE_STOPPED);
}

static int vring_state_changed(int vid, uint16_t vring, int enable)
{
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = -1;
	bool changed = false;
	if (r && vring < 64) {
		id = r->id;
		uint64_t bit = 1ULL << vring;
		uint64_t before = r->vring_enabled;
		__atomic_store_n(&r->vring_enabled, enable ? before | bit : before & ~bit, __ATOMIC_RELAXED);
		changed = before != r->vring_enabled;
		update_rx_map_locked(r);
		if (changed)
			__atomic_fetch_add(&vio_wake.gen, 1, __ATOMIC_RELEASE); /* workers: unpark */
	}
	pthread_mutex_unlock(&eng.lock);
	if (changed)
		vio_emit(VIO_EV_VRING_STATE, id, vring, enable ? 1 : 0);
	return 0;
}

/* VHOST_F_LOG_ALL comes and goes at the start and end of a live migration */
static int features_changed(int vid, uint64_t features)
{
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = relay_of_vid_locked(vid);
	int id = -1;
	bool log_before = false, log_now = (features >> VHOST_F_LOG_ALL) & 1;
	if (r && r->vid == vid) {
		id = r->id;
		log_before = (r->features >> VHOST_F_LOG_ALL) & 1;
		r->features = features;
	}
	pthread_mutex_unlock(&eng.lock);
	if (id >= 0 && log_before != log_now)
		vio_emit(VIO_EV_DIRTY_LOG, id, 0, log_now);
	return 0;
}

static const struct rte_vhost_device_ops ops = {
	.new_device = new_device,
	.destroy_device = destroy_device,
	.vring_state_changed = vring_state_changed,
	.features_changed = features_changed,
	.new_connection = new_connection,
	.destroy_connection = destroy_connection,
};

/* Waking rte_vhost's socket thread. In DPDK 22.11 that thread poll()s the sockets with a 1 s
 * timeout and is woken neither when a server socket is added (a connection is, a listening
 * socket is not) nor when a socket is removed:
 * - a QEMU that connects to a new server socket at once, e.g. its reconnect after an agent
 *   restart, waits up to 1 s for the first reply, with its vCPUs stopped;
 * - rte_vhost_driver_unregister close()s the socket's connection while that thread sits in
 *   poll() on it, and a poll() in progress holds a reference to every file it waits on (Linux
 *   fs/select.c, __pollwait: get_file), released when poll() returns. So the socket is really
 *   closed, and QEMU told (HUP), only at the poll's next return: up to 1 s later. In an upgrade
 *   handover QEMU (the vhost-user server of a client-mode relay) takes the new agent's
 *   connection only after it has seen the old one close: the relay's gap was 0.1-0.9 s instead
 *   of a few ms (bench/RESULTS.md section P).
 * So the engine keeps one private server socket in the same thread; connecting to it and
 * hanging up wakes the poll, which then takes in a new socket or lets go of a removed one. The
 * socket is created with the first relay of either mode (WAKE_DIR/wake-<pid>.sock; files of
 * processes that are gone are removed then) and removed when the engine stops. With the first
 * relay, because the wake socket itself is added without a wake-up: it is polled only from the
 * next rebuild of the poll set, which a client-mode relay's connection makes at once; made only
 * with a later server-mode relay, it was not polled yet and woke nothing (restarts: QEMU stopped
 * 0.5-0.7 s on its redial; bench/RESULTS.md P2). Without it (e.g. WAKE_DIR cannot be
 * created) a new socket waits as before, and a removed one stays open up to 1 s.
 * DPDK 24.07 moved that thread to epoll (lib/vhost/fd_man.c): a socket added there is watched at
 * once, so there is nothing to wake. But from then on rte_vhost_driver_unregister of the last
 * socket also ends the thread, and waits for it, up to its 1 s epoll timeout (the next register
 * starts a new one): removing the only relay took 1 s. So on 24.07+ the same private socket is
 * kept for any relay, server or client mode, only to keep the thread alive, and never connected to. */
#if RTE_VERSION < RTE_VERSION_NUM(24, 7, 0, 0)
#define VIO_VHOST_WAKE 1 /* connect to the socket after adding a server socket */
#else
#define VIO_VHOST_WAKE 0 /* the socket only keeps rte_vhost's thread alive */
#endif
#define WAKE_DIR "/run/vio4wd-engine"
static char wake_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool wake_registered;
static bool wake_failed; /* do not try again until the engine stops */
static const struct rte_vhost_device_ops wake_ops; /* no callbacks: connections just come and go */

static void wake_remove_stale(void)
{
	DIR *d = opendir(WAKE_DIR);
	struct dirent *de;
	int pid;
	char path[sizeof(wake_path)];

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "wake-%d.sock", &pid) != 1 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (snprintf(path, sizeof(path), WAKE_DIR "/%s", de->d_name) < (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
}

static void wake_init(void)
{
	if (wake_registered || wake_failed)
		return;
	if (mkdir(WAKE_DIR, 0700) != 0 && errno != EEXIST)
		goto fail;
	wake_remove_stale();
	snprintf(wake_path, sizeof(wake_path), WAKE_DIR "/wake-%d.sock", (int)getpid());
	unlink(wake_path);
	if (rte_vhost_driver_register(wake_path, 0) != 0)
		goto fail;
	if (rte_vhost_driver_callback_register(wake_path, &wake_ops) != 0 ||
	    rte_vhost_driver_start(wake_path) != 0) {
		rte_vhost_driver_unregister(wake_path);
		goto fail;
	}
	wake_registered = true;
	return;
fail:
	RTE_LOG(WARNING, USER1, "vio4wd: no wake-up socket in " WAKE_DIR " (%s): %s\n", strerror(errno),
		VIO_VHOST_WAKE ? "a QEMU connecting to a new server socket may wait up to 1 s, and "
				 "one whose relay was removed may see its socket close up to 1 s later" :
				 "removing the last relay may take up to 1 s");
	wake_failed = true;
}

static void wake_vhost_thread(void)
{
	if (!VIO_VHOST_WAKE || !wake_registered)
		return;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (fd < 0)
		return;
	memcpy(a.sun_path, wake_path, sizeof(a.sun_path));
	(void)!connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
}

void vio_vhost_wake_fini(void)
{
	if (wake_registered) {
		int ret = -1;
		for (int i = 0; i < 5000 && (ret = rte_vhost_driver_unregister(wake_path)) != 0; i++)
			usleep(1000);
		if (ret != 0)
			RTE_LOG(ERR, USER1, "vio4wd: rte_vhost_driver_unregister(%s) of the wake socket "
				"still failed after 5 s; gave up\n", wake_path);
		unlink(wake_path);
		wake_registered = false;
	}
	wake_failed = false;
}

int vio_vhost_register(struct vio_relay *r, const struct vio_relay_cfg *c, struct vio_error *e)
{
	uint64_t flags = c->client ? RTE_VHOST_USER_CLIENT : 0;
	wake_init();
	int ret = rte_vhost_driver_register(r->path, flags);

	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_vhost_driver_register(%s, %s mode) failed "
				"(DPDK's log names the cause)", r->id, r->path,
				c->client ? "client" : "server");
	r->vhost_registered = true;
	uint64_t off = 0;
	if (!r->mrg_rxbuf)
		off |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	if (!r->tso)
		/* no segmentation and no partial checksums from the guest: the VF is not asked to
		 * offload anything */
		off |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
		       (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6) |
		       (1ULL << VIRTIO_NET_F_HOST_UFO) | (1ULL << VIRTIO_NET_F_GUEST_UFO) |
		       (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_ECN) |
		       (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM);
	if (off && (ret = rte_vhost_driver_disable_features(r->path, off)) != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_vhost_driver_disable_features(%s) failed",
				r->id, r->path);
	ret = rte_vhost_driver_callback_register(r->path, &ops);
	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_vhost_driver_callback_register(%s) failed",
				r->id, r->path);
	ret = rte_vhost_driver_start(r->path);
	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_vhost_driver_start(%s) failed (DPDK's log "
				"names the cause)", r->id, r->path);
	if (!c->client) {
		/* never through a symlink put in the socket's place (sockown.c) */
		char why[VIO_PATH_MAX + 160];
		if ((c->owner >= 0 || c->group >= 0 || c->perm >= 0) &&
		    vio_socket_own(r->path, c->owner, c->group, c->perm, why, sizeof(why)) != 0)
			return vio_fail(e, errno == EPERM ? VIO_EEXIST : VIO_EIO, "relay %d: %s",
					r->id, why);
		wake_vhost_thread();
	}
	return 0;
}

void vio_vhost_unregister(struct vio_relay *r)
{
	if (!r->vhost_registered)
		return;
	/* fails while one of the socket's callbacks runs on the vhost thread: retry */
	int ret = -1;
	for (int i = 0; i < 5000 && (ret = rte_vhost_driver_unregister(r->path)) != 0; i++)
		usleep(1000);
	r->vhost_registered = false;
	if (ret != 0)
		/* reaches the agent's log as an engine log line (error level) */
		RTE_LOG(ERR, USER1, "vio4wd: relay %d: rte_vhost_driver_unregister(%s) still failed "
			"after 5 s (a vhost callback kept running); gave up: the socket may stay "
			"registered in DPDK until the engine stops\n", r->id, r->path);
	else
		/* the socket thread's poll() still holds the closed connection open: let it go now,
		 * so that the VM sees it close at once (see the wake socket above) */
		wake_vhost_thread();
}
