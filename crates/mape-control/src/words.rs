//! The words the operator reads, shared by every view that shows them (`mape show`, the
//! LAN status page): the culprit's evidence and advice, and "n s ago".

use mape_nat::{Snapshot, Timestamp};

/// "12 s ago", or "never" for no time (or one after `now`).
pub fn ago(now: Timestamp, at: Option<Timestamp>) -> String {
    match at {
        Some(t) if now >= t => format!("{} s ago", now.since(t) / 1000),
        _ => "never".into(),
    }
}

/// What `mape show culprits` prints, one string a line (the evidence lines indented by
/// two spaces): the named suspect with its evidence and one line of advice, or why there
/// is none.
pub fn culprit_lines(snap: &Snapshot) -> Vec<String> {
    let Some(c) = &snap.culprit else {
        return vec![match &snap.heavy_user {
            Some(h) => format!(
                "no culprit: {} holds {} ports with {}; not a storm",
                h.host, h.ports_held, h.summary
            ),
            None => "no culprit: no host stands out".to_string(),
        }];
    };
    let sig = c
        .description
        .as_deref()
        .map(|d| format!(" — {d}"))
        .unwrap_or_default();
    let mut lines = vec![
        format!(
            "host {} sends {} ({:.1}/s unanswered, {} ports held){sig}",
            c.host, c.summary, c.rate_per_s, c.ports_held
        ),
        format!(
            "  its live flows: {} unanswered, {} answered once, {} streams",
            c.unanswered, c.answered_once, c.streams
        ),
    ];
    let host = snap.hosts.iter().find(|h| h.addr == c.host);
    let filtered = host.map_or(0, |h| h.filtered);
    if filtered > 0 {
        let since = host
            .map(|h| ago(snap.now, h.first_filtered))
            .unwrap_or_default();
        lines.push(format!(
            "  blocked by the destination filter since {since}: {filtered} flows refused, no port spent"
        ));
    }
    lines.push(match &c.advice {
        Some(a) => format!("  advice: {a}"),
        None => format!(
            "  advice: find the application on {} that sends this, or block it there",
            c.host
        ),
    });
    lines
}
