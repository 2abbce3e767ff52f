//! The NAT engine's budget events once drained: their names, one structured log line each
//! (journald-friendly), and the user's event hook, which gets each one as JSON on stdin
//! and runs with no capability.

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

/// Runs the user's hook with the event as JSON on stdin, bounded in number and time,
/// without any capability ([`crate::privs::no_capabilities`]).
pub fn run_hook(hook: &std::path::Path, e: &Event, slots: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::warn!(hook = %hook.display(), "event hook busy; event not passed on");
        return;
    };
    let hook = hook.to_path_buf();
    let body = hook_line(e);
    tokio::spawn(async move {
        let _permit = permit;
        let mut cmd = tokio::process::Command::new(&hook);
        // Not the hook's to talk to systemd as if it were the daemon.
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        // Nor its to change the network: no CAP_NET_ADMIN, no capability at all.
        crate::privs::no_capabilities(&mut cmd);
        let child = cmd.spawn();
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

    /// The `Cap*:` and `NoNewPrivs:` lines of a /proc/PID/status, by name.
    fn cap_lines(status: &str) -> std::collections::BTreeMap<String, String> {
        status
            .lines()
            .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    #[test]
    fn the_hook_runs_without_any_capability() {
        let own = cap_lines(&std::fs::read_to_string("/proc/self/status").unwrap());
        let eff = u64::from_str_radix(&own["CapEff"], 16).unwrap();
        if eff & (1 << 12) == 0 {
            // Without CAP_NET_ADMIN here there is nothing for the child to lose.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs this test as root"
            );
            eprintln!("skipped: needs CAP_NET_ADMIN (run as root)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("mape-hook-caps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("status");
        let hook = dir.join("hook.sh");
        // The hook's own status ($$ is the shell the hook is), once it has read its event.
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\ncat >/dev/null\ncat /proc/$$/status >{}.tmp\nmv {0}.tmp {0}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let e = Event {
            at: Timestamp::from_millis(1),
            kind: EventKind::BudgetExhausted {
                proto: Protocol::Udp,
            },
        };
        let status = rt.block_on(async {
            run_hook(&hook, &e, &slots);
            for _ in 0..500 {
                if let Ok(s) = std::fs::read_to_string(&out) {
                    return s;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("the hook did not run");
        });
        let _ = std::fs::remove_dir_all(&dir);
        let caps = cap_lines(&status);
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(caps[set], "0000000000000000", "{set} of the hook: {caps:?}");
        }
        assert_eq!(caps["NoNewPrivs"], "1");
        // With CAP_SETPCAP the daemon empties the bounding set too.
        if eff & (1 << 8) != 0 {
            assert_eq!(caps["CapBnd"], "0000000000000000", "{caps:?}");
        }
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
