//! The fragment table: how the later fragments of an IP datagram follow
//! its first one, without reassembly.
//!
//! Only the first fragment of a datagram (offset 0) carries the transport
//! header, so only it can be looked up as a flow: it finds or creates its
//! session as any packet does. The pipeline then files the datagram here
//! by what every fragment carries, (source, destination, protocol,
//! identification) (IPv4's 16-bit identification; IPv6's 32-bit one from
//! the fragment header), with what its later fragments must do
//! ([`Follow`]): go through the same session, or to the worker that owns
//! it. Katran-class balancers forward fragments this way; the kernel
//! reassembles (IPVS sees whole datagrams), DPVS drops them.
//!
//! An entry ends when the datagram's bytes have all been seen (the last
//! fragment gives its length; the offsets and lengths add up), or after
//! [`TIMEOUT_MS`]. A later fragment that arrives before its first one, or
//! after its entry ended, finds nothing: the worker holds it a while for
//! its first one ([`crate::frag_hold`]; counted `held`, then `released`,
//! or dropped as `no_first` when its first does not come, `hold_full` when
//! the hold has no room). Bounded: [`CAPACITY`] entries per worker, in
//! buckets of [`WAYS`]; a first fragment that finds its bucket full of live
//! entries is dropped (`table_full`), since its datagram could not be
//! delivered whole anyway. Entries that time out before their datagram is
//! complete are counted (`timed_out`).
//!
//! Overlaps: each entry keeps the byte ranges seen ([`SPANS`] of them,
//! adjacent ones merged). A later fragment that overlaps them partly, or
//! goes past the end the last fragment gave, or a second last fragment
//! that disagrees, ends the datagram (its entry is removed, so its further
//! fragments go as `no_first`) and is dropped, as Linux discards a
//! datagram with overlapping fragments (RFC 5722; `IPSTATS_MIB_REASMOVERLAPS`)
//! : overlapping fragments are how a transport header is rewritten behind
//! a filter's back (RFC 1858). A fragment wholly inside what was seen (a
//! duplicate) is dropped alone and the datagram lives on, as Linux's
//! `IPFRAG_DUP`. A first fragment sent again while its datagram is filed
//! is such a duplicate (or, if longer, an overlap). A datagram that would
//! need more than [`SPANS`] separate ranges (holes left by fragments far out
//! of order) is ended the same way. All counted as `overlapping`.
//!
//! Plain data, one per worker: no allocation after creation, no lock.

use crate::addr::Addr;
use crate::session::FlowKey;
use crate::time::Millis;

/// Entries per worker.
pub const CAPACITY: usize = 1024;
/// Entries per bucket.
pub const WAYS: usize = 4;
/// How long the later fragments of a datagram are waited for after its
/// first one (Linux's reassembly waits 30 s; a forwarder need not).
pub const TIMEOUT_MS: u64 = 2_000;
/// Separate byte ranges a datagram's entry tracks (in-order or reversed
/// fragments need one or two).
pub const SPANS: usize = 8;

/// What every fragment of one datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragKey {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Identification (IPv4: 16 bits; IPv6: 32 bits).
    pub id: u32,
    /// The datagram's protocol (IPv6: the fragment header's next header).
    pub proto: u8,
}

impl FragKey {
    fn hash(&self) -> u32 {
        FlowKey {
            src: crate::session::Endpoint::at(self.src, (self.id >> 16) as u16),
            dst: crate::session::Endpoint::at(self.dst, self.id as u16),
            proto: self.proto,
        }
        .stable_hash()
    }
}

/// What the later fragments of a datagram do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Go through the session that the flow key `.0` finds (the first
    /// fragment's key as it arrived; for an ICMP error, the quoted flow
    /// turned around, as the relay looks it up).
    Session(FlowKey),
    /// Go to worker `.0`, which owns the datagram's flow.
    Worker(u16),
    /// Dropped as the first one was: its service inserts the client's
    /// address (a TOA option, a PROXY header), which a fragment cannot
    /// take (counted `client_address`).
    Refused,
}

/// A fragment of a datagram, as the table needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Offset of its data in the datagram, in bytes.
    pub offset: u32,
    /// Bytes of data it carries (after the IP header and, for IPv6, the
    /// fragment header).
    pub len: u32,
    /// More fragments follow (MF).
    pub more: bool,
}

impl Piece {
    /// The datagram's length, if this is its last fragment.
    fn total(&self) -> Option<u32> {
        (!self.more).then_some(self.offset + self.len)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FragKey,
    follow: Follow,
    expires: Millis,
    /// Byte ranges seen, `[start, end)`, disjoint and not adjacent; the
    /// first `n` are used.
    spans: [(u32, u32); SPANS],
    n: u8,
    /// The datagram's length, once its last fragment came (0: not yet).
    total: u32,
}

/// How a fragment fits what its datagram's entry saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// New bytes, filed.
    New,
    /// Wholly inside what was seen (a duplicate).
    Duplicate,
    /// Overlaps partly, disagrees with the datagram's end, or leaves too
    /// many ranges: the datagram is ended.
    Overlap,
}

impl Entry {
    fn new(key: FragKey, follow: Follow, first: Piece, now: Millis) -> Self {
        let mut e = Self {
            key,
            follow,
            expires: Millis(now.0 + TIMEOUT_MS),
            spans: [(0, 0); SPANS],
            n: 0,
            total: 0,
        };
        e.add(first);
        e
    }

    fn complete(&self) -> bool {
        self.total != 0 && self.n == 1 && self.spans[0] == (0, self.total)
    }

    /// Files `p`'s bytes, if they fit (see [`Fit`]).
    fn add(&mut self, p: Piece) -> Fit {
        let (a, b) = (p.offset, p.offset.saturating_add(p.len));
        let used = &self.spans[..usize::from(self.n)];
        if let Some(&(s, e)) = used.iter().find(|&&(s, e)| a < e && s < b) {
            return if s <= a && b <= e && (p.more || p.total() == Some(self.total)) {
                Fit::Duplicate
            } else {
                Fit::Overlap
            };
        }
        let end = used.iter().map(|&(_, e)| e).max().unwrap_or(0);
        match p.total() {
            Some(t) if (self.total != 0 && t != self.total) || t < end => return Fit::Overlap,
            Some(t) => self.total = t,
            None if self.total != 0 && b > self.total => return Fit::Overlap,
            None => {}
        }
        if a == b {
            return Fit::New;
        }
        // Insert in order, merging with the neighbours it touches.
        let mut spans = [(0u32, 0u32); SPANS + 1];
        let mut k = 0;
        let mut new = Some((a, b));
        for &(s, e) in used {
            if let Some((na, nb)) = new {
                if nb < s {
                    spans[k] = (na, nb);
                    k += 1;
                    new = None;
                } else if nb == s || na == e {
                    new = Some((na.min(s), nb.max(e)));
                    continue;
                }
            }
            if k > 0 && spans[k - 1].1 == s {
                spans[k - 1].1 = e;
            } else {
                spans[k] = (s, e);
                k += 1;
            }
        }
        if let Some(n) = new {
            spans[k] = n;
            k += 1;
        }
        if k > SPANS {
            return Fit::Overlap;
        }
        self.spans[..k].copy_from_slice(&spans[..k]);
        self.n = k as u8;
        Fit::New
    }
}

/// Fragment counters of one worker, in the order of [`Self::NAMES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Fragments forwarded (first ones included).
    pub forwarded: u64,
    /// Later fragments dropped: their first fragment did not come within
    /// [`TIMEOUT_MS`] while they were held (or their datagram's entry had
    /// ended).
    pub no_first: u64,
    /// First fragments dropped because their bucket was full.
    pub table_full: u64,
    /// Datagrams whose later fragments stopped coming ([`TIMEOUT_MS`]).
    pub timed_out: u64,
    /// Fragments dropped because they overlap what their datagram sent
    /// already (see the module doc): duplicates alone, the rest with
    /// their datagram.
    pub overlapping: u64,
    /// Later fragments held because they came before their first one
    /// ([`crate::frag_hold`]).
    pub held: u64,
    /// Held fragments offered again once their first one was filed (sent
    /// on, unless they overlap or their datagram was refused).
    pub released: u64,
    /// Later fragments dropped because the hold had no room for them.
    pub hold_full: u64,
    /// Fragments dropped because their service inserts the client's
    /// address (`client_address`), which cannot go into a fragment.
    pub client_address: u64,
}

impl FragCounters {
    /// Names in metrics and `--stats-dp`.
    pub const NAMES: [&'static str; 9] = [
        "forwarded",
        "no_first",
        "table_full",
        "timed_out",
        "overlapping",
        "held",
        "released",
        "hold_full",
        "client_address",
    ];

    /// The counters, in the order of [`Self::NAMES`].
    #[must_use]
    pub fn values(&self) -> [u64; 9] {
        [
            self.forwarded,
            self.no_first,
            self.table_full,
            self.timed_out,
            self.overlapping,
            self.held,
            self.released,
            self.hold_full,
            self.client_address,
        ]
    }
}

/// Why a later fragment cannot follow its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfollowed {
    /// Its datagram is not filed: its first fragment has not come (or came
    /// too long ago, or its datagram ended).
    NotFiled,
    /// It overlaps what its datagram sent already (counted).
    Overlap,
}

/// Why a first fragment was not filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One worker's fragment table.
#[derive(Debug)]
pub struct FragTable {
    slots: Box<[Option<Entry>]>,
    sweep_at: usize,
    /// This table's counters.
    pub counters: FragCounters,
    /// The datagram the pipeline filed last, until it
    /// hands it to the worker (which releases the fragments it holds for
    /// it).
    pub(crate) filed: Option<FragKey>,
}

impl Default for FragTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FragTable {
    /// An empty table of [`CAPACITY`] entries.
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: vec![None; CAPACITY].into_boxed_slice(),
            sweep_at: 0,
            counters: FragCounters::default(),
            filed: None,
        }
    }

    /// Live entries (for tests and listings).
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|e| e.is_some()).count()
    }

    /// True when no entry is filed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    fn bucket(&self, key: &FragKey) -> std::ops::Range<usize> {
        let buckets = self.slots.len() / WAYS;
        let b = key.hash() as usize % buckets;
        b * WAYS..(b + 1) * WAYS
    }

    /// Files a datagram by its first fragment `first`: its later
    /// fragments will `follow`. A datagram already filed under `key` (an
    /// identification used again, the first fragment sent again) is
    /// replaced. Expired entries of the bucket make room (counted as
    /// timed out if incomplete).
    ///
    /// # Errors
    /// [`Full`] when every entry of the bucket is live (counted).
    pub fn insert(
        &mut self,
        key: FragKey,
        follow: Follow,
        first: Piece,
        now: Millis,
    ) -> Result<(), Full> {
        let range = self.bucket(&key);
        let mut free = None;
        for i in range {
            match self.slots[i] {
                Some(e) if e.key == key => {
                    free = Some(i);
                    break;
                }
                Some(e) if e.expires <= now => {
                    self.counters.timed_out += u64::from(!e.complete());
                    self.slots[i] = None;
                    free = free.or(Some(i));
                }
                Some(_) => {}
                None => free = free.or(Some(i)),
            }
        }
        let Some(i) = free else {
            self.counters.table_full += 1;
            return Err(Full);
        };
        self.slots[i] = Some(Entry::new(key, follow, first, now));
        Ok(())
    }

    /// True (counted as `overlapping`) if the first fragment `first` of
    /// datagram `key` comes while that datagram is filed and live: a
    /// duplicate is refused alone, a longer one ends the datagram. Checked
    /// before the first fragment goes through its flow.
    pub fn first_again(&mut self, key: &FragKey, first: Piece, now: Millis) -> bool {
        let range = self.bucket(key);
        for i in range {
            let Some(e) = self.slots[i].as_mut() else {
                continue;
            };
            if e.key != *key || e.expires <= now {
                continue;
            }
            self.counters.overlapping += 1;
            if e.add(first) != Fit::Duplicate {
                self.slots[i] = None;
            }
            return true;
        }
        false
    }

    /// What a later fragment `piece` of the datagram `key` does: where its
    /// first one went, or why it cannot follow it: its datagram is not
    /// filed (not yet, or its entry timed out: the caller holds it or drops
    /// it), or (counted as `overlapping`) it overlaps what the datagram
    /// sent already. The entry ends when its datagram is complete.
    ///
    /// # Errors
    /// [`Unfollowed`], as above.
    pub fn follow(
        &mut self,
        key: &FragKey,
        piece: Piece,
        now: Millis,
    ) -> Result<Follow, Unfollowed> {
        let range = self.bucket(key);
        for i in range {
            let Some(e) = self.slots[i].as_mut() else {
                continue;
            };
            if e.key != *key {
                continue;
            }
            if e.expires <= now {
                self.counters.timed_out += u64::from(!e.complete());
                self.slots[i] = None;
                break;
            }
            match e.add(piece) {
                Fit::New => {}
                Fit::Duplicate => {
                    self.counters.overlapping += 1;
                    return Err(Unfollowed::Overlap);
                }
                Fit::Overlap => {
                    self.counters.overlapping += 1;
                    self.slots[i] = None;
                    return Err(Unfollowed::Overlap);
                }
            }
            let follow = e.follow;
            if e.complete() {
                self.slots[i] = None;
            }
            return Ok(follow);
        }
        Err(Unfollowed::NotFiled)
    }

    /// Examines up to `budget` entries and removes the expired ones.
    pub fn sweep(&mut self, now: Millis, budget: usize) {
        let n = self.slots.len();
        for _ in 0..budget.min(n) {
            let i = self.sweep_at;
            self.sweep_at = (self.sweep_at + 1) % n;
            if let Some(e) = self.slots[i] {
                if e.expires <= now {
                    self.counters.timed_out += u64::from(!e.complete());
                    self.slots[i] = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Endpoint;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 100]),
            id,
            proto: 17,
        }
    }

    fn flow() -> Follow {
        Follow::Session(FlowKey {
            src: Endpoint::new([10, 0, 0, 1], 5000),
            dst: Endpoint::new([10, 0, 0, 100], 53),
            proto: 17,
        })
    }

    const fn piece(offset: u32, len: u32, more: bool) -> Piece {
        Piece { offset, len, more }
    }

    #[test]
    fn later_fragments_follow_until_the_datagram_is_complete() {
        let mut t = FragTable::new();
        t.insert(key(7), flow(), piece(0, 1480, true), Millis(0))
            .unwrap();
        // The last fragment before the middle one: the entry waits on.
        assert_eq!(
            t.follow(&key(7), piece(2960, 100, false), Millis(1)),
            Ok(flow())
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.follow(&key(7), piece(1480, 1480, true), Millis(2)),
            Ok(flow())
        );
        assert!(t.is_empty(), "complete: the entry ended");
        // A duplicate after the end finds nothing.
        assert_eq!(
            t.follow(&key(7), piece(1480, 1480, true), Millis(3)),
            Err(Unfollowed::NotFiled)
        );
        assert_eq!(t.counters.timed_out, 0);
    }

    #[test]
    fn a_later_fragment_before_its_first_is_not_filed() {
        let mut t = FragTable::new();
        assert_eq!(
            t.follow(&key(1), piece(1480, 20, false), Millis(0)),
            Err(Unfollowed::NotFiled)
        );
        assert_eq!(t.counters, FragCounters::default(), "the caller counts");
        // Other datagrams (another id) are not followed either.
        t.insert(key(2), Follow::Worker(1), piece(0, 8, true), Millis(0))
            .unwrap();
        assert_eq!(
            t.follow(&key(3), piece(8, 8, false), Millis(0)),
            Err(Unfollowed::NotFiled)
        );
        assert_eq!(
            t.follow(&key(2), piece(8, 8, false), Millis(0)),
            Ok(Follow::Worker(1))
        );
    }

    #[test]
    fn entries_time_out_and_are_counted() {
        let mut t = FragTable::new();
        t.insert(key(1), flow(), piece(0, 8, true), Millis(0))
            .unwrap();
        t.insert(key(2), flow(), piece(0, 8, true), Millis(0))
            .unwrap();
        assert_eq!(
            t.follow(&key(1), piece(8, 8, true), Millis(TIMEOUT_MS)),
            Err(Unfollowed::NotFiled)
        );
        assert_eq!(t.counters.timed_out, 1);
        t.sweep(Millis(TIMEOUT_MS - 1), CAPACITY);
        assert_eq!(t.len(), 1, "not yet");
        t.sweep(Millis(TIMEOUT_MS), CAPACITY);
        assert!(t.is_empty());
        assert_eq!(t.counters.timed_out, 2);
    }

    #[test]
    fn a_full_bucket_refuses_until_an_entry_expires() {
        let mut t = FragTable::new();
        // Keys that share one bucket.
        let b = t.bucket(&key(0));
        let same: Vec<_> = (0..100_000)
            .map(key)
            .filter(|k| t.bucket(k) == b)
            .take(WAYS + 1)
            .collect();
        for k in &same[..WAYS] {
            t.insert(*k, flow(), piece(0, 8, true), Millis(0)).unwrap();
        }
        assert_eq!(
            t.insert(same[WAYS], flow(), piece(0, 8, true), Millis(1)),
            Err(Full)
        );
        assert_eq!(t.counters.table_full, 1);
        // The same datagram again replaces its own entry.
        t.insert(same[0], Follow::Worker(3), piece(0, 8, true), Millis(1))
            .unwrap();
        assert_eq!(
            t.follow(&same[0], piece(8, 8, true), Millis(1)),
            Ok(Follow::Worker(3))
        );
        // Once expired, the oldest make room.
        t.insert(
            same[WAYS],
            flow(),
            piece(0, 8, true),
            Millis(TIMEOUT_MS + 1),
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.counters.timed_out, WAYS as u64);
    }

    #[test]
    fn overlaps_end_the_datagram_and_duplicates_are_dropped_alone() {
        let mut t = FragTable::new();
        t.insert(key(1), flow(), piece(0, 24, true), Millis(0))
            .unwrap();
        // Offset 8 over the first's TCP header (RFC 1858's attack): the
        // datagram ends; what follows finds nothing.
        assert_eq!(
            t.follow(&key(1), piece(8, 24, true), Millis(0)),
            Err(Unfollowed::Overlap)
        );
        assert!(t.is_empty());
        assert_eq!(
            t.follow(&key(1), piece(24, 8, false), Millis(0)),
            Err(Unfollowed::NotFiled)
        );
        assert_eq!(t.counters.overlapping, 1);
        // A duplicate: dropped alone, the datagram completes.
        t.insert(key(2), flow(), piece(0, 16, true), Millis(0))
            .unwrap();
        assert_eq!(
            t.follow(&key(2), piece(32, 8, false), Millis(0)),
            Ok(flow())
        );
        assert_eq!(
            t.follow(&key(2), piece(32, 8, false), Millis(0)),
            Err(Unfollowed::Overlap),
            "last again"
        );
        assert_eq!(
            t.follow(&key(2), piece(8, 8, true), Millis(0)),
            Err(Unfollowed::Overlap),
            "inside the first"
        );
        assert_eq!(t.counters.overlapping, 3);
        assert!(
            t.first_again(&key(2), piece(0, 16, true), Millis(0)),
            "the first again"
        );
        assert_eq!(t.counters.overlapping, 4);
        assert_eq!(
            t.follow(&key(2), piece(16, 16, true), Millis(0)),
            Ok(flow())
        );
        assert!(t.is_empty(), "complete");
        // A longer first fragment sent again ends it.
        t.insert(key(3), flow(), piece(0, 16, true), Millis(0))
            .unwrap();
        assert!(t.first_again(&key(3), piece(0, 24, true), Millis(0)));
        assert!(t.is_empty());
        assert!(
            !t.first_again(&key(3), piece(0, 24, true), Millis(0)),
            "not filed"
        );
        // Past the end the last fragment gave, or a second end: ended.
        for (p, q) in [
            (piece(40, 8, false), piece(48, 8, true)),
            (piece(40, 8, false), piece(56, 8, false)),
            (piece(40, 8, false), piece(24, 8, false)),
        ] {
            t.insert(key(4), flow(), piece(0, 16, true), Millis(0))
                .unwrap();
            assert_eq!(t.follow(&key(4), p, Millis(0)), Ok(flow()));
            assert_eq!(
                t.follow(&key(4), q, Millis(0)),
                Err(Unfollowed::Overlap),
                "{q:?}"
            );
            assert!(t.is_empty());
        }
    }

    #[test]
    fn fragments_in_any_order_complete_and_too_many_holes_end_it() {
        let mut t = FragTable::new();
        // Reversed, then shuffled: complete exactly once every byte came.
        for order in [[4u32, 3, 2, 1], [2, 4, 1, 3]] {
            t.insert(key(5), flow(), piece(0, 8, true), Millis(0))
                .unwrap();
            for (i, k) in order.iter().enumerate() {
                assert_eq!(t.len(), 1, "{order:?} before {i}");
                let p = piece(k * 8, 8, *k != 4);
                assert_eq!(t.follow(&key(5), p, Millis(0)), Ok(flow()));
            }
            assert!(t.is_empty(), "{order:?}");
        }
        // Every other block: SPANS ranges fit, one more ends it.
        t.insert(key(6), flow(), piece(0, 8, true), Millis(0))
            .unwrap();
        for k in 1..SPANS as u32 {
            assert_eq!(
                t.follow(&key(6), piece(k * 16, 8, true), Millis(0)),
                Ok(flow())
            );
        }
        assert_eq!(
            t.follow(&key(6), piece(SPANS as u32 * 16, 8, true), Millis(0)),
            Err(Unfollowed::Overlap)
        );
        assert!(t.is_empty());
        assert_eq!(t.counters.overlapping, 1);
    }

    #[test]
    fn names_match_values() {
        let c = FragCounters {
            forwarded: 1,
            no_first: 2,
            table_full: 3,
            timed_out: 4,
            overlapping: 5,
            held: 6,
            released: 7,
            hold_full: 8,
            client_address: 9,
        };
        assert_eq!(c.values(), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(FragCounters::NAMES.len(), c.values().len());
    }
}
