//! Acceptance facts of `mape replay` (issue "see the port budget run out before it happens
//! on the line"), asserted on the library report.

use std::io::Cursor;
use std::net::Ipv4Addr;

mod common;
use common::policy;

use mape_replay::{
    budget_port_set, linktype, render_json, render_svg, render_text, replay_capture,
    replay_scenario, replay_scenario_to_pcap, PcapWriter, ReplayConfig, Report, ScenarioKind,
    ScenarioParams,
};

const NORMAL: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const STORM: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 23);

fn flow_storm(rate_x: f64, duration_s: u64) -> Report {
    let mut p = ScenarioParams::new(ScenarioKind::FlowStorm);
    p.rate_x = rate_x;
    p.duration_s = duration_s;
    let cfg = ReplayConfig::new(budget_port_set(240).unwrap());
    replay_scenario(&p, cfg, |_, _| {}).unwrap()
}

fn assert_incident_facts(r: &Report) {
    let rtx = policy(r, "rtx830-like");
    assert!(
        rtx.exhausted_at_s.is_some(),
        "rtx830-like exhausts: {rtx:?}"
    );
    assert!(rtx.refused > 0);
    assert!(
        rtx.refused_by_host[&NORMAL] >= 1,
        "the normal host suffers under rtx830-like"
    );
    assert_eq!(rtx.peak_ports, 240);
    let mape = policy(r, "mape");
    assert_eq!(
        mape.refused_by_host[&NORMAL], 0,
        "mape never refuses the household"
    );
    assert!(mape.exhausted_at_s.is_none());
    assert!(
        mape.peak_ports * 2 < r.budget,
        "mape's peak {} stays well under the budget",
        mape.peak_ports
    );
    for p in [mape, rtx] {
        assert_eq!(p.culprit, Some(STORM), "{}: culprit", p.name);
        let pat = p.culprit_pattern.as_deref().unwrap_or("");
        assert!(pat.contains("192.168.1.211"), "{}: pattern {pat}", p.name);
    }
    // Every LAN host seen is listed, zero included.
    for p in &r.policies {
        assert!(p.refused_by_host.contains_key(&NORMAL));
        assert!(p.refused_by_host.contains_key(&STORM));
    }
}

#[test]
fn flow_storm_one_hour_at_the_seed_rate() {
    let r = flow_storm(1.0, 3600);
    println!("{}", render_text(&r));
    assert_incident_facts(&r);
    // The 240 ports die within minutes under the 900 s timer (nat-facts.md §7: 180-360 s).
    let t = policy(&r, "rtx830-like").exhausted_at_s.unwrap();
    assert!((150.0..=420.0).contains(&t), "exhausted at {t} s");
    assert!(r.advice.contains("192.168.1.23"), "{}", r.advice);
    let text = render_text(&r);
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn flow_storm_one_hour_at_100x() {
    let r = flow_storm(100.0, 3600);
    println!("{}", render_text(&r));
    assert_incident_facts(&r);
    assert!(policy(&r, "rtx830-like").exhausted_at_s.unwrap() < 10.0);
}

#[test]
fn json_has_the_contract_keys() {
    let r = flow_storm(1.0, 600);
    let v: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    common::report_keys::assert_report_keys(&v);
    let names: Vec<_> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["mape", "linux-like", "rtx830-like"]);
    for p in v["policies"].as_array().unwrap() {
        assert!(p["refused_by_host"]["192.168.1.10"].is_u64());
    }
    assert!(v["skipped"]["non_first_fragment"].is_u64());
}

fn replay_bytes(bytes: Vec<u8>) -> Report {
    let cfg = ReplayConfig::new(budget_port_set(240).unwrap());
    replay_capture(Cursor::new(bytes), cfg, "capture", |_, _| {}).unwrap()
}

#[test]
fn written_pcap_replays_to_the_same_report() {
    for kind in [
        ScenarioKind::FlowStorm,
        ScenarioKind::DnsBurst,
        ScenarioKind::P2p,
        ScenarioKind::NormalHome,
    ] {
        for link in [linktype::RAW, linktype::ETHERNET] {
            let mut p = ScenarioParams::new(kind);
            p.duration_s = 900;
            let (direct, _, replayed) = common::pcap_round_trip(&p, 240, link);
            common::assert_replayed_alike(&direct, &replayed, &kind.to_string());
            for (a, b) in direct.policies.iter().zip(&replayed.policies) {
                assert_eq!(a.exhausted_at_s, b.exhausted_at_s, "{kind} {}", a.name);
            }
            assert_eq!(direct.series, replayed.series, "{kind}");
        }
    }
}

#[test]
fn other_scenarios_tell_their_story() {
    let cfg = || ReplayConfig::new(budget_port_set(240).unwrap());
    let mut p = ScenarioParams::new(ScenarioKind::DnsBurst);
    p.duration_s = 900;
    let r = replay_scenario(&p, cfg(), |_, _| {}).unwrap();
    println!("{}", render_text(&r));
    assert!(policy(&r, "rtx830-like").peak_ports > policy(&r, "mape").peak_ports);
    let mut p = ScenarioParams::new(ScenarioKind::NormalHome);
    p.duration_s = 900;
    let r = replay_scenario(&p, cfg(), |_, _| {}).unwrap();
    println!("{}", render_text(&r));
    for pol in &r.policies {
        assert!(pol.exhausted_at_s.is_none(), "{}", pol.name);
        assert_eq!(pol.refused, 0, "{}", pol.name);
        assert!(pol.replies.delivered > 0);
    }
    let mut p = ScenarioParams::new(ScenarioKind::P2p);
    p.duration_s = 900;
    let r = replay_scenario(&p, cfg(), |_, _| {}).unwrap();
    println!("{}", render_text(&r));
}

#[test]
fn corrupt_and_truncated_captures_keep_what_was_read() {
    let mut p = ScenarioParams::new(ScenarioKind::FlowStorm);
    p.duration_s = 300;
    let cfg = ReplayConfig::new(budget_port_set(240).unwrap());
    let mut w = PcapWriter::new(Vec::new(), linktype::RAW).unwrap();
    let full = replay_scenario_to_pcap(&p, cfg, &mut w, linktype::RAW, |_, _| {}).unwrap();
    let bytes = w.finish().unwrap();
    // Truncated in the middle of a record.
    let cut = replay_bytes(bytes[..bytes.len() / 2 + 7].to_vec());
    assert!(cut
        .capture_error
        .as_deref()
        .unwrap_or("")
        .contains("truncated"));
    assert!(cut.packets > 0 && cut.packets < full.packets);
    // A corrupt record length in the middle.
    let mut bad = bytes.clone();
    let first_len = u32::from_le_bytes(bad[24 + 8..24 + 12].try_into().unwrap()) as usize;
    let second = 24 + 16 + first_len;
    bad[second + 8..second + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let r = replay_bytes(bad);
    assert_eq!(r.packets, 1);
    assert!(r.capture_error.as_deref().unwrap_or("").contains("corrupt"));
    // Zero-length packets and an unknown link type are counted and skipped.
    let mut w = PcapWriter::new(Vec::new(), 147).unwrap();
    w.write(1_000, &[]).unwrap();
    w.write(2_000, &[1, 2, 3]).unwrap();
    let r = replay_bytes(w.finish().unwrap());
    assert_eq!(r.skipped["zero_length"], 1);
    assert_eq!(r.skipped["unknown_link_type"], 1);
    assert_eq!(r.replayed, 0);
    // Not a capture at all.
    let cfg = ReplayConfig::new(budget_port_set(240).unwrap());
    let e = replay_capture(
        Cursor::new(b"GET / HTTP/1.1\r\n".to_vec()),
        cfg,
        "x",
        |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a pcap"), "{e}");
}

#[test]
fn the_plot_is_an_svg_with_every_policy() {
    let r = flow_storm(1.0, 900);
    let svg = render_svg(&r).unwrap();
    assert!(svg.starts_with("<svg"));
    for p in &r.policies {
        assert!(svg.contains(&p.name), "{}", p.name);
    }
    assert!(svg.contains("budget: 240 ports"));
    assert!(svg.contains("time (minutes)"));
    assert!(svg.contains("exhausted after"));
    let dir = std::env::temp_dir().join(format!("mape-replay-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = mape_replay::write_plot(&r, &dir.join("x.png")).unwrap_err();
    assert!(png.to_string().contains("only SVG"), "{png}");
    mape_replay::write_plot(&r, &dir.join("x.svg")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
