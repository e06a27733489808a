//! What the pipeline fuzz targets share: one frame through a `Pipeline` in
//! a buffer shaped like an mbuf, and the invariant that every local port
//! lent is held by a session.

use rvs_dataplane::packet::PacketBuf;
use rvs_dataplane::pipeline::{Pipeline, Verdict};
use rvs_dataplane::tables::Forward;
use rvs_dataplane::time::Millis;

/// Free bytes in front of every input frame (DPDK's default mbuf headroom
/// is 128).
pub const HEADROOM: usize = 128;
/// Room behind the frame: an mbuf's data room is far larger than a frame.
pub const TAILROOM: usize = 64;

/// Runs `frame` through `p` (described and looked up first when `describe`,
/// as the worker's burst stages do; else the pipeline describes it itself) and
/// returns the verdict and the frame as the pipeline left it, which must
/// still lie inside its buffer. A held frame's decision is given back.
pub fn run(p: &mut Pipeline, frame: &[u8], now: Millis, describe: bool) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0xa5; HEADROOM + frame.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(&mut buf, HEADROOM, frame.len());
    let desc = if describe {
        p.describe(pkt.frame()).map(|mut d| {
            p.look_ahead(&mut d);
            d
        })
    } else {
        None
    };
    let verdict = p.process_desc(&mut pkt, 0, desc.as_ref(), now);
    if let Verdict::Hold { decision, .. } = verdict {
        p.abandon(decision);
    }
    let out = pkt.frame().to_vec();
    assert!(out.len() <= HEADROOM + frame.len() + TAILROOM);
    (verdict, out)
}

/// Every port lent from a local address's pool is held by a FULLNAT
/// session of that address, and the table holds at most `capacity`.
pub fn ports_accounted(p: &Pipeline, capacity: usize) {
    for (i, pool) in p.pools().iter().enumerate() {
        let held = p
            .sessions()
            .iter()
            .filter(|s| s.forward == Forward::FullNat && usize::from(s.laddr_index) == i)
            .count();
        assert_eq!(pool.size() - pool.available(), held, "local address {i}");
    }
    assert!(p.sessions().len() <= capacity);
}
