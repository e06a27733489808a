//! Flushing the sessions of one real server, for health checks whose
//! service resets a failed server's connections (`connections = "reset"`).
//!
//! IPVS's `expire_nodest_conn` does this lazily, when a packet of a
//! connection to an unavailable destination arrives; here control asks
//! every worker when the check marks the server down, and each worker
//! removes the sessions a bounded page of slots per housekeeping round
//! (control asks for the next page, from a thread of its own), forwarding
//! between pages. What a session held (local port,
//! connection counts, its persistence template's reference) is given back
//! as on expiry, and each removal counts in `sessions_expired`. Afterwards
//! the flow has no session: a TCP segment of it, either way, is dropped as
//! `no_session` (both ends time out or give up; the session table keeps no
//! sequence numbers, so no acceptable RST can be forged), and a UDP
//! datagram is scheduled afresh, to a server that is up.

use super::Pipeline;
use crate::session::SlotId;

impl Pipeline {
    /// Removes the sessions to the real server with global index
    /// `rs_index` among at most `scan` slots from slot `from` on, and
    /// returns how many it removed and the slot the next page starts at
    /// (`None`: the end of the table). Bounded work for one housekeeping
    /// round, allocation-free: a table of millions of sessions is flushed
    /// over many rounds, forwarding between them. Sessions indexed under
    /// their RS key only are left alone (a flush is about clients' flows).
    #[cold]
    pub fn flush_server_page(
        &mut self,
        rs_index: u16,
        from: u32,
        scan: usize,
    ) -> (usize, Option<u32>) {
        let cap = self.sessions.capacity();
        let start = from as usize;
        let end = start.saturating_add(scan.max(1)).min(cap);
        let mut flushed = 0;
        for i in start..end {
            let slot = SlotId(i as u32);
            let hit = self
                .sessions
                .hot(slot)
                .is_some_and(|s| s.rs_index == rs_index)
                && !self.sessions.is_rs_only(slot);
            if hit {
                self.expire(slot);
                flushed += 1;
            }
        }
        (flushed, (end < cap).then_some(end as u32))
    }

    /// Every page of [`Self::flush_server_page`] at once (tests).
    #[cfg(test)]
    pub fn flush_server(&mut self, rs_index: u16) -> usize {
        let (mut total, mut next) = (0, Some(0));
        while let Some(from) = next {
            let (n, after) = self.flush_server_page(rs_index, from, 4096);
            total += n;
            next = after;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        eth, known_servers, tables_with, CLIENT, CLIENT_MAC, LB_MAC, RS1, VIP,
    };
    use super::super::{Pipeline, Verdict};
    use crate::session::Endpoint;
    use crate::stats::DropReason;
    use crate::time::Millis;
    use crate::wire::{ethernet, tcp};
    use crate::xmit::rewrite;

    fn syn(client: Endpoint) -> Vec<u8> {
        eth(
            LB_MAC,
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &rewrite::tests::tcp_packet(client, VIP, tcp::SYN, b""),
        )
    }

    #[test]
    fn flushing_a_server_removes_its_sessions_only_and_gives_back_what_they_held() {
        let mut p = Pipeline::new(
            tables_with((5000, 5099), |_| {}),
            known_servers(),
            64,
            42,
            0,
            1,
        );
        // Round robin: even clients go to rs1 (index 0), odd ones to rs2.
        for i in 0..6 {
            let mut f = syn(Endpoint::at(CLIENT.ip, 40000 + i));
            assert_eq!(
                p.process(&mut f, 0, Millis(1)),
                Verdict::Forward { port: 0 }
            );
        }
        assert_eq!(p.sessions().iter().filter(|s| s.rs == RS1).count(), 3);
        let free_before = p.pools()[0].available();
        assert_eq!(p.flush_server(0), 3);
        assert_eq!(p.sessions().len(), 3);
        assert!(p.sessions().iter().all(|s| s.rs_index == 1));
        assert_eq!(
            p.pools()[0].available(),
            free_before + 3,
            "local ports go back to the pool"
        );
        assert_eq!(p.rs_conns()[0].total(), 0);
        assert_eq!(p.rs_conns()[1].total(), 3);
        assert_eq!(p.counters.sessions_expired, 3);
        // A later segment of a flushed connection finds no session.
        let mut f = eth(
            LB_MAC,
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &rewrite::tests::tcp_packet(Endpoint::at(CLIENT.ip, 40000), VIP, tcp::ACK, b"x"),
        );
        assert_eq!(
            p.process(&mut f, 0, Millis(3)),
            Verdict::Drop(DropReason::NoSession)
        );
        // Nothing left to flush.
        assert_eq!(p.flush_server(0), 0);
    }

    #[test]
    fn a_flush_goes_page_by_page_and_each_page_is_bounded() {
        let mut p = Pipeline::new(
            tables_with((5000, 5099), |_| {}),
            known_servers(),
            64,
            42,
            0,
            1,
        );
        for i in 0..40 {
            let mut f = syn(Endpoint::at(CLIENT.ip, 40000 + i));
            assert_eq!(
                p.process(&mut f, 0, Millis(1)),
                Verdict::Forward { port: 0 }
            );
        }
        // Pages of 8 slots: a table of 64 slots takes 8 pages, none of
        // which removes more than it examined.
        let (mut pages, mut total, mut next) = (0, 0, Some(0));
        while let Some(from) = next {
            let (n, after) = p.flush_server_page(0, from, 8);
            assert!(n <= 8);
            if let Some(a) = after {
                assert_eq!(a, from + 8);
            }
            total += n;
            pages += 1;
            next = after;
        }
        assert_eq!((pages, total), (8, 20));
        assert_eq!(p.sessions().len(), 20);
        assert!(p.sessions().iter().all(|s| s.rs_index == 1));
    }
}
