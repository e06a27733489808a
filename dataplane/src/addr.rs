//! One address type for both families, as sessions, tables and neighbours
//! store it: 16 bytes, IPv6 as is and IPv4 as the IPv4-mapped IPv6 address
//! `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), the way DPVS's `union inet_addr`
//! and Linux's dual-stack sockets do. A flow key, a session or a template
//! thus has one layout whatever the family, and the family is a property of
//! the address ([`Addr::is_v4`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address (IPv4 stored IPv4-mapped).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The all-zero IPv6 address `::` (also what an unset address is).
    pub const UNSPECIFIED: Self = Self([0; 16]);

    /// The IPv4 address `a`, mapped.
    #[inline]
    #[must_use]
    pub const fn v4(a: [u8; 4]) -> Self {
        // `::ffff:a`, built as one 128-bit value (two wide stores where it
        // is written, not four byte stores after the constant part).
        Self((0xffff_0000_0000 | u32::from_be_bytes(a) as u128).to_be_bytes())
    }

    /// The IPv6 address `a`.
    #[inline]
    #[must_use]
    pub const fn v6(a: [u8; 16]) -> Self {
        Self(a)
    }

    /// True for an IPv4(-mapped) address.
    #[inline]
    #[must_use]
    pub fn is_v4(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff
    }

    /// The IPv4 address, if this is one.
    #[inline]
    #[must_use]
    pub fn to_v4(&self) -> Option<[u8; 4]> {
        self.is_v4().then(|| self.v4_bits())
    }

    /// The last four bytes: the IPv4 address of an IPv4 address (for code
    /// that has already checked the family).
    #[inline]
    #[must_use]
    pub fn v4_bits(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    /// Four bytes standing for the address in the schedulers' hashes: the
    /// IPv4 address itself, or the four 32-bit words of an IPv6 address
    /// XORed together (the kernel's `ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3]` in
    /// sh, dh, mh and lblc).
    #[inline]
    #[must_use]
    pub fn fold32(&self) -> [u8; 4] {
        if self.is_v4() {
            return self.v4_bits();
        }
        let w =
            |i: usize| u32::from_be_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]]);
        (w(0) ^ w(4) ^ w(8) ^ w(12)).to_be_bytes()
    }

    /// The 16 bytes.
    #[inline]
    #[must_use]
    pub const fn octets(&self) -> [u8; 16] {
        self.0
    }

    /// Both halves folded into one word (for hashing).
    #[inline]
    #[must_use]
    pub fn fold(&self) -> u64 {
        Self::fold_bytes(&self.0)
    }

    /// [`Self::fold`] of the IPv4-mapped address of `a`.
    #[inline(always)]
    #[must_use]
    pub const fn fold_v4(a: [u8; 4]) -> u64 {
        0x0000_ffff_0000_0000 | u32::from_be_bytes(a) as u64
    }

    /// [`Self::fold`] of the address with these 16 bytes.
    #[inline(always)]
    #[must_use]
    pub fn fold_bytes(a: &[u8; 16]) -> u64 {
        let hi = u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
        let lo = u64::from_be_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
        hi ^ lo
    }

    /// The standard library's view (IPv4 for a mapped address).
    #[must_use]
    pub fn ip(&self) -> IpAddr {
        match self.to_v4() {
            Some(a) => IpAddr::V4(Ipv4Addr::from(a)),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// Keeps the first `len` bits of the address *as its family counts
    /// them* (an IPv4 prefix length for an IPv4 address), clearing the rest.
    #[must_use]
    pub fn masked(&self, len: u8) -> Self {
        let (bits, skip) = if self.is_v4() {
            (u32::from(len.min(32)), 96)
        } else {
            (u32::from(len.min(128)), 0)
        };
        let keep = skip + bits;
        let mask = if keep == 0 {
            0
        } else {
            u128::MAX << (128 - keep)
        };
        Self((u128::from_be_bytes(self.0) & mask).to_be_bytes())
    }
}

impl From<[u8; 4]> for Addr {
    fn from(a: [u8; 4]) -> Self {
        Self::v4(a)
    }
}

impl From<[u8; 16]> for Addr {
    fn from(a: [u8; 16]) -> Self {
        Self::v6(a)
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Self::v4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Self::v4(v4.octets()),
                None => Self::v6(a.octets()),
            },
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Self {
        Self::v4(a.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Self {
        IpAddr::V6(a).into()
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_convert_and_print() {
        let a = Addr::v4([10, 77, 0, 100]);
        assert!(a.is_v4());
        assert_eq!(
            (a.to_v4(), a.to_string()),
            (Some([10, 77, 0, 100]), "10.77.0.100".into())
        );
        let b: Addr = "fd77::100".parse::<IpAddr>().unwrap().into();
        assert!(!b.is_v4());
        assert_eq!((b.to_v4(), b.to_string()), (None, "fd77::100".into()));
        assert_eq!(
            Addr::from("::ffff:10.0.0.1".parse::<IpAddr>().unwrap()),
            Addr::v4([10, 0, 0, 1])
        );
        assert!(!Addr::UNSPECIFIED.is_v4());
    }

    proptest::proptest! {
        /// `v4` (one 128-bit value) is the RFC 4291 mapping, as std's.
        #[test]
        fn v4_is_the_mapped_address(a: [u8; 4]) {
            let mapped = std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
            proptest::prop_assert_eq!(Addr::v4(a).0, mapped);
            proptest::prop_assert_eq!(Addr::v4(a).to_v4(), Some(a));
        }
    }

    #[test]
    fn masks_count_bits_in_the_address_family() {
        assert_eq!(
            Addr::v4([192, 168, 7, 42]).masked(24),
            Addr::v4([192, 168, 7, 0])
        );
        assert_eq!(
            Addr::v4([192, 168, 7, 42]).masked(0),
            Addr::v4([0, 0, 0, 0])
        );
        assert_eq!(
            Addr::v4([192, 168, 7, 42]).masked(32),
            Addr::v4([192, 168, 7, 42])
        );
        let v6: Addr = "2001:db8:1:2::99".parse::<IpAddr>().unwrap().into();
        assert_eq!(v6.masked(64).to_string(), "2001:db8:1:2::");
        assert_eq!(v6.masked(128), v6);
    }
}
