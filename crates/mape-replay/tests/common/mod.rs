//! Helpers shared by the replay tests (`mod common;`; a test file uses some of them, hence
//! the `dead_code` allowance).
#![allow(dead_code)]

use std::io::Cursor;

use mape_replay::{
    budget_port_set, replay_capture, replay_scenario_to_pcap, PcapWriter, PolicyReport,
    ReplayConfig, Report, ScenarioParams,
};

pub(crate) mod report_keys;

/// The report of policy `name`.
pub(crate) fn policy<'a>(r: &'a Report, name: &str) -> &'a PolicyReport {
    r.policies
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no policy {name}"))
}

/// A scenario replayed directly while written as a capture of link type `link`, and that
/// capture replayed: (the direct report, the capture, the report of the capture).
pub(crate) fn pcap_round_trip(
    p: &ScenarioParams,
    budget: u32,
    link: u32,
) -> (Report, Vec<u8>, Report) {
    let cfg = ReplayConfig::new(budget_port_set(budget).unwrap());
    let mut w = PcapWriter::new(Vec::new(), link).unwrap();
    let direct = replay_scenario_to_pcap(p, cfg, &mut w, link, |_, _| {}).unwrap();
    let bytes = w.finish().unwrap();
    let cfg = ReplayConfig::new(budget_port_set(budget).unwrap());
    let replayed = replay_capture(Cursor::new(bytes.clone()), cfg, "capture", |_, _| {}).unwrap();
    (direct, bytes, replayed)
}

/// The replayed capture saw every packet, skipped none, and each policy reached the same
/// peak, refused the same hosts and delivered the same replies as the direct run.
pub(crate) fn assert_replayed_alike(direct: &Report, replayed: &Report, what: &str) {
    assert_eq!(replayed.packets, direct.packets, "{what}");
    assert!(replayed.skipped.values().all(|n| *n == 0), "{what}");
    for (a, b) in direct.policies.iter().zip(&replayed.policies) {
        assert_eq!(a.peak_ports, b.peak_ports, "{what} {}", a.name);
        assert_eq!(a.refused_by_host, b.refused_by_host, "{what} {}", a.name);
        assert_eq!(a.replies, b.replies, "{what} {}", a.name);
    }
}
