//! Route lookup: longest-prefix match over ~1000 IPv4 routes (lengths /8 to
//! /32, as in a table with a default route, connected subnets and static
//! routes of every size) and ~1000 IPv6 routes (/32 to /128), for addresses
//! that hit deep prefixes and addresses that fall through to the default.
//!
//! The lookup runs once per new session (its result is cached in the
//! session), so these figures bound what routing adds to a new connection.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rvs_dataplane::route::{NextHop, Route, RouteAddr, RouteTable};

/// A small deterministic generator (xorshift64*), so every run probes the same addresses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn table<A: RouteAddr>(n: usize, lens: &[u8], rng: &mut Rng) -> (RouteTable<A>, Vec<A>) {
    let mut routes = vec![Route {
        prefix: A::default(),
        len: 0,
        hop: NextHop::Via {
            port: 0,
            gateway: A::from_key(1),
        },
    }];
    let mut seen = std::collections::HashSet::new();
    while routes.len() < n {
        let len = lens[(rng.next() % lens.len() as u64) as usize];
        let key = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
            & rvs_dataplane::route::prefix_mask(A::BITS, len);
        if seen.insert((key, len)) {
            routes.push(Route {
                prefix: A::from_key(key),
                len,
                hop: NextHop::OnLink {
                    port: (routes.len() % 4) as u16,
                },
            });
        }
    }
    // Probes: inside a random route's prefix (host bits random), so most
    // lookups hit a specific route; one in eight is fully random (default).
    let full = rvs_dataplane::route::prefix_mask(A::BITS, A::BITS);
    let probes = (0..4096)
        .map(|i| {
            let noise = (u128::from(rng.next()) << 64 | u128::from(rng.next())) & full;
            if i % 8 == 0 {
                return A::from_key(noise);
            }
            let r = &routes[(rng.next() % routes.len() as u64) as usize];
            A::from_key(
                r.prefix.to_key() | (noise & !rvs_dataplane::route::prefix_mask(A::BITS, r.len)),
            )
        })
        .collect();
    (RouteTable::new(routes).expect("distinct routes"), probes)
}

fn bench_lookup(c: &mut Criterion) {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    let v4_lens: Vec<u8> = (8..=32).collect();
    let (t4, p4) = table::<[u8; 4]>(1000, &v4_lens, &mut rng);
    g.bench_function("lookup_v4_1k_routes_25_lengths", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(t4.next_hop(p4[i]))
        })
    });
    let (t4s, p4s) = table::<[u8; 4]>(1000, &[16, 24, 32], &mut rng);
    g.bench_function("lookup_v4_1k_routes_3_lengths", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(t4s.next_hop(p4s[i]))
        })
    });
    let v6_lens: Vec<u8> = vec![32, 48, 56, 64, 96, 112, 120, 128];
    let (t6, p6) = table::<[u8; 16]>(1000, &v6_lens, &mut rng);
    g.bench_function("lookup_v6_1k_routes_8_lengths", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(t6.next_hop(p6[i]))
        })
    });
    g.finish();
    let routes: Vec<_> = t4.routes().to_vec();
    c.bench_function("route/build_v4_1k", |b| {
        b.iter(|| black_box(RouteTable::new(routes.iter().copied())))
    });
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
