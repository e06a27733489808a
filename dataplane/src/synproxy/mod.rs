//! The SYN proxy's packet logic, apart from the pipeline: SYN cookies
//! ([`cookie`]), and reading and writing the TCP segments the proxy answers
//! and sends in the client's place ([`segment`]). The pipeline's side is
//! `pipeline/synproxy.rs`; docs/synproxy.md has the whole exchange.

pub mod cookie;
pub mod segment;

use cookie::NO_WSCALE;

/// The window scale the proxy announces to a client that offered one
/// (Linux's for its default buffers): windows from the server are
/// rescaled to it when the server's differs ([`segment::Adjust`]).
pub const CLIENT_WSCALE: u8 = 7;

/// What a proxied connection keeps in its [`crate::session::ext::SessionExt`]
/// beyond the server stream's shift (`to_client`): what the handshake's
/// two halves agreed, to rebuild the client's ACK for the server and to
/// adjust timestamps and windows for the connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyState {
    /// The ISN the client was given (the cookie).
    pub isn: u32,
    /// Until the server answers: the TSval the client echoed (ours);
    /// then ours minus the server's, added to every TSval the server
    /// sends and taken from every TSecr the client sends.
    pub ts_delta: u32,
    /// The client's TSval in its handshake ACK.
    pub client_tsval: u32,
    /// The window field of the client's handshake ACK.
    pub client_win: u16,
    /// The client's window scale ([`cookie::NO_WSCALE`]: none).
    pub client_wscale: u8,
    /// The server's window scale ([`cookie::NO_WSCALE`]: none, or not
    /// answered yet).
    pub server_wscale: u8,
}

impl ProxyState {
    /// Window rescaling from server to client: (scale the server writes
    /// with, scale the client reads with), when they differ.
    #[must_use]
    pub fn window_to_client(&self) -> Option<(u8, u8)> {
        if self.client_wscale == NO_WSCALE {
            return None;
        }
        let from = if self.server_wscale == NO_WSCALE {
            0
        } else {
            self.server_wscale
        };
        (from != CLIENT_WSCALE).then_some((from, CLIENT_WSCALE))
    }

    /// Window rescaling from client to server: only when the client scales
    /// and the server declined window scaling (it reads windows unscaled).
    #[must_use]
    pub fn window_to_server(&self) -> Option<(u8, u8)> {
        (self.client_wscale != NO_WSCALE && self.server_wscale == NO_WSCALE)
            .then_some((self.client_wscale, 0))
    }
}

/// One worker's SYN-proxy counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// SYNs answered with a cookie.
    pub cookies_sent: u64,
    /// ACKs whose cookie checked.
    pub acks_valid: u64,
    /// ACKs with no session whose cookie did not check (dropped as
    /// `syn_cookie_invalid`).
    pub acks_invalid: u64,
    /// Sessions opened toward a real server by the proxy.
    pub sessions_opened: u64,
    /// Server handshakes completed (SYN-ACK answered).
    pub server_handshakes: u64,
    /// Client data segments held while the server's handshake ran.
    pub data_held: u64,
    /// SYNs sent again to a server that had not answered, each on a
    /// client retransmission (at most one a second).
    pub server_syn_retries: u64,
    /// Server ACKs to the proxy's SYN that acknowledged something else
    /// (an older connection on the tuple), answered with a reset.
    pub server_stale_acks: u64,
}

impl Counters {
    /// Names (metrics label `event`, `--stats-dp`), in [`Self::values`] order.
    pub const NAMES: [&'static str; 8] = [
        "cookies_sent",
        "acks_valid",
        "acks_invalid",
        "sessions_opened",
        "server_handshakes",
        "data_held",
        "server_syn_retries",
        "server_stale_acks",
    ];

    /// The counters, in [`Self::NAMES`] order.
    #[must_use]
    pub fn values(&self) -> [u64; 8] {
        [
            self.cookies_sent,
            self.acks_valid,
            self.acks_invalid,
            self.sessions_opened,
            self.server_handshakes,
            self.data_held,
            self.server_syn_retries,
            self.server_stale_acks,
        ]
    }
}
