//! Rule selection by longest prefix (RFC 7597 §5.2, §8, §8.1), shared by the CE and the BR.

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_rules::Rule;

/// Longest IPv4-prefix match among `rules` (RFC 7597 §5.2, §8: FMR selection).
pub(crate) fn longest_v4(rules: &[Rule], dst: Ipv4Addr) -> Option<&Rule> {
    rules
        .iter()
        .filter(|r| r.ipv4_prefix().contains(dst))
        .max_by_key(|r| r.ipv4_prefix().len())
}

/// Longest IPv6-prefix match among `rules` (RFC 7597 §8.1: rule for a source).
pub(crate) fn longest_v6(rules: &[Rule], src: Ipv6Addr) -> Option<&Rule> {
    rules
        .iter()
        .filter(|r| r.ipv6_prefix().contains(src))
        .max_by_key(|r| r.ipv6_prefix().len())
}
