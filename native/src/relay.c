/* SPDX-License-Identifier: Apache-2.0
 * Relays: add (VF + vhost socket + worker assignment), remove, move a direction to another
 * worker. Runs on the control thread only. Worker lists are rebuilt and swapped whole; an
 * old list is freed after an RCU grace period, so the workers never wait for us.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "internal.h"

static const char *const dir_name[2] = { "vfToVm", "vmToVf" };

void vio_fill_info_locked(const struct vio_relay *r, struct vio_relay_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = r->id;
	snprintf(out->socket_path, sizeof(out->socket_path), "%s", r->path);
	out->client = r->client;
	out->queues = r->nb_queues;
	out->vhost_queues = r->nb_vqp;
	out->numa = r->numa;
	out->vf_attached = r->port_attached;
	out->port_id = r->port_attached ? r->port_id : -1;
	snprintf(out->port_name, sizeof(out->port_name), "%s", r->port_attached ? r->port_name : "");
	const uint8_t *m = r->mac.addr_bytes;
	snprintf(out->mac, sizeof(out->mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		 m[4], m[5]);
	out->link_up = r->port_attached && r->link_up;
	out->vf_loss = r->vf_loss;
	out->guest_connected = __atomic_load_n(&r->vid, __ATOMIC_RELAXED) >= 0;
	out->socket_connected = r->conn_open;
	out->arrival = out->guest_connected ? r->arrival : -1;
	out->departure = out->guest_connected ? -1 : r->departure;
	out->migrations_in = r->mig_in;
	out->migrations_out = r->mig_out;
	out->enabled_queues = __builtin_popcountll(r->vring_enabled);
	out->cpu_vf_to_vm = r->worker[0] >= 0 ? eng.workers[r->worker[0]].cpu : -1;
	out->cpu_vm_to_vf = r->worker[1] >= 0 ? eng.workers[r->worker[1]].cpu : -1;
	out->features = r->features;
}

/* ---- worker lists ---------------------------------------------------------------------- */

/* the order of list entries: relay id, direction, queue (VM->VF: its tx vring 2q+1) */
static inline uint32_t entry_key(const struct vio_entry *e)
{
	uint32_t q = e->dir == VIO_DIR_VF_TO_VM ? e->q : (uint32_t)(e->txvring - 1) / 2;

	return (uint32_t)e->r->id << 7 | (uint32_t)e->dir << 6 | q;
}

/* Worker w's new list. Its entries keep the hot/cold state they have in w's current list
 * (both lists are in relay id, direction, queue order: one merge walk, reading the worker's
 * scratch with relaxed loads; a stale hint costs at most one sweep period); entries new to w
 * (a relay added, or a direction moved in, often a busy one) start hot. */
static struct vio_plist *build_list(unsigned w)
{
	uint32_t n = 0;

	for (int i = 0; i < VIO_MAX_RELAYS; i++) {
		struct vio_relay *r = eng.relays[i];
		if (!r || !r->polled)
			continue;
		for (int d = 0; d < 2; d++)
			if (r->worker[d] == (int)w)
				n += d == VIO_DIR_VF_TO_VM ? r->nb_queues : r->nb_vqp;
	}
	struct vio_plist *l = calloc(1, sizeof(*l) + n * (sizeof(struct vio_entry) + sizeof(uint32_t)));
	if (!l)
		return NULL;
	l->hot = (uint32_t *)&l->e[n];
	const struct vio_plist *old = eng.workers[w].list;
	uint32_t oi = 0;
	const uint32_t tick = (uint32_t)(rte_rdtsc() >> VIO_TICK_SHIFT);
	for (int i = 0; i < VIO_MAX_RELAYS; i++) {
		struct vio_relay *r = eng.relays[i];
		if (!r || !r->polled)
			continue;
		for (int d = 0; d < 2; d++) {
			if (r->worker[d] != (int)w)
				continue;
			/* VF->VM: one entry per VF rx queue (update_rx_map picks the guest rx
			 * vring); VM->VF: one per guest tx vring the guest may enable, sent on VF
			 * tx queue q % nb_queues. All VM->VF entries of a relay run on one worker,
			 * so a VF tx queue never has two writers. */
			uint16_t n_q = d == VIO_DIR_VF_TO_VM ? r->nb_queues : r->nb_vqp;
			for (uint16_t q = 0; q < n_q; q++) {
				struct vio_entry *e = &l->e[l->n];
				e->r = r;
				e->ctr = &r->ctr[q * 2 + d];
				e->port = r->port_id;
				e->q = (uint16_t)(q % r->nb_queues);
				e->txvring = (uint16_t)(2 * q + 1);
				e->dir = (uint8_t)d;
				e->has_vf = r->port_attached;
				e->hot = 1;
				e->seen = tick;
				uint32_t key = entry_key(e);
				while (old && oi < old->n && entry_key(&old->e[oi]) < key)
					oi++;
				if (old && oi < old->n && old->e[oi].r == r && entry_key(&old->e[oi]) == key) {
					e->hot = __atomic_load_n(&old->e[oi].hot, __ATOMIC_RELAXED);
					e->seen = __atomic_load_n(&old->e[oi].seen, __ATOMIC_RELAXED);
				}
				if (e->hot)
					l->hot[l->n_hot++] = l->n;
				l->n++;
			}
		}
	}
	return l;
}

/* Rebuild and publish the lists of the workers in `mask`, then wait for a grace period and
 * free the old lists. */
static int publish(uint64_t mask, struct vio_error *e)
{
	struct vio_plist *fresh[VIO_MAX_WORKERS] = { 0 }, *old[VIO_MAX_WORKERS] = { 0 };

	for (unsigned w = 0; w < eng.n_workers; w++) {
		if (!(mask & (1ULL << w)))
			continue;
		fresh[w] = build_list(w);
		if (!fresh[w]) {
			for (unsigned j = 0; j < w; j++)
				free(fresh[j]);
			return vio_fail(e, VIO_ENOMEM, "out of memory for a worker's poll list");
		}
	}
	for (unsigned w = 0; w < eng.n_workers; w++) {
		if (!fresh[w])
			continue;
		old[w] = eng.workers[w].list;
		__atomic_store_n(&eng.workers[w].list, fresh[w], __ATOMIC_RELEASE);
	}
	vio_rcu_wait();
	for (unsigned w = 0; w < eng.n_workers; w++)
		free(old[w]);
	return 0;
}

static int worker_of_cpu(int cpu)
{
	for (unsigned w = 0; w < eng.n_workers; w++)
		if (eng.workers[w].cpu == cpu)
			return (int)w;
	return -1;
}

static void worker_cpus_str(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned w = 0; w < eng.n_workers && off < len; w++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d", w ? "," : "", eng.workers[w].cpu);
}

/* Least loaded worker on `numa` (any worker when none is there), avoiding `avoid` on ties. */
static int pick_worker(int numa, int avoid)
{
	int best = -1;
	bool local = false;

	for (unsigned w = 0; w < eng.n_workers; w++)
		if (eng.workers[w].numa == numa)
			local = true;
	for (unsigned w = 0; w < eng.n_workers; w++) {
		if (local && eng.workers[w].numa != numa)
			continue;
		if (best < 0) {
			best = (int)w;
			continue;
		}
		int lw = eng.workers[w].directions + ((int)w == avoid);
		int lb = eng.workers[best].directions + (best == avoid);
		if (lw < lb)
			best = (int)w;
	}
	return best;
}

/* ---- add ------------------------------------------------------------------------------- */

/* A server socket path must be free; a socket file nobody listens on is left over from a
 * crash and removed. */
static int check_server_path(int id, const char *path, struct vio_error *e)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return vio_fail(e, VIO_EEXIST, "relay %d: socketPath %s exists and is not a socket; "
				"remove it or choose another path", id, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	if (live)
		return vio_fail(e, VIO_EEXIST, "relay %d: socketPath %s is in use by another process",
				id, path);
	if (unlink(path) != 0)
		return vio_fail(e, VIO_EIO, "relay %d: cannot remove stale socket %s: %s", id, path,
				strerror(errno));
	return 0;
}

static int validate(const struct vio_relay_cfg *c, struct vio_error *e)
{
	char dir[VIO_PATH_MAX];
	struct stat st;

	if (c->id < 0 || c->id >= VIO_MAX_RELAYS)
		return vio_fail(e, VIO_EINVAL, "id: %d is out of range 0..%d", c->id, VIO_MAX_RELAYS - 1);
	if (c->queues < 1 || c->queues > VIO_MAX_QUEUES)
		return vio_fail(e, VIO_EINVAL, "relay %d: queues: %d is out of range 1..%d", c->id,
				c->queues, VIO_MAX_QUEUES);
	if (c->mtu != 0 && (c->mtu < VIO_MTU_MIN || c->mtu > VIO_MTU_MAX))
		return vio_fail(e, VIO_EINVAL, "relay %d: mtu: %d is out of range %d..%d", c->id, c->mtu,
				VIO_MTU_MIN, VIO_MTU_MAX);
	if (c->vhost_queues > 0 && (c->vhost_queues < c->queues || c->vhost_queues > VIO_MAX_QUEUES))
		return vio_fail(e, VIO_EINVAL, "relay %d: vhostQueues: %d is out of range %d..%d (at "
				"least the VF's queues)", c->id, c->vhost_queues, c->queues, VIO_MAX_QUEUES);
	if (c->no_vf ? (c->n_pci > 0 || c->devargs[0] != '\0') : (c->n_pci > 0) == (c->devargs[0] != '\0'))
		return vio_fail(e, VIO_EINVAL, "relay %d: vf: give exactly one of pciAddresses or "
				"devargs", c->id);
	if (c->n_pci > 1 && (c->bond_mode < 0 || c->bond_mode > 6))
		return vio_fail(e, VIO_EINVAL, "relay %d: vf.bondMode: %d is out of range 0..6", c->id,
				c->bond_mode);
	if (c->socket_path[0] != '/')
		return vio_fail(e, VIO_EINVAL, "relay %d: socketPath: \"%s\" is not an absolute path",
				c->id, c->socket_path);
	snprintf(dir, sizeof(dir), "%s", c->socket_path);
	const char *d = dirname(dir);
	if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
		return vio_fail(e, VIO_ENOENT, "relay %d: socketPath: directory %s does not exist; "
				"create it first", c->id, d);
	if (eng.relays[c->id])
		return vio_fail(e, VIO_EEXIST, "relay %d already exists (socket %s)", c->id,
				eng.relays[c->id]->path);
	struct vio_relay *o = vio_relay_by_path_locked(c->socket_path);
	if (o)
		return vio_fail(e, VIO_EEXIST, "relay %d: socketPath %s is already used by relay %d",
				c->id, c->socket_path, o->id);
	const int cpus[2] = { c->cpu_vf_to_vm, c->cpu_vm_to_vf };
	for (int dd = 0; dd < 2; dd++) {
		if (cpus[dd] >= 0 && worker_of_cpu(cpus[dd]) < 0) {
			char list[256];
			worker_cpus_str(list, sizeof(list));
			return vio_fail(e, VIO_EINVAL, "relay %d: cpus.%s: CPU %d runs no worker (worker "
					"CPUs: %s)", c->id, dir_name[dd], cpus[dd], list);
		}
	}
	if (c->numa >= VIO_NUMA_MAX)
		return vio_fail(e, VIO_EINVAL, "relay %d: numaNode: %d is out of range 0..%d", c->id,
				c->numa, VIO_NUMA_MAX - 1);
	return 0;
}

/* ms since `t0` (timer cycles), for the phase timings of add and remove (debug log) */
static double ms_since(uint64_t t0)
{
	return (double)(rte_get_timer_cycles() - t0) * 1000.0 / (double)rte_get_timer_hz();
}

static void set_table(int id, struct vio_relay *r)
{
	pthread_mutex_lock(&eng.lock);
	eng.relays[id] = r;
	eng.n_relays += r ? 1 : -1;
	pthread_mutex_unlock(&eng.lock);
}

static void free_relay(struct vio_relay *r)
{
	free(r->ctr);
	free(r);
}

void vio_cmd_add(struct vio_cmd *cmd)
{
	const struct vio_relay_cfg *c = &cmd->u.add;
	struct vio_error *e = &cmd->err;
	bool reserved = false;

	if (validate(c, e) != 0)
		return;
	if (!c->client && check_server_path(c->id, c->socket_path, e) != 0)
		return;
	struct vio_relay *r = calloc(1, sizeof(*r));
	if (!r) {
		vio_fail(e, VIO_ENOMEM, "relay %d: out of memory", c->id);
		return;
	}
	r->id = c->id;
	r->vid = -1;
	r->nb_queues = (uint16_t)c->queues;
	r->nb_vqp = (uint16_t)(c->vhost_queues > 0 ? c->vhost_queues : c->queues);
	r->client = c->client;
	r->mtu = c->mtu;
	r->mrg_rxbuf = c->mrg_rxbuf < 0 ? eng.opts.mrg_rxbuf : c->mrg_rxbuf;
	r->tso = c->tso < 0 ? eng.opts.tso : c->tso;
	r->worker[0] = r->worker[1] = -1;
	r->vf_loss = -1;
	r->arrival = r->departure = -1;
	snprintf(r->path, sizeof(r->path), "%s", c->socket_path);
	memset(r->rx_vring, VIO_NO_VRING, sizeof(r->rx_vring));
	r->ctr = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(struct vio_ctr) * 2 * r->nb_vqp);
	if (!r->ctr) {
		free(r);
		vio_fail(e, VIO_ENOMEM, "relay %d: out of memory", c->id);
		return;
	}
	memset(r->ctr, 0, sizeof(struct vio_ctr) * 2 * r->nb_vqp);
	/* in the table (not yet visible to queries) so that link and vhost callbacks find it */
	set_table(r->id, r);

	int sock = 0;
	uint64_t t0 = rte_get_timer_cycles();
	double t_attach = 0, t_pool = 0, t_start = 0, t_vhost = 0;
	if (!c->no_vf) {
		if (vio_port_attach(r, c, e) != 0)
			goto fail;
		r->port_attached = true;
		sock = rte_eth_dev_socket_id(r->port_id);
	}
	t_attach = ms_since(t0);
	r->numa = c->numa >= 0 ? c->numa : (sock >= 0 && sock < VIO_NUMA_MAX ? sock : 0);
	if (vio_pool_reserve(r, e) != 0)
		goto fail;
	reserved = true;
	t_pool = ms_since(t0);
	if (!c->no_vf && vio_port_start(r, e) != 0)
		goto fail;
	t_start = ms_since(t0);
	if (vio_vhost_register(r, c, e) != 0)
		goto fail;
	t_vhost = ms_since(t0);

	int w0 = c->cpu_vf_to_vm >= 0 ? worker_of_cpu(c->cpu_vf_to_vm) : pick_worker(r->numa, -1);
	if (c->cpu_vf_to_vm < 0)
		eng.workers[w0].directions++; /* so that the other direction prefers another worker */
	int w1 = c->cpu_vm_to_vf >= 0 ? worker_of_cpu(c->cpu_vm_to_vf) : pick_worker(r->numa, w0);
	if (c->cpu_vf_to_vm < 0)
		eng.workers[w0].directions--;
	pthread_mutex_lock(&eng.lock);
	r->worker[0] = w0;
	r->worker[1] = w1;
	eng.workers[w0].directions++;
	eng.workers[w1].directions++;
	r->polled = true;
	pthread_mutex_unlock(&eng.lock);
	if (publish((1ULL << w0) | (1ULL << w1), e) != 0) {
		pthread_mutex_lock(&eng.lock);
		r->polled = false;
		eng.workers[w0].directions--;
		eng.workers[w1].directions--;
		pthread_mutex_unlock(&eng.lock);
		goto fail;
	}
	pthread_mutex_lock(&eng.lock);
	r->ready = true;
	vio_fill_info_locked(r, &cmd->info);
	pthread_mutex_unlock(&eng.lock);
	/* ms since the command began, each phase's end (handover figures: bench/handover.ts) */
	RTE_LOG(DEBUG, USER1, "vio4wd: relay %d added: port attached %.1f, pool %.1f, port started "
		"%.1f, socket registered %.1f, polled %.1f ms\n", r->id, t_attach, t_pool, t_start,
		t_vhost, ms_since(t0));
	return;

fail:
	vio_vhost_unregister(r);
	set_table(r->id, NULL);
	if (r->port_attached)
		vio_port_detach(r);
	if (reserved)
		vio_pool_release(r);
	free_relay(r);
}

/* ---- remove ---------------------------------------------------------------------------- */

static void teardown(struct vio_relay *r, uint64_t t0)
{
	int id = r->id;
	vio_vhost_unregister(r);
	double t_vhost = ms_since(t0);
	set_table(r->id, NULL);
	if (r->port_attached)
		vio_port_detach(r);
	double t_port = ms_since(t0);
	vio_pool_release(r);
	free_relay(r);
	/* ms since the command began, each phase's end (handover figures: bench/handover.ts) */
	RTE_LOG(DEBUG, USER1, "vio4wd: relay %d removed: socket unregistered %.1f, port detached "
		"%.1f, pool released %.1f ms\n", id, t_vhost, t_port, ms_since(t0));
}

void vio_cmd_remove(struct vio_cmd *cmd)
{
	int id = cmd->u.id;
	struct vio_relay *r = (id >= 0 && id < VIO_MAX_RELAYS) ? eng.relays[id] : NULL;

	if (!r || !r->ready) {
		vio_fail(&cmd->err, VIO_ENOENT, "relay %d does not exist", id);
		return;
	}
	uint64_t t0 = rte_get_timer_cycles();
	pthread_mutex_lock(&eng.lock);
	r->polled = false;
	r->ready = false;
	eng.workers[r->worker[0]].directions--;
	eng.workers[r->worker[1]].directions--;
	pthread_mutex_unlock(&eng.lock);
	/* the relay must leave the lists before it is torn down: retry if calloc fails */
	while (publish((1ULL << r->worker[0]) | (1ULL << r->worker[1]), &cmd->err) != 0)
		usleep(1000);
	cmd->err.code = VIO_OK;
	RTE_LOG(DEBUG, USER1, "vio4wd: relay %d: workers off it after %.1f ms\n", r->id, ms_since(t0));
	teardown(r, t0);
}

/* at stop: workers are stopped, nothing polls any more */
void vio_remove_all(void)
{
	for (int i = 0; i < VIO_MAX_RELAYS; i++) {
		struct vio_relay *r = eng.relays[i];
		if (!r)
			continue;
		pthread_mutex_lock(&eng.lock);
		r->polled = false;
		r->ready = false;
		pthread_mutex_unlock(&eng.lock);
		teardown(r, rte_get_timer_cycles());
	}
	for (unsigned w = 0; w < eng.n_workers; w++)
		eng.workers[w].directions = 0;
}

/* ---- move directions ------------------------------------------------------------------- */

void vio_cmd_set_cpus(struct vio_cmd *cmd)
{
	int id = cmd->u.cpus.id;
	struct vio_error *e = &cmd->err;
	struct vio_relay *r = (id >= 0 && id < VIO_MAX_RELAYS) ? eng.relays[id] : NULL;
	const int cpus[2] = { cmd->u.cpus.cpu_vf_to_vm, cmd->u.cpus.cpu_vm_to_vf };
	int target[2];
	uint64_t from = 0, to = 0;

	if (!r || !r->ready) {
		vio_fail(e, VIO_ENOENT, "relay %d does not exist", id);
		return;
	}
	for (int d = 0; d < 2; d++) {
		target[d] = cpus[d] < 0 ? r->worker[d] : worker_of_cpu(cpus[d]);
		if (target[d] < 0) {
			char list[256];
			worker_cpus_str(list, sizeof(list));
			vio_fail(e, VIO_EINVAL, "relay %d: cpus.%s: CPU %d runs no worker (worker CPUs: %s)",
				 id, dir_name[d], cpus[d], list);
			return;
		}
		if (target[d] != r->worker[d]) {
			from |= 1ULL << r->worker[d];
			to |= 1ULL << target[d];
		}
	}
	if (!from)
		goto out;
	/* first take the moving directions off their old workers and wait until those are done
	 * with them, then give them to the new ones: a queue never has two pollers */
	int old[2] = { r->worker[0], r->worker[1] };
	pthread_mutex_lock(&eng.lock);
	for (int d = 0; d < 2; d++)
		if (target[d] != old[d]) {
			eng.workers[old[d]].directions--;
			r->worker[d] = -1;
		}
	pthread_mutex_unlock(&eng.lock);
	while (publish(from, e) != 0)
		usleep(1000);
	pthread_mutex_lock(&eng.lock);
	for (int d = 0; d < 2; d++)
		if (target[d] != old[d]) {
			eng.workers[target[d]].directions++;
			r->worker[d] = target[d];
		}
	pthread_mutex_unlock(&eng.lock);
	while (publish(to, e) != 0)
		usleep(1000);
	e->code = VIO_OK;
out:
	pthread_mutex_lock(&eng.lock);
	vio_fill_info_locked(r, &cmd->info);
	pthread_mutex_unlock(&eng.lock);
}

/* ---- the VF side alone: detach, attach, watch ------------------------------------------ */

static uint64_t workers_of(const struct vio_relay *r)
{
	uint64_t m = 0;

	for (int d = 0; d < 2; d++)
		if (r->worker[d] >= 0)
			m |= 1ULL << r->worker[d];
	return m;
}

/* Takes the VF away from a polled relay; the vhost-user side and the guest stay. Workers first
 * stop touching the port (lists rebuilt without it, one grace period), then it is closed and
 * removed. From then on the guest's packets are dequeued and counted as dropped, not connected. */
static void vf_detach(struct vio_relay *r, int loss)
{
	struct vio_error e;

	if (!r->port_attached)
		return;
	pthread_mutex_lock(&eng.lock);
	r->port_attached = false; /* link callbacks and the watch leave it alone from now on */
	__atomic_store_n(&r->link_up, 0, __ATOMIC_RELAXED);
	r->vf_loss = loss;
	pthread_mutex_unlock(&eng.lock);
	uint64_t mask = workers_of(r);
	while (r->polled && mask && publish(mask, &e) != 0)
		usleep(1000);
	vio_port_detach(r);
}

static struct vio_relay *live_relay(int id, struct vio_error *e)
{
	struct vio_relay *r = (id >= 0 && id < VIO_MAX_RELAYS) ? eng.relays[id] : NULL;

	if (!r || !r->ready) {
		vio_fail(e, VIO_ENOENT, "relay %d does not exist", id);
		return NULL;
	}
	return r;
}

void vio_cmd_detach_vf(struct vio_cmd *cmd)
{
	struct vio_relay *r = live_relay(cmd->u.id, &cmd->err);

	if (!r)
		return;
	vf_detach(r, -1);
	pthread_mutex_lock(&eng.lock);
	vio_fill_info_locked(r, &cmd->info);
	pthread_mutex_unlock(&eng.lock);
}

void vio_cmd_attach_vf(struct vio_cmd *cmd)
{
	const struct vio_relay_cfg *c = &cmd->u.add;
	struct vio_error *e = &cmd->err;
	struct vio_relay *r = live_relay(c->id, e);

	if (!r)
		return;
	if ((c->n_pci > 0) == (c->devargs[0] != '\0')) {
		vio_fail(e, VIO_EINVAL, "relay %d: vf: give exactly one of pciAddresses or devargs", c->id);
		return;
	}
	if (c->n_pci > 1 && (c->bond_mode < 0 || c->bond_mode > 6)) {
		vio_fail(e, VIO_EINVAL, "relay %d: vf.bondMode: %d is out of range 0..6", c->id,
			 c->bond_mode);
		return;
	}
	vf_detach(r, -1); /* replacing the VF: the old one goes first */
	if (vio_port_attach(r, c, e) != 0)
		return;
	if (vio_port_start(r, e) != 0) {
		vio_port_detach(r);
		return;
	}
	pthread_mutex_lock(&eng.lock);
	r->port_attached = true;
	r->vf_loss = -1;
	pthread_mutex_unlock(&eng.lock);
	uint64_t mask = workers_of(r);
	while (mask && publish(mask, e) != 0)
		usleep(1000);
	e->code = VIO_OK;
	pthread_mutex_lock(&eng.lock);
	vio_fill_info_locked(r, &cmd->info);
	pthread_mutex_unlock(&eng.lock);
}

/* Control thread, twice a second: link of every attached VF, and whether it is still there. */
void vio_poll_vfs(void)
{
	for (int i = 0; i < VIO_MAX_RELAYS; i++) {
		/* only this thread adds or frees relays: no lock needed to walk the table */
		struct vio_relay *r = eng.relays[i];
		if (!r || !r->ready || !r->port_attached)
			continue;
		int up = 0;
		int loss = vio_port_check(r, &up);
		if (loss >= 0) {
			RTE_LOG(WARNING, USER1, "vio4wd: relay %d: VF %s %s; detached, the vhost-user side "
				"stays\n", r->id, r->port_name,
				loss == VIO_VF_LOSS_IFACE_GONE ? "lost its kernel interface" :
				loss == VIO_VF_LOSS_UNPLUGGED ? "was removed" : "is gone");
			vf_detach(r, loss);
			vio_emit(VIO_EV_VF_REMOVED, r->id, 0, loss);
			continue;
		}
		bool changed = false;
		pthread_mutex_lock(&eng.lock);
		if ((uint8_t)up != r->link_up) {
			__atomic_store_n(&r->link_up, (uint8_t)up, __ATOMIC_RELAXED);
			changed = true;
		}
		pthread_mutex_unlock(&eng.lock);
		if (changed)
			vio_emit(VIO_EV_LINK, r->id, 0, up);
	}
}
