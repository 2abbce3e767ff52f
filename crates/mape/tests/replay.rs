//! `mape replay` end to end: the built binary, its JSON contract and the acceptance facts.

use std::path::PathBuf;

use serde_json::Value;

mod common;
#[path = "../../mape-replay/tests/common/report_keys.rs"]
mod report;
use common::run as mape;

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&common::stdout_ok(args)).expect("one JSON object")
}

fn policy<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no policy {name}"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mape-replay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_incident(v: &Value) {
    report::assert_report_keys(v);
    let rtx = policy(v, "rtx830-like");
    assert!(rtx["exhausted_at_s"].is_number(), "{rtx}");
    assert!(rtx["refused"].as_u64().unwrap() > 0);
    assert!(rtx["refused_by_host"]["192.168.1.10"].as_u64().unwrap() >= 1);
    let m = policy(v, "mape");
    assert_eq!(m["refused_by_host"]["192.168.1.10"], 0);
    assert!(m["exhausted_at_s"].is_null());
    assert!(
        m["peak_ports"].as_u64().unwrap() < 120,
        "{}",
        m["peak_ports"]
    );
    for p in [m, rtx] {
        assert_eq!(p["culprit"], "192.168.1.23");
        assert!(p["culprit_pattern"]
            .as_str()
            .unwrap()
            .contains("192.168.1.211"));
    }
}

#[test]
fn flow_storm_json_one_hour() {
    let v = json(&["replay", "--scenario", "flow-storm", "--json"]);
    assert_incident(&v);
    let names: Vec<_> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mape", "linux-like", "rtx830-like"]);
}

#[test]
fn flow_storm_json_at_100x() {
    let v = json(&[
        "replay",
        "--scenario",
        "flow-storm",
        "--rate-x",
        "100",
        "--duration",
        "600",
        "--json",
    ]);
    assert_incident(&v);
}

#[test]
fn text_report_fits_80_columns_and_names_the_culprit() {
    let out = mape(&["replay", "--scenario", "flow-storm", "--duration", "900"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(text.contains("192.168.1.23"));
    assert!(text.contains("rtx830-like"));
    assert!(text.contains("advice"));
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a TTY"
    );
}

#[test]
fn written_pcap_replays_to_the_same_peaks() {
    let pcap = tmp("storm.pcap");
    let p = pcap.to_str().unwrap();
    let direct = json(&[
        "replay",
        "--scenario",
        "flow-storm",
        "--duration",
        "900",
        "--write-pcap",
        p,
        "--json",
    ]);
    let replayed = json(&["replay", p, "--json"]);
    assert_eq!(direct["packets"], replayed["packets"]);
    for name in ["mape", "linux-like", "rtx830-like"] {
        let (a, b) = (policy(&direct, name), policy(&replayed, name));
        assert_eq!(a["peak_ports"], b["peak_ports"], "{name}");
        assert_eq!(a["exhausted_at_s"], b["exhausted_at_s"], "{name}");
        assert_eq!(a["refused_by_host"], b["refused_by_host"], "{name}");
    }
    // The same capture cut short: reported, replayed as far as it goes.
    let bytes = std::fs::read(&pcap).unwrap();
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).unwrap();
    let out = mape(&["replay", cut.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["capture_error"].as_str().unwrap().contains("truncated"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended early"));
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&cut);
}

#[test]
fn not_a_capture_is_one_line_and_exit_2() {
    let f = tmp("notes.txt");
    std::fs::write(&f, "these are notes, not packets\n").unwrap();
    let out = mape(&["replay", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    let _ = std::fs::remove_file(&f);
    let out = mape(&["replay", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_options_are_clear_errors() {
    let out = mape(&["replay", "--scenario", "flow-storm", "--ports", "300"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("240, 252"), "{err}");
    let out = mape(&["replay", "--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let out = mape(&["replay", "--scenario", "flow-storm", "--plot", "x.png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only SVG"));
    let out = mape(&[
        "replay",
        "--scenario",
        "flow-storm",
        "--policy",
        "mape,nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = mape(&["replay"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn policy_selection_profile_and_plot() {
    let svg = tmp("p.svg");
    let v = json(&[
        "replay",
        "--scenario",
        "flow-storm",
        "--duration",
        "600",
        "--policy",
        "mape,rtx830-like",
        "--profile",
        "v6plus",
        "--prefix",
        "240b:10:1a65:a100::/56",
        "--plot",
        svg.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["policies"].as_array().unwrap().len(), 2);
    assert_eq!(v["budget"], 240);
    assert_ne!(v["external"], "192.0.2.1", "the rule gives the address");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("rtx830-like") && s.contains("budget: 240 ports"));
    let _ = std::fs::remove_file(&svg);
}
