//! Per-worker counters and the reasons a packet is dropped.
//!
//! Counters are plain integers owned by one worker; the worker copies them
//! into shared atomics now and then ([`crate::worker`]) and the control side
//! aggregates. Every drop has exactly one reason, so the sum of drops by
//! reason is the number of packets dropped.

/// Why the data plane dropped a packet. The doc line of each variant is its
/// help text in metrics and listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Truncated or malformed Ethernet, ARP, IPv4, IPv6, TCP, UDP or ICMP header.
    Malformed = 0,
    /// Neither IPv4, IPv6 nor ARP (behind any 802.1Q tag).
    UnsupportedL3,
    /// IP protocol not handled for this destination.
    UnsupportedL4,
    /// An IPv4 or IPv6 fragment that cannot be forwarded: its first fragment
    /// was not seen first (or too long ago), the fragment table was full, or
    /// its session cannot carry fragments (FULLNAT64, client-address
    /// insertion); see the `frag` counters.
    Fragment,
    /// Destination address not owned by the appliance.
    NotForUs,
    /// Owned address, but no service on that port/protocol.
    NoService,
    /// TCP segment other than a SYN with no session.
    NoSession,
    /// No real server can take a new connection (all weight 0, over their
    /// thresholds, or none), and the ICMP port unreachable answer was held
    /// back by its rate limit.
    NoRealServer,
    /// Every local address's port pool is exhausted.
    PortExhausted,
    /// The session table is full; new connections are refused.
    SessionTableFull,
    /// The next hop's MAC was not resolved in time: the frame waited longer
    /// than the hold time, or the worker's hold queue was full.
    NeighbourMiss,
    /// TTL would reach zero.
    TtlExceeded,
    /// The transmit queue was full.
    TxFull,
    /// Multi-segment mbuf (jumbo frames are not handled yet).
    MultiSegment,
    /// ARP packet not addressed to an owned address (learned, then dropped).
    ArpNotForUs,
    /// The ring to the worker owning the session was full.
    RedirectFull,
    /// The exception path (TAP to the kernel) was missing or full.
    PuntFull,
    /// Too big for the egress MTU once encapsulated (TUN); with DF set an
    /// ICMP "fragmentation needed" went back to the sender instead.
    TooBig,
    /// No room in front of the frame for an encapsulation header.
    NoHeadroom,
    /// An 802.1Q-tagged frame whose VLAN id has no sub-interface on the
    /// port it arrived on (or a tag with no header after it).
    UnknownVlan,
    /// No real server can take a new connection: answered with ICMP port
    /// unreachable, as the kernel's `ip_vs_leave` does.
    PortUnreachable,
    /// No room in the buffer or under the MTU for a PROXY protocol header
    /// (the client's MSS was lowered to leave room; the client retransmits).
    NoRoom,
    /// IPv4 header checksum wrong.
    IpChecksum,
    /// TCP or UDP checksum wrong on a packet that would have created a
    /// session (packets of existing sessions are not summed).
    L4Checksum,
    /// Lengths that disagree: IPv4 total length past the frame or below
    /// the header, IPv6 payload length past the frame, TCP data offset past
    /// the segment, UDP length other than the IP payload.
    BadLength,
    /// A new flow from a source no host sends from: 0.0.0.0/8, 127/8,
    /// multicast, class E, 255.255.255.255, an interface's subnet
    /// broadcast; ::, ::1, ff00::/8.
    MartianSource,
    /// A new flow from an address the appliance owns (a VIP, a local
    /// address, an interface address): forged or looped.
    OwnSource,
    /// IPv4 loose or strict source routing option (LSRR, SSRR).
    SourceRoute,
    /// TCP flags no stack sends (SYN+FIN, SYN+RST, none, FIN without ACK,
    /// ...: netfilter's table of valid combinations).
    TcpFlags,
    /// A new connection denied by the service's ACL (see [`crate::acl`]).
    AclDeny,
    /// A new connection over the service's `max_conns` (see [`crate::limits`]).
    ConnLimit,
    /// A new connection over the service's `max_conns_per_client` for its
    /// client prefix.
    ClientConnLimit,
    /// A new connection over the service's `rate` for its client prefix.
    ClientRateLimit,
    /// A new connection whose client prefix found no room in the worker's
    /// client table (a service with per-client limits; see [`crate::limits`]).
    ClientTableFull,
    /// An ACK with no session to a SYN-proxied service whose SYN cookie
    /// does not check (forged, or older than two minutes).
    SynCookieInvalid,
    /// A segment of a SYN-proxied connection that arrived while the
    /// server's handshake was still running (the sender retransmits it).
    SynProxyPending,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 36;

    /// All reasons, in discriminant order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Malformed,
        Self::UnsupportedL3,
        Self::UnsupportedL4,
        Self::Fragment,
        Self::NotForUs,
        Self::NoService,
        Self::NoSession,
        Self::NoRealServer,
        Self::PortExhausted,
        Self::SessionTableFull,
        Self::NeighbourMiss,
        Self::TtlExceeded,
        Self::TxFull,
        Self::MultiSegment,
        Self::ArpNotForUs,
        Self::RedirectFull,
        Self::PuntFull,
        Self::TooBig,
        Self::NoHeadroom,
        Self::UnknownVlan,
        Self::PortUnreachable,
        Self::NoRoom,
        Self::IpChecksum,
        Self::L4Checksum,
        Self::BadLength,
        Self::MartianSource,
        Self::OwnSource,
        Self::SourceRoute,
        Self::TcpFlags,
        Self::AclDeny,
        Self::ConnLimit,
        Self::ClientConnLimit,
        Self::ClientRateLimit,
        Self::ClientTableFull,
        Self::SynCookieInvalid,
        Self::SynProxyPending,
    ];

    /// Stable snake_case name (metrics label, listings).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedL3 => "unsupported_l3",
            Self::UnsupportedL4 => "unsupported_l4",
            Self::Fragment => "fragment",
            Self::NotForUs => "not_for_us",
            Self::NoService => "no_service",
            Self::NoSession => "no_session",
            Self::NoRealServer => "no_real_server",
            Self::PortExhausted => "port_exhausted",
            Self::SessionTableFull => "session_table_full",
            Self::NeighbourMiss => "neighbour_miss",
            Self::TtlExceeded => "ttl_exceeded",
            Self::TxFull => "tx_full",
            Self::MultiSegment => "multi_segment",
            Self::ArpNotForUs => "arp_not_for_us",
            Self::RedirectFull => "redirect_full",
            Self::PuntFull => "punt_full",
            Self::TooBig => "too_big",
            Self::NoHeadroom => "no_headroom",
            Self::UnknownVlan => "unknown_vlan",
            Self::PortUnreachable => "port_unreachable",
            Self::NoRoom => "no_room",
            Self::IpChecksum => "ip_checksum",
            Self::L4Checksum => "l4_checksum",
            Self::BadLength => "bad_length",
            Self::MartianSource => "martian_source",
            Self::OwnSource => "own_source",
            Self::SourceRoute => "source_route",
            Self::TcpFlags => "tcp_flags",
            Self::AclDeny => "acl_deny",
            Self::ConnLimit => "conn_limit",
            Self::ClientConnLimit => "client_conn_limit",
            Self::ClientRateLimit => "client_rate_limit",
            Self::ClientTableFull => "client_table_full",
            Self::SynCookieInvalid => "syn_cookie_invalid",
            Self::SynProxyPending => "syn_proxy_pending",
        }
    }
}

/// A worker's own counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes received (Ethernet frames, no FCS).
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets dropped, by reason.
    pub drops: [u64; DropReason::COUNT],
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions removed (expired or replaced).
    pub sessions_expired: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// ICMP errors about sessions relayed to the other side.
    pub icmp_relayed: u64,
    /// Packets handed to another worker over a ring.
    pub redirected_out: u64,
    /// Packets received from other workers' rings.
    pub redirected_in: u64,
    /// Packets handed to the kernel (exception path).
    pub punted: u64,
    /// TOA options and PROXY headers inserted toward servers.
    pub client_addr_inserted: u64,
    /// TOA options left out for want of room in the TCP header or buffer.
    pub toa_no_room: u64,
}

/// The names of [`Counters::events`], in its order: what the optional
/// per-connection features did (`rvs_worker_events_total{event}`,
/// `rvsadm --stats-dp`).
pub const EVENT_NAMES: [&str; 2] = ["client_addr_inserted", "toa_no_room"];
// By hand: `[u64; N]` has no `Default` past N = 32.
impl Default for Counters {
    fn default() -> Self {
        Self {
            rx_packets: 0,
            tx_packets: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
            sessions_created: 0,
            sessions_expired: 0,
            arp_replies: 0,
            echo_replies: 0,
            icmp_relayed: 0,
            redirected_out: 0,
            redirected_in: 0,
            punted: 0,
            client_addr_inserted: 0,
            toa_no_room: 0,
        }
    }
}

impl Counters {
    /// The feature events, in [`EVENT_NAMES`] order.
    #[must_use]
    pub fn events(&self) -> [u64; EVENT_NAMES.len()] {
        [self.client_addr_inserted, self.toa_no_room]
    }

    /// Counts a drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_with_unique_names() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
