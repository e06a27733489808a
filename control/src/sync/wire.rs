//! The IPVS connection-sync protocol, version 1, on the wire: what the
//! kernel's `ip_vs_sync.c` sends between load balancers (UDP 8848, group
//! 224.0.0.81) and what Wireshark's `ipvs` dissector decodes.
//!
//! ```text
//!  message header (8 bytes)
//!   0               1               2               3
//!  +---------------+---------------+-------------------------------+
//!  |      0        |    SyncID     |     Size (whole message)      |
//!  +---------------+---------------+-------------------------------+
//!  |  Count Conns  |  Version = 1  |          Reserved (0)         |
//!  +---------------+---------------+-------------------------------+
//!  connection entry (36 bytes IPv4, 72 IPv6, then options)
//!  +---------------+---------------+-------+-----------------------+
//!  |  Type (bit 0: |   Protocol    | Ver 0 |  Size (this entry,    |
//!  |   IPv6)       |               |       |  options included)    |
//!  +---------------+---------------+-------+-----------------------+
//!  |                            Flags                              |
//!  +-------------------------------+-------------------------------+
//!  |            State              |            cport              |
//!  +-------------------------------+-------------------------------+
//!  |            vport              |            dport              |
//!  +-------------------------------+-------------------------------+
//!  |                            fwmark                             |
//!  |                       timeout (seconds)                       |
//!  |               caddr, vaddr, daddr (4 or 16 bytes each)        |
//!  +---------------+---------------+-------------------------------+
//!  |  Option type  | Option length |  Option data ...              |
//!  +---------------+---------------+-------------------------------+
//! ```
//!
//! Entries after the first start on a 4-byte boundary (zero padding
//! before them, counted in the message size); an entry's own size does not
//! count the padding. Options: 1 sequence data (in/out `init_seq`, `delta`,
//! `previous_delta`), 2 persistence-engine data, 3 persistence-engine name.
//! Bit 6 (`0x40`) marks an option a receiver that does not know it may skip;
//! an unknown option without it makes the kernel drop that entry.
//! rvs carries FULLNAT's local address and port in such a skippable option
//! ([`OPT_RVS_LOCAL`]), so a kernel backup still takes the entry, and what
//! a session whose byte stream rvs changes remembers besides its sequence
//! shifts (which go in [`OPT_SEQ_DATA`]) in another ([`OPT_RVS_SESSION`]);
//! a SYN-proxied connection's handshake state in a third
//! ([`OPT_RVS_SYNPROXY`]).
//!
//! Sans-IO: [`MessageBuilder`] batches entries into datagrams of at most
//! `sync_maxlen` bytes; [`parse`] checks a datagram as the kernel's
//! `ip_vs_process_message` does: a framing error (sizes, option lengths,
//! versions) drops the whole datagram, an entry the receiver cannot use
//! (unknown mandatory option, protocol or state) only that entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The sync daemon's UDP port (`--mcast-port` default).
pub const SYNC_PORT: u16 = 8848;
/// The IPv4 multicast group (`--mcast-group` default).
pub const SYNC_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The message header's length.
pub const HEADER_LEN: usize = 8;
/// The protocol version rvs speaks.
pub const VERSION: u8 = 1;
/// rvs's flag in a resync request's first spare byte (offset 6, which the
/// kernel neither sets nor reads): the box asking has just started and
/// holds no sessions, so its peers send back the sessions they hold for
/// its local addresses too (see `engine`'s module doc).
pub const HELLO_RESTARTED: u8 = 0x01;
/// Offset of the header's first spare byte.
pub const SPARE_AT: usize = 6;
/// The fixed part of an IPv4 entry.
pub const ENTRY_V4_LEN: usize = 36;
/// The fixed part of an IPv6 entry.
pub const ENTRY_V6_LEN: usize = 72;
/// Entry type bit: the addresses are IPv6.
pub const TYPE_INET6: u8 = 1;
/// Option: sequence-number adjustments (both directions).
pub const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data.
pub const OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name.
pub const OPT_PE_NAME: u8 = 3;
/// Option-type bit: a receiver that does not know the option skips it.
pub const OPT_F_PARAM: u8 = 0x40;
/// rvs's option: FULLNAT local address and port (6 bytes IPv4, 18 IPv6),
/// skippable by receivers that do not know it.
pub const OPT_RVS_LOCAL: u8 = OPT_F_PARAM | 0x10;
/// rvs's option: what a session whose byte stream rvs changes remembers
/// besides its sequence shifts ([`SessionOpt`], 6 bytes), skippable.
pub const OPT_RVS_SESSION: u8 = OPT_F_PARAM | 0x11;
/// rvs's option, one byte (1): the sender holds this FULLNAT session on one of
/// its `peer_local_addresses` (it carries on a flow of another appliance,
/// whose address it is), so the address's owner takes the entry although
/// the address is its own (see `docs/sync.md`). Skippable. (One byte, as
/// the kernel refuses an option without data.)
pub const OPT_RVS_CARRIED: u8 = OPT_F_PARAM | 0x13;
/// rvs's option: a FULLNAT TCP session's ISN offset (4 bytes, the
/// server-side ISN minus the client's: see `dataplane::xmit::isn`),
/// skippable. Sent only when not 0; an entry without it (an older rvs, a
/// kernel) gets none, as the sender's session had.
pub const OPT_RVS_ISN: u8 = OPT_F_PARAM | 0x14;
/// The length of [`OPT_RVS_ISN`]'s data (a receiver takes longer data and
/// reads these bytes of it).
pub const ISN_OPT_LEN: usize = 4;
/// The length of [`OPT_RVS_SESSION`]'s data rvs sends (a receiver takes
/// longer data and reads these bytes of it, for fields added later).
pub const SESSION_OPT_LEN: usize = 6;
/// rvs's option: a SYN-proxied connection's handshake state
/// ([`SynProxyOpt`], 16 bytes), skippable.
pub const OPT_RVS_SYNPROXY: u8 = OPT_F_PARAM | 0x12;
/// The length of [`OPT_RVS_SYNPROXY`]'s data rvs sends (a receiver takes
/// longer data and reads these bytes of it).
pub const SYNPROXY_OPT_LEN: usize = 16;
/// The length of [`OPT_SEQ_DATA`]'s data (two `ip_vs_seq`).
pub const SEQ_DATA_LEN: usize = 24;
/// The kernel's limit for persistence-engine data.
pub const PE_DATA_MAX: usize = 255;
/// The kernel's limit for a persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;
/// Entries per message at most (the count is one byte).
pub const MAX_CONNS: usize = 255;

/// Connection flags the kernel syncs (`IP_VS_CONN_F_*`).
pub mod flags {
    /// Forwarding method mask: masquerading (NAT) is 0.
    pub const FWD_MASK: u32 = 0x0007;
    /// Masquerading (NAT); rvs's FULLNAT also travels as 0, plus [`super::OPT_RVS_LOCAL`].
    pub const MASQ: u32 = 0x0000;
    /// Tunnelling (IPIP).
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Entry came from sync.
    pub const SYNC: u32 = 0x0020;
    /// No output packets seen yet.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established (counted as inactive).
    pub const INACTIVE: u32 = 0x0100;
    /// Sequence data for the outbound direction.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Sequence data for the inbound direction.
    pub const IN_SEQ: u32 = 0x0400;
    /// Client port is wildcarded (persistence template).
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (never synced).
    pub const ONE_PACKET: u32 = 0x2000;
    /// What the kernel sends of a connection's flags (`IP_VS_CONN_F_BACKUP_MASK`
    /// is applied by the receiver; the sender sends its flags as they are).
    pub const SEQ_MASK: u32 = OUT_SEQ | IN_SEQ;
}

/// One direction's sequence-number adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seq {
    /// The sequence number where the adjustment starts.
    pub init_seq: u32,
    /// The delta applied after it.
    pub delta: u32,
    /// The delta applied before it.
    pub previous_delta: u32,
}

/// rvs's session option ([`OPT_RVS_SESSION`]): how the session tells its
/// server the client's address, and what that remembers beyond the
/// sequence shifts (which travel in [`OPT_SEQ_DATA`]).
///
/// ```text
///  +---------------+---------------+-------------------------------+
///  |     mode      |  ext flags    |   server_next (server ISN+1)  |
///  +---------------+---------------+-------------------------------+
///  |  server_next (low half)       |
///  +-------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOpt {
    /// `client_address`: 0 none, 1 toa, 2 proxy-v1, 3 proxy-v2.
    pub mode: u8,
    /// The session's ext flags (client ISN seen, server ISN seen, header sent).
    pub flags: u8,
    /// The server's ISN + 1.
    pub server_next: u32,
}

/// rvs's SYN-proxy option ([`OPT_RVS_SYNPROXY`]): what a SYN-proxied
/// connection's two handshakes agreed, beyond the server stream's shift
/// (which travels in [`OPT_SEQ_DATA`]'s `out_seq`).
///
/// ```text
///  +---------------------------------------------------------------+
///  |   isn (the client's ISN for the connection: the cookie)       |
///  +---------------------------------------------------------------+
///  |   ts_delta (our TSval clock minus the server's)               |
///  +---------------------------------------------------------------+
///  |   client_tsval (the client's TSval in its handshake ACK)      |
///  +-------------------------------+---------------+---------------+
///  |   client_win                  | client_wscale | server_wscale |
///  +-------------------------------+---------------+---------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynProxyOpt {
    /// The ISN the client was given (the cookie).
    pub isn: u32,
    /// Added to the server's TSvals, taken from the client's TSecrs.
    pub ts_delta: u32,
    /// The client's TSval in its handshake ACK.
    pub client_tsval: u32,
    /// The window field of the client's handshake ACK.
    pub client_win: u16,
    /// The client's window scale (15: none).
    pub client_wscale: u8,
    /// The server's window scale (15: none).
    pub server_wscale: u8,
}

/// One synced connection or persistence template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` flags ([`flags`]).
    pub flags: u32,
    /// The IPVS state (TCP: `IP_VS_TCP_S_*`, 0 for UDP).
    pub state: u16,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// Firewall mark of a fwmark service, else 0.
    pub fwmark: u32,
    /// Seconds until the connection expires.
    pub timeout_s: u32,
    /// Inbound and outbound sequence adjustments.
    pub seq: Option<(Seq, Seq)>,
    /// Persistence-engine name and data.
    pub pe: Option<(Vec<u8>, Vec<u8>)>,
    /// FULLNAT's local address and port.
    pub local: Option<SocketAddr>,
    /// rvs's session option (a session whose byte stream rvs changes).
    pub session: Option<SessionOpt>,
    /// rvs's SYN-proxy option (a SYN-proxied connection).
    pub syn_proxy: Option<SynProxyOpt>,
    /// [`OPT_RVS_CARRIED`]: held on one of the sender's peers' local
    /// addresses.
    pub carried: bool,
    /// [`OPT_RVS_ISN`]: the session's ISN offset (0: none, not sent).
    pub isn_off: u32,
}

/// Why a datagram or an entry is refused (each a counted drop reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the message header.
    #[error("message shorter than its 8-byte header ({0} bytes)")]
    Short(usize),
    /// A version 0 message (first byte non-zero): rvs speaks version 1 only.
    #[error("version 0 message (first byte {0}): rvs speaks sync version 1 only")]
    Version0(u8),
    /// An unknown protocol version.
    #[error("unknown sync protocol version {0}")]
    Version(u8),
    /// The header's size is not the datagram's length.
    #[error("message size {header} but the datagram has {datagram} bytes")]
    Size {
        /// The header's size field.
        header: usize,
        /// The datagram's length.
        datagram: usize,
    },
    /// An entry runs past the end of the message.
    #[error("entry {0} runs past the end of the message")]
    Truncated(usize),
    /// An entry of a version other than 0.
    #[error("entry {0} has version {1}")]
    EntryVersion(usize, u8),
    /// An entry shorter than its fixed part.
    #[error("entry {0} is {1} bytes, shorter than its fixed part")]
    EntryShort(usize, usize),
    /// An option with length 0 or past the entry's end.
    #[error("entry {0}: option {1} has a bad length")]
    OptionLength(usize, u8),
    /// An option the receiver must understand but does not (the entry is skipped).
    #[error("entry {0}: unknown mandatory option {1}")]
    UnknownOption(usize, u8),
    /// A connection of a protocol other than TCP, UDP or SCTP (the entry is skipped).
    #[error("entry {0}: unsupported protocol {1}")]
    Protocol(usize, u8),
    /// A state the protocol does not have (the entry is skipped).
    #[error("entry {0}: protocol {1} has no state {2}")]
    State(usize, u8, u16),
    /// An option given twice, or with the wrong length for its type.
    #[error("entry {0}: option {1} repeated or malformed")]
    BadOption(usize, u8),
    /// Fewer entries than the header counts.
    #[error("the header counts {header} entries, the message holds {found}")]
    Count {
        /// The header's count.
        header: usize,
        /// Entries found.
        found: usize,
    },
    /// Addresses of different families in one entry.
    #[error("client, virtual and destination addresses are not all of one family")]
    MixedFamilies,
}

/// A parsed datagram: its SyncID and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The SyncID (`--syncid`) of the sender.
    pub sync_id: u8,
    /// The entries a receiver installs, in order.
    pub conns: Vec<Conn>,
    /// The entries it skips, and why (as the kernel skips them).
    pub skipped: Vec<WireError>,
}

/// TCP's states (`IP_VS_TCP_S_LAST`), UDP's and SCTP's.
const fn num_states(protocol: u8) -> Option<u16> {
    match protocol {
        6 => Some(11),
        17 => Some(1),
        132 => Some(10),
        _ => None,
    }
}

/// A sync daemon's role (`--start-daemon master|backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the connections of this box.
    Master,
    /// Receives and installs a master's.
    Backup,
}

/// The largest datagram a daemon sends or receives (`sync_maxlen`), as the
/// kernel's `start_sync_thread` sets it: `--sync-maxlen` clamped to
/// 1..=65535 less the IP and UDP headers (a backup at least 1024), or by
/// default a 1500-byte packet for a master and the interface's MTU (at
/// least 1500) for a backup, less those headers.
#[must_use]
pub fn sync_maxlen(role: Role, requested: Option<u16>, dev_mtu: u16, ipv6: bool) -> usize {
    let hlen = if ipv6 { 40 + 8 } else { 20 + 8 };
    match requested.filter(|&m| m > 0) {
        Some(m) => {
            let min = if role == Role::Backup { 1024 } else { 1 };
            usize::from(m).clamp(min, 65535 - hlen)
        }
        None => {
            let mtu = match role {
                Role::Master => 1500,
                Role::Backup => usize::from(dev_mtu.max(1500)),
            };
            mtu - hlen
        }
    }
}

impl Conn {
    /// The entry's encoded length, without padding.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut len = if self.client.is_ipv6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        };
        if self.seq.is_some() {
            len += 2 + SEQ_DATA_LEN;
        }
        if let Some((name, data)) = &self.pe {
            if !data.is_empty() {
                len += 2 + data.len();
            }
            if !name.is_empty() {
                len += 2 + name.len();
            }
        }
        if let Some(l) = self.local {
            len += 2 + if l.is_ipv6() { 18 } else { 6 };
        }
        if self.session.is_some() {
            len += 2 + SESSION_OPT_LEN;
        }
        if self.syn_proxy.is_some() {
            len += 2 + SYNPROXY_OPT_LEN;
        }
        if self.carried {
            len += 3;
        }
        if self.isn_off != 0 {
            len += 2 + ISN_OPT_LEN;
        }
        len
    }

    fn check(&self) -> Result<(), WireError> {
        let v6 = self.client.is_ipv6();
        if self.vip.is_ipv6() != v6 || self.dest.is_ipv6() != v6 {
            return Err(WireError::MixedFamilies);
        }
        if let Some((name, data)) = &self.pe {
            if name.len() > PE_NAME_MAX || data.len() > PE_DATA_MAX {
                return Err(WireError::BadOption(0, OPT_PE_DATA));
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let v6 = self.client.is_ipv6();
        let len = self.encoded_len();
        out.push(if v6 { TYPE_INET6 } else { 0 });
        out.push(self.protocol);
        // Version 0 in the top 4 bits, the size in the low 12.
        out.extend_from_slice(&((len & 0x0fff) as u16).to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.state.to_be_bytes());
        out.extend_from_slice(&self.client.port().to_be_bytes());
        out.extend_from_slice(&self.vip.port().to_be_bytes());
        out.extend_from_slice(&self.dest.port().to_be_bytes());
        out.extend_from_slice(&self.fwmark.to_be_bytes());
        out.extend_from_slice(&self.timeout_s.to_be_bytes());
        for a in [self.client.ip(), self.vip.ip(), self.dest.ip()] {
            put_ip(out, a);
        }
        if let Some((i, o)) = &self.seq {
            out.push(OPT_SEQ_DATA);
            out.push(SEQ_DATA_LEN as u8);
            for s in [i, o] {
                out.extend_from_slice(&s.init_seq.to_be_bytes());
                out.extend_from_slice(&s.delta.to_be_bytes());
                out.extend_from_slice(&s.previous_delta.to_be_bytes());
            }
        }
        if let Some((name, data)) = &self.pe {
            if !data.is_empty() {
                out.push(OPT_PE_DATA);
                out.push(data.len() as u8);
                out.extend_from_slice(data);
            }
            if !name.is_empty() {
                out.push(OPT_PE_NAME);
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
        }
        if let Some(l) = self.local {
            out.push(OPT_RVS_LOCAL);
            out.push(if l.is_ipv6() { 18 } else { 6 });
            put_ip(out, l.ip());
            out.extend_from_slice(&l.port().to_be_bytes());
        }
        if self.carried {
            out.extend_from_slice(&[OPT_RVS_CARRIED, 1, 1]);
        }
        if let Some(o) = self.session {
            out.push(OPT_RVS_SESSION);
            out.push(SESSION_OPT_LEN as u8);
            out.push(o.mode);
            out.push(o.flags);
            out.extend_from_slice(&o.server_next.to_be_bytes());
        }
        if let Some(p) = self.syn_proxy {
            out.push(OPT_RVS_SYNPROXY);
            out.push(SYNPROXY_OPT_LEN as u8);
            out.extend_from_slice(&p.isn.to_be_bytes());
            out.extend_from_slice(&p.ts_delta.to_be_bytes());
            out.extend_from_slice(&p.client_tsval.to_be_bytes());
            out.extend_from_slice(&p.client_win.to_be_bytes());
            out.push(p.client_wscale);
            out.push(p.server_wscale);
        }
        if self.isn_off != 0 {
            out.push(OPT_RVS_ISN);
            out.push(ISN_OPT_LEN as u8);
            out.extend_from_slice(&self.isn_off.to_be_bytes());
        }
    }
}

fn put_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Batches entries into datagrams of at most `maxlen` bytes, as the
/// kernel's sync buffer does.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    sync_id: u8,
    maxlen: usize,
    buf: Vec<u8>,
    count: usize,
}

/// Why [`MessageBuilder::push`] did not take an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The current message is full: take it ([`MessageBuilder::take`]) and push again.
    #[error("message full")]
    Full,
    /// The entry can never be sent (bigger than a whole message, or invalid).
    #[error("entry cannot be encoded: {0}")]
    Invalid(WireError),
}

impl MessageBuilder {
    /// An empty message for `sync_id`, at most `maxlen` bytes (at least one
    /// entry of any kind fits).
    #[must_use]
    pub fn new(sync_id: u8, maxlen: usize) -> Self {
        let maxlen = maxlen.clamp(HEADER_LEN + ENTRY_V6_LEN + 64, usize::from(u16::MAX));
        let mut b = Self {
            sync_id,
            maxlen,
            buf: Vec::with_capacity(maxlen),
            count: 0,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.sync_id, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        self.count = 0;
    }

    /// Entries in the current message.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the current message has no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends `conn` to the current message.
    ///
    /// # Errors
    /// [`PushError::Full`] when it does not fit (the message is unchanged),
    /// [`PushError::Invalid`] when it never can.
    pub fn push(&mut self, conn: &Conn) -> Result<(), PushError> {
        conn.check().map_err(PushError::Invalid)?;
        let len = conn.encoded_len();
        if HEADER_LEN + len > self.maxlen || len > 0x0fff {
            return Err(PushError::Invalid(WireError::EntryShort(0, len)));
        }
        let pad = (4 - self.buf.len() % 4) % 4;
        if self.count == MAX_CONNS || self.buf.len() + pad + len > self.maxlen {
            return Err(PushError::Full);
        }
        self.buf.resize(self.buf.len() + pad, 0);
        conn.encode(&mut self.buf);
        self.count += 1;
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] = self.count as u8;
        Ok(())
    }

    /// The finished datagram (`None` if it holds no entry); the builder
    /// starts a new message.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let out = std::mem::replace(&mut self.buf, Vec::with_capacity(self.maxlen));
        self.reset();
        Some(out)
    }
}

/// Checks a received datagram as the kernel does and returns its entries.
///
/// # Errors
/// The first [`WireError`]: like the kernel, one bad entry drops the whole
/// datagram.
pub fn parse(datagram: &[u8]) -> Result<Message, WireError> {
    if datagram.len() < HEADER_LEN {
        return Err(WireError::Short(datagram.len()));
    }
    if datagram[0] != 0 {
        return Err(WireError::Version0(datagram[0]));
    }
    if datagram[5] != VERSION {
        return Err(WireError::Version(datagram[5]));
    }
    let size = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if size != datagram.len() {
        return Err(WireError::Size {
            header: size,
            datagram: datagram.len(),
        });
    }
    let count = usize::from(datagram[4]);
    let mut conns = Vec::with_capacity(count);
    let mut skipped = Vec::new();
    let mut at = HEADER_LEN;
    for i in 0..count {
        if at + ENTRY_V4_LEN > datagram.len() {
            return Err(WireError::Count {
                header: count,
                found: i,
            });
        }
        let ver_size = u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]);
        let len = usize::from(ver_size & 0x0fff);
        if at + len > datagram.len() {
            return Err(WireError::Truncated(i));
        }
        if ver_size >> 12 != 0 {
            return Err(WireError::EntryVersion(i, (ver_size >> 12) as u8));
        }
        match parse_entry(i, &datagram[at..at + len])? {
            Ok(c) => conns.push(c),
            Err(e) => skipped.push(e),
        }
        at += (len + 3) & !3;
    }
    Ok(Message {
        sync_id: datagram[1],
        conns,
        skipped,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ip_at(b: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
    }
}

/// One entry: `Err` drops the datagram, `Ok(Err)` only the entry.
fn parse_entry(i: usize, e: &[u8]) -> Result<Result<Conn, WireError>, WireError> {
    // An entry's size counts its own header: less than the IPv4 fixed part
    // (a size of 0 included) cannot be one.
    if e.len() < ENTRY_V4_LEN {
        return Err(WireError::EntryShort(i, e.len()));
    }
    let v6 = e[0] & TYPE_INET6 != 0;
    let fixed = if v6 { ENTRY_V6_LEN } else { ENTRY_V4_LEN };
    if e.len() < fixed {
        return Err(WireError::EntryShort(i, e.len()));
    }
    let alen = if v6 { 16 } else { 4 };
    let mut conn = Conn {
        protocol: e[1],
        flags: be32(e, 4),
        state: be16(e, 8),
        client: SocketAddr::new(ip_at(e, 24, v6), be16(e, 10)),
        vip: SocketAddr::new(ip_at(e, 24 + alen, v6), be16(e, 12)),
        dest: SocketAddr::new(ip_at(e, 24 + 2 * alen, v6), be16(e, 14)),
        fwmark: be32(e, 16),
        timeout_s: be32(e, 20),
        seq: None,
        pe: None,
        local: None,
        session: None,
        syn_proxy: None,
        carried: false,
        isn_off: 0,
    };
    let mut pe_name: Option<&[u8]> = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut at = fixed;
    while at < e.len() {
        if at + 2 > e.len() {
            return Err(WireError::OptionLength(i, e[at]));
        }
        let (kind, len) = (e[at], usize::from(e[at + 1]));
        at += 2;
        if len == 0 || at + len > e.len() {
            return Err(WireError::OptionLength(i, kind));
        }
        let data = &e[at..at + len];
        at += len;
        match kind & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if conn.seq.is_some() || len != SEQ_DATA_LEN {
                    return Err(WireError::BadOption(i, kind));
                }
                let s = |o: usize| Seq {
                    init_seq: be32(data, o),
                    delta: be32(data, o + 4),
                    previous_delta: be32(data, o + 8),
                };
                conn.seq = Some((s(0), s(12)));
            }
            OPT_PE_DATA => {
                if pe_data.is_some() {
                    return Err(WireError::BadOption(i, kind));
                }
                pe_data = Some(data);
            }
            OPT_PE_NAME => {
                if pe_name.is_some() || len > PE_NAME_MAX {
                    return Err(WireError::BadOption(i, kind));
                }
                pe_name = Some(data);
            }
            _ if kind == OPT_RVS_LOCAL => {
                if conn.local.is_some() || (len != 6 && len != 18) {
                    return Err(WireError::BadOption(i, kind));
                }
                let lv6 = len == 18;
                conn.local = Some(SocketAddr::new(
                    ip_at(data, 0, lv6),
                    be16(data, if lv6 { 16 } else { 4 }),
                ));
            }
            _ if kind == OPT_RVS_CARRIED => {
                if conn.carried || len != 1 || data[0] != 1 {
                    return Err(WireError::BadOption(i, kind));
                }
                conn.carried = true;
            }
            _ if kind == OPT_RVS_SESSION => {
                if conn.session.is_some() || len < SESSION_OPT_LEN {
                    return Err(WireError::BadOption(i, kind));
                }
                conn.session = Some(SessionOpt {
                    mode: data[0],
                    flags: data[1],
                    server_next: be32(data, 2),
                });
            }
            _ if kind == OPT_RVS_SYNPROXY => {
                if conn.syn_proxy.is_some() || len < SYNPROXY_OPT_LEN {
                    return Err(WireError::BadOption(i, kind));
                }
                conn.syn_proxy = Some(SynProxyOpt {
                    isn: be32(data, 0),
                    ts_delta: be32(data, 4),
                    client_tsval: be32(data, 8),
                    client_win: be16(data, 12),
                    client_wscale: data[14],
                    server_wscale: data[15],
                });
            }
            _ if kind == OPT_RVS_ISN => {
                if conn.isn_off != 0 || len < ISN_OPT_LEN {
                    return Err(WireError::BadOption(i, kind));
                }
                conn.isn_off = be32(data, 0);
            }
            _ if kind & OPT_F_PARAM != 0 => {}
            // The kernel stops reading the entry here and skips it.
            _ => return Ok(Err(WireError::UnknownOption(i, kind))),
        }
    }
    if conn.flags & flags::TEMPLATE == 0 {
        match num_states(conn.protocol) {
            None => return Ok(Err(WireError::Protocol(i, conn.protocol))),
            Some(n) if conn.state >= n => {
                return Ok(Err(WireError::State(i, conn.protocol, conn.state)))
            }
            Some(_) => {}
        }
    }
    if pe_name.is_some() || pe_data.is_some() {
        conn.pe = Some((
            pe_name.unwrap_or_default().to_vec(),
            pe_data.unwrap_or_default().to_vec(),
        ));
    }
    Ok(Ok(conn))
}

#[cfg(test)]
mod tests;
