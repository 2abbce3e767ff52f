//! Value types the engine speaks in: time, protocols, endpoints and packet summaries.

use core::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A point in time in milliseconds since an origin the caller chooses (the daemon uses a
/// monotonic clock, replay the capture's first packet). The engine never reads a clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Seconds since the origin, as a float (for reports).
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self + ms`, saturating.
    pub const fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The transport protocols the NAPT translates. Each has its own port budget: TCP port 5000
/// and UDP port 5000 are different resources; ICMP query identifiers come from the same
/// port set (RFC 7597 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp = 0,
    /// UDP (IP protocol 17).
    Udp = 1,
    /// ICMP queries, keyed by the echo identifier (IP protocol 1).
    Icmp = 2,
}

impl Protocol {
    /// All protocols, in index order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];

    /// Dense index 0..3.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The IP protocol number.
    pub const fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
        }
    }

    /// From an IP protocol number, if the NAPT handles it.
    pub const fn from_ip_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            1 => Some(Protocol::Icmp),
            _ => None,
        }
    }

    /// Lower-case name used in logs, metrics and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

impl core::str::FromStr for Protocol {
    type Err = String;

    /// The name [`Protocol::as_str`] gives (`tcp`, `udp`, `icmp`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a protocol (tcp, udp or icmp)"))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 address and a port (or, for ICMP queries, the echo identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address.
    pub addr: Ipv4Addr,
    /// The port or ICMP identifier.
    pub port: u16,
}

impl Endpoint {
    /// `addr:port`.
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Self { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

impl core::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}' is not an endpoint (expected a.b.c.d:port)"))?;
        let addr = a
            .parse()
            .map_err(|_| format!("'{a}' in '{s}' is not an IPv4 address"))?;
        let port = p
            .parse()
            .map_err(|_| format!("'{p}' in '{s}' is not a port (0-65535)"))?;
        Ok(Self { addr, port })
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The TCP flags the state machine looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// No flags (UDP and ICMP packets carry none).
    pub const NONE: TcpFlags = TcpFlags(0);

    /// Whether every bit of `bits` is set.
    #[inline]
    pub const fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    /// A bare SYN (connection attempt).
    #[inline]
    pub const fn is_syn_only(self) -> bool {
        self.0 & (Self::SYN | Self::ACK | Self::RST) == Self::SYN
    }
}

/// What the engine needs to know of a packet from the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundPacket {
    /// Transport protocol.
    pub proto: Protocol,
    /// The LAN host's endpoint (ICMP: echo identifier as the port).
    pub src: Endpoint,
    /// The remote endpoint (ICMP: port 0).
    pub dst: Endpoint,
    /// TCP flags (zero for UDP and ICMP).
    pub flags: TcpFlags,
    /// TCP sequence number (zero for UDP and ICMP).
    pub seq: u32,
    /// TCP acknowledgement number, meaningful with the ACK flag: the remote's next sequence
    /// number the LAN host expects (RCV.NXT). The engine checks inbound RSTs against it
    /// (RFC 5961 §3.2).
    pub ack: u32,
}

/// What the engine needs to know of a packet from the tunnel, already decapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundPacket {
    /// Transport protocol.
    pub proto: Protocol,
    /// The remote endpoint (ICMP: port 0).
    pub src: Endpoint,
    /// Our external endpoint (ICMP: echo identifier as the port).
    pub dst: Endpoint,
    /// TCP flags (zero for UDP and ICMP).
    pub flags: TcpFlags,
    /// TCP sequence number (zero for UDP and ICMP): an RST is believed only when it falls
    /// in the window the LAN host acknowledged (RFC 5961 §3.2).
    pub seq: u32,
    /// TCP acknowledgement number (zero for UDP and ICMP).
    pub ack: u32,
}

/// Where a session stands; decides its timer class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// UDP or ICMP: only outbound packets seen so far.
    Unanswered,
    /// UDP or ICMP: the remote answered.
    Answered,
    /// UDP to port 53 that got its answer: closes shortly after.
    DnsAnswered,
    /// TCP: SYN sent, nothing back yet.
    SynSent,
    /// TCP: opened by an inbound SYN (static forward or endpoint-independent filtering).
    SynReceived,
    /// TCP: both sides seen.
    Established,
    /// TCP: one side sent FIN.
    FinWait,
    /// TCP: both sides sent FIN, or a RST was seen; reclaimable when the port is needed.
    TimeWait,
}

impl SessionState {
    /// All states.
    pub const ALL: [SessionState; 8] = [
        SessionState::Unanswered,
        SessionState::Answered,
        SessionState::DnsAnswered,
        SessionState::SynSent,
        SessionState::SynReceived,
        SessionState::Established,
        SessionState::FinWait,
        SessionState::TimeWait,
    ];

    /// Lower-case name used in show commands and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Unanswered => "unanswered",
            SessionState::Answered => "answered",
            SessionState::DnsAnswered => "dns_answered",
            SessionState::SynSent => "syn_sent",
            SessionState::SynReceived => "syn_received",
            SessionState::Established => "established",
            SessionState::FinWait => "fin_wait",
            SessionState::TimeWait => "time_wait",
        }
    }

    /// Whether the remote has not answered yet (the flows a capped host gives up first).
    pub const fn is_unanswered(self) -> bool {
        matches!(self, SessionState::Unanswered | SessionState::SynSent)
    }
}

impl core::str::FromStr for SessionState {
    type Err = String;

    /// The name [`SessionState::as_str`] gives (`established`, `time_wait`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a session state"))
    }
}

/// Who asked for a mapping (shown, persisted; the engine treats them all alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingOrigin {
    /// PCP MAP (RFC 6887).
    Pcp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
    /// UPnP IGD WANIPConnection.
    Upnp,
    /// The control socket or a test.
    Control,
}

impl MappingOrigin {
    /// Every origin, in code order.
    pub const ALL: [MappingOrigin; 4] = [Self::Pcp, Self::NatPmp, Self::Upnp, Self::Control];

    /// Stable snake_case name (metric label, `show mappings`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pcp => "pcp",
            Self::NatPmp => "nat_pmp",
            Self::Upnp => "upnp",
            Self::Control => "control",
        }
    }

    /// Its code in the saved table (`persist`).
    pub(crate) const fn code(self) -> u8 {
        match self {
            Self::Pcp => 1,
            Self::NatPmp => 2,
            Self::Upnp => 3,
            Self::Control => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }
}
