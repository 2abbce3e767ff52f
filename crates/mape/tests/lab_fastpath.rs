//! The kernel fast path end to end (issue #13), in network namespaces with real clients
//! and servers (iperf3, a UDP echo server, Linux TCP):
//! - iperf3 through CE and BR takes the fast path of both, and the truth views count
//!   every packet iperf3 counted, whichever path carried it;
//! - a TCP connection keeps working while its entry moves between paths (SIGHUP reloads
//!   remove and re-install every entry);
//! - an entry never outlives its engine session: a UDP flow that falls silent expires,
//!   and the CE's BPF map (read with bpftool, not through mape) is empty;
//! - `kill -9` of the CE leaves its tc filter, which stops forwarding within the
//!   deadline; the next start replaces it (one filter per interface, a new program) and
//!   the restored flow is forwarded again.
//!
//! Needs root and the tools of scripts/install-deps.sh (iperf3, python3, bpftool, tc).
//! Without them the test skips with a message, except under CI (CI=true), where that is
//! a failure. Every wait is bounded; every process is started through the lab and killed
//! by PID at teardown, also when an assertion fails (the lab tears down on drop).

use std::time::{Duration, Instant};

use mape_control::reply::{FastPathStatus, Status};
use mape_lab::{Lab, LabOptions};
use serde_json::Value;

mod common;
use common::bin as mape;

fn fast_path(s: &Status) -> FastPathStatus {
    s.fast_path.clone().expect("status names the fast path")
}

fn br_status(lab: &Lab) -> Status {
    let sock = lab.dir.join("br.sock");
    let v = mape_control::request(&sock, &mape_control::Request::Status).expect("BR status");
    serde_json::from_value(v).expect("BR status shape")
}

fn json_of(lab: &Lab, ns: &str, argv: &[&str]) -> Value {
    let out = lab.exec(ns, argv).expect("command");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// mape's tc filters at ingress of `dev` in the CE namespace: (handle, program id).
fn our_filters(lab: &Lab, dev: &str) -> Vec<(String, u64)> {
    let ce = lab.ns("ce");
    let v = json_of(
        lab,
        &ce,
        &["tc", "-j", "filter", "show", "dev", dev, "ingress"],
    );
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let o = f.get("options")?;
            let handle = o.get("handle")?.as_str()?.to_string();
            let id = o.get("prog")?.get("id")?.as_u64()?;
            Some((handle, id))
        })
        .filter(|(h, _)| h == "0x6d61")
        .collect()
}

/// The keys of the CE's LAN → tunnel map as (IP protocol, LAN source port), read with
/// bpftool through the program attached to br-lan (independent of mape's own accounting;
/// `struct ce_out_key`: source, destination, source port, destination port, protocol).
fn ce_out_keys(lab: &Lab) -> Vec<(u8, u16)> {
    let ce = lab.ns("ce");
    let filters = our_filters(lab, "br-lan");
    let Some((_, prog)) = filters.first() else {
        return vec![];
    };
    let p = json_of(
        lab,
        &ce,
        &["bpftool", "-j", "prog", "show", "id", &prog.to_string()],
    );
    let byte = |v: &Value| {
        v.as_str()
            .and_then(|h| u8::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0)
    };
    for id in p["map_ids"].as_array().into_iter().flatten() {
        let id = id.as_u64().unwrap_or(0).to_string();
        let m = json_of(lab, &ce, &["bpftool", "-j", "map", "show", "id", &id]);
        if m["name"] == "ce_out" {
            let d = json_of(lab, &ce, &["bpftool", "-j", "map", "dump", "id", &id]);
            return d
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let k: Vec<u8> = e["key"].as_array()?.iter().map(byte).collect();
                    Some((*k.get(12)?, u16::from_be_bytes([*k.get(8)?, *k.get(9)?])))
                })
                .collect();
        }
    }
    panic!("no ce_out map behind program {prog}");
}

/// Whether lan1's UDP flow from `sport` has an entry.
fn udp_entry(lab: &Lab, sport: u16) -> bool {
    ce_out_keys(lab).contains(&(17, sport))
}

/// One UDP exchange from lan1's port `sport` with the echo server: whether it came back.
fn udp_echo(lab: &Lab, sport: u16) -> bool {
    let lan1 = lab.ns("lan1");
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{sport}))\n\
         s.settimeout(0.5)\ns.sendto(b'x',('203.0.113.10',{port}))\n\
         try:\n  s.recv(100); print('ok')\nexcept OSError: print('lost')\n",
        port = mape_lab::churn::UDP_ECHO_PORT
    );
    let out = lab
        .exec(&lan1, &["python3", "-c", &code])
        .expect("udp client");
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within {limit:?}: {what}");
}

fn iperf(lab: &Lab, args: &[&str]) -> Value {
    let lan1 = lab.ns("lan1");
    let mut argv = vec!["iperf3", "-c", "203.0.113.10", "-J"];
    argv.extend_from_slice(args);
    json_of(lab, &lan1, &argv)
}

#[test]
fn established_flows_take_the_fast_path_and_every_packet_is_counted() {
    if !mape_lab::possible_or_skip("fast path lab test") {
        return;
    }
    let mut opts = LabOptions::new(mape(), "mape");
    opts.fast_path = "auto".into();
    // A UDP flow answered once and silent for 3 s expires (the default is 300 s).
    opts.nat_extra = "[nat.timeouts]\nudp_answered_once = 3\n".into();
    let mut lab = Lab::up(opts).expect("lab up");
    let ce0 = lab.ce_status().expect("CE status");
    let f = fast_path(&ce0);
    assert!(f.active, "CE fast path active: {f:?}");
    assert_eq!(
        f.interfaces,
        vec!["br-lan".to_string(), "ce-wan".to_string()]
    );
    assert!(fast_path(&br_status(&lab)).active, "BR fast path active");
    assert_eq!(our_filters(&lab, "br-lan").len(), 1);
    assert_eq!(our_filters(&lab, "ce-wan").len(), 1);

    // 1. Bulk TCP: carried by the fast path, counted by the truth views.
    let lan_in0 = ce0.traffic_lan_in();
    let v = iperf(&lab, &["-t", "3"]);
    let sent = v["end"]["sum_sent"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(sent > 1e8, "iperf3 moved {sent} bytes");
    std::thread::sleep(Duration::from_millis(1500)); // one fold-back
    let ce1 = lab.ce_status().expect("CE status");
    let f1 = fast_path(&ce1);
    let lan_in = (ce1.traffic_lan_in() - lan_in0) as f64;
    eprintln!(
        "iperf3 sent {sent} B; the CE counted {lan_in} B from the LAN; the fast path forwarded {} packets out",
        f1.out.packets
    );
    assert!(f1.out.packets > 10_000, "{f1:?}");
    // IP bytes are the payload plus 52-byte headers per ~1448-byte segment: within 5 %.
    assert!(
        lan_in >= sent && lan_in <= sent * 1.05,
        "the CE's lan_in bytes ({lan_in}) against iperf3's payload ({sent})"
    );
    let br = br_status(&lab);
    assert!(
        fast_path(&br).out.packets > 10_000,
        "the BR forwarded in the kernel too"
    );

    // 2. A TCP connection across two reloads (every entry removed and re-installed).
    let ce_pid = lab.ce_pid().expect("CE pid");
    let lan1 = lab.ns("lan1");
    let dir = lab.dir.display().to_string();
    let bg = lab
        .spawn(
            &lan1,
            "iperf-reload",
            &[
                "sh",
                "-c",
                &format!("iperf3 -c 203.0.113.10 -t 6 -J > {dir}/reload.json"),
            ],
        )
        .expect("iperf3");
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(2));
        let _ = std::process::Command::new("kill")
            .args(["-HUP", &ce_pid.to_string()])
            .status();
    }
    wait_until(
        "iperf3 across reloads ends",
        Duration::from_secs(15),
        || lab.exit_status(bg).is_some(),
    );
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.dir.join("reload.json")).unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert!(r.get("error").is_none(), "iperf3 across reloads: {r}");
    let moved = r["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(moved > 1e8, "iperf3 across reloads moved {moved} bytes");
    assert!(
        lab.log("ce")
            .matches("SIGHUP: configuration reloaded")
            .count()
            >= 2
    );

    // 3. A UDP flow: installed once answered, gone from the map when its session expires.
    assert!(udp_echo(&lab, 41000), "UDP echo through the CE");
    wait_until(
        "the answered UDP flow is in the map",
        Duration::from_secs(3),
        || udp_entry(&lab, 41000),
    );
    assert!(udp_echo(&lab, 41000), "again, by the fast path");
    wait_until(
        "the expired flow's entry leaves the map",
        Duration::from_secs(10),
        || !udp_entry(&lab, 41000),
    );
    // What stays are iperf3's TCP connections, closed by FIN: their close rode the fast
    // path and their entries live as long as their TIME_WAIT sessions (240 s).
    let keys = ce_out_keys(&lab);
    assert!(
        !keys.is_empty(),
        "iperf3's FIN-closed connections keep their entries"
    );
    assert!(keys.iter().all(|&(proto, _)| proto == 6), "{keys:?}");
    let s = lab.ce_status().expect("status");
    assert_eq!(fast_path(&s).entries, keys.len() as u64);
    let q = mape_control::SessionQuery {
        state: Some("time_wait".into()),
        ..Default::default()
    };
    let closing = lab
        .ce_query(&mape_control::Request::Sessions(q))
        .expect("sessions in TIME_WAIT");
    // Every entry is one of those sessions (one closed by a reset instead has none).
    let closing: Vec<u16> = closing
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["internal"].as_str()?.rsplit(':').next()?.parse().ok())
        .collect();
    for (_, sport) in &keys {
        assert!(
            closing.contains(sport),
            "entry {sport} without a closing session: {closing:?}"
        );
    }
    // Their FINs were forwarded by the programs and counted as told to the engine.
    assert!(
        fast_path(&s).fins >= keys.len() as u64,
        "fins {} for {} closed connections",
        fast_path(&s).fins,
        keys.len()
    );
    // Their handshakes' answers too: each was armed at its SYN, and the SYN-ACK opened
    // the entry in the kernel.
    assert!(
        fast_path(&s).syn_acks > 0,
        "no SYN-ACK forwarded by the programs: {:?}",
        fast_path(&s)
    );

    // 4. kill -9: the filter stays, stops forwarding at the deadline; a start replaces it.
    assert!(udp_echo(&lab, 41001));
    wait_until(
        "the second flow is in the map",
        Duration::from_secs(3),
        || udp_entry(&lab, 41001),
    );
    let old_prog = our_filters(&lab, "br-lan")[0].1;
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &ce_pid.to_string()])
        .status();
    wait_until("the CE dies", Duration::from_secs(5), || {
        lab.exit_status(ce_pid).is_some()
    });
    assert_eq!(
        our_filters(&lab, "br-lan").len(),
        1,
        "left attached by kill -9"
    );
    std::thread::sleep(mape_fastpath::DEADLINE + Duration::from_millis(500));
    assert!(
        !udp_echo(&lab, 41001),
        "past the deadline nothing is forwarded without the engine"
    );
    let ce = lab.ns("ce");
    let argv = lab.ce_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.spawn(&ce, "ce-again", &argv).expect("start CE");
    lab.wait_ce().expect("CE answers");
    let filters = our_filters(&lab, "br-lan");
    assert_eq!(filters.len(), 1, "replaced, not duplicated: {filters:?}");
    assert_ne!(filters[0].1, old_prog, "a new program");
    assert_eq!(our_filters(&lab, "ce-wan").len(), 1);
    assert!(udp_echo(&lab, 41001), "the restored flow works again");
}

/// What `show status` counted from the LAN, in bytes.
trait LanIn {
    fn traffic_lan_in(&self) -> u64;
}

impl LanIn for Status {
    fn traffic_lan_in(&self) -> u64 {
        match self.traffic {
            mape_control::reply::Traffic::Ce { lan_in, .. } => lan_in.bytes,
            _ => 0,
        }
    }
}
