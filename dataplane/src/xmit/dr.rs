//! DR (direct routing, `ipvsadm -g`): the frame goes to the real server's
//! MAC with the IP packet untouched (TTL included); the server holds the
//! VIP on a non-ARPing interface and answers the client directly. rvs sees
//! only the client's packets, so TCP state follows IPVS's INPUT-ONLY table
//! ([`crate::session::tcp_state::next_state_input_only`]).

use crate::pipeline::Reshape;

/// Nothing to do to the IP packet: only the Ethernet header changes.
#[inline]
pub(crate) fn xmit() -> Option<Reshape> {
    None
}
