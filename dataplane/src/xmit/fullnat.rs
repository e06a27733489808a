//! FULLNAT (`--fullnat`): both addresses rewritten. Inbound
//! `client:cport → vip:vport` leaves as `laddr:lport → rs:rport`; the
//! server answers the local address, and its reply `rs:rport → laddr:lport`
//! leaves as `vip:vport → client:cport`. One four-field rewrite
//! ([`super::rewrite`]) serves both directions, checksums updated
//! incrementally.
//!
//! FULLNAT64 is FULLNAT across families (an IPv6 VIP served by IPv4
//! servers and local addresses): when the leg's addresses are not of the
//! packet's family, the header is rebuilt in the other family by
//! [`super::nat64`], which the pipeline applies to the whole buffer.

use super::{rewrite, Leg};
use crate::pipeline::Reshape;
use crate::stats::DropReason;

/// Rewrites `l3` (the IP packet, its transport header at `l4`) for `leg`,
/// or asks for its translation.
///
/// # Errors
/// [`DropReason::Malformed`] if its headers cannot be rewritten.
#[inline]
pub(crate) fn xmit(
    l3: &mut [u8],
    l4: usize,
    proto: u8,
    leg: &Leg,
) -> Result<Option<Reshape>, DropReason> {
    let packet_v4 = l3.first().map(|b| b >> 4) == Some(4);
    if leg.src.ip.is_v4() != packet_v4 {
        return Ok(Some(Reshape::Translate {
            proto,
            src: leg.src,
            dst: leg.dst,
        }));
    }
    let done = if packet_v4 {
        rewrite::rewrite_v4_at(l3, l4, proto, leg.src, leg.dst)
    } else {
        rewrite::rewrite_v6_l4_at(l3, l4, proto, leg.src, leg.dst)
    };
    done.map_err(|_| DropReason::Malformed)?;
    Ok(None)
}
