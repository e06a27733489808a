//! Per-session data that few sessions use, kept beside the session slab
//! (one entry per slot) instead of in [`super::Session`]: the established
//! path reads the session's hot fields only, and a session that needs
//! none of this costs one flag there ([`super::Session::client_addr`]).
//!
//! Today: the sequence shifts of a connection whose byte stream rvs changes
//! (a PROXY protocol header inserted toward the server, see
//! [`crate::xmit::client_addr`]) and what the insertion needs to remember.
//! The SYN proxy keeps its server-stream offset in [`SessionExt::to_client`]
//! and the rest of its handshake in [`SessionExt::syn_proxy`] (see
//! [`crate::synproxy`]). Connection sync carries all of it: the shifts,
//! the flags, what the PROXY/TOA insertion needs and the SYN proxy's state
//! (`sync_feed::ext_words`, control's `sync::convert`); a field added here
//! that must survive failover goes there too.

use crate::xmit::seq_shift::SeqShift;

bitflags::bitflags! {
    /// What a session's [`SessionExt`] knows so far.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ExtFlags: u8 {
        /// The client's ISN is known (its SYN passed).
        const CLIENT_ISN = 1;
        /// The server's ISN is known (its SYN-ACK passed).
        const SERVER_ISN = 2;
        /// The inserted header has been sent at least once.
        const HEADER_SENT = 4;
        /// A SYN-proxied connection.
        const SYN_PROXY = 8;
        /// The SYN proxy and the client negotiated timestamps.
        const PROXY_TS = 16;
    }
}

/// The client's ISN is known (its SYN passed).
pub const CLIENT_ISN: ExtFlags = ExtFlags::CLIENT_ISN;
/// The server's ISN is known (its SYN-ACK passed).
pub const SERVER_ISN: ExtFlags = ExtFlags::SERVER_ISN;
/// The inserted header has been sent at least once.
pub const HEADER_SENT: ExtFlags = ExtFlags::HEADER_SENT;
/// A SYN-proxied connection ([`SessionExt::syn_proxy`] holds its state;
/// with [`SERVER_ISN`] the server's handshake is done).
pub const SYN_PROXY: ExtFlags = ExtFlags::SYN_PROXY;
/// The SYN proxy and the client negotiated timestamps.
pub const PROXY_TS: ExtFlags = ExtFlags::PROXY_TS;

/// The rarely used part of a session. Reset to default when a slot is
/// given to a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionExt {
    /// The client's stream as the server numbers it (`base` = the client's
    /// ISN + 1, `delta` = bytes inserted in front of its first payload byte).
    pub to_server: SeqShift,
    /// The server's stream as the client numbers it (a SYN proxy's:
    /// `base` = the server's ISN + 1, `delta` = the client's ISN for it
    /// minus the server's; otherwise `delta` 0).
    pub to_client: SeqShift,
    /// The server's ISN + 1 (valid with [`SERVER_ISN`]): the
    /// acknowledgement that completes the handshake carries it.
    pub server_next: u32,
    /// [`CLIENT_ISN`], [`SERVER_ISN`], [`HEADER_SENT`], [`SYN_PROXY`],
    /// [`PROXY_TS`].
    pub flags: ExtFlags,
    /// A SYN proxy's handshake and adjustments (with [`SYN_PROXY`]).
    pub syn_proxy: crate::synproxy::ProxyState,
}

impl SessionExt {
    /// True if all of `flags` are set.
    #[inline]
    #[must_use]
    pub fn has(&self, flags: ExtFlags) -> bool {
        self.flags.contains(flags)
    }
}
