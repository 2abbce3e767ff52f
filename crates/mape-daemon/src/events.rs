//! The NAT engine's budget events once drained: their names, one structured log line each
//! (journald-friendly), and the user's event hook, which gets each one as JSON on stdin.

use std::fmt;
use std::sync::Arc;

use mape_nat::{Event, EventKind};

/// Hooks running at once; more events while all run are logged and not passed on.
pub const HOOK_SLOTS: usize = 4;

/// The event's `kind` as in its JSON, the log and the `mape_events` counter.
pub fn kind_name(k: &EventKind) -> &'static str {
    match k {
        EventKind::Budget80 { .. } => "budget80",
        EventKind::Budget95 { .. } => "budget95",
        EventKind::BudgetExhausted { .. } => "budget_exhausted",
        EventKind::BudgetRecovered { .. } => "budget_recovered",
        EventKind::HostCapped { .. } => "host_capped",
        EventKind::ExhaustionForecast { .. } => "exhaustion_forecast",
        EventKind::CulpritNamed { .. } => "culprit_named",
        EventKind::CulpritCleared { .. } => "culprit_cleared",
        EventKind::DestinationFiltered { .. } => "destination_filtered",
    }
}

/// An optional log field: its value, or nothing.
struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

/// Logs an event once, with its fields as structured fields.
pub fn log_event(e: &Event) {
    let (mut proto, mut host, mut in_use, mut dst) = (None, None, None, None);
    let (mut summary, mut seconds, mut driver) = (None, None, None);
    match &e.kind {
        EventKind::Budget80 {
            proto: p,
            in_use: n,
        }
        | EventKind::Budget95 {
            proto: p,
            in_use: n,
        }
        | EventKind::BudgetRecovered {
            proto: p,
            in_use: n,
        } => {
            proto = Some(*p);
            in_use = Some(*n);
        }
        EventKind::BudgetExhausted { proto: p } => proto = Some(*p),
        EventKind::HostCapped {
            host: h, proto: p, ..
        } => {
            host = Some(*h);
            proto = Some(*p);
        }
        EventKind::ExhaustionForecast {
            proto: p,
            seconds: s,
            driver: d,
        } => {
            proto = Some(*p);
            seconds = Some(*s);
            driver = *d;
        }
        EventKind::CulpritNamed {
            host: h,
            summary: s,
            ..
        } => {
            host = Some(*h);
            summary = Some(s.as_str());
        }
        EventKind::CulpritCleared { host: h, .. } => host = Some(*h),
        EventKind::DestinationFiltered {
            host: h, dst: d, ..
        } => {
            host = Some(*h);
            dst = Some(*d);
        }
    }
    tracing::warn!(
        kind = %kind_name(&e.kind),
        proto = %Opt(proto),
        host = %Opt(host),
        in_use = %Opt(in_use),
        dst = %Opt(dst),
        pattern = %Opt(summary),
        seconds = %Opt(seconds),
        driver = %Opt(driver),
        at_ms = %e.at.millis(),
        "budget event"
    );
}

/// The line the hook reads: the event as JSON, keys sorted, and a newline.
pub fn hook_line(e: &Event) -> String {
    let mut body = serde_json::to_value(e)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "{}".into());
    body.push('\n');
    body
}

/// Runs the user's hook with the event as JSON on stdin, bounded in number and time.
pub fn run_hook(hook: &std::path::Path, e: &Event, slots: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::warn!(hook = %hook.display(), "event hook busy; event not passed on");
        return;
    };
    let hook = hook.to_path_buf();
    let body = hook_line(e);
    tokio::spawn(async move {
        let _permit = permit;
        let child = tokio::process::Command::new(&hook)
            // Not the hook's to talk to systemd as if it were the daemon.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(hook = %hook.display(), error = %err, "event hook failed to start");
                return;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await {
            Ok(Ok(st)) if !st.success() => {
                tracing::warn!(hook = %hook.display(), status = %st, "event hook failed")
            }
            Err(_) => tracing::warn!(hook = %hook.display(), "event hook killed after 10 s"),
            _ => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use mape_nat::{Endpoint, Pattern, Protocol, Timestamp};

    use super::*;

    fn every_kind() -> Vec<EventKind> {
        let host = Ipv4Addr::new(192, 168, 1, 23);
        let dst = Endpoint::new(Ipv4Addr::new(203, 0, 113, 9), 3478);
        let proto = Protocol::Udp;
        vec![
            EventKind::Budget80 { proto, in_use: 192 },
            EventKind::Budget95 { proto, in_use: 228 },
            EventKind::BudgetExhausted { proto },
            EventKind::BudgetRecovered { proto, in_use: 100 },
            EventKind::HostCapped {
                host,
                proto,
                cap: 60,
            },
            EventKind::ExhaustionForecast {
                proto,
                seconds: 220,
                driver: Some(host),
            },
            EventKind::CulpritNamed {
                host,
                pattern: Pattern::Unanswered { proto, dst },
                summary: "unanswered UDP".into(),
                top_destination: None,
            },
            EventKind::CulpritCleared {
                host,
                named_at: Timestamp::from_millis(1000),
            },
            EventKind::DestinationFiltered {
                host,
                dst,
                block: "203.0.113.0/24",
            },
        ]
    }

    #[test]
    fn kind_names_are_the_json_kinds() {
        for kind in every_kind() {
            let e = Event {
                at: Timestamp::from_millis(1234),
                kind,
            };
            let v: serde_json::Value = serde_json::from_str(&hook_line(&e)).unwrap();
            assert_eq!(v["kind"], kind_name(&e.kind), "{v}");
            assert_eq!(v["at"], 1234);
        }
    }

    #[test]
    fn culprit_cleared_names_the_host_and_when_it_was_named() {
        let e = Event {
            at: Timestamp::from_millis(200_000),
            kind: EventKind::CulpritCleared {
                host: Ipv4Addr::new(192, 168, 1, 23),
                named_at: Timestamp::from_millis(60_000),
            },
        };
        assert_eq!(
            hook_line(&e),
            "{\"at\":200000,\"host\":\"192.168.1.23\",\"kind\":\"culprit_cleared\",\"named_at\":60000}\n"
        );
    }

    #[test]
    fn the_hook_reads_one_line_of_json_with_sorted_keys() {
        let e = Event {
            at: Timestamp::from_millis(5),
            kind: EventKind::Budget80 {
                proto: Protocol::Tcp,
                in_use: 3,
            },
        };
        assert_eq!(
            hook_line(&e),
            "{\"at\":5,\"in_use\":3,\"kind\":\"budget80\",\"proto\":\"tcp\"}\n"
        );
    }
}
