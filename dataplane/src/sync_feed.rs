//! The workers' connection-sync feed: what a worker tells control about a
//! session worth syncing ([`SyncRecord`]), and the bounded lock-free ring
//! that carries it ([`SyncRing`], one per worker, the worker producing and
//! control consuming).
//!
//! The ring is a single-producer/single-consumer array of fixed-size slots,
//! each slot [`WORDS`] atomic 64-bit words: the producer writes a record's
//! words with relaxed stores and publishes them with a release store of the
//! tail; the consumer reads the tail with acquire, copies the words out and
//! releases the slot with a release store of the head. No locks, no
//! allocation (the slots are allocated once), no system call, no `unsafe`.
//! A full ring refuses the record and counts it ([`SyncRing::dropped`]):
//! the session is sent again at its next threshold, or by the next full
//! resync.
//!
//! The other direction, sessions a backup installs, travels on the
//! worker's ordinary request channel ([`crate::pipeline::Pipeline::install_synced`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::addr::Addr;
use crate::session::ext::{ExtFlags, SessionExt};
use crate::session::Endpoint;
use crate::tables::Forward;
use crate::xmit::client_addr::ClientAddress;
use crate::xmit::seq_shift::SeqShift;

/// 64-bit words per ring slot.
pub const WORDS: usize = 16;

/// What kind of entry a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A connection.
    Conn,
    /// A persistence template (client masked, client port 0, no local address).
    Template,
}

/// One session (or template) as sync sends it: the facts the IPVS sync
/// entry carries, plus FULLNAT's local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    /// Connection or template.
    pub kind: RecordKind,
    /// IP protocol.
    pub proto: u8,
    /// Forwarding method.
    pub forward: Forward,
    /// IPVS state number (TCP: `IP_VS_TCP_S_*`; 0 for UDP... as rvs keeps
    /// UDP, ESTABLISHED, which sync sends as 0).
    pub state: u8,
    /// Client address and port (a template: the masked client, port 0).
    pub client: Endpoint,
    /// VIP and port.
    pub vip: Endpoint,
    /// Real server.
    pub rs: Endpoint,
    /// FULLNAT's local address and port (`None` otherwise).
    pub laddr: Option<Endpoint>,
    /// Seconds until it expires.
    pub timeout_s: u32,
    /// How the session tells its server the client's address (FULLNAT
    /// TCP; `None` otherwise).
    pub client_addr: ClientAddress,
    /// What the session's byte-stream changes remember (sequence shifts,
    /// ISNs seen, header sent); default for a session that has none.
    pub ext: SessionExt,
    /// FULLNAT TCP: the session's ISN offset toward the server
    /// ([`crate::xmit::isn`]); 0 for none.
    pub isn_off: u32,
}

/// A [`SessionExt`] as five ring words (see [`ext_of_words`]). The one
/// place that knows the layout of the ext in the ring: a field added to
/// [`SessionExt`] that must survive failover is added here and in
/// control's sync options (`control/src/sync/convert.rs`).
#[must_use]
pub fn ext_words(e: &SessionExt, mode: ClientAddress) -> [u64; 5] {
    let p = &e.syn_proxy;
    [
        u64::from(e.to_server.base) | u64::from(e.to_server.delta) << 32,
        u64::from(e.to_client.base) | u64::from(e.to_client.delta) << 32,
        u64::from(e.server_next) | u64::from(e.flags.bits()) << 32 | u64::from(mode as u8) << 40,
        u64::from(p.isn) | u64::from(p.ts_delta) << 32,
        u64::from(p.client_tsval)
            | u64::from(p.client_win) << 32
            | u64::from(p.client_wscale) << 48
            | u64::from(p.server_wscale) << 56,
    ]
}

/// The [`SessionExt`] and mode of [`ext_words`]' words.
#[must_use]
pub fn ext_of_words(w: [u64; 5]) -> (SessionExt, ClientAddress) {
    let shift = |x: u64| SeqShift::new(x as u32, (x >> 32) as u32);
    let e = SessionExt {
        to_server: shift(w[0]),
        to_client: shift(w[1]),
        server_next: w[2] as u32,
        flags: ExtFlags::from_bits_retain((w[2] >> 32) as u8),
        syn_proxy: crate::synproxy::ProxyState {
            isn: w[3] as u32,
            ts_delta: (w[3] >> 32) as u32,
            client_tsval: w[4] as u32,
            client_win: (w[4] >> 32) as u16,
            client_wscale: (w[4] >> 48) as u8,
            server_wscale: (w[4] >> 56) as u8,
        },
    };
    let mode = ClientAddress::ALL
        .get(usize::from((w[2] >> 40) as u8))
        .copied()
        .unwrap_or_default();
    (e, mode)
}

fn forward_code(f: Forward) -> u64 {
    match f {
        Forward::FullNat => 0,
        Forward::Nat => 1,
        Forward::Dr => 2,
        Forward::Tun => 3,
    }
}

fn forward_of(code: u64) -> Forward {
    match code & 3 {
        0 => Forward::FullNat,
        1 => Forward::Nat,
        2 => Forward::Dr,
        _ => Forward::Tun,
    }
}

fn addr_words(a: Addr) -> (u64, u64) {
    let (hi, lo) = a.0.split_at(8);
    (
        u64::from_be_bytes(hi.try_into().unwrap_or([0; 8])),
        u64::from_be_bytes(lo.try_into().unwrap_or([0; 8])),
    )
}

fn addr_of(hi: u64, lo: u64) -> Addr {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    Addr(b)
}

impl SyncRecord {
    /// The record as ring words.
    #[must_use]
    pub fn to_words(&self) -> [u64; WORDS] {
        let (c0, c1) = addr_words(self.client.ip);
        let (v0, v1) = addr_words(self.vip.ip);
        let (r0, r1) = addr_words(self.rs.ip);
        let l = self.laddr.unwrap_or_default();
        let (l0, l1) = addr_words(l.ip);
        let ports = u64::from(self.client.port)
            | u64::from(self.vip.port) << 16
            | u64::from(self.rs.port) << 32
            | u64::from(l.port) << 48;
        let misc = u64::from(self.proto)
            | u64::from(self.state) << 8
            | forward_code(self.forward) << 16
            | u64::from(self.kind == RecordKind::Template) << 18
            | u64::from(self.laddr.is_some()) << 19
            | u64::from(self.timeout_s) << 32;
        let [e0, e1, e2, e3, e4] = ext_words(&self.ext, self.client_addr);
        [
            c0,
            c1,
            v0,
            v1,
            r0,
            r1,
            l0,
            l1,
            ports,
            misc,
            e0,
            e1,
            e2,
            e3,
            e4,
            u64::from(self.isn_off),
        ]
    }

    /// The record from ring words.
    #[must_use]
    pub fn from_words(w: &[u64; WORDS]) -> Self {
        let (ports, misc) = (w[8], w[9]);
        let (ext, client_addr) = ext_of_words([w[10], w[11], w[12], w[13], w[14]]);
        let port = |shift: u32| (ports >> shift) as u16;
        Self {
            kind: if misc >> 18 & 1 == 1 {
                RecordKind::Template
            } else {
                RecordKind::Conn
            },
            proto: misc as u8,
            forward: forward_of(misc >> 16),
            state: (misc >> 8) as u8,
            client: Endpoint::at(addr_of(w[0], w[1]), port(0)),
            vip: Endpoint::at(addr_of(w[2], w[3]), port(16)),
            rs: Endpoint::at(addr_of(w[4], w[5]), port(32)),
            laddr: (misc >> 19 & 1 == 1).then(|| Endpoint::at(addr_of(w[6], w[7]), port(48))),
            timeout_s: (misc >> 32) as u32,
            client_addr,
            ext,
            isn_off: w[15] as u32,
        }
    }
}

/// A bounded single-producer/single-consumer ring of [`SyncRecord`]s (see
/// the module doc). Exactly one thread may push and one may pop.
#[derive(Debug)]
pub struct SyncRing {
    slots: Box<[[AtomicU64; WORDS]]>,
    mask: u64,
    /// Next slot to read (written by the consumer).
    head: AtomicU64,
    /// Next slot to write (written by the producer).
    tail: AtomicU64,
    /// Records refused because the ring was full (written by the producer).
    dropped: AtomicU64,
    /// Records pushed (written by the producer).
    pushed: AtomicU64,
}

impl SyncRing {
    /// A ring of `capacity` slots, rounded up to a power of two (at least 2).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(2).next_power_of_two();
        Self {
            slots: (0..n)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            mask: n as u64 - 1,
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
        }
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Producer: adds `r`; false (and counted) when the ring is full.
    #[inline]
    pub fn push(&self, r: &SyncRecord) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.mask {
            let d = self.dropped.load(Ordering::Relaxed);
            self.dropped.store(d + 1, Ordering::Relaxed);
            return false;
        }
        let slot = &self.slots[(tail & self.mask) as usize];
        for (a, v) in slot.iter().zip(r.to_words()) {
            a.store(v, Ordering::Relaxed);
        }
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        let p = self.pushed.load(Ordering::Relaxed);
        self.pushed.store(p + 1, Ordering::Relaxed);
        true
    }

    /// Consumer: takes the oldest record.
    pub fn pop(&self) -> Option<SyncRecord> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let slot = &self.slots[(head & self.mask) as usize];
        let words: [u64; WORDS] = std::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(SyncRecord::from_words(&words))
    }

    /// Records refused because the ring was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records pushed.
    #[must_use]
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(i: u16) -> SyncRecord {
        SyncRecord {
            kind: RecordKind::Conn,
            proto: 6,
            forward: Forward::FullNat,
            state: 1,
            client: Endpoint::new([10, 0, 0, 1], i),
            vip: Endpoint::new([10, 0, 0, 100], 80),
            rs: Endpoint::at(
                Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
                8080,
            ),
            laddr: Some(Endpoint::new([10, 0, 0, 200], 5000 + i)),
            timeout_s: 900,
            client_addr: ClientAddress::ProxyV2,
            ext: SessionExt {
                to_server: SeqShift::new(0xffff_fff0, 28),
                to_client: SeqShift::new(7, u32::MAX - 5),
                server_next: 0x8000_0001,
                flags: ExtFlags::all(),
                syn_proxy: crate::synproxy::ProxyState {
                    isn: 0xdead_beef,
                    ts_delta: u32::MAX - 1,
                    client_tsval: 0x8000_0003,
                    client_win: 0xfff1,
                    client_wscale: 7,
                    server_wscale: crate::synproxy::cookie::NO_WSCALE,
                },
            },
            isn_off: 0x8765_4321,
        }
    }

    #[test]
    fn records_round_trip_through_words() {
        let r = rec(7);
        assert_eq!(SyncRecord::from_words(&r.to_words()), r);
        let t = SyncRecord {
            kind: RecordKind::Template,
            proto: 17,
            forward: Forward::Dr,
            state: 0,
            laddr: None,
            timeout_s: u32::MAX,
            client_addr: ClientAddress::None,
            ext: SessionExt::default(),
            ..r
        };
        assert_eq!(SyncRecord::from_words(&t.to_words()), t);
    }

    #[test]
    fn a_full_ring_refuses_and_counts() {
        let ring = SyncRing::new(3);
        assert_eq!(ring.capacity(), 4);
        for i in 0..4 {
            assert!(ring.push(&rec(i)));
        }
        assert!(!ring.push(&rec(9)));
        assert_eq!(ring.dropped(), 1);
        assert_eq!(ring.pop(), Some(rec(0)));
        assert!(ring.push(&rec(4)));
        let rest: Vec<_> = std::iter::from_fn(|| ring.pop()).collect();
        assert_eq!(rest, (1..5).map(rec).collect::<Vec<_>>());
        assert_eq!(ring.pushed(), 5);
    }

    #[test]
    fn a_producer_and_a_consumer_thread_see_every_record_in_order() {
        let ring = Arc::new(SyncRing::new(64));
        let p = Arc::clone(&ring);
        let producer = std::thread::spawn(move || {
            let mut i = 0u16;
            while i < 20_000 {
                if p.push(&rec(i)) {
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0u16;
        while next < 20_000 {
            match ring.pop() {
                Some(r) => {
                    assert_eq!(r, rec(next));
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(ring.pushed(), 20_000);
    }
}
