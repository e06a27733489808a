//! The cost per synced connection in the control process: on the master, a
//! worker's record turned into a wire entry and batched into datagrams
//! (`sync::convert` + `sync::daemon::Master`); on the backup, a full
//! datagram checked and its entries turned back into records
//! (`sync::daemon::Backup` + `sync::convert`), per entry. FULLNAT (44 bytes
//! an entry, with rvs's local-address option) and NAT (36 bytes). Figures
//! go to BENCHMARKS.md; `entries per datagram` is printed once per case.
//! The sockets and both ends together: `rvs-bench --sync` (`scripts/bench --sync`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::session::Endpoint;
use dataplane::sync_feed::{RecordKind, SyncRecord};
use dataplane::tables::Forward;
use rvs_control::sync::convert::{conn_of, record_of};
use rvs_control::sync::daemon::{Backup, DaemonConfig, Master};
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
        isn_off: 0,
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

fn bench_backup(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_backup");
    for forward in [Forward::FullNat, Forward::Nat] {
        let mut m = Master::new(&DaemonConfig::new(Role::Master, "dpdk0", 1500));
        for i in 0..1000 {
            m.offer(&conn_of(&record(i, forward), &Default::default()), 0);
        }
        let d = m.poll_transmit(0).expect("a full datagram");
        let per = wire::parse(&d).expect("valid").conns.len();
        // Per entry: a datagram of `per` entries counts `per` elements.
        g.throughput(Throughput::Elements(per as u64));
        let mut b = Backup::new(&DaemonConfig::new(Role::Backup, "dpdk0", 1500));
        g.bench_function(format!("{forward:?}_datagram_to_records"), |bn| {
            bn.iter(|| {
                let conns = b.receive(black_box(&d));
                let recs: Vec<_> = conns.iter().filter_map(|c| record_of(c).ok()).collect();
                black_box(recs)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_master, bench_backup);
criterion_main!(benches);
