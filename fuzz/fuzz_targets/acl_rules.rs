//! ACL rules and limits as the operator writes them (in the file, on
//! `rvsadm acl|limit`, control's `config::access`): each input line is a
//! rule for an IPv4 and an IPv6 service, or a `name value` limit. Nothing
//! may panic; an accepted rule prints (as `--export-config` and
//! `rvsadm acl list` print it) to text that parses back to the same rule,
//! and its prefix contains its own address; an accepted limit reads back
//! as set.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use rvs_control::config::access::{parse_rule, Key};
use rvs_dataplane::limits::Limits;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vips: [SocketAddr; 2] = [
        "10.0.0.1:80".parse().unwrap(),
        "[2001:db8::1]:80".parse().unwrap(),
    ];
    let mut limits = Limits::default();
    for line in text.lines() {
        for vip in vips {
            if let Ok(rule) = parse_rule(line, vip) {
                let again = parse_rule(&rule.to_string(), vip).expect("a printed rule parses");
                assert_eq!(again, rule);
                assert!(rule.prefix.contains(rule.prefix.addr()));
                assert_eq!(rule.prefix.addr().is_v4(), vip.is_ipv4());
            }
        }
        let mut words = line.split_whitespace();
        if let (Some(name), Some(value)) = (words.next(), words.next()) {
            if let (Some(k), Ok(v)) = (Key::from_name(name), value.parse::<i64>()) {
                if k.set(&mut limits, v).is_ok() {
                    assert_eq!(i64::from(k.get(&limits)), v, "{name} {value}");
                }
            }
        }
    }
});
