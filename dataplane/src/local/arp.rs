//! ARP for owned addresses: a request for one is answered in place with
//! the port's MAC; senders on the port's link are learned (reported to
//! control). Replies are consumed, or go to the kernel too when the
//! exception path is on (it resolves its own neighbours).

use crate::addr::Addr;
use crate::neigh::{NeighEntry, NeighEvent};
use crate::pipeline::{Pipeline, Step, Verdict};
use crate::stats::DropReason;
use crate::wire::{arp, ethernet};

impl Pipeline {
    /// An ARP frame.
    pub(crate) fn handle_arp(&mut self, frame: &mut [u8], in_port: u16) -> Step {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(req) = arp::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let (op, smac, sip, tip) = (req.op(), req.sender_mac(), req.sender_ip(), req.target_ip());
        let on_link = self.tables.on_link(in_port, Addr::v4(sip));
        if on_link
            && sip != [0; 4]
            && (op == arp::OP_REPLY || self.neigh.lookup(Addr::v4(sip)) != Some(smac))
        {
            self.report(NeighEvent::Learned(NeighEntry {
                ip: Addr::v4(sip),
                mac: smac,
                port: in_port,
            }));
        }
        if op != arp::OP_REQUEST || !self.tables.holds(Addr::v4(tip)) {
            return match (op == arp::OP_REPLY && on_link, self.punt) {
                // The kernel resolves its own neighbours: it needs the replies too.
                (true, true) => Step::Done(Verdict::Punt),
                (true, false) => Step::Done(Verdict::Consumed),
                _ => Step::drop(DropReason::ArpNotForUs),
            };
        }
        let own = self.port_mac(in_port);
        arp::Packet::new_unchecked(&mut *l3).emit(arp::OP_REPLY, own, tip, smac, sip);
        self.counters.arp_replies += 1;
        self.reply_l2(l2, in_port)
    }
}
