/* SPDX-License-Identifier: Apache-2.0
 * The data path: one poll-mode worker per EAL worker lcore. A worker walks its published list
 * of (relay, queue, direction) entries and moves bursts of up to 32 packets:
 *   VF -> VM: rte_eth_rx_burst on the VF queue, rte_vhost_enqueue_burst into the guest rx vring
 *   VM -> VF: rte_vhost_dequeue_burst from the guest tx vring, rte_eth_tx_burst on the VF queue
 * No locks, no allocation beyond the mbufs vhost needs, no syscalls, no logging. The list is
 * replaced as a whole by the control thread (RCU: the worker reports a quiescent state after
 * every pass), so adding, removing or moving one relay never pauses the others.
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_vhost.h>

#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* An entry that came up empty IDLE_AFTER times in a row is polled only every IDLE_EVERY-th
 * pass until it delivers a packet again: with 63 idle relays the busy one keeps 93-99% of
 * its single-relay rate instead of 92-95% (bench/RESULTS.md). IDLE_AFTER passes take
 * hundreds of microseconds, so a relay that carries any traffic (even one packet in flight)
 * is never slowed down. */
#ifndef IDLE_AFTER
#define IDLE_AFTER 1024
#endif
#ifndef IDLE_EVERY /* a power of two; 1 switches the back-off off (for measurements) */
#define IDLE_EVERY 16
#endif

static inline uint64_t sum_len(struct rte_mbuf **pkts, uint16_t from, uint16_t to)
{
	uint64_t b = 0;

	for (uint16_t i = from; i < to; i++)
		b += rte_pktmbuf_pkt_len(pkts[i]);
	return b;
}

#define CTR_ADD(c, field, v) __atomic_store_n(&(c)->field, (c)->field + (v), __ATOMIC_RELAXED)

/* A flow's hash: the NIC's RSS hash when it gave one, else a CRC of the IP addresses, protocol
 * and TCP/UDP ports (one VLAN tag skipped; anything else hashes to 0, so it stays in order). */
static inline uint32_t flow_hash(const struct rte_mbuf *m)
{
	if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH)
		return m->hash.rss;
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), off = 12;

	if (len < 14)
		return 0;
	uint16_t type = (uint16_t)(p[off] << 8 | p[off + 1]);
	if (type == RTE_ETHER_TYPE_VLAN && len >= 18) {
		off += 4;
		type = (uint16_t)(p[off] << 8 | p[off + 1]);
	}
	off += 2;
	uint32_t h = 0, l4 = 0;
	uint8_t proto;
	if (type == RTE_ETHER_TYPE_IPV4 && len >= off + 20) {
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(p + off);
		proto = ip->next_proto_id;
		h = rte_hash_crc_4byte(ip->src_addr, rte_hash_crc_4byte(ip->dst_addr, proto));
		if (!(ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			l4 = off + (uint32_t)(ip->version_ihl & 0x0f) * 4;
	} else if (type == RTE_ETHER_TYPE_IPV6 && len >= off + 40) {
		const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(p + off);
		proto = ip->proto;
		h = rte_hash_crc(ip->src_addr, 32, proto); /* src_addr and dst_addr are adjacent */
		l4 = off + 40;
	} else {
		return 0;
	}
	if (l4 && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && len >= l4 + 4) {
		uint32_t ports;
		memcpy(&ports, p + l4, 4);
		h = rte_hash_crc_4byte(ports, h);
	}
	return h;
}

/* VF queue q's packets over the guest rx vrings rx_spread[q], [q + nb_queues], ... by flow
 * hash, each flow in order; returns how many the guest took, the bytes it did not in *dropped. */
static inline uint16_t spread_enqueue(int vid, const struct vio_relay *r, uint16_t q, uint8_t ns,
				      struct rte_mbuf **pkts, uint16_t n, uint64_t *dropped)
{
	uint16_t nbq = r->nb_queues;
	uint32_t ways = (uint32_t)(ns - q + nbq - 1) / nbq; /* 1..32 */
	uint8_t way[VIO_BURST];
	uint64_t used = 0;
	uint16_t sent = 0;

	for (uint16_t i = 0; i < n; i++) {
		way[i] = (uint8_t)(flow_hash(pkts[i]) % ways);
		used |= 1ULL << way[i];
	}
	while (used) {
		unsigned k = (unsigned)__builtin_ctzll(used);
		struct rte_mbuf *sub[VIO_BURST];
		uint16_t m = 0;

		used &= used - 1;
		for (uint16_t i = 0; i < n; i++)
			if (way[i] == k)
				sub[m++] = pkts[i];
		uint8_t vring = __atomic_load_n(&r->rx_spread[q + k * nbq], __ATOMIC_RELAXED);
		uint16_t s = rte_vhost_enqueue_burst(vid, vring, sub, m);
		sent += s;
		if (s != m)
			*dropped += sum_len(sub, s, m);
	}
	return sent;
}

static inline uint16_t vf_to_vm(const struct vio_entry *e, uint32_t *drops)
{
	struct rte_mbuf *pkts[VIO_BURST];

	if (unlikely(!e->has_vf)) /* VF detached: nothing to receive */
		return 0;
	uint16_t n = rte_eth_rx_burst(e->port, e->q, pkts, VIO_BURST);

	if (n == 0)
		return 0;
	struct vio_relay *r = e->r;
	struct vio_ctr *c = e->ctr;
	int vid = __atomic_load_n(&r->vid, __ATOMIC_ACQUIRE);
	uint8_t vring = __atomic_load_n(&r->rx_vring[e->q], __ATOMIC_RELAXED);
	uint64_t bytes = sum_len(pkts, 0, n);
	uint16_t sent = 0;

	CTR_ADD(c, rx_pkts, n);
	CTR_ADD(c, rx_bytes, bytes);
	if (likely(vid >= 0 && vring != VIO_NO_VRING)) {
		/* vhost copies into guest buffers: every mbuf goes back to the pool below */
		uint8_t ns = __atomic_load_n(&r->n_spread, __ATOMIC_ACQUIRE);
		uint64_t dropped = 0;
		if (ns > r->nb_queues) {
			sent = spread_enqueue(vid, r, e->q, ns, pkts, n, &dropped);
		} else {
			sent = rte_vhost_enqueue_burst(vid, vring, pkts, n);
			if (sent != n)
				dropped = sum_len(pkts, sent, n);
		}
		if (likely(sent == n)) {
			CTR_ADD(c, tx_pkts, n);
			CTR_ADD(c, tx_bytes, bytes);
		} else {
			CTR_ADD(c, tx_pkts, sent);
			CTR_ADD(c, tx_bytes, bytes - dropped);
			CTR_ADD(c, drop_full_pkts, n - sent);
			CTR_ADD(c, drop_full_bytes, dropped);
			*drops += n - sent;
		}
	} else {
		CTR_ADD(c, drop_nc_pkts, n);
		CTR_ADD(c, drop_nc_bytes, bytes);
		*drops += n;
	}
	rte_pktmbuf_free_bulk(pkts, n);
	return n;
}

static inline uint16_t vm_to_vf(const struct vio_entry *e, uint32_t *drops)
{
	struct vio_relay *r = e->r;
	int vid = __atomic_load_n(&r->vid, __ATOMIC_ACQUIRE);

	/* a vring the guest has not enabled (fewer queue pairs in use than the relay has) is not
	 * polled: rte_vhost would return nothing, or log an error for a vring it does not know */
	if (vid < 0 || !(__atomic_load_n(&r->vring_enabled, __ATOMIC_RELAXED) & (1ULL << e->txvring)))
		return 0;
	struct rte_mbuf *pkts[VIO_BURST];
	uint16_t n = rte_vhost_dequeue_burst(vid, e->txvring, r->mp, pkts, VIO_BURST);

	if (n == 0)
		return 0;
	struct vio_ctr *c = e->ctr;
	/* count before tx: once sent, the mbufs belong to the VF driver */
	uint64_t bytes = sum_len(pkts, 0, n);

	CTR_ADD(c, rx_pkts, n);
	CTR_ADD(c, rx_bytes, bytes);
	/* no VF (detached after it was lost) or its link down: the guest's packets are dropped,
	 * so that its tx ring keeps moving */
	if (unlikely(!e->has_vf || !__atomic_load_n(&r->link_up, __ATOMIC_RELAXED))) {
		CTR_ADD(c, drop_nc_pkts, n);
		CTR_ADD(c, drop_nc_bytes, bytes);
		*drops += n;
		rte_pktmbuf_free_bulk(pkts, n);
		return n;
	}
	uint16_t sent = rte_eth_tx_burst(e->port, e->q, pkts, n);
	if (likely(sent == n)) {
		CTR_ADD(c, tx_pkts, n);
		CTR_ADD(c, tx_bytes, bytes);
	} else {
		uint64_t dropped = sum_len(pkts, sent, n);
		CTR_ADD(c, tx_pkts, sent);
		CTR_ADD(c, tx_bytes, bytes - dropped);
		CTR_ADD(c, drop_full_pkts, n - sent);
		CTR_ADD(c, drop_full_bytes, dropped);
		*drops += n - sent;
		rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
	}
	return n;
}

/* Load accounting (as OVS-DPDK's pmd-stats-show): one TSC read per pass, its cycles counted as
 * busy when the pass moved a packet and as idle when it found none. The totals live in locals and
 * are stored to the worker's own cache line once per pass, never per packet. */
#define WST_SET(w, field, v) __atomic_store_n(&(w)->st.field, (v), __ATOMIC_RELAXED)

int vio_worker_main(void *arg)
{
	struct vio_worker *w = arg;
	struct rte_rcu_qsbr *qs = eng.qs;
	uint32_t pass = 0;
	uint64_t busy = w->st.busy_cycles, idle = w->st.idle_cycles;
	uint64_t packets = w->st.packets, dropped = w->st.dropped;
	uint64_t t = rte_rdtsc();

	rte_rcu_qsbr_thread_register(qs, w->idx);
	rte_rcu_qsbr_thread_online(qs, w->idx);
	while (likely(!w->stop)) {
		struct vio_plist *l = __atomic_load_n(&w->list, __ATOMIC_ACQUIRE);
		struct vio_entry *e = l->e;
		struct vio_entry *end = e + l->n;
		uint32_t moved = 0, drops = 0;

		for (; e < end; e++) {
			if (e->idle >= IDLE_AFTER && ((pass + e->slot) & (IDLE_EVERY - 1)) != 0)
				continue;
			uint16_t n = e->dir == VIO_DIR_VF_TO_VM ? vf_to_vm(e, &drops) : vm_to_vf(e, &drops);
			if (n)
				e->idle = 0;
			else if (e->idle < IDLE_AFTER)
				e->idle++;
			moved += n;
		}
		pass++;
		uint64_t now = rte_rdtsc();
		if (moved) {
			busy += now - t;
			packets += moved;
			dropped += drops;
			WST_SET(w, busy_cycles, busy);
			WST_SET(w, packets, packets);
			WST_SET(w, dropped, dropped);
		} else {
			idle += now - t;
			WST_SET(w, idle_cycles, idle);
		}
		t = now;
		rte_rcu_qsbr_quiescent(qs, w->idx);
	}
	rte_rcu_qsbr_thread_offline(qs, w->idx);
	rte_rcu_qsbr_thread_unregister(qs, w->idx);
	return 0;
}

/* Wait until every worker has finished the pass it was in: afterwards no worker holds a
 * pointer to a list, relay or vhost device that was unpublished before the call. A pass takes
 * microseconds, so it spins for up to 1 ms first (destroy_device waits here while QEMU waits
 * for its reply, during a live migration's downtime), then sleeps between checks, so that it
 * also works when a worker shares the caller's CPU. */
void vio_rcu_wait(void)
{
	if (!eng.qs)
		return;
	uint64_t t = rte_rcu_qsbr_start(eng.qs);
	uint64_t spin_until = rte_get_timer_cycles() + rte_get_timer_hz() / 1000; /* 1 ms */
	while (!rte_rcu_qsbr_check(eng.qs, t, false)) {
		if (rte_get_timer_cycles() < spin_until)
			rte_pause();
		else
			usleep(20);
	}
}
