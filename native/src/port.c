/* SPDX-License-Identifier: Apache-2.0
 * VF ports: attach (hot-plug probe of a PCI address or any devargs string, or a bond of PCI
 * VFs), configure one rx/tx queue pair per relay queue, start, watch the link, detach.
 *
 * Watching: a VF with a link-state interrupt reports link changes through lsc_event, one with
 * a removal interrupt its removal. Not every driver keeps its promise (net_tap announces LSC
 * but never raises it, net_af_packet's link is always up), so the control thread also checks
 * every attached VF twice a second (vio_port_check): the port's link, and for a virtual stand-in
 * backed by a kernel interface (net_tap, net_af_packet: "iface=" in its devargs) that interface:
 * gone, or replaced by a new one of the same name (new ifindex) = the VF is lost; its
 * IFF_UP|IFF_RUNNING = link.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_eth_bond.h>
#include <rte_ethdev.h>
#include <rte_version.h>

#include "internal.h"

/* DPDK 23.11 renamed the bonding API's "slave" to "member" and dropped the old names */
#if RTE_VERSION >= RTE_VERSION_NUM(23, 11, 0, 0)
#define vio_bond_member_add rte_eth_bond_member_add
#define VIO_BOND_MEMBER_ADD "rte_eth_bond_member_add"
#else
#define vio_bond_member_add rte_eth_bond_slave_add
#define VIO_BOND_MEMBER_ADD "rte_eth_bond_slave_add"
#endif

static int find_port(const char *name, uint16_t *port)
{
	if (rte_eth_dev_get_port_by_name(name, port) == 0)
		return 0;
	/* drivers may name ports differently from their device (e.g. several ports per PCI
	 * function): take the first port of the device */
	uint16_t p;
	RTE_ETH_FOREACH_DEV(p) {
		struct rte_eth_dev_info di;
		if (rte_eth_dev_info_get(p, &di) == 0 && di.device &&
		    strcmp(rte_dev_name(di.device), name) == 0) {
			*port = p;
			return 0;
		}
	}
	return -1;
}

/* Probe one device given by devargs ("0000:03:00.1" or "net_tap0,iface=x"); its port id. */
static int probe(int relay, const char *devargs, uint16_t *port, struct vio_error *e)
{
	struct rte_devargs da;
	char name[RTE_DEV_NAME_MAX_LEN];

	memset(&da, 0, sizeof(da));
	if (rte_devargs_parse(&da, devargs) != 0)
		return vio_fail(e, VIO_EINVAL, "relay %d: vf: no DPDK bus or driver takes \"%s\" (expected a "
				"PCI address, or \"driver_name,key=value,...\" with a known driver such as "
				"net_tap, net_af_packet, net_vhost, net_memif)", relay, devargs);
	snprintf(name, sizeof(name), "%s", da.name);
	rte_devargs_reset(&da);
	if (find_port(name, port) == 0)
		return vio_fail(e, VIO_EEXIST, "relay %d: vf: device %s is already attached (port %u)",
				relay, name, *port);
	if (rte_eth_dev_count_total() >= RTE_MAX_ETHPORTS)
		return vio_fail(e, VIO_ENOMEM, "relay %d: vf: cannot attach %s: all %d ethdev ports of "
				"this DPDK build are in use (RTE_MAX_ETHPORTS; Debian's DPDK has 32, "
				"a DPDK built with -Dmax_ethports=1024 allows more relays)", relay, name,
				RTE_MAX_ETHPORTS);
	int ret = rte_dev_probe(devargs);
	if (ret < 0) {
		if (ret == -EEXIST)
			return vio_fail(e, VIO_EEXIST, "relay %d: vf: rte_dev_probe(\"%s\"): device "
					"already in use", relay, devargs);
		return vio_fail(e, VIO_ENODEV, "relay %d: vf: rte_dev_probe(\"%s\") failed: %s (is the "
				"address right, the device bound to vfio-pci, the driver name known?)",
				relay, devargs, rte_strerror(-ret));
	}
	if (find_port(name, port) != 0)
		return vio_fail(e, VIO_ENODEV, "relay %d: vf: device %s was probed but has no ethernet "
				"port", relay, name);
	return 0;
}

/* The value of "iface=" in a devargs string ("net_af_packet0,iface=vf0,qpairs=2"), if any. */
static void iface_of_devargs(const char *devargs, char *out, size_t len)
{
	const char *p = strchr(devargs, ',');

	while (p) {
		p++;
		if (strncmp(p, "iface=", 6) == 0) {
			size_t n = strcspn(p + 6, ",");
			if (n > 0 && n < len) {
				memcpy(out, p + 6, n);
				out[n] = '\0';
			}
			return;
		}
		p = strchr(p, ',');
	}
}

static void remove_device_of(uint16_t port)
{
	struct rte_eth_dev_info di;
	struct rte_device *dev = NULL;

	if (rte_eth_dev_info_get(port, &di) == 0)
		dev = di.device;
	rte_eth_dev_stop(port);
	rte_eth_dev_close(port);
	if (dev) {
		/* remove the device only when none of its ports is left */
		uint16_t p;
		bool others = false;
		RTE_ETH_FOREACH_DEV_OF(p, dev)
			others = true;
		if (!others)
			rte_dev_remove(dev);
	}
}

int vio_port_attach(struct vio_relay *r, const struct vio_relay_cfg *c, struct vio_error *e)
{
	uint16_t port;

	__atomic_store_n(&r->vf_removed, false, __ATOMIC_RELAXED);

	if (c->n_pci <= 1) {
		const char *what = c->n_pci == 1 ? c->pci[0] : c->devargs;
		if (probe(r->id, what, &port, e) != 0)
			return -1;
	} else {
		for (int i = 0; i < c->n_pci; i++) {
			if (probe(r->id, c->pci[i], &r->members[i], e) != 0)
				goto undo_members;
			r->n_members = i + 1;
		}
		if (c->bond_name[0])
			snprintf(r->bond_name, sizeof(r->bond_name), "%s", c->bond_name);
		else
			snprintf(r->bond_name, sizeof(r->bond_name), "net_bonding_vio%d", r->id);
		int sock = rte_eth_dev_socket_id(r->members[0]);
		int ret = rte_eth_bond_create(r->bond_name, (uint8_t)c->bond_mode,
					      (uint8_t)(sock < 0 ? 0 : sock));
		if (ret < 0) {
			vio_fail(e, vio_err_of_errno(-ret) == VIO_EEXIST ? VIO_EEXIST : VIO_EIO,
				 "relay %d: vf: rte_eth_bond_create(%s, mode %d) failed: %s", r->id,
				 r->bond_name, c->bond_mode, rte_strerror(-ret));
			goto undo_members;
		}
		port = (uint16_t)ret;
		r->bonded = true;
		for (int i = 0; i < r->n_members; i++) {
			ret = vio_bond_member_add(port, r->members[i]);
			if (ret != 0) {
				vio_fail(e, VIO_EIO, "relay %d: vf: " VIO_BOND_MEMBER_ADD "(%s, %s) failed: %s",
					 r->id, r->bond_name, c->pci[i], rte_strerror(-ret));
				rte_eth_bond_free(r->bond_name);
				r->bonded = false;
				goto undo_members;
			}
		}
	}
	r->port_id = port;
	rte_eth_dev_get_name_by_port(port, r->port_name);
	rte_eth_macaddr_get(port, &r->mac);
	r->ifname[0] = '\0';
	r->ifindex = 0;
	if (c->n_pci == 0)
		iface_of_devargs(c->devargs, r->ifname, sizeof(r->ifname));
	return 0;

undo_members:
	for (int i = 0; i < r->n_members; i++)
		remove_device_of(r->members[i]);
	r->n_members = 0;
	return -1;
}

static int lsc_event(uint16_t port, enum rte_eth_event_type type, void *arg, void *ret_param)
{
	int id = (int)(intptr_t)arg;
	struct rte_eth_link link;
	int up = -1;
	(void)ret_param;

	if (type == RTE_ETH_EVENT_INTR_LSC) {
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(port, &link) == 0)
			up = link.link_status == RTE_ETH_LINK_UP;
	}
	pthread_mutex_lock(&eng.lock);
	struct vio_relay *r = eng.relays[id];
	bool ours = r && r->port_attached && r->port_id == port;
	bool changed = false;
	if (ours && type == RTE_ETH_EVENT_INTR_LSC && up >= 0 && up != r->link_up) {
		__atomic_store_n(&r->link_up, (uint8_t)up, __ATOMIC_RELAXED);
		changed = true;
	} else if (ours && type == RTE_ETH_EVENT_INTR_RMV) {
		/* the control thread detaches it (not allowed from this interrupt thread) and
		 * reports VIO_EV_VF_REMOVED */
		__atomic_store_n(&r->vf_removed, true, __ATOMIC_RELEASE);
		__atomic_store_n(&r->link_up, 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&eng.lock);
	if (changed)
		vio_emit(VIO_EV_LINK, id, 0, up);
	else if (ours && type == RTE_ETH_EVENT_INTR_RMV)
		vio_wake_ctl();
	return 0;
}

/* The VF's MTU and the frame size it implies, checked against what the VF takes. */
static int conf_mtu(struct vio_relay *r, const struct rte_eth_dev_info *di,
		    struct rte_eth_conf *conf, struct vio_error *e)
{
	uint32_t room = rte_pktmbuf_data_room_size(r->mp) - RTE_PKTMBUF_HEADROOM;

	if (r->mtu <= 0)
		return 0;
	if ((uint32_t)r->mtu > di->max_mtu || (uint32_t)r->mtu < di->min_mtu)
		return vio_fail(e, VIO_EINVAL, "relay %d: mtu %d: VF %s accepts %u..%u", r->id,
				r->mtu, r->port_name, di->min_mtu, di->max_mtu);
	/* the frame limit, with ethdev's own overhead rule (rte_eth_dev_configure checks it
	 * with a bare EINVAL) */
	uint32_t overhead = di->max_mtu != UINT16_MAX && di->max_rx_pktlen > di->max_mtu ?
				    di->max_rx_pktlen - di->max_mtu :
				    RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
	if ((uint32_t)r->mtu + overhead > di->max_rx_pktlen)
		return vio_fail(e, VIO_EINVAL, "relay %d: mtu %d: VF %s takes frames of at most "
				"%u bytes (MTU %u)", r->id, r->mtu, r->port_name,
				di->max_rx_pktlen, di->max_rx_pktlen - overhead);
	conf->rxmode.mtu = (uint32_t)r->mtu;
	if ((uint32_t)r->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8 > room &&
	    (di->rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER))
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	return 0;
}

/* Multi-segment sends always, TSO and checksums when the relay asks and the VF offers. */
static void conf_tx_offloads(struct vio_relay *r, const struct rte_eth_dev_info *di,
			     struct rte_eth_conf *conf)
{
	conf->txmode.offloads |= di->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (!r->tso)
		return;
	conf->txmode.offloads |= di->tx_offload_capa &
		(RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
		 RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
	/* virtual VF stand-ins (net_vhost, net_tap) pass offload requests on without
	 * announcing them, so this is a warning, not an error */
	if (!(di->tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_TSO))
		RTE_LOG(WARNING, USER1, "vio4wd: relay %d: tso is on but VF %s announces no TCP "
			"segmentation offload; the guest's large TCP segments may be dropped\n",
			r->id, r->port_name);
}

/* The port's configuration from what the relay asks and what the VF offers: queues (RSS over
 * more than one), MTU, tx offloads, link and removal interrupts. */
static int port_conf(struct vio_relay *r, const struct rte_eth_dev_info *di,
		     struct rte_eth_conf *conf, struct vio_error *e)
{
	uint16_t q = r->nb_queues;

	if (di->max_rx_queues < q || di->max_tx_queues < q)
		return vio_fail(e, VIO_EINVAL, "relay %d: queues: VF %s supports %u rx / %u tx queues, "
				"the relay asks for %u", r->id, r->port_name, di->max_rx_queues,
				di->max_tx_queues, q);
	memset(conf, 0, sizeof(*conf));
	if (q > 1 && di->flow_type_rss_offloads) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf =
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & di->flow_type_rss_offloads;
	}
	if (conf_mtu(r, di, conf, e) != 0)
		return -1;
	conf_tx_offloads(r, di, conf);
	conf->intr_conf.lsc = di->dev_flags && (*di->dev_flags & RTE_ETH_DEV_INTR_LSC);
	conf->intr_conf.rmv = di->dev_flags && (*di->dev_flags & RTE_ETH_DEV_INTR_RMV);
	return 0;
}

static enum vio_err nomem_or_io(int ret)
{
	return vio_err_of_errno(-ret) == VIO_ENOMEM ? VIO_ENOMEM : VIO_EIO;
}

/* One rx and one tx queue per queue pair, with the descriptor counts the VF accepts. */
static int setup_queues(struct vio_relay *r, struct vio_error *e)
{
	uint16_t port = r->port_id, q = r->nb_queues;
	uint16_t nb_rxd = eng.opts.rx_desc, nb_txd = eng.opts.tx_desc;
	int ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);

	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_eth_dev_adjust_nb_rx_tx_desc(port %u %s) "
				"failed: %s", r->id, port, r->port_name, rte_strerror(-ret));
	int sock = rte_eth_dev_socket_id(port);
	unsigned socket = sock < 0 ? (unsigned)r->numa : (unsigned)sock;
	for (uint16_t i = 0; i < q; i++) {
		ret = rte_eth_rx_queue_setup(port, i, nb_rxd, socket, NULL, r->mp);
		if (ret != 0)
			return vio_fail(e, nomem_or_io(ret), "relay %d: rte_eth_rx_queue_setup(port %u "
					"%s, queue %u, %u descriptors) failed: %s", r->id, port,
					r->port_name, i, nb_rxd, rte_strerror(-ret));
		ret = rte_eth_tx_queue_setup(port, i, nb_txd, socket, NULL);
		if (ret != 0)
			return vio_fail(e, nomem_or_io(ret), "relay %d: rte_eth_tx_queue_setup(port %u "
					"%s, queue %u, %u descriptors) failed: %s", r->id, port,
					r->port_name, i, nb_txd, rte_strerror(-ret));
	}
	return 0;
}

/* Link changes and removal, where the VF interrupts for them (lsc_event). */
static void watch_port_events(struct vio_relay *r, const struct rte_eth_conf *conf)
{
	if (conf->intr_conf.lsc)
		r->lsc_cb = rte_eth_dev_callback_register(r->port_id, RTE_ETH_EVENT_INTR_LSC,
							  lsc_event, (void *)(intptr_t)r->id) == 0;
	if (conf->intr_conf.rmv)
		r->rmv_cb = rte_eth_dev_callback_register(r->port_id, RTE_ETH_EVENT_INTR_RMV,
							  lsc_event, (void *)(intptr_t)r->id) == 0;
}

/* The kernel interface to watch: named in the devargs, or the one the driver reports
 * (net_tap's default dtapN); then the link as it is now. */
static void watch_iface(struct vio_relay *r, const struct rte_eth_dev_info *di)
{
	if (!r->ifname[0] && di->if_index > 0 && !if_indextoname(di->if_index, r->ifname))
		r->ifname[0] = '\0';
	r->ifindex = r->ifname[0] ? if_nametoindex(r->ifname) : 0;
	if (r->ifname[0] && r->ifindex == 0)
		r->ifname[0] = '\0'; /* not a kernel interface of this namespace: nothing to watch */
	int up;
	if (vio_port_check(r, &up) < 0)
		__atomic_store_n(&r->link_up, (uint8_t)up, __ATOMIC_RELAXED);
}

/* Configures and starts the relay's VF port: configuration, queues, event callbacks, start,
 * then the interface and link to watch. */
int vio_port_start(struct vio_relay *r, struct vio_error *e)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf conf;
	uint16_t port = r->port_id, q = r->nb_queues;
	int ret;

	ret = rte_eth_dev_info_get(port, &di);
	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_eth_dev_info_get(port %u %s) failed: %s",
				r->id, port, r->port_name, rte_strerror(-ret));
	if (port_conf(r, &di, &conf, e) != 0)
		return -1;
	ret = rte_eth_dev_configure(port, q, q, &conf);
	if (ret != 0)
		return vio_fail(e, VIO_EIO, "relay %d: rte_eth_dev_configure(port %u %s, %u queues) "
				"failed: %s", r->id, port, r->port_name, q, rte_strerror(-ret));
	/* configure only records the MTU for most PMDs; set_mtu makes the VF take it (a kernel
	 * interface behind af_packet or tap gets it too). A PMD without mtu_set keeps the record. */
	if (r->mtu > 0) {
		ret = rte_eth_dev_set_mtu(port, (uint16_t)r->mtu);
		if (ret != 0 && ret != -ENOTSUP)
			return vio_fail(e, VIO_EINVAL, "relay %d: rte_eth_dev_set_mtu(port %u %s, %d) "
					"failed: %s", r->id, port, r->port_name, r->mtu,
					rte_strerror(-ret));
	}
	if (setup_queues(r, e) != 0)
		return -1;
	watch_port_events(r, &conf);
	ret = rte_eth_dev_start(port);
	if (ret != 0)
		return vio_fail(e, nomem_or_io(ret), "relay %d: rte_eth_dev_start(port %u %s) failed: %s",
				r->id, port, r->port_name, rte_strerror(-ret));
	/* the guest's multicast (IPv6 neighbour discovery) must reach it; not every VF allows it */
	rte_eth_allmulticast_enable(port);
	watch_iface(r, &di);
	return 0;
}

void vio_port_detach(struct vio_relay *r)
{
	uint16_t port = r->port_id;

	/* -EAGAIN: the callback is running right now on the interrupt thread */
	while (r->lsc_cb && rte_eth_dev_callback_unregister(port, RTE_ETH_EVENT_INTR_LSC, lsc_event,
							    (void *)(intptr_t)r->id) == -EAGAIN)
		usleep(100);
	while (r->rmv_cb && rte_eth_dev_callback_unregister(port, RTE_ETH_EVENT_INTR_RMV, lsc_event,
							    (void *)(intptr_t)r->id) == -EAGAIN)
		usleep(100);
	r->lsc_cb = r->rmv_cb = false;
	r->ifname[0] = '\0';
	r->ifindex = 0;
	if (r->bonded) {
		rte_eth_dev_stop(port);
		rte_eth_bond_free(r->bond_name);
		r->bonded = false;
		for (int i = 0; i < r->n_members; i++)
			remove_device_of(r->members[i]);
		r->n_members = 0;
	} else {
		remove_device_of(port);
	}
}

static int iface_up(const char *name)
{
	struct ifreq ifr;

	if (eng.ifr_fd < 0)
		return 1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(eng.ifr_fd, SIOCGIFFLAGS, &ifr) != 0)
		return 0;
	return (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
}

int vio_port_check(struct vio_relay *r, int *up)
{
	if (__atomic_load_n(&r->vf_removed, __ATOMIC_ACQUIRE))
		return VIO_VF_LOSS_UNPLUGGED;
	if (!rte_eth_dev_is_valid_port(r->port_id))
		return VIO_VF_LOSS_PORT_GONE;
	if (r->ifname[0] && if_nametoindex(r->ifname) != r->ifindex)
		return VIO_VF_LOSS_IFACE_GONE;
	struct rte_eth_link link;
	memset(&link, 0, sizeof(link));
	*up = rte_eth_link_get_nowait(r->port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
	if (*up && r->ifname[0])
		*up = iface_up(r->ifname);
	return -1;
}
