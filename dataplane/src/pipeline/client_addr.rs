//! The pipeline's side of telling FULLNAT servers the client's address
//! ([`crate::xmit::client_addr`] has the packet work): sessions whose
//! `client_addr` is not `None` pass here after their method's rewrite, in
//! both directions; a packet that gets a TOA option or a PROXY header
//! leaves with [`Reshape::Insert`], which [`Pipeline::insert_client_addr`]
//! applies to the whole buffer (before a FULLNAT64 translation, if any).

use super::{Pipeline, Reshape, Verdict};
use crate::packet::PacketBuf;
use crate::session::ext::{CLIENT_ISN, HEADER_SENT};
use crate::session::{ClientAddress, Direction, SlotId};
use crate::stats::DropReason;
use crate::wire::ipv4;
use crate::xmit::client_addr::{self as ca, Next};
use crate::xmit::nat64;

impl Pipeline {
    /// Remembers, clamps, shifts (see [`ca::on_packet`]) and says whether
    /// the packet of session `slot` (`l3`, its TCP header at `l4`) gets the
    /// insertion; `reshape` is what its method asked for already. Not
    /// `#[cold]`: every packet of such a session comes here.
    #[inline(never)]
    pub(super) fn client_address(
        &mut self,
        l3: &mut [u8],
        l4: usize,
        slot: SlotId,
        dir: Direction,
        reshape: Option<Reshape>,
    ) -> Option<Reshape> {
        let Some((s, ext)) = self.sessions.get_with_ext(slot) else {
            return reshape;
        };
        let mode = s.client_addr;
        if s.proto == ipv4::PROTO_UDP {
            // Every datagram toward the server carries the header (the
            // servers that read PROXY v2 over UDP keep no sessions).
            return if dir == Direction::Inbound {
                Some(Reshape::Insert {
                    slot,
                    translate: matches!(reshape, Some(Reshape::Translate { .. })),
                })
            } else {
                reshape
            };
        }
        let len = if mode.is_proxy() && ext.has(CLIENT_ISN) {
            ext.to_server.delta as usize
        } else {
            ca::insertion(mode, s.client, s.vip, s.proto).map_or(0, |i| i.bytes().len())
        };
        match ca::on_packet(mode, ext, l3, l4, dir, len) {
            Next::Send => reshape,
            Next::Insert => Some(Reshape::Insert {
                slot,
                translate: matches!(reshape, Some(Reshape::Translate { .. })),
            }),
        }
    }

    /// Inserts session `slot`'s TOA option or PROXY header into the frame
    /// leaving on `port`, then translates it (FULLNAT64) if asked. A TOA
    /// option that does not fit is left out (counted in `toa_no_room`); a
    /// PROXY header that does not fit drops the packet (`no_room`): the
    /// server cannot do without it, and the client retransmits.
    #[cold]
    #[inline(never)]
    pub(super) fn insert_client_addr(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        slot: SlotId,
        translate: bool,
        port: u16,
    ) -> Verdict {
        let mtu = self
            .tables
            .interfaces
            .get(usize::from(port))
            .map_or(1500, |i| i.mtu);
        let Some((s, ext)) = self.sessions.get_with_ext(slot) else {
            return Verdict::Drop(DropReason::NoSession);
        };
        let Some(bytes) = ca::insertion(s.client_addr, s.client, s.vip, s.proto) else {
            return Verdict::Forward { port };
        };
        let toa = s.client_addr == ClientAddress::Toa;
        let dgram = s.proto == ipv4::PROTO_UDP;
        // Before a translation to IPv4 the packet is still IPv6, 20 bytes
        // longer than it will leave.
        let limit = if translate {
            mtu.saturating_add(20)
        } else {
            mtu
        };
        match ca::insert(pkt, bytes.bytes(), toa, limit) {
            Ok(()) => {
                if !toa && !dgram {
                    ext.flags |= HEADER_SENT;
                }
                self.counters.client_addr_inserted += 1;
            }
            Err(_) if toa => self.counters.toa_no_room += 1,
            Err(_) => return Verdict::Drop(DropReason::NoRoom),
        }
        if translate {
            let done = if s.laddr.ip.is_v4() {
                nat64::to_v4(pkt, s.proto, s.laddr, s.rs)
            } else {
                nat64::to_v6(pkt, s.proto, s.laddr, s.rs)
            };
            if let Err(r) = done {
                return Verdict::Drop(r);
            }
        }
        Verdict::Forward { port }
    }
}
