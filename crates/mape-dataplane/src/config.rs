//! The CE's configuration ([`CeConfig`]), derived from a MAP domain (RFC 7597 §5.2 BMR,
//! §6 CE address, §7 BR) and adjusted field by field.

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::NatConfig;
use mape_rules::{IidFormat, Ipv4Net, Ipv6Net, MapDomain, PortSet, Rule};

use crate::encap::FlowLabel;
use crate::error::CeError;
use crate::frag::ReassemblyConfig;
use crate::mss;

/// Everything a CE pipeline needs. Build it from a domain with
/// [`CeConfig::from_domain`] and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CeConfig {
    /// The CE's MAP IPv6 address (RFC 7597 §6): outer source, accepted destination.
    pub ce_ipv6: Ipv6Addr,
    /// The BR address (§7): default tunnel destination.
    pub br_ipv6: Ipv6Addr,
    /// Other IPv6 sources accepted as the BR (§8.1 exempts the BR from the source check;
    /// e.g. BIGLOBE replies from another address than the DMR). `br_ipv6` is always
    /// accepted.
    pub accepted_br_sources: Vec<Ipv6Addr>,
    /// The CE's (shared) external IPv4 address.
    pub external_ipv4: Ipv4Addr,
    /// The CE's port set (§5.1).
    pub port_set: PortSet,
    /// Forwarding Mapping Rules (§5.2 mesh): destinations they cover go straight to the
    /// peer CE; sources under them are checked per §8.1.
    pub fmrs: Vec<Rule>,
    /// CE IID layout, for peer CE addresses derived from FMRs.
    pub iid_format: IidFormat,
    /// Tunnel IPv4 MTU (default 1460 = 1500 − 40, §8.3.1).
    pub ipv4_mtu: u16,
    /// IPv6 path MTU toward the BR/peers before any Packet Too Big (default 1500).
    pub ipv6_mtu: u16,
    /// MSS clamp on TCP SYNs and SYN-ACKs crossing the tunnel, both ways (default
    /// `Some(1420)`); also capped by the current tunnel MTU − 40 toward the remote. `None`
    /// disables clamping.
    pub mss_clamp: Option<u16>,
    /// Source of the ICMP errors the CE generates toward the LAN (its LAN address).
    pub icmp_source_ipv4: Ipv4Addr,
    /// The LAN prefixes whose hosts the CE translates: an IPv4 packet from the LAN whose
    /// source is in none of them is dropped as
    /// `source_outside_lan` (RFC 2827 ingress filtering; RFC 7597 §8 translates the CE's own
    /// hosts only). Empty: every unicast source (library callers and tests; the daemon
    /// always sets the required `lan.prefixes`).
    pub lan_prefixes: Vec<Ipv4Net>,
    /// Outer hop limit (default 64).
    pub hop_limit: u8,
    /// Outer flow label (default zero).
    pub flow_label: FlowLabel,
    /// ICMP errors generated per second (time exceeded, frag needed, translated ICMPv6
    /// errors); `None` = unlimited, `Some(0)` = none (mape-nat's `TokenBucket`: 0 lets
    /// nothing pass, as `NatConfig::icmp_rate_per_sec`). NAT refusals are rate limited by
    /// the engine.
    pub icmp_rate_per_sec: Option<u32>,
    /// Reassembly limits (§8.3, RFC 7597 §10).
    pub reassembly: ReassemblyConfig,
    /// The NAPT policy.
    pub nat: NatConfig,
}

impl CeConfig {
    /// Derives the CE configuration from a MAP domain and the End-user prefix (RFC 7597
    /// §5.2 BMR, §6 CE address): external IPv4, port set, CE address, BR, accepted BR
    /// sources, FMRs and IID format. For an IPv4 prefix (o + r < 32) the first address is
    /// used. Defaults: MTU 1460/1500, MSS 1420, hop limit 64.
    pub fn from_domain(
        domain: &MapDomain,
        end_user: &Ipv6Net,
        icmp_source_ipv4: Ipv4Addr,
        nat: NatConfig,
    ) -> Result<Self, CeError> {
        let m = domain.map(end_user).map_err(CeError::Map)?;
        let br_ipv6 = *domain.br().first().ok_or(CeError::NoBr)?;
        Ok(Self {
            ce_ipv6: m.ce_ipv6,
            br_ipv6,
            accepted_br_sources: domain.br_sources().to_vec(),
            external_ipv4: m.share.ipv4.addr(),
            port_set: m.share.port_set,
            fmrs: domain
                .rules()
                .iter()
                .filter(|r| r.is_fmr())
                .copied()
                .collect(),
            iid_format: domain.iid_format(),
            ipv4_mtu: 1460,
            ipv6_mtu: 1500,
            mss_clamp: Some(mss::mss_for_mtu(1460)),
            icmp_source_ipv4,
            lan_prefixes: Vec::new(),
            hop_limit: 64,
            flow_label: FlowLabel::Zero,
            icmp_rate_per_sec: Some(100),
            reassembly: ReassemblyConfig::default(),
            nat,
        })
    }
}
