//! A new connection through `Pipeline::process`, without DPDK: the SYN of
//! a flow no session holds yet (FULLNAT, round robin over 4 servers, 16
//! local addresses), which is checked, scheduled, lent a local port,
//! routed, inserted and forwarded. Sessions are expired between timed
//! chunks (untimed), so the table never fills. With 256 local addresses and
//! 128 interfaces as well (rvs-bench's pause method's configuration, whose
//! lists the new-flow checks once walked). Figures go to BENCHMARKS.md.

mod common;

use common::tcp_frame;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::{Endpoint, Timeouts};
use rvs_dataplane::tables::{Interface, RealServer, Service, Tables};
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::tcp;

/// Session slots of the table.
const CAPACITY: u32 = 1 << 16;
/// SYNs per timed chunk (a quarter of the table: the flood guard's table
/// trigger stays off).
const CHUNK: u32 = 1 << 14;

fn pipeline(laddrs: u16, interfaces: u16) -> Pipeline {
    let vip = Endpoint::new([10, 77, 0, 100], 80);
    let tables = Arc::new(Tables {
        interfaces: (0..interfaces)
            .map(|p| Interface {
                port: p,
                mac: [2, 0, 0, 0, 0, 2],
                addr: [10, 77, 0, 2],
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
            })
            .collect(),
        services: vec![Service {
            vip,
            proto: 6,
            sched: SchedKind::RoundRobin,
            laddrs: (0..laddrs).collect(),
            servers: (0..4)
                .map(|i| RealServer {
                    addr: Endpoint::new([10, 77, 0, 11 + i as u8], 80),
                    weight: 1,
                    index: i,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        laddrs: (0..laddrs)
            .map(|i| [10, 78, (i >> 8) as u8, i as u8].into())
            .collect(),
        lport_range: (1025, 65535),
        timeouts: Timeouts::default(),
        rs_count: 4,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    });
    let neigh = Arc::new(NeighMap::new(
        (0..4)
            .map(|i| NeighEntry {
                ip: [10, 77, 0, 11 + i].into(),
                mac: [2, 0, 0, 0, 0, 0x11 + i],
                port: 0,
            })
            .collect(),
    ));
    Pipeline::new(tables, neigh, CAPACITY, 1, 0, 1)
}

/// The timed part: `frames` through `p`, one by one, copied into `f`
/// (not inlined: `valgrind --tool=callgrind --toggle-collect='*syns*'`
/// counts its instructions alone).
#[inline(never)]
fn syns(p: &mut Pipeline, frames: &[Vec<u8>], f: &mut [u8], now: Millis) {
    for frame in frames {
        f.copy_from_slice(frame);
        let v = p.process(f, 0, now);
        debug_assert_eq!(v, Verdict::Forward { port: 0 });
        black_box(v);
    }
}

/// `iters` new connections, timed in chunks of [`CHUNK`]; the chunk's
/// sessions expire (untimed) before the next. The SYNs' clients differ in
/// address and port, so each misses the table.
fn run(p: &mut Pipeline, frames: &[Vec<u8>], clock: &mut u64, iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    let mut left = iters;
    let mut f = frames[0].clone();
    while left > 0 {
        let n = left.min(u64::from(CHUNK));
        let now = Millis(*clock);
        let start = Instant::now();
        syns(p, &frames[..n as usize], &mut f, now);
        spent += start.elapsed();
        left -= n;
        // Everything expires a day later.
        *clock += 86_400_000;
        p.housekeeping(Millis(*clock), CAPACITY as usize);
        assert_eq!(p.sessions().len(), 0, "the chunk's sessions expired");
    }
    spent
}

fn bench_new_connection(c: &mut Criterion) {
    let vip = Endpoint::new([10, 77, 0, 100], 80);
    let frames: Vec<Vec<u8>> = (0..CHUNK)
        .map(|k| {
            let b = k.to_be_bytes();
            tcp_frame(
                [2, 0, 0, 0, 0, 9],
                Endpoint::new([10, 1, b[2], b[3]], 10000 + (k % 5000) as u16),
                vip,
                tcp::SYN,
            )
        })
        .collect();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for (name, laddrs, ifs) in [
        ("new_connection_syn", 16, 1),
        ("new_connection_syn_256_laddrs_128_ifs", 256, 128),
    ] {
        let mut p = pipeline(laddrs, ifs);
        let mut clock = 1u64;
        // The first pass checks that every SYN creates a session.
        let mut f = frames[0].clone();
        for fr in &frames {
            f.copy_from_slice(fr);
            assert_eq!(
                p.process(&mut f, 0, Millis(clock)),
                Verdict::Forward { port: 0 }
            );
        }
        assert_eq!(p.sessions().len(), CHUNK as usize);
        clock += 86_400_000;
        p.housekeeping(Millis(clock), CAPACITY as usize);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| run(&mut p, &frames, &mut clock, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_new_connection);
criterion_main!(benches);
