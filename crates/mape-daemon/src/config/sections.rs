//! The configuration file's sections as read from TOML (`ConfigFile` and its `[wan]`,
//! `[map]`, `[lan]`, `[tun]`, `[nat]`, `[control]`, `[state]`, `[datapath]`, `[metrics]`,
//! `[web]`, `[events]` and `[br]` tables).

use std::path::PathBuf;

use mape_nat::HostQuota;
use serde::Deserialize;

use crate::provisioning::settings::ProvisioningSection;

use super::{MappingsSection, DEFAULT_SOCKET, DEFAULT_STATE_DIR};

/// Operating mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Customer edge: NAT44 + encapsulation toward the BR.
    Ce,
    /// Border relay: stateless, for labs and ISPs.
    Br,
}

/// How the CE's MAP address reaches the daemon (docs/linux-plumbing.md, "On-link MAP address").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MapAddressMode {
    /// The ISP routes the delegated prefix to the CE: route the /128 into the TUN.
    #[default]
    Routed,
    /// The address sits on the WAN's on-link /64: answer neighbour discovery for it
    /// (proxy NDP with no delay) and route it into the TUN.
    Onlink,
}

/// `[wan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanSection {
    /// WAN interface name.
    pub interface: String,
    /// `routed` (default) or `onlink`.
    #[serde(default)]
    pub map_address: MapAddressMode,
}

/// `[map]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MapSection {
    /// End-user IPv6 prefix (delegated prefix) or the CE's /128.
    pub prefix: Option<String>,
    /// ISP profile name.
    pub profile: Option<String>,
    /// Extra profiles directory.
    pub profiles_dir: Option<PathBuf>,
    /// Explicit rule: IPv6 prefix.
    pub ipv6_prefix: Option<String>,
    /// Explicit rule: IPv4 prefix.
    pub ipv4_prefix: Option<String>,
    /// Explicit rule: EA-bits length.
    pub ea_len: Option<u8>,
    /// Explicit rule: PSID offset.
    pub psid_offset: Option<u8>,
    /// Explicit rule: PSID length.
    pub psid_len: Option<u8>,
    /// Explicit rule: PSID.
    pub psid: Option<u16>,
    /// A file holding the RFC 7598 option area as hex, written by the DHCPv6 client hook.
    pub dhcpv6_file: Option<PathBuf>,
    /// BR address(es), overriding the profile's / DHCPv6's.
    #[serde(default)]
    pub br: Vec<String>,
    /// Extra accepted BR source addresses (BIGLOBE answers from another address).
    #[serde(default)]
    pub br_sources: Vec<String>,
    /// `rfc7597` or `draft03`; default from the profile, else rfc7597.
    pub iid_format: Option<String>,
}

/// `[lan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanSection {
    /// LAN IPv4 prefixes whose hosts the CE translates.
    pub prefixes: Vec<String>,
    /// Source of the ICMP messages mape sends to LAN hosts (refusals, time exceeded, frag
    /// needed). Default: the external IPv4 address. It must not be an address of this host:
    /// the kernel drops packets from the TUN whose source is one of its own addresses.
    pub address: Option<String>,
    /// Internal sources that are the router itself (its own DNS forwarding, NTP,
    /// provisioning, probes). Default: this host's IPv4 addresses inside `prefixes`, read
    /// at start and at every reload (`crate::pipeline::ce`).
    pub router_addresses: Option<Vec<String>>,
}

/// `[tun]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TunSection {
    /// Device name.
    pub name: String,
    /// Queues (worker threads); 0 = one per core.
    pub queues: usize,
    /// IPv4 MTU put on the IPv4 routes (the device stays at 1500).
    pub ipv4_mtu: u16,
    /// IPv6 path MTU toward the BR.
    pub ipv6_mtu: u16,
    /// TCP MSS clamp on SYN (0 = derive from ipv4_mtu: mtu − 40).
    pub mss: u16,
}

impl Default for TunSection {
    fn default() -> Self {
        Self {
            name: "mape0".into(),
            queues: 0,
            ipv4_mtu: 1460,
            ipv6_mtu: 1500,
            mss: 0,
        }
    }
}

/// `[nat.quota]` (or `quota = false`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuotaSetting {
    /// `quota = false` turns quotas off.
    Enabled(bool),
    /// Parameters.
    Params(HostQuota),
}

/// `[[nat.forward]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardEntry {
    /// `tcp` or `udp`.
    pub proto: String,
    /// External port (must be in the port set).
    pub external_port: u16,
    /// LAN endpoint `a.b.c.d:port`.
    pub internal: String,
}

/// `[nat]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// `mape` (default), `linux-like`, `rtx830-like`.
    pub policy: Option<String>,
    /// Timers (seconds); missing ones keep the policy's.
    pub timeouts: Option<toml::Table>,
    /// Share ports across destinations above this percentage of the budget.
    pub share_above_percent: Option<u8>,
    /// `address-and-port-dependent` (default) or `endpoint-independent`.
    pub filtering: Option<String>,
    /// Per-host quota.
    pub quota: Option<QuotaSetting>,
    /// Special-purpose prefixes allowed through the destination filter.
    #[serde(default)]
    pub allow_destinations: Vec<String>,
    /// Turn the destination filter off entirely.
    pub destination_filter: Option<bool>,
    /// Let multicast through.
    pub allow_multicast: Option<bool>,
    /// Session table limit.
    pub max_sessions: Option<u32>,
    /// Per-host record limit (LAN source addresses with state).
    pub max_hosts: Option<u32>,
    /// Ports of each protocol's set kept for the router's own flows (default: the
    /// policy's, 8 in `mape`, 0 in the imitations).
    pub router_reserve_ports: Option<u32>,
    /// ICMP admin-prohibited on refusal.
    pub icmp_on_refusal: Option<bool>,
    /// Static forwards.
    #[serde(default)]
    pub forward: Vec<ForwardEntry>,
    /// Warn when the budget would run out within this many seconds (default 600).
    pub forecast_horizon_s: Option<u64>,
    /// Directory of the user's own signature files (`*.toml`, docs/signatures.md); default
    /// `/etc/mape/signatures.d`, missing is fine.
    pub signatures_dir: Option<PathBuf>,
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Unix socket path.
    pub socket: PathBuf,
}

impl Default for ControlSection {
    fn default() -> Self {
        Self {
            socket: DEFAULT_SOCKET.into(),
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Directory for state that outlives the process: `<tun>.lock` (one daemon per TUN
    /// and directory) and `<tun>.state` (what the daemon created, removed by the next
    /// start after a crash). Not under /run/mape, which systemd empties on every stop.
    pub dir: PathBuf,
    /// Keep the NAT session table across a restart in `<tun>.sessions` (CE only): written
    /// on SIGTERM and every `persist_interval_s`, restored on start.
    pub persist_sessions: bool,
    /// Seconds between two periodic writes of the session table: what a crash can lose.
    pub persist_interval_s: u64,
}

/// Default `[state] persist_interval_s`.
pub const DEFAULT_PERSIST_INTERVAL_S: u64 = 30;

impl Default for StateSection {
    fn default() -> Self {
        Self {
            dir: DEFAULT_STATE_DIR.into(),
            persist_sessions: true,
            persist_interval_s: DEFAULT_PERSIST_INTERVAL_S,
        }
    }
}

/// `[datapath] fast_path`: whether established flows take the kernel fast path
/// (tc-BPF, `mape-fastpath`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FastPathMode {
    /// On where the kernel allows it (BPF, tc, Ethernet interfaces); the TUN path alone
    /// otherwise, said in the log, `show status`, `doctor` and a metric.
    #[default]
    Auto,
    /// The TUN path only.
    Off,
    /// On, or the daemon does not start.
    Required,
}

impl FastPathMode {
    /// The name in the configuration and in `show status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FastPathMode::Auto => "auto",
            FastPathMode::Off => "off",
            FastPathMode::Required => "required",
        }
    }
}

/// `[datapath]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatapathSection {
    /// The kernel fast path.
    pub fast_path: FastPathMode,
    /// Most flows the fast path holds at once (each direction is one map entry); flows
    /// past it stay on the TUN path.
    pub fast_path_entries: u32,
}

/// Default `[datapath] fast_path_entries`.
pub const DEFAULT_FAST_PATH_ENTRIES: u32 = 65_536;

impl Default for DatapathSection {
    fn default() -> Self {
        Self {
            fast_path: FastPathMode::Auto,
            fast_path_entries: DEFAULT_FAST_PATH_ENTRIES,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Listen address for the Prometheus exposition, e.g. `127.0.0.1:9469`.
    pub listen: Option<String>,
}

/// `[web]`: the LAN status page, off unless `listen` is set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// An address of this router on the LAN and a port, e.g. `192.168.10.1:8080`.
    pub listen: Option<String>,
    /// The argon2 hash of the page's password, as `mape passwd` prints it.
    pub password_hash: Option<String>,
}

/// `[events]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// A command run for each event (budget 80 %, 95 %, exhausted, recovered, host capped,
    /// culprit named, culprit cleared, destination filtered) with the event as JSON on stdin. At most four
    /// run at once, each for at most ten seconds; the datapath never waits for them.
    pub hook: Option<PathBuf>,
}

/// `[br]` (BR mode).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrSection {
    /// The BR's IPv6 address (the CEs' tunnel destination).
    pub address: String,
    /// Source address of the ICMPv4 errors the BR sends (default 192.0.0.8, the IPv4
    /// dummy address of RFC 7600).
    pub icmp_source: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `ce` (default) or `br`.
    pub mode: Option<Mode>,
    /// `[wan]`.
    pub wan: Option<WanSection>,
    /// `[map]`.
    #[serde(default)]
    pub map: MapSection,
    /// `[lan]`.
    pub lan: Option<LanSection>,
    /// `[tun]`.
    #[serde(default)]
    pub tun: TunSection,
    /// `[datapath]`.
    #[serde(default)]
    pub datapath: DatapathSection,
    /// `[nat]`.
    #[serde(default)]
    pub nat: NatSection,
    /// `[control]`.
    #[serde(default)]
    pub control: ControlSection,
    /// `[state]`.
    #[serde(default)]
    pub state: StateSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[br]`.
    pub br: Option<BrSection>,
    /// `[events]`.
    #[serde(default)]
    pub events: EventsSection,
    /// `[provisioning]`.
    #[serde(default)]
    pub provisioning: ProvisioningSection,
    /// `[web]`.
    #[serde(default)]
    pub web: WebSection,
    /// `[mappings]`.
    #[serde(default)]
    pub mappings: MappingsSection,
}
