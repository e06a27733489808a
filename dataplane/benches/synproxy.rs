//! The SYN proxy's cost per flood packet, without DPDK: a cookie made and
//! checked, and a whole SYN answered through `Pipeline::process_buf` (what
//! each SYN of a flood costs a worker). Figures go to BENCHMARKS.md.

mod common;

use common::{lab_service, lab_tables};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rvs_dataplane::neigh::NeighMap;
use rvs_dataplane::packet::PacketBuf;
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::synproxy::cookie::{Secret, SynOptions, Tuple};
use rvs_dataplane::tables::Service;
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::{ipv4, tcp};

fn bench_cookie(c: &mut Criterion) {
    let s = Secret::new(7);
    let mut t = Tuple {
        client: [0; 16],
        vip: [0; 16],
        client_port: 40000,
        vip_port: 80,
        v4: true,
    };
    t.client[..4].copy_from_slice(&[198, 18, 0, 1]);
    t.vip[..4].copy_from_slice(&[10, 77, 0, 100]);
    let o = SynOptions::of_syn(true, Some(1460), Some(7), true);
    let mut g = c.benchmark_group("synproxy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cookie_make", |b| {
        b.iter(|| s.make(black_box(&t), black_box(1000), &o, 60_000));
    });
    let cookie = s.make(&t, 1000, &o, 60_000);
    g.bench_function("cookie_check", |b| {
        b.iter(|| s.check(black_box(&t), 1000, black_box(cookie), 60_001));
    });
    g.finish();
}

/// A Linux-like SYN (MSS, SACK, TS, WS) from 198.18.x.y.
fn syn(i: u32) -> Vec<u8> {
    let opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let mut f = vec![0u8; 14 + 20 + 20 + opts.len()];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x66]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let src = [198, 18, (i >> 8) as u8, i as u8];
    let dst = [10, 77, 0, 100];
    ipv4::emit_header(&mut f[14..], ipv4::PROTO_TCP, src, dst, 40);
    let t = &mut f[34..];
    t[0..2].copy_from_slice(&(1024 + i as u16).to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[4..8].copy_from_slice(&i.to_be_bytes());
    t[12] = 10 << 4;
    t[13] = tcp::SYN.bits();
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..].copy_from_slice(&opts);
    tcp::Packet::new_checked(&mut f[34..])
        .unwrap()
        .fill_checksum_v4(src, dst);
    f
}

fn bench_answer(c: &mut Criterion) {
    let tables = Arc::new(lab_tables(Service {
        syn_proxy: true,
        ..lab_service()
    }));
    let mut p = Pipeline::new(tables, Arc::new(NeighMap::new(Vec::new())), 65536, 1, 0, 1);
    let frames: Vec<Vec<u8>> = (0..1024).map(syn).collect();
    let mut room = vec![0u8; 2048];
    let mut i = 0;
    let mut g = c.benchmark_group("synproxy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("syn_answered", |b| {
        b.iter(|| {
            let f = &frames[i & 1023];
            i += 1;
            room[128..128 + f.len()].copy_from_slice(f);
            let mut pkt = PacketBuf::new(&mut room, 128, f.len());
            let v = p.process_buf(&mut pkt, 0, Millis(60_000));
            debug_assert_eq!(v, Verdict::Forward { port: 0 });
            black_box(v)
        });
    });
    g.finish();
    assert_eq!(p.sessions().len(), 0);
}

criterion_group!(benches, bench_cookie, bench_answer);
criterion_main!(benches);
