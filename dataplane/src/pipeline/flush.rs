//! Flushing the sessions of one real server, for health checks whose
//! service resets a failed server's connections (`connections = "reset"`).
//!
//! IPVS's `expire_nodest_conn` does this lazily, when a packet of a
//! connection to an unavailable destination arrives; here control asks
//! every worker once, when the check marks the server down, and the worker
//! removes the sessions between bursts. What a session held (local port,
//! connection counts, its persistence template's reference) is given back
//! as on expiry, and each removal counts in `sessions_expired`. Afterwards
//! the flow has no session: a TCP segment of it, either way, is dropped as
//! `no_session` (both ends time out or give up; the session table keeps no
//! sequence numbers, so no acceptable RST can be forged), and a UDP
//! datagram is scheduled afresh, to a server that is up.

use super::Pipeline;
use crate::session::{FlowKey, Lookup};
use crate::time::Millis;

impl Pipeline {
    /// Removes every session to the real server with global index
    /// `rs_index` and returns how many there were. Not for the packet
    /// path: it walks the whole table (and allocates the list of keys).
    #[cold]
    pub fn flush_server(&mut self, rs_index: u16, now: Millis) -> usize {
        let keys: Vec<FlowKey> = self
            .sessions
            .iter()
            .filter(|s| s.rs_index == rs_index)
            .map(|s| s.client_key())
            .collect();
        let mut flushed = 0;
        for key in &keys {
            if let Lookup::Hit(slot, _) | Lookup::Expired(slot) = self.sessions.lookup(key, now) {
                self.expire(slot);
                flushed += 1;
            }
        }
        flushed
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
        assert_eq!(p.flush_server(0, Millis(2)), 3);
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
        assert_eq!(p.flush_server(0, Millis(4)), 0);
    }
}
