//! Which worker owns a flow, computable by any worker from the packet
//! alone, so that correctness never depends on how a device spreads
//! traffic (af_packet's fanout even moves flows between queues when one
//! fills); good spreading only makes redirects rare.
//!
//! A client flow belongs to worker `stable_hash(client) % workers`
//! ([`client_owner`]: the client's address, port and protocol, not the
//! VIP); the session is created there and borrows a local
//! port from that worker's slice, so the real server's replies belong to
//! `lport % workers` ([`crate::laddr::owner_of`]).
//!
//! Persistent services (`-p`): the owner of a client flow is
//! `stable_hash(client & netmask) % workers` ([`persistent_owner`]), the
//! client's port left out (and for a firewall-mark service the protocol
//! too: its template binds TCP and UDP alike), so every connection of one (masked) client
//! meets the same worker and its persistence template
//! ([`crate::session::template`]), whichever queue it arrived on. Changing
//! a live service's persistence or netmask changes its flows' owners:
//! existing connections whose packets arrive on their owner's queue carry
//! on; one that af_packet or RSS moves to another queue is redirected by the
//! new rule and dropped as `no_session` (rare; a reload is the usual way to
//! change it).
//!
//! Owner of a NAT reply: it names no local port, but its session was created
//! by the owner of the client flow. A reply `rs:rport → client:cport` that
//! misses a worker's table is looked up as a NAT server of a service
//! ([`crate::tables::Tables::nat_service_of`]), and the inverse key
//! `client:cport → vip:vport` gives the owner by the client rule (see the
//! slow path's `miss_not_a_service`). The VIP plays no part in either rule,
//! so a NAT server of several services (the kernel allows it; `ipvsadm -S`
//! of such a box restores into rvs) gets its replies to the right worker
//! whichever of them the connection came through, as long as those
//! services share their persistence netmask (or none is persistent): with
//! several workers, one server by NAT in a service persistent by a netmask
//! and in another not (or by another netmask) has its replies taken to the
//! owner by the first service's rule, and those of the other may be
//! dropped as `no_session`.

use super::Pipeline;
use crate::addr::Addr;
use crate::session::{Endpoint, FlowKey};

impl Pipeline {
    /// The worker owning the client flow `key` of service `svc` (an index
    /// into the tables in force): [`persistent_owner`] for a persistent
    /// service, [`client_owner`] otherwise.
    #[inline]
    #[must_use]
    pub fn owner_of_client(&self, svc: usize, key: &FlowKey) -> usize {
        let Some(s) = self.tables.services.get(svc) else {
            return client_owner(key, self.workers);
        };
        match s.persistence {
            // A firewall-mark service's template covers every protocol
            // its mark groups: one owner for all of them.
            Some(p) if s.is_fwmark() => {
                persistent_owner(p.mask(key.src.ip), s.vip, s.proto, self.workers)
            }
            Some(p) => persistent_owner(p.mask(key.src.ip), key.dst, key.proto, self.workers),
            None => client_owner(key, self.workers),
        }
    }
}

/// The worker owning the client flow `key` (client → VIP) among `workers`
/// (services without persistence): by the client's address and port and
/// the protocol (not the VIP, which a NAT reply does not name).
#[inline]
#[must_use]
pub fn client_owner(key: &FlowKey, workers: u16) -> usize {
    if workers <= 1 {
        0
    } else {
        FlowKey {
            src: key.src,
            dst: Endpoint::default(),
            proto: key.proto,
        }
        .stable_hash() as usize
            % usize::from(workers)
    }
}

/// The worker owning every client flow from the masked client address
/// `client` to the persistent service `_vip` (neither the port nor the VIP
/// plays a part).
#[inline]
#[must_use]
pub fn persistent_owner(client: Addr, _vip: Endpoint, proto: u8, workers: u16) -> usize {
    if workers <= 1 {
        0
    } else {
        FlowKey {
            src: Endpoint::at(client, 0),
            dst: Endpoint::default(),
            proto,
        }
        .stable_hash() as usize
            % usize::from(workers)
    }
}
