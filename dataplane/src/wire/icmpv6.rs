//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages (RFC 4861) the
//! data plane answers: echo, and neighbour solicitation / advertisement.
//!
//! ```text
//! NS / NA:
//! +--------+--------+-----------------+
//! |  type  |  code  |    checksum     |
//! +--------+--------+-----------------+
//! | R S O | reserved (NA) / reserved  |
//! +-----------------------------------+
//! |        target address (16)        |
//! +-----------------------------------+
//! | options: type, len (8-byte units), data; 1 = source, 2 = target
//! | link-layer address
//! ```
//!
//! The checksum covers an IPv6 pseudo-header (next header 58).

use super::MacAddr;
use crate::checksum;

/// IPv6 next-header number of ICMPv6.
pub const NEXT_HEADER: u8 = 58;
/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Neighbor Solicitation.
pub const NEIGHBOR_SOLICITATION: u8 = 135;
/// Neighbor Advertisement.
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Source link-layer address option.
pub const OPT_SOURCE_LL: u8 = 1;
/// Target link-layer address option.
pub const OPT_TARGET_LL: u8 = 2;
/// NS/NA length without options.
pub const ND_LEN: usize = 24;
/// NA length with a target link-layer address option.
pub const NA_WITH_TLLA_LEN: usize = ND_LEN + 8;
/// NA flag: solicited.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: override.
pub const NA_OVERRIDE: u8 = 0x20;
/// Hop limit every ND message carries (RFC 4861 §7.1: anything else is forged).
pub const ND_HOP_LIMIT: u8 = 255;

/// The ICMPv6 checksum of `msg` (its checksum field taken as is) between
/// `src` and `dst`: fill with the field zeroed; verify to 0.
#[must_use]
pub fn checksum(msg: &[u8], src: [u8; 16], dst: [u8; 16]) -> u16 {
    let acc = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, msg.len() as u32);
    checksum::finish(checksum::sum(msg, acc))
}

/// Fills `msg`'s checksum field.
pub fn fill_checksum(msg: &mut [u8], src: [u8; 16], dst: [u8; 16]) {
    msg[2..4].fill(0);
    let c = checksum(msg, src, dst);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// The target address of an NS or NA (`None` if too short).
#[must_use]
pub fn nd_target(msg: &[u8]) -> Option<[u8; 16]> {
    msg.get(8..24).map(|t| t.try_into().unwrap_or([0; 16]))
}

/// The link-layer address in the first option of `kind` after the fixed
/// NS/NA part, if any (malformed options end the search).
#[must_use]
pub fn link_layer_option(msg: &[u8], kind: u8) -> Option<MacAddr> {
    let mut opts = msg.get(ND_LEN..)?;
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == kind && len >= 8 {
            return opts[2..8].try_into().ok();
        }
        opts = &opts[len..];
    }
    None
}

/// Writes a solicited Neighbor Advertisement for `target` at `mac` into
/// `msg` (at least [`ND_LEN`] bytes; the target link-layer option is added
/// when [`NA_WITH_TLLA_LEN`] fit). Returns the message length; the
/// checksum is left to [`fill_checksum`].
pub fn emit_na(msg: &mut [u8], target: [u8; 16], mac: MacAddr) -> usize {
    msg[0] = NEIGHBOR_ADVERTISEMENT;
    msg[1] = 0;
    msg[2..4].fill(0);
    msg[4] = NA_SOLICITED | NA_OVERRIDE;
    msg[5..8].fill(0);
    msg[8..24].copy_from_slice(&target);
    if msg.len() < NA_WITH_TLLA_LEN {
        return ND_LEN;
    }
    msg[24] = OPT_TARGET_LL;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&mac);
    NA_WITH_TLLA_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn na_answers_with_the_target_and_a_valid_checksum() {
        let (us, peer) = ([0xfd; 16], [0xfe; 16]);
        let mut m = [0u8; 32];
        let n = emit_na(&mut m, us, [2, 0, 0, 0, 0, 2]);
        fill_checksum(&mut m[..n], us, peer);
        assert_eq!(n, 32);
        assert_eq!(checksum(&m, us, peer), 0);
        assert_eq!(
            (nd_target(&m), link_layer_option(&m, OPT_TARGET_LL)),
            (Some(us), Some([2, 0, 0, 0, 0, 2]))
        );
        assert_eq!(m[4], 0x60, "solicited, override, not a router");
        let mut short = [0u8; 24];
        assert_eq!(emit_na(&mut short, us, [2; 6]), 24);
    }

    #[test]
    fn options_are_walked_and_bad_lengths_stop_the_walk() {
        let mut m = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xfd; 16]);
        m.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]); // nonce (DAD)
        m.extend_from_slice(&[OPT_SOURCE_LL, 1, 2, 0, 0, 0, 0, 0x10]);
        assert_eq!(
            link_layer_option(&m, OPT_SOURCE_LL),
            Some([2, 0, 0, 0, 0, 0x10])
        );
        assert_eq!(link_layer_option(&m, OPT_TARGET_LL), None);
        m[25] = 0;
        assert_eq!(
            link_layer_option(&m, OPT_SOURCE_LL),
            None,
            "a zero-length option is malformed"
        );
    }
}
