/* SPDX-License-Identifier: Apache-2.0
 * mbuf pools per NUMA node, shared by the relays whose memory lives on that node. The first is
 * created with the first relay on the node, the next when the relays' queue pairs outgrow it;
 * they live until the engine stops, so adding and removing relays costs no hugepage memory. Its size follows from the rings:
 *
 *   mbufs = Q x (RXD + TXD + 2 x BURST) + L x 1.5 x CACHE
 *
 *   Q      queue pairs the pool is sized for (EngineOptions.poolQueuePairs, default 256)
 *   RXD    VF rx descriptors per queue: each holds one mbuf at all times (default 256)
 *   TXD    VF tx descriptors per queue: each may hold a sent mbuf until the VF frees it (256)
 *   BURST  32: at most one burst per direction is in a worker's hands
 *   L      lcores that allocate or free mbufs (workers + main), CACHE = 256 per-lcore cache,
 *          which may grow to 1.5 x CACHE before it flushes
 *
 * The vhost side holds no mbufs: vhost copies into guest buffers on enqueue, and allocates
 * on dequeue only what the worker then hands to the VF. A relay with N queue pairs reserves
 * N of the Q pairs, so a full pool is never starved by one more relay: when the node's relays
 * outgrow it, the node gets one more pool of the same size (up to VIO_POOL_CHUNKS), and a relay
 * fails with ENOMEM only when the hugepages for that pool are not there.
 * With the defaults: 256 x 576 + 2 x 384 = 148,224 mbufs of 2,368 bytes = 335 MiB per pool.
 */
#include <stdio.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "internal.h"

#define VIO_POOL_CACHE 256

uint32_t vio_pool_size(unsigned n_lcores)
{
	uint64_t per_qp = (uint64_t)eng.opts.rx_desc + eng.opts.tx_desc + 2 * VIO_BURST;
	uint64_t n = (uint64_t)eng.opts.pool_queue_pairs * per_qp + n_lcores * (VIO_POOL_CACHE * 3 / 2);

	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static uint16_t data_room(void);

/* bytes of one mbuf in the pool: data room, mbuf header and the mempool's object header */
static uint32_t mp_elt_bytes(void)
{
	return (uint32_t)(data_room() + sizeof(struct rte_mbuf) + 64);
}

static uint16_t data_room(void)
{
	/* jumbo: one mbuf holds a whole 9216-byte frame; otherwise 2048 + headroom (frames
	 * above that are chained by vhost and scattered by the VF) */
	return eng.opts.jumbo ? (uint16_t)(9216 + RTE_PKTMBUF_HEADROOM) : RTE_MBUF_DEFAULT_BUF_SIZE;
}

static struct rte_mempool *pool_create(int numa, int chunk, struct vio_error *e)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	uint32_t n = vio_pool_size(rte_lcore_count());

	snprintf(name, sizeof(name), "vio_mbuf_%d_%d", numa, chunk);
	struct rte_mempool *mp = rte_pktmbuf_pool_create(name, n, VIO_POOL_CACHE, 0, data_room(), numa);
	if (!mp) {
		vio_fail(e, VIO_ENOMEM, "rte_pktmbuf_pool_create(%s, %u mbufs of %u bytes, NUMA node %d) "
			 "failed: %s; reserve more hugepages (each pool of poolQueuePairs %u queue pairs "
			 "needs %u MiB) or run fewer relays on this node", name, n, (unsigned)data_room(), numa,
			 rte_strerror(rte_errno), eng.opts.pool_queue_pairs,
			 (unsigned)(((uint64_t)n * (mp_elt_bytes()) + (1 << 20) - 1) >> 20));
		return NULL;
	}
	pthread_mutex_lock(&eng.lock);
	eng.pools[numa][chunk] = mp;
	pthread_mutex_unlock(&eng.lock);
	return mp;
}

int vio_pool_reserve(struct vio_relay *r, struct vio_error *e)
{
	uint32_t cap = eng.opts.pool_queue_pairs;
	uint32_t need = r->nb_queues;
	int numa = r->numa;

	if (need > cap)
		return vio_fail(e, VIO_ENOMEM, "relay %d: needs %u queue pairs and a mbuf pool is sized "
				"for %u (poolQueuePairs); raise poolQueuePairs to at least %u", r->id, need,
				cap, need);
	/* first fit among the node's pools, so that relays fill the pools already made */
	for (int c = 0; c < VIO_POOL_CHUNKS; c++) {
		if (!eng.pools[numa][c] && !pool_create(numa, c, e))
			return -1;
		if (eng.pool_qp_used[numa][c] + need > cap)
			continue;
		eng.pool_qp_used[numa][c] += need;
		r->mp = eng.pools[numa][c];
		r->pool_chunk = c;
		return 0;
	}
	return vio_fail(e, VIO_ENOMEM, "relay %d: the %d mbuf pools of NUMA node %d (poolQueuePairs "
			"%u each) are full; raise poolQueuePairs", r->id, VIO_POOL_CHUNKS, numa, cap);
}

/* Creates now the pools that relays of `queue_pairs` queue pairs on `numa` will need, so that
 * adding them later costs no pool creation (a few hundred ms for the default pool): a new agent
 * does it before it takes relays over from an old one (docs/upgrade.md). */
void vio_cmd_prepare_pools(struct vio_cmd *cmd)
{
	int numa = cmd->u.pools.numa;
	uint32_t cap = eng.opts.pool_queue_pairs;
	uint32_t need = cmd->u.pools.queue_pairs > 0 ? (uint32_t)cmd->u.pools.queue_pairs : 1;
	uint32_t room = 0;

	if (numa < 0 || numa >= VIO_NUMA_MAX) {
		vio_fail(&cmd->err, VIO_EINVAL, "numaNode: %d is out of range 0..%d", numa, VIO_NUMA_MAX - 1);
		return;
	}
	for (int c = 0; c < VIO_POOL_CHUNKS && room < need; c++) {
		if (!eng.pools[numa][c] && !pool_create(numa, c, &cmd->err))
			return;
		room += cap - eng.pool_qp_used[numa][c];
	}
}

void vio_pool_release(struct vio_relay *r)
{
	if (!r->mp)
		return;
	eng.pool_qp_used[r->numa][r->pool_chunk] -= r->nb_queues;
	r->mp = NULL;
}

/* at stop, with eng.lock held and no relay left */
void vio_pool_free_all(void)
{
	for (int n = 0; n < VIO_NUMA_MAX; n++)
		for (int c = 0; c < VIO_POOL_CHUNKS; c++) {
			rte_mempool_free(eng.pools[n][c]);
			eng.pools[n][c] = NULL;
			eng.pool_qp_used[n][c] = 0;
		}
}
