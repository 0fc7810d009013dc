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

/* Idle relays cost (nearly) nothing. A worker keeps its entries in two sets:
 *  - hot: polled on every pass. An entry joins on its first packet and leaves when it has had
 *    none for IDLE_AFTER_US, so any relay that carries traffic (more than a packet a
 *    millisecond) is polled as before;
 *  - cold: visited by a sweep that walks the whole list once per IDLE_SWEEP_US, a share of it
 *    on each pass (more when the pass found no work, so an idle worker sweeps at once).
 * A pass therefore costs the hot entries plus about n * pass_time / IDLE_SWEEP_US visits,
 * whatever the number of idle relays, and a cold entry is polled at most IDLE_SWEEP_US (plus
 * one pass) after its previous poll: that is the worst latency a waking relay's first packet
 * gets added, and the VF rx ring must hold what arrives meanwhile (rxDescriptors / rate: 256
 * descriptors last 256 us at 1 Mpps, 17 us at 10GbE's 14.88 Mpps; bench/RESULTS.md M).
 * IDLE_SWEEP_US is the engine option idleSweepMicros (eng.opts.idle_sweep_us, default 100).
 * Time is the TSC >> VIO_TICK_SHIFT (about 0.4 us at 2.5 GHz) in 32 bits: it wraps after half an
 * hour, and only differences of recent ticks are compared.
 * A VM->VF entry whose relay has no guest, or whose tx vring the guest has not enabled, has
 * nothing to poll: the sweep parks it, and the worker unparks all on the next vhost event
 * (vio_wake.gen). idleSweepMicros 0 switches it all off: every entry is polled every pass. */
#ifndef IDLE_AFTER_US
#define IDLE_AFTER_US 1000
#endif
#define SWEEP_MIN 16u /* cold visits in a pass whose hot entries moved nothing */

struct vio_wake vio_wake;

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

static inline uint16_t poll_entry(const struct vio_entry *e, uint32_t *drops)
{
	return e->dir == VIO_DIR_VF_TO_VM ? vf_to_vm(e, drops) : vm_to_vf(e, drops);
}

/* VM->VF with nothing to dequeue until a vhost callback changes the relay (it bumps
 * vio_wake.gen afterwards) */
static inline bool vm_side_absent(const struct vio_entry *e)
{
	const struct vio_relay *r = e->r;

	return __atomic_load_n(&r->vid, __ATOMIC_ACQUIRE) < 0 ||
	       !(__atomic_load_n(&r->vring_enabled, __ATOMIC_RELAXED) & (1ULL << e->txvring));
}

static void unpark_all(struct vio_plist *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		l->e[i].parked = 0;
}

/* Load accounting (as OVS-DPDK's pmd-stats-show): one TSC read per pass, its cycles counted as
 * busy when the pass moved a packet and as idle when it found none. The totals live in locals and
 * are stored to the worker's own cache line once per pass, never per packet. */
#define WST_SET(w, field, v) __atomic_store_n(&(w)->st.field, (v), __ATOMIC_RELAXED)

/* credit for sweep visits, in 1/65536 of a visit */
#define CREDIT_SHIFT 16

int vio_worker_main(void *arg)
{
	struct vio_worker *w = arg;
	struct rte_rcu_qsbr *qs = eng.qs;
	uint64_t busy = w->st.busy_cycles, idle = w->st.idle_cycles;
	uint64_t packets = w->st.packets, dropped = w->st.dropped, wakeups = w->st.wakeups;
	uint64_t t = rte_rdtsc();
	/* TSC cycles of one sweep of the whole list; 0 = no back-off */
	const uint64_t sweep = rte_get_tsc_hz() / 1000000 * eng.opts.idle_sweep_us;
	uint64_t credit = 0;
	struct vio_plist *cur_list = NULL;
	uint32_t nh = 0, cursor = 0;
	uint32_t seen_gen = __atomic_load_n(&vio_wake.gen, __ATOMIC_ACQUIRE);
	const uint32_t idle_after = (uint32_t)((rte_get_tsc_hz() / 1000000 * IDLE_AFTER_US) >> VIO_TICK_SHIFT);

	rte_rcu_qsbr_thread_register(qs, w->idx);
	rte_rcu_qsbr_thread_online(qs, w->idx);
	while (likely(!w->stop)) {
		struct vio_plist *l = __atomic_load_n(&w->list, __ATOMIC_ACQUIRE);
		uint32_t gen = __atomic_load_n(&vio_wake.gen, __ATOMIC_ACQUIRE);
		uint32_t moved = 0, drops = 0;
		const uint32_t tick = (uint32_t)(t >> VIO_TICK_SHIFT); /* this pass's start */

		if (unlikely(l != cur_list)) {
			cur_list = l;
			nh = sweep ? l->n_hot : 0;
			cursor = 0;
			WST_SET(w, entries, l->n);
		}
		if (unlikely(gen != seen_gen)) {
			seen_gen = gen;
			unpark_all(l);
		}
		if (unlikely(!sweep)) {
			for (uint32_t i = 0; i < l->n; i++)
				moved += poll_entry(&l->e[i], &drops);
			goto pass_done;
		}
		/* hot entries; one that stayed empty too long goes cold (the last hot one takes its
		 * place, and is polled next) */
		for (uint32_t i = 0; i < nh;) {
			struct vio_entry *e = &l->e[l->hot[i]];
			uint16_t n = poll_entry(e, &drops);

			moved += n;
			if (n) {
				e->seen = tick;
				i++;
			} else if (tick - e->seen <= idle_after) {
				i++;
			} else {
				e->hot = 0;
				l->hot[i] = l->hot[--nh];
			}
		}
		/* the sweep: this pass's share of the list, in order */
		uint32_t visits = (uint32_t)RTE_MIN(credit >> CREDIT_SHIFT, (uint64_t)l->n);
		credit -= (uint64_t)visits << CREDIT_SHIFT;
		if (!moved && visits < SWEEP_MIN)
			visits = RTE_MIN(SWEEP_MIN, l->n);
		for (; visits; visits--) {
			uint32_t k = cursor;
			struct vio_entry *e = &l->e[k];

			if (++cursor == l->n)
				cursor = 0;
			if (e->hot | e->parked)
				continue;
			if (e->dir == VIO_DIR_VM_TO_VF && vm_side_absent(e)) {
				e->parked = 1;
				continue;
			}
			uint16_t n = poll_entry(e, &drops);
			if (n) {
				moved += n;
				e->hot = 1;
				e->seen = tick;
				l->hot[nh++] = k;
				WST_SET(w, wakeups, ++wakeups);
			}
		}
pass_done:;
		uint64_t now = rte_rdtsc();
		if (sweep) {
			/* beyond one sweep's time the whole list is due anyway */
			credit += (RTE_MIN(now - t, sweep) * l->n << CREDIT_SHIFT) / sweep;
			credit = RTE_MIN(credit, (uint64_t)l->n << CREDIT_SHIFT);
			l->n_hot = nh;
			WST_SET(w, hot_entries, nh);
		} else {
			WST_SET(w, hot_entries, l->n);
		}
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
