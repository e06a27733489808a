//! Any `host[:port]` word from a command line: resolved or refused, never a
//! panic (the host lookup is a fixed table: no resolver in a fuzzer).
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rvs_control::ipvsadm_names::resolve_with;

const SERVICES: &str = "http\t80/tcp\twww\ndomain\t53/udp\n";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = resolve_with(text, "tcp", SERVICES, &|h| {
            (h == "localhost").then_some(Ipv4Addr::LOCALHOST)
        });
    }
});
