//! The SYN proxy's parsers and rewrites on arbitrary input
//! (`dataplane/src/synproxy/`, `dataplane/src/xmit/seq_shift.rs`):
//! the TCP option walk of a segment, the cookie check on any ACK numbers
//! and clock, the timestamp and window adjustment and the sequence shift
//! of any header. Nothing may panic; a cookie made for a tuple, an ISN and
//! options checks back to the same options during the minute it was made
//! and the next and never from the second minute on, nor before; an
//! adjusted or shifted header's checksum stays right (an incremental
//! update equals a full recompute).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::synproxy::cookie::{self, Secret, SynOptions, Tuple, PERIOD_MS};
use rvs_dataplane::synproxy::segment::{self, Adjust};
use rvs_dataplane::wire::tcp;
use rvs_dataplane::xmit::seq_shift::{self, SeqShift};

const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [10, 0, 0, 2];

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    for (i, x) in w.iter_mut().enumerate() {
        *x = b.get(at + i).copied().unwrap_or(0);
    }
    u32::from_be_bytes(w)
}

fuzz_target!(|data: &[u8]| {
    // 40 bytes of parameters, the rest a TCP header (and payload).
    let (p, seg) = data.split_at(data.len().min(40));
    let o = segment::options(seg);
    // The cookie: made, then checked at every age.
    let v4 = p.first().is_some_and(|b| b & 1 == 1);
    let mut client = [0u8; 16];
    let mut vip = [0u8; 16];
    for i in 0..16 {
        client[i] = p.get(i).copied().unwrap_or(0);
        vip[i] = p.get(16 + i).copied().unwrap_or(0);
    }
    let t = Tuple {
        client,
        vip,
        client_port: u32_at(p, 4) as u16,
        vip_port: u32_at(p, 8) as u16,
        v4,
    };
    let isn = u32_at(p, 12);
    let now = u64::from(u32_at(p, 16)) * 1000 + u64::from(u32_at(p, 20) % 1000);
    let kept = SynOptions::of_syn(v4, o.mss, o.wscale, o.sack_perm);
    let secret = Secret::new(u64::from(u32_at(p, 24)));
    let c = secret.make(&t, isn, &kept, now);
    let start = now - now % PERIOD_MS;
    for (at, ok) in [
        (now, true),
        (start + PERIOD_MS - 1, true),
        (start + PERIOD_MS, true),
        (start + 2 * PERIOD_MS - 1, true),
        (start + 2 * PERIOD_MS, false),
        (start + 3 * PERIOD_MS, false),
        (start + 4 * PERIOD_MS, false),
        (start + 5 * PERIOD_MS, false),
    ] {
        let got = secret.check(&t, isn, c, at);
        if ok {
            assert_eq!(got, Some(kept), "age {}", (at - start) / PERIOD_MS);
        } else {
            // A 2^-22 chance that the garbage decodes: not for these.
            assert_ne!(got, Some(kept), "age {}", (at - start) / PERIOD_MS);
        }
    }
    if start >= PERIOD_MS {
        assert_ne!(
            secret.check(&t, isn, c, start - 1),
            Some(kept),
            "before it was made"
        );
    }
    let _ = secret.check(&t, isn, u32_at(p, 28), now);
    assert!(cookie::ts_agrees(cookie::ts_value(now, &kept), &kept));
    // The rewrites keep the checksum.
    let mut b = seg.to_vec();
    let Ok(mut h) = tcp::Packet::new_checked(&mut b[..]) else {
        return;
    };
    h.fill_checksum_v4(SRC, DST);
    let wb = p.get(32).copied().unwrap_or(0);
    segment::adjust(
        &mut b,
        &Adjust {
            tsval_add: u32_at(p, 28),
            tsecr_sub: u32_at(p, 32),
            window: (wb & 0x80 != 0).then_some((wb & 0xf, wb >> 4 & 0x7)),
        },
    );
    assert!(
        tcp::Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum_v4(SRC, DST),
        "adjust"
    );
    let a = SeqShift::new(u32_at(p, 12), u32_at(p, 16));
    let s = SeqShift::new(u32_at(p, 20), u32_at(p, 24));
    seq_shift::rewrite(&mut b, Some(&s), Some(&a));
    assert!(
        tcp::Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum_v4(SRC, DST),
        "shift"
    );
});
