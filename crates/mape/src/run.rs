//! `mape run [ce|br]`: the daemon. `--check` validates the configuration and prints what it
//! would do, without touching the system.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use mape_daemon::config::{MapAddressMode, Role, Settings, DEFAULT_CONFIG};
use serde::Serialize;

use crate::calc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Customer edge (NAT44 + MAP-E encapsulation).
    Ce,
    /// Border relay (stateless).
    Br,
}

impl std::fmt::Display for RoleArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoleArg::Ce => "ce",
            RoleArg::Br => "br",
        })
    }
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Role; must agree with `mode` in the configuration (default: the file's).
    role: Option<RoleArg>,
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Validate the configuration and print the plan; touch nothing.
    #[arg(long)]
    check: bool,
    /// With --check: print the plan as one JSON object (`mape calc --json`'s keys for a CE,
    /// plus `role`, `config`, `wan_interface`, `map_address`, `tun`, `control`, ...).
    #[arg(long, requires = "check")]
    json: bool,
    /// Log as JSON lines (default: journald-friendly text).
    #[arg(long)]
    log_json: bool,
}

pub(crate) fn run(args: &RunArgs) -> Result<ExitCode> {
    // With HB46PP or mape's DHCPv6 client, the first round runs before the rule is
    // resolved (its answer or lease is stored and then read by Settings::load; a failed
    // round leaves the stored one in use).
    let hb46pp = if args.check {
        None
    } else {
        init_logs(args.log_json);
        mape_daemon::provisioning::prepare(&args.config)?
    };
    let settings = Settings::load(&args.config)?;
    let file_role = match settings.role {
        Role::Ce(_) => RoleArg::Ce,
        Role::Br(_) => RoleArg::Br,
    };
    if let Some(r) = args.role {
        if r != file_role {
            bail!(
                "{}: mode is {} but `mape run {}` was asked",
                args.config.display(),
                file_role,
                r
            );
        }
    }
    if args.check {
        print_plan(&settings, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !nix_is_root() {
        bail!("mape run needs root (CAP_NET_ADMIN) to create the TUN and routes");
    }
    match mape_daemon::daemon::run_with(settings, mape_daemon::pipeline::build, hb46pp) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // One line on stderr, then the status that says what happened (README, `mape run`):
        // 3 another daemon owns this TUN/state/socket (nothing touched), 70 datapath failure.
        Err(e) => {
            eprintln!("mape: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("CapEff:"))
                .and_then(|l| u64::from_str_radix(l.trim_start_matches("CapEff:").trim(), 16).ok())
        })
        // CAP_NET_ADMIN is bit 12.
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

fn init_logs(json: bool) {
    mape_daemon::logs::init(mape_daemon::logs::LogSink::detect(json));
}

/// The plan `--check --json` prints: for a CE, `mape calc --json`'s object (the same
/// keys: `ipv4`, `psid`, `port_ranges`, `ce_ipv6`, `rule`, …) with the daemon's own keys
/// added; for a BR, its address and rules.
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Plan {
    Ce {
        config: String,
        #[serde(flatten)]
        calc: Box<calc::CalcJson>,
        wan_interface: String,
        map_address: &'static str,
        lan_prefixes: Vec<String>,
        nat_policy: String,
        tun: TunPlan,
        control: String,
        state_dir: String,
    },
    Br {
        config: String,
        address: String,
        rules: Vec<BrRule>,
        tun: TunPlan,
        control: String,
        state_dir: String,
    },
}

#[derive(Serialize)]
struct TunPlan {
    name: String,
    /// 0: one per core.
    queues: usize,
    ipv4_mtu: u16,
    ipv6_mtu: u16,
}

#[derive(Serialize)]
struct BrRule {
    ipv6_prefix: String,
    ipv4_prefix: String,
    ea_len: u8,
}

fn map_address(m: MapAddressMode) -> &'static str {
    match m {
        MapAddressMode::Routed => "routed",
        MapAddressMode::Onlink => "onlink",
    }
}

fn plan(s: &Settings) -> Plan {
    let tun = TunPlan {
        name: s.tun.name.clone(),
        queues: s.tun.queues,
        ipv4_mtu: s.tun.ipv4_mtu,
        ipv6_mtu: s.tun.ipv6_mtu,
    };
    let (config, control, state_dir) = (
        s.path.display().to_string(),
        s.socket.display().to_string(),
        s.state_dir.display().to_string(),
    );
    match &s.role {
        Role::Ce(ce) => Plan::Ce {
            config,
            calc: Box::new(calc::json(&calc::Outcome::from(ce.map.clone()))),
            wan_interface: ce.wan_interface.clone(),
            map_address: map_address(ce.map_address),
            lan_prefixes: ce.lan_prefixes.iter().map(ToString::to_string).collect(),
            nat_policy: ce.nat.name.clone(),
            tun,
            control,
            state_dir,
        },
        Role::Br(br) => Plan::Br {
            config,
            address: br.address.to_string(),
            rules: br
                .domain
                .rules()
                .iter()
                .map(|r| BrRule {
                    ipv6_prefix: r.ipv6_prefix().to_string(),
                    ipv4_prefix: r.ipv4_prefix().to_string(),
                    ea_len: r.ea_len(),
                })
                .collect(),
            tun,
            control,
            state_dir,
        },
    }
}

/// One aligned `label  value` line of the plan.
fn row(label: &str, value: impl std::fmt::Display) {
    println!("  {label:<12} {value}");
}

fn print_plan(s: &Settings, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&plan(s))?);
        return Ok(());
    }
    println!("configuration {} is valid", s.path.display());
    match &s.role {
        Role::Ce(ce) => {
            let m = &ce.map.mapping;
            let bmr = &ce.map.bmr;
            row("role", "CE");
            row("wan", &ce.wan_interface);
            row("map address", map_address(ce.map_address));
            row(
                "rule",
                format!(
                    "{} -> {} ea {} (from {})",
                    bmr.ipv6_prefix(),
                    bmr.ipv4_prefix(),
                    bmr.ea_len(),
                    ce.map.origin
                ),
            );
            row("ipv4", m.share.ipv4);
            row(
                "psid",
                match m.share.psid {
                    Some(psid) => format!(
                        "{psid} ({} bits, offset {})",
                        bmr.psid_len(),
                        bmr.psid_offset()
                    ),
                    None => "none (the whole IPv4 address)".into(),
                },
            );
            row(
                "ports",
                format!(
                    "{} in {} ranges",
                    m.share.port_set.count(),
                    m.share.port_set.range_count()
                ),
            );
            row("ce ipv6", m.ce_ipv6);
            let brs: Vec<String> = ce.map.domain.br().iter().map(|b| b.to_string()).collect();
            row("br", brs.join(", "));
            row("nat policy", &ce.nat.name);
            row("tun", tun_line(s));
            row(
                "routes",
                format!("0.0.0.0/0 mtu {}, {}/128", s.tun.ipv4_mtu, m.ce_ipv6),
            );
        }
        Role::Br(br) => {
            row("role", "BR");
            row("address", br.address);
            for r in br.domain.rules() {
                row(
                    "rule",
                    format!(
                        "{} -> {} ea {}",
                        r.ipv6_prefix(),
                        r.ipv4_prefix(),
                        r.ea_len()
                    ),
                );
            }
            row("tun", tun_line(s));
        }
    }
    row("control", s.socket.display());
    Ok(())
}

fn tun_line(s: &Settings) -> String {
    let queues = match s.tun.queues {
        0 => "one queue per core".to_string(),
        1 => "1 queue".to_string(),
        n => format!("{n} queues"),
    };
    format!("{}: mtu 1500, {queues}", s.tun.name)
}
