//! End-to-end check of the safe DPDK wrapper against a real EAL.
//!
//! EAL can be initialised once per process, so everything lives in ONE test
//! function. It needs no hugepages, NIC or root-only device: a `net_ring`
//! vdev loops every TX queue back to the RX queue of the same number.
//! Run: `cargo test -p rvs-dataplane --test dpdk_wrapper`.
#![cfg(feature = "dpdk")]

use std::sync::Arc;

use rvs_dataplane::dpdk::{
    current_lcore, rdtsc, socket_id, Eal, EalError, LaunchError, LcoreId, Mbuf, MbufBatch,
    MbufRing, Mempool, MempoolError, Port, PortConfig, PortError, QueueId, BURST,
};

const POOL_SIZE: u32 = 1023;
const DATA_ROOM: u16 = 2176; // RTE_MBUF_DEFAULT_BUF_SIZE

fn eal_args() -> Vec<String> {
    [
        "rvs-test",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "-l",
        "0-1",
        // No shared config/lock files: concurrent runs cannot collide.
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        "rvs-wrapper-test",
        "--vdev=net_ring0",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Deterministic payload for packet `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = 60 + i * 7;
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

fn fill(pool: &Mempool, i: usize) -> Mbuf {
    let mut m = pool.alloc().expect("pool has mbufs");
    assert_eq!(m.len(), 0);
    assert!(m.headroom() >= 128);
    let want = payload(i);
    assert!(m.set_len(want.len()));
    m.data_mut().copy_from_slice(&want);
    m
}

#[test]
fn dpdk_wrapper_end_to_end() {
    // ---- EAL ---------------------------------------------------------
    let eal = Eal::init(&eal_args()).expect("EAL init");
    assert_eq!(
        Eal::init(&eal_args()).unwrap_err(),
        EalError::AlreadyInitialised
    );
    assert!(eal.tsc_hz() > 0);
    assert_eq!(eal.main_lcore(), LcoreId(0));
    assert_eq!(eal.worker_lcores(), vec![LcoreId(1)]);
    assert_eq!(current_lcore(), Some(LcoreId(0)));
    let t0 = rdtsc();
    assert!(rdtsc() >= t0);

    // ---- mempool -----------------------------------------------------
    let pool = Arc::new(
        Mempool::create("rvs_test_pool", POOL_SIZE, 32, DATA_ROOM, socket_id()).expect("mempool"),
    );
    assert_eq!(pool.available(), POOL_SIZE);
    match Mempool::create("rvs_test_pool", 63, 0, DATA_ROOM, socket_id()) {
        Err(MempoolError::Create { errno, .. }) => {
            assert_eq!(errno.code, 17, "EEXIST expected, got {errno}");
            assert!(!errno.text.is_empty());
        }
        other => panic!("duplicate pool name accepted: {other:?}"),
    }

    // ---- port lookup and setup ---------------------------------------
    assert!(Port::count() >= 1);
    let id = Port::by_name("net_ring0").expect("net_ring0 exists");
    assert!(matches!(
        Port::by_name("net_nonexistent0"),
        Err(PortError::NotFound { .. })
    ));
    let conf = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
    };
    let mut port = Port::configure(id, &conf, &pool).expect("configure net_ring0");
    assert_eq!(
        Port::configure(id, &conf, &pool).unwrap_err(),
        PortError::AlreadyConfigured { port: id }
    );
    port.start().expect("start");
    assert_eq!(port.id(), id);
    assert_eq!(port.name(), "net_ring0");
    assert_eq!(port.mac_addr().expect("mac").len(), 6);
    assert!(port.link_up());

    let mut rxq = port.rx_queue(QueueId(0)).expect("rx queue 0");
    let mut txq = port.tx_queue(QueueId(0)).expect("tx queue 0");
    assert!(matches!(
        port.rx_queue(QueueId(0)),
        Err(PortError::QueueTaken { .. })
    ));
    assert!(matches!(
        port.tx_queue(QueueId(1)),
        Err(PortError::NoSuchQueue { .. })
    ));

    // ---- tx a full burst, rx it back through the ring loopback ------------
    let mut out = MbufBatch::new();
    for i in 0..BURST {
        out.push(fill(&pool, i)).expect("batch has room");
    }
    assert!(out.is_full());
    assert!(
        out.push(fill(&pool, 99)).is_err(),
        "33rd push must be refused"
    );
    let mut sent = 0;
    for _ in 0..100 {
        sent += txq.tx_burst(&mut out);
        if out.is_empty() {
            break;
        }
    }
    assert_eq!(sent, BURST);
    assert!(out.is_empty());

    let mut back = MbufBatch::new();
    for _ in 0..100 {
        rxq.rx_burst(&mut back);
        if back.is_full() {
            break;
        }
    }
    assert_eq!(back.len(), BURST);
    for (i, m) in back.drain().enumerate() {
        assert_eq!(m.data(), payload(i).as_slice(), "packet {i} changed");
        assert_eq!(m.pkt_len(), payload(i).len());
        assert_eq!(m.nb_segs(), 1);
    }
    assert_eq!(rxq.rx_burst(&mut back), 0, "nothing more in flight");

    let stats = port.stats().expect("stats");
    eprintln!("net_ring0 stats after loopback: {stats:?}");
    let bytes: u64 = (0..BURST).map(|i| payload(i).len() as u64).sum();
    assert_eq!(
        (stats.opackets, stats.ipackets),
        (BURST as u64, BURST as u64)
    );
    assert!(stats.obytes == 0 || stats.obytes == bytes, "{stats:?}");
    assert!(stats.ibytes == 0 || stats.ibytes == bytes, "{stats:?}");
    assert_eq!((stats.oerrors, stats.ierrors, stats.rx_nombuf), (0, 0, 0));
    // Extended stats carry the same packet counts under ethdev's generic names.
    let xstats = port.xstats().expect("xstats");
    let get = |name: &str| xstats.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(get("rx_good_packets"), Some(BURST as u64), "{xstats:?}");
    assert_eq!(get("tx_good_packets"), Some(BURST as u64), "{xstats:?}");

    // set_len grows and shrinks within the buffer only.
    let mut m = fill(&pool, 0);
    let room = m.len() + m.tailroom();
    assert!(m.set_len(room));
    assert!(!m.set_len(room + 1));
    assert!(m.set_len(14));
    assert_eq!(m.data(), &payload(0)[..14]);
    drop(m);

    // ---- SP/SC ring ----------------------------------------------------
    // Two bursts' worth of slots: one fewer fits.
    let slots = 2 * BURST;
    let ring =
        Arc::new(MbufRing::create("rvs_test_ring", slots as u32, socket_id()).expect("ring"));
    assert_eq!(ring.capacity(), slots - 1);
    let mut a = MbufBatch::new();
    let mut b = MbufBatch::new();
    for i in 0..BURST {
        a.push(fill(&pool, i)).expect("room");
        b.push(fill(&pool, BURST + i)).expect("room");
    }
    assert_eq!(ring.enqueue_burst(&mut a), BURST);
    assert_eq!(
        ring.enqueue_burst(&mut b),
        BURST - 1,
        "ring holds one fewer than its slots"
    );
    assert_eq!(b.len(), 1);
    assert_eq!(
        b.as_slice()[0].data(),
        payload(2 * BURST - 1).as_slice(),
        "unsent stays"
    );
    assert_eq!(ring.len(), slots - 1);
    let mut seen = 0;
    let mut got = MbufBatch::new();
    while ring.dequeue_burst(&mut got) > 0 {
        for m in got.drain() {
            assert_eq!(m.data(), payload(seen).as_slice());
            seen += 1;
        }
    }
    assert_eq!(seen, slots - 1);
    drop(b); // frees the one unsent mbuf

    // ---- launch on the worker lcore -------------------------------------
    assert!(matches!(
        eal.launch(LcoreId(0), Box::new(|| 0)),
        Err(LaunchError::NotAWorker { .. })
    ));
    assert!(matches!(
        eal.launch(LcoreId(7), Box::new(|| 0)),
        Err(LaunchError::NotAWorker { .. })
    ));
    let (wpool, wring) = (Arc::clone(&pool), Arc::clone(&ring));
    eal.launch(
        LcoreId(1),
        Box::new(move || {
            // Runs on lcore 1: build packets and hand them over the ring.
            let mut batch = MbufBatch::new();
            for i in 0..8 {
                if batch.push(fill(&wpool, 100 + i)).is_err() {
                    return -1;
                }
            }
            if wring.enqueue_burst(&mut batch) != 8 {
                return -2;
            }
            current_lcore().map_or(-3, |l| 100 + l.0 as i32)
        }),
    )
    .expect("launch on lcore 1");
    assert_eq!(eal.wait(LcoreId(1)).expect("worker"), 101);
    eal.wait_all();
    assert_eq!(
        eal.wait(LcoreId(1)).expect("worker"),
        101,
        "result survives wait_all"
    );
    let mut from_worker = MbufBatch::new();
    assert_eq!(ring.dequeue_burst(&mut from_worker), 8);
    for (i, m) in from_worker.iter().enumerate() {
        assert_eq!(m.data(), payload(100 + i).as_slice());
    }
    drop(from_worker);

    // ---- teardown ordering ------------------------------------------------
    assert_eq!(
        port.stop().unwrap_err(),
        PortError::QueuesInUse { port: id }
    );
    drop(rxq);
    drop(txq);
    port.stop().expect("stop");
    assert!(!port.is_started());
    drop(port);
    // Mbufs still queued when a ring is dropped are freed with it.
    let mut left = MbufBatch::new();
    for i in 0..5 {
        left.push(fill(&pool, i)).expect("room");
    }
    assert_eq!(ring.enqueue_burst(&mut left), 5);
    assert!(pool.available() < POOL_SIZE);
    drop(ring);
    // Every mbuf is back: nothing leaked or double-freed on the way.
    assert_eq!(pool.available(), POOL_SIZE);
}
