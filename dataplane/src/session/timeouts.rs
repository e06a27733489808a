//! Per-state session timeouts, in seconds, with the IPVS defaults
//! (`ip_vs_proto_tcp.c` `tcp_timeouts[]`, `ip_vs_proto_udp.c`).
//!
//! `ipvsadm --set tcp tcpfin udp` changes `established`, `fin_wait` and `udp`.

use super::tcp_state::{TcpState, STATE_COUNT};

/// Timeouts per TCP state plus UDP, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by `TcpState as usize`.
    pub tcp_secs: [u32; STATE_COUNT],
    /// UDP session idle timeout.
    pub udp_secs: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp_secs = [0; STATE_COUNT];
        for s in TcpState::ALL {
            tcp_secs[s as usize] = match s {
                TcpState::None => 2,
                TcpState::Established => 15 * 60,
                TcpState::SynSent | TcpState::FinWait | TcpState::TimeWait => 2 * 60,
                TcpState::SynRecv | TcpState::CloseWait => 60,
                TcpState::Close => 10,
                TcpState::LastAck => 30,
                TcpState::Listen | TcpState::SynAck => 2 * 60,
            };
        }
        Self {
            tcp_secs,
            udp_secs: 5 * 60,
        }
    }
}

impl Timeouts {
    /// The timeout of `state`.
    #[must_use]
    pub fn tcp(&self, state: TcpState) -> u32 {
        self.tcp_secs[state as usize]
    }

    /// Sets the timeout of `state`.
    pub fn set_tcp(&mut self, state: TcpState, secs: u32) {
        self.tcp_secs[state as usize] = secs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_defaults() {
        let t = Timeouts::default();
        assert_eq!(t.tcp(TcpState::Established), 900);
        assert_eq!(t.tcp(TcpState::FinWait), 120);
        assert_eq!(t.tcp(TcpState::SynRecv), 60);
        assert_eq!(t.tcp(TcpState::Close), 10);
        assert_eq!(t.tcp(TcpState::TimeWait), 120);
        assert_eq!(t.udp_secs, 300);
    }
}
