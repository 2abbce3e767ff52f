//! The replay report: per policy the peak ports in use out of the budget, when the budget
//! ran out, who was refused, who caused it and one line of advice; rendered as text for an
//! 80-column terminal or as JSON with stable keys (see `/work/shared/checks/contracts.py`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use mape_nat::{DestinationFilter, Pattern};
use serde::Serialize;

use crate::series::Series;

/// Answers from the internet side, per policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Replies {
    /// Delivered to the LAN host.
    pub delivered: u64,
    /// Dropped by the engine (mapping expired, filtered, port reused...).
    pub dropped: u64,
    /// No translation known for the flow under this policy (refused, filtered, never seen).
    pub without_mapping: u64,
}

/// What one policy did with the traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// Highest number of ports in use (most pressed protocol).
    pub peak_ports: u32,
    /// When the peak was first reached (seconds from the first packet).
    pub peak_at_s: f64,
    /// Peak as a percentage of the budget.
    pub peak_percent: f64,
    /// When a protocol first had no free port left, if ever.
    pub exhausted_at_s: Option<f64>,
    /// When the engine first forecast that the budget would run out within its horizon
    /// (event `exhaustion_forecast`), if ever.
    pub forecast_warned_at_s: Option<f64>,
    /// How long before the exhaustion that warning came (both must have happened).
    pub forecast_lead_s: Option<f64>,
    /// New flows refused (no port, host quota, session limit), all hosts.
    pub refused: u64,
    /// Refused new flows per LAN host; every host seen is listed, zero included.
    pub refused_by_host: BTreeMap<Ipv4Addr, u64>,
    /// New flows to special-purpose destinations refused at no port cost.
    pub filtered: u64,
    /// Filtered flows per host (hosts with none left out).
    pub filtered_by_host: BTreeMap<Ipv4Addr, u64>,
    /// Hosts that lost new flows, the culprit excepted.
    pub suffered: Vec<Ipv4Addr>,
    /// The host the engine names as burning the budget.
    pub culprit: Option<Ipv4Addr>,
    /// Its flow pattern, naming the destination.
    pub culprit_pattern: Option<String>,
    /// The same, typed (`kind`: new_port_each_flow, unanswered, fan_out,
    /// unanswered_syns, dns_storm).
    pub culprit_pattern_kind: Option<Pattern>,
    /// The destination the pattern points at, if it has one.
    pub culprit_destination: Option<Ipv4Addr>,
    /// The known signature it matches.
    pub culprit_signature: Option<String>,
    /// Its new unanswered flows per second at the end.
    pub culprit_rate_per_s: Option<f64>,
    /// Outbound packets translated.
    pub translated: u64,
    /// Outbound packets hairpinned.
    pub hairpin: u64,
    /// Answers from the internet side.
    pub replies: Replies,
    /// Drops by engine reason (non-zero only).
    pub drops: BTreeMap<&'static str, u64>,
    /// Ports in use at the end.
    pub ports_in_use_end: u32,
    /// Live sessions at the end.
    pub sessions_end: u32,
    /// One line of advice.
    pub advice: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was replayed.
    pub source: String,
    /// Ports per protocol.
    pub budget: u32,
    /// The port set in words.
    pub port_set: String,
    /// External IPv4 address.
    pub external: Ipv4Addr,
    /// From the first to the last packet, in seconds.
    pub duration_s: f64,
    /// Frames read.
    pub packets: u64,
    /// Packets fed to the engines.
    pub replayed: u64,
    /// Frames skipped, by reason (every reason, zero included).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Why the capture ended early, if it did.
    pub capture_error: Option<String>,
    /// Frames whose timestamp went backwards (replayed at the latest time seen).
    pub time_went_backwards: u64,
    /// Packets from LAN hosts beyond the tracked maximum.
    pub hosts_untracked: u64,
    /// One entry per policy.
    pub policies: Vec<PolicyReport>,
    /// The summary advice.
    pub advice: String,
    /// Ports in use over time (for the plot).
    #[serde(skip)]
    pub series: Series,
}

/// "4 min 2 s", "1 h 3 min", "12 s".
pub fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The culprit of a policy in words: host, what it sends, and the special-purpose block of
/// its destination if any.
struct Who {
    host: Ipv4Addr,
    what: String,
    dst: Option<Ipv4Addr>,
    block: Option<&'static str>,
}

impl Who {
    fn of(p: &PolicyReport) -> Option<Self> {
        let host = p.culprit?;
        let what = p
            .culprit_pattern
            .clone()
            .unwrap_or_else(|| "unanswered flows".to_owned());
        let dst = p.culprit_destination;
        let block = dst.and_then(|d| DestinationFilter::default().blocked(d));
        Some(Self {
            host,
            what,
            dst,
            block,
        })
    }

    /// "192.168.1.23 sends udp to ... (Logitech ...), a private use (RFC 1918) address
    /// nothing through the tunnel can answer".
    fn sentence(&self) -> String {
        let mut s = format!("{} sends {}", self.host, self.what);
        if let Some(b) = self.block {
            let _ = write!(s, ", a {b} address nothing through the tunnel can answer");
        }
        s
    }
}

fn lost(p: &PolicyReport) -> String {
    let n: u64 = p
        .suffered
        .iter()
        .map(|h| p.refused_by_host.get(h).copied().unwrap_or(0))
        .sum();
    match p.suffered.len() {
        0 => String::new(),
        1 => format!("; {} lost {n} new flows", p.suffered[0]),
        k => format!("; {k} hosts lost {n} new flows"),
    }
}

fn pct(p: &PolicyReport) -> String {
    format!("{:.0} %", p.peak_percent)
}

/// What the exhaustion forecast said, as a sentence to append to the advice.
fn forecast_note(p: &PolicyReport) -> String {
    match (p.forecast_warned_at_s, p.forecast_lead_s) {
        (Some(_), Some(lead)) => format!(" The forecast warned {} before.", fmt_duration(lead)),
        (Some(w), None) if p.exhausted_at_s.is_none() => format!(
            " The forecast warned after {}; the ports did not run out.",
            fmt_duration(w)
        ),
        _ => String::new(),
    }
}

fn policy_advice(p: &PolicyReport, budget: u32) -> String {
    let mut advice = policy_advice_text(p, budget);
    advice.push_str(&forecast_note(p));
    advice
}

fn policy_advice_text(p: &PolicyReport, budget: u32) -> String {
    let who = Who::of(p);
    let culprit_filtered = p
        .culprit
        .and_then(|h| p.filtered_by_host.get(&h))
        .copied()
        .unwrap_or(0);
    let peak = format!("{} of {budget} ports ({})", p.peak_ports, pct(p));
    match (p.exhausted_at_s, who) {
        (Some(t), Some(w)) => {
            let cure = if w.block.is_some() {
                "refuses such destinations and caps each host (mape)"
            } else {
                "caps each host and shortens unanswered flows (mape)"
            };
            format!(
                "{}: the {budget} ports run out after {}{}. Stop it at its source, or use a \
                 policy that {cure}.",
                w.sentence(),
                fmt_duration(t),
                lost(p)
            )
        }
        (Some(t), None) => format!(
            "the {budget} ports run out after {} with no single culprit{}: the traffic needs a \
             larger port set or shorter timers.",
            fmt_duration(t),
            lost(p)
        ),
        (None, Some(w)) if culprit_filtered > 0 => {
            let to = match (w.dst, w.block) {
                (Some(d), Some(b)) => format!(" to {d} ({b})"),
                _ => String::new(),
            };
            format!(
                "refuses the {culprit_filtered} flows of {}{to} at no port cost; the peak \
                 stays at {peak}.",
                w.host
            )
        }
        (None, Some(w)) => format!(
            "the peak stays at {peak}, though {} sends {}.",
            w.host, w.what
        ),
        (None, None) if p.refused > 0 => format!(
            "the peak stays at {peak}, yet {} new flows were refused by per-host limits{}.",
            p.refused,
            lost(p)
        ),
        (None, None) => format!("the peak stays at {peak}: the budget holds."),
    }
}

/// Fills in the per-policy advice and the summary line.
pub fn write_advice(r: &mut Report) {
    let budget = r.budget;
    for p in &mut r.policies {
        p.advice = policy_advice(p, budget);
    }
    let worst = r
        .policies
        .iter()
        .filter_map(|p| p.exhausted_at_s.map(|t| (t, p)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p);
    let mape = r.policies.iter().find(|p| p.name == "mape");
    r.advice = match worst {
        Some(w) => {
            let t = w.exhausted_at_s.map(fmt_duration).unwrap_or_default();
            let mut s = match Who::of(w) {
                Some(c) => format!(
                    "{}: under {} the {budget} ports run out after {t}",
                    c.sentence(),
                    w.name
                ),
                None => format!("under {} the {budget} ports run out after {t}", w.name),
            };
            if let Some(m) = mape.filter(|m| m.exhausted_at_s.is_none()) {
                let blocks = if m.filtered > 0 {
                    "blocks the destination and "
                } else {
                    ""
                };
                let _ = write!(s, "; mape {blocks}keeps the budget at {}", pct(m));
                if m.suffered.is_empty() {
                    s.push_str(", no other host refused");
                }
            }
            s.push('.');
            s
        }
        None => {
            let top = r.policies.iter().max_by_key(|p| p.peak_ports);
            let mut s = match top {
                Some(p) => format!(
                    "no policy runs out of ports: the highest peak is {} of {budget} ({}) under {}",
                    p.peak_ports,
                    pct(p),
                    p.name
                ),
                None => "nothing was replayed".to_owned(),
            };
            if let Some(c) = r.policies.iter().find_map(Who::of) {
                let _ = write!(s, "; the heaviest user: {} sends {}", c.host, c.what);
            }
            s.push('.');
            s
        }
    };
}

/// Word-wraps `text` to `width` columns, every line after the first indented by `indent`.
fn wrap(text: &str, first: usize, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut col = first;
    let mut line_start = true;
    for word in text.split_whitespace() {
        let w = word.chars().count();
        // Never break before a lone "%" (keeps "15 %" together).
        let glued = word == "%";
        if !line_start && !glued && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            line_start = true;
        }
        if !line_start {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        line_start = false;
    }
    out
}

/// The terminal report, readable at 80 columns.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mape replay: {}", r.source);
    let summary = format!(
        "{} of traffic, {} packets ({} replayed); budget {} ports per protocol ({}), \
         external {}",
        fmt_duration(r.duration_s),
        r.packets,
        r.replayed,
        r.budget,
        r.port_set,
        r.external
    );
    let _ = writeln!(o, "  {}", wrap(&summary, 2, 2, 80));
    let skipped: Vec<String> = r
        .skipped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let skipped = if skipped.is_empty() {
        "none".to_owned()
    } else {
        skipped.join(", ")
    };
    let _ = writeln!(o, "  skipped: {}", wrap(&skipped, 11, 4, 80));
    if let Some(e) = &r.capture_error {
        let _ = writeln!(o, "  capture ended early: {}", wrap(e, 23, 4, 80));
    }
    if r.time_went_backwards > 0 {
        let _ = writeln!(
            o,
            "  {} frames went back in time (replayed at the latest time seen)",
            r.time_went_backwards
        );
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "{:<13} {:>14}  {:<16} {:>8} {:>8}  culprit",
        "policy", "peak ports", "exhausted", "refused", "filtered"
    );
    for p in &r.policies {
        let peak = format!("{}/{} {:>3.0} %", p.peak_ports, r.budget, p.peak_percent);
        let ex = p
            .exhausted_at_s
            .map_or("never".to_owned(), |t| format!("after {}", fmt_duration(t)));
        let c = p.culprit.map_or("-".to_owned(), |h| h.to_string());
        let _ = writeln!(
            o,
            "{:<13} {:>14}  {:<16} {:>8} {:>8}  {}",
            p.name, peak, ex, p.refused, p.filtered, c
        );
    }
    // Hosts: every host with a refusal, then the rest up to 20 lines.
    let mut hosts: Vec<(Ipv4Addr, u64)> = r
        .policies
        .first()
        .map(|p| p.refused_by_host.keys().copied().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let worst = r
                .policies
                .iter()
                .map(|p| p.refused_by_host.get(&h).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            (h, worst)
        })
        .collect();
    hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !hosts.is_empty() {
        o.push('\n');
        let cols: Vec<usize> = r.policies.iter().map(|p| p.name.len().max(7)).collect();
        let _ = write!(o, "{:<30}", "refused new flows per host");
        for (p, w) in r.policies.iter().zip(&cols) {
            let _ = write!(o, " {:>w$}", p.name, w = *w);
        }
        o.push('\n');
        let culprits: Vec<Ipv4Addr> = r.policies.iter().filter_map(|p| p.culprit).collect();
        let shown = hosts.len().min(20);
        for (h, _) in &hosts[..shown] {
            let tag = if culprits.contains(h) { "culprit" } else { "" };
            let _ = write!(o, "  {:<17} {:<10}", h.to_string(), tag);
            for (p, w) in r.policies.iter().zip(&cols) {
                let n = p.refused_by_host.get(h).copied().unwrap_or(0);
                let _ = write!(o, " {:>w$}", n, w = *w);
            }
            o.push('\n');
        }
        if hosts.len() > shown {
            let _ = writeln!(o, "  ... {} more hosts", hosts.len() - shown);
        }
    }
    if r.policies.iter().any(|p| p.culprit_pattern.is_some()) {
        o.push('\n');
        let _ = writeln!(o, "culprit pattern");
        for p in &r.policies {
            if let Some(pat) = &p.culprit_pattern {
                let host = p.culprit.map_or(String::new(), |h| format!("{h}: "));
                let text = format!("{host}{pat}");
                let _ = writeln!(o, "  {:<13} {}", p.name, wrap(&text, 16, 16, 80));
            }
        }
    }
    o.push('\n');
    let _ = writeln!(o, "advice");
    for p in &r.policies {
        let _ = writeln!(o, "  {:<13} {}", p.name, wrap(&p.advice, 16, 16, 80));
    }
    let _ = writeln!(o, "  => {}", wrap(&r.advice, 5, 5, 80));
    o
}

/// The JSON report (pretty-printed, stable keys).
pub fn render_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(12.4), "12 s");
        assert_eq!(fmt_duration(242.0), "4 min 2 s");
        assert_eq!(fmt_duration(3725.0), "1 h 2 min");
    }

    #[test]
    fn wrap_respects_width() {
        let t = "a ".repeat(100);
        let w = wrap(&t, 16, 16, 80);
        assert!(w.lines().all(|l| l.len() + 16 <= 80 + 16));
        assert!(w.lines().skip(1).all(|l| l.starts_with(&" ".repeat(16))));
    }
}
