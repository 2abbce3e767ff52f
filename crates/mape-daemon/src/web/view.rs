//! What the status page shows, typed: [`PageData`] built from the same values the control
//! socket answers `status` and `snapshot` with (no JSON in between), the culprit in the
//! words of `mape show culprits` ([`mape_control::words`]), and the last hour of ports in
//! use ([`History`], one sample per [`SAMPLE_EVERY`], fed by a timer).

use std::collections::VecDeque;
use std::time::Duration;

use mape_control::reply::Status;
use mape_control::words::culprit_lines;
use mape_nat::{Protocol, Snapshot};
use serde::{Deserialize, Serialize};

/// Time between two samples of the chart.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Samples kept: one hour.
pub const SAMPLES: usize = 240;

/// One point of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: u64,
    /// Ports in use in the most pressed protocol (the gauge's number).
    pub used: u32,
    /// Ports in use: tcp, udp, icmp.
    pub by_proto: [u32; 3],
}

/// The last hour of samples, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample, forgetting the oldest past [`SAMPLES`].
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

/// The gauge: ports in use of the budget, per protocol, and the peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Ports in use in the most pressed protocol (what `mape show ports` calls in use).
    pub used: u32,
    /// Ports in the set (per protocol).
    pub total: u32,
    /// Highest `used` since start.
    pub peak: u32,
    /// When, in words ("12 s ago").
    pub peak_ago: String,
    /// Live sessions.
    pub sessions: u32,
    /// New flows refused.
    pub refusals: u64,
    /// Per protocol.
    pub protocols: Vec<ProtoLine>,
}

/// One protocol of the gauge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoLine {
    /// tcp, udp, icmp.
    pub proto: String,
    /// In use.
    pub used: u32,
    /// Of.
    pub total: u32,
    /// Highest seen.
    pub peak: u32,
}

/// One host, by ports held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLine {
    /// Its address.
    pub addr: String,
    /// Ports held.
    pub ports: u32,
    /// Live flows.
    pub flows: u32,
    /// Flows refused.
    pub refused: u64,
    /// Culprit score.
    pub score: f64,
}

/// One destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestLine {
    /// tcp, udp, icmp.
    pub proto: String,
    /// address:port.
    pub dst: String,
    /// Live flows.
    pub flows: u32,
    /// Flows ever.
    pub total: u64,
    /// LAN hosts that sent to it.
    pub hosts: u32,
    /// Attempts the destination filter refused.
    pub filtered: u64,
}

/// The culprit banner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    /// The host named, if one is.
    pub host: Option<String>,
    /// `mape show culprits`' lines, leading spaces removed: the first says who and what,
    /// the rest the evidence and the advice.
    pub lines: Vec<String>,
}

/// Where the MAP rule came from and what it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLine {
    /// `status`'s map fields (ipv4, psid, ports, ce ipv6, br, rule, rule source), in order.
    pub fields: Vec<(String, String)>,
}

/// Everything the page shows, as `/api/status` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageData {
    /// Seconds the daemon has run.
    pub uptime_s: u64,
    /// NAT policy.
    pub policy: Option<String>,
    /// The gauge.
    pub budget: Budget,
    /// Hosts by ports held (at most [`HOSTS_SHOWN`]).
    pub hosts: Vec<HostLine>,
    /// The culprit banner.
    pub culprit: Banner,
    /// Destinations (at most [`DESTINATIONS_SHOWN`]).
    pub destinations: Vec<DestLine>,
    /// Drops by reason as `mape show status` lists them (the NAT's refusals among
    /// them), non-zero only, most first.
    pub drops: Vec<(String, u64)>,
    /// The MAP rule.
    pub rule: RuleLine,
    /// The chart: the last hour, oldest first.
    pub history: Vec<Sample>,
}

/// Hosts listed.
pub const HOSTS_SHOWN: usize = 20;
/// Destinations listed (as `mape show destinations`).
pub const DESTINATIONS_SHOWN: usize = 30;

impl PageData {
    /// The page's data from the daemon's status and the NAT snapshot taken with it.
    pub fn new(status: &Status, snap: &Snapshot, history: Vec<Sample>) -> Self {
        let budget = Budget {
            used: snap.in_use,
            total: snap.budget,
            peak: snap.peak,
            peak_ago: mape_control::words::ago(snap.now, Some(snap.peak_at)),
            sessions: snap.sessions,
            refusals: snap.refusals,
            protocols: snap
                .protocols
                .iter()
                .map(|p| ProtoLine {
                    proto: p.proto.to_string(),
                    used: p.in_use,
                    total: p.total,
                    peak: p.peak,
                })
                .collect(),
        };
        // The datapath's counters, NAT refusals included: what `mape show status` lists.
        let mut drops: Vec<(String, u64)> =
            status.drops.iter().map(|(k, &n)| (k.clone(), n)).collect();
        drops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rule = RuleLine {
            fields: status
                .map
                .fields()
                .into_iter()
                .map(|(k, v)| (k.replace('_', " "), v))
                .collect(),
        };
        Self {
            uptime_s: status.uptime_s,
            policy: status.policy.clone(),
            budget,
            hosts: snap
                .hosts
                .iter()
                .take(HOSTS_SHOWN)
                .map(|h| HostLine {
                    addr: h.addr.to_string(),
                    ports: h.ports_held,
                    flows: h.flows,
                    refused: h.refusals,
                    score: h.culprit_score,
                })
                .collect(),
            culprit: Banner {
                host: snap.culprit.as_ref().map(|c| c.host.to_string()),
                lines: culprit_lines(snap)
                    .into_iter()
                    .map(|l| l.trim_start().to_string())
                    .collect(),
            },
            destinations: snap
                .destinations
                .iter()
                .take(DESTINATIONS_SHOWN)
                .map(|d| DestLine {
                    proto: d.proto.to_string(),
                    dst: d.dst.to_string(),
                    flows: d.flows,
                    total: d.flows_total,
                    hosts: d.hosts,
                    filtered: d.filtered,
                })
                .collect(),
            drops,
            rule,
            history,
        }
    }
}

/// A sample of the NAT engine's ports in use (constant time: the pools' counters).
pub fn sample(nat: &mape_nat::Nat, unix_s: u64) -> Sample {
    Sample {
        t: unix_s,
        used: nat.budget_used(),
        by_proto: Protocol::ALL.map(|p| nat.ports_in_use(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_hour() {
        let mut h = History::default();
        for t in 0..(SAMPLES as u64 + 10) {
            h.push(Sample {
                t,
                used: t as u32,
                by_proto: [0; 3],
            });
        }
        let s = h.samples();
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s[0].t, 10);
        assert_eq!(s[SAMPLES - 1].t, SAMPLES as u64 + 9);
        // 240 samples 15 s apart: one hour.
        assert_eq!(SAMPLE_EVERY * SAMPLES as u32, Duration::from_secs(3600));
    }
}
