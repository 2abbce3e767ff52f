//! `mape replay`: replay a capture or a built-in scenario through the NAT engine under
//! several policies side by side, and see when the port budget would run out. Thin glue:
//! arguments → `mape_replay` library → text, JSON, SVG. The `--json` output is a contract
//! (see /work/shared/checks/contracts.py and tests/replay.rs).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mape_nat::Ipv4Prefix;
use mape_replay::{
    budget_port_set, linktype, policies_by_name, render_json, render_text, replay_capture,
    replay_scenario, replay_scenario_to_pcap, write_plot, Lan, PcapWriter, ReplayConfig, Report,
    ScenarioKind, ScenarioParams, DEFAULT_EXTERNAL,
};
use mape_rules::{provision, Ipv6Net, PortSet, RuleSource};

/// Arguments of `mape replay`.
#[derive(Args, Debug)]
#[command(after_help = "Scenarios (--scenario):
  flow-storm   the seed incident: 192.168.1.23 (Logitech Options+ Flow) sends 2-4 UDP
               packets every 3 s from new ports to 192.168.1.211, beside a household;
               --rate-x multiplies the storm
  dns-burst    a browser resolving hundreds of names in bursts; --rate-x: burst rate
  p2p          a torrent client with many peers, partly unanswered; --rate-x: peer rate
  normal-home  a few hosts with ordinary traffic; --rate-x: all traffic
  tcp-churn    192.168.1.220 opens ~5 short TCP connections a second (handshake, one
               request, FIN both ways) to one server, each from a new port, and looks
               a name up and connects elsewhere every ~10 s; --rate-x: connection rate
  udp-churn    192.168.1.221 sends 25 one-shot UDP exchanges and 2 single pings a
               second from new ports/identifiers, and looks a name up every ~4.5 s;
               --rate-x: datagram and ping rates

The budget: --ports N (240, 252, 504, 1008, 2016, 4032 or 65536), or the rule of an ISP
profile (--profile NAME --prefix P) or an explicit rule (--ipv6-prefix --ipv4-prefix
--ea-len --prefix) as in `mape calc`, or the daemon's configuration (--config FILE): its
port set, external address, LAN prefixes and NAT settings (timers, quotas, allowed
destinations) replace the built-in policy of the same name.

Examples:
  mape replay --scenario flow-storm
  mape replay --scenario flow-storm --rate-x 100 --plot storm.svg --write-pcap storm.pcap
  mape replay home.pcapng --lan 192.168.1.0/24 --profile v6plus --prefix 240b:10:1a65:a100::/56
  mape replay capture.pcap --policy mape,rtx830-like --json")]
pub(crate) struct ReplayArgs {
    /// Capture file (pcap or pcapng; Ethernet, Linux cooked v1/v2, raw IP), or - for stdin.
    #[arg(value_name = "CAPTURE", conflicts_with = "scenario")]
    input: Option<PathBuf>,
    /// Built-in scenario instead of a capture.
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Scenario seed.
    #[arg(long, value_name = "N", default_value_t = mape_replay::scenario::DEFAULT_SEED)]
    seed: u64,
    /// Scenario length in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    duration: u64,
    /// Scenario rate multiplier (of the bad pattern; of all traffic for normal-home).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    rate_x: f64,
    /// Number of normal hosts in the scenario (default 2; 4 for normal-home).
    #[arg(long, value_name = "N")]
    hosts: Option<u32>,
    /// Also write the scenario as a pcap capture.
    #[arg(long, value_name = "FILE", requires = "scenario")]
    write_pcap: Option<PathBuf>,
    /// Link type of --write-pcap: raw (IPv4) or ethernet.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "raw",
        requires = "write_pcap"
    )]
    write_link: String,
    /// LAN prefixes (repeatable or comma-separated; default: RFC 1918 private sources).
    #[arg(long, value_name = "PREFIX", value_delimiter = ',')]
    lan: Vec<String>,
    /// Port budget: 240, 252, 504, 1008, 2016, 4032 or 65536.
    #[arg(long, value_name = "N", conflicts_with_all = ["profile", "ipv6_prefix", "config"])]
    ports: Option<u32>,
    /// The daemon's configuration (mape.toml): budget, LAN and the tuned NAT policy.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["profile", "ipv6_prefix"])]
    config: Option<PathBuf>,
    /// ISP profile whose rule gives the port set (with --prefix).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Directory of extra profiles (*.toml).
    #[arg(long, value_name = "DIR")]
    profiles_dir: Option<PathBuf>,
    /// End-user IPv6 prefix (with --profile or an explicit rule).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Rule IPv6 prefix (BMR).
    #[arg(long, value_name = "PREFIX", conflicts_with = "profile")]
    ipv6_prefix: Option<String>,
    /// Rule IPv4 prefix.
    #[arg(long, value_name = "PREFIX", conflicts_with = "profile")]
    ipv4_prefix: Option<String>,
    /// EA-bits length.
    #[arg(long, value_name = "BITS", conflicts_with = "profile")]
    ea_len: Option<u8>,
    /// PSID offset a (default 6).
    #[arg(long, value_name = "BITS", conflicts_with = "profile")]
    psid_offset: Option<u8>,
    /// PSID length k.
    #[arg(long, value_name = "BITS", conflicts_with = "profile")]
    psid_len: Option<u8>,
    /// External IPv4 address (default: the rule's, else 192.0.2.1).
    #[arg(long, value_name = "ADDRESS")]
    external: Option<Ipv4Addr>,
    /// Policies to compare (comma-separated).
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "mape,linux-like,rtx830-like"
    )]
    policy: Vec<String>,
    /// Write a chart of ports in use over time (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Port set and external address from the budget options (the same provisioning as
/// `mape calc` and `mape run`).
fn budget(args: &ReplayArgs) -> Result<(PortSet, Option<Ipv4Addr>)> {
    let explicit =
        args.ipv6_prefix.is_some() || args.ipv4_prefix.is_some() || args.ea_len.is_some();
    if args.profile.is_none() && !explicit {
        let n = args.ports.unwrap_or(240);
        return Ok((
            budget_port_set(n).map_err(|e| anyhow!("--ports: {e}"))?,
            None,
        ));
    }
    let prefix: Ipv6Net = args
        .prefix
        .as_deref()
        .ok_or_else(|| anyhow!("--prefix is required with a rule or a profile"))?
        .parse()
        .map_err(|e| anyhow!("--prefix: {e}"))?;
    let source = if let Some(name) = &args.profile {
        RuleSource::Profile {
            name: name.clone(),
            profiles_dir: args.profiles_dir.clone(),
        }
    } else {
        let Some(spec) = crate::calc::explicit_rule(
            args.ipv6_prefix.as_deref(),
            args.ipv4_prefix.as_deref(),
            args.ea_len,
            args.psid_offset,
            args.psid_len,
        )?
        else {
            bail!("an explicit rule needs --ipv6-prefix, --ipv4-prefix and --ea-len");
        };
        RuleSource::Explicit(spec)
    };
    let p = provision(&source, &prefix, None, &[]).map_err(|e| anyhow!("{e}"))?;
    Ok((p.mapping.share.port_set, Some(p.mapping.share.ipv4.addr())))
}

/// The replay set-up from the daemon's configuration file.
fn from_daemon_config(args: &ReplayArgs, path: &std::path::Path) -> Result<ReplayConfig> {
    let settings = mape_daemon::config::Settings::load(path)?;
    let mape_daemon::config::Role::Ce(ce) = settings.role else {
        bail!(
            "--config {}: a BR configuration has no NAT to replay",
            path.display()
        );
    };
    let share = &ce.map.mapping.share;
    let mut cfg = ReplayConfig::new(share.port_set);
    cfg.policies = policies_by_name(&args.policy).map_err(|e| anyhow!("--policy: {e}"))?;
    if let Some(p) = cfg.policies.iter_mut().find(|p| p.name == ce.nat.name) {
        *p = ce.nat.clone();
    }
    cfg.external = args.external.unwrap_or(share.ipv4.addr());
    cfg.lan = Lan::Nets(
        ce.lan_prefixes
            .iter()
            .filter_map(|n| Ipv4Prefix::new(n.addr(), n.len()))
            .collect(),
    );
    Ok(cfg)
}

fn config(args: &ReplayArgs) -> Result<ReplayConfig> {
    if let Some(path) = &args.config {
        let mut cfg = from_daemon_config(args, path)?;
        if !args.lan.is_empty() {
            cfg.lan = Lan::Nets(lan_nets(args)?);
        }
        return Ok(cfg);
    }
    let (ports, rule_addr) = budget(args)?;
    let mut cfg = ReplayConfig::new(ports);
    cfg.policies = policies_by_name(&args.policy).map_err(|e| anyhow!("--policy: {e}"))?;
    cfg.external = args.external.or(rule_addr).unwrap_or(DEFAULT_EXTERNAL);
    if !args.lan.is_empty() {
        cfg.lan = Lan::Nets(lan_nets(args)?);
    }
    Ok(cfg)
}

fn lan_nets(args: &ReplayArgs) -> Result<Vec<Ipv4Prefix>> {
    args.lan
        .iter()
        .map(|s| {
            s.trim()
                .parse::<Ipv4Prefix>()
                .map_err(|e| anyhow!("--lan {s:?}: {}", e.0))
        })
        .collect()
}

fn progress_bar(args: &ReplayArgs, len: u64, template: &str) -> Option<ProgressBar> {
    if args.json || args.no_progress || !io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

fn run_scenario(args: &ReplayArgs, name: &str, cfg: ReplayConfig) -> Result<Report> {
    let kind: ScenarioKind = name.parse().map_err(|e| anyhow!("--scenario: {e}"))?;
    let params = ScenarioParams {
        kind,
        seed: args.seed,
        duration_s: args.duration,
        rate_x: args.rate_x,
        hosts: args.hosts,
    };
    params.validate()?;
    let pb = progress_bar(
        args,
        params.duration_s * 1000,
        "{spinner} {msg} [{bar:40}] {percent:>3}% of simulated time, eta {eta}",
    );
    if let Some(pb) = &pb {
        pb.set_message(format!("replaying {}", params.label()));
    }
    let tick = |done: u64, _end: u64| {
        if let Some(pb) = &pb {
            pb.set_position(done);
        }
    };
    let report = match &args.write_pcap {
        Some(path) => {
            let link = match args.write_link.as_str() {
                "raw" => linktype::RAW,
                "ethernet" => linktype::ETHERNET,
                other => bail!("--write-link {other:?}: use raw or ethernet"),
            };
            let file =
                File::create(path).with_context(|| format!("--write-pcap {}", path.display()))?;
            let mut w = PcapWriter::new(BufWriter::new(file), link)
                .with_context(|| format!("--write-pcap {}", path.display()))?;
            let r = replay_scenario_to_pcap(&params, cfg, &mut w, link, tick)?;
            w.finish()
                .with_context(|| format!("--write-pcap {}", path.display()))?;
            r
        }
        None => replay_scenario(&params, cfg, tick)?,
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(report)
}

fn run_capture(args: &ReplayArgs, path: &PathBuf, cfg: ReplayConfig) -> Result<Report> {
    let shown = path.display().to_string();
    if shown == "-" {
        let stdin = io::stdin();
        let r = replay_capture(
            BufReader::with_capacity(1 << 20, stdin.lock()),
            cfg,
            "stdin",
            |_, _| {},
        )
        .map_err(|e| anyhow!("stdin: {e}"))?;
        return Ok(r);
    }
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress_bar(
        args,
        len,
        "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
    );
    if let Some(pb) = &pb {
        pb.set_message(format!("replaying {shown}"));
    }
    let report = replay_capture(
        BufReader::with_capacity(1 << 20, file),
        cfg,
        &shown,
        |bytes, _frames| {
            if let Some(pb) = &pb {
                pb.set_position(bytes);
            }
        },
    )
    .map_err(|e| anyhow!("{shown}: {e}"))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(report)
}

/// Runs `mape replay`.
pub(crate) fn run(args: &ReplayArgs) -> Result<ExitCode> {
    if let Some(plot) = &args.plot {
        // Refuse a PNG before spending minutes on the replay.
        let ext = plot.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("svg") {
            bail!(
                "--plot {}: only SVG is supported (PNG text needs system fonts); write .svg and \
                 convert it, e.g. rsvg-convert -o out.png out.svg",
                plot.display()
            );
        }
    }
    let cfg = config(args)?;
    let report = match (&args.scenario, &args.input) {
        (Some(name), _) => run_scenario(args, name, cfg)?,
        (None, Some(path)) => run_capture(args, path, cfg)?,
        (None, None) => bail!("give a capture file or --scenario NAME (see mape replay --help)"),
    };
    if let Some(plot) = &args.plot {
        write_plot(&report, plot)?;
        if !args.json {
            eprintln!("plot written to {}", plot.display());
        }
    }
    if let Some(e) = &report.capture_error {
        eprintln!("mape: warning: capture ended early: {e}");
    }
    let out = if args.json {
        let mut s = render_json(&report);
        s.push('\n');
        s
    } else {
        render_text(&report)
    };
    let stdout = io::stdout();
    let mut w = stdout.lock();
    match w.write_all(out.as_bytes()).and_then(|()| w.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}
