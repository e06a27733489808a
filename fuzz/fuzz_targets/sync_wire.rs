//! Any datagram: parsing never panics, and what parses is rebuilt into
//! datagrams that parse back to the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::sync::wire::{parse, MessageBuilder, PushError};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = parse(data) else { return };
    let mut b = MessageBuilder::new(m.sync_id, 65507);
    let mut again = Vec::new();
    for c in &m.conns {
        match b.push(c) {
            Ok(()) => {}
            Err(PushError::Full) => {
                again.extend(parse(&b.take().unwrap()).unwrap().conns);
                b.push(c).unwrap();
            }
            // An entry whose addresses mix families cannot be rebuilt.
            Err(PushError::Invalid(_)) => return,
        }
    }
    if let Some(d) = b.take() {
        again.extend(parse(&d).unwrap().conns);
    }
    assert_eq!(again, m.conns);
});
