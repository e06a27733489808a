//! Transmission by forwarding method, one file per method (as DPVS's
//! `dp_vs_xmit_*`): what a packet of an established session becomes on its
//! way out, after the fast path ([`crate::pipeline`]) has found the session
//! and moved its state on.
//!
//! | method | file | toward the server | back to the client |
//! |---|---|---|---|
//! | FULLNAT | [`fullnat`] | `laddr:lport → rs:rport` | `vip:vport → client:cport` |
//! | NAT | [`nat`] | `client:cport → rs:rport` | `vip:vport → client:cport` |
//! | DR | [`dr`] | unchanged, to the server's MAC | (bypasses rvs) |
//! | TUN | [`tun`] | unchanged, inside IPv4/IPv6 to the server | (bypasses rvs) |
//! | FULLNAT64 | [`nat64`] | IPv6 `client → vip` rebuilt as IPv4 `laddr → rs` | the reverse |
//!
//! The address and port rewrite that FULLNAT and NAT share is
//! [`rewrite`]. Every method then addresses the Ethernet header to the leg's
//! next hop (`set_l2`). Methods that change the frame's length (TUN's
//! outer header, NAT64's header of the other family) only say so
//! (`Reshape`): the pipeline, which holds the whole buffer, applies it.

pub mod client_addr;
pub mod dr;
pub mod fragment;
pub mod fullnat;
pub mod isn;
pub mod nat;
pub mod nat64;
pub mod rewrite;
pub mod seq_shift;
pub mod tun;

use crate::pipeline::Reshape;
use crate::session::{Direction, End, Endpoint, SessionHot, SessionTable, SlotId};
use crate::stats::DropReason;
use crate::tables::{Forward, Tables};
use crate::wire::MacAddr;

/// One direction of a session: the packet's new source and destination,
/// and the port and MAC of its next hop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    /// New source (FULLNAT inbound: the local address; NAT inbound: the client).
    pub src: Endpoint,
    /// New destination.
    pub dst: Endpoint,
    /// Egress port.
    pub port: u16,
    /// Next hop's MAC.
    pub mac: MacAddr,
}

impl Leg {
    /// Where a packet of the session in `slot` (its hot part `s`) going
    /// `dir` leaves for.
    #[inline]
    pub(crate) fn of(table: &SessionTable, slot: SlotId, s: &SessionHot, dir: Direction) -> Self {
        match dir {
            Direction::Inbound => Self {
                src: table.endpoint(slot, End::Laddr),
                dst: table.endpoint(slot, End::Rs),
                port: s.rs_port,
                mac: s.rs_mac,
            },
            Direction::Outbound => Self {
                src: table.endpoint(slot, End::Vip),
                dst: table.endpoint(slot, End::Client),
                port: s.client_port,
                mac: s.client_mac,
            },
        }
    }
}

/// Transmits the IP packet `l3` (its transport header at `l4`, as
/// classification found it) of session `s` (its hot part) going `dir` by
/// the session's method; `Ok` with the reshape the frame still needs, if any.
///
/// # Errors
/// [`DropReason::Malformed`] if the packet's headers cannot be rewritten.
#[inline]
pub(crate) fn xmit(
    tables: &Tables,
    l3: &mut [u8],
    l4: usize,
    s: &SessionHot,
    dir: Direction,
    leg: &Leg,
) -> Result<Option<Reshape>, DropReason> {
    match s.forward {
        Forward::FullNat => fullnat::xmit(l3, l4, s.proto, leg),
        Forward::Nat => nat::xmit(l3, l4, s.proto, leg),
        Forward::Dr => Ok(dr::xmit()),
        Forward::Tun => Ok(tun::xmit(tables, s, dir, leg)),
    }
}

/// Our MAC on `port` (zero for a port the tables do not know).
#[inline]
#[must_use]
pub fn port_mac(tables: &Tables, port: u16) -> MacAddr {
    tables
        .interfaces
        .get(usize::from(port))
        .map_or([0; 6], |i| i.mac)
}

/// Addresses an Ethernet header (`l2`, at least 12 bytes) to `dst` from `src`.
#[inline]
pub(crate) fn set_l2(l2: &mut [u8], dst: MacAddr, src: MacAddr) {
    if let Some(h) = l2.get_mut(..12) {
        h[..6].copy_from_slice(&dst);
        h[6..].copy_from_slice(&src);
    }
}
