//! What a scenario generates: the [`ScenarioKind`]s with their one-line descriptions and
//! default host counts, and the [`ScenarioParams`] (seed, length, rate, hosts) with their
//! accepted ranges. The scenarios themselves are described in the parent module.

use core::fmt;
use core::str::FromStr;

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// The seed incident beside a normal household.
    FlowStorm,
    /// A browser resolving hundreds of names in bursts.
    DnsBurst,
    /// A torrent-like host with many peers, partly unanswered.
    P2p,
    /// A few hosts with ordinary traffic.
    NormalHome,
    /// Short TCP connections to one server in a loop, beside a household.
    TcpChurn,
    /// One-shot UDP exchanges and single pings from new ports, beside a household.
    UdpChurn,
}

impl ScenarioKind {
    /// Every scenario.
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::FlowStorm,
        ScenarioKind::DnsBurst,
        ScenarioKind::P2p,
        ScenarioKind::NormalHome,
        ScenarioKind::TcpChurn,
        ScenarioKind::UdpChurn,
    ];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            ScenarioKind::FlowStorm => "flow-storm",
            ScenarioKind::DnsBurst => "dns-burst",
            ScenarioKind::P2p => "p2p",
            ScenarioKind::NormalHome => "normal-home",
            ScenarioKind::TcpChurn => "tcp-churn",
            ScenarioKind::UdpChurn => "udp-churn",
        }
    }

    /// One line on what it models.
    pub const fn describe(self) -> &'static str {
        match self {
            ScenarioKind::FlowStorm => {
                "Logitech Options+ Flow on 192.168.1.23: 2-4 UDP packets every 3 s from new ports to 192.168.1.211, never answered"
            }
            ScenarioKind::DnsBurst => {
                "a browser on 192.168.1.30 resolving 150-400 names in bursts every ~2 min"
            }
            ScenarioKind::P2p => {
                "a torrent client on 192.168.1.40 contacting new peers, partly unanswered"
            }
            ScenarioKind::NormalHome => "a household with ordinary traffic",
            ScenarioKind::TcpChurn => {
                "192.168.1.220 opening ~5 short TCP connections a second to one server, beside a household"
            }
            ScenarioKind::UdpChurn => {
                "192.168.1.221 sending 25 one-shot UDP exchanges and 2 single pings a second from new ports"
            }
        }
    }

    /// Normal hosts when `--hosts` is not given.
    pub const fn default_hosts(self) -> u32 {
        match self {
            ScenarioKind::NormalHome => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors in scenario parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// Unknown name.
    #[error(
        "unknown scenario '{0}' (known: flow-storm, dns-burst, p2p, normal-home, tcp-churn, udp-churn)"
    )]
    Unknown(String),
    /// Rate multiplier out of range.
    #[error("--rate-x {0} is out of range (0.01 to 10000)")]
    Rate(f64),
    /// Duration out of range.
    #[error("--duration {0} s is out of range (1 s to 30 days)")]
    Duration(u64),
    /// Too many hosts.
    #[error("--hosts {0} is out of range (0 to 200)")]
    Hosts(u32),
}

impl FromStr for ScenarioKind {
    type Err = ScenarioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ScenarioError::Unknown(s.to_owned()))
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioParams {
    /// Which scenario.
    pub kind: ScenarioKind,
    /// Seed of the generator.
    pub seed: u64,
    /// Length in seconds.
    pub duration_s: u64,
    /// Rate multiplier (see the module table for what it multiplies).
    pub rate_x: f64,
    /// Normal hosts (`None`: the scenario's default).
    pub hosts: Option<u32>,
}

/// The default seed (`--seed`).
pub const DEFAULT_SEED: u64 = 7597;

impl ScenarioParams {
    /// Defaults: seed [`DEFAULT_SEED`], one hour, rate ×1, default hosts.
    pub fn new(kind: ScenarioKind) -> Self {
        Self {
            kind,
            seed: DEFAULT_SEED,
            duration_s: 3600,
            rate_x: 1.0,
            hosts: None,
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !(0.01..=10_000.0).contains(&self.rate_x) {
            return Err(ScenarioError::Rate(self.rate_x));
        }
        if !(1..=30 * 86_400).contains(&self.duration_s) {
            return Err(ScenarioError::Duration(self.duration_s));
        }
        if let Some(h) = self.hosts {
            if h > 200 {
                return Err(ScenarioError::Hosts(h));
            }
        }
        Ok(())
    }

    /// A one-line label for reports.
    pub fn label(&self) -> String {
        let mut s = format!("scenario {} (seed {}", self.kind, self.seed);
        if self.rate_x != 1.0 {
            s.push_str(&format!(", rate x{}", self.rate_x));
        }
        s.push(')');
        s
    }
}
