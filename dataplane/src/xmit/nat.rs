//! NAT (masquerading, `ipvsadm -m`): the destination is rewritten to the
//! real server, and the server's replies (it routes them through rvs, its
//! gateway) get the VIP back as their source. The session's `laddr` is the
//! client itself, so the inbound leg is `client:cport → rs:rport` and the
//! outbound one `vip:vport → client:cport`: FULLNAT's four-field rewrite
//! with a field rewritten to its own value, which changes nothing
//! (checksums included). No local port is borrowed.

use super::Leg;
use crate::pipeline::Reshape;
use crate::stats::DropReason;

/// Rewrites `l3` (the IP packet, its transport header at `l4`) for `leg`.
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
    super::fullnat::xmit(l3, l4, proto, leg)
}
