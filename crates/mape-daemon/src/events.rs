//! The NAT engine's budget events once drained: their names, one structured log line each
//! (journald-friendly), and the user's event hook, which gets each one as JSON on stdin
//! and runs with no capability.

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
        EventKind::MappingAdded { .. } => "mapping_added",
        EventKind::MappingRemoved { .. } => "mapping_removed",
        EventKind::MappingExpired { .. } => "mapping_expired",
    }
}

/// Logs an event once, at warning level, with its fields as structured fields named
/// `mape_*` (under journald: `MAPE_EVENT`, `MAPE_HOST`, `MAPE_PORTS_USED`, …; as text:
/// `mape_event=budget80 mape_proto=udp …`) and a sentence for people.
pub fn log_event(e: &Event) {
    let event = kind_name(&e.kind);
    let at_ms = e.at.millis();
    match &e.kind {
        EventKind::Budget80 { proto, in_use }
        | EventKind::Budget95 { proto, in_use }
        | EventKind::BudgetRecovered { proto, in_use } => tracing::warn!(
            mape_event = %event,
            mape_proto = %proto,
            mape_ports_used = in_use,
            mape_at_ms = at_ms,
            "budget event {event}: {in_use} {proto} ports in use"
        ),
        EventKind::BudgetExhausted { proto } => tracing::warn!(
            mape_event = %event,
            mape_proto = %proto,
            mape_at_ms = at_ms,
            "budget event {event}: no {proto} port left"
        ),
        EventKind::HostCapped { host, proto, cap } => tracing::warn!(
            mape_event = %event,
            mape_host = %host,
            mape_proto = %proto,
            mape_cap = cap,
            mape_at_ms = at_ms,
            "budget event {event}: {host} capped at {cap} {proto} ports"
        ),
        EventKind::ExhaustionForecast {
            proto,
            seconds,
            driver,
        } => {
            let driver = driver.map(|d| d.to_string()).unwrap_or_default();
            tracing::warn!(
                mape_event = %event,
                mape_proto = %proto,
                mape_seconds = seconds,
                mape_driver = %driver,
                mape_at_ms = at_ms,
                "budget event {event}: {proto} exhausted in {seconds} s at this rate"
            )
        }
        EventKind::CulpritNamed {
            host,
            summary,
            top_destination,
            ..
        } => {
            let dst = top_destination.map(|d| d.to_string()).unwrap_or_default();
            tracing::warn!(
                mape_event = %event,
                mape_host = %host,
                mape_pattern = %summary,
                mape_dst = %dst,
                mape_at_ms = at_ms,
                "budget event {event}: {host}: {summary}"
            )
        }
        EventKind::CulpritCleared { host, named_at } => tracing::warn!(
            mape_event = %event,
            mape_host = %host,
            mape_named_at_ms = named_at.millis(),
            mape_at_ms = at_ms,
            "budget event {event}: {host} no longer storms"
        ),
        EventKind::DestinationFiltered { host, dst, block } => tracing::warn!(
            mape_event = %event,
            mape_host = %host,
            mape_dst = %dst,
            mape_block = %block,
            mape_at_ms = at_ms,
            "budget event {event}: {host} to {dst} ({block})"
        ),
        // Port mappings are routine: information, not a warning. One set of fields for
        // the three; lifetime and origin only where the mapping was added.
        EventKind::MappingAdded {
            proto,
            internal,
            external_port,
            ..
        }
        | EventKind::MappingRemoved {
            proto,
            internal,
            external_port,
            ..
        }
        | EventKind::MappingExpired {
            proto,
            internal,
            external_port,
            ..
        } => {
            let (lifetime_s, origin) = match &e.kind {
                EventKind::MappingAdded {
                    lifetime_s, origin, ..
                } => (Some(*lifetime_s), Some(origin.as_str())),
                _ => (None, None),
            };
            let end = match (lifetime_s, origin) {
                (Some(l), Some(o)) => format!("for {l} s ({o})"),
                _ => format!("ended ({event})"),
            };
            tracing::info!(
                mape_event = %event,
                mape_host = %internal.addr,
                mape_proto = %proto,
                mape_internal = %internal,
                mape_external_port = external_port,
                mape_lifetime_s = lifetime_s,
                mape_origin = origin,
                mape_at_ms = at_ms,
                "port mapping {proto} {external_port} -> {internal} {end}"
            );
        }
    }
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
    run_hook_line(hook, hook_line(e), slots);
}

/// [`run_hook`] with the line already made (the provisioning events of
/// `crate::provisioning::apply` are not the NAT engine's).
pub fn run_hook_line(hook: &std::path::Path, body: String, slots: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::warn!(hook = %hook.display(), "event hook busy; event not passed on");
        return;
    };
    let hook = hook.to_path_buf();
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

    /// Fields of journald native-protocol datagrams (systemd's "Native Journal Protocol":
    /// `KEY=value\n`, or `KEY\n` + 64-bit little-endian length + value + `\n`).
    fn journal_fields(d: &[u8]) -> std::collections::HashMap<String, String> {
        let mut fields = std::collections::HashMap::new();
        let mut rest = d;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..nl];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                let k = String::from_utf8_lossy(&line[..eq]).into_owned();
                fields.insert(k, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
                rest = &rest[nl + 1..];
            } else {
                let k = String::from_utf8_lossy(line).into_owned();
                let len_at = nl + 1;
                let len = u64::from_le_bytes(rest[len_at..len_at + 8].try_into().unwrap());
                let v = &rest[len_at + 8..len_at + 8 + len as usize];
                fields.insert(k, String::from_utf8_lossy(v).into_owned());
                rest = &rest[(len_at + 8 + len as usize + 1).min(rest.len())..];
            }
        }
        fields
    }

    /// The child half of [`journald_gets_each_event_as_structured_fields`]: logs every event
    /// kind through the daemon's journald logger. Does nothing unless run by that test.
    #[test]
    #[ignore = "run by journald_gets_each_event_as_structured_fields in a mount namespace"]
    fn journald_child() {
        if std::env::var_os("MAPE_JOURNALD_CHILD").is_none() {
            return;
        }
        crate::logs::init(crate::logs::LogSink::Journald);
        for kind in every_kind() {
            log_event(&Event {
                at: Timestamp::from_millis(7),
                kind,
            });
        }
    }

    /// Under journald every event is one journal entry whose fields `journalctl
    /// MAPE_EVENT=…` matches. The test listens on a journald socket of its own, mounted
    /// over /run/systemd/journal in a mount namespace (unshare(1), root), and runs
    /// [`journald_child`] there. Skips without root, except under CI (CI=true).
    #[test]
    fn journald_gets_each_event_as_structured_fields() {
        use std::os::unix::net::UnixDatagram;
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        });
        if !root {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "the journald test needs root under CI"
            );
            eprintln!("skipping: needs root (a mount namespace)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("mape-journald-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = UnixDatagram::bind(dir.join("socket")).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
                      && mount --bind \"$0\" /run/systemd/journal \
                      && exec \"$1\" --exact events::tests::journald_child --include-ignored";
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(&dir)
            .arg(std::env::current_exe().unwrap())
            .env("MAPE_JOURNALD_CHILD", "1")
            .env("MAPE_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        assert!(out.status.success(), "child: {out:?}");
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 65536];
        while entries.len() < every_kind().len() {
            let n = sock.recv(&mut buf).expect("an entry within 10 s");
            // tracing-journald probes the socket with an empty datagram first.
            if n > 0 {
                entries.push(journal_fields(&buf[..n]));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        for (kind, e) in every_kind().iter().zip(&entries) {
            assert_eq!(
                e.get("MAPE_EVENT").map(String::as_str),
                Some(kind_name(kind)),
                "{e:?}"
            );
            assert_eq!(
                e.get("PRIORITY").map(String::as_str),
                Some("4"),
                "warn: {e:?}"
            );
            assert_eq!(e.get("SYSLOG_IDENTIFIER").map(String::as_str), Some("mape"));
            assert_eq!(e.get("MAPE_AT_MS").map(String::as_str), Some("7"));
            assert!(e["MESSAGE"].contains(kind_name(kind)), "{e:?}");
        }
        let field = |event: &str, k: &str| {
            let e = entries
                .iter()
                .find(|e| e.get("MAPE_EVENT").map(String::as_str) == Some(event));
            e.and_then(|e| e.get(k)).cloned().unwrap_or_default()
        };
        // Budget80 { udp, 192 }; HostCapped { 192.168.1.23, udp, 60 }; the culprit.
        assert_eq!(field("budget80", "MAPE_PORTS_USED"), "192");
        assert_eq!(field("budget80", "MAPE_PROTO"), "udp");
        assert_eq!(field("host_capped", "MAPE_HOST"), "192.168.1.23");
        assert_eq!(field("host_capped", "MAPE_CAP"), "60");
        assert_eq!(field("culprit_named", "MAPE_HOST"), "192.168.1.23");
        assert_eq!(field("culprit_named", "MAPE_PATTERN"), "unanswered UDP");
        assert_eq!(field("culprit_cleared", "MAPE_NAMED_AT_MS"), "1000");
        assert_eq!(
            field("destination_filtered", "MAPE_DST"),
            "203.0.113.9:3478"
        );
    }
}
