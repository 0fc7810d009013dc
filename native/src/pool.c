/* SPDX-License-Identifier: Apache-2.0
 * One mbuf pool per NUMA node, shared by every relay whose memory lives on that node. It is
 * created with the first relay on the node, never grows and lives until the engine stops, so
 * adding and removing relays costs no hugepage memory. Its size follows from the rings:
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
 * N of the Q pairs; adding one beyond Q fails with ENOMEM rather than starving the others.
 * With the defaults: 256 x 576 + 2 x 384 = 148,224 mbufs of 2,368 bytes = 335 MiB per node.
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

static uint16_t data_room(void)
{
	/* jumbo: one mbuf holds a whole 9216-byte frame; otherwise 2048 + headroom (frames
	 * above that are chained by vhost and scattered by the VF) */
	return eng.opts.jumbo ? (uint16_t)(9216 + RTE_PKTMBUF_HEADROOM) : RTE_MBUF_DEFAULT_BUF_SIZE;
}

struct rte_mempool *vio_pool_get(int numa, struct vio_error *e)
{
	if (eng.pools[numa])
		return eng.pools[numa];
	char name[RTE_MEMPOOL_NAMESIZE];
	uint32_t n = vio_pool_size(rte_lcore_count());

	snprintf(name, sizeof(name), "vio_mbuf_%d", numa);
	struct rte_mempool *mp = rte_pktmbuf_pool_create(name, n, VIO_POOL_CACHE, 0, data_room(), numa);
	if (!mp) {
		vio_fail(e, VIO_ENOMEM, "rte_pktmbuf_pool_create(%s, %u mbufs of %u bytes, NUMA node %d) "
			 "failed: %s; reserve more hugepages or lower poolQueuePairs (%u)", name, n,
			 (unsigned)data_room(), numa, rte_strerror(rte_errno), eng.opts.pool_queue_pairs);
		return NULL;
	}
	pthread_mutex_lock(&eng.lock);
	eng.pools[numa] = mp;
	pthread_mutex_unlock(&eng.lock);
	return mp;
}

int vio_pool_reserve(int numa, int queues, int relay_id, struct vio_error *e)
{
	uint32_t cap = eng.opts.pool_queue_pairs;

	if (eng.pool_qp_used[numa] + (uint32_t)queues > cap)
		return vio_fail(e, VIO_ENOMEM, "relay %d: the mbuf pool of NUMA node %d is sized for %u "
				"queue pairs and %u are in use, the relay needs %d more; raise "
				"poolQueuePairs", relay_id, numa, cap, eng.pool_qp_used[numa], queues);
	eng.pool_qp_used[numa] += queues;
	return 0;
}

void vio_pool_release(int numa, int queues)
{
	eng.pool_qp_used[numa] -= queues;
}

/* at stop, with eng.lock held and no relay left */
void vio_pool_free_all(void)
{
	for (int n = 0; n < VIO_NUMA_MAX; n++) {
		rte_mempool_free(eng.pools[n]);
		eng.pools[n] = NULL;
		eng.pool_qp_used[n] = 0;
	}
}
