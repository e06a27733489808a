//! Per-service access lists: allow and deny rules on client prefixes
//! (IPv4 and IPv6), checked on a new connection before its session is
//! created.
//!
//! **First match wins**, in the order the rules are written, as in an
//! nftables chain, a Cisco/Juniper ACL or a firewall's rule list: the
//! operator orders rules from specific to general (`allow 10.1.2.0/24`
//! before `deny 10.0.0.0/8`). No rule matching means **allowed** (an
//! nftables chain's default `accept` policy), so an allow list ends with
//! `deny 0.0.0.0/0` (and `deny ::/0`). Most-specific-wins was rejected: it
//! makes the meaning of a list independent of its order, which is not what
//! operators reading a rule list from the top expect, and it cannot
//! express "deny this /16 except where an earlier rule says otherwise"
//! any better.
//!
//! A prefix matches only clients of its own family: an IPv4 prefix never
//! matches an IPv6 client (an IPv4-mapped `::ffff:a.b.c.d` client is IPv4,
//! see [`crate::addr`]), and `::/0` matches every IPv6 client and no IPv4
//! one.
//!
//! The rules live in the service of the immutable [`crate::tables`]
//! snapshot: a worker walks a short slice, with no lock and no allocation.
//! A denied connection is dropped silently (`acl_deny`), as DPVS's
//! blacklist and an nftables `drop` do: an ACL under attack answers
//! nothing. Only new connections are checked; an edit never cuts an
//! established session.

use std::fmt;

use crate::addr::Addr;

/// An address prefix of either family: the address (its host bits clear)
/// and the prefix length as its family counts it (0..=32 for IPv4,
/// 0..=128 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: Addr,
    len: u8,
}

impl Prefix {
    /// `addr/len`, with the host bits of `addr` cleared. `None` if `len`
    /// is longer than the family's address.
    #[must_use]
    pub fn new(addr: Addr, len: u8) -> Option<Self> {
        let max = if addr.is_v4() { 32 } else { 128 };
        (len <= max).then(|| Self {
            addr: addr.masked(len),
            len,
        })
    }

    /// The prefix's address (host bits clear).
    #[must_use]
    pub fn addr(&self) -> Addr {
        self.addr
    }

    /// The prefix length.
    #[must_use]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for a prefix of length 0 (every address of its family).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if `client` is inside the prefix (and of its family).
    #[inline]
    #[must_use]
    pub fn contains(&self, client: Addr) -> bool {
        client.is_v4() == self.addr.is_v4() && client.masked(self.len) == self.addr
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr.ip(), self.len)
    }
}

/// What a rule does to a matching client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The connection goes on (to the limits, then scheduling).
    Allow,
    /// The connection is dropped (`acl_deny`).
    Deny,
}

impl Action {
    /// `allow` or `deny`, as the config and rvsadm write it.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    /// The action named `word`.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// One rule: an action for a prefix, and where its hits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub action: Action,
    /// The clients it applies to.
    pub prefix: Prefix,
    /// Index of its hit counter (see [`crate::limits::MAX_COUNTERS`]),
    /// given by control; stable while the rule exists.
    pub counter: u16,
}

/// A service's rules, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// The rules; the first that matches decides.
    pub rules: Vec<Rule>,
}

impl Acl {
    /// The first rule matching `client`, if any (none: allowed).
    #[inline]
    #[must_use]
    pub fn first_match(&self, client: Addr) -> Option<&Rule> {
        self.rules.iter().find(|r| r.prefix.contains(client))
    }

    /// True if there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(
            a.parse::<std::net::IpAddr>().unwrap().into(),
            l.parse().unwrap(),
        )
        .unwrap()
    }

    fn a(s: &str) -> Addr {
        s.parse::<std::net::IpAddr>().unwrap().into()
    }

    fn rule(action: Action, s: &str) -> Rule {
        Rule {
            action,
            prefix: p(s),
            counter: 0,
        }
    }

    #[test]
    fn prefixes_match_their_family_only() {
        assert!(p("10.0.0.0/8").contains(a("10.200.1.2")));
        assert!(!p("10.0.0.0/8").contains(a("11.0.0.1")));
        assert!(p("0.0.0.0/0").contains(a("192.0.2.1")));
        assert!(!p("0.0.0.0/0").contains(a("2001:db8::1")));
        assert!(p("::/0").contains(a("2001:db8::1")));
        assert!(!p("::/0").contains(a("192.0.2.1")), "an IPv4 client");
        assert!(p("2001:db8:1::/48").contains(a("2001:db8:1:ffff::9")));
        assert!(!p("2001:db8:1::/48").contains(a("2001:db8:2::9")));
        assert!(p("192.0.2.7/32").contains(a("192.0.2.7")));
        assert!(!p("192.0.2.7/32").contains(a("192.0.2.8")));
    }

    #[test]
    fn host_bits_are_cleared_and_lengths_checked() {
        assert_eq!(p("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert!(Prefix::new(a("10.0.0.0"), 33).is_none());
        assert!(Prefix::new(a("::"), 129).is_none());
        assert!(Prefix::new(a("::"), 128).is_some());
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let acl = Acl {
            rules: vec![
                rule(Action::Allow, "10.1.2.0/24"),
                rule(Action::Deny, "10.0.0.0/8"),
                rule(Action::Allow, "10.1.0.0/16"),
            ],
        };
        assert_eq!(
            acl.first_match(a("10.1.2.9")).map(|r| r.action),
            Some(Action::Allow)
        );
        // The /16 allow comes after the /8 deny: never reached.
        assert_eq!(
            acl.first_match(a("10.1.3.9")).map(|r| r.action),
            Some(Action::Deny)
        );
        assert!(
            acl.first_match(a("192.0.2.1")).is_none(),
            "no match: allowed"
        );
    }

    /// The reference: bit by bit over the family's bits.
    fn naive_contains(prefix: [u8; 16], len: u8, v4: bool, client: [u8; 16], cv4: bool) -> bool {
        if v4 != cv4 {
            return false;
        }
        let skip = if v4 { 96 } else { 0 };
        (0..usize::from(len)).all(|i| {
            let b = skip + i;
            (prefix[b / 8] >> (7 - b % 8)) & 1 == (client[b / 8] >> (7 - b % 8)) & 1
        })
    }

    fn any_addr() -> impl Strategy<Value = Addr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(Addr::v4),
            any::<[u8; 16]>().prop_map(Addr::v6),
        ]
    }

    proptest! {
        #[test]
        fn contains_agrees_with_a_bitwise_reference(
            base in any_addr(), len in 0u8..=128, client in any_addr(), flip in 0u32..128
        ) {
            let len = if base.is_v4() { len % 33 } else { len };
            let pre = Prefix::new(base, len).unwrap();
            // A client near the prefix too: the base with one bit flipped.
            let mut near = base.octets();
            let bits: u32 = if base.is_v4() { 32 } else { 128 };
            let bit = (128 - bits + flip % bits) as usize;
            near[bit / 8] ^= 1 << (7 - bit % 8);
            for c in [client, Addr(near), base] {
                prop_assert_eq!(
                    pre.contains(c),
                    naive_contains(base.octets(), len, base.is_v4(), c.octets(), c.is_v4())
                );
            }
        }

        #[test]
        fn first_match_is_the_first_rule_that_contains(
            rules in proptest::collection::vec((any::<bool>(), any::<[u8; 4]>(), 0u8..=32), 0..8),
            client in any::<[u8; 4]>()
        ) {
            let acl = Acl { rules: rules.iter().enumerate().map(|(i, (allow, a, l))| Rule {
                action: if *allow { Action::Allow } else { Action::Deny },
                prefix: Prefix::new(Addr::v4(*a), *l).unwrap(),
                counter: i as u16,
            }).collect() };
            let c = Addr::v4(client);
            let want = acl.rules.iter().position(|r| r.prefix.contains(c));
            prop_assert_eq!(acl.first_match(c).map(|r| usize::from(r.counter)), want);
        }
    }
}
