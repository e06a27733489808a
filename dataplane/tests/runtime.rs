//! The worker runtime against a real EAL: [`runtime::start`] launches two
//! workers, a session listing pages through their tables, and every
//! snapshot a worker replaces comes back to the caller (none is freed on a
//! worker).
//!
//! EAL can be initialised once per process, so everything lives in ONE test
//! function. No hugepages, NIC or ports: the workers poll nothing and serve
//! requests. Run: `cargo test -p rvs-dataplane --test runtime` (under the
//! lab lock: DPDK).
#![cfg(feature = "dpdk")]

use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::bounded;
use rvs_dataplane::dpdk::{Eal, LcoreId, Mempool};
use rvs_dataplane::neigh::NeighMap;
use rvs_dataplane::pipeline::Pipeline;
use rvs_dataplane::route::Routes;
use rvs_dataplane::runtime::{self, Handles};
use rvs_dataplane::session::Timeouts;
use rvs_dataplane::tables::Tables;
use rvs_dataplane::vlan::VlanMap;
use rvs_dataplane::worker::{Idle, Request, Retired, DUMP_SCAN};

const CAPACITY: u32 = 200_000;
/// More swaps than the event channel holds (where replaced snapshots used
/// to go, and were dropped on the worker when it was full).
const SWAPS: u64 = runtime::EVENT_DEPTH as u64 / 2 + 100;

fn eal_args() -> Vec<String> {
    [
        "rvs-runtime-test",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--lcores",
        "0@0,1@1,2@1",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        "rvs-runtime-test",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn tables(generation: u64) -> Arc<Tables> {
    Arc::new(Tables {
        interfaces: Vec::new(),
        services: Vec::new(),
        laddrs: Vec::new(),
        lport_range: (1024, 65535),
        timeouts: Timeouts::default(),
        rs_count: 0,
        generation,
        routes: Routes::default(),
        tentative: Vec::new(),
        vlans: VlanMap::default(),
        marks: Default::default(),
        standby: Vec::new(),
    })
}

fn ask<T>(h: &Handles, w: usize, make: impl FnOnce(crossbeam_channel::Sender<T>) -> Request) -> T {
    let (tx, rx) = bounded(1);
    h.workers[w]
        .requests
        .send_timeout(make(tx), Duration::from_secs(2))
        .expect("worker takes requests");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("worker answers")
}

#[test]
fn runtime_starts_workers_pages_sessions_and_returns_snapshots() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    let pool = Arc::new(Mempool::create("rvs_rt_pool", 255, 0, 2176, -1).expect("mempool"));
    let first = tables(1);
    let neigh = Arc::new(NeighMap::new(Vec::new()));
    let plan = runtime::Plan {
        workers: (0..2u16)
            .map(|wi| runtime::WorkerPlan {
                lcore: LcoreId(u32::from(wi) + 1),
                rx: Vec::new(),
                tx: Vec::new(),
                port_ids: Vec::new(),
                tap_rx: Vec::new(),
                tap_tx: Vec::new(),
                pipeline: Pipeline::new(Arc::clone(&first), Arc::clone(&neigh), CAPACITY, 7, wi, 2),
                on_start: None,
            })
            .collect(),
        pool,
        idle: Idle::Backoff,
        rs_count: 4,
        ring_prefix: "rvs_rt".into(),
        ring_size: 1024,
    };
    let h = runtime::start(&eal, plan).expect("workers start");
    assert_eq!(
        h.workers.iter().map(|w| w.lcore).collect::<Vec<_>>(),
        [1, 2]
    );

    // A listing pages through each table: DUMP_SCAN slots a page.
    for w in 0..2 {
        let (mut from, mut pages) = (Some(0), 0);
        while let Some(f) = from {
            let page = ask(&h, w, |reply| Request::DumpSessions { from: f, reply });
            assert!(page.sessions.is_empty());
            if let Some(next) = page.next {
                assert_eq!(next as usize, f as usize + DUMP_SCAN);
            }
            from = page.next;
            pages += 1;
        }
        assert_eq!(pages, (CAPACITY as usize).div_ceil(DUMP_SCAN));
    }

    // Snapshot swaps, nothing drained meanwhile: every replaced snapshot
    // comes back, and none was freed on a worker (all still alive here
    // until what came back is dropped).
    let mut weak: Vec<Weak<Tables>> = vec![Arc::downgrade(&first)];
    drop(first);
    for g in 2..2 + SWAPS {
        let t = tables(g);
        weak.push(Arc::downgrade(&t));
        for w in &h.workers {
            w.requests
                .send_timeout(Request::Tables(Arc::clone(&t)), Duration::from_secs(2))
                .expect("worker takes snapshots");
        }
    }
    for w in 0..2 {
        ask(&h, w, Request::Publish);
    }
    let back: Vec<Retired> = h.retired.try_iter().collect();
    assert_eq!(
        back.len() as u64,
        2 * SWAPS,
        "one replaced snapshot per swap and worker"
    );
    assert!(
        weak.iter().all(|w| w.upgrade().is_some()),
        "a snapshot was freed before control dropped it"
    );
    let mut generations: Vec<u64> = back
        .iter()
        .map(|r| match r {
            Retired::Tables(t) => t.generation,
            Retired::Neigh(_) => panic!("no neighbour snapshot was sent"),
        })
        .collect();
    generations.sort_unstable();
    let want: Vec<u64> = (1..1 + SWAPS).flat_map(|g| [g, g]).collect();
    assert_eq!(generations, want);
    drop(back);
    let alive: Vec<usize> = (0..weak.len())
        .filter(|i| weak[*i].upgrade().is_some())
        .collect();
    assert_eq!(
        alive,
        [weak.len() - 1],
        "only the snapshot in force is alive"
    );
    for w in &h.workers {
        assert_eq!(
            w.shared
                .generation
                .load(std::sync::atomic::Ordering::Relaxed),
            1 + SWAPS
        );
    }

    h.stop();
    eal.wait_all();
}
