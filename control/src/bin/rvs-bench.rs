//! `rvs-bench`: the data-path benchmark of issue #3, run by `scripts/bench`.
//!
//! Not a test: it prints figures, and fails (exit 1) only when a run is
//! broken (a device or worker misbehaves, a packet the generator meant to hit
//! a session is dropped). Missing a target is never a failure. What each
//! figure means is written down in BENCHMARKS.md; in short:
//!
//! * **table** (no DPDK): a [`SessionTable`] built in-process at 1 K, 1 M,
//!   10 M and 2^24 sessions; bytes per session from the table's own sizes and
//!   from RSS, and the cost of a lookup (independent lookups, and a dependent
//!   chain where each key depends on the previous result).
//! * **loop** (the headline figures): the real [`dataplane::worker::Worker::run`], built as rvsd
//!   builds it, transmitting into the net_ring queue it receives from, as
//!   testpmd's `--tx-first` loop does; a cycle of sessions makes each output
//!   packet the next hop's valid input (see "The loop method" below). Rates
//!   per second of the worker's own CPU time; 1 and 2 workers, the two-worker
//!   windows interleaved with one-worker windows for the scaling.
//! * **stream**: the real [`dataplane::worker::Worker::run`] on lcore 1 (CPU 1), built as rvsd
//!   builds it, and a generator on the main lcore (CPU 0). Generator TX queue
//!   `net_ringD/q` -> the same ring -> worker RX queue `net_ringD/q`; the
//!   worker transmits on `net_null0` (TX frees the mbufs, as a NIC's TX
//!   completion would). First SYNs for N distinct flows (new connections per
//!   second), then 64-byte ACK/data frames over those N established flows,
//!   half client->VIP, half RS->local address, in a fixed pseudo-random flow
//!   order. Mpps is wall-clock; cycles/packet is the worker thread's own CPU
//!   time (`/proc/self/task/TID/schedstat`) in TSC cycles per packet. On a
//!   2-CPU VM this measures the hand-over between the CPUs more than rvs.
//! * **pause**: 1 and 2 workers, each alone on its CPU (the machine has two),
//!   with no generator running while they are measured. Each worker polls 128
//!   `net_ring` RX queues. A round: pause every worker (a `Publish` request
//!   whose reply channel has no buffer, so the worker publishes its counters
//!   and then blocks in the reply until the main lcore takes it), read the
//!   counters and the worker's CPU time, refill every queue, resume, sleep
//!   while they work, and pause them again before the queues run dry.
//!   Windows in which a worker polled an empty set of queues are discarded.
//! * **scrape** (`--scrape SECS`, issue #8): the loop method's one worker
//!   on an established cycle, run in alternating windows with and without a
//!   Prometheus-style scraper: a thread that sends `GET /metrics` over HTTP
//!   every second to a listener on the main lcore, which answers as rvsd's
//!   metrics server does (a `Publish` request to the worker and a wait for
//!   it, the worker's counters, every port's ethdev stats and xstats, the
//!   `prometheus` text encoding of `rvs_control::metrics`). Prints the
//!   median per-CPU-second and wall-clock rates of both kinds of window.

use std::error::Error;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::dpdk::{
    rdtsc, Eal, LcoreId, MbufBatch, Mempool, Port, PortConfig, QueueId, TxQueue,
};
use dataplane::neigh::{NeighEntry, NeighMap};
use dataplane::pipeline::{client_owner, Pipeline, Verdict};
use dataplane::runtime;
use dataplane::sched::SchedKind;
use dataplane::session::{
    Endpoint, FlowKey, Lookup, Session, SessionTable, SlotId, TcpState, Timeouts,
};
use dataplane::stats::DropReason;
use dataplane::tables::{Interface, RealServer, Service, Tables};
use dataplane::time::Millis;
use dataplane::wire::{ipv4, tcp};
use dataplane::worker::{Event, Idle, Request, Retired, WorkerShared};
use rvs_control::metrics;

type Res<T> = Result<T, Box<dyn Error>>;

// ---------------------------------------------------------------------------
// Addressing of the synthetic service.

const VIP: Endpoint = Endpoint::new([10, 77, 0, 100], 80);
const IF_ADDR: [u8; 4] = [10, 77, 0, 2];
const IF_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
/// Real servers (round robin).
const N_RS: u32 = 4;
/// FULLNAT local addresses: 256 x 64512 ports, so 10 M sessions fit on one worker.
const N_LADDR: u32 = 256;
const LPORT: (u16, u16) = (1024, 65535);
/// RX queues per worker in the pause method (8 net_ring devices x 16 queues).
const PAUSE_QUEUES: usize = 128;
/// Packets a net_ring queue holds (its ring has 1024 slots).
const RING_SLOTS: usize = 1023;
/// Queues per net_ring device.
const RING_QUEUES: usize = 16;
/// net_ring devices (16 x 16 queues = 2 workers x 128).
const RING_DEVS: usize = 16;
/// Worker lcores (lcore 1 runs on CPU 1, lcore 2 on CPU 0; see EAL args).
const WORKER_LCORES: [u32; 2] = [1, 2];
/// Pause-method windows thrown away at the start (warm-up).
const WARM_WINDOWS: usize = 3;

fn rs(j: u32) -> (Endpoint, [u8; 6]) {
    let i = (j % N_RS) as u8;
    (
        Endpoint::new([10, 77, 0, 11 + i], 8080),
        [0x02, 0, 0, 0, 0x11, i],
    )
}

fn laddr_ip(i: u32) -> [u8; 4] {
    [10, 200, i as u8, 1]
}

/// Client tuple number `c`: 32768 ports on each of the addresses 11.0.0.0, 11.0.0.1, ...
fn client_tuple(c: u32) -> Endpoint {
    let q = c >> 15;
    Endpoint::new(
        [11, (q >> 16) as u8, (q >> 8) as u8, q as u8],
        1024 + (c & 0x7fff) as u16,
    )
}

/// With several workers, rvs gives a client flow to the worker
/// `client_owner(client -> VIP)` (a hash; other workers redirect it there).
/// The generator sends each worker its own flows, as a NIC's flow steering
/// would: this lists, per worker, the first `n` client tuple numbers it owns.
/// `None` for one worker (every tuple is its own).
fn owned_clients(workers: usize, n: u32) -> Option<Vec<Vec<u32>>> {
    if workers <= 1 {
        return None;
    }
    let mut out: Vec<Vec<u32>> = (0..workers)
        .map(|_| Vec::with_capacity(n as usize))
        .collect();
    let mut c = 0u32;
    while out.iter().any(|v| v.len() < n as usize) {
        let key = FlowKey {
            src: client_tuple(c),
            dst: VIP,
            proto: ipv4::PROTO_TCP,
        };
        let v = &mut out[client_owner(&key, workers as u16)];
        if v.len() < n as usize {
            v.push(c);
        }
        c += 1;
    }
    Some(out)
}

/// First port of worker `w`'s slice of the local port range ([`dataplane::laddr::owner_of`]).
fn first_port(w: usize, workers: usize) -> u32 {
    let (lo, wk) = (u32::from(LPORT.0), workers as u32);
    lo + ((w as u32 + wk - lo % wk) % wk)
}

/// Sessions one worker can hold before its local ports run out.
fn port_capacity(workers: usize) -> u32 {
    N_LADDR * ((u32::from(LPORT.1) - u32::from(LPORT.0) + 1) / workers as u32)
}

/// The local address and port the `j`-th session of a worker gets, when its
/// SYNs are processed in order and none is refused: the service's local
/// addresses are taken round robin, each address's port pool is FIFO.
fn laddr_of(j: u32, first: u32, workers: usize) -> Endpoint {
    Endpoint::new(
        laddr_ip(j % N_LADDR),
        (first + (j / N_LADDR) * workers as u32) as u16,
    )
}

fn tables(positions: usize) -> Arc<Tables> {
    Arc::new(Tables {
        interfaces: (0..positions)
            .map(|p| Interface {
                port: p as u16,
                mac: IF_MAC,
                addr: IF_ADDR,
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
            })
            .collect(),
        services: vec![Service {
            vip: VIP,
            proto: ipv4::PROTO_TCP,
            sched: SchedKind::RoundRobin,
            laddrs: (0..N_LADDR as u16).collect(),
            servers: (0..N_RS)
                .map(|i| RealServer {
                    addr: rs(i).0,
                    weight: 1,
                    index: i as u16,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        laddrs: (0..N_LADDR).map(|i| laddr_ip(i).into()).collect(),
        lport_range: LPORT,
        timeouts: Timeouts::default(),
        rs_count: N_RS as u16,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
    })
}

fn neigh() -> Arc<NeighMap> {
    Arc::new(NeighMap::new(
        (0..N_RS)
            .map(|i| {
                let (e, mac) = rs(i);
                NeighEntry {
                    ip: e.ip,
                    mac,
                    port: 0,
                }
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------
// Frames.

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

#[inline]
fn ip_words(a: [u8; 4]) -> u32 {
    u32::from(u16::from_be_bytes([a[0], a[1]])) + u32::from(u16::from_be_bytes([a[2], a[3]]))
}

#[inline]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// A frame with everything but the MAC source, addresses, ports and
/// checksums filled in, and the partial checksums of the fixed part.
struct Template {
    f: [u8; 64],
    len: usize,
    ip_sum: u32,
    tcp_sum: u32,
}

impl Template {
    /// Ethernet + IPv4 + TCP with `payload` bytes, padded to 60 bytes.
    fn new(flags: tcp::TcpFlags, payload: usize, ttl: u8) -> Self {
        let l4 = 20 + payload;
        let len = (14 + 20 + l4).max(60);
        let mut f = [0u8; 64];
        f[0..6].copy_from_slice(&IF_MAC);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
        f[20] = 0x40; // DF
        f[22] = ttl;
        f[23] = ipv4::PROTO_TCP;
        f[38..42].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        f[42..46].copy_from_slice(&0x0506_0708u32.to_be_bytes());
        f[46] = 5 << 4;
        f[47] = flags.bits();
        f[48..50].copy_from_slice(&64240u16.to_be_bytes());
        for (i, b) in f[54..54 + payload].iter_mut().enumerate() {
            *b = b"rvs-bench!"[i % 10];
        }
        let ip_sum = sum16(&f[14..34]);
        let tcp_sum = sum16(&f[34..34 + l4]) + u32::from(ipv4::PROTO_TCP) + l4 as u32;
        Self {
            f,
            len,
            ip_sum,
            tcp_sum,
        }
    }

    #[inline]
    fn write(&self, d: &mut [u8], smac: [u8; 6], src: Endpoint, dst: Endpoint) {
        let d = &mut d[..self.len];
        d.copy_from_slice(&self.f[..self.len]);
        d[6..12].copy_from_slice(&smac);
        d[26..30].copy_from_slice(&src.ip.v4_bits());
        d[30..34].copy_from_slice(&dst.ip.v4_bits());
        d[34..36].copy_from_slice(&src.port.to_be_bytes());
        d[36..38].copy_from_slice(&dst.port.to_be_bytes());
        let a = ip_words(src.ip.v4_bits()) + ip_words(dst.ip.v4_bits());
        d[24..26].copy_from_slice(&(!fold(self.ip_sum + a)).to_be_bytes());
        let t = self.tcp_sum + a + u32::from(src.port) + u32::from(dst.port);
        d[50..52].copy_from_slice(&(!fold(t)).to_be_bytes());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    /// SYNs of flows 0, 1, 2, ... (each a new connection).
    Syn,
    /// ACK/data frames of the established flows 0..n, alternately client ->
    /// VIP and RS -> local address, each stream in its own pseudo-random order.
    Established,
    /// 64-byte frames of an unknown ethertype, which a worker drops after
    /// reading the Ethernet header: the ceiling of the harness itself.
    Junk,
}

/// The frames of one worker's flows.
struct Gen {
    /// Client tuple numbers of this worker's flows (`None`: flow j is tuple j).
    clients: Option<Vec<u32>>,
    workers: usize,
    n: u32,
    traffic: Traffic,
    syn: Template,
    ack: Template,
    next_syn: u32,
    j_in: u32,
    j_out: u32,
    stride: u32,
    inbound: bool,
    first: u32,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Gen {
    fn new(w: usize, workers: usize, n: u32, clients: Option<Vec<u32>>) -> Self {
        let n = n.max(1);
        let mut stride = ((f64::from(n) * 0.618_034) as u32).max(1) % n;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        Self {
            clients,
            workers,
            n,
            traffic: Traffic::Syn,
            syn: Template::new(tcp::SYN, 0, 64),
            ack: Template::new(tcp::ACK, 10, 64),
            next_syn: 0,
            j_in: 0,
            j_out: n / 2,
            stride,
            inbound: false,
            first: first_port(w, workers),
        }
    }

    fn frame_len(&self) -> usize {
        match self.traffic {
            Traffic::Syn => self.syn.len,
            Traffic::Established | Traffic::Junk => self.ack.len,
        }
    }

    #[inline]
    fn client(&self, j: u32) -> Endpoint {
        client_tuple(self.clients.as_ref().map_or(j, |c| c[j as usize]))
    }

    #[inline]
    fn step(&self, j: u32) -> u32 {
        let j = j + self.stride;
        if j >= self.n {
            j - self.n
        } else {
            j
        }
    }

    #[inline]
    fn write(&mut self, d: &mut [u8]) {
        match self.traffic {
            Traffic::Syn => {
                let j = self.next_syn;
                self.next_syn += 1;
                self.syn.write(d, CLIENT_MAC, self.client(j), VIP);
            }
            Traffic::Established => {
                self.inbound = !self.inbound;
                if self.inbound {
                    let j = self.j_in;
                    self.j_in = self.step(j);
                    self.ack.write(d, CLIENT_MAC, self.client(j), VIP);
                } else {
                    let j = self.j_out;
                    self.j_out = self.step(j);
                    let (rs, mac) = rs(j);
                    self.ack
                        .write(d, mac, rs, laddr_of(j, self.first, self.workers));
                }
            }
            Traffic::Junk => {
                self.ack.write(d, CLIENT_MAC, self.client(0), VIP);
                d[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            }
        }
    }
}

/// Checks the generator against the real pipeline, in-process: checksums
/// are valid, every SYN creates the session predicted for it, and every
/// established frame of both directions is forwarded with the expected
/// rewrite.
fn self_check() -> Res<()> {
    for workers in [1usize, 2] {
        let n = 2000u32;
        let mut owned = owned_clients(workers, n);
        for w in 0..workers {
            let mut p = Pipeline::new(tables(1), neigh(), n, 1, w as u16, workers as u16);
            let mut g = Gen::new(
                w,
                workers,
                n,
                owned.as_mut().map(|o| std::mem::take(&mut o[w])),
            );
            let mut f = [0u8; 64];
            for j in 0..n {
                g.write(&mut f);
                let ip = ipv4::Packet::new_checked(&f[14..g.syn.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                if !ip.verify_checksum() || !seg.verify_checksum_v4(ip.src(), ip.dst()) {
                    return Err("self-check: generated SYN has a bad checksum".into());
                }
                let v = p.process(&mut f[..g.syn.len], 0, Millis(1));
                if v != (Verdict::Forward { port: 0 }) {
                    return Err(
                        format!("self-check: SYN {j} of worker {w}/{workers}: {v:?}").into(),
                    );
                }
                let ip = ipv4::Packet::new_checked(&f[14..g.syn.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let want = laddr_of(j, g.first, workers);
                if Endpoint::new(ip.src(), seg.src_port()) != want
                    || Endpoint::new(ip.dst(), seg.dst_port()) != rs(j).0
                {
                    return Err(format!(
                        "self-check: session {j} of worker {w}/{workers} not as predicted"
                    )
                    .into());
                }
            }
            g.traffic = Traffic::Established;
            for i in 0..4 * n {
                g.write(&mut f);
                let ip = ipv4::Packet::new_checked(&f[14..g.ack.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                if !ip.verify_checksum() || !seg.verify_checksum_v4(ip.src(), ip.dst()) {
                    return Err("self-check: generated ACK has a bad checksum".into());
                }
                let v = p.process(&mut f[..g.ack.len], 0, Millis(2));
                if v != (Verdict::Forward { port: 0 }) {
                    return Err(format!(
                        "self-check: established frame {i} of worker {w}/{workers}: {v:?}"
                    )
                    .into());
                }
            }
            if p.sessions()
                .iter()
                .any(|s| s.state != TcpState::Established)
            {
                return Err("self-check: a session did not reach ESTABLISHED".into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// /proc readings.

fn rss_bytes() -> Res<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// The calling thread's id (`/proc/thread-self` -> `PID/task/TID`).
fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds thread `tid` of this process has run on a CPU.
fn cpu_ns(tid: u32) -> Res<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
    Ok(s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("bad schedstat")?)
}

/// Scheduler state letter of thread `tid` (`R`, `S`, ...).
fn thread_state(tid: u32) -> Res<char> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    let after = s.rfind(')').map(|i| &s[i + 1..]).ok_or("bad stat")?;
    Ok(after.trim_start().chars().next().ok_or("bad stat")?)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

// ---------------------------------------------------------------------------
// Session table alone (no DPDK).

#[derive(Debug, Clone, Default)]
struct TableRow {
    n: u32,
    /// A dependent random read in a buffer of the table's size (the machine's
    /// memory latency there, TLB misses included).
    mem_ns: f64,
    sized_bytes: f64,
    rss_bytes: f64,
    insert_ns: f64,
    lookup_ns: f64,
    lookup_dep_ns: f64,
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
    }
}

/// What `SessionTable::new(n)` uses for IPv4 sessions, by its own sizing
/// rule (`SessionTable::footprint`: hot slab, index, ext and free list; the
/// IPv6 addresses' cold array is reserved but not committed).
fn sized_bytes(n: u32) -> u64 {
    SessionTable::footprint(n).ipv4() as u64
}

#[inline]
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[inline]
fn below(r: u64, n: u32) -> u32 {
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

fn table_bench(n: u32, lookups: u32) -> Res<TableRow> {
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

// ---------------------------------------------------------------------------
// DPDK: devices, workers, generator.

/// Everything the DPDK part shares between experiments.
struct Lab {
    eal: Eal,
    rings: Vec<Port>,
    null: Port,
    small: Arc<Mempool>,
    big: Arc<Mempool>,
    tsc_hz: u64,
    seq: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Snap {
    rx: u64,
    tx: u64,
    drops: [u64; DropReason::COUNT],
    created: u64,
    polls: u64,
    empty: u64,
    redirected: u64,
    cpu_ns: u64,
    tsc: u64,
}

impl Snap {
    fn dropped_since(&self, before: &Snap) -> Option<String> {
        let parts: Vec<String> = DropReason::ALL
            .iter()
            .filter_map(|r| {
                let d = self.drops[*r as usize] - before.drops[*r as usize];
                (d > 0).then(|| format!("{} {d}", r.name()))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// A launched worker, seen from the main lcore.
struct Running {
    lcore: u32,
    tid: u32,
    shared: Arc<WorkerShared>,
    req: Sender<Request>,
    _events: (Receiver<Event>, Receiver<Retired>),
}

impl Running {
    /// Starts the workers of `plan` through the data plane's runtime, as
    /// rvsd does, and learns each one's thread id (for CPU time).
    fn launch(eal: &Eal, mut plan: runtime::Plan) -> Res<Vec<Self>> {
        let mut tids = Vec::new();
        for w in &mut plan.workers {
            let (tid_tx, tid_rx) = bounded(1);
            w.on_start = Some(Box::new(move || {
                let _ = tid_tx.send(thread_id());
            }));
            tids.push(tid_rx);
        }
        let handles = runtime::start(eal, plan).map_err(|e| match e {
            runtime::StartError::Launch(lcore, e, handles) => {
                handles.stop();
                eal.wait_all();
                format!("cannot launch worker on lcore {lcore}: {e}")
            }
            e => e.to_string(),
        })?;
        let mut running = Vec::new();
        for (w, tid_rx) in handles.workers.into_iter().zip(tids) {
            let tid = tid_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| "worker did not start")?;
            if tid == 0 {
                return Err("cannot find the worker's thread id (/proc/thread-self)".into());
            }
            running.push(Self {
                lcore: w.lcore,
                tid,
                shared: w.shared,
                req: w.requests,
                _events: (handles.events.clone(), handles.retired.clone()),
            });
        }
        Ok(running)
    }

    /// The counters as last published, and the worker's CPU time now.
    fn read(&self) -> Res<Snap> {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut drops = [0u64; DropReason::COUNT];
        for (d, a) in drops.iter_mut().zip(s.drops.iter()) {
            *d = l(a);
        }
        Ok(Snap {
            rx: l(&s.rx_packets),
            tx: l(&s.tx_packets),
            drops,
            created: l(&s.sessions_created),
            polls: l(&s.polls),
            empty: l(&s.empty_polls),
            redirected: l(&s.redirected_out),
            cpu_ns: cpu_ns(self.tid)?,
            tsc: rdtsc(),
        })
    }

    fn ask_publish(&self, ack: Sender<()>) -> Res<()> {
        self.req
            .send_timeout(Request::Publish(ack), Duration::from_secs(1))
            .map_err(|_| format!("worker on lcore {} is not taking requests", self.lcore).into())
    }

    /// Asks the worker to publish, waits for it, and reads.
    fn publish(&self) -> Res<Snap> {
        let (tx, rx) = bounded(1);
        self.ask_publish(tx)?;
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| format!("worker on lcore {} did not publish", self.lcore))?;
        self.read()
    }

    /// Publishes repeatedly until `created` sessions exist; the snapshot at
    /// that moment (known to within about a millisecond).
    fn wait_created(&self, created: u64) -> Res<Snap> {
        let mut last = (0u64, Instant::now());
        loop {
            let s = self.publish()?;
            if s.created >= created {
                return Ok(s);
            }
            if s.rx != last.0 {
                last = (s.rx, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(3) {
                return Err(format!(
                    "worker on lcore {} stalled at {} of {created} sessions",
                    self.lcore, s.created
                )
                .into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The generator of one worker: its flows and the TX queues that feed the
/// worker's RX queues (position 0 first).
struct Feeder {
    gen: Gen,
    txqs: Vec<TxQueue>,
    pending: MbufBatch,
    pool: Arc<Mempool>,
    sent: u64,
    generated: u64,
    limit: u64,
}

impl Feeder {
    /// Makes sure `pending` holds frames; false when the pool is empty or
    /// the limit is reached.
    #[inline]
    fn ready(&mut self) -> bool {
        if !self.pending.is_empty() {
            return true;
        }
        let left = self.limit.saturating_sub(self.generated);
        if left == 0 || !self.pool.alloc_fill(&mut self.pending) {
            return false;
        }
        while self.pending.len() as u64 > left {
            drop(self.pending.pop());
        }
        let len = self.gen.frame_len();
        let gen = &mut self.gen;
        for m in self.pending.iter_mut() {
            if m.set_len(len) {
                gen.write(m.data_mut());
            }
        }
        self.generated += self.pending.len() as u64;
        true
    }

    /// One burst into queue `q`; returns the number sent.
    #[inline]
    fn pump(&mut self, q: usize) -> usize {
        if !self.ready() {
            return 0;
        }
        let n = self.txqs[q].tx_burst(&mut self.pending);
        self.sent += n as u64;
        n
    }

    /// Fills every queue up (the worker must not be polling them).
    fn fill_all(&mut self) -> Res<u64> {
        let mut added = 0u64;
        for q in 0..self.txqs.len() {
            loop {
                if !self.ready() {
                    if self.generated >= self.limit {
                        return Ok(added);
                    }
                    return Err("generator: mbuf pool exhausted".into());
                }
                let before = self.pending.len();
                let n = self.txqs[q].tx_burst(&mut self.pending);
                self.sent += n as u64;
                added += n as u64;
                if n < before {
                    break;
                }
            }
        }
        Ok(added)
    }

    /// Asks for a publish while generating, and reads when it is done.
    fn snapshot(&mut self, w: &Running) -> Res<Snap> {
        let (tx, rx) = bounded(1);
        w.ask_publish(tx)?;
        let start = Instant::now();
        loop {
            for _ in 0..8 {
                self.pump(0);
            }
            if rx.try_recv().is_ok() {
                return w.read();
            }
            if start.elapsed() > Duration::from_secs(2) {
                return Err(format!("worker on lcore {} did not publish", w.lcore).into());
            }
        }
    }

    /// Generates into queue 0 for `d`.
    fn pump_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            for _ in 0..64 {
                self.pump(0);
            }
        }
    }
}

fn secs(tsc: u64, hz: u64) -> f64 {
    tsc as f64 / hz as f64
}

impl Lab {
    fn new(prefix: &str) -> Res<Self> {
        let mut args: Vec<String> = [
            "rvs-bench",
            "--lcores",
            "0@0,1@1,2@0",
            "-m",
            "2048",
            "--no-huge",
            "--no-pci",
            "--file-prefix",
            prefix,
            "--no-telemetry",
            "--log-level",
            "lib.eal:warning",
            "--vdev=net_null0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend((0..RING_DEVS).map(|d| format!("--vdev=net_ring{d}")));
        let eal = Eal::init(&args).map_err(|e| format!("EAL ({}): {e}", args[1..].join(" ")))?;
        let small = Arc::new(Mempool::create("rvsb_small", 16_383, 256, 2048 + 128, -1)?);
        // Every pause-method queue full (2 x 128 x 1023) plus caches and bursts.
        let big_n = (WORKER_LCORES.len() * PAUSE_QUEUES * RING_SLOTS + 8192) as u32;
        let big = Arc::new(Mempool::create("rvsb_big", big_n, 256, 2048 + 128, -1)?);
        let mut rings = Vec::new();
        for d in 0..RING_DEVS {
            let id = Port::by_name(&format!("net_ring{d}"))?;
            let conf = PortConfig {
                rx_queues: RING_QUEUES as u16,
                tx_queues: RING_QUEUES as u16,
                rx_desc: 1024,
                tx_desc: 1024,
            };
            let mut p = Port::configure(id, &conf, &small)?;
            p.start()?;
            rings.push(p);
        }
        let id = Port::by_name("net_null0")?;
        let conf = PortConfig {
            rx_queues: 1,
            tx_queues: (RING_DEVS * RING_QUEUES) as u16,
            rx_desc: 1024,
            tx_desc: 1024,
        };
        let mut null = Port::configure(id, &conf, &small)?;
        null.start()?;
        let tsc_hz = eal.tsc_hz();
        Ok(Self {
            eal,
            rings,
            null,
            small,
            big,
            tsc_hz,
            seq: 0,
        })
    }

    /// Builds `workers` workers as rvsd does (one FULLNAT service, neighbour
    /// snapshot with the real servers' MACs, redirect rings between them),
    /// worker `w` polling `positions` net_ring RX queues and sending on
    /// net_null, and launches them. Returns them with their generators.
    fn start(
        &mut self,
        workers: usize,
        positions: usize,
        capacity: u32,
        big_pool: bool,
    ) -> Res<(Vec<Running>, Vec<Feeder>)> {
        self.seq += 1;
        let tables = tables(positions);
        let neigh = neigh();
        let pool = if big_pool { &self.big } else { &self.small };
        let mut plans = Vec::new();
        let mut feeders = Vec::new();
        let mut owned = owned_clients(workers, capacity);
        for wi in 0..workers {
            let (mut rx, mut tx, mut txqs, mut port_ids) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for p in 0..positions {
                let g = wi * positions + p;
                let (dev, q) = (
                    &self.rings[g / RING_QUEUES],
                    QueueId((g % RING_QUEUES) as u16),
                );
                rx.push(dev.rx_queue(q)?);
                txqs.push(dev.tx_queue(q)?);
                port_ids.push(dev.id());
                tx.push(self.null.tx_queue(QueueId(g as u16))?);
            }
            let seed = u64::from(self.seq) << 8 | wi as u64;
            plans.push(runtime::WorkerPlan {
                lcore: LcoreId(WORKER_LCORES[wi]),
                rx,
                tx,
                port_ids,
                tap_rx: Vec::new(),
                tap_tx: Vec::new(),
                pipeline: Pipeline::new(
                    Arc::clone(&tables),
                    Arc::clone(&neigh),
                    capacity,
                    seed,
                    wi as u16,
                    workers as u16,
                ),
                on_start: None,
            });
            feeders.push(Feeder {
                gen: Gen::new(
                    wi,
                    workers,
                    capacity,
                    owned.as_mut().map(|o| std::mem::take(&mut o[wi])),
                ),
                txqs,
                pending: MbufBatch::new(),
                pool: Arc::clone(pool),
                sent: 0,
                generated: 0,
                limit: u64::MAX,
            });
        }
        let running = Running::launch(
            &self.eal,
            runtime::Plan {
                workers: plans,
                pool: Arc::clone(&self.small),
                idle: Idle::Busy,
                rs_count: N_RS as usize,
                ring_prefix: format!("rvsb_{}", self.seq),
                ring_size: 4096,
            },
        )?;
        Ok((running, feeders))
    }

    /// Stops the workers and empties every net_ring queue so the next
    /// experiment starts clean (drop the generators first).
    fn stop(&self, running: Vec<Running>) -> Res<()> {
        for r in &running {
            r.shared.stop.store(true, Ordering::Relaxed);
        }
        for r in &running {
            let rc = self.eal.wait(LcoreId(r.lcore))?;
            if rc != 0 {
                return Err(format!("worker on lcore {} returned {rc}", r.lcore).into());
            }
        }
        let mut b = MbufBatch::new();
        for dev in &self.rings {
            for q in 0..RING_QUEUES {
                let mut rxq = dev.rx_queue(QueueId(q as u16))?;
                while rxq.rx_burst(&mut b) > 0 {
                    b.clear();
                }
            }
        }
        Ok(())
    }
}

/// Sends exactly `n` SYNs per worker, in order, through each worker's queue
/// 0, and waits until every worker has created them. Returns the snapshots
/// before and after and the TSC when the first SYN went out.
fn syn_phase(
    running: &[Running],
    feeders: &mut [Feeder],
    n: u32,
) -> Res<(Vec<Snap>, Vec<Snap>, u64)> {
    let before: Vec<Snap> = running.iter().map(Running::publish).collect::<Res<_>>()?;
    for f in feeders.iter_mut() {
        f.gen.traffic = Traffic::Syn;
        f.limit = f.generated + u64::from(n);
    }
    let t0 = rdtsc();
    let target: Vec<u64> = feeders.iter().map(|f| f.sent + u64::from(n)).collect();
    while feeders.iter().zip(&target).any(|(f, t)| f.sent < *t) {
        for f in feeders.iter_mut() {
            f.pump(0);
        }
    }
    let mut after = Vec::new();
    for (w, b) in running.iter().zip(&before) {
        let s = w.wait_created(b.created + u64::from(n))?;
        if let Some(d) = s.dropped_since(b) {
            return Err(format!("SYN phase: worker on lcore {} dropped: {d}", w.lcore).into());
        }
        after.push(s);
    }
    for f in feeders.iter_mut() {
        f.gen.traffic = Traffic::Established;
        f.limit = u64::MAX;
    }
    Ok((before, after, t0))
}

#[derive(Debug, Clone, Default)]
struct StreamRow {
    flows: u32,
    /// Frames per second the generator writes when it sends nothing (allocate,
    /// write, free on its own CPU).
    gen_alone: f64,
    syn_rate: f64,
    syn_cycles: f64,
    mpps: f64,
    cycles: f64,
    per_poll: f64,
    empty_pct: f64,
}

/// One worker fed by the generator on the main lcore (the "stream" method).
fn stream(lab: &mut Lab, flows: u32, run: Duration) -> Res<StreamRow> {
    let (running, mut feeders) = lab.start(1, 1, flows, false)?;
    let result = stream_inner(lab, &running, &mut feeders, flows, run);
    drop(feeders);
    lab.stop(running)?;
    result
}

/// How fast the generator writes frames with no worker involved (0.3 s).
fn generator_alone(f: &mut Feeder) -> f64 {
    let t = Instant::now();
    let mut k = 0u64;
    let mut b = MbufBatch::new();
    while t.elapsed() < Duration::from_millis(300) {
        for _ in 0..64 {
            if f.pool.alloc_fill(&mut b) {
                let len = f.gen.frame_len();
                for m in b.iter_mut() {
                    if m.set_len(len) {
                        f.gen.write(m.data_mut());
                    }
                }
                k += b.len() as u64;
                b.clear();
            }
        }
    }
    k as f64 / t.elapsed().as_secs_f64()
}

/// The stream method with frames the worker drops at once: how fast the
/// generator and the hand-over between the two CPUs can go at all.
fn stream_ceiling(lab: &mut Lab, run: Duration) -> Res<StreamRow> {
    let (running, mut feeders) = lab.start(1, 1, 1, false)?;
    let result = (|| {
        let (w, f) = (&running[0], &mut feeders[0]);
        f.gen.traffic = Traffic::Junk;
        let gen_alone = generator_alone(f);
        f.pump_for(Duration::from_millis(300));
        let s0 = f.snapshot(w)?;
        f.pump_for(run);
        let s1 = f.snapshot(w)?;
        let (rx, polls) = ((s1.rx - s0.rx) as f64, (s1.polls - s0.polls).max(1) as f64);
        Ok(StreamRow {
            flows: 0,
            gen_alone,
            mpps: rx / secs(s1.tsc - s0.tsc, lab.tsc_hz) / 1e6,
            cycles: (s1.cpu_ns - s0.cpu_ns) as f64 * lab.tsc_hz as f64 / 1e9 / rx,
            per_poll: rx / polls,
            empty_pct: 100.0 * (s1.empty - s0.empty) as f64 / polls,
            ..StreamRow::default()
        })
    })();
    drop(feeders);
    lab.stop(running)?;
    result
}

fn stream_inner(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    flows: u32,
    run: Duration,
) -> Res<StreamRow> {
    let hz = lab.tsc_hz;
    let (b, a, t0) = syn_phase(running, feeders, flows)?;
    let (w, f) = (&running[0], &mut feeders[0]);
    let syn_rate = f64::from(flows) / secs(a[0].tsc - t0, hz);
    let syn_cycles = (a[0].cpu_ns - b[0].cpu_ns) as f64 * hz as f64 / 1e9 / f64::from(flows);
    // Warm-up: every flow seen in both directions at least once (bounded).
    let warm_until = f.sent + 2 * u64::from(flows);
    let t = Instant::now();
    while (f.sent < warm_until || t.elapsed() < Duration::from_millis(300))
        && t.elapsed() < Duration::from_secs(6)
    {
        f.pump_for(Duration::from_millis(10));
    }
    let gen_alone = generator_alone(f);
    let s0 = f.snapshot(w)?;
    f.pump_for(run);
    let s1 = f.snapshot(w)?;
    if let Some(d) = s1.dropped_since(&a[0]) {
        return Err(format!("established phase ({flows} flows): worker dropped: {d}").into());
    }
    let (rx, polls) = ((s1.rx - s0.rx) as f64, (s1.polls - s0.polls).max(1) as f64);
    Ok(StreamRow {
        flows,
        gen_alone,
        syn_rate,
        syn_cycles,
        mpps: (s1.tx - s0.tx) as f64 / secs(s1.tsc - s0.tsc, hz) / 1e6,
        cycles: (s1.cpu_ns - s0.cpu_ns) as f64 * hz as f64 / 1e9 / rx,
        per_poll: rx / polls,
        empty_pct: 100.0 * (s1.empty - s0.empty) as f64 / polls,
    })
}

#[derive(Debug, Clone, Default)]
struct PauseRow {
    workers: usize,
    flows: u32,
    traffic: Option<Traffic>,
    /// Per worker: packets (or sessions) per second of its own CPU time.
    rate: Vec<f64>,
    /// Per worker: TSC cycles per packet (or per new session).
    cycles: Vec<f64>,
    /// With two workers, per worker: the rate in the windows it ran alone.
    alone: Vec<f64>,
    windows: usize,
    dry: usize,
    measured_s: f64,
}

impl PauseRow {
    fn total(&self) -> f64 {
        self.rate.iter().sum()
    }

    /// Two workers together against one alone, in the same run.
    fn scaling(&self) -> Option<f64> {
        let alone = self.alone.iter().sum::<f64>() / self.alone.len().max(1) as f64;
        (self.workers == 2 && alone > 0.0).then(|| self.total() / alone)
    }
}

/// Pauses every worker: each publishes and then blocks in the reply until
/// [`resume`]. Returns the reply ends.
fn pause(running: &[Running]) -> Res<Vec<Receiver<()>>> {
    let all: Vec<usize> = (0..running.len()).collect();
    Ok(pause_some(running, &all)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// Pauses the workers `which` (indices into `running`).
fn pause_some(running: &[Running], which: &[usize]) -> Res<Vec<(usize, Receiver<()>)>> {
    let mut acks = Vec::new();
    for &w in which {
        let (tx, rx) = bounded(0);
        running[w].ask_publish(tx)?;
        acks.push((w, rx));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for &w in which {
        while thread_state(running[w].tid)? != 'S' {
            if Instant::now() > deadline {
                return Err(format!("worker on lcore {} did not pause", running[w].lcore).into());
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    Ok(acks)
}

fn resume(acks: Vec<Receiver<()>>) -> Res<()> {
    for a in acks {
        a.recv_timeout(Duration::from_secs(2))
            .map_err(|_| "a paused worker did not resume")?;
    }
    Ok(())
}

/// The pause method: see the module documentation.
fn pause_run(
    lab: &mut Lab,
    workers: usize,
    flows: u32,
    traffic: Traffic,
    capacity: u32,
    wall: Duration,
) -> Res<PauseRow> {
    let (running, mut feeders) = lab.start(workers, PAUSE_QUEUES, capacity, true)?;
    let result = pause_inner(lab, &running, &mut feeders, flows, traffic, capacity, wall);
    drop(feeders);
    lab.stop(running)?;
    result
}

fn pause_inner(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    flows: u32,
    traffic: Traffic,
    capacity: u32,
    wall: Duration,
) -> Res<PauseRow> {
    let workers = running.len();
    if traffic == Traffic::Syn {
        for f in feeders.iter_mut() {
            f.gen.traffic = Traffic::Syn;
            f.limit = u64::from(capacity) * 9 / 10;
        }
    } else {
        syn_phase(running, feeders, flows)?;
    }
    // Reply ends of the workers that are paused now.
    let mut held: Vec<Option<Receiver<()>>> = (0..workers).map(|_| None).collect();
    let result = pause_rounds(lab, running, feeders, &mut held, traffic, wall);
    for h in held.into_iter().flatten() {
        resume(vec![h])?;
    }
    result.map(|r| PauseRow { flows, ..r })
}

/// The rounds of the pause method. With two workers, windows rotate between
/// both running and each running alone (the other stays paused), so the
/// scaling is measured within one run.
fn pause_rounds(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    held: &mut [Option<Receiver<()>>],
    traffic: Traffic,
    wall: Duration,
) -> Res<PauseRow> {
    let hz = lab.tsc_hz as f64;
    let workers = running.len();
    let kinds: Vec<Option<usize>> = if workers == 2 {
        vec![None, Some(0), Some(1)]
    } else {
        vec![None]
    };
    let cap_pkts = (PAUSE_QUEUES * RING_SLOTS) as f64;
    let mut rate_guess = 20e6f64;
    // Per worker (work, CPU ns): windows with every worker running, and alone.
    let (mut together, mut alone) = (vec![(0u64, 0u64); workers], vec![(0u64, 0u64); workers]);
    let (mut windows, mut dry) = (0usize, 0usize);
    let mut prev: Option<Vec<Snap>> = None;
    let mut base: Option<Vec<Snap>> = None;
    let mut ran: Option<usize> = None;
    let start = Instant::now();
    let mut round = 0usize;
    loop {
        let to_pause: Vec<usize> = (0..workers).filter(|w| held[*w].is_none()).collect();
        for (w, ack) in pause_some(running, &to_pause)? {
            held[w] = Some(ack);
        }
        let snaps: Vec<Snap> = running.iter().map(Running::read).collect::<Res<_>>()?;
        let b = base.get_or_insert_with(|| snaps.clone());
        for (w, (s, b)) in snaps.iter().zip(b.iter()).enumerate() {
            if let Some(d) = s.dropped_since(b) {
                return Err(format!("pause method: worker {w} dropped: {d}").into());
            }
            if s.redirected != b.redirected {
                return Err(format!("pause method: worker {w} redirected packets (flows not steered to their owner)").into());
            }
        }
        if let Some(p) = &prev {
            let active: Vec<usize> = to_pause;
            let mut fastest = 0f64;
            let mut all_busy = true;
            for &w in &active {
                let (rx, c) = (snaps[w].rx - p[w].rx, snaps[w].cpu_ns - p[w].cpu_ns);
                fastest = fastest.max(rx as f64 / (c.max(1) as f64 / 1e9));
                all_busy &= snaps[w].empty == p[w].empty && (rx as f64) < 0.95 * cap_pkts;
            }
            if round > WARM_WINDOWS {
                if all_busy {
                    windows += 1;
                    for &w in &active {
                        let (s, p) = (&snaps[w], &p[w]);
                        let acc = if ran.is_some() && workers > 1 {
                            &mut alone[w]
                        } else {
                            &mut together[w]
                        };
                        acc.0 += if traffic == Traffic::Syn {
                            s.created - p.created
                        } else {
                            s.tx - p.tx
                        };
                        acc.1 += s.cpu_ns - p.cpu_ns;
                    }
                } else {
                    dry += 1;
                }
            }
            if fastest > 0.0 {
                rate_guess = fastest;
            }
        }
        prev = Some(snaps);
        // At least `wall` and 8 usable windows; past 4 x `wall` two will do;
        // past 20 x `wall`, give up.
        let t = start.elapsed();
        let enough = (t >= wall && windows >= 8 * kinds.len())
            || (t >= 4 * wall && windows >= 2 * kinds.len())
            || t >= 20 * wall;
        if enough {
            break;
        }
        ran = kinds[round % kinds.len()];
        let next: Vec<usize> = ran.map_or_else(|| (0..workers).collect(), |w| vec![w]);
        let mut added = 0u64;
        for &w in &next {
            added += feeders[w].fill_all()?;
        }
        for &w in &next {
            if let Some(ack) = held[w].take() {
                resume(vec![ack])?;
            }
        }
        if added == 0 {
            break;
        }
        let sleep = (0.5 * cap_pkts / rate_guess - 0.0012).clamp(0.0003, 0.05);
        std::thread::sleep(Duration::from_secs_f64(sleep));
        round += 1;
    }
    if windows == 0 {
        return Err(format!("pause method: no usable window ({dry} ran dry)").into());
    }
    let rate = |v: &[(u64, u64)]| {
        v.iter()
            .map(|(n, c)| *n as f64 / *c.max(&1) as f64 * 1e9)
            .collect::<Vec<f64>>()
    };
    Ok(PauseRow {
        workers,
        traffic: Some(traffic),
        rate: rate(&together),
        cycles: together
            .iter()
            .map(|(n, c)| *c as f64 * hz / 1e9 / *n.max(&1) as f64)
            .collect(),
        alone: if workers > 1 {
            rate(&alone)
        } else {
            Vec::new()
        },
        windows,
        dry,
        measured_s: together
            .iter()
            .chain(&alone)
            .map(|(_, c)| *c as f64 / 1e9)
            .sum::<f64>()
            / workers as f64,
        ..PauseRow::default()
    })
}

// ---------------------------------------------------------------------------
// The loop method: packets stay on the worker's CPU, as in testpmd's
// `--tx-first` loop.
//
// A worker's output is made valid input again: its service's one real
// server is the VIP itself, so an inbound packet client -> VIP leaves as
// local address -> VIP, which is the next client of the same service. Built
// in-process before launch (the pipeline is plain Rust), a single SYN walked
// n times creates a cycle of n sessions whose last local address is the
// first session's client. The worker transmits on a net_ring queue and
// receives from the same queue, so a packet goes round the cycle, one
// session lookup and rewrite per hop, until its TTL (255) runs out. The main
// lcore keeps LOOP_TOKENS packets in flight by injecting new ones on a
// second net_ring device the worker also polls: about one packet in 255.

/// Packets kept in flight per worker in the loop method.
const LOOP_TOKENS: u64 = 128;
/// TTL of loop packets: each is forwarded 254 times, then dropped (counted
/// as `ttl_exceeded`).
const LOOP_TTL: u8 = 255;
/// The service used only to scatter session slots before the cycle is built.
const SCRAMBLE_VIP: Endpoint = Endpoint::new([10, 77, 0, 101], 80);
/// In-process time of the cycle's creation (after the scatter sessions expired).
const BUILT_AT: Millis = Millis(61_000);

fn loop_tables() -> Arc<Tables> {
    let rs0 = rs(0).0;
    Arc::new(Tables {
        interfaces: (0..2)
            .map(|p| Interface {
                port: p,
                mac: IF_MAC,
                addr: IF_ADDR,
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
            })
            .collect(),
        services: vec![
            Service {
                vip: VIP,
                proto: ipv4::PROTO_TCP,
                sched: SchedKind::RoundRobin,
                laddrs: (0..N_LADDR as u16).collect(),
                servers: vec![RealServer {
                    addr: VIP,
                    weight: 1,
                    index: 0,
                    ..Default::default()
                }],
                ..Default::default()
            },
            Service {
                vip: SCRAMBLE_VIP,
                proto: ipv4::PROTO_TCP,
                sched: SchedKind::RoundRobin,
                laddrs: (N_LADDR as u16..2 * N_LADDR as u16).collect(),
                servers: vec![RealServer {
                    addr: rs0,
                    weight: 1,
                    index: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
        laddrs: (0..N_LADDR)
            .map(laddr_ip)
            .chain((0..N_LADDR).map(|i| [10, 201, i as u8, 1]))
            .map(Into::into)
            .collect(),
        lport_range: LPORT,
        timeouts: Timeouts::default(),
        rs_count: 2,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
    })
}

fn loop_neigh() -> Arc<NeighMap> {
    let (r, mac) = rs(0);
    Arc::new(NeighMap::new(vec![
        NeighEntry {
            ip: VIP.ip,
            mac: [0x02, 0, 0, 0, 0, 0x64],
            port: 0,
        },
        NeighEntry {
            ip: r.ip,
            mac,
            port: 0,
        },
    ]))
}

/// Local address of the `k`-th session of a loop worker (one worker's
/// whole port range, addresses round robin, ports FIFO).
fn cycle_laddr(k: u32) -> Endpoint {
    laddr_of(k, u32::from(LPORT.0), 1)
}

/// Client of session `k` of a cycle of `n`: the local address of the one before.
fn cycle_client(k: u32, n: u32) -> Endpoint {
    cycle_laddr(if k == 0 { n - 1 } else { k - 1 })
}

fn out_tuple(f: &[u8]) -> Res<(Endpoint, Endpoint)> {
    let ip = ipv4::Packet::new_checked(&f[14..]).map_err(|e| format!("{e:?}"))?;
    let seg = tcp::Packet::new_checked(ip.payload()).map_err(|e| format!("{e:?}"))?;
    Ok((
        Endpoint::new(ip.src(), seg.src_port()),
        Endpoint::new(ip.dst(), seg.dst_port()),
    ))
}

/// Fills every slot with a session of the scatter service, then lets them
/// expire in random order: the free list is then a random permutation, so
/// the cycle's consecutive sessions sit in unrelated slots (as after churn)
/// rather than side by side.
fn scatter(p: &mut Pipeline, n: u32, seed: u64) -> Res<()> {
    let syn = Template::new(tcp::SYN, 0, 64);
    let ack = Template::new(tcp::ACK, 10, 64);
    let mut f = [0u8; 64];
    for c in 0..n {
        syn.write(&mut f, CLIENT_MAC, client_tuple(c), SCRAMBLE_VIP);
        let v = p.process(&mut f[..syn.len], 0, Millis(0));
        if v != (Verdict::Forward { port: 0 }) {
            return Err(format!("scatter: SYN {c}: {v:?}").into());
        }
    }
    let mut order: Vec<u32> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        order.swap(i, below(xorshift(&mut x), i as u32 + 1) as usize);
    }
    for c in order {
        ack.write(&mut f, CLIENT_MAC, client_tuple(c), SCRAMBLE_VIP);
        let v = p.process(&mut f[..ack.len], 0, BUILT_AT);
        if v != Verdict::Drop(DropReason::NoSession) {
            return Err(format!("scatter: expiry of {c}: {v:?}").into());
        }
    }
    if !p.sessions().is_empty() {
        return Err("scatter: sessions left".into());
    }
    Ok(())
}

/// Builds the cycle of `n` sessions (see above) and checks that it closes.
fn build_cycle(p: &mut Pipeline, n: u32) -> Res<()> {
    let syn = Template::new(tcp::SYN, 0, LOOP_TTL);
    let mut f = [0u8; 64];
    let mut src = cycle_client(0, n);
    for k in 0..=n {
        syn.write(&mut f, CLIENT_MAC, src, VIP);
        let v = p.process(&mut f[..syn.len], 0, BUILT_AT);
        if v != (Verdict::Forward { port: 0 }) {
            return Err(format!("cycle: SYN {k}: {v:?}").into());
        }
        let (out_src, out_dst) = out_tuple(&f[..syn.len])?;
        if out_src != cycle_laddr(k % n) || out_dst != VIP {
            return Err(format!("cycle: hop {k} left as {out_src:?} -> {out_dst:?}").into());
        }
        src = out_src;
    }
    if p.sessions().len() != n as usize {
        return Err(format!("cycle: {} sessions, wanted {n}", p.sessions().len()).into());
    }
    Ok(())
}

/// Keeps a loop worker supplied with packets.
struct Injector {
    txq: TxQueue,
    loop_dev: usize,
    inj_dev: usize,
    pool: Arc<Mempool>,
    traffic: Traffic,
    n: u32,
    x: u64,
    next_client: u32,
    syn: Template,
    ack: Template,
    batch: MbufBatch,
}

impl Injector {
    /// Tops the packets in this worker's two rings up to [`LOOP_TOKENS`].
    fn top_up(&mut self, rings: &[Port]) -> Res<()> {
        let (l, i) = (rings[self.loop_dev].stats()?, rings[self.inj_dev].stats()?);
        let queued = l.opackets.saturating_sub(l.ipackets) + i.opackets.saturating_sub(i.ipackets);
        let mut want = LOOP_TOKENS.saturating_sub(queued);
        while want > 0 {
            if !self.pool.alloc_fill(&mut self.batch) {
                return Err("loop: mbuf pool exhausted".into());
            }
            while self.batch.len() as u64 > want {
                drop(self.batch.pop());
            }
            want -= self.batch.len() as u64;
            for m in self.batch.iter_mut() {
                match self.traffic {
                    Traffic::Syn => {
                        if m.set_len(self.syn.len) {
                            self.syn.write(
                                m.data_mut(),
                                CLIENT_MAC,
                                client_tuple(self.next_client),
                                VIP,
                            );
                        }
                        self.next_client += 1;
                    }
                    _ => {
                        let k = below(xorshift(&mut self.x), self.n);
                        if m.set_len(self.ack.len) {
                            self.ack
                                .write(m.data_mut(), CLIENT_MAC, cycle_client(k, self.n), VIP);
                        }
                    }
                }
            }
            self.txq.tx_burst(&mut self.batch);
            self.batch.clear();
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct LoopRow {
    workers: usize,
    flows: u32,
    syn: bool,
    /// Per worker: packets forwarded (or sessions created) per second of its
    /// CPU time, median window.
    rate: Vec<f64>,
    /// Per worker: the best window.
    best: Vec<f64>,
    windows: usize,
    /// Per worker: TSC cycles per packet received (or per session created), median window.
    cycles: Vec<f64>,
    /// With two workers, per worker: the median window in which it ran
    /// alone (the other one paused), interleaved with the windows above.
    alone: Vec<f64>,
    /// All workers: packets forwarded (or sessions created) per wall-clock
    /// second, in the windows where all of them ran (the snapshot exchange
    /// at both ends of a window included).
    wall_rate: f64,
    ttl_drop_pct: f64,
    setup_s: f64,
}

impl LoopRow {
    fn total(&self) -> f64 {
        self.rate.iter().sum()
    }

    /// Two workers together against one alone, in the same run.
    fn scaling(&self) -> Option<f64> {
        let alone = self.alone.iter().sum::<f64>() / self.alone.len().max(1) as f64;
        (self.workers == 2 && alone > 0.0).then(|| self.total() / alone)
    }
}

impl Lab {
    /// Launches one loop worker per pipeline: worker `w` receives on
    /// `net_ring(2w)` queue 0 (its loop) and `net_ring(2w+1)` queue 0 (the
    /// injector's), and transmits on `net_ring(2w)` queue 0.
    fn start_loop(
        &mut self,
        pipes: Vec<Pipeline>,
        traffic: Traffic,
        n: u32,
    ) -> Res<(Vec<Running>, Vec<Injector>)> {
        self.seq += 1;
        let mut plans = Vec::new();
        let mut inj = Vec::new();
        for (wi, pipeline) in pipes.into_iter().enumerate() {
            let (ld, id, q0) = (2 * wi, 2 * wi + 1, QueueId(0));
            plans.push(runtime::WorkerPlan {
                lcore: LcoreId(WORKER_LCORES[wi]),
                rx: vec![self.rings[ld].rx_queue(q0)?, self.rings[id].rx_queue(q0)?],
                tx: vec![
                    self.rings[ld].tx_queue(q0)?,
                    self.null.tx_queue(QueueId(wi as u16))?,
                ],
                port_ids: vec![self.rings[ld].id(), self.rings[id].id()],
                tap_rx: Vec::new(),
                tap_tx: Vec::new(),
                pipeline,
                on_start: None,
            });
            inj.push(Injector {
                txq: self.rings[id].tx_queue(q0)?,
                loop_dev: ld,
                inj_dev: id,
                pool: Arc::clone(&self.small),
                traffic,
                n,
                x: 0x2545_f491_4f6c_dd1d ^ wi as u64,
                next_client: 0,
                syn: Template::new(tcp::SYN, 0, LOOP_TTL),
                ack: Template::new(tcp::ACK, 10, LOOP_TTL),
                batch: MbufBatch::new(),
            });
        }
        let running = Running::launch(
            &self.eal,
            runtime::Plan {
                workers: plans,
                pool: Arc::clone(&self.small),
                idle: Idle::Busy,
                rs_count: 2,
                ring_prefix: format!("rvsb_{}", self.seq),
                ring_size: 4096,
            },
        )?;
        Ok((running, inj))
    }
}

/// Top-ups for a while (the main lcore mostly sleeps).
fn loop_ticks(lab: &Lab, inj: &mut [Injector], d: Duration) -> Res<()> {
    let end = Instant::now() + d;
    loop {
        for i in inj.iter_mut() {
            i.top_up(&lab.rings)?;
        }
        if Instant::now() >= end {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Every worker's counters, published on request while the injection goes on.
fn loop_snap(lab: &Lab, running: &[Running], inj: &mut [Injector]) -> Res<Vec<Snap>> {
    let mut acks = Vec::new();
    for w in running {
        let (tx, rx) = bounded(1);
        w.ask_publish(tx)?;
        acks.push(rx);
    }
    let mut out: Vec<Option<Snap>> = vec![None; running.len()];
    let start = Instant::now();
    while out.iter().any(Option::is_none) {
        for (i, a) in acks.iter().enumerate() {
            if out[i].is_none() && a.try_recv().is_ok() {
                out[i] = Some(running[i].read()?);
            }
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err("loop: a worker did not publish".into());
        }
        loop_ticks(lab, inj, Duration::ZERO)?;
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(out.into_iter().flatten().collect())
}

/// The loop method with `workers` workers, each with its own cycle of `n`
/// sessions (established; in a table of `capacity` slots if that is more,
/// scattered over all of them) or an empty table of `n` slots (new
/// connections).
fn loop_run(
    lab: &mut Lab,
    workers: usize,
    n: u32,
    capacity: u32,
    traffic: Traffic,
    wall: Duration,
) -> Res<LoopRow> {
    let t = Instant::now();
    let (tables, neigh) = (loop_tables(), loop_neigh());
    let mut pipes = Vec::new();
    for w in 0..workers {
        let seed = 0x0b5e_55ed ^ (w as u64) << 40 ^ u64::from(n);
        // Built as worker 0 of 1: each worker's cycle uses its own whole
        // port range and never leaves it (see BENCHMARKS.md).
        let cap = if traffic == Traffic::Established {
            n.max(capacity)
        } else {
            n
        };
        let mut p = Pipeline::new(Arc::clone(&tables), Arc::clone(&neigh), cap, seed, 0, 1);
        if traffic == Traffic::Established {
            scatter(&mut p, cap, seed)?;
            build_cycle(&mut p, n)?;
        }
        pipes.push(p);
    }
    let setup_s = t.elapsed().as_secs_f64();
    let (running, mut inj) = lab.start_loop(pipes, traffic, n)?;
    let result = loop_inner(lab, &running, &mut inj, n, traffic, wall);
    drop(inj);
    lab.stop(running)?;
    result.map(|r| LoopRow {
        workers,
        flows: n,
        setup_s,
        ..r
    })
}

/// Measurement windows per loop case: the figures are the median window
/// (the machine is shared; the best window is printed too).
const LOOP_WINDOWS: u32 = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn loop_inner(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    n: u32,
    traffic: Traffic,
    wall: Duration,
) -> Res<LoopRow> {
    let hz = lab.tsc_hz as f64;
    let syn = traffic == Traffic::Syn;
    let work_of = |s: &Snap| if syn { s.created } else { s.tx };
    // Warm-up: every session of the cycle visited a few times (bounded).
    let warm = if syn {
        0.2
    } else {
        (3.0 * f64::from(n) / 15e6).clamp(0.3, 3.0)
    };
    loop_ticks(lab, inj, Duration::from_secs_f64(warm))?;
    let first = loop_snap(lab, running, inj)?;
    // New connections: stop at half the table (counters are published every
    // 100 ms, so the check lags), well before it fills.
    let stop_at = u64::from(n) / 2;
    // With two workers, each round has three windows: both running, then
    // each alone while the other is paused, so the scaling compares figures
    // taken minutes apart on a shared machine no more.
    let kinds: Vec<Option<usize>> = if running.len() == 2 {
        vec![None, Some(0), Some(1)]
    } else {
        vec![None]
    };
    let win = (wall / (LOOP_WINDOWS * kinds.len() as u32)).max(Duration::from_millis(150));
    let mut together: Vec<Vec<(f64, f64)>> = vec![Vec::new(); running.len()];
    let mut alone: Vec<Vec<f64>> = vec![Vec::new(); running.len()];
    // Work and wall-clock seconds of the windows with every worker running.
    let (mut wall_work, mut wall_s) = (0u64, 0f64);
    let mut full = false;
    'rounds: for _ in 0..LOOP_WINDOWS {
        for kind in &kinds {
            let (lo, hi) = kind.map_or((0, running.len()), |w| (w, w + 1));
            let paused = match kind {
                Some(w) => pause(&running[1 - w..2 - w])?,
                None => Vec::new(),
            };
            let a = loop_snap(lab, &running[lo..hi], &mut inj[lo..hi])?;
            let tw = Instant::now();
            while tw.elapsed() < win && !full {
                loop_ticks(lab, &mut inj[lo..hi], Duration::from_millis(5))?;
                full = syn
                    && running
                        .iter()
                        .any(|w| w.shared.sessions_created.load(Ordering::Relaxed) >= stop_at);
            }
            let b = loop_snap(lab, &running[lo..hi], &mut inj[lo..hi])?;
            if kind.is_none() {
                wall_s += tw.elapsed().as_secs_f64();
                wall_work += b
                    .iter()
                    .zip(&a)
                    .map(|(b, a)| work_of(b) - work_of(a))
                    .sum::<u64>();
            }
            resume(paused)?;
            for (k, (b, a)) in b.iter().zip(&a).enumerate() {
                let cpu_s = (b.cpu_ns - a.cpu_ns) as f64 / 1e9;
                let work = work_of(b) - work_of(a);
                let per = if syn { work } else { b.rx - a.rx };
                let (rate, cycles) = (work as f64 / cpu_s, cpu_s * hz / per.max(1) as f64);
                match kind {
                    None => together[lo + k].push((rate, cycles)),
                    Some(_) => alone[lo + k].push(rate),
                }
            }
            if full {
                break 'rounds;
            }
        }
    }
    let last = loop_snap(lab, running, inj)?;
    let ttl_at = DropReason::TtlExceeded as usize;
    let (mut ttl, mut rx_all) = (0u64, 0u64);
    for (w, (a, b)) in last.iter().zip(&first).enumerate() {
        let mut other = *a;
        other.drops[ttl_at] = b.drops[ttl_at];
        if let Some(d) = other.dropped_since(b) {
            return Err(format!("loop: worker {w} dropped: {d}").into());
        }
        ttl += a.drops[ttl_at] - b.drops[ttl_at];
        rx_all += a.rx - b.rx;
    }
    Ok(LoopRow {
        syn,
        rate: together
            .iter()
            .map(|v| median(v.iter().map(|x| x.0).collect()))
            .collect(),
        best: together
            .iter()
            .map(|v| v.iter().map(|x| x.0).fold(0.0, f64::max))
            .collect(),
        cycles: together
            .iter()
            .map(|v| median(v.iter().map(|x| x.1).collect()))
            .collect(),
        alone: if running.len() == 2 {
            alone.into_iter().map(median).collect()
        } else {
            Vec::new()
        },
        windows: together.first().map_or(0, Vec::len),
        wall_rate: wall_work as f64 / wall_s.max(1e-9),
        ttl_drop_pct: 100.0 * ttl as f64 / rx_all.max(1) as f64,
        ..LoopRow::default()
    })
}

// ---------------------------------------------------------------------------
// The scrape method: forwarding with and without GET /metrics every second.

/// Scrape-method figures.
#[derive(Debug, Default)]
struct ScrapeRow {
    /// Median rates (packets forwarded per second of the worker's CPU time,
    /// and per wall-clock second) of the windows without scraping.
    none_cpu: f64,
    none_wall: f64,
    /// The same with a scrape every second.
    scraped_cpu: f64,
    scraped_wall: f64,
    /// Windows of each kind, and their length.
    windows: usize,
    window_s: f64,
    /// Per round: (no scrape, scraped) rate per CPU second.
    pairs: Vec<(f64, f64)>,
    /// Scrapes answered, body bytes in all, mean time to answer one.
    scrapes: u64,
    bytes: u64,
    serve_ms: f64,
}

/// Answers one `GET /metrics` as rvsd's metrics server does: ask every
/// worker to publish and wait, read its counters and every port's ethdev
/// stats and xstats, encode with `rvs_control::metrics`, reply over HTTP.
/// Returns the body's length.
fn serve_scrape(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    stream: std::net::TcpStream,
) -> Res<usize> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    // The publish round trip goes on while the injection does (as in rvsd,
    // where the workers keep forwarding while control waits for them).
    let snaps = loop_snap(lab, running, inj)?;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let workers = running
        .iter()
        .zip(&snaps)
        .map(|(w, s)| {
            let sh = &w.shared;
            metrics::WorkerSample {
                lcore: w.lcore,
                rx_packets: s.rx,
                tx_packets: s.tx,
                rx_bytes: l(&sh.rx_bytes),
                tx_bytes: l(&sh.tx_bytes),
                drops: DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), s.drops[*r as usize]))
                    .collect(),
                redirected_out: s.redirected,
                redirected_in: l(&sh.redirected_in),
                polls: s.polls,
                empty_polls: s.empty,
                sessions: l(&sh.sessions),
                session_capacity: 0,
                sessions_created: s.created,
                sessions_expired: l(&sh.sessions_expired),
                generation: l(&sh.generation),
                guard_on: false,
                guard: Vec::new(),
            }
        })
        .collect();
    let mut ports = Vec::new();
    for (i, p) in lab
        .rings
        .iter()
        .chain(std::iter::once(&lab.null))
        .enumerate()
    {
        let st = p.stats()?;
        ports.push(metrics::PortSample {
            name: format!("port{i}"),
            basic: [
                st.ipackets,
                st.opackets,
                st.ibytes,
                st.obytes,
                st.imissed,
                st.ierrors,
                st.oerrors,
                st.rx_nombuf,
            ],
            link_up: p.link_up(),
            xstats: p.xstats()?,
        });
    }
    let body = metrics::render(&metrics::Snapshot {
        workers,
        ports,
        generation: 1,
        last_reload_ok: true,
        ..metrics::Snapshot::default()
    })?;
    let mut w = stream;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    Ok(body.len())
}

/// A Prometheus stand-in: `GET /metrics` every second until told to stop;
/// fails on any answer but a 200 with a body.
fn scraper(addr: std::net::SocketAddr, stop: Receiver<()>) -> Result<u64, String> {
    scrape_loop(addr, stop).map_err(|e| e.to_string())
}

fn scrape_loop(addr: std::net::SocketAddr, stop: Receiver<()>) -> Res<u64> {
    use std::io::{Read, Write};
    let mut n = 0;
    loop {
        let t = Instant::now();
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        if !answer.starts_with("HTTP/1.1 200 OK") || !answer.contains("rvs_worker_rx_packets_total")
        {
            return Err(
                format!("bad scrape answer: {}", answer.lines().next().unwrap_or("")).into(),
            );
        }
        n += 1;
        match stop.recv_timeout(Duration::from_secs(1).saturating_sub(t.elapsed())) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return Ok(n),
        }
    }
}

/// The scrape method over `total` seconds: rounds of one window without
/// and one with scraping (in that order, then swapped, so drift on the
/// shared machine falls on both alike).
fn scrape_run(lab: &mut Lab, n: u32, total: Duration) -> Res<ScrapeRow> {
    let (tables, neigh) = (loop_tables(), loop_neigh());
    let seed = 0x5c4a_9e00 ^ u64::from(n);
    let mut p = Pipeline::new(Arc::clone(&tables), Arc::clone(&neigh), n, seed, 0, 1);
    scatter(&mut p, n, seed)?;
    build_cycle(&mut p, n)?;
    let (running, mut inj) = lab.start_loop(vec![p], Traffic::Established, n)?;
    let result = scrape_inner(lab, &running, &mut inj, n, total);
    drop(inj);
    lab.stop(running)?;
    result
}

fn scrape_inner(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    n: u32,
    total: Duration,
) -> Res<ScrapeRow> {
    const ROUNDS: u32 = 6;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let window = (total / (2 * ROUNDS)).max(Duration::from_secs(3));
    loop_ticks(
        lab,
        inj,
        Duration::from_secs_f64((3.0 * f64::from(n) / 15e6).clamp(0.3, 3.0)),
    )?;
    let first = loop_snap(lab, running, inj)?;
    let mut row = ScrapeRow {
        window_s: window.as_secs_f64(),
        ..ScrapeRow::default()
    };
    let mut none: Vec<(f64, f64)> = Vec::new();
    let mut scraped: Vec<(f64, f64)> = Vec::new();
    let mut serve_s = 0.0;
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = (0.0, 0.0);
        for scrape in order {
            let job = scrape.then(|| {
                let (tx, rx) = bounded::<()>(1);
                (tx, std::thread::spawn(move || scraper(addr, rx)))
            });
            let a = loop_snap(lab, running, inj)?;
            let tw = Instant::now();
            while tw.elapsed() < window {
                loop_ticks(lab, inj, Duration::from_millis(5))?;
                while let Ok((stream, _)) = listener.accept() {
                    let t = Instant::now();
                    row.bytes += serve_scrape(lab, running, inj, stream)? as u64;
                    serve_s += t.elapsed().as_secs_f64();
                    row.scrapes += 1;
                }
            }
            let b = loop_snap(lab, running, inj)?;
            let wall = tw.elapsed().as_secs_f64();
            if let Some((tx, handle)) = job {
                let _ = tx.send(());
                // The scraper may be waiting for an answer: keep serving until it is done.
                while !handle.is_finished() {
                    while let Ok((stream, _)) = listener.accept() {
                        row.bytes += serve_scrape(lab, running, inj, stream)? as u64;
                        row.scrapes += 1;
                    }
                    loop_ticks(lab, inj, Duration::from_millis(5))?;
                }
                handle
                    .join()
                    .map_err(|_| "scraper panicked")?
                    .map_err(|e| format!("scraper: {e}"))?;
            }
            let (a, b) = (&a[0], &b[0]);
            let cpu_s = (b.cpu_ns - a.cpu_ns) as f64 / 1e9;
            let rates = ((b.tx - a.tx) as f64 / cpu_s, (b.tx - a.tx) as f64 / wall);
            if scrape {
                scraped.push(rates);
                pair.1 = rates.0;
            } else {
                none.push(rates);
                pair.0 = rates.0;
            }
        }
        row.pairs.push(pair);
    }
    let last = loop_snap(lab, running, inj)?;
    let ttl_at = DropReason::TtlExceeded as usize;
    let mut other = last[0];
    other.drops[ttl_at] = first[0].drops[ttl_at];
    if let Some(d) = other.dropped_since(&first[0]) {
        return Err(format!("scrape: the worker dropped: {d}").into());
    }
    if row.scrapes == 0 {
        return Err("scrape: no scrape was answered".into());
    }
    row.windows = none.len();
    row.none_cpu = median(none.iter().map(|r| r.0).collect());
    row.none_wall = median(none.iter().map(|r| r.1).collect());
    row.scraped_cpu = median(scraped.iter().map(|r| r.0).collect());
    row.scraped_wall = median(scraped.iter().map(|r| r.1).collect());
    row.serve_ms = 1e3 * serve_s / row.scrapes as f64;
    Ok(row)
}

// ---------------------------------------------------------------------------
// Command line, orchestration, report.

/// The data-path benchmark of issue #3 (run by scripts/bench): the session
/// table in-process, then the DPDK part (EAL with --no-huge --no-pci, lcores
/// 0@0,1@1,2@0, net_null0 and net_ring0..15); prints a summary with the
/// targets of issue #3 (see BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "rvs-bench")]
struct Opts {
    /// testpmd's rate on net_ring (Mpps), printed beside rvs's for reference.
    #[arg(long, value_name = "MPPS")]
    testpmd_ring: Option<f64>,
    /// testpmd's rate on net_null (Mpps), printed beside rvs's.
    #[arg(long, value_name = "MPPS")]
    testpmd_null: Option<f64>,
    /// Session counts of the one-worker loop method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000,10000000")]
    loop_flows: ::std::vec::Vec<u32>,
    /// Session counts of the two-worker loop method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000")]
    loop2_flows: ::std::vec::Vec<u32>,
    /// Flow counts of the stream method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,100000")]
    stream_flows: ::std::vec::Vec<u32>,
    /// Flow counts of the pause method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000")]
    pause_flows: ::std::vec::Vec<u32>,
    /// Session-table sizes of the in-process part.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000,10000000,16777216")]
    table_sizes: ::std::vec::Vec<u32>,
    /// Seconds per measuring window.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    secs: f64,
    /// Session-table capacity of the established loop runs, when larger
    /// than their session count (0: the session count). A deployed worker's
    /// table has its configured capacity (`session_capacity`, 1 M by
    /// default) however few sessions are live.
    #[arg(long, value_name = "N", default_value_t = 0)]
    loop_capacity: u32,
    /// Session table size of the new-connection runs.
    #[arg(long, value_name = "N", default_value_t = 4_000_000)]
    syn_capacity: u32,
    /// DPDK file prefix (must start with rvs-bench).
    #[arg(long = "file-prefix", value_name = "P", default_value = "rvs-bench")]
    prefix: String,
    /// Skip the session-table part.
    #[arg(long)]
    skip_table: bool,
    /// Skip everything that needs DPDK.
    #[arg(long)]
    skip_dpdk: bool,
    /// Skip the stream method.
    #[arg(long)]
    skip_stream: bool,
    /// Skip the pause method.
    #[arg(long)]
    skip_pause: bool,
    /// Skip the loop method.
    #[arg(long)]
    skip_loop: bool,
    /// Total seconds of the scrape scenario (issue #8; none without it).
    #[arg(long, value_name = "SECS")]
    scrape: Option<f64>,
    /// Sessions of the scrape scenario.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    scrape_flows: u32,
}

/// A comma-separated list of counts (empty: none).
fn parse_list(v: &str) -> Result<Vec<u32>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<u32>().map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// The flags' ranges, which clap does not check.
fn check_args(o: &Opts) -> Res<()> {
    if !o.prefix.starts_with("rvs-bench") {
        return Err("--file-prefix must start with rvs-bench".into());
    }
    let one = port_capacity(1);
    if let Some(n) = o
        .loop_flows
        .iter()
        .chain(&o.loop2_flows)
        .chain(&o.stream_flows)
        .find(|n| **n < 2 || **n > one)
    {
        return Err(format!("{n} flows: must be 2..={one} (local ports of one worker)").into());
    }
    if let Some(n) = o
        .pause_flows
        .iter()
        .find(|n| **n == 0 || **n > port_capacity(2))
    {
        return Err(format!(
            "--pause-flows {n}: must be 1..={} (local ports of a worker of two)",
            port_capacity(2)
        )
        .into());
    }
    if o.loop_capacity > one {
        return Err(
            format!("--loop-capacity must be at most {one} (local ports of one worker)").into(),
        );
    }
    if o.syn_capacity < 1000 || o.syn_capacity > port_capacity(2) {
        return Err(format!("--syn-capacity must be 1000..={}", port_capacity(2)).into());
    }
    if o.secs.is_nan() || o.secs <= 0.0 {
        return Err("--secs must be positive".into());
    }
    Ok(())
}

fn human(n: u32) -> String {
    match n {
        n if n >= 1 << 20 && n.is_power_of_two() => format!("2^{}", n.trailing_zeros()),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}K", n / 1_000),
        n => n.to_string(),
    }
}

fn list(v: &[f64], scale: f64, prec: usize) -> String {
    v.iter()
        .map(|x| format!("{:.*}", prec, x / scale))
        .collect::<Vec<_>>()
        .join(" + ")
}

#[derive(Default)]
struct Report {
    cpus: usize,
    table: Vec<TableRow>,
    fixed_pipeline_bytes: u64,
    loops: Vec<LoopRow>,
    ceiling: Option<StreamRow>,
    stream: Vec<StreamRow>,
    pause: Vec<PauseRow>,
    tsc_hz: u64,
}

fn run(o: &Opts) -> Res<Report> {
    let mut rep = Report {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        ..Report::default()
    };
    self_check()?;
    println!(
        "self-check: generated frames have valid checksums and hit the sessions predicted for them"
    );
    if !o.skip_table {
        let before = rss_bytes()?;
        let p = Pipeline::new(tables(1), neigh(), 1, 1, 0, 1);
        rep.fixed_pipeline_bytes = rss_bytes()?.saturating_sub(before);
        drop(p);
        for &n in &o.table_sizes {
            let r = table_bench(n, 2_000_000)?;
            println!(
                "table {:>6}: {:6.1} B/session by size, {:6.1} by RSS; insert {:6.1} ns; lookup {:5.1} ns independent, {:6.1} ns dependent; memory {:6.1} ns",
                human(n),
                r.sized_bytes,
                r.rss_bytes,
                r.insert_ns,
                r.lookup_ns,
                r.lookup_dep_ns,
                r.mem_ns
            );
            rep.table.push(r);
        }
    }
    if o.skip_dpdk {
        return Ok(rep);
    }
    let mut lab = Lab::new(&o.prefix)?;
    rep.tsc_hz = lab.tsc_hz;
    println!(
        "EAL up: TSC {:.3} GHz, net_ring0..{} + net_null0",
        lab.tsc_hz as f64 / 1e9,
        RING_DEVS - 1
    );
    let wall = Duration::from_secs_f64(o.secs);
    let mut loop_cases: Vec<(u32, Traffic)> = o
        .loop_flows
        .iter()
        .map(|&n| (n, Traffic::Established))
        .collect();
    loop_cases.push((o.syn_capacity, Traffic::Syn));
    if o.skip_loop {
        loop_cases.clear();
    }
    for (n, traffic) in loop_cases {
        let max_workers = if traffic == Traffic::Syn || o.loop2_flows.contains(&n) {
            WORKER_LCORES.len()
        } else {
            1
        };
        for workers in 1..=max_workers {
            let r = loop_run(&mut lab, workers, n, o.loop_capacity, traffic, wall)?;
            let (what, unit) = if r.syn {
                (
                    format!("new connections (table of {})", human(n)),
                    "M conn/s",
                )
            } else if o.loop_capacity > n {
                (
                    format!(
                        "{} sessions (table of {})",
                        human(n),
                        human(o.loop_capacity)
                    ),
                    "Mpps",
                )
            } else {
                (format!("{} sessions", human(n)), "Mpps")
            };
            println!(
                "loop {workers} worker(s), {what}: per worker {} {unit} of CPU time (best {}{}), {} cycles; all {:.2} {unit} wall; {:.2}% TTL drops; {} windows; setup {:.1} s",
                list(&r.rate, 1e6, 2),
                list(&r.best, 1e6, 2),
                if r.alone.iter().all(|a| *a <= 0.0) { String::new() } else { format!("; alone {}", list(&r.alone, 1e6, 2)) },
                list(&r.cycles, 1.0, 0),
                r.wall_rate / 1e6,
                r.ttl_drop_pct,
                r.windows,
                r.setup_s
            );
            rep.loops.push(r);
        }
    }
    if let Some(total) = o.scrape {
        let r = scrape_run(&mut lab, o.scrape_flows, Duration::from_secs_f64(total))?;
        let pct = |a: f64, b: f64| 100.0 * (a - b) / b.max(1e-9);
        println!(
            "scrape, 1 worker, {} sessions: no scrape {:.3} Mpps of CPU time ({:.3} wall); scrape every 1 s {:.3} Mpps of CPU time ({:.3} wall); difference {:+.2}% ({:+.2}% wall); {} + {} windows of {:.1} s, {} scrapes of {:.0} KiB, {:.2} ms each on the main lcore",
            human(o.scrape_flows),
            r.none_cpu / 1e6,
            r.none_wall / 1e6,
            r.scraped_cpu / 1e6,
            r.scraped_wall / 1e6,
            pct(r.scraped_cpu, r.none_cpu),
            pct(r.scraped_wall, r.none_wall),
            r.windows,
            r.windows,
            r.window_s,
            r.scrapes,
            r.bytes as f64 / 1024.0 / r.scrapes.max(1) as f64,
            r.serve_ms
        );
        println!(
            "scrape windows (Mpps of CPU time, none / scraped): {}",
            r.pairs
                .iter()
                .map(|(a, b)| format!("{:.3}/{:.3}", a / 1e6, b / 1e6))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !o.skip_stream {
        let c = stream_ceiling(&mut lab, wall)?;
        println!(
            "stream ceiling (frames dropped at L2): {:.2} Mpps, {:.1} pkts/poll, {:.1}% empty polls; generator alone {:.1} Mpps",
            c.mpps,
            c.per_poll,
            c.empty_pct,
            c.gen_alone / 1e6
        );
        rep.ceiling = Some(c);
        for &n in &o.stream_flows {
            let r = stream(&mut lab, n, wall)?;
            println!(
                "stream {:>5} flows: {:6.2} Mpps, {:6.1} cycles/pkt, {:4.1} pkts/poll, {:4.1}% empty polls; SYN phase {:.2} M conn/s, {:.0} cycles/conn",
                human(n),
                r.mpps,
                r.cycles,
                r.per_poll,
                r.empty_pct,
                r.syn_rate / 1e6,
                r.syn_cycles
            );
            rep.stream.push(r);
        }
    }
    if !o.skip_pause {
        let mut cases: Vec<(u32, Traffic, u32)> = o
            .pause_flows
            .iter()
            .map(|&n| (n, Traffic::Established, n))
            .collect();
        cases.push((0, Traffic::Syn, o.syn_capacity));
        for (flows, traffic, capacity) in cases {
            for workers in 1..=WORKER_LCORES.len() {
                let r = pause_run(&mut lab, workers, flows, traffic, capacity, wall)?;
                let (what, unit) = if traffic == Traffic::Syn {
                    ("new connections".to_string(), "M conn/s")
                } else {
                    (format!("{} flows/worker", human(flows)), "Mpps")
                };
                println!(
                    "pause {workers} worker(s), {what}: per worker {} {unit}{}; cycles {}; {} windows ({} dry), {:.2} s measured per worker",
                    list(&r.rate, 1e6, 2),
                    if r.alone.is_empty() { String::new() } else { format!(" (alone {})", list(&r.alone, 1e6, 2)) },
                    list(&r.cycles, 1.0, 0),
                    r.windows,
                    r.dry,
                    r.measured_s
                );
                rep.pause.push(PauseRow { flows, ..r });
            }
        }
    }
    Ok(rep)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn print_report(o: &Opts, rep: &Report) {
    let ghz = if rep.tsc_hz > 0 {
        rep.tsc_hz as f64 / 1e9
    } else {
        2.1
    };
    let tp = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} Mpps"));
    println!();
    println!("==================== rvs-bench summary ====================");
    println!(
        "machine: {}, {} CPUs, TSC {ghz:.2} GHz; cycles below are TSC cycles",
        cpu_model(),
        rep.cpus
    );
    println!("frames: 64 bytes (Ethernet + IPv4 + TCP + 10 B data; SYNs 60 B). TCP only (rvs-bench generates no UDP: rvs forwarded TCP only when it was written).");
    println!();
    println!(
        "I/O ceiling, dpdk-testpmd macswap, 1 forwarding core, per second of its CPU time: net_ring loop (--tx-first) {}; net_null {}",
        tp(o.testpmd_ring),
        tp(o.testpmd_null)
    );
    if !rep.loops.is_empty() {
        println!();
        println!("rvs FULLNAT, loop method (packets stay on the worker's CPU, net_ring loop as testpmd's; rate per second of worker CPU;");
        println!("scaling: both workers' sum against one worker alone, in windows interleaved in the same run):");
        println!(
            "  {:<34} | {:>2} | {:>18} | {:>13} | {:>11} | {:>14} | {:>7} | {:>9}",
            "case",
            "w",
            "per worker, median",
            "best window",
            "cycles",
            "all, wall",
            "scaling",
            "x testpmd"
        );
        for r in &rep.loops {
            let (case, unit) = if r.syn {
                (
                    format!("new connections, table of {}", human(r.flows)),
                    "M/s",
                )
            } else {
                (
                    format!("established, {} sessions/worker", human(r.flows)),
                    "Mpps",
                )
            };
            let scaling = r
                .scaling()
                .map_or_else(|| "-".into(), |s| format!("{s:.2}x"));
            let x = match (r.syn, r.workers, o.testpmd_ring) {
                (false, 1, Some(t)) => format!("{:.2}", r.total() / 1e6 / t),
                _ => "-".into(),
            };
            println!(
                "  {:<34} | {:>2} | {:>18} | {:>13} | {:>11} | {:>14} | {:>7} | {:>9}",
                case,
                r.workers,
                format!("{} {unit}", list(&r.rate, 1e6, 2)),
                list(&r.best, 1e6, 2),
                list(&r.cycles, 1.0, 0),
                format!("{:.2} {unit}", r.wall_rate / 1e6),
                scaling,
                x
            );
        }
    }
    if let Some(c) = &rep.ceiling {
        println!();
        println!("Generator-fed (stream method: generator on CPU 0 -> net_ring -> 1 worker on CPU 1 -> net_null):");
        println!(
            "  harness ceiling (worker drops every frame after the Ethernet header): {:.2} Mpps, {:.1} pkts/poll; generator alone {:.1} Mpps",
            c.mpps,
            c.per_poll,
            c.gen_alone / 1e6
        );
        println!("  (cycles/pkt is the worker's CPU time per packet, idle polling included: a cost only when pkts/poll is near 32)");
        println!(
            "  {:>6} | {:>8} | {:>10} | {:>9} | {:>11} | {:>12} | {:>11}",
            "flows", "Mpps", "cycles/pkt", "pkts/poll", "empty polls", "new conn/s", "cycles/conn"
        );
        for r in &rep.stream {
            let syn = if r.flows >= 100_000 {
                format!("{:.2} M", r.syn_rate / 1e6)
            } else {
                "-".into()
            };
            let sync = if r.flows >= 100_000 {
                format!("{:.0}", r.syn_cycles)
            } else {
                "-".into()
            };
            println!(
                "  {:>6} | {:>8.2} | {:>10.1} | {:>9.1} | {:>10.1}% | {:>12} | {:>11}",
                human(r.flows),
                r.mpps,
                r.cycles,
                r.per_poll,
                r.empty_pct,
                syn,
                sync
            );
        }
    }
    if !rep.pause.is_empty() {
        println!();
        println!("Pause method (rvs's own 2-worker flow ownership; 128 queues pre-filled per worker, packets cold in cache):");
        println!(
            "  {:<26} | {:>2} | {:>20} | {:>11} | {:>16} | {:>7}",
            "case", "w", "per worker", "cycles", "total", "scaling"
        );
        for r in &rep.pause {
            let (case, unit) = if r.traffic == Some(Traffic::Syn) {
                ("new connections".to_string(), "M/s")
            } else {
                (format!("established, {} flows", human(r.flows)), "Mpps")
            };
            let scaling = r
                .scaling()
                .map_or_else(|| "-".into(), |s| format!("{s:.2}x"));
            println!(
                "  {:<26} | {:>2} | {:>20} | {:>11} | {:>16} | {:>7}",
                case,
                r.workers,
                format!("{} {unit}", list(&r.rate, 1e6, 2)),
                list(&r.cycles, 1.0, 0),
                format!("{:.2} {unit}", r.total() / 1e6),
                scaling
            );
        }
    }
    if !rep.table.is_empty() {
        println!();
        println!("Session table alone (in-process, no DPDK; a worker's pipeline adds {:.1} MiB fixed, mostly 256 local-port pools):", rep.fixed_pipeline_bytes as f64 / 1048576.0);
        println!(
            "  {:>8} | {:>9} | {:>10} | {:>9} | {:>9} | {:>9} | {:>12} | {:>10}",
            "sessions",
            "B/session",
            "B/sess RSS",
            "total MiB",
            "insert ns",
            "lookup ns",
            "dependent ns",
            "memory ns"
        );
        for r in &rep.table {
            let rss = if r.rss_bytes >= 1.0 {
                format!("{:.1}", r.rss_bytes)
            } else {
                "-".into()
            };
            println!(
                "  {:>8} | {:>9.1} | {:>10} | {:>9.1} | {:>9.1} | {:>9.1} | {:>12.1} | {:>10.1}",
                human(r.n),
                r.sized_bytes,
                rss,
                r.sized_bytes * f64::from(r.n) / 1048576.0,
                r.insert_ns,
                r.lookup_ns,
                r.lookup_dep_ns,
                r.mem_ns
            );
        }
        println!("  (lookup: independent random keys; dependent: each key depends on the last result; memory: a dependent random");
        println!("   read in a buffer of the table's size, this machine's floor for one cache miss there)");
    }
    println!();
    println!("Targets (issue #3):");
    let est1: Vec<&LoopRow> = rep
        .loops
        .iter()
        .filter(|r| !r.syn && r.workers == 1)
        .collect();
    if !est1.is_empty() {
        let budget = 140.0 * ghz / 2.1;
        for r in &est1 {
            println!(
                "  established >= 15 Mpps/worker (<= {budget:.0} cycles/pkt), {} sessions: {:.2} Mpps (best window {:.2}), {:.0} cycles/pkt -> {} (x{:.2} of target)",
                human(r.flows),
                r.total() / 1e6,
                r.best.iter().sum::<f64>() / 1e6,
                r.cycles[0],
                verdict(r.total() >= 15e6),
                r.total() / 15e6
            );
        }
        if let (Some(t), Some(r)) = (o.testpmd_ring, est1.first()) {
            println!(
                "  >= 0.5x testpmd macswap on the same net_ring loop ({t:.1} Mpps), {} sessions: {:.2}x -> {}",
                human(r.flows),
                r.total() / 1e6 / t,
                verdict(r.total() / 1e6 >= 0.5 * t)
            );
        }
    }
    if let Some(r) = rep.loops.iter().find(|r| r.syn && r.workers == 1) {
        println!(
            "  >= 1 M new connections/s per worker: {:.2} M/s ({:.0} cycles each) -> {}",
            r.total() / 1e6,
            r.cycles[0],
            verdict(r.total() >= 1e6)
        );
    }
    if let Some(t) = rep
        .table
        .iter()
        .filter(|r| r.n >= 10_000_000)
        .min_by_key(|r| r.n)
    {
        let gib = t.sized_bytes * f64::from(t.n) / f64::from(1u32 << 30);
        println!(
            "  >= 10 M sessions in <= 2 GiB: {} sessions take {gib:.2} GiB -> {}",
            human(t.n),
            verdict(gib <= 2.0)
        );
        if let Some(k) = rep.table.first() {
            println!(
                "  lookup at {} within 1.3x of {}: {:.2}x (independent lookups), {:.2}x (dependent chain) -> {}",
                human(t.n),
                human(k.n),
                t.lookup_ns / k.lookup_ns,
                t.lookup_dep_ns / k.lookup_dep_ns,
                verdict(t.lookup_ns <= 1.3 * k.lookup_ns)
            );
        }
    }
    if let (Some(a), Some(b)) = (est1.first(), est1.iter().rfind(|r| r.flows >= 10_000_000)) {
        println!(
            "     end to end (loop, cycles/pkt at {} vs {} sessions): {:.2}x",
            human(b.flows),
            human(a.flows),
            b.cycles[0] / a.cycles[0]
        );
    }
    for r in &rep.loops {
        if let Some(s) = r.scaling() {
            let what = if r.syn {
                "new connections".to_string()
            } else {
                format!("established, {}", human(r.flows))
            };
            println!(
                "  two workers >= 1.8x one (loop, {what}): {s:.2}x -> {}",
                verdict(s >= 1.8)
            );
        }
    }
    for r in &rep.pause {
        if let Some(s) = r.scaling() {
            let what = if r.traffic == Some(Traffic::Syn) {
                "new connections".to_string()
            } else {
                format!("established, {}", human(r.flows))
            };
            println!(
                "  two workers >= 1.8x one (pause, {what}): {s:.2}x -> {}",
                verdict(s >= 1.8)
            );
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's code), as range errors below.
    let opts = Opts::parse();
    if let Err(e) = check_args(&opts) {
        eprintln!("rvs-bench: {e}");
        return ExitCode::from(2);
    }
    match run(&opts) {
        Ok(rep) => {
            print_report(&opts, &rep);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvs-bench: broken run: {e}");
            ExitCode::FAILURE
        }
    }
}
