//! The master's cost per synced connection in the control process: a
//! worker's record turned into a wire entry and batched into datagrams
//! (`sync::convert` + `sync::daemon::Master`), FULLNAT (44 bytes an entry,
//! with rvs's local-address option) and NAT (36 bytes). Figures go to
//! BENCHMARKS.md; `entries per datagram` is printed once per case.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::session::Endpoint;
use dataplane::sync_feed::{RecordKind, SyncRecord};
use dataplane::tables::Forward;
use rvs_control::sync::convert::conn_of;
use rvs_control::sync::daemon::{DaemonConfig, Master};
use rvs_control::sync::wire::{self, Role};

fn record(i: u32, forward: Forward) -> SyncRecord {
    let b = i.to_be_bytes();
    SyncRecord {
        kind: RecordKind::Conn,
        proto: 6,
        forward,
        state: 1,
        client: Endpoint::new([10, b[1], b[2], b[3]], 40000),
        vip: Endpoint::new([10, 77, 0, 100], 80),
        rs: Endpoint::new([10, 77, 0, 11], 80),
        laddr: (forward == Forward::FullNat)
            .then(|| Endpoint::new([10, 77, 0, 200], 1025 + (i % 60000) as u16)),
        timeout_s: 900,
        client_addr: dataplane::session::ClientAddress::None,
        ext: Default::default(),
    }
}

fn bench_master(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_master");
    g.throughput(Throughput::Elements(1));
    for forward in [Forward::FullNat, Forward::Nat] {
        let cfg = DaemonConfig::new(Role::Master, "dpdk0", 1500);
        let mut m = Master::new(&cfg);
        for i in 0..1000 {
            m.offer(&conn_of(&record(i, forward), &Default::default()), 0);
        }
        let d = m.poll_transmit(0).expect("a full datagram");
        let per = wire::parse(&d).expect("valid").conns.len();
        println!(
            "{forward:?}: {per} entries in a {}-byte datagram ({} bytes per connection with the header's share)",
            d.len(),
            d.len() / per
        );
        let mut m = Master::new(&cfg);
        let mut i = 0u32;
        g.bench_function(format!("{forward:?}_record_to_datagram"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                m.offer(
                    &conn_of(black_box(&record(i, forward)), &Default::default()),
                    0,
                );
                black_box(m.poll_transmit(0))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_master);
criterion_main!(benches);
