//! A MAP domain: the rule table (BMR + FMRs), the BR addresses and the IID format
//! (RFC 7597 §5, §7, §8.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::prefix::Ipv6Net;
use crate::rule::{CeMapping, IidFormat, MapError, Rule};

/// The outcome of the RFC 7597 §8.1 source check on a decapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceCheck {
    /// The IPv6 source is an accepted BR address: not checked further (§8.1).
    FromBr,
    /// The IPv6 source is a CE address and the inner IPv4 source address and port match
    /// what the rule derives from it.
    Valid,
    /// No rule covers the IPv6 source (and it is not a BR): discard.
    NoRule,
    /// The inner IPv4 source or port does not match the IPv6 source: silently discard and
    /// count (§8.1).
    Spoofed,
}

/// One MAP domain as a CE (or BR) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDomain {
    rules: Vec<Rule>,
    br: Vec<Ipv6Addr>,
    br_sources: Vec<Ipv6Addr>,
    iid_format: IidFormat,
}

impl MapDomain {
    /// A domain with `rules`, BR address(es) `br` and CE IID layout `iid_format`. The
    /// accepted BR source set starts as `br` (§7 anycast: the BR sources from it).
    pub fn new(rules: Vec<Rule>, br: Vec<Ipv6Addr>, iid_format: IidFormat) -> Self {
        Self {
            rules,
            br_sources: br.clone(),
            br,
            iid_format,
        }
    }

    /// Adds addresses the BR may source decapsulated traffic from besides its configured
    /// address (e.g. BIGLOBE replies from 2001:260:700:1::1:275 while the DMR differs).
    pub fn with_br_sources(mut self, extra: impl IntoIterator<Item = Ipv6Addr>) -> Self {
        for a in extra {
            if !self.br_sources.contains(&a) {
                self.br_sources.push(a);
            }
        }
        self
    }

    /// The rule table.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The BR addresses (§7); the first is the default tunnel destination.
    pub fn br(&self) -> &[Ipv6Addr] {
        &self.br
    }

    /// Addresses accepted as BR sources (§8.1 exempts them from the source check).
    pub fn br_sources(&self) -> &[Ipv6Addr] {
        &self.br_sources
    }

    /// The CE IID layout.
    pub fn iid_format(&self) -> IidFormat {
        self.iid_format
    }

    /// The BMR for an End-user prefix: the rule whose IPv6 prefix is the longest match
    /// (RFC 7597 §5, §5.2). Ties go to the first rule listed.
    pub fn bmr(&self, end_user: &Ipv6Net) -> Option<&Rule> {
        longest_v6(&self.rules, end_user)
    }

    /// Maps an End-user prefix (or /128 CE address) through its BMR (RFC 7597 §5.2, §6).
    pub fn map(&self, end_user: &Ipv6Net) -> Result<CeMapping, MapError> {
        self.bmr(end_user)
            .ok_or(MapError::NoRule { prefix: *end_user })?
            .map_prefix(end_user, self.iid_format)
    }

    /// The FMR for an IPv4 destination: longest match of the rule IPv4 prefix among
    /// forwarding rules (RFC 7597 §5.3, §8).
    pub fn fmr(&self, dst: Ipv4Addr) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.is_fmr() && r.ipv4_prefix().contains(dst))
            .fold(None, |best: Option<&Rule>, r| match best {
                Some(b) if b.ipv4_prefix().len() >= r.ipv4_prefix().len() => Some(b),
                _ => Some(r),
            })
    }

    /// The outer IPv6 destination for an IPv4 packet to `(dst, dst_port)` (RFC 7597 §8):
    /// the peer CE when an FMR matches and the port belongs to a CE, else the first BR.
    /// `None` only when there is neither.
    pub fn tunnel_destination(&self, dst: Ipv4Addr, dst_port: u16) -> Option<Ipv6Addr> {
        self.fmr(dst)
            .and_then(|r| r.ce_ipv6_for(dst, dst_port, self.iid_format).ok())
            .or_else(|| self.br.first().copied())
    }

    /// The rule for an IPv6 source address: longest match (RFC 7597 §8.1).
    pub fn rule_for_source(&self, src: Ipv6Addr) -> Option<&Rule> {
        let net = Ipv6Net::new(src, 128)?;
        longest_v6(&self.rules, &net)
    }

    /// RFC 7597 §8.1 source validation of a decapsulated packet.
    pub fn check_source(
        &self,
        ipv6_src: Ipv6Addr,
        ipv4_src: Ipv4Addr,
        src_port: u16,
    ) -> SourceCheck {
        if self.br_sources.contains(&ipv6_src) {
            return SourceCheck::FromBr;
        }
        match self.rule_for_source(ipv6_src) {
            None => SourceCheck::NoRule,
            Some(r) if r.source_is_valid(ipv6_src, ipv4_src, src_port, self.iid_format) => {
                SourceCheck::Valid
            }
            Some(_) => SourceCheck::Spoofed,
        }
    }
}

/// Longest match of `net`'s address against the rules' IPv6 prefixes. A prefix shorter than
/// the matching rule prefix still selects it, so that mapping reports why it fails.
pub fn longest_v6<'a>(rules: &'a [Rule], net: &Ipv6Net) -> Option<&'a Rule> {
    rules
        .iter()
        .filter(|r| r.ipv6_prefix().contains(net.addr()))
        .fold(None, |best: Option<&Rule>, r| match best {
            Some(b) if b.ipv6_prefix().len() >= r.ipv6_prefix().len() => Some(b),
            _ => Some(r),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::Ipv4Net;
    use crate::rule::RuleSpec;
    use proptest::prelude::*;

    fn rule(v6: &str, v4: &str, ea: u8, fmr: bool) -> Rule {
        let mut s = RuleSpec::new(v6.parse().unwrap(), v4.parse().unwrap(), ea);
        s.forwarding = fmr;
        Rule::new(s).unwrap()
    }

    fn ex_domain() -> MapDomain {
        MapDomain::new(
            vec![rule("2001:db8::/40", "192.0.2.0/24", 16, true)],
            vec!["2001:db8:ffff::1".parse().unwrap()],
            IidFormat::Rfc7597,
        )
    }

    /// RFC 7597 App. A ex. 3 (CE with FMR, §5.3): a CE sending to 192.0.2.18:1232 in the
    /// same domain uses the FMR and reaches 2001:db8:12:3400:0:c000:212:34 directly; other
    /// IPv4 destinations go to the BR (§8, hub default route).
    #[test]
    fn rfc7597_appendix_a_example_3_fmr() {
        let d = ex_domain();
        assert_eq!(
            d.tunnel_destination(Ipv4Addr::new(192, 0, 2, 18), 1232),
            Some("2001:db8:12:3400:0:c000:212:34".parse().unwrap())
        );
        assert_eq!(
            d.tunnel_destination(Ipv4Addr::new(1, 2, 3, 4), 80),
            Some("2001:db8:ffff::1".parse().unwrap())
        );
        // Without F flag (BMR only), everything goes to the BR.
        let hub = MapDomain::new(
            vec![rule("2001:db8::/40", "192.0.2.0/24", 16, false)],
            vec!["2001:db8:ffff::1".parse().unwrap()],
            IidFormat::Rfc7597,
        );
        assert_eq!(
            hub.tunnel_destination(Ipv4Addr::new(192, 0, 2, 18), 1232),
            Some("2001:db8:ffff::1".parse().unwrap())
        );
    }

    /// RFC 7597 §8.1 source validation (App. A ex. 2 addresses).
    #[test]
    fn source_validation() {
        let d = ex_domain().with_br_sources(["2001:db8:ffff::2".parse().unwrap()]);
        let ce: Ipv6Addr = "2001:db8:12:3400:0:c000:212:34".parse().unwrap();
        let v4 = Ipv4Addr::new(192, 0, 2, 18);
        assert_eq!(d.check_source(ce, v4, 1232), SourceCheck::Valid);
        assert_eq!(d.check_source(ce, v4, 1236), SourceCheck::Spoofed);
        assert_eq!(
            d.check_source(ce, Ipv4Addr::new(192, 0, 2, 19), 1232),
            SourceCheck::Spoofed
        );
        assert_eq!(
            d.check_source("2001:db8:ffff::1".parse().unwrap(), v4, 1),
            SourceCheck::FromBr
        );
        assert_eq!(
            d.check_source("2001:db8:ffff::2".parse().unwrap(), v4, 1),
            SourceCheck::FromBr
        );
        assert_eq!(
            d.check_source("2001:db9::1".parse().unwrap(), v4, 1232),
            SourceCheck::NoRule
        );
    }

    #[test]
    fn bmr_longest_match_and_no_rule() {
        let d = MapDomain::new(
            vec![
                rule("2001:db8::/32", "10.0.0.0/8", 24, false),
                rule("2001:db8::/40", "192.0.2.0/24", 16, false),
            ],
            vec![],
            IidFormat::Rfc7597,
        );
        let eu: Ipv6Net = "2001:db8:12:3400::/56".parse().unwrap();
        assert_eq!(d.bmr(&eu).unwrap().ipv6_prefix().len(), 40);
        let eu2: Ipv6Net = "2001:db8:100:3400::/56".parse().unwrap();
        assert_eq!(d.bmr(&eu2).unwrap().ipv6_prefix().len(), 32);
        let out: Ipv6Net = "2001:db9::/56".parse().unwrap();
        assert_eq!(d.map(&out), Err(MapError::NoRule { prefix: out }));
        assert_eq!(d.tunnel_destination(Ipv4Addr::new(1, 1, 1, 1), 1), None);
    }

    proptest! {
        /// The BMR is a containing rule, and no containing rule is longer.
        #[test]
        fn bmr_is_the_longest_match(lens in proptest::collection::vec(0u8..=64, 1..8), addr in any::<u128>(), other in any::<u128>(), mix in any::<u128>()) {
            // Rules are prefixes either of `addr` or of unrelated addresses.
            let rules: Vec<Rule> = lens.iter().enumerate().map(|(i, &n)| {
                let base = if (mix >> i) & 1 == 1 { addr } else { other.rotate_left(i as u32) };
                Rule::new(RuleSpec::new(Ipv6Net::new(Ipv6Addr::from(base), n).unwrap(), Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).unwrap(), 0)).unwrap()
            }).collect();
            let eu = Ipv6Net::new(Ipv6Addr::from(addr), 64).unwrap();
            let d = MapDomain::new(rules.clone(), vec![], IidFormat::Rfc7597);
            let best = rules.iter().filter(|r| r.ipv6_prefix().covers(&eu)).map(|r| r.ipv6_prefix().len()).max();
            prop_assert_eq!(d.bmr(&eu).map(|r| r.ipv6_prefix().len()), best);
        }
    }
}
