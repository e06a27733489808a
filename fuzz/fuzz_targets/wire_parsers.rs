//! Every packet parser on arbitrary bytes: the `wire` views
//! (`new_checked`, then every accessor, which must stay inside the buffer
//! `new_checked` accepted), the IPv4 option walk and header checks of the
//! strict ingress checks, the TCP option walk, and classification's
//! `describe`. Nothing may panic; what is accepted must be consistent with
//! the contracts written in each module's doc.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::addr::Addr;
use rvs_dataplane::pipeline::ingress_check;
use rvs_dataplane::wire::{arp, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = ethernet::Frame::new_checked(data) {
        let _ = (e.dst(), e.src(), e.ethertype(), e.payload().len());
    }
    if let Ok(a) = arp::Packet::new_checked(data) {
        let _ = (
            a.op(),
            a.sender_mac(),
            a.sender_ip(),
            a.target_mac(),
            a.target_ip(),
        );
    }
    if let Ok(ip) = ipv4::Packet::new_checked(data) {
        assert!(ip.header_len() >= ipv4::MIN_HEADER_LEN);
        assert!(ip.header_len() <= ip.total_len() && ip.total_len() <= data.len());
        let _ = (
            ip.src(),
            ip.dst(),
            ip.ttl(),
            ip.is_fragment(),
            ip.verify_checksum(),
        );
        assert_eq!(ip.payload().len(), ip.total_len() - ip.header_len());
    }
    if let Ok(ip) = ingress_check::ipv4_header(data) {
        // Its checksum is taken as right under cfg(fuzzing); its lengths not.
        assert!(ip.header_len() <= ip.total_len() && ip.total_len() <= data.len());
        assert!(ingress_check::ipv4_options(&data[ipv4::MIN_HEADER_LEN..ip.header_len()]).is_ok());
    }
    let _ = ingress_check::ipv4_options(data);
    let _ = ingress_check::ipv6_refusal(data);
    let _ = ingress_check::l4_refusal(data, data.first().is_some_and(|b| b & 1 == 1));
    if let Ok(ip) = ipv6::Packet::new_checked(data) {
        assert_eq!(ip.payload().len(), ip.payload_len());
        let _ = (ip.src(), ip.dst(), ip.next_header(), ip.hop_limit());
    }
    if let Ok(t) = tcp::Packet::new_checked(data) {
        let _ = (t.src_port(), t.dst_port(), t.flags(), t.checksum());
        let _ = t.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
        let _ = t.verify_checksum_v6([1; 16], [2; 16]);
        let _ = ingress_check::tcp_flags_valid(t.flags());
    }
    // The TCP option walk: in order, inside the header, and over for good.
    let mut walk = tcp::OptionWalk::new(data);
    let mut next_at = tcp::MIN_HEADER_LEN;
    while let Some(o) = walk.next(data) {
        assert!(o.at >= next_at && o.len >= 2 && o.at + o.len <= walk.header_end());
        next_at = o.at + o.len;
    }
    assert_eq!(walk.next(data), None);
    if let Ok(u) = udp::Packet::new_checked(data) {
        assert!(usize::from(u.len_field()) <= data.len());
        let _ = u.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
        let _ = u.verify_checksum_v6([1; 16], [2; 16]);
    }
    for proto in [ipv4::PROTO_TCP, ipv4::PROTO_UDP] {
        let _ = ingress_check::l4_checksum_ok(
            data,
            proto,
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([10, 0, 0, 2]),
        );
        let _ = ingress_check::l4_checksum_ok(data, proto, Addr::v6([1; 16]), Addr::v6([2; 16]));
    }
    if let Ok(i) = icmp::Packet::new_checked(data) {
        let _ = (i.msg_type(), i.code(), i.verify_checksum());
    }
    let _ = icmpv6::checksum(data, [1; 16], [2; 16]);
    let _ = icmpv6::nd_target(data);
    let _ = icmpv6::link_layer_option(data, 1);
    let _ = icmpv6::link_layer_option(data, 2);
});
