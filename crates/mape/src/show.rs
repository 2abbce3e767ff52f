//! `mape show ...`: asks the running daemon over its control socket and prints the truth —
//! the real port budget, who holds it, where it goes, what was refused, and who is to blame.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mape_daemon::config::DEFAULT_SOCKET;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct ShowArgs {
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
        host: Option<String>,
        /// Only this remote address or address:port.
        #[arg(long)]
        dst: Option<String>,
        /// Only this protocol (tcp, udp, icmp).
        #[arg(long)]
        proto: Option<String>,
        /// Only this state (unanswered, answered, established, ...).
        #[arg(long)]
        state: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
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

fn ask(socket: &std::path::Path, cmd: &str, args: Value) -> Result<Value> {
    mape_daemon::control::request(socket, cmd, args).map_err(|e| anyhow!(e))
}

pub fn run(args: &ShowArgs) -> Result<ExitCode> {
    let sock = &args.socket;
    let (value, render): (Value, fn(&Value)) = match &args.what {
        What::Status => (ask(sock, "status", Value::Null)?, print_status),
        What::Ports => {
            let status = ask(sock, "status", Value::Null)?;
            let snap = ask(sock, "snapshot", Value::Null)?;
            (json!({"status": status, "snapshot": snap}), print_ports)
        }
        What::Hosts => (ask(sock, "snapshot", Value::Null)?, print_hosts),
        What::Sessions {
            host,
            dst,
            proto,
            state,
            limit,
        } => (
            ask(
                sock,
                "sessions",
                json!({"host": host, "dst": dst, "proto": proto, "state": state, "limit": limit}),
            )?,
            print_sessions,
        ),
        What::Destinations => (ask(sock, "snapshot", Value::Null)?, print_destinations),
        What::Culprits => (ask(sock, "snapshot", Value::Null)?, print_culprits),
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
            (ask(sock, "snapshot", Value::Null)?, print_rtx_summary)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        render(&value);
    }
    Ok(ExitCode::SUCCESS)
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// "at this rate: udp exhausted in 3 min 40 s, driven by 192.168.1.23", one line per
/// protocol whose use grows toward the budget (none while use is flat or falling).
pub(crate) fn forecast_lines(snap: &Value) -> Vec<String> {
    let Some(Value::Array(fs)) = snap.get("forecasts") else {
        return Vec::new();
    };
    fs.iter()
        .map(|f| {
            let driver = match f.get("driver").and_then(Value::as_str) {
                Some(h) => format!(", driven by {h}"),
                None => String::new(),
            };
            format!(
                "at this rate: {} exhausted in {}{driver} (+{:.1} ports/s)",
                s(f, "proto"),
                duration(f["seconds"].as_f64().unwrap_or(0.0)),
                f["growth_per_s"].as_f64().unwrap_or(0.0)
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

fn ago(now_ms: u64, at: &Value) -> String {
    match at.as_u64() {
        Some(t) if now_ms >= t => format!("{} s ago", (now_ms - t) / 1000),
        _ => "never".into(),
    }
}

fn bar(used: u64, total: u64, width: usize) -> String {
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

fn print_status(v: &Value) {
    println!("role        {}", s(v, "role"));
    println!("uptime      {} s", s(v, "uptime_s"));
    if v.get("policy").is_some() {
        println!("policy      {}", s(v, "policy"));
    }
    if let Some(m) = v.get("map") {
        for k in [
            "ipv4",
            "psid",
            "ports",
            "ce_ipv6",
            "br",
            "rule",
            "rule_source",
        ] {
            if m.get(k).is_some() {
                println!("{:<11} {}", k.replace('_', " "), s(m, k));
            }
        }
        if let Some(Value::Array(r)) = m.get("port_ranges") {
            let ranges: Vec<String> = r
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            for chunk in ranges.chunks(5) {
                println!("            {}", chunk.join(" "));
            }
        }
    }
    if let Some(b) = v.get("budget") {
        println!(
            "budget      {}/{} ports in use, peak {}, {} sessions, {} refused",
            u(b, "in_use"),
            u(b, "total"),
            u(b, "peak"),
            u(b, "sessions"),
            u(b, "refusals")
        );
    }
    if let Some(Value::Object(t)) = v.get("traffic") {
        for (k, x) in t {
            if x.is_object() {
                println!(
                    "{:<11} {} packets, {} bytes",
                    k.replace('_', " "),
                    u(x, "packets"),
                    u(x, "bytes")
                );
            }
        }
    }
    match v.get("drops") {
        Some(Value::Object(d)) if !d.is_empty() => {
            println!("drops");
            for (k, n) in d {
                println!("  {k:<30} {n}");
            }
        }
        _ => println!("drops       none"),
    }
}

fn print_ports(v: &Value) {
    let snap = &v["snapshot"];
    let now = snap["now"].as_u64().unwrap_or(0);
    let total = u(snap, "budget");
    println!(
        "ports in use {}/{} {}  peak {} ({})",
        u(snap, "in_use"),
        total,
        bar(u(snap, "in_use"), total, 24),
        u(snap, "peak"),
        ago(now, &snap["peak_at"])
    );
    if let Some(Value::Array(ps)) = snap.get("protocols") {
        for p in ps {
            println!(
                "  {:<5} {:>5}/{:<5} {} peak {:<5} sessions {}",
                s(p, "proto"),
                u(p, "in_use"),
                u(p, "total"),
                bar(u(p, "in_use"), u(p, "total"), 20),
                u(p, "peak"),
                u(p, "sessions")
            );
        }
    }
    for line in forecast_lines(snap) {
        println!("{line}");
    }
    println!(
        "refused      {} (last {})",
        u(snap, "refusals"),
        ago(now, &snap["last_refusal"])
    );
    println!("top holders");
    if let Some(Value::Array(hs)) = snap.get("hosts") {
        for h in hs.iter().take(5) {
            println!(
                "  {:<16} {:>5} ports  {:>5} flows",
                s(h, "addr"),
                u(h, "ports_held"),
                u(h, "flows")
            );
        }
    }
}

fn print_hosts(snap: &Value) {
    let now = snap["now"].as_u64().unwrap_or(0);
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
    if let Some(Value::Array(hs)) = snap.get("hosts") {
        for h in hs {
            println!(
                "{:<15} {:>5} {:>5} {:>6} {:>5} {:>5} {:>5} {:>7} {:>12} {:>5.2}",
                s(h, "addr"),
                u(h, "flows"),
                u(h, "ports_held"),
                u(h, "unanswered"),
                u(h, "answered_once"),
                u(h, "streams"),
                u(h, "closing"),
                u(h, "refusals"),
                ago(now, &h["last_refusal"]),
                h["culprit_score"].as_f64().unwrap_or(0.0)
            );
        }
    }
}

fn print_sessions(v: &Value) {
    println!(
        "{:<5} {:<21} {:<21} {:<21} {:<12} {:>6} {:>6}",
        "proto", "internal", "external", "remote", "state", "idle", "left"
    );
    if let Value::Array(rows) = v {
        for r in rows {
            println!(
                "{:<5} {:<21} {:<21} {:<21} {:<12} {:>5}s {:>5}s",
                s(r, "proto"),
                s(r, "internal"),
                s(r, "external"),
                s(r, "remote"),
                // UDP/ICMP "answered" says which: a one-shot exchange or a stream.
                match (s(r, "state").as_str(), s(r, "kind").as_str()) {
                    ("answered", k) => k.to_owned(),
                    (st, _) => st.to_owned(),
                },
                u(r, "idle_ms") / 1000,
                u(r, "left_ms") / 1000
            );
        }
    }
}

fn print_destinations(snap: &Value) {
    println!(
        "{:<5} {:<22} {:>6} {:>9} {:>6} {:>9}",
        "proto", "destination", "flows", "total", "hosts", "filtered"
    );
    if let Some(Value::Array(ds)) = snap.get("destinations") {
        for d in ds.iter().take(30) {
            println!(
                "{:<5} {:<22} {:>6} {:>9} {:>6} {:>9}",
                s(d, "proto"),
                s(d, "dst"),
                u(d, "flows"),
                u(d, "flows_total"),
                u(d, "hosts"),
                u(d, "filtered")
            );
        }
    }
}

fn print_culprits(snap: &Value) {
    match snap.get("culprit") {
        Some(c) if !c.is_null() => {
            let sig = c
                .get("description")
                .and_then(Value::as_str)
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            println!(
                "host {} sends {} ({:.1}/s unanswered, {} ports held){sig}",
                s(c, "host"),
                s(c, "summary"),
                c["rate_per_s"].as_f64().unwrap_or(0.0),
                u(c, "ports_held")
            );
            println!(
                "  its live flows: {} unanswered, {} answered once, {} streams",
                u(c, "unanswered"),
                u(c, "answered_once"),
                u(c, "streams")
            );
            let host = snap["hosts"]
                .as_array()
                .and_then(|hs| hs.iter().find(|h| h["addr"] == c["host"]));
            let filtered = host.map(|h| u(h, "filtered")).unwrap_or(0);
            if filtered > 0 {
                let now = snap["now"].as_u64().unwrap_or(0);
                let since = host
                    .map(|h| ago(now, &h["first_filtered"]))
                    .unwrap_or_default();
                println!(
                    "  blocked by the destination filter since {since}: {filtered} flows refused, no port spent"
                );
            }
            match c.get("advice").and_then(Value::as_str) {
                Some(a) => println!("  advice: {a}"),
                None => println!(
                    "  advice: find the application on {} that sends this, or block it there",
                    s(c, "host")
                ),
            }
        }
        _ => match snap.get("heavy_user") {
            Some(h) if !h.is_null() => println!(
                "no culprit: {} holds {} ports with {}; not a storm",
                s(h, "host"),
                u(h, "ports_held"),
                s(h, "summary")
            ),
            _ => println!("no culprit: no host stands out"),
        },
    }
}

fn print_rtx_summary(snap: &Value) {
    let now = snap["now"].as_u64().unwrap_or(0);
    let total = u(snap, "budget");
    println!("NAT masquerade session summary (limit = the real port budget, {total} ports)");
    println!(
        "{:<16} {:>15} {:>6} {:>11} {:>15}",
        "Inner Address", "Session/Limit", "Peak", "Over Limits", "Last Occurred"
    );
    if let Some(Value::Array(hs)) = snap.get("hosts") {
        for h in hs {
            let limit = total;
            println!(
                "{:<16} {:>15} {:>6} {:>11} {:>15}",
                s(h, "addr"),
                format!("{}/{}", u(h, "ports_held"), limit),
                u(h, "peak_ports"),
                u(h, "refusals"),
                ago(now, &h["last_refusal"])
            );
        }
    }
    println!(
        "total {}/{} ports, peak {}",
        u(snap, "in_use"),
        total,
        u(snap, "peak")
    );
}
