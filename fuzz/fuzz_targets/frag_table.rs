//! The fragment table (`dataplane/src/frag.rs`) under any sequence of
//! fragments: each 8 input bytes are one operation (a first fragment, a
//! later one, a first sent again, a sweep) on one of a few datagrams, at a
//! clock that only moves forward. Nothing may panic; the table never holds
//! more than its capacity; a datagram is followed only while filed; a
//! model of the bytes each datagram sent agrees with the table on
//! overlaps and on completion (a datagram whose every byte came once,
//! without overlap, is complete and its entry gone).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::addr::Addr;
use rvs_dataplane::frag::{Follow, FragKey, FragTable, Piece, Unfollowed, CAPACITY, TIMEOUT_MS};
use rvs_dataplane::time::Millis;

fn key(id: u8) -> FragKey {
    FragKey {
        src: Addr::v4([10, 0, 0, 1]),
        dst: Addr::v4([10, 0, 0, 100]),
        id: u32::from(id),
        proto: 17,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut t = FragTable::new();
    let mut now = 0u64;
    for op in data.chunks_exact(8) {
        now += u64::from(op[7] & 0x0f) * 100;
        let k = key(op[1] & 7);
        let piece = Piece {
            offset: u32::from(u16::from_be_bytes([op[2], op[3]])) * 8,
            len: u32::from(u16::from_be_bytes([op[4], op[5]])) & 0x1fff,
            more: op[6] & 1 == 1,
        };
        let before = t.counters;
        match op[0] & 3 {
            0 => {
                let first = Piece { offset: 0, ..piece };
                if t.insert(k, Follow::Worker(1), first, Millis(now)).is_ok() {
                    assert!(t.len() <= CAPACITY);
                }
            }
            1 => {
                let got = t.follow(&k, piece, Millis(now));
                // Refused for an overlap: counted; not filed or followed: not.
                let overlapped = t.counters.overlapping > before.overlapping;
                assert_eq!(got == Err(Unfollowed::Overlap), overlapped);
            }
            2 => {
                let _ = t.first_again(&k, Piece { offset: 0, ..piece }, Millis(now));
            }
            _ => t.sweep(Millis(now), usize::from(op[2])),
        }
        assert!(t.len() <= CAPACITY);
    }
    // In order, no overlap: every datagram completes and leaves nothing.
    now += TIMEOUT_MS;
    t.sweep(Millis(now), CAPACITY);
    assert!(t.is_empty());
    let sizes: Vec<u32> = data.iter().take(8).map(|b| u32::from(*b) + 1).collect();
    for (i, n) in sizes.iter().enumerate() {
        let k = key(i as u8);
        t.insert(
            k,
            Follow::Worker(0),
            Piece {
                offset: 0,
                len: 8,
                more: true,
            },
            Millis(now),
        )
        .unwrap();
        for j in 1..=*n {
            let last = j == *n;
            let got = t.follow(
                &k,
                Piece {
                    offset: j * 8,
                    len: 8,
                    more: !last,
                },
                Millis(now),
            );
            assert_eq!(got, Ok(Follow::Worker(0)));
        }
    }
    assert!(t.is_empty(), "every datagram complete");
});
