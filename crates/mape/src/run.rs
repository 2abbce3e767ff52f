//! `mape run [ce|br]`: the daemon. `--check` validates the configuration and prints what it
//! would do, without touching the system.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use mape_daemon::config::{Role, Settings, DEFAULT_CONFIG};

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
    /// Log as JSON lines (default: journald-friendly text).
    #[arg(long)]
    log_json: bool,
}

pub(crate) fn run(args: &RunArgs) -> Result<ExitCode> {
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
        print_plan(&settings);
        return Ok(ExitCode::SUCCESS);
    }
    init_logs(args.log_json);
    if !nix_is_root() {
        bail!("mape run needs root (CAP_NET_ADMIN) to create the TUN and routes");
    }
    match mape_daemon::daemon::run(settings, mape_daemon::pipeline::build) {
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

fn print_plan(s: &Settings) {
    println!("configuration {} is valid", s.path.display());
    match &s.role {
        Role::Ce(ce) => {
            let m = &ce.map.mapping;
            println!("  role         CE");
            println!(
                "  wan          {} (MAP address {:?})",
                ce.wan_interface, ce.map_address
            );
            println!(
                "  rule         {} -> {} ea {} (from {})",
                ce.map.bmr.ipv6_prefix(),
                ce.map.bmr.ipv4_prefix(),
                ce.map.bmr.ea_len(),
                ce.map.origin
            );
            println!("  ipv4         {}  psid {:?}", m.share.ipv4, m.share.psid);
            println!(
                "  ports        {} in {} ranges",
                m.share.port_set.count(),
                m.share.port_set.range_count()
            );
            println!("  ce ipv6      {}", m.ce_ipv6);
            let brs: Vec<String> = ce.map.domain.br().iter().map(|b| b.to_string()).collect();
            println!("  br           {}", brs.join(", "));
            println!("  nat policy   {}", ce.nat.name);
            println!("  would create TUN {} (mtu 1500, {} queue(s)), route 0.0.0.0/0 mtu {}, route {}/128", s.tun.name, s.tun.queues, s.tun.ipv4_mtu, m.ce_ipv6);
        }
        Role::Br(br) => {
            println!("  role         BR");
            println!("  address      {}", br.address);
            for r in br.domain.rules() {
                println!(
                    "  rule         {} -> {} ea {}",
                    r.ipv6_prefix(),
                    r.ipv4_prefix(),
                    r.ea_len()
                );
            }
        }
    }
    println!("  control      {}", s.socket.display());
}
