//! `mape replay` as a library: replay a capture (pcap / pcapng) or a built-in scenario
//! through mape's NAT engine under several policies side by side, and see when the shared
//! IPv4 port budget (240 ports on v6plus) would run out, who suffers and who causes it —
//! before it happens on the line.
//!
//! Layers, sans-IO at the core:
//! - [`capture`]: streaming pcap/pcapng reader (bounded memory, typed errors) and writer;
//! - [`packet`]: frame decoding to the engine's terms, skip reasons, IPv4 encoding;
//!   everything from the IP header up is parsed and built by `mape-wire` (views, `Repr`s,
//!   checksums). The one exception: the capture's link layer (Ethernet and 802.1Q tags,
//!   Linux cooked SLL/SLL2, BSD loopback) is read by offset in [`packet`], because the
//!   router never sees a link layer (it runs on a TUN device) and `mape-wire` has no view
//!   for one;
//! - [`scenario`]: deterministic traffic generators (`flow-storm`, `dns-burst`, `p2p`,
//!   `normal-home`, `tcp-churn`, `udp-churn`), lazy iterators over a small event heap;
//! - [`lan`]: which addresses are the LAN, so which way a packet crosses the router;
//! - [`replayer`]: the [`Replayer`] that runs one engine per policy over one pass of the
//!   input, remembers translations so answers are fed back inbound, samples ports in use;
//! - [`series`]: the ports-in-use samples over time, bounded in length;
//! - [`report`]: the [`Report`] as text (80 columns) or JSON (stable keys);
//! - [`plot`]: the ports-in-use chart as SVG.
//!
//! ```
//! use mape_replay::{budget_port_set, replay_scenario, ReplayConfig, ScenarioKind, ScenarioParams};
//! let mut params = ScenarioParams::new(ScenarioKind::FlowStorm);
//! params.duration_s = 600;
//! let cfg = ReplayConfig::new(budget_port_set(240).unwrap());
//! let report = replay_scenario(&params, cfg, |_, _| {}).unwrap();
//! let rtx = report.policies.iter().find(|p| p.name == "rtx830-like").unwrap();
//! assert!(rtx.exhausted_at_s.is_some());
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod capture;
pub mod lan;
pub mod packet;
pub mod plot;
pub mod replayer;
pub mod report;
mod rng;
pub mod scenario;
pub mod series;

use std::io::{Read, Write};

use mape_rules::PortSet;

pub use capture::{CaptureError, CaptureReader, Frame, PcapWriter};
pub use lan::{Direction, Lan};
pub use packet::{decode, linktype, Packet, SkipReason};
pub use plot::{render_svg, write_plot, PlotError};
pub use replayer::{policies_by_name, ReplayConfig, ReplayError, Replayer, DEFAULT_EXTERNAL};
pub use report::{render_json, render_text, PolicyReport, Report};
pub use scenario::{Scenario, ScenarioError, ScenarioKind, ScenarioPacket, ScenarioParams};
pub use series::{SamplePoint, Series, MAX_POLICIES};

/// Everything that can stop a replay.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input is not a capture, or could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The replay could not be set up.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Bad scenario parameters.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// Writing the scenario capture failed.
    #[error("writing the capture: {0}")]
    Write(#[source] std::io::Error),
    /// A scenario packet could not be built for the capture.
    #[error("building a packet for the capture: {0}")]
    Encode(#[source] mape_wire::WireError),
}

/// Why a `--ports` size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no port set has {0} ports here; accepted sizes: {list}", list = BUDGET_SIZES.iter().map(|(n, _, _)| n.to_string()).collect::<Vec<_>>().join(", "))]
pub struct BudgetError(pub u32);

/// Accepted `--ports` sizes with the PSID offset `a` and length `k` that give them
/// (ports = (2^a − 1) · 2^(16−a−k); 65536 is an unshared address).
pub const BUDGET_SIZES: [(u32, u8, u8); 7] = [
    (240, 4, 8),
    (252, 6, 8),
    (504, 6, 7),
    (1008, 6, 6),
    (2016, 6, 5),
    (4032, 6, 4),
    (65536, 0, 0),
];

/// A port set with exactly `ports` ports (PSID 1), from [`BUDGET_SIZES`].
pub fn budget_port_set(ports: u32) -> Result<PortSet, BudgetError> {
    let &(_, a, k) = BUDGET_SIZES
        .iter()
        .find(|(n, _, _)| *n == ports)
        .ok_or(BudgetError(ports))?;
    if k == 0 {
        return Ok(PortSet::all());
    }
    PortSet::new(1, k, a).map_err(|_| BudgetError(ports))
}

/// Replays a capture read from `input` (wrap files in a `BufReader`). `progress` gets
/// (bytes read, frames) every few thousand frames. A capture that breaks off (truncated,
/// corrupt) ends the replay with what was read, noted in the report; input that is not a
/// capture at all, or a read error, is an error.
pub fn replay_capture<R: Read>(
    input: R,
    cfg: ReplayConfig,
    source: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, RunError> {
    let mut replayer = Replayer::new(cfg)?;
    let mut reader = CaptureReader::new(input)?;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                replayer.feed_frame(f.ts_ns, f.link, f.data);
                if replayer.frames() % 4096 == 0 {
                    progress(reader.position(), replayer.frames());
                }
            }
            Ok(None) => break,
            Err(e @ CaptureError::Io { .. }) => return Err(e.into()),
            Err(e) => {
                replayer.set_capture_error(e.to_string());
                break;
            }
        }
    }
    progress(reader.position(), replayer.frames());
    Ok(replayer.finish(source))
}

/// Start of the capture clock for scenarios written with `--write-pcap` (2023-11-14).
pub const SCENARIO_EPOCH_NS: u64 = 1_700_000_000 * 1_000_000_000;

/// Runs a scenario through the engines. `progress` gets (scenario milliseconds done,
/// scenario length).
pub fn replay_scenario(
    params: &ScenarioParams,
    cfg: ReplayConfig,
    progress: impl FnMut(u64, u64),
) -> Result<Report, RunError> {
    run_scenario::<std::io::Sink>(params, cfg, None, progress)
}

/// Runs a scenario through the engines and writes every packet, as a valid IPv4 packet, to
/// `pcap` (opened with link type [`linktype::RAW`] or [`linktype::ETHERNET`]: `link`).
pub fn replay_scenario_to_pcap<W: Write>(
    params: &ScenarioParams,
    cfg: ReplayConfig,
    pcap: &mut PcapWriter<W>,
    link: u32,
    progress: impl FnMut(u64, u64),
) -> Result<Report, RunError> {
    run_scenario(params, cfg, Some((pcap, link)), progress)
}

fn run_scenario<W: Write>(
    params: &ScenarioParams,
    cfg: ReplayConfig,
    mut pcap: Option<(&mut PcapWriter<W>, u32)>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, RunError> {
    let mut replayer = Replayer::new(cfg)?;
    let scenario = Scenario::new(params.clone())?;
    let end = scenario.end_ms();
    let mut ipbuf = Vec::with_capacity(1600);
    let mut frame = Vec::with_capacity(1600);
    let mut ip_id: u16 = 0;
    for (n, sp) in scenario.enumerate() {
        replayer.feed(sp.at_ms, &sp.packet);
        if let Some((w, link)) = pcap.as_mut() {
            ip_id = ip_id.wrapping_add(1);
            packet::encode_ipv4(&sp.packet, sp.payload, ip_id, &mut ipbuf)
                .map_err(RunError::Encode)?;
            let data = if *link == linktype::ETHERNET {
                packet::ethernet_frame(&ipbuf, &mut frame);
                &frame
            } else {
                &ipbuf
            };
            w.write(SCENARIO_EPOCH_NS + sp.at_ms * 1_000_000, data)
                .map_err(RunError::Write)?;
        }
        if n % 8192 == 0 {
            progress(sp.at_ms, end);
        }
    }
    progress(end, end);
    Ok(replayer.finish(params.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_sizes() {
        for (n, _, _) in BUDGET_SIZES {
            assert_eq!(budget_port_set(n).unwrap().count(), n, "{n}");
        }
        let e = budget_port_set(241).unwrap_err().to_string();
        assert!(e.contains("240, 252"), "{e}");
    }
}
