/* SPDX-License-Identifier: Apache-2.0
 * The engine's control thread: it calls rte_eal_init (so it becomes the EAL main lcore and
 * the caller's threads are never pinned by EAL), launches one poll-mode worker per EAL worker
 * lcore, then executes queued commands one at a time and sleeps in between (checking every
 * VF's link and presence twice a second, see port.c). DPDK's own log lines can be delivered
 * as events (VIO_EV_LOG) instead of going to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_version.h>

#include "internal.h"

struct vio_engine eng = {
	.qlock = PTHREAD_MUTEX_INITIALIZER,
	.qcond = PTHREAD_COND_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.evlock = PTHREAD_MUTEX_INITIALIZER,
	.state = ST_NONE,
	.ifr_fd = -1,
};

static const char *const err_names[] = {
	[VIO_OK] = "OK",           [VIO_EALREADY] = "EALREADY", [VIO_ENOTSTARTED] = "ENOTSTARTED",
	[VIO_EINVAL] = "EINVAL",   [VIO_EEXIST] = "EEXIST",     [VIO_ENOENT] = "ENOENT",
	[VIO_ENODEV] = "ENODEV",   [VIO_ENOMEM] = "ENOMEM",     [VIO_EIO] = "EIO",
};

const char *vio_err_name(enum vio_err code)
{
	return (unsigned)code < RTE_DIM(err_names) ? err_names[code] : "EIO";
}

int vio_fail(struct vio_error *e, enum vio_err code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

enum vio_err vio_err_of_errno(int err)
{
	switch (err) {
	case EINVAL: return VIO_EINVAL;
	case EEXIST: return VIO_EEXIST;
	case ENOENT: return VIO_ENOENT;
	case ENODEV: return VIO_ENODEV;
	case ENOMEM: case ENOSPC: return VIO_ENOMEM;
	default: return VIO_EIO;
	}
}

void vio_emit(enum vio_event_type type, int relay_id, int queue, int flag)
{
	struct vio_event ev = { .type = type, .relay_id = relay_id, .queue = queue, .flag = flag };

	pthread_mutex_lock(&eng.evlock);
	if (eng.ev_enabled && eng.opts.on_event)
		eng.opts.on_event(eng.opts.event_ctx, &ev);
	pthread_mutex_unlock(&eng.evlock);
}

/* ---- DPDK's log as events ------------------------------------------------------------- */

/* rte_log writes a message with vfprintf + fflush on one stream; the stream's lock serializes
 * the writers, so one buffer for partial lines suffices. */
static char log_buf[VIO_LOG_TEXT_MAX];
static size_t log_len;

static void log_line(const char *s, size_t n)
{
	struct vio_event ev = { .type = VIO_EV_LOG, .relay_id = -1 };
	int lvl = rte_log_cur_msg_loglevel();

	if (n >= sizeof(ev.text))
		n = sizeof(ev.text) - 1;
	memcpy(ev.text, s, n);
	ev.text[n] = '\0';
	ev.flag = lvl > 0 ? lvl : (int)RTE_LOG_INFO;
	pthread_mutex_lock(&eng.evlock);
	bool live = eng.log_live && eng.opts.on_event;
	if (live)
		eng.opts.on_event(eng.opts.event_ctx, &ev);
	pthread_mutex_unlock(&eng.evlock);
	if (!live) {
		/* no one to deliver to (before start, after stop): stderr, as DPDK would */
		ssize_t w = write(STDERR_FILENO, s, n);
		w = write(STDERR_FILENO, "\n", 1);
		(void)w;
	}
}

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	for (size_t i = 0; i < size; i++) {
		char ch = buf[i];
		if (ch == '\n' || log_len == sizeof(log_buf) - 1) {
			if (log_len > 0)
				log_line(log_buf, log_len);
			log_len = 0;
			if (ch == '\n')
				continue;
		}
		log_buf[log_len++] = ch;
	}
	return (ssize_t)size;
}

void vio_log_init(void)
{
	static FILE *f;
	cookie_io_functions_t fns = { .write = log_write };

	if (!f) {
		f = fopencookie(NULL, "w", fns);
		if (!f)
			return;
		setvbuf(f, NULL, _IOFBF, 4096);
	}
	pthread_mutex_lock(&eng.evlock);
	eng.log_live = true;
	pthread_mutex_unlock(&eng.evlock);
	rte_openlog_stream(f);
}

/* After this no event is delivered for a log line: the binding releases its function. */
void vio_log_stop(void)
{
	pthread_mutex_lock(&eng.evlock);
	eng.log_live = false;
	pthread_mutex_unlock(&eng.evlock);
}

struct vio_relay *vio_relay_by_path_locked(const char *path)
{
	for (int i = 0; i < VIO_MAX_RELAYS; i++) {
		struct vio_relay *r = eng.relays[i];
		if (r && strcmp(r->path, path) == 0)
			return r;
	}
	return NULL;
}

/* ---- command queue --------------------------------------------------------------------- */

static void reject(struct vio_cmd *cmd, enum vio_err code, const char *why)
{
	vio_fail(&cmd->err, code, "%s", why);
	cmd->done(cmd);
}

static const char *not_running_reason(int state)
{
	switch (state) {
	case ST_NONE: return "engine not started: call Engine.start() first";
	case ST_STOPPED: return "engine stopped";
	case ST_FAILED: return "engine failed to start (see the error of Engine.start())";
	default: return "engine not running";
	}
}

static struct vio_cmd *dequeue_locked(void)
{
	struct vio_cmd *c = eng.qhead;

	if (c) {
		eng.qhead = c->next;
		if (!eng.qhead)
			eng.qtail = NULL;
		c->next = NULL;
	}
	return c;
}

/* Fail every queued command (after a failed start, or after stop). */
static void drain_rejecting(void)
{
	for (;;) {
		pthread_mutex_lock(&eng.qlock);
		struct vio_cmd *c = dequeue_locked();
		int st = eng.state;
		pthread_mutex_unlock(&eng.qlock);
		if (!c)
			return;
		if (c->type == VIO_CMD_START)
			reject(c, VIO_EALREADY, "the engine was already started in this process (DPDK's EAL "
			       "starts only once per process)");
		else if (c->type == VIO_CMD_STOP && st == ST_STOPPED) {
			c->err.code = VIO_OK;
			c->done(c);
		} else
			reject(c, VIO_ENOTSTARTED, not_running_reason(st));
	}
}

static void *ctl_main(void *arg);

void vio_submit(struct vio_cmd *cmd)
{
	cmd->next = NULL;
	cmd->err.code = VIO_OK;
	cmd->err.msg[0] = '\0';
	pthread_mutex_lock(&eng.qlock);
	if (cmd->type == VIO_CMD_START) {
		if (eng.state != ST_NONE) {
			bool failed = eng.state == ST_FAILED;
			pthread_mutex_unlock(&eng.qlock);
			reject(cmd, VIO_EALREADY, failed ?
			       "an earlier Engine.start() in this process failed, and DPDK's EAL cannot be "
			       "started again: restart the process" :
			       "the engine was already started in this process (DPDK's EAL starts only once "
			       "per process)");
			return;
		}
		eng.state = ST_STARTING;
		eng.opts = cmd->u.start;
		if (eng.opts.log_events)
			vio_log_init();
		for (int i = 0; i < cmd->u.start.argc && i < VIO_MAX_EAL_ARGS; i++) {
			eng.argv_copy[i] = strdup(cmd->u.start.argv[i]);
			eng.opts.argv[i] = eng.argv_copy[i];
		}
	} else if (eng.state != ST_RUNNING && eng.state != ST_STARTING) {
		int st = eng.state;
		pthread_mutex_unlock(&eng.qlock);
		if (cmd->type == VIO_CMD_STOP && st == ST_STOPPED) {
			cmd->done(cmd); /* stopping twice is fine */
			return;
		}
		reject(cmd, VIO_ENOTSTARTED, not_running_reason(st));
		return;
	}
	if (eng.qtail)
		eng.qtail->next = cmd;
	else
		eng.qhead = cmd;
	eng.qtail = cmd;
	if (cmd->type == VIO_CMD_START) {
		int ret = pthread_create(&eng.ctl, NULL, ctl_main, NULL);
		if (ret != 0) {
			eng.qhead = eng.qtail = NULL;
			eng.state = ST_FAILED;
			pthread_mutex_unlock(&eng.qlock);
			reject(cmd, VIO_EIO, "cannot create the engine control thread");
			return;
		}
		pthread_detach(eng.ctl);
	}
	pthread_cond_signal(&eng.qcond);
	pthread_mutex_unlock(&eng.qlock);
}

/* Asks the control thread to check the VFs now (a removal event came in). */
void vio_wake_ctl(void)
{
	pthread_mutex_lock(&eng.qlock);
	eng.poll_now = true;
	pthread_cond_signal(&eng.qcond);
	pthread_mutex_unlock(&eng.qlock);
}

bool vio_running(void)
{
	pthread_mutex_lock(&eng.qlock);
	bool r = eng.state == ST_RUNNING || eng.state == ST_STARTING;
	pthread_mutex_unlock(&eng.qlock);
	return r;
}

/* Queries read eng.state under eng.lock, the command queue under eng.qlock: take both. */
static void set_state(int st)
{
	pthread_mutex_lock(&eng.qlock);
	pthread_mutex_lock(&eng.lock);
	eng.state = st;
	pthread_mutex_unlock(&eng.lock);
	pthread_mutex_unlock(&eng.qlock);
}

/* ---- start / stop ---------------------------------------------------------------------- */

static int first_cpu(unsigned lcore)
{
	rte_cpuset_t cs = rte_lcore_cpuset(lcore);

	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &cs))
			return c;
	return -1;
}

static void do_start(struct vio_cmd *cmd)
{
	struct vio_error *e = &cmd->err;
	char *argv[VIO_MAX_EAL_ARGS + 1];
	int argc = eng.opts.argc;

	memcpy(argv, eng.opts.argv, sizeof(char *) * argc);
	argv[argc] = NULL;
	int ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		int err = rte_errno;
		vio_fail(e, err == EALREADY ? VIO_EALREADY : VIO_EIO,
			 "rte_eal_init failed: %s (DPDK's log above names the cause)", rte_strerror(err));
		return;
	}
	unsigned lcore, n = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (n == VIO_MAX_WORKERS) {
			vio_fail(e, VIO_EINVAL, "too many worker lcores (at most %d)", VIO_MAX_WORKERS);
			goto fail_eal;
		}
		struct vio_worker *w = &eng.workers[n];
		w->lcore = lcore;
		w->idx = n;
		w->cpu = first_cpu(lcore);
		w->numa = (int)rte_lcore_to_socket_id(lcore);
		if (w->numa < 0 || w->numa >= VIO_NUMA_MAX)
			w->numa = 0;
		w->list = calloc(1, sizeof(struct vio_plist));
		n++;
	}
	if (n == 0) {
		vio_fail(e, VIO_EINVAL, "workerCpus: no EAL worker lcore (give at least one worker CPU)");
		goto fail_eal;
	}
	eng.n_workers = n;
	size_t sz = rte_rcu_qsbr_get_memsize(n);
	eng.qs = rte_zmalloc("vio_rcu", sz, RTE_CACHE_LINE_SIZE);
	if (!eng.qs || rte_rcu_qsbr_init(eng.qs, n) != 0) {
		vio_fail(e, VIO_ENOMEM, "rte_rcu_qsbr_init(%u workers) failed: out of hugepage memory", n);
		goto fail_eal;
	}
	for (unsigned i = 0; i < n; i++) {
		ret = rte_eal_remote_launch(vio_worker_main, &eng.workers[i], eng.workers[i].lcore);
		if (ret != 0) {
			vio_fail(e, VIO_EIO, "rte_eal_remote_launch(lcore %u) failed: %s",
				 eng.workers[i].lcore, rte_strerror(-ret));
			for (unsigned j = 0; j < i; j++)
				eng.workers[j].stop = 1;
			rte_eal_mp_wait_lcore();
			goto fail_eal;
		}
	}
	eng.ifr_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	pthread_mutex_lock(&eng.evlock);
	eng.ev_enabled = true;
	pthread_mutex_unlock(&eng.evlock);
	return;

fail_eal:
	rte_free(eng.qs);
	eng.qs = NULL;
	rte_eal_cleanup();
}

static void do_stop(void)
{
	for (unsigned i = 0; i < eng.n_workers; i++)
		eng.workers[i].stop = 1;
	rte_eal_mp_wait_lcore();
	vio_remove_all();
	vio_vhost_wake_fini();
	pthread_mutex_lock(&eng.lock);
	vio_pool_free_all();
	pthread_mutex_unlock(&eng.lock);
	for (unsigned i = 0; i < eng.n_workers; i++) {
		free(eng.workers[i].list);
		eng.workers[i].list = NULL;
	}
	rte_free(eng.qs);
	eng.qs = NULL;
	pthread_mutex_lock(&eng.evlock);
	eng.ev_enabled = false;
	pthread_mutex_unlock(&eng.evlock);
	if (eng.ifr_fd >= 0)
		close(eng.ifr_fd);
	eng.ifr_fd = -1;
	rte_eal_cleanup();
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define VF_POLL_MS 500

/* When the control thread next checks the VFs (vio_poll_vfs). */
static uint64_t next_poll;

static void poll_vfs(void)
{
	vio_poll_vfs();
	next_poll = now_ms() + VF_POLL_MS;
}

/* What the control thread does with one command: each handler completes it (cmd->done) and
 * says whether the thread goes on (false after a failed start or a stop: the thread ends).
 * `state` is the engine's state when the command was taken off the queue. */
typedef bool (*ctl_handler)(struct vio_cmd *cmd, int state);

static bool on_start(struct vio_cmd *cmd, int state)
{
	(void)state;
	do_start(cmd);
	if (cmd->err.code != VIO_OK) {
		set_state(ST_FAILED);
		vio_log_stop();
		cmd->done(cmd);
		drain_rejecting();
		return false;
	}
	set_state(ST_RUNNING);
	next_poll = now_ms() + VF_POLL_MS;
	cmd->done(cmd);
	return true;
}

static bool on_stop(struct vio_cmd *cmd, int state)
{
	(void)state;
	set_state(ST_STOPPING);
	do_stop();
	set_state(ST_STOPPED);
	vio_log_stop();
	drain_rejecting();
	cmd->done(cmd);
	return false;
}

static bool on_relay_cmd(struct vio_cmd *cmd, int state);

/* The dispatch table, by command type. Relay commands name the operation (relay.c) that
 * on_relay_cmd runs once it has checked that the engine is running. */
static const struct {
	ctl_handler handle;
	void (*apply)(struct vio_cmd *cmd);
} ctl_cmds[] = {
	[VIO_CMD_START] = { on_start, NULL },
	[VIO_CMD_STOP] = { on_stop, NULL },
	[VIO_CMD_ADD] = { on_relay_cmd, vio_cmd_add },
	[VIO_CMD_REMOVE] = { on_relay_cmd, vio_cmd_remove },
	[VIO_CMD_SET_CPUS] = { on_relay_cmd, vio_cmd_set_cpus },
	[VIO_CMD_DETACH_VF] = { on_relay_cmd, vio_cmd_detach_vf },
	[VIO_CMD_ATTACH_VF] = { on_relay_cmd, vio_cmd_attach_vf },
	[VIO_CMD_PREPARE_POOLS] = { on_relay_cmd, vio_cmd_prepare_pools },
};

static bool on_relay_cmd(struct vio_cmd *cmd, int state)
{
	if (state != ST_RUNNING) {
		reject(cmd, VIO_ENOTSTARTED, not_running_reason(state));
		return true;
	}
	ctl_cmds[cmd->type].apply(cmd);
	cmd->done(cmd);
	/* a steady stream of commands must not starve the VF watch */
	if (now_ms() >= next_poll)
		poll_vfs();
	return true;
}

/* Waits for a command, checking the VFs every VF_POLL_MS while the engine runs (or at once
 * when vio_wake_ctl asks); returns it with eng.qlock held. */
static struct vio_cmd *wait_cmd_locked(void)
{
	while (!eng.qhead) {
		if (eng.state != ST_RUNNING) {
			pthread_cond_wait(&eng.qcond, &eng.qlock);
			continue;
		}
		uint64_t now = now_ms();
		if (eng.poll_now || now >= next_poll) {
			eng.poll_now = false;
			pthread_mutex_unlock(&eng.qlock);
			poll_vfs();
			pthread_mutex_lock(&eng.qlock);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t wait_ns = (next_poll - now) * 1000000ULL;
		ts.tv_sec += (time_t)(wait_ns / 1000000000ULL);
		ts.tv_nsec += (long)(wait_ns % 1000000000ULL);
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&eng.qcond, &eng.qlock, &ts);
	}
	return dequeue_locked();
}

static void *ctl_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "vio-ctl");
	next_poll = 0;
	for (;;) {
		pthread_mutex_lock(&eng.qlock);
		struct vio_cmd *c = wait_cmd_locked();
		int st = eng.state;
		pthread_mutex_unlock(&eng.qlock);

		unsigned type = (unsigned)c->type;
		if (type >= sizeof(ctl_cmds) / sizeof(ctl_cmds[0]) || !ctl_cmds[type].handle) {
			reject(c, VIO_EINVAL, "unknown engine command");
			continue;
		}
		if (!ctl_cmds[type].handle(c, st))
			return NULL;
	}
}

/* ---- synchronous stop (process exit) --------------------------------------------------- */

static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static int sync_done;

static void sync_done_fn(struct vio_cmd *cmd)
{
	(void)cmd;
	pthread_mutex_lock(&sync_lock);
	sync_done = 1;
	pthread_cond_signal(&sync_cond);
	pthread_mutex_unlock(&sync_lock);
}

void vio_stop_sync(void)
{
	static struct vio_cmd cmd;

	if (!vio_running())
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = VIO_CMD_STOP;
	cmd.done = sync_done_fn;
	sync_done = 0;
	vio_submit(&cmd);
	pthread_mutex_lock(&sync_lock);
	while (!sync_done)
		pthread_cond_wait(&sync_cond, &sync_lock);
	pthread_mutex_unlock(&sync_lock);
}

/* ---- queries (any thread) -------------------------------------------------------------- */

static bool running_locked(void)
{
	return eng.state == ST_RUNNING;
}

enum vio_err vio_query_relay(int id, struct vio_relay_info *out)
{
	enum vio_err rc = VIO_OK;

	pthread_mutex_lock(&eng.lock);
	if (!running_locked())
		rc = VIO_ENOTSTARTED;
	else if (id < 0 || id >= VIO_MAX_RELAYS || !eng.relays[id] || !eng.relays[id]->ready)
		rc = VIO_ENOENT;
	else
		vio_fill_info_locked(eng.relays[id], out);
	pthread_mutex_unlock(&eng.lock);
	return rc;
}

int vio_query_ids(int *ids, int max)
{
	int n = 0;

	pthread_mutex_lock(&eng.lock);
	if (running_locked())
		for (int i = 0; i < VIO_MAX_RELAYS && n < max; i++)
			if (eng.relays[i] && eng.relays[i]->ready)
				ids[n++] = i;
	pthread_mutex_unlock(&eng.lock);
	return n;
}

static void add_ctr(struct vio_dir_counters *d, const struct vio_ctr *c)
{
	d->rx_pkts += __atomic_load_n(&c->rx_pkts, __ATOMIC_RELAXED);
	d->rx_bytes += __atomic_load_n(&c->rx_bytes, __ATOMIC_RELAXED);
	d->tx_pkts += __atomic_load_n(&c->tx_pkts, __ATOMIC_RELAXED);
	d->tx_bytes += __atomic_load_n(&c->tx_bytes, __ATOMIC_RELAXED);
	d->drop_full_pkts += __atomic_load_n(&c->drop_full_pkts, __ATOMIC_RELAXED);
	d->drop_full_bytes += __atomic_load_n(&c->drop_full_bytes, __ATOMIC_RELAXED);
	d->drop_nc_pkts += __atomic_load_n(&c->drop_nc_pkts, __ATOMIC_RELAXED);
	d->drop_nc_bytes += __atomic_load_n(&c->drop_nc_bytes, __ATOMIC_RELAXED);
}

enum vio_err vio_query_stats(int id, struct vio_relay_stats *out)
{
	enum vio_err rc = VIO_OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&eng.lock);
	if (!running_locked()) {
		rc = VIO_ENOTSTARTED;
	} else if (id < 0 || id >= VIO_MAX_RELAYS || !eng.relays[id] || !eng.relays[id]->ready) {
		rc = VIO_ENOENT;
	} else {
		const struct vio_relay *r = eng.relays[id];
		out->id = id;
		out->queues = r->nb_vqp;
		/* under eng.lock: the VF cannot be detached meanwhile (vf_detach and teardown take it
		 * away from queries first) */
		struct rte_eth_stats es;
		if (r->port_attached && rte_eth_stats_get(r->port_id, &es) == 0) {
			out->vf.valid = true;
			out->vf.ipackets = es.ipackets;
			out->vf.opackets = es.opackets;
			out->vf.ibytes = es.ibytes;
			out->vf.obytes = es.obytes;
			out->vf.imissed = es.imissed;
			out->vf.ierrors = es.ierrors;
			out->vf.oerrors = es.oerrors;
			out->vf.rx_nombuf = es.rx_nombuf;
		}
		for (int q = 0; q < r->nb_vqp; q++)
			for (int d = 0; d < 2; d++) {
				add_ctr(&out->queue[q][d], &r->ctr[q * 2 + d]);
				add_ctr(&out->total[d], &r->ctr[q * 2 + d]);
			}
	}
	pthread_mutex_unlock(&eng.lock);
	return rc;
}

int vio_query_workers(struct vio_worker_info *out, int max)
{
	int n = 0;

	pthread_mutex_lock(&eng.lock);
	if (running_locked())
		for (unsigned i = 0; i < eng.n_workers && n < max; i++, n++) {
			out[n].cpu = eng.workers[i].cpu;
			out[n].lcore = (int)eng.workers[i].lcore;
			out[n].numa = eng.workers[i].numa;
			out[n].directions = eng.workers[i].directions;
			const struct vio_wstats *st = &eng.workers[i].st;
			out[n].busy_cycles = __atomic_load_n(&st->busy_cycles, __ATOMIC_RELAXED);
			out[n].idle_cycles = __atomic_load_n(&st->idle_cycles, __ATOMIC_RELAXED);
			out[n].packets = __atomic_load_n(&st->packets, __ATOMIC_RELAXED);
			out[n].dropped = __atomic_load_n(&st->dropped, __ATOMIC_RELAXED);
			out[n].entries = __atomic_load_n(&st->entries, __ATOMIC_RELAXED);
			out[n].hot_entries = __atomic_load_n(&st->hot_entries, __ATOMIC_RELAXED);
			out[n].wakeups = __atomic_load_n(&st->wakeups, __ATOMIC_RELAXED);
		}
	pthread_mutex_unlock(&eng.lock);
	return n;
}

static int sum_memseg(const struct rte_memseg_list *msl, const struct rte_memseg *ms, void *arg)
{
	(void)msl;
	*(uint64_t *)arg += ms->len;
	return 0;
}

enum vio_err vio_query_memory(struct vio_memory_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&eng.lock);
	if (!running_locked()) {
		pthread_mutex_unlock(&eng.lock);
		return VIO_ENOTSTARTED;
	}
	for (int i = 0; i < VIO_NUMA_MAX * VIO_POOL_CHUNKS && out->n_pools < (int)RTE_DIM(out->pools); i++) {
		int n = i / VIO_POOL_CHUNKS;
		struct rte_mempool *mp = eng.pools[n][i % VIO_POOL_CHUNKS];
		if (!mp)
			continue;
		struct vio_pool_info *p = &out->pools[out->n_pools++];
		p->numa = n;
		snprintf(p->name, sizeof(p->name), "%s", mp->name);
		p->size = mp->size;
		p->in_use = rte_mempool_in_use_count(mp);
		p->bytes = (uint64_t)mp->size * (mp->header_size + mp->elt_size + mp->trailer_size);
	}
	uint64_t total = 0;
	rte_memseg_walk(sum_memseg, &total);
	out->hugepage_bytes = total;
	for (unsigned i = 0; i < rte_socket_count(); i++) {
		struct rte_malloc_socket_stats st;
		if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) != 0)
			continue;
		out->heap_allocated_bytes += st.heap_allocsz_bytes;
		out->heap_free_bytes += st.heap_freesz_bytes;
	}
	pthread_mutex_unlock(&eng.lock);
	return VIO_OK;
}

enum vio_err vio_query_settings(struct vio_settings *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&eng.lock);
	if (!running_locked()) {
		pthread_mutex_unlock(&eng.lock);
		return VIO_ENOTSTARTED;
	}
	out->mrg_rxbuf = eng.opts.mrg_rxbuf;
	out->tso = eng.opts.tso;
	out->jumbo = eng.opts.jumbo;
	out->rx_desc = eng.opts.rx_desc;
	out->tx_desc = eng.opts.tx_desc;
	out->pool_queue_pairs = eng.opts.pool_queue_pairs;
	out->idle_sweep_us = eng.opts.idle_sweep_us;
	pthread_mutex_unlock(&eng.lock);
	return VIO_OK;
}

const char *vio_dpdk_version(void)
{
	return rte_version();
}

uint64_t vio_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

int vio_max_ports(void)
{
	return RTE_MAX_ETHPORTS;
}
