//! The **table** method (no DPDK): a [`SessionTable`] built in-process at
//! 1 K, 1 M, 10 M and 2^24 sessions; bytes per session from the table's own
//! sizes and from RSS, and the cost of a lookup (independent lookups, and a
//! dependent chain where each key depends on the previous result).

use crate::gen::{CLIENT_MAC, VIP};
use crate::procfs::rss_bytes;
use crate::Res;
use dataplane::session::{Endpoint, Lookup, Session, SessionTable, SlotId, TcpState};
use dataplane::time::Millis;
use dataplane::wire::ipv4;
use std::hint::black_box;
use std::time::Instant;

// ---------------------------------------------------------------------------
// Session table alone (no DPDK).

#[derive(Debug, Clone, Default)]
pub(crate) struct TableRow {
    pub(crate) n: u32,
    /// A dependent random read in a buffer of the table's size (the machine's
    /// memory latency there, TLB misses included).
    pub(crate) mem_ns: f64,
    pub(crate) sized_bytes: f64,
    pub(crate) rss_bytes: f64,
    pub(crate) insert_ns: f64,
    pub(crate) lookup_ns: f64,
    pub(crate) lookup_dep_ns: f64,
}

fn table_session(i: u32) -> Session {
    let b = i.to_be_bytes();
    Session {
        proto: ipv4::PROTO_TCP,
        client: Endpoint::new([10, b[1], b[2], b[3]], 40000),
        vip: VIP,
        laddr: Endpoint::new([10, 200, b[1], 1], u16::from_be_bytes([b[2], b[3]])),
        rs: Endpoint::new([10, 77, 0, 11], 8080),
        service: 0,
        rs_index: 0,
        forward: dataplane::tables::Forward::FullNat,
        laddr_index: 0,
        state: TcpState::Established,
        expires: Millis(u64::MAX),
        client_port: 0,
        client_mac: CLIENT_MAC,
        rs_port: 0,
        rs_mac: [0x02, 0, 0, 0, 0x11, 0],
        client_addr: dataplane::session::ClientAddress::None,
        isn_off: 0,
    }
}

/// What `SessionTable::new(n)` uses for IPv4 sessions, by its own sizing
/// rule (`SessionTable::footprint`: hot slab, index, ext and free list; the
/// IPv6 addresses' cold array is reserved but not committed).
pub(crate) fn sized_bytes(n: u32) -> u64 {
    SessionTable::footprint(n).ipv4() as u64
}

#[inline]
pub(crate) fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[inline]
pub(crate) fn below(r: u64, n: u32) -> u32 {
    (((r >> 32) * u64::from(n)) >> 32) as u32
}

/// Nanoseconds per read of a pointer chase through up to 2^20 random cache
/// lines of a `bytes`-sized buffer.
fn chase_ns(bytes: u64) -> f64 {
    let lines = (bytes / 64).max(2) as usize;
    let n = lines.min(1 << 20);
    let mut buf = vec![0u64; lines * 8];
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut perm: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        perm.swap(i, below(xorshift(&mut x), i as u32 + 1) as usize);
    }
    // Spread the chosen lines over the whole buffer.
    let stride = (lines / n).max(1);
    let at = |k: usize| (perm[k] as usize * stride + (k * 7) % stride) * 8;
    for k in 0..n {
        buf[at(k)] = at((k + 1) % n) as u64;
    }
    let hops = 4_000_000u32;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut i = at(0);
        let t = Instant::now();
        for _ in 0..hops {
            i = buf[i] as usize;
        }
        black_box(i);
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / f64::from(hops));
    }
    best
}

/// The fastest of three runs of `f` (ns per operation): the least disturbed
/// on a shared machine.
fn best_of(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::MAX, f64::min)
}

pub(crate) fn table_bench(n: u32, lookups: u32) -> Res<TableRow> {
    // Small tables are built three times (the fastest build counts).
    let builds = if n <= 1_000_000 { 3 } else { 1 };
    let mut insert_ns = f64::MAX;
    let (mut rss0, mut rss1) = (0, 0);
    let mut table = None;
    for _ in 0..builds {
        drop(table.take());
        rss0 = rss_bytes()?;
        let mut t = SessionTable::new(n, 0x5eed_1234);
        let t0 = Instant::now();
        for i in 0..n {
            t.insert(table_session(i))
                .map_err(|e| format!("table: insert {i} of {n}: {e}"))?;
        }
        insert_ns = insert_ns.min(t0.elapsed().as_secs_f64() * 1e9 / f64::from(n));
        rss1 = rss_bytes()?;
        table = Some(t);
    }
    let t = table.ok_or("table: not built")?;
    let key = |i: u32, k: u32| {
        let s = table_session(i);
        if k & 1 == 0 {
            s.client_key()
        } else {
            s.rs_key()
        }
    };
    // Cost of making the keys alone, subtracted from both loops below.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let base_ns = best_of(|| {
        let t0 = Instant::now();
        for k in 0..lookups {
            black_box(key(below(xorshift(&mut x), n), k));
        }
        t0.elapsed().as_secs_f64() * 1e9 / f64::from(lookups)
    });
    // Independent lookups: random keys, nothing depends on the result.
    let mut hits = 0u64;
    let lookup_ns = best_of(|| {
        let t0 = Instant::now();
        for k in 0..lookups {
            if let Lookup::Hit(..) =
                black_box(t.lookup(&key(below(xorshift(&mut x), n), k), Millis(0)))
            {
                hits += 1;
            }
        }
        t0.elapsed().as_secs_f64() * 1e9 / f64::from(lookups)
    }) - base_ns;
    // Dependent chain: the next key is derived from the slot just found, so
    // each lookup's cache misses are paid in full (a latency, not a rate).
    let lookup_dep_ns = best_of(|| {
        let mut i = 0u32;
        let t0 = Instant::now();
        for k in 0..lookups {
            let slot = match t.lookup(&key(i, k), Millis(0)) {
                Lookup::Hit(SlotId(s), _) => {
                    hits += 1;
                    s
                }
                _ => 0,
            };
            let mut y = u64::from(slot) ^ (u64::from(k) << 32) | 1;
            i = below(xorshift(&mut y).wrapping_mul(0x9e37_79b9_7f4a_7c15), n);
        }
        t0.elapsed().as_secs_f64() * 1e9 / f64::from(lookups)
    }) - base_ns;
    if hits != 6 * u64::from(lookups) {
        return Err(format!(
            "table: {} of {} lookups missed at {n} sessions",
            6 * u64::from(lookups) - hits,
            6 * u64::from(lookups)
        )
        .into());
    }
    drop(t);
    let mem_ns = chase_ns(sized_bytes(n));
    Ok(TableRow {
        n,
        mem_ns,
        sized_bytes: sized_bytes(n) as f64 / f64::from(n),
        rss_bytes: rss1.saturating_sub(rss0) as f64 / f64::from(n),
        insert_ns,
        lookup_ns,
        lookup_dep_ns,
    })
}
