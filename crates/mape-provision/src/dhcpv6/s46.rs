//! The RFC 7598 options of a DHCPv6 Reply to MAP parameters. Nothing is parsed here: the
//! OPTION_S46_CONT_MAPE values are handed, as an option area, to mape-rules' one S46 codec
//! ([`mape_rules::dhcpv6`]) through [`mape_rules::provision`], as a hex file would be.

use std::net::Ipv6Addr;

use mape_rules::dhcpv6::OPTION_S46_CONT_MAPE;
use mape_rules::{provision, IidFormat, Ipv6Net, ProvisionError, Provisioned, RuleSource};

use super::machine::{Information, Lease};

/// Appends one OPTION_S46_CONT_MAPE (RFC 7598 §5) with `value` to `area`, header included.
/// A value over 65535 bytes cannot have arrived in one option; it is not appended.
pub(crate) fn reframe(value: &[u8], area: &mut Vec<u8>) {
    let Ok(len) = u16::try_from(value.len()) else {
        return;
    };
    area.extend_from_slice(&OPTION_S46_CONT_MAPE.to_be_bytes());
    area.extend_from_slice(&len.to_be_bytes());
    area.extend_from_slice(value);
}

impl Lease {
    /// Whether the server sent at least one OPTION_S46_CONT_MAPE.
    pub fn has_s46(&self) -> bool {
        !self.s46.is_empty()
    }

    /// The MAP parameters for the End-user prefix `end_user` (default: the delegated
    /// prefix) from the lease's S46 options: the BMR is the longest rule match (RFC 7597
    /// §5). `iid` is the CE interface-ID layout (RFC 7598 does not carry it; default RFC
    /// 7597 §6); a non-empty `br` replaces the S46_BR addresses. `origin` is `"dhcpv6"`.
    pub fn provision(
        &self,
        end_user: Option<&Ipv6Net>,
        iid: Option<IidFormat>,
        br: &[Ipv6Addr],
    ) -> Result<Provisioned, ProvisionError> {
        provision(
            &RuleSource::Dhcpv6(self.s46.clone()),
            end_user.unwrap_or(&self.prefix.prefix),
            iid,
            br,
        )
    }
}

impl Information {
    /// Whether the server sent at least one OPTION_S46_CONT_MAPE.
    pub fn has_s46(&self) -> bool {
        !self.s46.is_empty()
    }

    /// The MAP parameters for the End-user prefix `end_user` (on an RA-only line: the
    /// WAN's /64, or `[map] prefix`), as [`Lease::provision`] does; nothing is delegated,
    /// so the prefix must be given.
    pub fn provision(
        &self,
        end_user: &Ipv6Net,
        iid: Option<IidFormat>,
        br: &[Ipv6Addr],
    ) -> Result<Provisioned, ProvisionError> {
        provision(&RuleSource::Dhcpv6(self.s46.clone()), end_user, iid, br)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reframed_area_is_what_the_hex_file_path_reads() {
        // RFC 7598 §5 container with RFC 7597 Appendix A example 1's rule and BR.
        let value = mape_rules::provision::parse_hex(
            "0059 000d 00 10 18 c0000200 28 20010db800
             005a 0010 20010db8ffff00000000000000000001",
        )
        .unwrap();
        let mut area = Vec::new();
        reframe(&value, &mut area);
        assert_eq!(&area[..4], &[0, 94, 0, value.len() as u8]);
        let p = provision(
            &RuleSource::Dhcpv6(area),
            &"2001:db8:12:3400::/56".parse().unwrap(),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(p.mapping.share.ipv4.to_string(), "192.0.2.18/32");
        assert_eq!(p.mapping.share.psid, Some(0x34));
        assert_eq!(p.origin, "dhcpv6");
    }
}
