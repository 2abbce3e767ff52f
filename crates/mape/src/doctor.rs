//! `mape doctor`: checks the machine and the line and says what is wrong in plain words,
//! with the fix. Exit code 1 when a check fails; `--json` for scripts.

mod findings;
mod probe;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Result;
use clap::Args;
use mape_control::reply::{MapStatus, Snapshot, Status, Traffic};
use mape_control::{request_typed, Request};
use mape_daemon::config::{Role, Settings, DEFAULT_CONFIG};
use mape_rules::IidFormat;
use serde::Serialize;

use findings::{
    accept_ra_check, br_replies_check, fast_path_check, first_round_check, map_address_check,
    mappings_check, provisioning_check, rule_match_check, silent_br_cause, silent_br_fix,
    tunnel_source_check, RULE_FIX, TUNNEL_SOURCE_FIX,
};

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Skip the probes: the BR's reachability (ICMPv6 echo) and IPv4 through the tunnel.
    #[arg(long)]
    no_probe: bool,
    /// Probe IPv4 through the tunnel with ICMP echo to ADDR (repeatable; default 1.1.1.1
    /// and 8.8.8.8) while the CE daemon runs, and say where the probe got lost.
    #[arg(long = "probe-ipv4", value_name = "ADDR")]
    probe_ipv4: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    name: &'static str,
    level: Level,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

struct Report(Vec<Check>);

impl Report {
    fn add(
        &mut self,
        name: &'static str,
        level: Level,
        message: impl Into<String>,
        fix: Option<&str>,
    ) {
        self.0.push(Check {
            name,
            level,
            message: message.into(),
            fix: fix.map(str::to_string),
        });
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn has_cap_net_admin() -> bool {
    read("/proc/self/status")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("CapEff:"))
                .and_then(|l| u64::from_str_radix(l.trim_start_matches("CapEff:").trim(), 16).ok())
        })
        .is_some_and(|c| c & (1 << 12) != 0)
}

/// Global IPv6 addresses of `dev` from /proc/net/if_inet6.
fn ipv6_addresses(dev: &str) -> Vec<Ipv6Addr> {
    read("/proc/net/if_inet6")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[5] != dev || f[3] != "00" {
                return None;
            }
            u128::from_str_radix(f[0], 16).ok().map(Ipv6Addr::from)
        })
        .collect()
}

/// Whether an IPv4 default route exists through another device than `tun`.
fn foreign_ipv4_default(tun: &str) -> Option<String> {
    read("/proc/net/route")?.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" && f[0] != tun)
            .then(|| f[0].to_string())
    })
}

/// The `ipv4_probe` finding: probes each target (`probe::DEFAULT_TARGETS` when none is
/// given) and judges them; a warning when a target could not be probed at all.
fn ipv4_probe(socket: &Path, targets: &[Ipv4Addr], line: &probe::Line<'_>) -> Check {
    let targets = if targets.is_empty() {
        &probe::DEFAULT_TARGETS[..]
    } else {
        targets
    };
    let mut runs = Vec::new();
    for &t in targets {
        match probe::probe(socket, t) {
            Ok(run) => runs.push(run),
            Err(e) => {
                let fix = match e {
                    probe::ProbeError::Ping(_) => "install ping (apt-get install iputils-ping) and run doctor as root, or skip the probes with --no-probe",
                    probe::ProbeError::Status(_) => "the daemon stopped answering during the probe: see its log",
                };
                return Check {
                    name: "ipv4_probe",
                    level: Level::Warn,
                    message: format!("IPv4 through the tunnel not probed ({t}): {e}"),
                    fix: Some(fix.into()),
                };
            }
        }
    }
    probe::ipv4_probe_check(&runs, line)
}

/// When the configuration takes its rule from HB46PP and cannot be loaded (no answer
/// stored), the round `mape run` would run first, run now (the IO; an answer it gets is
/// stored, as `mape run` would): the `provisioning` finding naming the failing step.
fn first_round(config: &Path) -> Option<Check> {
    use mape_daemon::provisioning::{prepare, runner::RoundResult, settings, Run};
    let text = std::fs::read_to_string(config).ok()?;
    let file = Settings::file(&text, config).ok()?;
    let plan = settings::plan(file.provisioning.method, &file.map).ok()?;
    if !matches!(plan, settings::Plan::Hb46pp { .. }) {
        return None;
    }
    let Run::Hb46pp(run) = prepare(config).ok()?? else {
        return None;
    };
    Some(match &run.first.result {
        RoundResult::Failed(f) => first_round_check(f.class.as_str(), &f.detail),
        RoundResult::Answer(lg) => Check {
            name: "provisioning",
            level: Level::Ok,
            message: format!("the HB46PP server answers now ({}) and the answer is stored: mape run starts on it", lg.url),
            fix: None,
        },
    })
}

pub(crate) fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let mut r = Report(Vec::new());
    let settings = match Settings::load(&args.config) {
        Ok(s) => {
            r.add(
                "config",
                Level::Ok,
                format!("{} is valid", args.config.display()),
                None,
            );
            Some(s)
        }
        Err(e) => {
            r.add(
                "config",
                Level::Fail,
                e.to_string(),
                Some("fix the named key; start from dist/mape.toml and check with `mape run --check`"),
            );
            if let Some(c) = first_round(&args.config) {
                r.0.push(c);
            }
            None
        }
    };
    if has_cap_net_admin() {
        r.add("privileges", Level::Ok, "CAP_NET_ADMIN is available", None);
    } else {
        r.add(
            "privileges",
            Level::Fail,
            "no CAP_NET_ADMIN: mape run cannot create its TUN and routes",
            Some("run as root or under the systemd unit in dist/mape.service"),
        );
    }
    if Path::new("/dev/net/tun").exists() {
        r.add("tun", Level::Ok, "/dev/net/tun exists", None);
    } else {
        r.add(
            "tun",
            Level::Fail,
            "/dev/net/tun is missing",
            Some("modprobe tun (or enable CONFIG_TUN in the kernel)"),
        );
    }
    let running = settings
        .as_ref()
        .and_then(|s| request_typed::<Status>(&s.socket, &Request::Status).ok());
    for (key, path) in [
        ("ipv4 forwarding", "/proc/sys/net/ipv4/ip_forward"),
        ("ipv6 forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"),
    ] {
        match (read(path).as_deref(), running.is_some()) {
            (Some("1"), _) => r.add("forwarding", Level::Ok, format!("{key} is on"), None),
            (_, false) => r.add("forwarding", Level::Ok, format!("{key} is off; mape run turns it on (and back off when it stops)"), None),
            (_, true) => r.add("forwarding", Level::Fail, format!("{key} is off while the daemon runs"), Some("something else turned it off: sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")),
        }
    }
    if let Some(s) = &settings {
        if let Role::Ce(ce) = &s.role {
            let wan = &ce.wan_interface;
            let base = format!("/sys/class/net/{wan}");
            if !Path::new(&base).exists() {
                r.add(
                    "wan",
                    Level::Fail,
                    format!("WAN interface {wan} does not exist"),
                    Some("set wan.interface to the interface toward the ISP (ip link)"),
                );
            } else {
                let state = read(&format!("{base}/operstate")).unwrap_or_default();
                let mtu: u32 = read(&format!("{base}/mtu"))
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0);
                let need = u32::from(s.tun.ipv4_mtu) + 40;
                if state == "down" {
                    r.add(
                        "wan",
                        Level::Fail,
                        format!("{wan} is down"),
                        Some("bring it up: ip link set dev WAN up"),
                    );
                } else {
                    r.add("wan", Level::Ok, format!("{wan} is {state}"), None);
                }
                if mtu < need {
                    r.add(
                        "mtu",
                        Level::Warn,
                        format!(
                            "{wan} MTU {mtu} < {need} needed for IPv4 MTU {} plus 40 bytes of IPv6",
                            s.tun.ipv4_mtu
                        ),
                        Some("lower tun.ipv4_mtu to WAN MTU - 40, or raise the WAN MTU"),
                    );
                } else {
                    r.add(
                        "mtu",
                        Level::Ok,
                        format!(
                            "{wan} MTU {mtu} carries IPv4 MTU {} in IPv6",
                            s.tun.ipv4_mtu
                        ),
                        None,
                    );
                }
                let forwarding =
                    read("/proc/sys/net/ipv6/conf/all/forwarding").as_deref() == Some("1");
                let accept_ra = read(&format!("/proc/sys/net/ipv6/conf/{wan}/accept_ra"));
                r.0.push(accept_ra_check(
                    wan,
                    accept_ra.as_deref(),
                    forwarding,
                    running.is_some(),
                ));
                r.0.push(map_address_check(
                    wan,
                    ce.map_address,
                    &ce.map,
                    &ipv6_addresses(wan),
                ));
            }
            match (foreign_ipv4_default(&s.tun.name), running.is_some()) {
                (Some(dev), false) => r.add(
                    "routes",
                    Level::Fail,
                    format!("an IPv4 default route via {dev} exists: mape run cannot add its own"),
                    Some("remove it (ip route del default) or move it to a higher metric"),
                ),
                (Some(dev), true) => r.add(
                    "routes",
                    Level::Warn,
                    format!("a second IPv4 default route via {dev} competes with the tunnel"),
                    Some("remove the other default route"),
                ),
                (None, _) => r.add("routes", Level::Ok, "no competing IPv4 default route", None),
            }
            if !args.no_probe {
                if let Some(br) = ce.map.domain.br().first() {
                    let ok = Command::new("ping")
                        .args(["-6", "-c", "2", "-W", "2", &br.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success());
                    match ok {
                        Ok(true) => r.add("br", Level::Ok, format!("BR {br} answers ICMPv6 echo"), None),
                        Ok(false) => r.add("br", Level::Warn, format!("BR {br} does not answer ICMPv6 echo (some BRs never do)"), Some("check IPv6 connectivity (ping -6 to any host) and the BR address of your profile")),
                        Err(_) => r.add("br", Level::Warn, "ping is not installed: BR reachability not checked", Some("apt-get install iputils-ping")),
                    }
                }
            }
        }
    }
    match (&running, &settings) {
        (None, Some(s)) => r.add(
            "daemon",
            Level::Warn,
            format!("no daemon answers on {}", s.socket.display()),
            Some("start it: systemctl start mape (or mape run ce)"),
        ),
        (Some(st), _) => {
            // A BR has no budget: it shows as 0 of 1.
            let (used, total, peak, refusals) = st.budget.as_ref().map_or((0, 1, 0, 0), |b| {
                (
                    u64::from(b.in_use),
                    u64::from(b.total).max(1),
                    b.peak,
                    b.refusals,
                )
            });
            r.add(
                "daemon",
                Level::Ok,
                format!("running, {used}/{total} ports in use, peak {peak}"),
                None,
            );
            if used * 100 >= total * 95 || refusals > 0 {
                let culprit = settings
                    .as_ref()
                    .and_then(|s| request_typed::<Snapshot>(&s.socket, &Request::Snapshot).ok())
                    .and_then(|snap| {
                        snap.culprit
                            .map(|c| format!(" Likely culprit: {} ({}).", c.host, c.summary))
                    })
                    .unwrap_or_default();
                r.add(
                    "budget",
                    Level::Warn,
                    format!("{refusals} new flows refused, {used}/{total} ports in use.{culprit}"),
                    Some("see `mape show culprits` and `mape show hosts`"),
                );
            } else if used * 100 >= total * 80 {
                r.add(
                    "budget",
                    Level::Warn,
                    format!("{used}/{total} ports in use (over 80 %)"),
                    Some("see `mape show hosts`"),
                );
            } else {
                r.add("budget", Level::Ok, "no refusals, budget below 80 %", None);
            }
        }
        (None, None) => {}
    }
    if let Some(p) = running.as_ref().and_then(|st| st.provisioning.as_ref()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        r.0.push(provisioning_check(p, now));
    }
    if let (Some(st), Some(Role::Ce(ce))) = (&running, settings.as_ref().map(|s| &s.role)) {
        if let Traffic::Ce {
            wan_in, wan_out, ..
        } = st.traffic
        {
            r.0.push(tunnel_source_check(
                &st.drops,
                wan_in.packets,
                &ce.br_sources,
            ));
            let rule = ce.map.bmr.to_string();
            r.0.push(rule_match_check(&st.drops, wan_in.packets, &rule));
            let m = &ce.map.mapping;
            let other = match m.iid_format {
                IidFormat::Rfc7597 => IidFormat::Draft03,
                IidFormat::Draft03 => IidFormat::Rfc7597,
            };
            let other = ce.map.bmr.map_prefix(&m.end_user_prefix, other).ok();
            r.0.push(fast_path_check(st.fast_path.as_ref()));
            let ranges = match &st.map {
                MapStatus::Ce(m) => m.port_ranges.clone(),
                _ => Vec::new(),
            };
            r.0.push(mappings_check(&st.mapping_asks_outside_set, &ranges));
            let sessions = st.budget.as_ref().map_or(0, |b| b.sessions);
            r.0.push(br_replies_check(
                (wan_in.packets, wan_out.packets),
                sessions,
                st.uptime_s,
                m.iid_format,
                m.ce_ipv6,
                other.map(|o| o.ce_ipv6),
            ));
            if !args.no_probe {
                if let Some(s) = &settings {
                    let line = probe::Line {
                        tun: &s.tun.name,
                        br: ce.map.domain.br(),
                        rule: &rule,
                        iid: m.iid_format,
                        ce_ipv6: m.ce_ipv6,
                        other: other.map(|o| o.ce_ipv6),
                        icmp_source: ce.lan_address,
                    };
                    r.0.push(ipv4_probe(&s.socket, &args.probe_ipv4, &line));
                }
            }
        }
    }
    let failed = r.0.iter().any(|c| c.level == Level::Fail);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": !failed, "checks": r.0}))?
        );
    } else {
        for c in &r.0 {
            let tag = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<13} {}", c.name, c.message);
            if let Some(f) = &c.fix {
                println!("     {:<13} fix: {f}", "");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
