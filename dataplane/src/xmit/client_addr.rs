//! Telling a real server behind FULLNAT who the client is.
//!
//! FULLNAT's servers see the local address, not the client. Per service
//! (`client_address` in the config), rvs can carry the client's address to
//! them in one of three ways:
//!
//! | mode | what the server gets | server side |
//! |---|---|---|
//! | `toa` | TCP option 254 on the packets that complete the handshake and carry the first data | a TOA kernel module |
//! | `proxy-v1` | HAProxy's PROXY protocol text header before the first payload byte | `listen ... proxy_protocol` (nginx, HAProxy, Envoy) |
//! | `proxy-v2` | the binary PROXY header, the same way | likewise |
//!
//! See docs/client-address.md for the layouts and the reasons.

/// How a service tells its servers the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ClientAddress {
    /// Not at all (LVS's behaviour).
    #[default]
    None,
    /// The TOA TCP option (kind 254).
    Toa,
    /// PROXY protocol version 1 (text).
    ProxyV1,
    /// PROXY protocol version 2 (binary).
    ProxyV2,
}

impl ClientAddress {
    /// Every mode, in config-word order.
    pub const ALL: [Self; 4] = [Self::None, Self::Toa, Self::ProxyV1, Self::ProxyV2];

    /// The word the config and rvsadm use.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Toa => "toa",
            Self::ProxyV1 => "proxy-v1",
            Self::ProxyV2 => "proxy-v2",
        }
    }

    /// The mode named `word`.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.word() == word)
    }

    /// True for the PROXY protocol modes (which shift sequence numbers).
    #[inline]
    #[must_use]
    pub const fn is_proxy(self) -> bool {
        matches!(self, Self::ProxyV1 | Self::ProxyV2)
    }
}
