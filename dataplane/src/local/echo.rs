//! ICMP echo to owned addresses (VIPs, local addresses): the request is
//! turned into its reply in place (type, checksum, addresses swapped).
//! Echo for an interface address goes to the kernel when the exception
//! path is on.

use crate::addr::Addr;
use crate::pipeline::{Pipeline, Step, Verdict};
use crate::stats::DropReason;
use crate::wire::{icmp, icmpv6, ipv4, ipv6};

impl Pipeline {
    /// ICMPv4 that is not a relayed error.
    pub(crate) fn echo_v4(&mut self, l2: &mut [u8], l3: &mut [u8], in_port: u16) -> Step {
        let Ok(mut ip) = ipv4::Packet::new_checked(&mut *l3) else {
            return Step::drop(DropReason::Malformed);
        };
        if self.punt && self.is_interface_addr(Addr::v4(ip.dst())) {
            // Pings and ICMP for the appliance's own address are the kernel's.
            return Step::Done(Verdict::Punt);
        }
        if !self.tables.holds(Addr::v4(ip.dst())) {
            return Step::drop(DropReason::NotForUs);
        }
        if ip.is_fragment() {
            return Step::drop(DropReason::Fragment);
        }
        let Ok(mut msg) = icmp::Packet::new_checked(ip.payload_mut()) else {
            return Step::drop(DropReason::Malformed);
        };
        if msg.msg_type() != icmp::ECHO_REQUEST || msg.code() != 0 {
            return Step::drop(DropReason::UnsupportedL4);
        }
        msg.make_echo_reply();
        ip.swap_addrs();
        self.counters.echo_replies += 1;
        self.reply_l2(l2, in_port)
    }

    /// ICMPv6 that is neither a relayed error nor neighbour discovery.
    pub(crate) fn echo_v6(&mut self, l2: &mut [u8], l3: &mut [u8], in_port: u16) -> Step {
        let Ok(mut ip) = ipv6::Packet::new_checked(&mut *l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let (src, dst) = (ip.src(), ip.dst());
        let m = ip.payload_mut();
        if m[0] != icmpv6::ECHO_REQUEST
            || !self.tables.holds(Addr::v6(dst))
            || (self.punt && self.is_interface_addr(Addr::v6(dst)))
        {
            return self.punt_or(
                Addr::v6(dst),
                if self.tables.holds(Addr::v6(dst)) {
                    DropReason::UnsupportedL4
                } else {
                    DropReason::NotForUs
                },
            );
        }
        let c = crate::checksum::update_u16(
            u16::from_be_bytes([m[2], m[3]]),
            u16::from(icmpv6::ECHO_REQUEST) << 8,
            u16::from(icmpv6::ECHO_REPLY) << 8,
        );
        m[0] = icmpv6::ECHO_REPLY;
        m[2..4].copy_from_slice(&c.to_be_bytes());
        ip.set_src(dst);
        ip.set_dst(src);
        self.counters.echo_replies += 1;
        self.reply_l2(l2, in_port)
    }
}
