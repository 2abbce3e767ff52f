//! Ordinary churn must never lock a host out (issue #18): short TCP connections to one
//! server, one-shot UDP exchanges from new source ports, and single pings, each far more
//! than the 240 ports of the lab CE's port set, under the default `mape` policy. The idle
//! state they leave (closed TCP, answered one-shot exchanges, answered pings) must be
//! recycled for the host that holds it, so every connection, exchange, lookup and ping
//! works. Only correctness is asserted, never speed.
//!
//! Needs root and the tools of scripts/install-deps.sh. Without them the tests skip with a
//! message, except under CI (CI=true), where that is a failure. Every loop is bounded in
//! count and in time; the lab is torn down by `Drop` also when an assertion fails.

use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mape_lab::churn::{
    self, ConnLoop, ConnLoopResult, ConnMode, UdpExchanges, UdpExchangesResult, UDP_ECHO_PORT,
};
use mape_lab::{addr, Lab, LabError, LabOptions};

mod common;
use common::{bin as mape, text as out};

/// Whether the lab can run here; panics under CI when it cannot.
fn lab_possible() -> bool {
    mape_lab::possible_or_skip("end-to-end tests")
}

/// One lab at a time within this binary (`cargo test` runs tests as threads of one
/// process, and a lab's namespace prefix is per process).
fn one_lab_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `mape show ports --json` from the CE: (TCP in use, TCP total, UDP in use, ICMP in use,
/// refusals, the whole answer).
fn show_ports(lab: &Lab) -> (u64, u64, u64, u64, u64, serde_json::Value) {
    let sock = lab.ce_socket().display().to_string();
    let o = std::process::Command::new(mape())
        .args(["show", "ports", "--json", "--socket", &sock])
        .output()
        .expect("mape show ports");
    assert!(o.status.success(), "mape show ports: {}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("show ports JSON");
    let snap = &v["snapshot"];
    let proto = |name: &str, key: &str| {
        snap["protocols"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["proto"] == name))
            .and_then(|p| p[key].as_u64())
            .unwrap_or(0)
    };
    (
        proto("tcp", "in_use"),
        proto("tcp", "total"),
        proto("udp", "in_use"),
        proto("icmp", "in_use"),
        snap["refusals"].as_u64().unwrap_or(0),
        v,
    )
}

/// Sleeps until `start + period`, if that is still ahead.
fn pace(start: Instant, period: Duration) {
    if let Some(rest) = period.checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// Keeps the first `max` failures of a probe as "label: what it printed (or why it did not
/// run)".
fn note_failure(
    failures: &mut Vec<String>,
    max: usize,
    what: Result<Output, LabError>,
    label: impl FnOnce() -> String,
) {
    if failures.len() < max {
        let what = what.map(|o| out(&o)).unwrap_or_else(|e| e.to_string());
        failures.push(format!("{}: {}", label(), what.trim()));
    }
}

/// Side connections of one host: attempts, successes, the first failures.
#[derive(Debug, Default)]
struct Side {
    attempts: u32,
    ok: u32,
    failures: Vec<String>,
}

#[test]
fn tcp_connect_loop_to_one_server_never_locks_the_host_out() {
    if !lab_possible() {
        return;
    }
    let _one = one_lab_at_a_time();
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let (lan1, lan2) = (lab.ns("lan1"), lab.ns("lan2"));
    let secs = 60;
    // lan1: connect, GET, read to EOF (the server closes first), close; one at a time, as
    // fast as it goes, for 60 s. A failed connect pauses 10 ms so a refusing CE is not
    // flooded.
    let lp = ConnLoop {
        target: (addr::SERVER, 80),
        duration: Duration::from_secs(secs),
        concurrency: 1,
        timeout: Duration::from_secs(2),
        mode: ConnMode::Http,
        fail_pause: Duration::from_millis(10),
        max: 500_000,
    };
    let pid = lp.spawn(&mut lab, &lan1, "connloop").expect("connect loop");
    // Meanwhile lan1 and lan2 each fetch a page from another server every 0.5 s.
    let side_url = format!("http://{}/index.html", addr::SERVER2);
    let mut side = [
        ("lan1", &lan1, Side::default()),
        ("lan2", &lan2, Side::default()),
    ];
    let t0 = Instant::now();
    for _ in 0..(secs * 2 + 10) {
        if t0.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let round = Instant::now();
        for (name, ns, s) in side.iter_mut() {
            s.attempts += 1;
            let o = lab.exec(ns, &["curl", "-s", "-S", "-f", "-m", "3", &side_url]);
            match o {
                Ok(o) if o.status.success() && out(&o).contains("mape lab") => s.ok += 1,
                other => {
                    note_failure(&mut s.failures, 5, other, || {
                        format!("{name} at {:.1} s", t0.elapsed().as_secs_f64())
                    });
                }
            }
        }
        pace(round, Duration::from_millis(500));
    }
    let finished = lab.wait_pid(pid, Duration::from_secs(20));
    let r: ConnLoopResult = churn::result(&lab, "connloop")
        .unwrap_or_else(|| panic!("the loop printed no result: {}", lab.log("connloop")));
    let (tcp_in_use, tcp_total, _, _, refusals, ports) = show_ports(&lab);
    let summary = format!(
        "connect loop to {}:80: {} ok, {} failed in {:.1} s ({:.0} connects/s), first failure \
         after {:?} connects at {:?} s: {:?}, errors {:?}\n\
         side fetches from {}: lan1 {}/{} {:?}, lan2 {}/{} {:?}\n\
         CE: tcp {tcp_in_use}/{tcp_total} ports in use, {refusals} refusals",
        addr::SERVER,
        r.ok,
        r.fail,
        r.secs,
        r.rate(),
        r.first_fail_after,
        r.first_fail_at_s,
        r.first_error,
        r.errors,
        addr::SERVER2,
        side[0].2.ok,
        side[0].2.attempts,
        side[0].2.failures,
        side[1].2.ok,
        side[1].2.attempts,
        side[1].2.failures,
    );
    eprintln!("{summary}");
    assert!(finished, "the connect loop did not end: {summary}");
    assert!(r.ok > 0, "{summary}");
    assert_eq!(
        r.fail, 0,
        "lan1's connect loop to one server was refused: {summary}"
    );
    for (name, _, s) in &side {
        assert!(s.attempts > 0, "{summary}");
        assert_eq!(
            s.ok, s.attempts,
            "{name} could not connect to another server during lan1's loop: {summary}"
        );
    }
    assert!(
        tcp_total > 0 && tcp_in_use <= tcp_total,
        "tcp in use {tcp_in_use} beyond the budget {tcp_total}: {ports}"
    );
    lab.teardown();
}

#[test]
fn udp_one_shot_exchanges_keep_dns_alive() {
    if !lab_possible() {
        return;
    }
    let _one = one_lab_at_a_time();
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan1 = lab.ns("lan1");
    let secs = 60;
    // lan1: one datagram from a new source port (20000, 20001, ...) to the echo server,
    // one reply awaited (1 s at most), 25 times a second for 60 s.
    let ux = UdpExchanges {
        target: (addr::SERVER, UDP_ECHO_PORT),
        rate: 25,
        duration: Duration::from_secs(secs),
        timeout: Duration::from_secs(1),
        max: 25 * 60,
        base_port: 20000,
    };
    let pid = ux.spawn(&mut lab, &lan1, "udpx").expect("udp exchanges");
    // Meanwhile lan1 resolves a name once a second.
    let (mut digs, mut dig_ok, mut dig_failures) = (0u32, 0u32, Vec::new());
    let t0 = Instant::now();
    for _ in 0..(secs + 5) {
        if t0.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let round = Instant::now();
        digs += 1;
        let o = lab.exec(
            &lan1,
            &[
                "dig",
                "@203.0.113.10",
                addr::WWW,
                "+time=1",
                "+tries=1",
                "+short",
            ],
        );
        match o {
            Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "203.0.113.10" => dig_ok += 1,
            other => {
                note_failure(&mut dig_failures, 5, other, || {
                    format!("at {:.1} s", t0.elapsed().as_secs_f64())
                });
            }
        }
        pace(round, Duration::from_secs(1));
    }
    let finished = lab.wait_pid(pid, Duration::from_secs(20));
    let r: UdpExchangesResult = churn::result(&lab, "udpx")
        .unwrap_or_else(|| panic!("the UDP loop printed no result: {}", lab.log("udpx")));
    let (_, _, udp_in_use, _, refusals, _) = show_ports(&lab);
    let summary = format!(
        "one-shot UDP exchanges with {}:{UDP_ECHO_PORT}: {} sent, {} answered, {} failed in \
         {:.1} s, first failure after {:?} answered at {:?} s: {:?}, errors {:?}\n\
         dig @203.0.113.10 {}: {dig_ok}/{digs} {dig_failures:?}\n\
         CE: udp {udp_in_use} ports in use, {refusals} refusals",
        addr::SERVER,
        r.sent,
        r.replied,
        r.fail,
        r.secs,
        r.first_fail_after,
        r.first_fail_at_s,
        r.first_error,
        r.errors,
        addr::WWW,
    );
    eprintln!("{summary}");
    assert!(finished, "the UDP loop did not end: {summary}");
    assert!(digs > 0, "{summary}");
    assert_eq!(
        dig_ok, digs,
        "lan1's DNS failed during its UDP exchanges: {summary}"
    );
    assert!(r.sent > 0, "{summary}");
    assert_eq!(
        r.replied, r.sent,
        "one-shot UDP exchanges went unanswered: {summary}"
    );
    lab.teardown();
}

#[test]
fn six_hundred_single_pings_all_succeed() {
    if !lab_possible() {
        return;
    }
    let _one = one_lab_at_a_time();
    let lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan1 = lab.ns("lan1");
    let want = 600u32;
    let limit = Duration::from_secs(300);
    let (mut sent, mut ok, mut failures) = (0u32, 0u32, Vec::new());
    let mut first_failure = None;
    let t0 = Instant::now();
    while sent < want && t0.elapsed() < limit {
        sent += 1;
        let o = lab.exec(&lan1, &["ping", "-n", "-c1", "-W2", "203.0.113.10"]);
        match o {
            Ok(o) if o.status.success() => ok += 1,
            other => {
                first_failure.get_or_insert(sent);
                note_failure(&mut failures, 3, other, || format!("ping {sent}"));
            }
        }
    }
    let (_, _, _, icmp_in_use, refusals, _) = show_ports(&lab);
    let summary = format!(
        "{ok}/{sent} single pings of 203.0.113.10 answered in {:.1} s, first failure at ping \
         {first_failure:?}: {failures:?}\nCE: icmp {icmp_in_use} ids in use, {refusals} refusals",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("{summary}");
    assert_eq!(sent, want, "ran out of time: {summary}");
    assert_eq!(ok, want, "single pings failed: {summary}");
    drop(lab);
}
