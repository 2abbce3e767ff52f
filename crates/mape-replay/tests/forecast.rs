//! Issue #17 on the built-in scenarios: the exhaustion forecast warns ahead of a real
//! exhaustion and never on quiet traffic, and the culprit is named by its pattern.

use mape_nat::Pattern;

mod common;
use common::policy;
use mape_replay::{
    budget_port_set, replay_scenario, ReplayConfig, Report, ScenarioKind, ScenarioParams,
};

fn run(kind: ScenarioKind, secs: u64) -> Report {
    let mut p = ScenarioParams::new(kind);
    p.duration_s = secs;
    replay_scenario(
        &p,
        ReplayConfig::new(budget_port_set(240).unwrap()),
        |_, _| {},
    )
    .unwrap()
}

/// A warning is false when the budget did not run out afterwards.
fn false_alarms(r: &Report) -> Vec<(String, f64)> {
    r.policies
        .iter()
        .filter(|p| p.exhausted_at_s.is_none())
        .filter_map(|p| p.forecast_warned_at_s.map(|w| (p.name.clone(), w)))
        .collect()
}

#[test]
fn quiet_scenarios_raise_no_false_alarm() {
    for kind in [ScenarioKind::NormalHome, ScenarioKind::DnsBurst] {
        let r = run(kind, 3600);
        assert_eq!(false_alarms(&r), [], "{kind}: warnings without exhaustion");
    }
}

#[test]
fn the_incident_is_forecast_minutes_ahead_under_rtx830_like() {
    let r = run(ScenarioKind::FlowStorm, 900);
    let rtx = policy(&r, "rtx830-like");
    let warned = rtx.forecast_warned_at_s.expect("a warning");
    let exhausted = rtx.exhausted_at_s.expect("exhausted");
    assert!(warned < exhausted);
    // The storm takes one port a second: 240 s to exhaustion, the warning within the first
    // minute (the forecast needs 30 s of samples).
    assert!(rtx.forecast_lead_s.unwrap() > 120.0, "{rtx:?}");
    assert_eq!(false_alarms(&r), []);
    for p in &r.policies {
        assert!(
            matches!(
                p.culprit_pattern_kind,
                Some(Pattern::NewPortEachFlow { .. })
            ),
            "{}: {:?}",
            p.name,
            p.culprit_pattern_kind
        );
        assert_eq!(
            p.culprit_destination,
            Some("192.168.1.211".parse().unwrap())
        );
    }
}

#[test]
fn p2p_is_named_a_fan_out_not_one_peer() {
    let r = run(ScenarioKind::P2p, 900);
    for p in &r.policies {
        let Some(Pattern::FanOut {
            destinations, top, ..
        }) = &p.culprit_pattern_kind
        else {
            panic!("{}: {:?}", p.name, p.culprit_pattern_kind);
        };
        assert!(*destinations >= 16, "{}: {destinations}", p.name);
        assert!(top.len() <= 3);
        assert_eq!(p.culprit_destination, None, "no single peer is blamed");
        let words = p.culprit_pattern.as_deref().unwrap();
        assert!(words.contains("fan-out"), "{words}");
    }
    assert_eq!(
        false_alarms(&r)
            .iter()
            .filter(|(n, _)| n != "rtx830-like")
            .count(),
        0
    );
}

#[test]
fn a_dns_burst_is_named_a_dns_storm() {
    let r = run(ScenarioKind::DnsBurst, 3600);
    let m = policy(&r, "mape");
    assert!(
        matches!(m.culprit_pattern_kind, Some(Pattern::DnsStorm { per_minute, .. }) if per_minute >= 100),
        "{:?}",
        m.culprit_pattern_kind
    );
}
