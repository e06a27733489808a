//! Scheduler benchmarks: `pick` for every policy over 10 and 100 real
//! servers with uneven weights and load, and the control-side builds (Maglev
//! table, conhash ring) for 10, 100 and 1000 servers.
//!
//! `pick` runs on the cold session-creation path only; these figures bound
//! what scheduling adds to a new connection.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rvs_dataplane::sched::{self, Backends, Flow, Member, SchedFlags, SchedKind, Scheduler};
use rvs_dataplane::time::Millis;

struct Servers {
    weight: Vec<u32>,
    active: Vec<u32>,
    inactive: Vec<u32>,
}

impl Servers {
    fn new(n: usize) -> Self {
        Self {
            weight: (0..n).map(|i| 1 + (i as u32 * 7) % 5).collect(),
            active: (0..n).map(|i| (i as u32 * 13) % 50).collect(),
            inactive: (0..n).map(|i| (i as u32 * 29) % 200).collect(),
        }
    }
}

impl Backends for Servers {
    fn len(&self) -> usize {
        self.weight.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.weight[i]
    }
    fn active(&self, i: usize) -> u32 {
        self.active[i]
    }
    fn inactive(&self, i: usize) -> u32 {
        self.inactive[i]
    }
    fn overloaded(&self, _: usize) -> bool {
        false
    }
    fn id(&self, i: usize) -> u16 {
        i as u16
    }
}

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let w = 1 + (i as u32 * 7) % 5;
            Member {
                addr: [10, 1, (i / 250) as u8, (i % 250) as u8 + 1],
                port: 80,
                weight: w,
                last_weight: w,
            }
        })
        .collect()
}

fn bench_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_pick");
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 100] {
        let servers = Servers::new(n);
        for kind in SchedKind::ALL {
            let table = sched::build(kind, 65537, &members(n));
            let mut s = Scheduler::new(kind, &servers, 1);
            let mut client = 0x0a00_0000u32;
            g.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| {
                    client = client.wrapping_add(0x9e37_79b9);
                    let flow = Flow {
                        client: client.to_be_bytes(),
                        client_port: client as u16,
                        vip: [10, 0, 0, 100],
                        vip_port: 80,
                    };
                    black_box(s.pick(&table, SchedFlags::NONE, &servers, &flow, Millis(1)))
                });
            });
        }
    }
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_build");
    g.sample_size(10);
    for n in [10usize, 100, 1000] {
        let m = members(n);
        for size in [251u32, 65537] {
            if n as u32 >= size {
                continue;
            }
            g.bench_with_input(BenchmarkId::new(format!("mh_{size}"), n), &m, |b, m| {
                b.iter(|| black_box(sched::mh::build(m, size)))
            });
        }
        g.bench_with_input(BenchmarkId::new("conhash", n), &m, |b, m| {
            b.iter(|| black_box(sched::conhash::build(m)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pick, bench_build);
criterion_main!(benches);
