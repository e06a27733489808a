//! Per-packet costs of the FULLNAT fast path, without DPDK: the header
//! rewrite, a session lookup at several table sizes, and a whole established
//! packet through `Pipeline::process`. Figures go to BENCHMARKS.md.

mod common;

use common::{lab_service, lab_tables, tcp_frame};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rvs_dataplane::neigh::{NeighEntry, NeighMap};
use rvs_dataplane::packet::PacketBuf;
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::session::{ClientAddress, Endpoint, FlowKey, Session, SessionTable, TcpState};
use rvs_dataplane::tables::Forward;
use rvs_dataplane::tables::Service;
use rvs_dataplane::time::Millis;
use rvs_dataplane::wire::{ipv4, tcp};
use rvs_dataplane::xmit::rewrite::rewrite_tcp_v4;

fn session(i: u32) -> Session {
    let b = i.to_be_bytes();
    Session {
        proto: 6,
        client: Endpoint::new([10, b[1], b[2], b[3]], 40000),
        vip: Endpoint::new([10, 77, 0, 100], 80),
        laddr: Endpoint::new([10, 200, b[1], 1], u16::from_be_bytes([b[2], b[3]])),
        rs: Endpoint::new([10, 77, 0, 11], 80),
        service: 0,
        rs_index: 0,
        forward: Forward::FullNat,
        laddr_index: 0,
        state: TcpState::Established,
        expires: Millis(u64::MAX),
        client_port: 0,
        client_mac: [0; 6],
        rs_port: 0,
        rs_mac: [0; 6],
        client_addr: ClientAddress::None,
    }
}

fn bench_rewrite(c: &mut Criterion) {
    let f = tcp_frame(
        [2; 6],
        Endpoint::new([10, 77, 0, 10], 40000),
        Endpoint::new([10, 77, 0, 100], 80),
        tcp::ACK,
    );
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tcp_v4_incremental", |b| {
        let mut p = f[14..].to_vec();
        b.iter(|| {
            rewrite_tcp_v4(
                black_box(&mut p),
                Endpoint::new([10, 77, 0, 200], 1025),
                Endpoint::new([10, 77, 0, 11], 80),
            )
        })
    });
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_lookup_hit");
    g.throughput(Throughput::Elements(1));
    for n in [1_000u32, 100_000, 1_000_000] {
        let mut t = SessionTable::new(n, 7);
        for i in 0..n {
            t.insert(session(i)).unwrap();
        }
        let keys: Vec<FlowKey> = (0..4096)
            .map(|i| session((i * 7919) % n).client_key())
            .collect();
        let mut k = 0usize;
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                k = (k + 1) & 4095;
                black_box(t.lookup(&keys[k], Millis(0)))
            })
        });
    }
    g.finish();
}

/// `tcp_frame` with sequence and acknowledgement numbers (checksum refilled).
fn numbered(mut f: Vec<u8>, seq: u32, ack: u32, src: Endpoint, dst: Endpoint) -> Vec<u8> {
    f[38..42].copy_from_slice(&seq.to_be_bytes());
    f[42..46].copy_from_slice(&ack.to_be_bytes());
    tcp::Packet::new_checked(&mut f[34..])
        .unwrap()
        .fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
    f
}

fn bench_pipeline(c: &mut Criterion) {
    bench_pipeline_mode(c, ClientAddress::None);
    bench_pipeline_mode(c, ClientAddress::ProxyV2);
}

/// A whole established packet through `Pipeline::process`; with PROXY v2,
/// on a connection whose header was inserted (every later number shifted:
/// the client's seq forward inbound, the server's ack back outbound).
fn bench_pipeline_mode(c: &mut Criterion, mode: ClientAddress) {
    let tables = Arc::new(lab_tables(Service {
        client_address: mode,
        ..lab_service()
    }));
    let neigh = Arc::new(NeighMap::new(vec![NeighEntry {
        ip: [10, 77, 0, 11].into(),
        mac: [2, 0, 0, 0, 0, 0x11],
        port: 0,
    }]));
    let mut p = Pipeline::new(tables, neigh, 65536, 1, 0, 1);
    // Open one connection.
    let client = Endpoint::new([10, 77, 0, 10], 40000);
    let vip = Endpoint::new([10, 77, 0, 100], 80);
    let mut syn = tcp_frame([2; 6], client, vip, tcp::SYN);
    assert_eq!(
        p.process(&mut syn, 0, Millis(0)),
        Verdict::Forward { port: 0 }
    );
    let rs = Endpoint::new([10, 77, 0, 11], 80);
    let local = Endpoint::new([10, 77, 0, 200], 1025);
    let mut synack = numbered(
        tcp_frame([2; 6], rs, local, tcp::SYN | tcp::ACK),
        5000,
        1,
        rs,
        local,
    );
    assert_eq!(
        p.process(&mut synack, 0, Millis(0)),
        Verdict::Forward { port: 0 }
    );
    if mode != ClientAddress::None {
        // The first data: the header goes in (the frame needs room for it).
        let mut first = tcp_frame([2; 6], client, vip, tcp::ACK);
        first.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
        let l4_len = (first.len() - 34) as u16;
        ipv4::emit_header(
            &mut first[14..],
            ipv4::PROTO_TCP,
            client.ip.v4_bits(),
            vip.ip.v4_bits(),
            l4_len,
        );
        let first = numbered(first, 1, 5001, client, vip);
        let mut f = first.clone();
        f.resize(first.len() + 64, 0);
        let mut room = PacketBuf::new(&mut f, 0, first.len());
        assert_eq!(
            p.process_buf(&mut room, 0, Millis(0)),
            Verdict::Forward { port: 0 }
        );
        assert_eq!(room.window().1, first.len() + 28, "the header went in");
    }
    let ack = numbered(
        tcp_frame([2; 6], client, vip, tcp::ACK),
        100,
        5001,
        client,
        vip,
    );
    let reply = numbered(tcp_frame([2; 6], rs, local, tcp::ACK), 5001, 200, rs, local);
    let suffix = if mode == ClientAddress::None {
        ""
    } else {
        "_proxy_shifted"
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("established_inbound_64B{suffix}"), |b| {
        b.iter_batched_ref(
            || ack.clone(),
            |f| black_box(p.process(f, 0, Millis(1))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function(format!("established_outbound_64B{suffix}"), |b| {
        b.iter_batched_ref(
            || reply.clone(),
            |f| black_box(p.process(f, 0, Millis(1))),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_rewrite, bench_lookup, bench_pipeline);
criterion_main!(benches);
