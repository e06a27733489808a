//! The IPVS TCP connection-tracking state machine, with the kernel's table
//! (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, `tcp_states[]`, non-DoS variant).
//!
//! A director sees both halves of the connection: `Inbound` segments come
//! from the client (the kernel's INPUT), `Outbound` from the real server
//! (OUTPUT). Each segment is reduced to one event — RST beats SYN beats FIN
//! beats ACK — and the table gives the next state. A segment with none of
//! those flags leaves the state alone.
//!
//! ```text
//!   client SYN        RS SYN-ACK       client ACK
//! NONE ──────> SYN_RECV ──────> SYN_RECV ──────> ESTABLISHED
//!                                                  │ RS FIN        │ client FIN
//!                                                  v               v
//!                                              FIN_WAIT        CLOSE_WAIT
//!                                                  │ client FIN    │ RS FIN
//!                                                  └──> TIME_WAIT <┘
//! any RST ──> CLOSE (mostly; see the table)
//! ```
//!
//! IPVS counts a connection as *active* in ESTABLISHED only; every other
//! state counts as *inactive* (`ipvsadm -L`'s ActiveConn / InActConn).

use crate::wire::tcp::{TcpFlags, ACK, FIN, RST, SYN};

/// A TCP session state, named as `ipvsadm -L -c` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No segment seen yet.
    None = 0,
    /// Established both ways.
    Established,
    /// SYN sent by the real server side.
    SynSent,
    /// SYN seen from the client.
    SynRecv,
    /// The real server sent FIN.
    FinWait,
    /// Both sides closed.
    TimeWait,
    /// Reset or closed early.
    Close,
    /// The client sent FIN.
    CloseWait,
    /// Waiting for the last ACK.
    LastAck,
    /// Listening (not used by a director's sessions, kept for the table).
    Listen,
    /// SYN-ACK seen (SYN proxy; kept for the table).
    SynAck,
}

/// Number of states.
pub const STATE_COUNT: usize = 11;

impl TcpState {
    /// All states, in discriminant order.
    pub const ALL: [Self; STATE_COUNT] = [
        Self::None,
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::SynAck,
    ];

    /// The name ipvsadm prints.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait => "FIN_WAIT",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::SynAck => "SYNACK",
        }
    }

    /// True where IPVS counts the connection as active.
    #[must_use]
    pub fn is_active(self) -> bool {
        self == Self::Established
    }
}

/// Which side sent the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → real server.
    Inbound,
    /// Real server → client.
    Outbound,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

// Rows: event (syn, fin, ack, rst); columns: current state in discriminant order.
//                         sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
const INPUT: [[TcpState; STATE_COUNT]; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[TcpState; STATE_COUNT]; 4] = [
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

// The kernel's INPUT-ONLY rows, for DR (and TUN) sessions, where the
// director sees the client's segments only: the client's FIN moves
// ESTABLISHED to FIN_WAIT (not CLOSE_WAIT, no RS FIN will be seen), and a
// client RST closes a SYN_ACK session.
//                              sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
const INPUT_ONLY: [[TcpState; STATE_COUNT]; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a client segment with `flags` when the director sees
/// only the client's half of the connection (DR): IPVS's INPUT-ONLY table.
///
/// ```text
///   client SYN        client ACK           client FIN         client ACK/FIN
/// NONE ──────> SYN_RECV ──────> ESTABLISHED ──────> FIN_WAIT ──────> (stays)
///                                                   client FIN in SYN_RECV ─> TIME_WAIT
/// any client RST ──> CLOSE (except in SYN_RECV, as in IPVS)
/// ```
#[must_use]
pub fn next_state_input_only(state: TcpState, flags: TcpFlags) -> TcpState {
    match event(flags) {
        Some(e) => INPUT_ONLY[e][state as usize],
        None => state,
    }
}

fn event(flags: TcpFlags) -> Option<usize> {
    if flags.contains(RST) {
        Some(3)
    } else if flags.contains(SYN) {
        Some(0)
    } else if flags.contains(FIN) {
        Some(1)
    } else if flags.contains(ACK) {
        Some(2)
    } else {
        None
    }
}

/// The state after a segment with `flags` travelling in `dir`.
#[must_use]
pub fn next_state(state: TcpState, dir: Direction, flags: TcpFlags) -> TcpState {
    let event = if flags.contains(RST) {
        3
    } else if flags.contains(SYN) {
        0
    } else if flags.contains(FIN) {
        1
    } else if flags.contains(ACK) {
        2
    } else {
        return state;
    };
    let table = match dir {
        Direction::Inbound => &INPUT,
        Direction::Outbound => &OUTPUT,
    };
    table[event][state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Inbound, Outbound};

    #[test]
    fn server_closes_first_ends_in_time_wait() {
        let mut s = TcpState::None;
        for (dir, flags, want) in [
            (Inbound, SYN, TcpState::SynRecv),
            (Outbound, SYN | ACK, TcpState::SynRecv),
            (Inbound, ACK, TcpState::Established),
            (Inbound, ACK, TcpState::Established),
            (Outbound, FIN | ACK, TcpState::FinWait),
            (Inbound, ACK, TcpState::FinWait),
            (Inbound, FIN | ACK, TcpState::TimeWait),
            (Outbound, ACK, TcpState::TimeWait),
        ] {
            s = next_state(s, dir, flags);
            assert_eq!(s, want, "after {dir:?} {flags:#x}");
        }
    }

    #[test]
    fn client_closes_first_ends_in_time_wait() {
        let mut s = next_state(TcpState::None, Inbound, SYN);
        s = next_state(s, Outbound, SYN | ACK);
        s = next_state(s, Inbound, ACK);
        s = next_state(s, Inbound, FIN | ACK);
        assert_eq!(s, TcpState::CloseWait);
        s = next_state(s, Outbound, FIN | ACK);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn rst_closes_and_flagless_keeps() {
        assert_eq!(
            next_state(TcpState::Established, Inbound, RST | ACK),
            TcpState::Close
        );
        assert_eq!(
            next_state(TcpState::Established, Outbound, RST),
            TcpState::Close
        );
        assert_eq!(
            next_state(TcpState::Established, Inbound, TcpFlags::empty()),
            TcpState::Established
        );
    }

    #[test]
    fn input_only_connection_of_a_dr_session() {
        let mut s = TcpState::None;
        for (flags, want) in [
            (SYN, TcpState::SynRecv),
            (ACK, TcpState::Established),
            (ACK | crate::wire::tcp::PSH, TcpState::Established),
            (FIN | ACK, TcpState::FinWait),
            (ACK, TcpState::FinWait),
        ] {
            s = next_state_input_only(s, flags);
            assert_eq!(s, want, "after {flags:#x}");
        }
        assert_eq!(
            next_state_input_only(TcpState::Established, RST),
            TcpState::Close
        );
        assert_eq!(
            next_state_input_only(TcpState::SynRecv, RST),
            TcpState::SynRecv,
            "IPVS ignores RST in SYN_RECV"
        );
        assert_eq!(
            next_state_input_only(TcpState::SynRecv, FIN | ACK),
            TcpState::TimeWait
        );
        assert_eq!(
            next_state_input_only(TcpState::Established, TcpFlags::empty()),
            TcpState::Established
        );
    }

    #[test]
    fn input_only_differs_from_input_exactly_where_ipvs_does() {
        // Every (event, state) pair: the same as INPUT but for FIN in
        // ESTABLISHED/FIN_WAIT and RST in SYN_ACK.
        let mut diffs = Vec::new();
        for s in TcpState::ALL {
            for flags in [SYN, FIN, ACK, RST] {
                let (a, b) = (
                    next_state(s, Inbound, flags),
                    next_state_input_only(s, flags),
                );
                if a != b {
                    diffs.push((s, flags, b));
                }
            }
        }
        assert_eq!(
            diffs,
            vec![
                (TcpState::Established, FIN, TcpState::FinWait),
                (TcpState::FinWait, FIN, TcpState::FinWait),
                (TcpState::SynAck, RST, TcpState::Close),
            ]
        );
    }

    #[test]
    fn every_transition_stays_in_range_and_only_established_is_active() {
        for s in TcpState::ALL {
            for dir in [Inbound, Outbound] {
                for flags in 0..=0x3f_u8 {
                    let n = next_state(s, dir, TcpFlags::from_bits_retain(flags));
                    assert!((n as usize) < STATE_COUNT);
                }
            }
            assert_eq!(s.is_active(), s == TcpState::Established);
        }
    }
}
