//! The typed replies: what the daemon answers to each [`crate::Request`] and what its
//! clients read. The daemon builds [`Status`] and [`Reloaded`] itself; [`Snapshot`] and
//! [`SessionInfo`] are the NAT engine's own types, sent as they are and read back into the
//! same types (one definition for both ends).
//!
//! Every reply goes on the wire through a JSON value, so object keys are sorted whatever
//! the field order here.

use mape_nat::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which pipeline the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Customer edge.
    Ce,
    /// Border relay.
    Br,
}

impl Role {
    /// `ce` or `br`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Ce => "ce",
            Role::Br => "br",
        }
    }
}

/// The answer to [`crate::Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// CE or BR.
    pub role: Role,
    /// The NAT policy's name (CE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The MAP parameters.
    pub map: MapStatus,
    /// The port budget (CE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
    /// Packets and bytes each way.
    pub traffic: Traffic,
    /// Drops by reason, non-zero only.
    pub drops: BTreeMap<String, u64>,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// The io shell's own counters.
    pub io: IoStatus,
    /// The kernel fast path (`[datapath] fast_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_path: Option<FastPathStatus>,
    /// Where the CE's rule came from and when it is refreshed (absent from daemons that
    /// predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningStatus>,
    /// LAN hosts whose apps asked for external ports outside the port set (PCP, NAT-PMP,
    /// UPnP IGD), the busiest first; empty (absent) when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapping_asks_outside_set: Vec<OutsideSetAsks>,
}

/// A LAN host whose apps asked for an external port outside the CE's port set: on MAP-E
/// such a mapping could never be reached (RFC 7597 §8; what miniupnpd silently grants).
/// mape answered with an in-set port or the protocol's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideSetAsks {
    /// The LAN host.
    pub host: std::net::Ipv4Addr,
    /// How many such requests since the daemon started.
    pub requests: u64,
    /// The last one: `pcp`, `nat_pmp` or `upnp`.
    pub via: String,
    /// The last one's protocol.
    pub proto: Protocol,
    /// The last one's external port.
    pub port: u16,
}

/// The kernel fast path as `show status` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastPathStatus {
    /// `auto`, `off` or `required`, as configured.
    pub mode: String,
    /// Whether the programs are attached and forwarding.
    pub active: bool,
    /// Why it is not active (unset when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The interfaces its programs are attached to.
    pub interfaces: Vec<String>,
    /// Flows it holds now (CE) or rules (BR).
    pub entries: u64,
    /// What it forwarded, each way (CE: `out` LAN → tunnel; BR: `out` domain → internet).
    pub out: Flow,
    /// The other way.
    #[serde(rename = "in")]
    pub back: Flow,
    /// Packets it left to the TUN path, by reason (non-zero only).
    pub passed: BTreeMap<String, u64>,
    /// CE: TCP FINs it forwarded itself, each told to the engine through its event ring
    /// (a FIN the full ring could not tell is in `passed` as `events_full`).
    #[serde(default)]
    pub fins: u64,
    /// CE: SYN-ACKs of connections armed at their SYN it forwarded itself, each told to
    /// the engine the same way.
    #[serde(default)]
    pub syn_acks: u64,
}

/// Where the CE's MAP rule came from (`[provisioning]`), when, and the refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningStatus {
    /// `[provisioning] method` as configured (`map`: none, the source `[map]` names).
    pub method: String,
    /// What gave the rule in force: `static`, `profile`, `dhcpv6` or `hb46pp`.
    pub source: String,
    /// HB46PP: the server URL that answered (without parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HB46PP: the answer's `enabler_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabler_name: Option<String>,
    /// HB46PP: when the answer in force was fetched (seconds since the UNIX epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<u64>,
    /// HB46PP: when the next round starts (seconds since the UNIX epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_at: Option<u64>,
    /// HB46PP: the rule in force is the stored answer (the server was not reached since
    /// the start).
    #[serde(default)]
    pub from_store: bool,
    /// The last round's failure, while rounds fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<ProvisioningFailure>,
    /// Re-provisionings in place since the start.
    #[serde(default)]
    pub changes: u64,
    /// Sessions those changes kept (their external port still in the new set), in all.
    #[serde(default)]
    pub sessions_kept_total: u64,
    /// Sessions those changes dropped, in all.
    #[serde(default)]
    pub sessions_dropped_total: u64,
    /// The last of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<ProvisioningChange>,
    /// DHCPv6: the server's DUID (hex) that gave the lease in force; `fetched_at` is when
    /// its Reply came, `next_refresh_at` when the client Renews (T1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// DHCPv6: the delegated prefix (IA_PD) in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_prefix: Option<String>,
    /// DHCPv6 without a delegated prefix (`[provisioning.dhcpv6] mode = "stateless"`,
    /// RFC 8415 §18.2.6): the End-user prefix the rule is resolved for (`[map] prefix` or
    /// the WAN's address); `next_refresh_at` is the Information Refresh Time's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateless_end_user: Option<String>,
    /// DHCPv6: when the client Rebinds (T2), seconds since the UNIX epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebind_at: Option<u64>,
    /// DHCPv6: when the lease's valid lifetime ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Set while MAP-E is stopped because the rule's source went away (the DHCPv6 lease
    /// ended): why, in words. IPv4 routes are removed until a new lease comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A failing provisioning step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningFailure {
    /// The step: `no_record`, `dns`, `unreachable`, `refused`, `nothing_offered`,
    /// `bad_answer`, or `apply` (the answer could not be put in force).
    pub step: String,
    /// In words.
    pub detail: String,
    /// Since when rounds fail (seconds since the UNIX epoch).
    pub since: u64,
    /// Rounds failed in a row.
    pub count: u32,
}

/// A re-provisioning in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningChange {
    /// When (seconds since the UNIX epoch).
    pub at: u64,
    /// `ipv4 psid ce_ipv6 br` before.
    pub before: String,
    /// And after.
    pub after: String,
    /// Sessions whose external port is in the new port set, kept.
    pub sessions_kept: u32,
    /// Sessions dropped (port outside the new set, or another external address).
    pub sessions_dropped: u32,
}

/// MAP parameters: a CE's own, or a BR's address and rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MapStatus {
    /// A CE.
    Ce(CeMap),
    /// A BR.
    Br(BrMap),
}

/// A CE's MAP parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeMap {
    /// The shared IPv4 address.
    pub ipv4: String,
    /// The PSID (none when the CE has the whole address).
    pub psid: Option<u16>,
    /// "N in M ranges".
    pub ports: String,
    /// The port set's ranges, `lo-hi`.
    pub port_ranges: Vec<String>,
    /// The CE's IPv6 address.
    pub ce_ipv6: String,
    /// The BR address(es), comma-separated.
    pub br: String,
    /// The BMR, `v6 prefix -> v4 prefix ea N`.
    pub rule: String,
    /// Where the rule came from.
    pub rule_source: String,
}

/// A BR's MAP parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrMap {
    /// The BR address.
    pub br: String,
    /// The rules, `v6 prefix -> v4 prefix ea N`, `; `-separated.
    pub rule: String,
}

impl MapStatus {
    /// The scalar fields, in the order `show status` prints them (`-` for none).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            MapStatus::Ce(m) => vec![
                ("ipv4", m.ipv4.clone()),
                ("psid", m.psid.map_or_else(|| "-".into(), |p| p.to_string())),
                ("ports", m.ports.clone()),
                ("ce_ipv6", m.ce_ipv6.clone()),
                ("br", m.br.clone()),
                ("rule", m.rule.clone()),
                ("rule_source", m.rule_source.clone()),
            ],
            MapStatus::Br(m) => vec![("br", m.br.clone()), ("rule", m.rule.clone())],
        }
    }

    /// The port set's ranges (a CE's).
    pub fn port_ranges(&self) -> &[String] {
        match self {
            MapStatus::Ce(m) => &m.port_ranges,
            MapStatus::Br(_) => &[],
        }
    }

    /// The shared IPv4 address (a CE's).
    pub fn ipv4(&self) -> Option<&str> {
        match self {
            MapStatus::Ce(m) => Some(&m.ipv4),
            MapStatus::Br(_) => None,
        }
    }
}

/// The CE's port budget in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// Ports in the port set.
    pub total: u32,
    /// Ports in use.
    pub in_use: u32,
    /// Highest use.
    pub peak: u32,
    /// When, in seconds since start.
    pub peak_at_s: f64,
    /// Live sessions.
    pub sessions: u32,
    /// New flows refused.
    pub refusals: u64,
    /// Last refusal, seconds since start.
    pub last_refusal_s: Option<f64>,
    /// When the budget last ran out, seconds since start.
    pub exhausted_at_s: Option<f64>,
    /// Per protocol.
    pub by_protocol: Vec<ProtocolBudget>,
    /// Budget events dropped because nobody drained the engine's queue.
    #[serde(default)]
    pub events_lost: u64,
}

/// One protocol's share of the budget (the engine's `ProtoBudget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolBudget {
    /// Protocol.
    pub proto: Protocol,
    /// Ports in the set for it.
    pub total: u32,
    /// In use.
    pub in_use: u32,
    /// Highest use.
    pub peak: u32,
    /// When, milliseconds since start.
    pub peak_at: u64,
    /// Live sessions.
    pub sessions: u32,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Traffic each way: a CE names its sides LAN and WAN, a BR IPv4 and IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Traffic {
    /// A CE.
    Ce {
        /// From the LAN.
        lan_in: Flow,
        /// To the LAN.
        lan_out: Flow,
        /// From the WAN (BR).
        wan_in: Flow,
        /// To the WAN.
        wan_out: Flow,
        /// ICMP errors the CE generated.
        icmp_generated: u64,
    },
    /// A BR.
    Br {
        /// From the IPv4 internet.
        ipv4_in: Flow,
        /// To the IPv4 internet.
        ipv4_out: Flow,
        /// From the MAP domain.
        ipv6_in: Flow,
        /// To the MAP domain.
        ipv6_out: Flow,
    },
}

impl Traffic {
    /// The directions by name, in the (sorted) order of the JSON object.
    pub fn directions(&self) -> [(&'static str, Flow); 4] {
        match *self {
            Traffic::Ce {
                lan_in,
                lan_out,
                wan_in,
                wan_out,
                ..
            } => [
                ("lan_in", lan_in),
                ("lan_out", lan_out),
                ("wan_in", wan_in),
                ("wan_out", wan_out),
            ],
            Traffic::Br {
                ipv4_in,
                ipv4_out,
                ipv6_in,
                ipv6_out,
            } => [
                ("ipv4_in", ipv4_in),
                ("ipv4_out", ipv4_out),
                ("ipv6_in", ipv6_in),
                ("ipv6_out", ipv6_out),
            ],
        }
    }
}

/// The io shell's counters in [`Status`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStatus {
    /// Packets read from the TUN.
    pub rx_packets: u64,
    /// Packets written to the TUN.
    pub tx_packets: u64,
    /// Writes the kernel refused.
    pub tx_errors: u64,
    /// Read errors.
    pub rx_errors: u64,
}

/// The answer to [`crate::Request::Reload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// What changed, in words.
    pub reloaded: String,
}

/// The engine's snapshot, as the daemon sends it ([`crate::Request::Snapshot`]).
pub use mape_nat::Snapshot;

/// Its parts.
pub use mape_nat::{Culprit, DestinationStats, Forecast, HostStats, ProtoBudget, Refusal};

/// One row of `mappings`: the engine's own type.
pub use mape_nat::MappingInfo;
/// One row of [`crate::Request::Sessions`].
pub use mape_nat::SessionInfo;
