//! `mape calc`: MAP-E arithmetic from the command line (RFC 7597 §5–6, RFC 7598).
//!
//! Three ways to give the rule: explicitly (`--ipv6-prefix --ipv4-prefix --ea-len`), by ISP
//! profile (`--profile`), or as RFC 7598 DHCPv6 options (`--dhcpv6 HEX`). The `--json`
//! output is a contract (see /work/shared/checks/contracts.py and tests/calc.rs).

use std::io::{self, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mape_rules::profile::ProfileSet;
use mape_rules::provision::{parse_hex, profile_set};
use mape_rules::{
    provision, CeMapping, IidFormat, Ipv4Net, Ipv6Net, ProvisionError, Rule, RuleSource, RuleSpec,
};
use serde::Serialize;

/// Arguments of `mape calc`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  mape calc --prefix 2001:db8:12:3400::/56 --ipv6-prefix 2001:db8::/40 \\
            --ipv4-prefix 192.0.2.0/24 --ea-len 16
  mape calc --prefix 240b:13:1a65:a100::/56 --profile v6plus --json
  mape calc --dhcpv6 005e002d...  --prefix 2001:db8:12:3400::/56
  mape calc --list-profiles")]
pub(crate) struct CalcArgs {
    /// End-user IPv6 prefix (delegated prefix) or the CE's /128 address.
    #[arg(long, value_name = "PREFIX|ADDRESS")]
    prefix: Option<String>,
    /// Rule IPv6 prefix (BMR).
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["profile", "dhcpv6"])]
    ipv6_prefix: Option<String>,
    /// Rule IPv4 prefix.
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["profile", "dhcpv6"])]
    ipv4_prefix: Option<String>,
    /// EA-bits length o (0-48).
    #[arg(long, value_name = "BITS", conflicts_with_all = ["profile", "dhcpv6"])]
    ea_len: Option<u8>,
    /// PSID offset a (default 6, RFC 7597 §5.1).
    #[arg(long, value_name = "BITS", conflicts_with_all = ["profile", "dhcpv6"])]
    psid_offset: Option<u8>,
    /// PSID length k (default: EA-bits length minus IPv4 suffix bits).
    #[arg(long, value_name = "BITS", conflicts_with_all = ["profile", "dhcpv6"])]
    psid_len: Option<u8>,
    /// Explicit PSID where the EA bits carry none (RFC 7598 S46_PORTPARAMS); decimal or 0x hex.
    #[arg(long, value_name = "N", conflicts_with_all = ["profile", "dhcpv6"])]
    psid: Option<String>,
    /// BR IPv6 address (repeatable; overrides the profile's or DHCPv6's).
    #[arg(long, value_name = "ADDRESS")]
    br: Vec<String>,
    /// Use the draft-ietf-softwire-map-03 interface identifier (v6plus, BIGLOBE; OpenWrt legacymap).
    #[arg(long, conflicts_with = "iid_format")]
    legacy_iid: bool,
    /// Interface identifier format: rfc7597 or draft03 (default: the profile's, else rfc7597).
    #[arg(long, value_name = "FORMAT")]
    iid_format: Option<String>,
    /// ISP profile: picks the rule by longest match of --prefix in its table.
    #[arg(long, value_name = "NAME", conflicts_with = "dhcpv6")]
    profile: Option<String>,
    /// Directory of extra profiles (*.toml).
    #[arg(long, value_name = "DIR")]
    profiles_dir: Option<PathBuf>,
    /// RFC 7598 DHCPv6 option area (containing S46_CONT_MAPE) as hex.
    #[arg(long, value_name = "HEX")]
    dhcpv6: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// List the known profiles and exit.
    #[arg(long)]
    list_profiles: bool,
}

/// The JSON output: the keys up to `rule` are the contract (`mape provision` prints the
/// same object with its own keys added).
#[derive(Serialize)]
pub(crate) struct CalcJson {
    ipv4: String,
    ipv4_len: u8,
    psid: Option<u16>,
    psid_len: u8,
    psid_offset: u8,
    ea_len: u8,
    port_count: u32,
    port_ranges: Vec<[u16; 2]>,
    ce_ipv6: String,
    br: Option<String>,
    rule: RuleJson,
    end_user_prefix: String,
    ea_bits: String,
    iid_format: IidFormat,
    profile: Option<String>,
    rule_source: String,
    brs: Vec<String>,
}

#[derive(Serialize)]
struct RuleJson {
    ipv6_prefix: String,
    ipv4_prefix: String,
    ea_len: u8,
    psid_offset: u8,
    psid_len: u8,
    fmr: bool,
}

/// The rule, mapping and context computed for the output.
pub(crate) struct Outcome {
    rule: Rule,
    mapping: CeMapping,
    br: Vec<Ipv6Addr>,
    profile: Option<String>,
    rule_source: String,
}

/// Runs `mape calc`.
pub(crate) fn run(args: &CalcArgs) -> Result<ExitCode> {
    if args.list_profiles {
        return list_profiles(args);
    }
    let prefix_text = args
        .prefix
        .as_deref()
        .ok_or_else(|| anyhow!("--prefix is required (End-user IPv6 prefix or CE address)"))?;
    let prefix: Ipv6Net = prefix_text.parse().map_err(|e| anyhow!("--prefix: {e}"))?;
    let iid_override = match (&args.iid_format, args.legacy_iid) {
        (Some(f), _) => Some(
            f.parse::<IidFormat>()
                .map_err(|e| anyhow!("--iid-format: {e}"))?,
        ),
        (None, true) => Some(IidFormat::Draft03),
        (None, false) => None,
    };
    let br_override = args
        .br
        .iter()
        .map(|b| {
            b.parse::<Ipv6Addr>()
                .map_err(|_| anyhow!("--br {b:?} is not an IPv6 address"))
        })
        .collect::<Result<Vec<_>>>()?;

    let source = if let Some(name) = &args.profile {
        RuleSource::Profile {
            name: name.clone(),
            profiles_dir: args.profiles_dir.clone(),
        }
    } else if let Some(hex) = &args.dhcpv6 {
        RuleSource::Dhcpv6(parse_hex(hex).map_err(|e| anyhow!("--dhcpv6: {e}"))?)
    } else {
        RuleSource::Explicit(rule_from_flags(args)?)
    };
    let p = provision(&source, &prefix, iid_override, &br_override).map_err(|e| match e {
        ProvisionError::Map(e) => anyhow!("--prefix {e}"),
        e @ ProvisionError::NotCovered(_) => anyhow!(format!("--prefix {e}").replace(
            "(IPv6 prefix, IPv4 prefix, EA-bits length)",
            "with --ipv6-prefix, --ipv4-prefix and --ea-len"
        )),
        e @ (ProvisionError::Dhcpv6(_) | ProvisionError::NoContainer) => {
            anyhow!(format!("--{e}").replace("DHCPv6 options", "dhcpv6"))
        }
        ProvisionError::NotCoveredDhcpv6(p) => {
            anyhow!("--prefix {p} is not covered by any S46_RULE given with --dhcpv6")
        }
        ProvisionError::ProfilesDir(d) => anyhow!("--profiles-dir {d} is not a directory"),
        other => anyhow!(other),
    })?;
    print(&Outcome::from(p), args.json)?;
    Ok(ExitCode::SUCCESS)
}

impl From<mape_rules::Provisioned> for Outcome {
    fn from(p: mape_rules::Provisioned) -> Self {
        Self {
            rule: p.bmr,
            mapping: p.mapping,
            br: p.domain.br().to_vec(),
            profile: p.profile,
            rule_source: p.origin,
        }
    }
}

/// The rule of `--ipv6-prefix`, `--ipv4-prefix`, `--ea-len` (`None` unless all three are
/// given), with `--psid-offset` and `--psid-len` if given: for calc and replay.
pub(crate) fn explicit_rule(
    ipv6_prefix: Option<&str>,
    ipv4_prefix: Option<&str>,
    ea_len: Option<u8>,
    psid_offset: Option<u8>,
    psid_len: Option<u8>,
) -> Result<Option<RuleSpec>> {
    let (Some(v6), Some(v4), Some(ea)) = (ipv6_prefix, ipv4_prefix, ea_len) else {
        return Ok(None);
    };
    let v6: Ipv6Net = v6.parse().map_err(|e| anyhow!("--ipv6-prefix: {e}"))?;
    let v4: Ipv4Net = v4.parse().map_err(|e| anyhow!("--ipv4-prefix: {e}"))?;
    let mut spec = RuleSpec::new(v6, v4, ea);
    if let Some(a) = psid_offset {
        spec.psid_offset = a;
    }
    spec.psid_len = psid_len;
    Ok(Some(spec))
}

fn rule_from_flags(args: &CalcArgs) -> Result<RuleSpec> {
    let Some(mut spec) = explicit_rule(
        args.ipv6_prefix.as_deref(),
        args.ipv4_prefix.as_deref(),
        args.ea_len,
        args.psid_offset,
        args.psid_len,
    )?
    else {
        bail!("give the rule with --ipv6-prefix, --ipv4-prefix and --ea-len (or use --profile NAME or --dhcpv6 HEX)");
    };
    spec.psid = args.psid.as_deref().map(parse_psid).transpose()?;
    Ok(spec)
}

fn profiles(args: &CalcArgs) -> Result<ProfileSet> {
    profile_set(args.profiles_dir.as_deref()).map_err(|e| match e {
        ProvisionError::ProfilesDir(d) => anyhow!("--profiles-dir {d} is not a directory"),
        other => anyhow!(other),
    })
}

fn parse_psid(s: &str) -> Result<u16> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| anyhow!("--psid {s:?} is not a number 0-65535 (decimal or 0x hex)"))
}

/// The JSON object for `o`.
pub(crate) fn json(o: &Outcome) -> CalcJson {
    let m = &o.mapping;
    let share = &m.share;
    let spec = o.rule.spec();
    CalcJson {
        ipv4: share.ipv4.addr().to_string(),
        ipv4_len: share.ipv4.len(),
        psid: share.psid,
        psid_len: o.rule.psid_len(),
        psid_offset: spec.psid_offset,
        ea_len: spec.ea_len,
        port_count: share.port_set.count(),
        port_ranges: share.port_set.ranges().map(|r| [r.start, r.end]).collect(),
        ce_ipv6: m.ce_ipv6.to_string(),
        br: o.br.first().map(|b| b.to_string()),
        rule: RuleJson {
            ipv6_prefix: spec.ipv6_prefix.to_string(),
            ipv4_prefix: spec.ipv4_prefix.to_string(),
            ea_len: spec.ea_len,
            psid_offset: spec.psid_offset,
            psid_len: o.rule.psid_len(),
            fmr: spec.forwarding,
        },
        end_user_prefix: m.end_user_prefix.to_string(),
        ea_bits: format!("{:#x}", m.ea_bits),
        iid_format: m.iid_format,
        profile: o.profile.clone(),
        rule_source: o.rule_source.clone(),
        brs: o.br.iter().map(|b| b.to_string()).collect(),
    }
}

/// Writes `text` to stdout; a closed pipe is not an error.
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    let stdout = io::stdout();
    let mut w = stdout.lock();
    match w.write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn print(o: &Outcome, json_out: bool) -> Result<()> {
    let t = if json_out {
        serde_json::to_string(&json(o)).context("serialising")? + "\n"
    } else {
        text(o)
    };
    write_stdout(&t)
}

/// The human summary: iproute2-style `key value` lines, ranges in aligned columns.
pub(crate) fn text(o: &Outcome) -> String {
    let m = &o.mapping;
    let s = &m.share;
    let spec = o.rule.spec();
    let mut t = String::new();
    let src = match &o.profile {
        Some(p) => format!("profile {p}, {}", o.rule_source),
        None => o.rule_source.clone(),
    };
    let head = format!("rule {} -> {}", spec.ipv6_prefix, spec.ipv4_prefix);
    let tail = format!(
        "ea-len {} psid-offset {} psid-len {}{}",
        spec.ea_len,
        spec.psid_offset,
        o.rule.psid_len(),
        if spec.forwarding { " fmr" } else { "" },
    );
    if head.len() + 1 + tail.len() <= 80 {
        t += &format!("{head} {tail}\n");
    } else {
        t += &format!("{head}\n  {tail}\n");
    }
    t += &format!("source {src}\n");
    t += &format!("prefix {} ea-bits {:#x}\n", m.end_user_prefix, m.ea_bits);
    let psid = match s.psid {
        Some(p) => format!("psid {p} ({p:#x}) psid-len {}", o.rule.psid_len()),
        None => "psid none (not shared)".into(),
    };
    t += &format!("ipv4 {} {psid}\n", s.ipv4);
    t += &format!("ce {} iid {}\n", m.ce_ipv6, m.iid_format);
    match o.br.as_slice() {
        [] => t += "br none (give --br)\n",
        brs => {
            let list: Vec<String> = brs.iter().map(|b| b.to_string()).collect();
            t += &format!("br {}\n", list.join(" "));
        }
    }
    let set = &s.port_set;
    t += &format!(
        "ports {} in {} range{} of {}\n",
        set.count(),
        set.range_count(),
        if set.range_count() == 1 { "" } else { "s" },
        set.range_len()
    );
    // 6 columns of 11 characters + 2 spaces: 80 columns at most.
    let cells: Vec<String> = set
        .ranges()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect();
    let width = cells.iter().map(String::len).max().unwrap_or(0);
    for row in cells.chunks(6) {
        let line: Vec<String> = row.iter().map(|c| format!("{c:>width$}")).collect();
        t += &format!("  {}\n", line.join("  "));
    }
    t
}

fn list_profiles(args: &CalcArgs) -> Result<ExitCode> {
    let set = profiles(args)?;
    let stdout = io::stdout();
    let mut w = stdout.lock();
    let res = if args.json {
        serde_json::to_string(set.profiles())
            .map_err(io::Error::other)
            .and_then(|s| writeln!(w, "{s}"))
    } else {
        let mut t = String::new();
        for p in set.profiles() {
            let verified = if p.verified { "verified" } else { "unverified" };
            t += &format!(
                "{:<16} {:<2} rules  a {:<2} iid {:<8} {} ({verified})\n",
                p.name,
                p.rules.len(),
                p.psid_offset,
                p.iid_format,
                p.source
            );
            t += &format!("{:<16} {}\n", "", p.description);
        }
        write!(w, "{t}")
    };
    match res {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other
            .context("writing to stdout")
            .map(|_| ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(
            parse_hex("005d 0004 06:07-fe00").unwrap(),
            vec![0, 0x5d, 0, 4, 6, 7, 0xfe, 0]
        );
        assert_eq!(parse_hex("0xAB").unwrap(), vec![0xab]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn psid_parsing() {
        assert_eq!(parse_psid("52").unwrap(), 52);
        assert_eq!(parse_psid("0x34").unwrap(), 52);
        assert!(parse_psid("65536").is_err());
    }
}
