/*
 * rvs DPDK shim: one-line bodies for shim.h. Compiled by build.rs with the
 * exact `pkg-config --cflags libdpdk` tokens (rte_config.h, -march=corei7).
 */
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "shim.h"

uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int rvs_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
			       struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void rvs_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t rvs_rte_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

void rvs_rte_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v)
{
	rte_mbuf_refcnt_set(m, v);
}

uint16_t rvs_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v)
{
	return rte_mbuf_refcnt_update(m, v);
}

void rvs_rte_pktmbuf_refcnt_update(struct rte_mbuf *m, int16_t v)
{
	rte_pktmbuf_refcnt_update(m, v);
}

void *rvs_rte_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

char *rvs_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *rvs_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *rvs_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int rvs_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void rvs_rte_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

unsigned int rvs_rte_mempool_avail_count(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

unsigned int rvs_rte_ring_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int rvs_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned int rvs_rte_ring_sp_enqueue_burst(struct rte_ring *r,
					   void *const *obj_table,
					   unsigned int n,
					   unsigned int *free_space)
{
	return rte_ring_sp_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int rvs_rte_ring_sc_dequeue_burst(struct rte_ring *r,
					   void **obj_table, unsigned int n,
					   unsigned int *available)
{
	return rte_ring_sc_dequeue_burst(r, obj_table, n, available);
}

unsigned int rvs_rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

unsigned int rvs_rte_ring_free_count(const struct rte_ring *r)
{
	return rte_ring_free_count(r);
}

unsigned int rvs_rte_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t rvs_rte_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t rvs_rte_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

void rvs_rte_pause(void)
{
	rte_pause();
}

int rvs_rte_errno(void)
{
	return rte_errno;
}

void rvs_rte_errno_set(int value)
{
	rte_errno = value;
}

#define RVS_DEFINE_CONST(name) const uint64_t rvs_##name = (name);
RVS_ETH_BIT64_CONSTS(RVS_DEFINE_CONST)
#undef RVS_DEFINE_CONST
