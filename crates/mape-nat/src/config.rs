//! Engine configuration and the three named policies (`mape`, `linux-like`, `rtx830-like`),
//! each with the source of its parameters, so replay and the lab can compare them on the same
//! traffic.

use serde::{Deserialize, Serialize};

use crate::filter::{DestinationFilter, Ipv4Prefix};
use crate::types::{Endpoint, Protocol};

/// Idle timers in seconds, one per session class (RFC 4787 §4.3, RFC 5382 §5, RFC 5508 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// UDP flow that never got an answer. Not an RFC 4787 category: a documented deviation
    /// shared with Linux (`nf_conntrack_udp_timeout` 30 s) and carrier NATs.
    pub udp_unanswered: u64,
    /// UDP flow that got its answer and was not heard of again two seconds after it began
    /// (one request, one reply). `mape` keeps RFC 4787 REQ-5's timer for it while there is
    /// room and recycles it for its own host under pressure; Linux gives it 30 s
    /// (`nf_conntrack_udp_timeout`, a stream only after 2 s).
    pub udp_answered_once: u64,
    /// UDP flow that got an answer and is still active two seconds after it began (a
    /// stream). RFC 4787 REQ-5: ≥ 120 s, 300 s recommended (REQ-5c).
    pub udp_answered: u64,
    /// UDP to port 53 after its answer (RFC 4787 REQ-5a allows shorter timers for ports < 1024).
    pub udp_dns_answered: u64,
    /// TCP opening or closing (SYN sent/received, FIN seen). RFC 5382 REQ-5: ≥ 4 min.
    pub tcp_transitory: u64,
    /// TCP established idle. RFC 5382 REQ-5: ≥ 2 h 4 min.
    pub tcp_established: u64,
    /// TCP after both FINs or a RST (RFC 7857 §2.2: 4 min); reclaimed early when a port is needed.
    pub tcp_time_wait: u64,
    /// ICMP query (echo). RFC 5508 REQ-2: ≥ 60 s.
    pub icmp: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            udp_unanswered: 30,
            udp_answered_once: 300,
            udp_answered: 300,
            udp_dns_answered: 2,
            tcp_transitory: 240,
            tcp_established: 7440,
            tcp_time_wait: 240,
            icmp: 60,
        }
    }
}

/// How a new mapping picks its external port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum PortStrategy {
    /// mape: free ports while the budget is roomy (endpoint-independent, port preservation
    /// and parity where free); once `share_above_percent` of the budget is in use, new flows
    /// share in-use ports across different remote endpoints, for every protocol (RFC 7857
    /// §3 port overlapping), keeping free ports for flows that cannot share.
    BudgetAware {
        /// Percentage of the budget in use from which new flows share ports.
        share_above_percent: u8,
    },
    /// Linux conntrack + SNAT (`nf_nat_core.c`): keep the source port if its tuple is free,
    /// else probe random ports (up to 128) for one whose reply tuple is unique; a port in
    /// use by another flow is as good as a free one.
    RandomProbe,
    /// YAMAHA-like: a free port for every new flow; when none is left only TCP may reuse an
    /// in-use port toward a different destination ("port-saving IP masquerade", TCP only).
    FreeFirst {
        /// Whether TCP may share in-use ports.
        share_tcp: bool,
    },
}

/// Inbound filtering behaviour (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Deliver only from remote endpoints the mapping has sent to (RFC 7597 §10 asks
    /// address-dependent filtering or stricter).
    AddressAndPortDependent,
    /// Deliver from any remote to an unshared mapping (REQ-8 transparency option).
    EndpointIndependent,
}

/// Per-LAN-host limits (RFC 6888 REQ-4/5: per-subscriber port limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostQuota {
    /// Largest share of a protocol's budget one host may hold while other hosts are active.
    /// A host alone may use all of it.
    pub cap_percent: u8,
    /// Share of the budget kept free for hosts below their fair share (budget / active hosts).
    pub reserve_percent: u8,
    /// A host at its cap, or out of ports, gives up its own idle state for a new flow:
    /// closing TCP first, then one-shot exchanges and unanswered flows least recently used
    /// first, then streams idle 30 s. It is refused only when it holds none.
    #[serde(alias = "recycle_unanswered")]
    pub recycle_idle: bool,
}

impl Default for HostQuota {
    fn default() -> Self {
        Self {
            cap_percent: 50,
            reserve_percent: 10,
            recycle_idle: true,
        }
    }
}

/// The router's own flows (the CE host's own IPv4 traffic: DNS forwarding, NTP,
/// provisioning, probes), and the ports of the set that LAN hosts can never take from them
/// (`engine::router`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouterShare {
    /// Internal source addresses that are the router itself (the CE host's own addresses
    /// inside the LAN prefixes); none: no flow is the router's and nothing is reserved.
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// Ports of each protocol's set kept for the router: LAN hosts take a free port only
    /// while this many stay free or held by the router alone (at most half the set is kept).
    pub reserve_ports: u32,
}

/// Ports kept for the router by default (`mape` policy): a handful, enough for a DNS
/// forwarder's queries, NTP and a probe at once, under 4 % of a 240-port set.
pub const DEFAULT_ROUTER_RESERVE: u32 = 8;

/// A static port forward: inbound to `external_port` goes to `internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticForward {
    /// Protocol (tcp or udp).
    pub proto: Protocol,
    /// External port; must lie in the port set.
    pub external_port: u16,
    /// LAN endpoint that receives it.
    pub internal: Endpoint,
}

/// Everything the engine is told; build one with [`NatConfig::policy`] and adjust.
#[derive(Debug, Clone, PartialEq)]
pub struct NatConfig {
    /// Policy name shown in reports (`mape`, `linux-like`, `rtx830-like` or custom).
    pub name: String,
    /// Idle timers.
    pub timeouts: Timeouts,
    /// Port choice.
    pub strategy: PortStrategy,
    /// Inbound filtering.
    pub filtering: Filtering,
    /// Special-purpose destination filter.
    pub destinations: DestinationFilter,
    /// Per-host quota, if any.
    pub quota: Option<HostQuota>,
    /// Reclaim the oldest TIME_WAIT TCP session when no port is left (RFC 7857 §3.2).
    pub reclaim_time_wait: bool,
    /// A new TCP SYN may take the (port, remote) tuple of a closing session: a new
    /// incarnation of the connection, which the remote's TCP accepts under RFC 6191 or
    /// answers with RST (RFC 7857 §3.2; Linux conntrack does the same for closed tuples).
    pub reuse_closing_for_syn: bool,
    /// When the budget is exhausted, a newcomer may take the oldest unanswered flow of a host
    /// that is over its cap (never an answered flow, never a host within its share).
    pub reclaim_from_over_cap: bool,
    /// Answer refused flows with ICMP destination unreachable, code 13 (RFC 5508 REQ-8).
    pub icmp_on_refusal: bool,
    /// At most this many such ICMP messages per second (a `TokenBucket` with one
    /// second of burst); 0 sends none, as the bucket's 0 means.
    pub icmp_rate_per_sec: u32,
    /// Hard cap on live sessions: memory stays bounded whatever arrives.
    pub max_sessions: u32,
    /// Hard cap on per-host records (LAN source addresses the engine keeps state for):
    /// [`DEFAULT_MAX_HOSTS`] unless set; a new host beyond it is refused (`host_limit`)
    /// unless an idle record can be given up (`engine::hosts`).
    pub max_hosts: u32,
    /// Static port forwards.
    pub forwards: Vec<StaticForward>,
    /// The router's own flows and the ports kept for them.
    pub router: RouterShare,
    /// Seed of the port-choice generator (RFC 6056 randomisation, deterministic for replay).
    pub seed: u64,
    /// Warn (event `exhaustion_forecast`) when a protocol's budget would run out within
    /// this many seconds at the current rate.
    pub forecast_horizon_s: u64,
}

/// Per-host records kept at most by default: a /20 of LAN hosts, far more than a home or
/// small-office LAN has (a /24 has 254), while a LAN host sending from spoofed addresses
/// inside a wide `lan.prefixes` can hold no more than about 2 MiB of host state (a record
/// and its lists are under 512 bytes).
pub const DEFAULT_MAX_HOSTS: u32 = 4096;

/// The built-in policy names.
pub const POLICY_NAMES: [&str; 3] = ["mape", "linux-like", "rtx830-like"];

impl Default for NatConfig {
    fn default() -> Self {
        Self::mape()
    }
}

impl NatConfig {
    /// A built-in policy by name.
    pub fn policy(name: &str) -> Option<Self> {
        match name {
            "mape" => Some(Self::mape()),
            "linux-like" => Some(Self::linux_like()),
            "rtx830-like" => Some(Self::rtx830_like()),
            _ => None,
        }
    }

    /// mape's own policy: every protection on (ARCHITECTURE.md, "what a router built for this
    /// should have done").
    pub fn mape() -> Self {
        Self {
            name: "mape".into(),
            timeouts: Timeouts::default(),
            strategy: PortStrategy::BudgetAware {
                share_above_percent: 75,
            },
            filtering: Filtering::AddressAndPortDependent,
            destinations: DestinationFilter::default(),
            quota: Some(HostQuota::default()),
            reclaim_time_wait: true,
            reuse_closing_for_syn: true,
            reclaim_from_over_cap: true,
            icmp_on_refusal: true,
            icmp_rate_per_sec: 10,
            max_sessions: 1 << 20,
            max_hosts: DEFAULT_MAX_HOSTS,
            forwards: Vec::new(),
            router: RouterShare {
                addresses: Vec::new(),
                reserve_ports: DEFAULT_ROUTER_RESERVE,
            },
            seed: 0x6d61_7065,
            forecast_horizon_s: 600,
        }
    }

    /// Linux conntrack + nftables SNAT as measured here (`nf_conntrack_proto_udp.c`,
    /// `nf_conntrack_proto_tcp.c` defaults): UDP 30 s unreplied and for a one-shot exchange,
    /// 120 s once a stream (a packet 2 s after the start), TCP established 5 days, TIME_WAIT
    /// 120 s, ICMP 30 s, ports reused across destinations whenever the reply tuple is unique
    /// and a closed connection's tuple reused for a new SYN, no destination filter, no
    /// quotas, silent drop when nothing is free.
    pub fn linux_like() -> Self {
        Self {
            name: "linux-like".into(),
            timeouts: Timeouts {
                udp_unanswered: 30,
                udp_answered_once: 30,
                udp_answered: 120,
                udp_dns_answered: 30,
                tcp_transitory: 120,
                tcp_established: 432_000,
                tcp_time_wait: 120,
                icmp: 30,
            },
            strategy: PortStrategy::RandomProbe,
            filtering: Filtering::AddressAndPortDependent,
            destinations: DestinationFilter {
                enabled: false,
                ..Default::default()
            },
            quota: None,
            reclaim_time_wait: false,
            reuse_closing_for_syn: true,
            reclaim_from_over_cap: false,
            icmp_on_refusal: false,
            icmp_rate_per_sec: 0,
            max_sessions: 1 << 20,
            max_hosts: DEFAULT_MAX_HOSTS,
            forwards: Vec::new(),
            router: RouterShare::default(),
            seed: 0x6c69_6e78,
            forecast_horizon_s: 600,
        }
    }

    /// YAMAHA RTX830-like (`nat descriptor timer` and port-saving IP masquerade as public
    /// configurations describe them; vendor documentation not checked): one idle timer for
    /// every protocol, 900 s (the YAMAHA default; UNVERIFIED), DNS sessions deleted 10 s
    /// after the answer, port sharing ("port-saving IP masquerade") for TCP only, no
    /// destination filter, no per-host limit, no notice on refusal.
    pub fn rtx830_like() -> Self {
        Self {
            name: "rtx830-like".into(),
            timeouts: Timeouts {
                udp_unanswered: 900,
                udp_answered_once: 900,
                udp_answered: 900,
                udp_dns_answered: 10,
                tcp_transitory: 900,
                tcp_established: 900,
                tcp_time_wait: 900,
                icmp: 900,
            },
            strategy: PortStrategy::FreeFirst { share_tcp: true },
            filtering: Filtering::AddressAndPortDependent,
            destinations: DestinationFilter {
                enabled: false,
                ..Default::default()
            },
            quota: None,
            reclaim_time_wait: false,
            reuse_closing_for_syn: false,
            reclaim_from_over_cap: false,
            icmp_on_refusal: false,
            icmp_rate_per_sec: 0,
            max_sessions: 65_534,
            max_hosts: DEFAULT_MAX_HOSTS,
            forwards: Vec::new(),
            router: RouterShare::default(),
            seed: 0x7274_7838,
            forecast_horizon_s: 600,
        }
    }

    /// Allows special-purpose prefixes through the destination filter (the lab's documentation
    /// ranges).
    pub fn allow_destinations(mut self, prefixes: &[Ipv4Prefix]) -> Self {
        self.destinations.allow.extend_from_slice(prefixes);
        self
    }
}

/// Why a configuration was rejected; each names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A static forward's external port is not in the port set.
    #[error("forward {proto} external port {port} is not in the port set ({ranges})")]
    ForwardOutsidePortSet {
        /// Protocol.
        proto: Protocol,
        /// The port.
        port: u16,
        /// The set's ranges, folded.
        ranges: String,
    },
    /// Two forwards claim the same external port.
    #[error("forward {proto} external port {port} is given twice")]
    ForwardDuplicate {
        /// Protocol.
        proto: Protocol,
        /// The port.
        port: u16,
    },
    /// A dynamic mapping holds the port right now (on reload).
    #[error("forward {proto} external port {port} is in use by a live flow; retry when it ends")]
    ForwardBusy {
        /// Protocol.
        proto: Protocol,
        /// The port.
        port: u16,
    },
    /// Static forwards are for TCP and UDP.
    #[error("forward for {0}: only tcp and udp can be forwarded")]
    ForwardProtocol(Protocol),
    /// A percentage out of range.
    #[error("{key} = {value}: expected a percentage {min}-100")]
    Percent {
        /// Config key.
        key: &'static str,
        /// The value.
        value: u8,
        /// Smallest accepted value.
        min: u8,
    },
    /// A timer below what the RFCs require.
    #[error("timeouts.{key} = {value} s: {rule} requires at least {min} s")]
    TimerTooShort {
        /// Config key.
        key: &'static str,
        /// The value.
        value: u64,
        /// Lower bound.
        min: u64,
        /// The requirement.
        rule: &'static str,
    },
    /// A zero limit.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl NatConfig {
    /// Checks the values that do not depend on the port set. The `mape` policy holds itself
    /// to the RFC floors; the imitation policies are allowed their measured values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let PortStrategy::BudgetAware {
            share_above_percent,
        } = self.strategy
        {
            if share_above_percent > 100 {
                return Err(ConfigError::Percent {
                    key: "nat.share_above_percent",
                    value: share_above_percent,
                    min: 0,
                });
            }
        }
        if let Some(q) = self.quota {
            if q.cap_percent == 0 || q.cap_percent > 100 {
                return Err(ConfigError::Percent {
                    key: "nat.quota.cap_percent",
                    value: q.cap_percent,
                    min: 1,
                });
            }
            if q.reserve_percent > 50 {
                return Err(ConfigError::Percent {
                    key: "nat.quota.reserve_percent (at most 50)",
                    value: q.reserve_percent,
                    min: 0,
                });
            }
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::Zero("nat.max_sessions"));
        }
        if self.max_hosts == 0 {
            return Err(ConfigError::Zero("nat.max_hosts"));
        }
        let t = &self.timeouts;
        let floors: [(&'static str, u64, u64, &'static str); 4] = [
            ("udp_answered", t.udp_answered, 120, "RFC 4787 REQ-5"),
            ("tcp_established", t.tcp_established, 7440, "RFC 5382 REQ-5"),
            ("tcp_transitory", t.tcp_transitory, 240, "RFC 5382 REQ-5"),
            ("icmp", t.icmp, 60, "RFC 5508 REQ-2"),
        ];
        if self.strategy != PortStrategy::RandomProbe
            && !matches!(self.strategy, PortStrategy::FreeFirst { .. })
        {
            for (key, value, min, rule) in floors {
                if value < min {
                    return Err(ConfigError::TimerTooShort {
                        key,
                        value,
                        min,
                        rule,
                    });
                }
            }
        }
        for (key, value) in [
            ("udp_unanswered", t.udp_unanswered),
            ("udp_answered_once", t.udp_answered_once),
            ("udp_dns_answered", t.udp_dns_answered),
            ("tcp_time_wait", t.tcp_time_wait),
        ] {
            if value == 0 {
                return Err(ConfigError::TimerTooShort {
                    key,
                    value,
                    min: 1,
                    rule: "a session",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policies_validate_and_are_named() {
        for name in POLICY_NAMES {
            let c = NatConfig::policy(name).unwrap();
            assert_eq!(c.name, name);
            c.validate().unwrap();
        }
        assert!(NatConfig::policy("openwrt").is_none());
    }

    #[test]
    fn mape_keeps_rfc_floors() {
        let mut c = NatConfig::mape();
        c.timeouts.udp_answered = 60;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "timeouts.udp_answered = 60 s: RFC 4787 REQ-5 requires at least 120 s"
        );
        let mut c = NatConfig::mape();
        c.quota = Some(HostQuota {
            cap_percent: 0,
            ..Default::default()
        });
        assert!(c.validate().is_err());
    }
}
