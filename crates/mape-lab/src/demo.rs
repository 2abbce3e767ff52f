//! `mape lab demo`: the incident, live. For each policy the lab runs the storm from lan2 at
//! 100× the seed's rate while lan1 resolves a name and fetches a page in a bounded loop,
//! and tshark on the ISP link counts storm packets that crossed the tunnel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::LabError;
pub use crate::servers::lan1_iteration;
use crate::topology::{Lab, LabOptions};
use crate::traffic::{count_frames, Keep};

/// One policy's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// Policy.
    pub name: String,
    /// lan1 iterations (DNS + HTTP) that worked.
    pub lan1_ok: u32,
    /// lan1 iterations that failed.
    pub lan1_failed: u32,
    /// Storm packets seen inside the tunnel on the ISP link.
    pub storm_packets_into_tunnel: u64,
    /// Peak ports in use (the CE's budget).
    pub peak_ports: u64,
    /// Storm packets sent.
    pub storm_packets_sent: u64,
    /// Refusals the CE counted.
    pub refusals: u64,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DemoResult {
    /// Ports in the budget.
    pub budget: u32,
    /// Seconds of storm per policy.
    pub storm_seconds: u64,
    /// Rate multiplier.
    pub rate_x: u32,
    /// Per policy.
    pub policies: Vec<PolicyResult>,
}

/// Demo parameters.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `mape` binary.
    pub mape: PathBuf,
    /// Policies to compare.
    pub policies: Vec<String>,
    /// Storm duration.
    pub duration: Duration,
    /// Rate multiplier.
    pub rate_x: u32,
    /// lan1 iterations.
    pub iterations: u32,
    /// Storm target.
    pub target: (std::net::Ipv4Addr, u16),
}

/// Runs the demo for one policy.
pub fn run_policy(opts: &DemoOptions, policy: &str) -> Result<PolicyResult, LabError> {
    let mut lab = Lab::up(LabOptions::new(opts.mape.clone(), policy))?;
    let isp = lab.ns("isp");
    let lan2 = lab.ns("lan2");
    // Count storm packets inside the tunnel: IPv6 next header 4 whose inner IPv4
    // destination (bytes 56..60 of the outer packet) is the storm target.
    let target_hex = format!("0x{:08x}", u32::from(opts.target.0));
    let filter = format!("ip6 and ip6[6] == 4 and ip6[56:4] == {target_hex}");
    let (capture, pcap) = lab.capture(&isp, "tunnel", "isp-ce", &filter, Keep::Headers)?;
    std::thread::sleep(Duration::from_secs(2));
    let targets = [
        format!("{}:{}", opts.target.0, opts.target.1),
        format!("{}:59781", opts.target.0),
    ];
    let storm = lab.storm(
        &lan2,
        "storm",
        &targets,
        opts.rate_x,
        opts.duration.as_secs(),
    )?;
    // Let the storm build up, then measure lan1 while it goes on.
    std::thread::sleep(Duration::from_secs(3));
    let (mut ok, mut failed) = (0, 0);
    let t0 = Instant::now();
    for i in 0..opts.iterations {
        if lan1_iteration(&lab) {
            ok += 1;
        } else {
            failed += 1;
        }
        let spacing = opts.duration.saturating_sub(Duration::from_secs(5)) / opts.iterations.max(1);
        if let Some(w) = (spacing * (i + 1)).checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    lab.wait_pid(storm, opts.duration + Duration::from_secs(10));
    let budget = lab.ce_status()?.budget;
    let peak = budget.as_ref().map_or(0, |b| u64::from(b.peak));
    let refusals = budget.as_ref().map_or(0, |b| b.refusals);
    lab.stop_capture(capture);
    let count = count_frames(&pcap);
    let sent = lab
        .log("storm")
        .lines()
        .find_map(|l| {
            l.strip_prefix("storm packets sent: ")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    lab.teardown();
    Ok(PolicyResult {
        name: policy.into(),
        lan1_ok: ok,
        lan1_failed: failed,
        storm_packets_into_tunnel: count,
        peak_ports: peak,
        storm_packets_sent: sent,
        refusals,
    })
}

/// Runs every policy.
pub fn run(opts: &DemoOptions) -> Result<DemoResult, LabError> {
    let mut policies = Vec::new();
    for p in &opts.policies {
        policies.push(run_policy(opts, p)?);
    }
    Ok(DemoResult {
        budget: 240,
        storm_seconds: opts.duration.as_secs(),
        rate_x: opts.rate_x,
        policies,
    })
}
