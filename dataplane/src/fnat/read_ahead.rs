//! Read-ahead for a burst: the flow key of a frame without the pipeline's
//! checks, so the worker can prefetch the session each packet will need
//! before it processes the burst, and the burst's memory misses overlap.
//! A wrong or missing key costs nothing but the hint: the pipeline parses
//! and checks every frame itself.

use crate::addr::Addr;
use crate::session::{Endpoint, FlowKey};

const ETH: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const TCP: u8 = 6;
const UDP: u8 = 17;

/// The key the pipeline looks an untagged IPv4/IPv6 TCP or UDP frame up
/// by (source, destination, protocol as the packet carries them); `None`
/// for anything else or a frame too short to tell.
#[inline]
#[must_use]
pub fn peek_key(frame: &[u8]) -> Option<FlowKey> {
    let ethertype = frame.get(12..14)?;
    let (src, dst, proto, l4) = if ethertype == ETHERTYPE_IPV4 {
        let ip = frame.get(ETH..ETH + 20)?;
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        (Addr::v4(ip[12..16].try_into().ok()?), Addr::v4(ip[16..20].try_into().ok()?), ip[9], ETH + ihl)
    } else if ethertype == ETHERTYPE_IPV6 {
        let ip = frame.get(ETH..ETH + 40)?;
        (Addr::v6(ip[8..24].try_into().ok()?), Addr::v6(ip[24..40].try_into().ok()?), ip[6], ETH + 40)
    } else {
        return None;
    };
    if proto != TCP && proto != UDP {
        return None;
    }
    let ports = frame.get(l4..l4 + 4)?;
    Some(FlowKey {
        src: Endpoint::at(src, u16::from_be_bytes([ports[0], ports[1]])),
        dst: Endpoint::at(dst, u16::from_be_bytes([ports[2], ports[3]])),
        proto,
    })
}
