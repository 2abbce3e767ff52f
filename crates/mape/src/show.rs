//! `mape show ...`: asks the running daemon over its control socket and prints the truth —
//! the real port budget, who holds it, where it goes, what was refused, and who is to blame.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mape_control::reply::{Snapshot, Status};
use mape_control::words::{ago, culprit_lines};
use mape_control::{Request, SessionQuery};
use mape_daemon::config::DEFAULT_SOCKET;
use mape_nat::{Protocol, SessionState};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[command(subcommand)]
    what: What,
    /// Control socket of the daemon.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer (stable keys).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum What {
    /// MAP parameters, uptime, packets each way, drops by reason.
    Status,
    /// The port budget: in use / total per protocol, peak, refusals, top holders.
    Ports,
    /// Per LAN host: flows, ports held, unanswered, peak, refusals, culprit score.
    Hosts,
    /// The session table.
    Sessions {
        /// Only this LAN host.
        #[arg(long)]
        host: Option<std::net::Ipv4Addr>,
        /// Only this remote address or address:port.
        #[arg(long)]
        dst: Option<String>,
        /// Only this protocol (tcp, udp, icmp).
        #[arg(long, value_parser = parse_proto)]
        proto: Option<Protocol>,
        /// Only this state (unanswered, answered, established, ...).
        #[arg(long)]
        state: Option<String>,
        /// At most this many rows (the daemon answers at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Port mappings LAN applications hold (PCP, NAT-PMP): each inside the port set.
    Mappings,
    /// Remote endpoints by flows and hosts.
    Destinations,
    /// Named suspects with the evidence and one line of advice.
    Culprits,
    /// YAMAHA habit: `show nat descriptor masquerade session summary`, with the real budget.
    Nat {
        /// The rest of the YAMAHA command: descriptor masquerade session summary
        #[arg(num_args = 0..)]
        rest: Vec<String>,
    },
}

fn parse_proto(s: &str) -> Result<Protocol, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("{s:?} is not a protocol (tcp, udp, icmp)"))
}

fn ask(socket: &std::path::Path, req: &Request) -> Result<Value> {
    Ok(mape_control::request(socket, req)?)
}

/// Reads an answer as the reply type the view shows.
fn read<T: DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| anyhow!("bad answer from the daemon: {e}"))
}

/// How an answer is shown without `--json`.
enum View {
    Status,
    Ports,
    Hosts,
    Sessions,
    Mappings,
    Destinations,
    Culprits,
    RtxSummary,
}

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let sock = &args.socket;
    let (value, view) = match &args.what {
        What::Status => (ask(sock, &Request::Status)?, View::Status),
        What::Ports => {
            let status = ask(sock, &Request::Status)?;
            let snap = ask(sock, &Request::Snapshot)?;
            (json!({"status": status, "snapshot": snap}), View::Ports)
        }
        What::Hosts => (ask(sock, &Request::Snapshot)?, View::Hosts),
        What::Sessions {
            host,
            dst,
            proto,
            state,
            limit,
        } => {
            let q = SessionQuery {
                host: *host,
                dst: dst.clone(),
                proto: *proto,
                state: state.clone(),
                limit: Some(*limit),
            };
            (ask(sock, &Request::Sessions(q))?, View::Sessions)
        }
        What::Mappings => (ask(sock, &Request::Mappings)?, View::Mappings),
        What::Destinations => (ask(sock, &Request::Snapshot)?, View::Destinations),
        What::Culprits => (ask(sock, &Request::Snapshot)?, View::Culprits),
        What::Nat { rest } => {
            let want = ["descriptor", "masquerade", "session", "summary"];
            let words: Vec<&str> = rest
                .iter()
                .map(String::as_str)
                .filter(|w| w.parse::<u32>().is_err())
                .collect();
            if !words.is_empty() && words != want {
                return Err(anyhow!(
                    "show nat {}: only `show nat descriptor masquerade session summary` is known",
                    rest.join(" ")
                ));
            }
            (ask(sock, &Request::Snapshot)?, View::RtxSummary)
        }
    };
    if args.json {
        // The daemon's answer as it came (stable keys).
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    match view {
        View::Status => print_status(&read(&value)?),
        View::Ports => print_ports(&read(&value["snapshot"])?),
        View::Hosts => print_hosts(&read(&value)?),
        View::Sessions => print_sessions(&read::<Vec<_>>(&value)?),
        View::Mappings => print_mappings(&read::<Vec<_>>(&value)?),
        View::Destinations => print_destinations(&read(&value)?),
        View::Culprits => print_culprits(&read(&value)?),
        View::RtxSummary => print_rtx_summary(&read(&value)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// "at this rate: udp exhausted in 3 min 40 s, driven by 192.168.1.23", one line per
/// protocol whose use grows toward the budget (none while use is flat or falling).
pub(crate) fn forecast_lines(snap: &Snapshot) -> Vec<String> {
    snap.forecasts
        .iter()
        .map(|f| {
            let driver = match f.driver {
                Some(h) => format!(", driven by {h}"),
                None => String::new(),
            };
            format!(
                "at this rate: {} exhausted in {}{driver} (+{:.1} ports/s)",
                f.proto,
                duration(f.seconds),
                f.growth_per_s
            )
        })
        .collect()
}

/// Seconds as "3 min 40 s" / "45 s" / "2 h 5 min".
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn bar(used: u32, total: u32, width: usize) -> String {
    let (used, total) = (u64::from(used), u64::from(total));
    let filled = if total == 0 {
        0
    } else {
        ((used as f64 / total as f64) * width as f64).round() as usize
    }
    .min(width);
    let body = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
    if std::io::stdout().is_terminal() {
        let pct = (used * 100).checked_div(total).unwrap_or(0);
        let colour = if pct >= 95 {
            31
        } else if pct >= 80 {
            33
        } else {
            32
        };
        format!("\x1b[{colour}m[{body}]\x1b[0m")
    } else {
        format!("[{body}]")
    }
}

fn print_status(v: &Status) {
    println!("role        {}", v.role.as_str());
    println!("uptime      {} s", v.uptime_s);
    if let Some(p) = &v.policy {
        println!("policy      {p}");
    }
    for (k, x) in v.map.fields() {
        println!("{:<11} {x}", k.replace('_', " "));
    }
    for chunk in v.map.port_ranges().chunks(5) {
        println!("            {}", chunk.join(" "));
    }
    if let Some(p) = &v.provisioning {
        print_provisioning(p);
    }
    if let Some(b) = &v.budget {
        println!(
            "budget      {}/{} ports in use, peak {}, {} sessions, {} refused",
            b.in_use, b.total, b.peak, b.sessions, b.refusals
        );
        if b.events_lost > 0 {
            println!(
                "events      {} lost (the queue was full before they were logged)",
                b.events_lost
            );
        }
    }
    for (k, x) in v.traffic.directions() {
        println!(
            "{:<11} {} packets, {} bytes",
            k.replace('_', " "),
            x.packets,
            x.bytes
        );
    }
    if v.drops.is_empty() {
        println!("drops       none");
    } else {
        println!("drops");
        for (k, n) in &v.drops {
            println!("  {k:<30} {n}");
        }
    }
}

/// A time in seconds since the UNIX epoch, and how far it is from now.
fn when(t: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if t <= now {
        format!("{t} ({} s ago)", now - t)
    } else {
        format!("{t} (in {} s)", t - now)
    }
}

fn print_provisioning(p: &mape_control::reply::ProvisioningStatus) {
    let mut line = format!("provisioned {} (method {})", p.source, p.method);
    if let Some(u) = &p.url {
        line += &format!(" from {u}");
    }
    if let Some(e) = &p.enabler_name {
        line += &format!(", {e}");
    }
    if let Some(d) = &p.delegated_prefix {
        line += &format!(" prefix {d}");
    }
    if let Some(s) = &p.server {
        line += &format!(" from server {s}");
    }
    if p.from_store {
        line += if p.source == "dhcpv6" {
            ", stored lease (no Reply since start)"
        } else {
            ", stored answer (server not reached since start)"
        };
    }
    println!("{line}");
    if let Some(s) = &p.stopped {
        println!("STOPPED     {s}");
    }
    if let Some(t) = p.fetched_at {
        println!("fetched     {}", when(t));
    }
    if let Some(t) = p.next_refresh_at {
        let what = if p.source == "dhcpv6" {
            "renew  "
        } else {
            "refresh"
        };
        println!("{what}     {}", when(t));
    }
    if let Some(t) = p.rebind_at {
        println!("rebind      {}", when(t));
    }
    if let Some(t) = p.expires_at {
        println!("expires     {}", when(t));
    }
    if let Some(f) = &p.last_failure {
        println!(
            "failing     {} since {}, {} round(s): {}",
            f.step,
            when(f.since),
            f.count,
            f.detail
        );
    }
    if let Some(c) = &p.last_change {
        println!(
            "changed     {} times, last {}: {} -> {} ({} sessions kept, {} dropped)",
            p.changes,
            when(c.at),
            c.before,
            c.after,
            c.sessions_kept,
            c.sessions_dropped
        );
    }
}

fn print_ports(snap: &Snapshot) {
    let now = snap.now;
    let total = snap.budget;
    println!(
        "ports in use {}/{} {}  peak {} ({})",
        snap.in_use,
        total,
        bar(snap.in_use, total, 24),
        snap.peak,
        ago(now, Some(snap.peak_at))
    );
    for p in &snap.protocols {
        println!(
            "  {:<5} {:>5}/{:<5} {} peak {:<5} sessions {}",
            p.proto.to_string(),
            p.in_use,
            p.total,
            bar(p.in_use, p.total, 20),
            p.peak,
            p.sessions
        );
    }
    for line in forecast_lines(snap) {
        println!("{line}");
    }
    println!(
        "refused      {} (last {})",
        snap.refusals,
        ago(now, snap.last_refusal)
    );
    println!("top holders");
    for h in snap.hosts.iter().take(5) {
        println!(
            "  {:<16} {:>5} ports  {:>5} flows",
            host_label(h),
            h.ports_held,
            h.flows
        );
    }
    router_line(snap);
}

/// A host's name in the text views: "router" for the router's own flows.
fn host_label(h: &mape_control::reply::HostStats) -> String {
    if h.router {
        "router".to_owned()
    } else {
        h.addr.to_string()
    }
}

/// The router's own flows and the ports kept for them, one line.
fn router_line(snap: &Snapshot) {
    let r = &snap.router;
    if r.addresses.is_empty() {
        println!("router       (no router address: nothing kept)");
        return;
    }
    let addrs: Vec<String> = r.addresses.iter().map(|a| a.to_string()).collect();
    let held: u32 = r.ports_by_proto.iter().sum();
    let kept: Vec<String> = Protocol::ALL
        .iter()
        .map(|p| format!("{p} {}", r.kept_free_by_proto[p.index()]))
        .collect();
    println!(
        "router       {held:>5} ports  {:>5} flows  reserve {} per protocol, kept free {}  ({})",
        r.flows,
        r.reserve_ports,
        kept.join(" "),
        addrs.join(", ")
    );
}

fn print_hosts(snap: &Snapshot) {
    let now = snap.now;
    // Flows by kind, in the words the culprit view uses: never answered, answered once (a
    // one-shot exchange), streams, closing TCP.
    println!(
        "{:<15} {:>5} {:>5} {:>6} {:>5} {:>5} {:>5} {:>7} {:>12} {:>5}",
        "host",
        "flows",
        "ports",
        "unansw",
        "once",
        "strm",
        "clos",
        "refused",
        "last refusal",
        "score"
    );
    for h in &snap.hosts {
        println!(
            "{:<15} {:>5} {:>5} {:>6} {:>5} {:>5} {:>5} {:>7} {:>12} {:>5.2}",
            host_label(h),
            h.flows,
            h.ports_held,
            h.unanswered,
            h.answered_once,
            h.streams,
            h.closing,
            h.refusals,
            ago(now, h.last_refusal),
            h.culprit_score
        );
    }
    router_line(snap);
}

fn print_sessions(rows: &[mape_control::reply::SessionInfo]) {
    println!(
        "{:<5} {:<21} {:<21} {:<21} {:<12} {:>6} {:>6}",
        "proto", "internal", "external", "remote", "state", "idle", "left"
    );
    for r in rows {
        println!(
            "{:<5} {:<21} {:<21} {:<21} {:<12} {:>5}s {:>5}s",
            r.proto.to_string(),
            r.internal.to_string(),
            r.external.to_string(),
            r.remote.to_string(),
            // UDP/ICMP "answered" says which: a one-shot exchange or a stream.
            if r.state == SessionState::Answered {
                &r.kind
            } else {
                r.state.as_str()
            },
            r.idle_ms / 1000,
            r.left_ms / 1000
        );
    }
}

fn print_mappings(rows: &[mape_control::reply::MappingInfo]) {
    if rows.is_empty() {
        println!("no port mappings (PCP / NAT-PMP: [mappings] in the configuration)");
        return;
    }
    println!(
        "{:<5} {:<21} {:<21} {:<8} {:>8} {:>8} {:>8}",
        "proto", "external", "internal", "by", "lifetime", "left", "sessions"
    );
    for r in rows {
        println!(
            "{:<5} {:<21} {:<21} {:<8} {:>7}s {:>7}s {:>8}",
            r.proto.to_string(),
            r.external.to_string(),
            r.internal.to_string(),
            r.origin.as_str(),
            r.lifetime_s,
            r.left_ms / 1000,
            r.sessions
        );
    }
}

fn print_destinations(snap: &Snapshot) {
    println!(
        "{:<5} {:<22} {:>6} {:>9} {:>6} {:>9}",
        "proto", "destination", "flows", "total", "hosts", "filtered"
    );
    for d in snap.destinations.iter().take(30) {
        println!(
            "{:<5} {:<22} {:>6} {:>9} {:>6} {:>9}",
            d.proto.to_string(),
            d.dst.to_string(),
            d.flows,
            d.flows_total,
            d.hosts,
            d.filtered
        );
    }
}

fn print_culprits(snap: &Snapshot) {
    for line in culprit_lines(snap) {
        println!("{line}");
    }
}

fn print_rtx_summary(snap: &Snapshot) {
    let now = snap.now;
    let total = snap.budget;
    println!("NAT masquerade session summary (limit = the real port budget, {total} ports)");
    println!(
        "{:<16} {:>15} {:>6} {:>11} {:>15}",
        "Inner Address", "Session/Limit", "Peak", "Over Limits", "Last Occurred"
    );
    for h in &snap.hosts {
        let limit = total;
        println!(
            "{:<16} {:>15} {:>6} {:>11} {:>15}",
            h.addr.to_string(),
            format!("{}/{}", h.ports_held, limit),
            h.peak_ports,
            h.refusals,
            ago(now, h.last_refusal)
        );
    }
    println!("total {}/{} ports, peak {}", snap.in_use, total, snap.peak);
}
