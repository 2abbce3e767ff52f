//! Why the NAT engine refused or dropped a packet: one closed enum whose names are the log
//! fields and metric labels (the dataplane folds these into its own reason list).

use serde::{Deserialize, Serialize};

/// A reason the engine did not translate a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatDrop {
    /// Destination is special-purpose and not globally reachable (RFC 6890): it can never be
    /// answered through the tunnel, so it gets no port.
    DestinationFiltered,
    /// The LAN host holds its whole share of the budget and has no unanswered flow to give up.
    HostQuota,
    /// No external port (or port + remote pair) is left for this flow.
    PortsExhausted,
    /// The session table is at its configured size limit.
    SessionLimit,
    /// Inbound packet for which no mapping exists.
    NoMapping,
    /// Inbound packet to a mapped port from a remote the mapping never sent to
    /// (address-and-port-dependent filtering, RFC 4787 §5).
    Filtered,
    /// Port 0 (or ICMP identifier handling asked for port 0) on either side.
    PortZero,
    /// Inbound packet to a port outside our port set.
    PortOutsideSet,
    /// Inbound packet to an address that is not ours.
    NotOurAddress,
    /// ICMP error whose embedded packet matches no session (RFC 5508 REQ-4/5).
    IcmpErrorNoSession,
    /// A new flow from a LAN address the engine has no record of while it holds
    /// `NatConfig::max_hosts` records, none of them idle: a storm of (spoofed) sources.
    /// Hosts with a record keep working.
    HostLimit,
}

impl NatDrop {
    /// Every reason, in declaration order (for counters and metrics).
    pub const ALL: [NatDrop; 11] = [
        NatDrop::DestinationFiltered,
        NatDrop::HostQuota,
        NatDrop::PortsExhausted,
        NatDrop::SessionLimit,
        NatDrop::NoMapping,
        NatDrop::Filtered,
        NatDrop::PortZero,
        NatDrop::PortOutsideSet,
        NatDrop::NotOurAddress,
        NatDrop::IcmpErrorNoSession,
        NatDrop::HostLimit,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The name used in logs, metrics and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            NatDrop::DestinationFiltered => "destination_filtered",
            NatDrop::HostQuota => "host_quota",
            NatDrop::PortsExhausted => "ports_exhausted",
            NatDrop::SessionLimit => "session_limit",
            NatDrop::NoMapping => "no_mapping",
            NatDrop::Filtered => "filtered",
            NatDrop::PortZero => "port_zero",
            NatDrop::PortOutsideSet => "port_outside_set",
            NatDrop::NotOurAddress => "not_our_address",
            NatDrop::IcmpErrorNoSession => "icmp_error_no_session",
            NatDrop::HostLimit => "host_limit",
        }
    }

    /// Whether this is a refusal of a new outbound flow (counted as a refusal in the truth).
    pub const fn is_refusal(self) -> bool {
        matches!(
            self,
            NatDrop::HostQuota
                | NatDrop::PortsExhausted
                | NatDrop::SessionLimit
                | NatDrop::HostLimit
        )
    }
}

impl core::fmt::Display for NatDrop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
