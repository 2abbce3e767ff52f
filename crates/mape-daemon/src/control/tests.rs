//! The control handlers without a socket: a real CE and BR pipeline built from a
//! configuration, driven by request lines as a client sends them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mape_control::reply::{MapStatus, SessionInfo, Snapshot, Status, Traffic};
use mape_control::{Request, SessionQuery};
use serde_json::Value;

use super::*;

use crate::config::tests::LAB as CE;

/// A BR of the same MAP domain.
fn br_config() -> String {
    let map = &CE[CE.find("[map]").unwrap()..CE.find("[lan]").unwrap()];
    format!("mode = \"br\"\n[br]\naddress = \"2001:db8:ffff::1\"\n{map}")
}

/// A configuration file of its own for each test.
pub(super) struct ConfigFile(pub(super) PathBuf);

impl ConfigFile {
    pub(super) fn new(name: &str, text: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "mape-control-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&p, text).unwrap();
        Self(p)
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn context(path: &Path) -> Context {
    let settings = Settings::load(path).unwrap();
    let pipeline = crate::pipeline::build(&settings).unwrap();
    Context {
        shared: Arc::new(Mutex::new(pipeline)),
        start: Instant::now(),
        up_since: Instant::now(),
        counters: Arc::new(IoCounters::default()),
        config_path: path.to_path_buf(),
        provisioning: None,
        portmap: Arc::default(),
    }
}

fn ask(ctx: &Context, req: &Request) -> Response {
    let line = serde_json::to_string(&req.to_envelope()).unwrap();
    handle_line(ctx, &line)
}

fn data(r: Response) -> Value {
    assert!(r.ok, "{:?}", r.error);
    r.data.unwrap()
}

fn error(r: Response) -> String {
    assert!(!r.ok, "answered {:?}", r.data);
    r.error.unwrap()
}

/// RFC 1071 one's complement sum, folded.
fn checksum(words: &[u8]) -> u16 {
    let mut sum: u32 = words
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP datagram (RFC 791, RFC 768) with both checksums right.
pub(crate) fn udp4(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let h = checksum(&p[..20]);
    p[10..12].copy_from_slice(&h.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&p[20..]);
    let u = checksum(&pseudo);
    p[26..28].copy_from_slice(&u.to_be_bytes());
    p
}

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const DNS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// One DNS query from a LAN host through the CE; the packets it wrote back.
fn one_flow(ctx: &Context) -> (usize, Vec<Vec<u8>>) {
    let pkt = udp4(HOST, 40000, DNS, 53, b"query");
    let mut out = Vec::new();
    let mut p = ctx.shared.lock().unwrap();
    p.process_batch(crate::clock::now_since(ctx.start), &[&pkt], &mut |o| {
        out.push(o.to_vec())
    });
    (pkt.len(), out)
}

fn status_of(ctx: &Context) -> Status {
    serde_json::from_value(data(ask(ctx, &Request::Status))).unwrap()
}

#[test]
fn bad_request_lines_get_clear_errors() {
    let f = ConfigFile::new("bad", CE);
    let ctx = context(&f.0);
    let cases = [
        ("{nonsense", "bad request: "),
        ("", "bad request: "),
        ("null", "bad request: "),
        (r#"{"v":"one","cmd":"status"}"#, "bad request: "),
        (
            r#"{"v":7,"cmd":"status"}"#,
            "unsupported protocol version 7 (this daemon speaks 1)",
        ),
        (
            r#"{"v":1,"cmd":"shutdown"}"#,
            r#"unknown command "shutdown" (status, snapshot, sessions, reload)"#,
        ),
        (
            r#"{"v":1,"cmd":"sessions","args":{"host":"192.168.1.300"}}"#,
            "bad arguments for sessions: ",
        ),
        (
            r#"{"v":1,"cmd":"sessions","args":"all"}"#,
            "bad arguments for sessions: ",
        ),
    ];
    for (line, want) in cases {
        let e = error(handle_line(&ctx, line));
        assert!(e.starts_with(want), "{line}: {e}");
    }
    // A daemon built without fault injection does not know the command at all.
    #[cfg(not(feature = "failpoints"))]
    assert_eq!(
        error(ask(&ctx, &Request::Failpoint { name: "x".into() })),
        r#"unknown command "failpoint" (status, snapshot, sessions, reload)"#
    );
    // The daemon still answers after all of them.
    assert!(ask(&ctx, &Request::Status).ok);
}

#[test]
fn no_line_makes_the_handler_panic() {
    let f = ConfigFile::new("fuzz", CE);
    let ctx = context(&f.0);
    let valid = [
        r#"{"v":1,"cmd":"status"}"#,
        r#"{"v":1,"cmd":"sessions","args":{"host":"192.168.1.10","limit":3}}"#,
        r#"{"v":1,"cmd":"ports","args":null}"#,
    ];
    // Every prefix of valid lines, and bytes flipped in them by a fixed xorshift sequence.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for line in valid {
        for end in 0..=line.len() {
            let r = handle_line(&ctx, &line[..end]);
            assert_eq!(r.ok, end == line.len(), "{}", &line[..end]);
        }
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = line.as_bytes().to_vec();
            let i = (x % b.len() as u64) as usize;
            b[i] = (x >> 32) as u8;
            let r = handle_line(&ctx, &String::from_utf8_lossy(&b));
            // Answered either way, and the answer is one line of JSON.
            let text = r.to_line();
            assert!(!text.contains('\n'));
            let _: Response = serde_json::from_str(&text).unwrap();
        }
    }
}

#[test]
fn a_poisoned_pipeline_is_an_error_not_a_panic() {
    let f = ConfigFile::new("poison", CE);
    let ctx = context(&f.0);
    let shared = ctx.shared.clone();
    let _ = std::thread::spawn(move || {
        let _held = shared.lock().unwrap();
        panic!("a worker dies holding the pipeline (expected in this test)");
    })
    .join();
    for req in [Request::Status, Request::Snapshot, Request::Reload] {
        assert_eq!(error(ask(&ctx, &req)), "pipeline unavailable");
    }
}

#[test]
fn ce_status_against_a_hand_built_state() {
    let f = ConfigFile::new("status", CE);
    let ctx = context(&f.0);
    let (len, out) = one_flow(&ctx);
    // Encapsulated toward the BR: the IPv4 packet behind a 40-byte IPv6 header.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), len + 40);
    ctx.counters.rx_packets.store(7, Ordering::Relaxed);
    ctx.counters.tx_errors.store(2, Ordering::Relaxed);

    let wire = data(ask(&ctx, &Request::Status));
    // The keys the CLI and scripts read, exactly as before the types existed.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&wire),
        [
            "budget",
            "drops",
            "fast_path",
            "io",
            "map",
            "policy",
            "role",
            "traffic",
            "uptime_s"
        ]
    );
    // Never started here (the daemon brings it up after its routes): off, with why.
    assert_eq!(wire["fast_path"]["active"], false);
    assert_eq!(wire["fast_path"]["mode"], "off");
    assert!(wire["fast_path"]["reason"].as_str().is_some());
    assert_eq!(
        keys(&wire["map"]),
        [
            "br",
            "ce_ipv6",
            "ipv4",
            "port_ranges",
            "ports",
            "psid",
            "rule",
            "rule_source"
        ]
    );
    assert_eq!(
        keys(&wire["budget"]),
        [
            "by_protocol",
            "events_lost",
            "exhausted_at_s",
            "in_use",
            "last_refusal_s",
            "peak",
            "peak_at_s",
            "refusals",
            "sessions",
            "total"
        ]
    );
    assert_eq!(
        keys(&wire["traffic"]),
        ["icmp_generated", "lan_in", "lan_out", "wan_in", "wan_out"]
    );
    assert_eq!(wire["budget"]["last_refusal_s"], Value::Null);

    let s: Status = serde_json::from_value(wire).unwrap();
    assert_eq!(s.role.as_str(), "ce");
    let MapStatus::Ce(m) = &s.map else {
        panic!("a CE's map: {:?}", s.map)
    };
    // RFC 7597 Appendix A, example 1, with a PSID offset of 4: 192.0.2.18, PSID 0x34,
    // 2^4 - 1 = 15 ranges of 2^(16-4-8) = 16 ports.
    assert_eq!(m.ipv4, "192.0.2.18");
    assert_eq!(m.psid, Some(0x34));
    assert_eq!(m.ports, "240 in 15 ranges");
    assert_eq!(m.port_ranges.len(), 15);
    assert_eq!(m.ce_ipv6, "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(m.br, "2001:db8:ffff::1");
    assert_eq!(m.rule, "2001:db8::/40 -> 192.0.2.0/24 ea 16");
    let b = s.budget.unwrap();
    assert_eq!((b.total, b.in_use, b.peak, b.sessions), (240, 1, 1, 1));
    assert_eq!((b.refusals, b.events_lost), (0, 0));
    let udp = b
        .by_protocol
        .iter()
        .find(|p| p.proto == mape_nat::Protocol::Udp);
    assert_eq!(udp.map(|p| (p.in_use, p.sessions)), Some((1, 1)));
    let Traffic::Ce {
        lan_in, wan_out, ..
    } = s.traffic
    else {
        panic!("a CE's traffic")
    };
    assert_eq!((lan_in.packets, lan_in.bytes), (1, len as u64));
    assert_eq!((wan_out.packets, wan_out.bytes), (1, len as u64 + 40));
    assert!(s.drops.is_empty(), "{:?}", s.drops);
    assert_eq!(
        (s.io.rx_packets, s.io.tx_errors, s.io.tx_packets),
        (7, 2, 0)
    );
}

#[test]
fn snapshot_and_sessions_read_back_into_the_client_types() {
    let f = ConfigFile::new("snapshot", CE);
    let ctx = context(&f.0);
    one_flow(&ctx);
    let snap: Snapshot = serde_json::from_value(data(ask(&ctx, &Request::Snapshot))).unwrap();
    assert_eq!((snap.budget, snap.in_use), (240, 1));
    assert_eq!(snap.hosts.len(), 1);
    assert_eq!(snap.hosts[0].addr, HOST);
    assert_eq!((snap.hosts[0].flows, snap.hosts[0].unanswered), (1, 1));
    assert_eq!(snap.destinations[0].dst.to_string(), "203.0.113.10:53");

    let rows = |q: SessionQuery| -> Vec<SessionInfo> {
        serde_json::from_value(data(ask(&ctx, &Request::Sessions(q)))).unwrap()
    };
    let all = rows(SessionQuery::default());
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].internal.to_string(), "192.168.1.10:40000");
    assert_eq!(all[0].remote.to_string(), "203.0.113.10:53");
    assert_eq!(all[0].external.addr, Ipv4Addr::new(192, 0, 2, 18));
    assert_eq!(all[0].state, mape_nat::SessionState::Unanswered);
    let by = |host, proto, dst: Option<&str>| {
        rows(SessionQuery {
            host,
            proto,
            dst: dst.map(str::to_string),
            ..SessionQuery::default()
        })
        .len()
    };
    assert_eq!(by(Some(HOST), None, None), 1);
    assert_eq!(by(Some(Ipv4Addr::new(192, 168, 1, 99)), None, None), 0);
    assert_eq!(by(None, Some(mape_nat::Protocol::Tcp), None), 0);
    assert_eq!(by(None, None, Some("203.0.113.10")), 1);
    assert_eq!(by(None, None, Some("203.0.113.10:54")), 0);
    let none = rows(SessionQuery {
        limit: Some(0),
        ..SessionQuery::default()
    });
    assert!(none.is_empty());
}

#[test]
fn reload_applies_a_new_policy_and_keeps_state_on_refusal() {
    let f = ConfigFile::new("reload", CE);
    let ctx = context(&f.0);
    one_flow(&ctx);
    let sessions = |ctx: &Context| status_of(ctx).budget.unwrap().sessions;

    // Timers changed: applied in place, the session stays.
    f.write(&CE.replace("udp_unanswered = 20", "udp_unanswered = 25"));
    let r = data(ask(&ctx, &Request::Reload));
    assert_eq!(
        r["reloaded"],
        "nat policy mape (timers, quotas, filters, forwards)"
    );
    assert_eq!(sessions(&ctx), 1);

    // Not a configuration file: refused, the running one stays.
    f.write("[map\nprefix =");
    let e = error(ask(&ctx, &Request::Reload));
    assert!(
        e.starts_with("reload refused, old configuration kept: "),
        "{e}"
    );
    assert_eq!(sessions(&ctx), 1);

    // Another End-user prefix (another PSID, so without the forward of port 4930): a
    // restart's job.
    let no_forward = &CE[..CE.find("[[nat.forward]]").unwrap()];
    f.write(&no_forward.replace("2001:db8:12:3400::/56", "2001:db8:12:3500::/56"));
    assert_eq!(
        error(ask(&ctx, &Request::Reload)),
        "reload refused, old configuration kept: MAP parameters changed (prefix or rule); restart the daemon to apply"
    );
    // The other role.
    f.write(&br_config());
    assert_eq!(
        error(ask(&ctx, &Request::Reload)),
        "reload refused, old configuration kept: mode changed from ce; restart the daemon"
    );
    assert_eq!(sessions(&ctx), 1);
    let MapStatus::Ce(m) = status_of(&ctx).map else {
        panic!("still a CE")
    };
    assert_eq!(m.ipv4, "192.0.2.18");

    // SIGHUP's path: the same function, without a request line.
    f.write(CE);
    assert_eq!(
        reload(&ctx).unwrap(),
        "nat policy mape (timers, quotas, filters, forwards)"
    );
    assert_eq!(sessions(&ctx), 1);
}

#[test]
fn br_status_and_reload() {
    let f = ConfigFile::new("br", &br_config());
    let ctx = context(&f.0);
    let wire = data(ask(&ctx, &Request::Status));
    let keys: Vec<&String> = wire.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "drops",
            "fast_path",
            "io",
            "map",
            "role",
            "traffic",
            "uptime_s"
        ]
    );
    let s: Status = serde_json::from_value(wire).unwrap();
    assert_eq!(s.role.as_str(), "br");
    let MapStatus::Br(m) = &s.map else {
        panic!("a BR's map: {:?}", s.map)
    };
    assert_eq!(m.br, "2001:db8:ffff::1");
    assert_eq!(m.rule, "2001:db8::/40 -> 192.0.2.0/24 ea 16");
    assert!(matches!(s.traffic, Traffic::Br { .. }));
    // The BR answers no NAT questions.
    assert_eq!(
        error(ask(&ctx, &Request::Snapshot)),
        r#"unknown command "snapshot" (status, snapshot, sessions, reload)"#
    );
    assert_eq!(
        data(ask(&ctx, &Request::Reload))["reloaded"],
        "nothing to change (a BR is stateless)"
    );
    f.write(&br_config().replace("2001:db8:ffff::1", "2001:db8:ffff::2"));
    assert_eq!(
        error(ask(&ctx, &Request::Reload)),
        "reload refused, old configuration kept: BR address or rules changed; restart the daemon"
    );
}

#[test]
fn a_scrape_of_the_ce_counts_traffic_io_and_lost_events() {
    let f = ConfigFile::new("metrics", CE);
    let ctx = context(&f.0);
    let (len, _) = one_flow(&ctx);
    ctx.counters.rx_packets.store(1, Ordering::Relaxed);
    let now = crate::clock::now_since(ctx.start);
    let text = crate::metrics::scrape(
        ctx.shared.lock().unwrap().metrics(now),
        &ctx.counters.snapshot(),
        std::time::Duration::from_secs(42),
    );
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(x)
                | prometheus_parse::Value::Counter(x)
                | prometheus_parse::Value::Untyped(x) => x,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("mape_packets_total", Some(("direction", "lan_in"))),
        Some(1.0)
    );
    assert_eq!(
        value("mape_bytes_total", Some(("direction", "wan_out"))),
        Some((len + 40) as f64)
    );
    assert_eq!(
        value("mape_ports_in_use", Some(("proto", "udp"))),
        Some(1.0)
    );
    assert_eq!(value("mape_events_lost_total", None), Some(0.0));
    assert_eq!(
        value("mape_tun_packets_total", Some(("direction", "read"))),
        Some(1.0)
    );
    // Started 42 s before the scrape, in Unix seconds (± 1 s for the clock's tick).
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let started = value("process_start_time_seconds", None).unwrap();
    assert!(
        (started - (unix_now - 42.0)).abs() <= 1.0,
        "{started} vs {unix_now}"
    );
    assert_eq!(
        value(
            "mape_build_info",
            Some(("version", env!("CARGO_PKG_VERSION")))
        ),
        Some(1.0)
    );
    // Refusals by reason, each refusal reason present at zero.
    for reason in ["host_quota", "ports_exhausted", "session_limit"] {
        assert_eq!(
            value("mape_refusals_total", Some(("reason", reason))),
            Some(0.0),
            "{reason}"
        );
    }
    assert_eq!(
        value("mape_drops_total", Some(("reason", "frag_timeout"))),
        Some(0.0)
    );
    assert_eq!(
        value("mape_drops_total", Some(("reason", "source_outside_lan"))),
        Some(0.0)
    );
    assert_eq!(
        value("mape_drops_total", Some(("reason", "host_limit"))),
        Some(0.0)
    );
    // The forward's internal host and the one flow's.
    assert_eq!(value("mape_nat_host_records", None), Some(2.0));
    assert_eq!(
        value("mape_nat_host_records_released_total", Some(("why", "cap"))),
        Some(0.0)
    );
}

#[test]
fn the_datapath_wakes_at_the_first_session_timer() {
    let f = ConfigFile::new("deadline", CE);
    let ctx = context(&f.0);
    assert_eq!(ctx.shared.lock().unwrap().next_deadline(), None);
    let t0 = crate::clock::now_since(ctx.start);
    one_flow(&ctx);
    let mut p = ctx.shared.lock().unwrap();
    let d = p.next_deadline().expect("a session timer");
    // `udp_unanswered = 20` in the configuration: 20 s after the packet.
    assert!(
        (20_000..=20_000 + 1_000).contains(&d.since(t0)),
        "{} ms",
        d.since(t0)
    );
    let sessions = |p: &dyn crate::pipeline::Pipeline| p.status(d).budget.unwrap().sessions;
    p.tick(mape_nat::Timestamp::from_millis(d.millis() - 1));
    assert_eq!(sessions(&**p), 1);
    p.tick(d);
    assert_eq!(sessions(&**p), 0);
    assert_eq!(p.next_deadline(), None);
}

/// `promtool check metrics` (Debian's prometheus package), the reference linter of the
/// exposition format and its naming conventions, accepts a CE's scrape after traffic.
/// Skips when promtool is absent, except under CI (CI=true), where that is a failure.
#[test]
fn promtool_accepts_the_exposition() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let f = ConfigFile::new("promtool", CE);
    let ctx = context(&f.0);
    one_flow(&ctx);
    let now = crate::clock::now_since(ctx.start);
    let fill = ctx.shared.lock().unwrap().metrics(now);
    let text = crate::metrics::scrape(
        fill,
        &ctx.counters.snapshot(),
        std::time::Duration::from_secs(1),
    );
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "promtool missing under CI: {e}"
            );
            eprintln!("skipping: promtool not found ({e}); apt-get install prometheus");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(crate::metrics::text_format_004(&text).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn sessions_in_steps_of_one_slot_answer_what_one_step_answers() {
    let f = ConfigFile::new("steps", CE);
    let ctx = context(&f.0);
    {
        let mut p = ctx.shared.lock().unwrap();
        for sport in 40000..40005 {
            let pkt = udp4(HOST, sport, DNS, 53, b"query");
            p.process_batch(crate::clock::now_since(ctx.start), &[&pkt], &mut |_| {});
        }
    }
    let now = crate::clock::now_since(ctx.start);
    let rows = |q: &SessionQuery, scan| -> Vec<SessionInfo> {
        let r = sessions(&ctx, now, q, scan).unwrap();
        serde_json::from_value(data(r)).unwrap()
    };
    let ports = |rows: &[SessionInfo]| rows.iter().map(|r| r.internal.port).collect::<Vec<_>>();
    let all = SessionQuery::default();
    let whole = rows(&all, usize::MAX);
    assert_eq!(ports(&whole), [40000, 40001, 40002, 40003, 40004]);
    assert_eq!(ports(&rows(&all, 1)), ports(&whole));
    assert_eq!(ports(&rows(&all, 2)), ports(&whole));
    let three = SessionQuery {
        limit: Some(3),
        ..SessionQuery::default()
    };
    assert_eq!(ports(&rows(&three, 1)), [40000, 40001, 40002]);
    // A limit above the maximum is clamped, not refused (the lab asks for 100000).
    let many = SessionQuery {
        limit: Some(100_000),
        ..SessionQuery::default()
    };
    assert_eq!(ports(&rows(&many, 1)), ports(&whole));
    // The BR keeps no sessions: the command stays unknown there.
    let b = ConfigFile::new("steps-br", &br_config());
    let br = context(&b.0);
    assert!(
        error(sessions(&br, now, &all, 1).unwrap_or_else(Response::err))
            .starts_with("unknown command \"sessions\"")
    );
}
