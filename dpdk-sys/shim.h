/*
 * rvs DPDK shim: callable, non-inline wrappers for what bindgen cannot bind.
 *
 * DPDK implements its fast-path API (rx/tx burst, mbuf alloc/free, ring
 * bursts, rte_lcore_id, rte_rdtsc, rte_errno) as static inline functions or
 * macros in headers, so there is no symbol to link against. Each wrapper
 * here is a one-liner compiled with DPDK's own CFLAGS (shim.c); the names
 * are the DPDK names prefixed with `rvs_`. No policy lives here.
 *
 * Cost: one call per wrapper use (~5 cycles, no cross-language inlining).
 * Call them per burst, never per packet.
 */
#ifndef RVS_SHIM_H
#define RVS_SHIM_H

#include <stdint.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "shim_consts.h"

/* ethdev fast path */
uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			      struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf */
struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
			       struct rte_mbuf **mbufs, unsigned int count);
void rvs_rte_pktmbuf_free(struct rte_mbuf *m);
uint16_t rvs_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
void rvs_rte_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v);
uint16_t rvs_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
void rvs_rte_pktmbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
void *rvs_rte_pktmbuf_mtod(struct rte_mbuf *m);
char *rvs_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void rvs_rte_pktmbuf_reset(struct rte_mbuf *m);

/* mempool */
unsigned int rvs_rte_mempool_avail_count(const struct rte_mempool *mp);

/* ring */
unsigned int rvs_rte_ring_enqueue_burst(struct rte_ring *r,
					void *const *obj_table, unsigned int n,
					unsigned int *free_space);
unsigned int rvs_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
					unsigned int n, unsigned int *available);
unsigned int rvs_rte_ring_sp_enqueue_burst(struct rte_ring *r,
					   void *const *obj_table,
					   unsigned int n,
					   unsigned int *free_space);
unsigned int rvs_rte_ring_sc_dequeue_burst(struct rte_ring *r,
					   void **obj_table, unsigned int n,
					   unsigned int *available);
unsigned int rvs_rte_ring_count(const struct rte_ring *r);
unsigned int rvs_rte_ring_free_count(const struct rte_ring *r);

/* lcore, time, errno */
unsigned int rvs_rte_lcore_id(void);
uint64_t rvs_rte_rdtsc(void);
uint64_t rvs_rte_get_tsc_hz(void);
void rvs_rte_pause(void);
int rvs_rte_errno(void);
void rvs_rte_errno_set(int value);

/* RTE_BIT64()-built constants: `const uint64_t rvs_RTE_ETH_...` */
#define RVS_DECLARE_CONST(name) extern const uint64_t rvs_##name;
RVS_ETH_BIT64_CONSTS(RVS_DECLARE_CONST)
#undef RVS_DECLARE_CONST

#endif /* RVS_SHIM_H */
