//! Provisioning: from where the rule comes (an ISP profile, an explicit rule, or RFC 7598
//! options from the DHCPv6 client) and the End-user prefix to the CE's MAP parameters.
//! One place for `mape calc`, `mape run` and `mape replay` to agree on.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::dhcpv6::{domains_from_option_area, Dhcpv6Error};
use crate::domain::MapDomain;
use crate::prefix::Ipv6Net;
use crate::profile::{ProfileError, ProfileSet, DEFAULT_PROFILE_DIR};
use crate::rule::{CeMapping, IidFormat, MapError, Rule, RuleError, RuleSpec};

/// Where the MAP rule comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// An ISP profile, by name; extra profiles may come from `profiles_dir`.
    Profile {
        /// Profile name (`v6plus`, `biglobe`, `ocn`, ...).
        name: String,
        /// Directory of extra `*.toml` profiles (default /etc/mape/profiles when it exists).
        profiles_dir: Option<PathBuf>,
    },
    /// A rule given explicitly.
    Explicit(RuleSpec),
    /// The RFC 7598 option area (S46_CONT_MAPE ...) as raw bytes.
    Dhcpv6(Vec<u8>),
}

/// The CE's MAP parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The Basic Mapping Rule that matched.
    pub bmr: Rule,
    /// The whole domain (BMR, FMRs, BRs, IID format).
    pub domain: MapDomain,
    /// IPv4 address/prefix, PSID, port set and CE IPv6 address.
    pub mapping: CeMapping,
    /// The profile name, when a profile gave the rule.
    pub profile: Option<String>,
    /// Where the values come from, in words ("community-measured", "dhcpv6", ...).
    pub origin: String,
}

/// Why provisioning failed; each names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// Profile lookup or selection failed.
    #[error("{0}")]
    Profile(#[from] ProfileError),
    /// The profile table does not cover the prefix.
    #[error("{0}; give the rule explicitly (IPv6 prefix, IPv4 prefix, EA-bits length)")]
    NotCovered(ProfileError),
    /// The explicit rule is impossible.
    #[error("impossible rule: {0}")]
    Rule(#[from] RuleError),
    /// The End-user prefix does not fit the rule.
    #[error("prefix {0}")]
    Map(#[from] MapError),
    /// RFC 7598 options are malformed.
    #[error("DHCPv6 options: {0}")]
    Dhcpv6(#[from] Dhcpv6Error),
    /// The RFC 7598 options hold no MAP-E container.
    #[error("DHCPv6 options: no S46_CONT_MAPE (option 94) in the option area")]
    NoContainer,
    /// No DHCPv6 rule covers the prefix.
    #[error("prefix {0} is not covered by any S46_RULE in the DHCPv6 options")]
    NotCoveredDhcpv6(Ipv6Net),
    /// The profiles directory is unusable.
    #[error("profiles directory {0}: not a directory")]
    ProfilesDir(String),
}

/// Loads the built-in profiles plus those in `dir` (or the default directory when present).
pub fn profile_set(dir: Option<&Path>) -> Result<ProfileSet, ProvisionError> {
    let mut set = ProfileSet::builtin()?;
    match dir {
        Some(d) if !d.is_dir() => return Err(ProvisionError::ProfilesDir(d.display().to_string())),
        Some(d) => set.load_dir(d)?,
        None => set.load_dir(Path::new(DEFAULT_PROFILE_DIR))?,
    }
    Ok(set)
}

/// Derives the CE's parameters for `end_user` (an End-user prefix or the CE /128 address)
/// from `source`. `iid` overrides the interface-identifier format; `br` overrides the BRs.
pub fn provision(
    source: &RuleSource,
    end_user: &Ipv6Net,
    iid: Option<IidFormat>,
    br: &[Ipv6Addr],
) -> Result<Provisioned, ProvisionError> {
    let mut p = match source {
        RuleSource::Profile { name, profiles_dir } => {
            let set = profile_set(profiles_dir.as_deref())?;
            let profile = set.get(name)?;
            let m = profile.select(end_user).map_err(|e| match e {
                e @ ProfileError::NotCovered { .. } => ProvisionError::NotCovered(e),
                ProfileError::Map { source, .. } => ProvisionError::Map(source),
                other => ProvisionError::Profile(other),
            })?;
            let mut domain = m.domain;
            let mut mapping = m.mapping;
            if let Some(iid) = iid {
                mapping = m.rule.map_prefix(end_user, iid)?;
                domain = MapDomain::new(domain.rules().to_vec(), domain.br().to_vec(), iid)
                    .with_br_sources(domain.br_sources().to_vec());
            }
            Provisioned {
                bmr: m.rule,
                domain,
                mapping,
                profile: Some(profile.name.clone()),
                origin: m.source.to_string(),
            }
        }
        RuleSource::Explicit(spec) => {
            let rule = Rule::new(*spec)?;
            let iid = iid.unwrap_or_default();
            let mapping = rule.map_prefix(end_user, iid)?;
            Provisioned {
                bmr: rule,
                domain: MapDomain::new(vec![rule], br.to_vec(), iid),
                mapping,
                profile: None,
                origin: "explicit rule".into(),
            }
        }
        RuleSource::Dhcpv6(bytes) => {
            let iid = iid.unwrap_or_default();
            let domains = domains_from_option_area(bytes, iid)?;
            if domains.is_empty() {
                return Err(ProvisionError::NoContainer);
            }
            // Longest match across every domain's rules (RFC 7597 §5; several containers,
            // RFC 7598 §5).
            let (domain, rule) = domains
                .iter()
                .filter_map(|d| d.bmr(end_user).map(|r| (d, r)))
                .max_by_key(|(_, r)| r.ipv6_prefix().len())
                .ok_or(ProvisionError::NotCoveredDhcpv6(*end_user))?;
            let mapping = rule.map_prefix(end_user, iid)?;
            Provisioned {
                bmr: *rule,
                domain: domain.clone(),
                mapping,
                profile: None,
                origin: "dhcpv6".into(),
            }
        }
    };
    if !br.is_empty() {
        let d = &p.domain;
        p.domain = MapDomain::new(d.rules().to_vec(), br.to_vec(), d.iid_format())
            .with_br_sources(d.br_sources().to_vec());
    }
    Ok(p)
}

/// Parses hex text (whitespace, `:` and `-` ignored; optional `0x`) into bytes, as DHCPv6
/// clients hand options over.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b':' && *c != b'-')
        .collect();
    if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "not hex: unexpected character {:?}",
            char::from(*bad)
        ));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!("not hex: odd number of digits ({})", digits.len()));
    }
    let val = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    };
    Ok(digits
        .chunks_exact(2)
        .map(|p| (val(p[0]) << 4) | val(p[1]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn profile_explicit_and_dhcpv6_agree_on_rfc_example_1() {
        let prefix = net("2001:db8:12:3400::/56");
        let spec = RuleSpec::new(net("2001:db8::/40"), "192.0.2.0/24".parse().unwrap(), 16);
        let a = provision(&RuleSource::Explicit(spec), &prefix, None, &[]).unwrap();
        assert_eq!(
            a.mapping.ce_ipv6.to_string(),
            "2001:db8:12:3400:0:c000:212:34"
        );
        let mut area = Vec::new();
        crate::dhcpv6::MapeContainer {
            rules: vec![crate::dhcpv6::S46Rule {
                fmr: false,
                ea_len: 16,
                ipv4_prefix: "192.0.2.0/24".parse().unwrap(),
                ipv6_prefix: net("2001:db8::/40"),
                port_params: Some(crate::dhcpv6::PortParams {
                    offset: 6,
                    psid_len: 8,
                    psid: 0,
                }),
            }],
            br: vec!["2001:db8:ffff::1".parse().unwrap()],
            port_params: None,
        }
        .encode(&mut area)
        .unwrap();
        let b = provision(&RuleSource::Dhcpv6(area), &prefix, None, &[]).unwrap();
        assert_eq!(a.mapping, b.mapping);
        assert_eq!(b.domain.br()[0].to_string(), "2001:db8:ffff::1");
    }

    #[test]
    fn v6plus_profile_and_errors() {
        let src = RuleSource::Profile {
            name: "v6plus".into(),
            profiles_dir: None,
        };
        let p = provision(&src, &net("240b:13:1a65:a100::/56"), None, &[]).unwrap();
        assert_eq!(p.mapping.share.port_set.count(), 240);
        assert_eq!(
            p.mapping.ce_ipv6.to_string(),
            "240b:13:1a65:a100:e:91a:6500:a100"
        );
        let err = provision(&src, &net("2001:db8::/56"), None, &[]).unwrap_err();
        assert!(
            err.to_string().contains("give the rule explicitly"),
            "{err}"
        );
        assert!(matches!(
            provision(
                &RuleSource::Dhcpv6(vec![0, 1, 0, 0]),
                &net("2001:db8::/56"),
                None,
                &[]
            ),
            Err(ProvisionError::NoContainer)
        ));
    }

    #[test]
    fn hex() {
        assert_eq!(
            parse_hex("00 5d:00-04 06 07 fe00").unwrap(),
            [0, 0x5d, 0, 4, 6, 7, 0xfe, 0]
        );
        assert!(parse_hex("0g").is_err());
        assert!(parse_hex("abc").is_err());
    }
}
