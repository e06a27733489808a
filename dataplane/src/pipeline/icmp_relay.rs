//! ICMP errors about balanced connections, relayed to the other side.
//!
//! A destination unreachable (fragmentation needed included), time exceeded
//! or parameter problem quotes the IP header and at least 8 bytes of the
//! packet that caused it. When that packet belongs to a session, the error
//! is for the session's other end, rewritten as IPVS's `ip_vs_nat_icmp`
//! does:
//!
//! ```text
//!  from the RS side   rs ─> laddr  [quote laddr:lport → rs:rport]
//!  to the client     vip ─> client [quote client:cport → vip:vport]
//!
//!  from the client    client ─> vip [quote vip:vport → client:cport]
//!  to the RS side    laddr ─> rs    [quote rs:rport → laddr:lport]
//! ```
//!
//! The session is found by the quote turned around (what the error's sender
//! would send next on that flow), so the same two-key lookup serves both
//! directions; a miss that another worker owns is redirected there by the
//! usual rules. The outer header, the quoted header and ports, the quoted
//! transport checksum (UDP always; TCP only when the quote reaches it) and
//! the ICMP checksum are fixed. DR and TUN sessions pass the error on to the
//! server unchanged (TUN encapsulated). Errors quoting something else fall
//! through to the ordinary ICMP handling.

use super::{Pipeline, Reshape, Step, Verdict};
use crate::checksum;
use crate::session::{Addr, Direction, Endpoint, FlowKey, Lookup, Session};
use crate::stats::DropReason;
use crate::tables::Forward;
use crate::time::Millis;
use crate::wire::{icmpv6, ipv4, ipv6, MacAddr};

/// ICMP types that quote the offending packet.
#[must_use]
pub fn is_error(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 11 | 12)
}

/// The quoted packet's addresses, protocol and ports, if it is TCP or UDP.
pub(super) fn quoted(icmp: &[u8]) -> Option<(usize, FlowKey)> {
    let inner = icmp.get(8..)?;
    let ihl = usize::from(*inner.first()? & 0x0f) * 4;
    if inner[0] >> 4 != 4 || ihl < ipv4::MIN_HEADER_LEN || inner.len() < ihl + 8 {
        return None;
    }
    let proto = inner[9];
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return None;
    }
    let ip = |o: usize| [inner[o], inner[o + 1], inner[o + 2], inner[o + 3]];
    let port = |o: usize| u16::from_be_bytes([inner[ihl + o], inner[ihl + o + 1]]);
    Some((
        ihl,
        FlowKey {
            src: Endpoint::new(ip(12), port(0)),
            dst: Endpoint::new(ip(16), port(2)),
            proto,
        },
    ))
}

/// Where a relayed error goes: its session, the addresses of the side it
/// goes to (new source and destination), and that side's port and MAC.
struct Relay {
    s: Session,
    src: Endpoint,
    dst: Endpoint,
    port: u16,
    mac: MacAddr,
    untouched: bool,
    /// Taken from the quoted TCP sequence number: an error from the
    /// server's side quotes the client's stream as the server numbers it
    /// (the session's ISN offset, [`crate::xmit::isn`]).
    seq_back: u32,
}

impl Pipeline {
    /// Relays an ICMP error about a session; `None` if it quotes none here
    /// and no other worker owns it.
    #[cold]
    pub(crate) fn relay_icmp_error(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        now: Millis,
    ) -> Option<Step> {
        let ohl = usize::from(l3[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([l3[2], l3[3]])).clamp(ohl, l3.len());
        let (ihl, q) = quoted(l3.get(ohl..total)?)?;
        // What the error's sender would send next on that flow.
        let key = FlowKey {
            src: q.dst,
            dst: q.src,
            proto: q.proto,
        };
        let r = match self.relay_target(&key, now, true) {
            Ok(r) => r,
            Err(v) => return v,
        };
        if !r.untouched {
            if l3[8] <= 1 {
                return Some(Step::drop(DropReason::TtlExceeded));
            }
            rewrite(
                &mut l3[..total],
                ohl,
                ihl,
                r.src.ip.v4_bits(),
                r.dst.ip.v4_bits(),
                r.dst,
                r.src,
                r.seq_back,
            );
        }
        Some(self.relay_send(l2, &r))
    }

    /// The session an error's quote names (`key`, turned around) and where
    /// the error goes; `Err` with what to answer instead (another worker,
    /// not ours, or a session of the other family: FULLNAT64's errors are
    /// not translated).
    fn relay_target(&self, key: &FlowKey, now: Millis, v4: bool) -> Result<Relay, Option<Step>> {
        let (slot, dir) = match self.sessions.lookup(key, now) {
            Lookup::Hit(slot, dir) => (slot, dir),
            Lookup::Expired(_) | Lookup::Miss => return Err(self.icmp_owner(key)),
        };
        let s = self.sessions.get(slot).ok_or(None)?;
        let (src, dst, port, mac) = match dir {
            Direction::Inbound => (s.laddr, s.rs, s.rs_port, s.rs_mac),
            Direction::Outbound => (s.vip, s.client, s.client_port, s.client_mac),
        };
        if src.ip.is_v4() != v4 {
            return Err(Some(Step::drop(DropReason::UnsupportedL4)));
        }
        // DR and TUN pass a client's error on to the server as it is.
        let untouched =
            matches!(s.forward, Forward::Dr | Forward::Tun) && dir == Direction::Inbound;
        let seq_back = if dir == Direction::Outbound && s.proto == ipv4::PROTO_TCP {
            s.isn_off
        } else {
            0
        };
        Ok(Relay {
            s,
            src,
            dst,
            port,
            mac,
            untouched,
            seq_back,
        })
    }

    /// Addresses the (rewritten) error to its next hop (wrapped for a TUN
    /// server) and counts it.
    fn relay_send(&mut self, l2: &mut [u8], r: &Relay) -> Step {
        let own = self.port_mac(r.port);
        l2[0..6].copy_from_slice(&r.mac);
        l2[6..12].copy_from_slice(&own);
        let reshape = (r.untouched && r.s.forward == Forward::Tun).then(|| {
            Reshape::Encap(self.encap_toward(r.port, r.s.rs.ip, r.s.client_port, r.s.client_mac))
        });
        self.counters.icmp_relayed += 1;
        Step::Forward {
            port: r.port,
            reshape,
        }
    }

    /// [`Self::relay_icmp_error`] for ICMPv6 (destination unreachable,
    /// packet too big, time exceeded, parameter problem), whose quote is an
    /// IPv6 header followed directly by TCP or UDP.
    #[cold]
    pub(crate) fn relay_icmpv6_error(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        now: Millis,
    ) -> Option<Step> {
        const H: usize = ipv6::HEADER_LEN;
        let total = (H + usize::from(u16::from_be_bytes([l3[4], l3[5]]))).min(l3.len());
        let q = H + 8;
        if total < q + H + 8 || l3[q] >> 4 != 6 {
            return None;
        }
        let proto = l3[q + 6];
        if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
            return None;
        }
        let addr = |o: usize| Addr::v6(<[u8; 16]>::try_from(&l3[o..o + 16]).unwrap_or_default());
        let port = |o: usize| u16::from_be_bytes([l3[o], l3[o + 1]]);
        let l4 = q + H;
        let (qsrc, qdst) = (
            Endpoint::at(addr(q + 8), port(l4)),
            Endpoint::at(addr(q + 24), port(l4 + 2)),
        );
        let key = FlowKey {
            src: qdst,
            dst: qsrc,
            proto,
        };
        let r = match self.relay_target(&key, now, false) {
            Ok(r) => r,
            Err(v) => return v,
        };
        let (src, dst) = (r.src, r.dst);
        if !r.untouched {
            if l3[7] <= 1 {
                return Some(Step::drop(DropReason::TtlExceeded));
            }
            // The quoted packet: what the other side sent, turned around.
            let csum_at = if proto == ipv4::PROTO_UDP {
                Some(l4 + 6)
            } else {
                Some(l4 + 16).filter(|o| o + 2 <= total)
            };
            let seq_at = l4 + 4;
            let (old_seq, new_seq) = if r.seq_back != 0 && seq_at + 4 <= total {
                let old = u32::from_be_bytes([
                    l3[seq_at],
                    l3[seq_at + 1],
                    l3[seq_at + 2],
                    l3[seq_at + 3],
                ]);
                (old, old.wrapping_sub(r.seq_back))
            } else {
                (0, 0)
            };
            if old_seq != new_seq {
                l3[seq_at..seq_at + 4].copy_from_slice(&new_seq.to_be_bytes());
            }
            if let Some(o) = csum_at {
                let mut c = u16::from_be_bytes([l3[o], l3[o + 1]]);
                c = checksum::apply(c, seq_term(old_seq, new_seq));
                c = checksum::update_u128(c, qsrc.ip.octets(), dst.ip.octets());
                c = checksum::update_u128(c, qdst.ip.octets(), src.ip.octets());
                c = checksum::update_u16(c, qsrc.port, dst.port);
                c = checksum::update_u16(c, qdst.port, src.port);
                if proto == ipv4::PROTO_UDP && c == 0 {
                    c = 0xffff; // 0 is no valid IPv6 UDP checksum
                }
                l3[o..o + 2].copy_from_slice(&c.to_be_bytes());
            }
            l3[l4..l4 + 2].copy_from_slice(&dst.port.to_be_bytes());
            l3[l4 + 2..l4 + 4].copy_from_slice(&src.port.to_be_bytes());
            l3[q + 8..q + 24].copy_from_slice(&dst.ip.octets());
            l3[q + 24..q + 40].copy_from_slice(&src.ip.octets());
            l3[8..24].copy_from_slice(&src.ip.octets());
            l3[24..40].copy_from_slice(&dst.ip.octets());
            l3[7] -= 1;
            icmpv6::fill_checksum(&mut l3[H..total], src.ip.octets(), dst.ip.octets());
        }
        Some(self.relay_send(l2, &r))
    }

    /// The worker owning the flow an error quotes, when it is not this one.
    fn icmp_owner(&self, key: &FlowKey) -> Option<Step> {
        let svc = match self.tables.service_at(key.dst, key.proto) {
            Some(svc) => svc,
            None => match self.miss_not_a_service(key) {
                Ok(svc) => svc,
                Err(v @ Step::Done(Verdict::Redirect { .. })) => return Some(v),
                Err(_) => return None,
            },
        };
        let owner = self.owner_of_client(svc, key);
        (owner != usize::from(self.worker)).then_some(Step::Done(Verdict::Redirect {
            worker: owner as u16,
        }))
    }
}

/// The checksum term of a 32-bit field changing `old` → `new` (nothing
/// when equal).
fn seq_term(old: u32, new: u32) -> u32 {
    if old == new {
        return 0;
    }
    checksum::delta_u16((old >> 16) as u16, (new >> 16) as u16)
        + checksum::delta_u16(old as u16, new as u16)
}

/// Rewrites an IPv4 ICMP error (`l3`, outer header `ohl` bytes, quoted
/// header `ihl` bytes) to go `outer_src → outer_dst` and quote
/// `inner_src → inner_dst`, a quoted TCP sequence number `seq_back` less.
#[allow(clippy::too_many_arguments)]
fn rewrite(
    l3: &mut [u8],
    ohl: usize,
    ihl: usize,
    outer_src: [u8; 4],
    outer_dst: [u8; 4],
    inner_src: Endpoint,
    inner_dst: Endpoint,
    seq_back: u32,
) {
    let q = ohl + 8;
    let proto = l3[q + 9];
    // A fragmented error (its first fragment here) cannot be summed whole:
    // its checksum is updated for the quote's bytes that change.
    let whole = u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff == 0;
    let changed = q..(q + ihl + 18).min(l3.len());
    let before = checksum::sum(&l3[changed.clone()], 0);
    let old_src = [l3[q + 12], l3[q + 13], l3[q + 14], l3[q + 15]];
    let old_dst = [l3[q + 16], l3[q + 17], l3[q + 18], l3[q + 19]];
    let l4 = q + ihl;
    let old_ports = [
        u16::from_be_bytes([l3[l4], l3[l4 + 1]]),
        u16::from_be_bytes([l3[l4 + 2], l3[l4 + 3]]),
    ];
    // The quoted transport checksum, where the quote holds it.
    let csum_at = if proto == ipv4::PROTO_UDP {
        Some(l4 + 6)
    } else {
        Some(l4 + 16).filter(|o| o + 2 <= l3.len())
    };
    // The quoted TCP sequence number (the first 8 bytes are always quoted).
    let seq_at = l4 + 4;
    let (old_seq, new_seq) = if proto == ipv4::PROTO_TCP && seq_back != 0 && seq_at + 4 <= l3.len()
    {
        let old = u32::from_be_bytes([l3[seq_at], l3[seq_at + 1], l3[seq_at + 2], l3[seq_at + 3]]);
        (old, old.wrapping_sub(seq_back))
    } else {
        (0, 0)
    };
    if old_seq != new_seq {
        l3[seq_at..seq_at + 4].copy_from_slice(&new_seq.to_be_bytes());
    }
    if let Some(o) = csum_at {
        let mut c = u16::from_be_bytes([l3[o], l3[o + 1]]);
        if !(proto == ipv4::PROTO_UDP && c == 0) {
            c = checksum::apply(c, seq_term(old_seq, new_seq));
            c = checksum::update_u32(c, old_src, inner_src.ip.v4_bits());
            c = checksum::update_u32(c, old_dst, inner_dst.ip.v4_bits());
            c = checksum::update_u16(c, old_ports[0], inner_src.port);
            c = checksum::update_u16(c, old_ports[1], inner_dst.port);
            if proto == ipv4::PROTO_UDP && c == 0 {
                c = 0xffff;
            }
            l3[o..o + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    l3[l4..l4 + 2].copy_from_slice(&inner_src.port.to_be_bytes());
    l3[l4 + 2..l4 + 4].copy_from_slice(&inner_dst.port.to_be_bytes());
    l3[q + 12..q + 16].copy_from_slice(&inner_src.ip.v4_bits());
    l3[q + 16..q + 20].copy_from_slice(&inner_dst.ip.v4_bits());
    l3[q + 10..q + 12].fill(0);
    let c = checksum::checksum(&l3[q..q + ihl]);
    l3[q + 10..q + 12].copy_from_slice(&c.to_be_bytes());
    // The ICMP checksum covers the whole message: recompute (cold path),
    // or update it for the changed bytes of a fragment.
    let c = if whole {
        l3[ohl + 2..ohl + 4].fill(0);
        checksum::checksum(&l3[ohl..])
    } else {
        let after = checksum::sum(&l3[changed], 0);
        let old = u16::from_be_bytes([l3[ohl + 2], l3[ohl + 3]]);
        checksum::apply(
            old,
            checksum::delta_u16(!checksum::finish(before), !checksum::finish(after)),
        )
    };
    l3[ohl + 2..ohl + 4].copy_from_slice(&c.to_be_bytes());
    // The outer header: addresses and TTL, checksum recomputed.
    l3[12..16].copy_from_slice(&outer_src);
    l3[16..20].copy_from_slice(&outer_dst);
    l3[8] -= 1;
    l3[10..12].fill(0);
    let c = checksum::checksum(&l3[..ohl]);
    l3[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_and_udp_quotes_are_understood() {
        let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        let mut inner = vec![0u8; 28];
        ipv4::emit_header(&mut inner, ipv4::PROTO_UDP, [10, 0, 0, 1], [10, 0, 0, 2], 8);
        inner[20..24].copy_from_slice(&[0x13, 0x88, 0x00, 0x35]);
        m.extend_from_slice(&inner);
        let (ihl, k) = quoted(&m).unwrap();
        assert_eq!(
            (ihl, k.src, k.dst),
            (
                20,
                Endpoint::new([10, 0, 0, 1], 5000),
                Endpoint::new([10, 0, 0, 2], 53)
            )
        );
        m[8 + 9] = 47;
        assert!(quoted(&m).is_none(), "GRE");
        assert!(quoted(&m[..20]).is_none(), "truncated quote");
        assert!(is_error(3) && is_error(11) && !is_error(8) && !is_error(0));
    }
}
