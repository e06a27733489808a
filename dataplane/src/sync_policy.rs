//! When a session is worth a connection-sync message: the kernel's
//! `ip_vs_sync_conn_needed` (net/netfilter/ipvs/ip_vs_sync.c) as a pure
//! function a worker calls on each inbound packet of a session, with the
//! kernel's sysctls as [`SyncPolicy`] and the two per-connection fields it
//! keeps (`old_state`, `sync_endtime`) as [`SyncMark`].
//!
//! With the defaults (`sync_threshold` 3, `sync_period` 50, no refresh
//! period) a TCP connection is sent on its 3rd inbound packet (normally the
//! ACK that establishes it), then every 50 packets (53rd, 103rd, ...) while
//! established, and at once on every change into FIN_WAIT, TIME_WAIT, CLOSE
//! or CLOSE_WAIT; UDP on its 3rd, 53rd, ... packet; a persistence template
//! whenever a connection it controls is sent. With `sync_refresh_period`
//! set, a connection is sent again only when its expiry moved by more than
//! that period (or half its timeout), with `sync_retries` extra sends
//! spaced by an eighth of the period.
//!
//! Allocation-free and branch-light: it runs on the packet path.

/// IPVS TCP states (`IP_VS_TCP_S_*`) the kernel syncs.
const TCP_ESTABLISHED: u8 = 1;
const TCP_FIN_WAIT: u8 = 4;
const TCP_TIME_WAIT: u8 = 5;
const TCP_CLOSE: u8 = 6;
const TCP_CLOSE_WAIT: u8 = 7;
/// SCTP states (`IP_VS_SCTP_S_*`) the kernel syncs: ESTABLISHED,
/// SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED.
const SCTP_SYNCED: u32 = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 9);
const SCTP_ESTABLISHED: u8 = 4;

/// The transport of a session, as the policy distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncProto {
    /// TCP: synced in its established and closing states.
    Tcp,
    /// SCTP: synced in its established and shutdown states.
    Sctp,
    /// UDP and anything else with a single state.
    Other,
}

/// The kernel's sync sysctls (`/proc/sys/net/ipv4/vs/sync_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// `sync_threshold`'s first value: the inbound packet that triggers a send.
    pub threshold: u32,
    /// `sync_threshold`'s second value (`sync_period`): every this many
    /// packets after it; 0 sends once.
    pub period: u32,
    /// `sync_refresh_period` in milliseconds; 0 disables it.
    pub refresh_period_ms: u64,
    /// `sync_retries` (0..=3).
    pub retries: u8,
    /// `sync_persist_mode`: connections under a persistence template are
    /// not sent (the template is).
    pub persist_mode: bool,
}

impl Default for SyncPolicy {
    /// The kernel's defaults.
    fn default() -> Self {
        Self {
            threshold: 3,
            period: 50,
            refresh_period_ms: 0,
            retries: 0,
            persist_mode: false,
        }
    }
}

/// What the policy remembers of one session (two words, kept in its cold part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncMark {
    /// The state at the last send.
    pub old_state: u8,
    /// The expiry announced at the last send, in ms, its low two bits the
    /// retry count (the kernel's `sync_endtime` in jiffies).
    pub sync_endtime_ms: u64,
}

/// The session facts the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncInput {
    /// The session's transport.
    pub proto: SyncProto,
    /// Its IPVS state number.
    pub state: u8,
    /// A persistence template rather than a connection.
    pub template: bool,
    /// Controlled by a persistence template.
    pub in_persistence: bool,
    /// Inbound packets so far, this one included (the kernel's `in_pkts`).
    pub pkts: u32,
    /// Its timeout in the current state, ms.
    pub timeout_ms: u64,
}

impl SyncPolicy {
    /// Whether this packet's session is to be sent now; updates `mark` when
    /// it is.
    #[must_use]
    pub fn needed(&self, mark: &mut SyncMark, s: &SyncInput, now_ms: u64) -> bool {
        let orig = mark.sync_endtime_ms;
        let mut n = (now_ms + s.timeout_ms) & !3;
        if !s.template {
            if self.persist_mode && s.in_persistence {
                return false;
            }
            // A change into a closing state is sent at once; ESTABLISHED
            // waits for the packet count like everything else.
            let (synced, established) = match s.proto {
                SyncProto::Tcp => (
                    matches!(
                        s.state,
                        TCP_ESTABLISHED | TCP_FIN_WAIT | TCP_CLOSE | TCP_CLOSE_WAIT | TCP_TIME_WAIT
                    ),
                    TCP_ESTABLISHED,
                ),
                SyncProto::Sctp => (
                    s.state < 32 && SCTP_SYNCED & (1 << s.state) != 0,
                    SCTP_ESTABLISHED,
                ),
                SyncProto::Other => (true, s.state),
            };
            if !synced {
                return false;
            }
            if s.proto != SyncProto::Other && s.state != mark.old_state && s.state != established {
                return Self::set(mark, s, n);
            }
        }
        if self.refresh_period_ms > 0 {
            let diff = n.abs_diff(orig);
            let min_diff = (s.timeout_ms / 2).max(10_000);
            if diff < self.refresh_period_ms.min(min_diff) {
                let retries = orig & 3;
                if retries >= u64::from(self.retries) {
                    return false;
                }
                if now_ms < (orig + self.refresh_period_ms / 8).saturating_sub(s.timeout_ms) {
                    return false;
                }
                n |= retries + 1;
            }
        }
        if self.period > 0 {
            if !s.template && s.pkts % self.period != self.threshold {
                return false;
            }
        } else if self.refresh_period_ms == 0 && s.pkts != self.threshold {
            return false;
        }
        Self::set(mark, s, n)
    }

    fn set(mark: &mut SyncMark, s: &SyncInput, n: u64) -> bool {
        // The kernel's cmpxchg on sync_endtime only loses to another CPU;
        // a worker owns its sessions, so it always wins.
        mark.old_state = s.state;
        mark.sync_endtime_ms = n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(state: u8, pkts: u32) -> SyncInput {
        SyncInput {
            proto: SyncProto::Tcp,
            state,
            template: false,
            in_persistence: false,
            pkts,
            timeout_ms: 900_000,
        }
    }

    /// The packets of one TCP connection, in order, and which were sent.
    fn run(policy: &SyncPolicy, packets: &[(u8, u32)]) -> Vec<u32> {
        let mut mark = SyncMark::default();
        packets
            .iter()
            .enumerate()
            .filter(|(i, (state, pkts))| {
                policy.needed(&mut mark, &tcp(*state, *pkts), *i as u64 * 10)
            })
            .map(|(_, (_, pkts))| *pkts)
            .collect()
    }

    #[test]
    fn defaults_send_the_third_packet_then_every_fifty_and_every_closing_state() {
        let p = SyncPolicy::default();
        // SYN (SYN_RECV), ACK, data... all established from the 2nd packet on.
        let mut pkts: Vec<(u8, u32)> = vec![(3, 1)];
        pkts.extend((2..=120).map(|n| (TCP_ESTABLISHED, n)));
        assert_eq!(run(&p, &pkts), vec![3, 53, 103]);
        // FIN from the client: CLOSE_WAIT at once, then LAST_ACK (not synced),
        // then TIME_WAIT... each change into a synced closing state is sent.
        let closing = [
            (TCP_ESTABLISHED, 3),
            (TCP_CLOSE_WAIT, 4),
            (TCP_CLOSE_WAIT, 5),
            (8, 6),
            (TCP_TIME_WAIT, 7),
            (TCP_CLOSE, 8),
        ];
        assert_eq!(run(&p, &closing), vec![3, 4, 7, 8]);
    }

    #[test]
    fn half_open_connections_are_never_sent() {
        let p = SyncPolicy::default();
        let syn_flood: Vec<(u8, u32)> = (1..=200).map(|n| (3, n)).collect();
        assert!(run(&p, &syn_flood).is_empty());
    }

    #[test]
    fn period_zero_sends_once_at_the_threshold() {
        let p = SyncPolicy {
            period: 0,
            ..SyncPolicy::default()
        };
        let pkts: Vec<(u8, u32)> = (1..=200).map(|n| (TCP_ESTABLISHED, n)).collect();
        assert_eq!(run(&p, &pkts), vec![3]);
    }

    #[test]
    fn udp_follows_the_packet_count_and_templates_every_offer() {
        let p = SyncPolicy::default();
        let mut mark = SyncMark::default();
        let udp = |pkts| SyncInput {
            proto: SyncProto::Other,
            state: 0,
            template: false,
            in_persistence: false,
            pkts,
            timeout_ms: 300_000,
        };
        let sent: Vec<u32> = (1..=60)
            .filter(|&n| p.needed(&mut mark, &udp(n), u64::from(n)))
            .collect();
        assert_eq!(sent, vec![3, 53]);
        let mut t = udp(1);
        t.template = true;
        assert!(p.needed(&mut SyncMark::default(), &t, 0));
        t.pkts = 17;
        assert!(p.needed(&mut SyncMark::default(), &t, 0));
        // persist mode: a connection under a template is left to it.
        let pm = SyncPolicy {
            persist_mode: true,
            ..p
        };
        let mut c = udp(3);
        c.in_persistence = true;
        assert!(!pm.needed(&mut SyncMark::default(), &c, 0));
    }

    #[test]
    fn a_refresh_period_holds_back_sends_until_the_expiry_moved_enough() {
        let p = SyncPolicy {
            period: 0,
            refresh_period_ms: 60_000,
            ..SyncPolicy::default()
        };
        let mut mark = SyncMark::default();
        // First established packet: expiry moves from 0, sent.
        assert!(p.needed(&mut mark, &tcp(TCP_ESTABLISHED, 3), 1_000));
        // A second later the expiry moved by 1 s < 60 s: held back.
        assert!(!p.needed(&mut mark, &tcp(TCP_ESTABLISHED, 4), 2_000));
        // 61 s later it moved by more than the period: sent again.
        assert!(p.needed(&mut mark, &tcp(TCP_ESTABLISHED, 5), 62_000));
    }
}
