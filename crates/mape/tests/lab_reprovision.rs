//! Re-provisioning in place with a live TCP connection (issue #14 §3), on the full lab
//! (LAN hosts, CE, BR, internet) whose CE has no rule and takes the delegated prefix, the
//! rule and the BR from a real DHCPv6 server (ISC Kea on the ISP link, option 94). Kea is
//! restarted with another offer; the CE's client Renews every 2 s (T1) and puts the new
//! parameters in force without a restart. A Python client on lan1 sends a numbered line
//! every 100 ms over one TCP connection to an echo server on the internet host and checks
//! every answer (the number, and the address and port the server saw); any reset, close or
//! 10 s without an answer ends it with the error.
//!
//! (a) Only the BR changes (S46_BR 2001:db8:ffff::1 → ::2; the lab's BR holds both and
//!     answers from ::1, which the CE accepts as `[map] br_sources`): the MAP address and
//!     port set stay, so the same connection goes on with every line answered and a
//!     bounded stall at most, the engine keeps the session, the status and the event say
//!     before and after. The BR is then restarted with ::2 alone (it is stateless; ::1 is
//!     gone and ::2 is now also its source): the connection still runs, so the CE, fast
//!     path included, sends to the new BR.
//! (b) The delegated prefix changes (2001:db8:12:3400::/56 → 2001:db8:13:3500::/56): by
//!     hand (RFC 7597 §5.1, §6), EA bits 0x1335 → 192.0.2.19, PSID 0x35 (53), ports
//!     A·4096 + 53·16 + j (first range 4944-4959), CE address 2001:db8:13:3500:0:c000:213:35.
//!     The old session is dropped and counted (`provisioning.last_change.sessions_dropped`
//!     and the event), the server gets nothing more from the old address and port, the old
//!     client learns it (its next segment leaves from the new address, and the server,
//!     which has no such connection, resets it), the fast path then holds no flow, the MAP
//!     routes are replaced, and a new connection from lan1 works at once through
//!     192.0.2.19 on a port of PSID 53.
//!
//! Both run with `[datapath] fast_path` as the lab suites do (`auto`, or
//! `MAPE_LAB_FAST_PATH=off`, scripts/test.sh); with the fast path on, the connection is on
//! it before the change, and after it the kept or new connection is on it again.
//!
//! Needs root, kea-dhcp6 and python3 (scripts/install-deps.sh); skips without them, except
//! under CI=true. Every wait is bounded; every process is started through the lab and
//! killed by PID, and the namespaces removed, when the lab is dropped (also on failure).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mape_lab::dhcpv6::{Offer, Timers, DELEGATED};
use mape_lab::{Lab, LabOptions};
use serde_json::Value;

mod common;

/// The echo server's port on 203.0.113.10 (none of the lab's own servers use it).
const PORT: &str = "7411";
/// The BR's second address (the lab's BR accepts tunnel packets to it).
const BR2: &str = "2001:db8:ffff::2";
/// The prefix of case (b) and what it gives, by hand (module documentation).
const MOVED: &str = "2001:db8:13:3500::/56";
const MOVED_IPV4: &str = "192.0.2.19";
const MOVED_CE: &str = "2001:db8:13:3500:0:c000:213:35";
/// The longest an answer may wait across a change (a TCP retransmission or two).
const STALL_MAX_MS: u64 = 3000;
/// And across a restart of the BR (stopped, started, TCP's retransmission back-off).
const BR_RESTART_STALL_MAX_MS: u64 = 10_000;

/// One connection; sends line n every 100 ms after the answer to n-1, checks that the
/// answer is n from the same peer as the first, and keeps its state in a JSON file
/// (renamed into place): lines sent and answered, wrong answers, the longest wait between
/// two answers, the peer the server saw, and the error that ended it (reset, close, 10 s
/// without an answer).
const CLIENT: &str = r#"
import json, os, socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
st = {"sent": 0, "answered": 0, "wrong": 0, "max_gap_ms": 0, "peer": None, "error": None}
def save():
    with open(path + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(path + ".tmp", path)
try:
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(10)
    f = s.makefile("rwb")
    last, n = time.monotonic(), 0
    while True:
        f.write(b"%d\n" % n)
        f.flush()
        st["sent"] = n + 1
        line = f.readline()
        if not line:
            raise ConnectionError("closed by the server")
        peer, got = line.decode().split()
        if st["peer"] is None:
            st["peer"] = peer
        if got != str(n) or peer != st["peer"]:
            st["wrong"] += 1
        now = time.monotonic()
        st["max_gap_ms"] = max(st["max_gap_ms"], int((now - last) * 1000))
        last = now
        n += 1
        st["answered"] = n
        save()
        time.sleep(0.1)
except Exception as e:
    st["error"] = "%s: %s" % (type(e).__name__, e)
    save()
    sys.exit(1)
"#;

/// What a client's state file says.
#[derive(Debug, Clone, Default)]
struct Client {
    answered: u64,
    wrong: u64,
    max_gap_ms: u64,
    peer: String,
    error: Option<String>,
}

fn client_state(path: &Path) -> Client {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Client::default();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Client {
        answered: v["answered"].as_u64().unwrap_or(0),
        wrong: v["wrong"].as_u64().unwrap_or(0),
        max_gap_ms: v["max_gap_ms"].as_u64().unwrap_or(0),
        peer: v["peer"].as_str().unwrap_or_default().to_string(),
        error: v["error"].as_str().map(str::to_string),
    }
}

/// A running line: the lab, its CE started on Kea's offer, Kea's PID, the echo server.
struct Line {
    lab: Lab,
    kea: u32,
    sock: PathBuf,
    events: PathBuf,
    fast: bool,
}

const TIMERS: Timers = Timers {
    t1: 2,
    t2: 20,
    preferred: 40,
    valid: 60,
};

fn offer() -> Offer {
    Offer::lab(TIMERS)
}

impl Line {
    /// The lab (its BR also at [`BR2`]), Kea serving [`offer`], the CE restarted with no
    /// rule and `extra` in `[map]`, an event hook writing to `events`, and the echo
    /// server; `None` (skip) without root or Kea.
    fn up(tag: &str, map_extra: &str) -> Option<Line> {
        if !mape_lab::possible_or_skip("re-provisioning lab tests") {
            return None;
        }
        if !Path::new("/usr/sbin/kea-dhcp6").exists() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "kea-dhcp6 missing under CI (scripts/install-deps.sh installs it)"
            );
            eprintln!("skipping re-provisioning lab tests: no kea-dhcp6");
            return None;
        }
        let mut opts = LabOptions::new(common::bin(), "mape");
        opts.prefix = Some(format!("mrp{}{tag}", std::process::id()));
        opts.br = vec![mape_lab::addr::BR.into(), BR2.into()];
        let fast = opts.fast_path != "off";
        let mut lab = Lab::up(opts).expect("lab up");
        // The lab's CE runs the explicit rule: stopped, started again with none.
        let first = lab.ce_pid().expect("CE pid");
        assert!(lab.stop_pid(first).is_some_and(|s| s.success()));
        let kea = lab.serve_dhcpv6(&offer()).expect("Kea on the ISP link");
        let events = lab.dir.join("events.jsonl");
        let hook = lab.dir.join("hook.sh");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&hook, format!("#!/bin/sh\ncat >> {}\n", events.display()))
                .expect("hook");
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
                .expect("hook mode");
        }
        let config = lab
            .dhcpv6_ce_config()
            .replacen("[map]\n", &format!("[map]\n{map_extra}"), 1)
            + &format!("[events]\nhook = \"{}\"\n", hook.display());
        let (ce, sock) = (lab.ns("ce"), lab.ce_socket());
        let m = common::bin().display().to_string();
        lab.start_ce_in(&ce, &m, &config, &sock, "ce-dhcpv6")
            .expect("CE daemon starts on Kea's offer");
        common::start_peer_echo_server(&mut lab, PORT);
        let line = Line {
            lab,
            kea,
            sock,
            events,
            fast,
        };
        let s = line.status();
        assert_eq!(s["map"]["ipv4"], "192.0.2.18", "{s}\n{}", line.logs());
        assert_eq!(s["provisioning"]["delegated_prefix"], DELEGATED);
        assert_eq!(s["fast_path"]["active"], fast, "{s}");
        Some(line)
    }

    fn status(&self) -> Value {
        let ce = self.lab.ns("ce");
        common::status_json(|a| self.lab.exec(&ce, a).expect("exec"), &self.sock)
    }

    fn status_until(&self, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        common::status_until(|| self.status(), secs, done)
    }

    /// The CE's sessions (`mape show sessions --json`).
    fn sessions(&self) -> Vec<Value> {
        let (m, s) = (
            common::bin().display().to_string(),
            self.sock.display().to_string(),
        );
        let ce = self.lab.ns("ce");
        let o = self
            .lab
            .exec(&ce, &[&m, "show", "sessions", "--json", "--socket", &s])
            .expect("show sessions");
        assert!(o.status.success(), "{}", common::text(&o));
        serde_json::from_slice::<Value>(&o.stdout)
            .expect("sessions JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The session of the connection the server saw from `external`, if the engine has it.
    fn session_at(&self, external: &str) -> Option<Value> {
        let remote = format!("203.0.113.10:{PORT}");
        self.sessions()
            .into_iter()
            .find(|s| s["proto"] == "tcp" && s["external"] == external && s["remote"] == remote)
    }

    /// Restarts Kea with `offer` (the CE's next Renew gets it).
    fn reoffer(&mut self, offer: &Offer) {
        self.lab.stop_pid(self.kea);
        self.kea = self.lab.serve_dhcpv6(offer).expect("Kea restarted");
    }

    /// Starts a client on lan1 (log and state file named `name`); its state file.
    fn client(&mut self, name: &str) -> PathBuf {
        let path = self.lab.dir.join(format!("{name}.json"));
        let p = path.display().to_string();
        let lan1 = self.lab.ns("lan1");
        self.lab
            .spawn(
                &lan1,
                name,
                &["python3", "-c", CLIENT, "203.0.113.10", PORT, &p],
            )
            .expect("client");
        path
    }

    /// Waits (bounded) until the client at `path` has `n` more answers than `from`; its
    /// state, which must show no error and no wrong answer.
    fn answers(&self, path: &Path, from: u64, n: u64) -> Client {
        let t0 = Instant::now();
        loop {
            let c = client_state(path);
            assert!(c.error.is_none() && c.wrong == 0, "{c:?}\n{}", self.logs());
            if c.answered >= from + n {
                return c;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{n} answers after {from} within 20 s: {c:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// With the fast path on: waits (bounded) until it holds a flow and has forwarded
    /// more LAN → tunnel packets than `since` (from an earlier status); that count.
    fn on_fast_path(&self, since: u64) -> u64 {
        if !self.fast {
            return 0;
        }
        let s = self.status_until(10, |s| {
            let f = &s["fast_path"];
            f["active"] == true
                && f["entries"].as_u64().unwrap_or(0) >= 1
                && f["out"]["packets"].as_u64().unwrap_or(0) > since
        });
        let f = &s["fast_path"];
        assert_eq!(f["active"], true, "{s}\n{}", self.logs());
        assert!(f["entries"].as_u64().unwrap_or(0) >= 1, "{s}");
        let out = f["out"]["packets"].as_u64().unwrap_or(0);
        assert!(out > since, "the fast path carries the connection: {s}");
        out
    }

    /// The MAP routes in the CE namespace (`ip -6 route` through the TUN and unreachable).
    fn routes6(&self) -> String {
        let ce = self.lab.ns("ce");
        let o = self
            .lab
            .exec(&ce, &["ip", "-6", "route", "show", "table", "all"])
            .expect("ip route");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The hook's `provisioning_changed` events.
    fn change_events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "provisioning_changed")
            .collect()
    }

    /// The lines the echo server got from `peer`.
    fn server_lines_from(&self, peer: &str) -> usize {
        self.lab
            .log("server")
            .lines()
            .filter(|l| l.split(' ').next() == Some(peer))
            .count()
    }

    fn logs(&self) -> String {
        format!(
            "ce: {}\nkea: {}\nclients: {} | {}",
            self.lab.log("ce-dhcpv6"),
            self.lab.log("kea"),
            self.lab.log("client"),
            self.lab.log("client2")
        )
    }
}

/// The port of `addr:port`.
fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

/// Whether `port` is in the port set of PSID `psid` (a = 4, k = 8, m = 4; RFC 7597 §5.1).
fn in_port_set(port: u16, psid: u16) -> bool {
    port >> 12 != 0 && (port >> 4) & 0xff == psid
}

#[test]
fn a_br_change_keeps_the_live_tcp_connection() {
    // The BR answers from its own address (::1) after the CE moved to ::2.
    let Some(mut line) = Line::up("a", "br_sources = [\"2001:db8:ffff::1\"]\n") else {
        return;
    };
    let path = line.client("client");
    let before = line.answers(&path, 0, 10);
    let peer = before.peer.clone();
    assert!(peer.starts_with("192.0.2.18:"), "{before:?}");
    assert!(in_port_set(port_of(&peer), 0x34), "{peer}");
    line.on_fast_path(0);
    let session = line.session_at(&peer).expect("the engine has the session");
    assert_eq!(
        session["internal"]
            .as_str()
            .map(|s| s.starts_with("192.168.10.10:")),
        Some(true)
    );

    // Kea's S46_BR becomes ::2; the Renew at T1 brings it.
    line.reoffer(&Offer { br: BR2, ..offer() });
    let s = line.status_until(30, |s| s["provisioning"]["changes"] == 1);
    assert_eq!(s["provisioning"]["changes"], 1, "{s}\n{}", line.logs());
    assert_eq!(s["map"]["ipv4"], "192.0.2.18");
    assert_eq!(s["map"]["psid"], 52);
    assert_eq!(s["map"]["ce_ipv6"], mape_lab::addr::CE_MAP);
    assert_eq!(s["map"]["br"], BR2, "{s}");
    let c = &s["provisioning"]["last_change"];
    let said = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    assert!(said("before").contains("ipv4 192.0.2.18 psid 52"), "{c}");
    assert!(said("before").ends_with("br 2001:db8:ffff::1"), "{c}");
    assert!(said("after").contains("ipv4 192.0.2.18 psid 52"), "{c}");
    assert!(said("after").ends_with("br 2001:db8:ffff::2"), "{c}");
    assert_eq!(c["sessions_dropped"], 0, "{c}");
    assert!(c["sessions_kept"].as_u64().unwrap_or(0) >= 1, "{c}");
    let events = line.change_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["source"], "dhcpv6");
    assert_eq!(events[0]["before"], c["before"]);
    assert_eq!(events[0]["after"], c["after"]);
    assert_eq!(events[0]["sessions_dropped"], 0);
    // The MAP address's routes stay (the same address): its /128 into the TUN.
    let r = line.routes6();
    assert!(
        r.contains(&format!("{} dev mape0", mape_lab::addr::CE_MAP)),
        "{r}"
    );

    // The same connection goes on: every line answered, from the same address and port.
    let mid = line.answers(&path, before.answered, 10);
    assert!(
        mid.max_gap_ms <= STALL_MAX_MS,
        "stall of {} ms across the change: {mid:?}",
        mid.max_gap_ms
    );
    // The old BR address withdrawn: only what the CE sends to ::2 reaches the BR.
    line.lab
        .restart_br(vec![BR2.into()])
        .expect("BR restarted at ::2 alone");
    let after = line.answers(&path, mid.answered, 20);
    assert_eq!(after.peer, peer);
    assert!(
        after.max_gap_ms <= BR_RESTART_STALL_MAX_MS,
        "stall of {} ms across the BR's restart: {after:?}\n{}",
        after.max_gap_ms,
        line.lab.log("br-restarted")
    );
    let session = line.session_at(&peer);
    assert!(
        session.is_some(),
        "the engine kept the session: {:?}",
        line.sessions()
    );
    // Back on the fast path (its counters start again with its programs).
    let since = line.status()["fast_path"]["out"]["packets"]
        .as_u64()
        .unwrap_or(0);
    line.on_fast_path(since);
    eprintln!(
        "BR change: {} answers, longest wait {} ms across the change, {} ms across the BR's restart, server saw {peer} throughout",
        after.answered, mid.max_gap_ms, after.max_gap_ms
    );
}

#[test]
fn a_prefix_change_drops_the_old_session_and_a_new_connection_works_at_once() {
    let Some(mut line) = Line::up("b", "") else {
        return;
    };
    let path = line.client("client");
    let before = line.answers(&path, 0, 10);
    let old_peer = before.peer.clone();
    assert!(old_peer.starts_with("192.0.2.18:"), "{before:?}");
    line.on_fast_path(0);
    assert!(
        line.session_at(&old_peer).is_some(),
        "{:?}",
        line.sessions()
    );

    // The ISP delegates another prefix (and routes it to the CE, as its DHCPv6 server's
    // router would); the Renew at T1 brings it.
    let isp = line.lab.ns("isp");
    line.lab
        .exec_ok(
            &isp,
            &["ip", "-6", "route", "add", MOVED, "via", "2001:db8:0:1::2"],
        )
        .expect("route to the new prefix");
    line.reoffer(&Offer {
        pool: Some(MOVED),
        ..offer()
    });
    let s = line.status_until(30, |s| s["provisioning"]["changes"] == 1);
    assert_eq!(s["provisioning"]["changes"], 1, "{s}\n{}", line.logs());
    // Settled: what was in flight has arrived.
    std::thread::sleep(Duration::from_millis(300));
    let (old_lines, old_answered) = (
        line.server_lines_from(&old_peer),
        client_state(&path).answered,
    );
    assert_eq!(s["map"]["ipv4"], MOVED_IPV4, "{s}");
    assert_eq!(s["map"]["psid"], 53);
    assert_eq!(s["map"]["ce_ipv6"], MOVED_CE);
    assert_eq!(s["map"]["port_ranges"][0], "4944-4959", "{s}");
    assert_eq!(s["provisioning"]["delegated_prefix"], MOVED);
    let c = &s["provisioning"]["last_change"];
    let said = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    assert!(said("before").contains("ipv4 192.0.2.18 psid 52"), "{c}");
    assert!(said("after").contains("ipv4 192.0.2.19 psid 53"), "{c}");
    assert!(
        said("after").contains(&format!("ce_ipv6 {MOVED_CE}")),
        "{c}"
    );
    // Another external address keeps no session: the connection's is dropped, counted.
    assert_eq!(c["sessions_kept"], 0, "{c}");
    assert!(c["sessions_dropped"].as_u64().unwrap_or(0) >= 1, "{c}");
    let events = line.change_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["before"], c["before"]);
    assert_eq!(events[0]["after"], c["after"]);
    assert_eq!(events[0]["sessions_dropped"], c["sessions_dropped"]);
    assert!(line.lab.log("ce-dhcpv6").contains("provisioning_changed"));
    // The totals, in status and in the metrics (one change so far: the same count).
    let p = &s["provisioning"];
    assert_eq!(p["sessions_dropped_total"], c["sessions_dropped"], "{p}");
    assert_eq!(p["sessions_kept_total"], 0, "{p}");
    let ce = line.lab.ns("ce");
    let url = "http://127.0.0.1:9469/metrics";
    let o = (line.lab)
        .exec(&ce, &["curl", "-s", "-f", "-m", "3", url])
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let dropped = format!(
        "mape_provisioning_sessions_total{{fate=\"dropped\"}} {}",
        c["sessions_dropped"]
    );
    for want in [dropped.as_str(), "mape_provisioning_changes_total 1"] {
        assert!(text.lines().any(|l| l == want), "{want} not in the scrape");
    }
    // Routes replaced: the new /128 and unreachable /56, none of the old.
    let r = line.routes6();
    assert!(r.contains(&format!("{MOVED_CE} dev mape0")), "{r}");
    assert!(r.contains("unreachable 2001:db8:13:3500::/56"), "{r}");
    assert!(!r.contains(mape_lab::addr::CE_MAP), "{r}");
    assert!(!r.contains("2001:db8:12:3400::/56"), "{r}");
    assert!(
        line.session_at(&old_peer).is_none(),
        "{:?}",
        line.sessions()
    );

    // Nothing of the old connection crosses any more, on either path: the server gets no
    // line from the old address and port, the client no answer.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        line.server_lines_from(&old_peer),
        old_lines,
        "the old flow still crosses: {}",
        line.lab.log("server")
    );
    assert_eq!(client_state(&path).answered, old_answered);
    // The old client learns it (a reset, or 10 s without an answer), and then the fast
    // path holds no flow: no entry outlived the old session.
    let t0 = Instant::now();
    while client_state(&path).error.is_none() && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = client_state(&path);
    assert!(old.error.is_some(), "the old connection ended: {old:?}");
    if line.fast {
        let s = line.status_until(5, |s| s["fast_path"]["entries"] == 0);
        assert_eq!(s["fast_path"]["entries"], 0, "{s}");
        assert_eq!(s["fast_path"]["active"], true, "{s}");
    }

    // A new connection from the same host works at once through the new address.
    let fast_out = line.status()["fast_path"]["out"]["packets"]
        .as_u64()
        .unwrap_or(0);
    let t0 = Instant::now();
    let path2 = line.client("client2");
    let first = line.answers(&path2, 0, 1);
    let took = t0.elapsed();
    assert!(
        first.peer.starts_with(&format!("{MOVED_IPV4}:")),
        "the server sees the new address: {first:?}"
    );
    assert!(in_port_set(port_of(&first.peer), 53), "{first:?}");
    assert!(took < Duration::from_secs(3), "first answer after {took:?}");
    line.answers(&path2, first.answered, 10);
    line.on_fast_path(fast_out);
    assert!(
        line.session_at(&first.peer).is_some(),
        "{:?}",
        line.sessions()
    );
    eprintln!(
        "prefix change: old connection {old_peer} ended with {:?} after {} answers; new {} answered at once ({took:?})",
        old.error, old.answered, first.peer
    );
}
