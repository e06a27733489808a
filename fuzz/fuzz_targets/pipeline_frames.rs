//! The whole pipeline on arbitrary frames: a worker configured as the
//! golden tests' (every forwarding mode, both families, FULLNAT64) plus a
//! firewall-mark service and its mark rule, its
//! session table primed with the golden cases' input frames, then the fuzz
//! input as one frame, processed twice: described and looked up first (the worker's
//! read-ahead) and not, on two identically primed pipelines. Neither may
//! panic; both must answer alike; a frame sent stays inside its buffer;
//! after it, every local port lent is held by a session.
//!
//! Checksums are not verified under `cfg(fuzzing)` (see
//! `dataplane/src/pipeline/ingress_check.rs`), so the fuzzer reaches what
//! lies behind them. Seeds: `fuzz/seeds/pipeline_frames` (every golden input
//! frame, written by `fuzz/seeds/gen.py`).
#![no_main]

mod harness;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::addr::Addr;
use rvs_dataplane::marks;
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::sched::SchedKind;
use rvs_dataplane::session::Endpoint;
use rvs_dataplane::tables::{Forward, RealServer, Service, Tables};
use rvs_dataplane::time::Millis;

// ---- the golden tests' configuration (dataplane/tests/golden_lab) ----------

#[path = "../../dataplane/tests/golden_lab/mod.rs"]
mod golden_lab;

use golden_lab::{neighbours, rs, v4, SEED, SESSIONS};

/// The golden tests' services and a firewall-mark service.
fn tables() -> Arc<Tables> {
    let mut services = golden_lab::mode_services();
    // A firewall-mark service (mark 1, NAT, persistent, a server without
    // a port) that the mark rules give TCP and UDP 443-444 of
    // 10.77.0.110/32 and 10.77.9.0/24: the miss path's classifier.
    let rs_index = golden_lab::rs_count(&services);
    services.push(Service {
        vip: marks::service_vip(1, false),
        proto: marks::FWMARK_PROTO,
        sched: SchedKind::RoundRobin,
        servers: vec![RealServer {
            addr: Endpoint::at(rs(2, false), 0),
            weight: 1,
            index: rs_index,
            forward: Forward::Nat,
            ..Default::default()
        }],
        persistence: Some(rvs_dataplane::tables::Persistence::new(300)),
        ..Default::default()
    });
    let prefix =
        |a, len| rvs_dataplane::acl::Prefix::new(a, len).unwrap_or_else(|| panic!("prefix"));
    let marks = marks::MarkRules {
        rules: vec![marks::MarkRule {
            mark: 1,
            prefixes: vec![prefix(v4(110), 32), prefix(Addr::v4([10, 77, 9, 0]), 24)],
            proto: 0,
            ports: vec![(443, 444)],
        }],
    };
    golden_lab::tables(services, marks)
}

// ---- priming ----------------------------------------------------------------

/// The golden cases whose input frames open sessions before the fuzz frame.
const PRIMERS: [&[u8]; 12] = [
    include_bytes!("../../dataplane/tests/golden/fullnat_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat_udp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_udp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/dr_tcp_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/tun_v4.pcap"),
    include_bytes!("../../dataplane/tests/golden/ops_udp.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/nat_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/dr_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/tun_v6.pcap"),
    include_bytes!("../../dataplane/tests/golden/fullnat64.pcap"),
];

/// The input frames of a golden pcap (every other frame, from the first)
/// with their timestamps in ms. The files are ours: little-endian, whole.
fn inputs(pcap: &[u8]) -> Vec<(u64, &[u8])> {
    let u32_at = |o: usize| u32::from_le_bytes(pcap[o..o + 4].try_into().unwrap());
    let (mut at, mut out, mut k) = (24, Vec::new(), 0);
    while at + 16 <= pcap.len() {
        let ms = u64::from(u32_at(at)) * 1000 + u64::from(u32_at(at + 4)) / 1000;
        let len = u32_at(at + 8) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        if k % 2 == 0 {
            out.push((ms, frame));
        }
        k += 1;
        at += 16 + len;
    }
    out
}

fn primed() -> Pipeline {
    let mut p = Pipeline::new(tables(), neighbours(), SESSIONS, SEED, 0, 1);
    for pcap in PRIMERS {
        for (ms, frame) in inputs(pcap) {
            harness::run(&mut p, frame, Millis(ms), false);
        }
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let (mut a, mut b) = (primed(), primed());
    let now = Millis(10_000);
    let (va, fa) = harness::run(&mut a, data, now, true);
    let (vb, fb) = harness::run(&mut b, data, now, false);
    assert_eq!(va, vb);
    if matches!(va, Verdict::Forward { .. }) {
        assert_eq!(fa, fb);
    }
    harness::ports_accounted(&a, SESSIONS as usize);
    // And once more much later, after housekeeping has swept.
    a.housekeeping(Millis(4_000_000), SESSIONS as usize);
    harness::run(&mut a, data, Millis(4_000_001), true);
    harness::ports_accounted(&a, SESSIONS as usize);
});
