//! What connection sync costs a worker: an established inbound packet
//! through `Pipeline::process` with the sync feed off and on (the policy's
//! count and decision on every packet, a ring push on the 3rd and every
//! 50th), and one push into the lock-free ring. Figures go to BENCHMARKS.md.

mod common;

use common::{lab_service, lab_tables, tcp_frame};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::session::Endpoint;
use rvs_dataplane::sync_feed::{RecordKind, SyncRecord, SyncRing};
use rvs_dataplane::sync_policy::SyncPolicy;
use rvs_dataplane::tables::Forward;
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::tcp;

fn pipeline() -> Pipeline {
    let tables = Arc::new(lab_tables(lab_service()));
    let neigh = Arc::new(NeighMap::new(vec![NeighEntry {
        ip: [10, 77, 0, 11].into(),
        mac: [2, 0, 0, 0, 0, 0x11],
        port: 0,
    }]));
    Pipeline::new(tables, neigh, 65536, 1, 0, 1)
}

fn bench_feed(c: &mut Criterion) {
    let client = Endpoint::new([10, 77, 0, 10], 40000);
    let vip = Endpoint::new([10, 77, 0, 100], 80);
    let ack = tcp_frame([2; 6], client, vip, tcp::ACK);
    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(1));
    for on in [false, true] {
        let mut p = pipeline();
        let ring = Arc::new(SyncRing::new(1 << 16));
        if on {
            p.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
        }
        let mut syn = tcp_frame([2; 6], client, vip, tcp::SYN);
        assert_eq!(
            p.process(&mut syn, 0, Millis(0)),
            Verdict::Forward { port: 0 }
        );
        let name = if on {
            "established_inbound_64B_feed_on"
        } else {
            "established_inbound_64B_feed_off"
        };
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || ack.clone(),
                |f| {
                    let v = black_box(p.process(f, 0, Millis(1)));
                    // Control's side, not the worker's: keep the ring from filling.
                    while ring.pop().is_some() {}
                    v
                },
                BatchSize::SmallInput,
            )
        });
    }
    let ring = SyncRing::new(1 << 16);
    let r = SyncRecord {
        kind: RecordKind::Conn,
        proto: 6,
        forward: Forward::FullNat,
        state: 1,
        client,
        vip,
        rs: Endpoint::new([10, 77, 0, 11], 80),
        laddr: Some(Endpoint::new([10, 77, 0, 200], 5000)),
        timeout_s: 900,
        client_addr: rvs_dataplane::session::ClientAddress::None,
        ext: Default::default(),
    };
    g.bench_function("ring_push_and_pop", |b| {
        b.iter(|| {
            ring.push(black_box(&r));
            black_box(ring.pop())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_feed);
criterion_main!(benches);
