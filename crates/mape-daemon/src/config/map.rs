//! Resolution of the `[map]` section into the CE's MAP rule and BR addresses (RFC 7597
//! §5): from explicit keys, a profile, or a DHCPv6 or HB46PP answer.

use std::net::Ipv6Addr;

use mape_rules::provision::parse_hex;
use mape_rules::{provision, IidFormat, Ipv4Net, Ipv6Net, Provisioned, RuleSource, RuleSpec};

use crate::provisioning::settings::{map_source, plan, Dhcpv6Mode, Hb46ppSettings, Plan, Source};

use super::{value_err, ConfigError, ConfigFile, Inputs, MapSection};

pub(super) fn parse_v6(key: &'static str, s: &str) -> Result<Ipv6Addr, ConfigError> {
    s.parse().map_err(|_| value_err(key, s, "an IPv6 address"))
}

/// Resolves `[map]` into MAP parameters.
pub fn resolve_map(map: &MapSection) -> Result<(Provisioned, Vec<Ipv6Addr>), ConfigError> {
    let prefix_text = map.prefix.as_deref().ok_or(ConfigError::Missing {
        key: "map.prefix",
        expected: "the End-user IPv6 prefix the ISP delegates (e.g. \"240b:13:1a65:a100::/56\")",
    })?;
    let prefix: Ipv6Net = prefix_text
        .parse()
        .map_err(|e| value_err("map.prefix", prefix_text, format!("an IPv6 prefix ({e})")))?;
    let (iid, br) = iid_and_br(map)?;
    let explicit = map.ipv6_prefix.is_some() || map.ipv4_prefix.is_some() || map.ea_len.is_some();
    let given = [map.profile.is_some(), explicit, map.dhcpv6_file.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given != 1 {
        return Err(value_err(
            "map",
            format!("{given} rule sources"),
            "exactly one of: profile = \"v6plus\"; ipv6_prefix + ipv4_prefix + ea_len; dhcpv6_file = \"/var/lib/mape/s46.hex\"",
        ));
    }
    let source = if let Some(name) = &map.profile {
        RuleSource::Profile {
            name: name.clone(),
            profiles_dir: map.profiles_dir.clone(),
        }
    } else if let Some(file) = &map.dhcpv6_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            value_err(
                "map.dhcpv6_file",
                file.display(),
                format!("a readable file ({e})"),
            )
        })?;
        RuleSource::Dhcpv6(parse_hex(&text).map_err(|e| {
            value_err(
                "map.dhcpv6_file",
                file.display(),
                format!("hex of the DHCPv6 option area: {e}"),
            )
        })?)
    } else {
        let (Some(v6), Some(v4), Some(ea)) = (&map.ipv6_prefix, &map.ipv4_prefix, map.ea_len)
        else {
            return Err(ConfigError::Missing {
                key: "map.ipv6_prefix/ipv4_prefix/ea_len",
                expected: "all three for an explicit rule",
            });
        };
        let v6: Ipv6Net = v6
            .parse()
            .map_err(|e| value_err("map.ipv6_prefix", v6, format!("an IPv6 prefix ({e})")))?;
        let v4: Ipv4Net = v4
            .parse()
            .map_err(|e| value_err("map.ipv4_prefix", v4, format!("an IPv4 prefix ({e})")))?;
        let mut spec = RuleSpec::new(v6, v4, ea);
        if let Some(a) = map.psid_offset {
            spec.psid_offset = a;
        }
        spec.psid_len = map.psid_len;
        spec.psid = map.psid;
        RuleSource::Explicit(spec)
    };
    let p = provision(&source, &prefix, iid, &br)?;
    with_br(map, p)
}

/// `[map] iid_format` and `[map] br`.
fn iid_and_br(map: &MapSection) -> Result<(Option<IidFormat>, Vec<Ipv6Addr>), ConfigError> {
    let iid = map
        .iid_format
        .as_deref()
        .map(|s| {
            s.parse::<IidFormat>()
                .map_err(|_| value_err("map.iid_format", s, "rfc7597 or draft03"))
        })
        .transpose()?;
    let br = map
        .br
        .iter()
        .map(|s| parse_v6("map.br", s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((iid, br))
}

/// Refuses parameters without a BR; adds `[map] br_sources`.
fn with_br(map: &MapSection, p: Provisioned) -> Result<(Provisioned, Vec<Ipv6Addr>), ConfigError> {
    if p.domain.br().is_empty() {
        return Err(ConfigError::Missing {
            key: "map.br",
            expected: "the BR's IPv6 address (the profile or DHCPv6 options gave none)",
        });
    }
    let mut sources: Vec<Ipv6Addr> = p.domain.br_sources().to_vec();
    for s in &map.br_sources {
        sources.push(parse_v6("map.br_sources", s)?);
    }
    Ok((p, sources))
}

/// The MAP parameters from mape's DHCPv6 lease: the End-user prefix is `[map] prefix`
/// when given, else the delegated prefix (RFC 7597 §5: the BMR is the rule matching it).
fn dhcpv6_map(
    map: &MapSection,
    lease: &mape_provision::dhcpv6::Lease,
) -> Result<(Provisioned, Vec<Ipv6Addr>), ConfigError> {
    let prefix: Option<Ipv6Net> = map
        .prefix
        .as_deref()
        .map(|t| {
            t.parse()
                .map_err(|e| value_err("map.prefix", t, format!("an IPv6 prefix ({e})")))
        })
        .transpose()?;
    if !lease.has_s46() {
        return Err(ConfigError::Dhcpv6(format!(
            "{} delegated, but the Reply has no OPTION_S46_CONT_MAPE (94)",
            lease.prefix.prefix
        )));
    }
    let (iid, br) = iid_and_br(map)?;
    let p = lease
        .provision(prefix.as_ref(), iid, &br)
        .map_err(|e| ConfigError::Dhcpv6(e.to_string()))?;
    with_br(map, p)
}

/// The End-user prefix: `[map] prefix` when given, else `end_user` (the WAN's address);
/// `expected` says what is missing when neither is there.
fn end_user_prefix(
    map: &MapSection,
    end_user: Option<Ipv6Net>,
    expected: &'static str,
) -> Result<Ipv6Net, ConfigError> {
    match &map.prefix {
        Some(t) => t
            .parse()
            .map_err(|e| value_err("map.prefix", t, format!("an IPv6 prefix ({e})"))),
        None => end_user.ok_or(ConfigError::Missing {
            key: "map.prefix",
            expected,
        }),
    }
}

/// The MAP parameters from a stateless DHCPv6 client's Reply (RFC 8415 §18.2.6): nothing
/// is delegated, so the End-user prefix is `[map] prefix`, else the WAN's address.
fn dhcpv6_info_map(
    map: &MapSection,
    info: &mape_provision::dhcpv6::Information,
    end_user: Option<Ipv6Net>,
) -> Result<(Provisioned, Vec<Ipv6Addr>), ConfigError> {
    let prefix = end_user_prefix(
        map,
        end_user,
        "the End-user IPv6 prefix (stateless DHCPv6 delegates none, and the WAN has no global IPv6 address to use)",
    )?;
    if !info.has_s46() {
        return Err(ConfigError::Dhcpv6(
            "the Reply to Information-request has no OPTION_S46_CONT_MAPE (94)".into(),
        ));
    }
    let (iid, br) = iid_and_br(map)?;
    let p = info
        .provision(&prefix, iid, &br)
        .map_err(|e| ConfigError::Dhcpv6(format!("{prefix}: {e}")))?;
    with_br(map, p)
}

/// The MAP parameters from an HB46PP answer for the End-user prefix (`[map] prefix`, else
/// the WAN's), with `[map] br_sources` added.
fn hb46pp_map(
    map: &MapSection,
    offer: &mape_provision::Offer,
    end_user: Option<Ipv6Net>,
) -> Result<(Provisioned, Vec<Ipv6Addr>), ConfigError> {
    let prefix = end_user_prefix(
        map,
        end_user,
        "the End-user IPv6 prefix (the WAN has no global IPv6 address to use)",
    )?;
    let p = offer
        .provision(&prefix)
        .map_err(|e| ConfigError::Hb46pp(format!("{prefix}: {e}")))?;
    let mut sources: Vec<Ipv6Addr> = p.domain.br_sources().to_vec();
    for s in &map.br_sources {
        sources.push(parse_v6("map.br_sources", s)?);
    }
    Ok((p, sources))
}

/// The CE's MAP parameters from the source `[provisioning]` chooses.
pub(super) fn ce_map(
    file: &ConfigFile,
    inputs: &dyn Fn(&ConfigFile) -> Inputs,
) -> Result<(Provisioned, Vec<Ipv6Addr>, Source, Option<Hb46ppSettings>), ConfigError> {
    match plan(file.provisioning.method, &file.map)? {
        Plan::Map => {
            let (p, s) = resolve_map(&file.map)?;
            Ok((p, s, map_source(&file.map), None))
        }
        Plan::Hb46pp { fallback_profile } => {
            let hb = file.provisioning.hb46pp.settings()?;
            let got = inputs(file);
            match &got.hb46pp {
                Some(offer) => {
                    let (p, s) = hb46pp_map(&file.map, offer, got.end_user)?;
                    Ok((p, s, Source::Hb46pp, Some(hb)))
                }
                None if fallback_profile => {
                    let (p, s) = resolve_map(&file.map)?;
                    Ok((p, s, Source::Profile, Some(hb)))
                }
                None => Err(ConfigError::Hb46pp(
                    "no answer fetched or stored yet (`mape run` fetches one at start)".into(),
                )),
            }
        }
        Plan::Dhcpv6 if file.provisioning.dhcpv6.mode == Dhcpv6Mode::Stateless => {
            file.provisioning.dhcpv6.timeout()?;
            let got = inputs(file);
            match &got.dhcpv6_info {
                Some(info) => {
                    let (p, s) = dhcpv6_info_map(&file.map, info, got.end_user)?;
                    Ok((p, s, Source::Dhcpv6, None))
                }
                None => Err(ConfigError::Dhcpv6(
                    "no Reply to Information-request obtained or stored yet (`mape run` asks the server at start)".into(),
                )),
            }
        }
        Plan::Dhcpv6 => {
            file.provisioning.dhcpv6.timeout()?;
            match &inputs(file).dhcpv6 {
                Some(lease) => {
                    let (p, s) = dhcpv6_map(&file.map, lease)?;
                    Ok((p, s, Source::Dhcpv6, None))
                }
                None => Err(ConfigError::Dhcpv6(
                    "no lease obtained or stored yet (`mape run` asks the server at start)".into(),
                )),
            }
        }
    }
}
