//! The `[mappings]` section (port mapping for LAN apps: PCP, NAT-PMP, UPnP IGD) and its
//! resolution into `MappingSettings`.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::{value_err, ConfigError};

/// `[mappings]` (CE mode): the port mapping protocols LAN applications ask for inbound
/// ports with, served on the LAN side only, each mapping inside the port set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingsSection {
    /// Serve PCP (RFC 6887) on UDP 5351.
    pub pcp: bool,
    /// Serve NAT-PMP (RFC 6886) on UDP 5351.
    pub natpmp: bool,
    /// Serve UPnP IGD (SSDP on 239.255.255.250:1900, HTTP on `upnp_port`).
    pub upnp: bool,
    /// TCP port of the IGD's HTTP server (description and control).
    pub upnp_port: u16,
    /// The CE's own LAN addresses to listen on (never the WAN); required when a protocol
    /// is on.
    pub listen: Vec<String>,
    /// Longest lifetime granted, in seconds.
    pub max_lifetime_s: u32,
    /// Mappings one LAN host may hold at once.
    pub max_per_host: u32,
    /// Requests answered per second, all clients together (a flood beyond is dropped and
    /// counted).
    pub requests_per_sec: u32,
}

impl Default for MappingsSection {
    fn default() -> Self {
        let limits = mape_nat::MappingLimits::default();
        Self {
            pcp: false,
            natpmp: false,
            upnp: false,
            upnp_port: 5000,
            listen: Vec::new(),
            max_lifetime_s: limits.max_lifetime_s,
            max_per_host: limits.max_per_host,
            requests_per_sec: 50,
        }
    }
}

/// The checked `[mappings]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSettings {
    /// Serve PCP.
    pub pcp: bool,
    /// Serve NAT-PMP.
    pub natpmp: bool,
    /// Serve UPnP IGD.
    pub upnp: bool,
    /// The IGD's HTTP port.
    pub upnp_port: u16,
    /// LAN addresses to listen on.
    pub listen: Vec<Ipv4Addr>,
    /// The engine's bounds.
    pub limits: mape_nat::MappingLimits,
    /// Requests answered per second.
    pub requests_per_sec: u32,
}

impl MappingSettings {
    /// Whether PCP or NAT-PMP is served (UDP 5351).
    pub fn any(&self) -> bool {
        self.pcp || self.natpmp
    }
}

pub(super) fn mapping_settings(m: &MappingsSection) -> Result<MappingSettings, ConfigError> {
    let listen = m
        .listen
        .iter()
        .map(|a| {
            a.parse::<Ipv4Addr>()
                .map_err(|_| value_err("mappings.listen", a, "the CE's LAN IPv4 addresses"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if (m.pcp || m.natpmp || m.upnp) && listen.is_empty() {
        return Err(ConfigError::Missing {
            key: "mappings.listen",
            expected:
                "the CE's LAN IPv4 address(es) to serve PCP / NAT-PMP / UPnP on (never the WAN)",
        });
    }
    if m.upnp_port == 0 {
        return Err(value_err("mappings.upnp_port", 0, "a TCP port, 1 to 65535"));
    }
    if !(1..=86_400).contains(&m.max_lifetime_s) {
        return Err(value_err(
            "mappings.max_lifetime_s",
            m.max_lifetime_s,
            "seconds, 1 to 86400",
        ));
    }
    if m.requests_per_sec == 0 {
        return Err(value_err(
            "mappings.requests_per_sec",
            0,
            "at least 1 request a second",
        ));
    }
    Ok(MappingSettings {
        pcp: m.pcp,
        natpmp: m.natpmp,
        upnp: m.upnp,
        upnp_port: m.upnp_port,
        listen,
        limits: mape_nat::MappingLimits {
            max_lifetime_s: m.max_lifetime_s,
            max_per_host: m.max_per_host,
        },
        requests_per_sec: m.requests_per_sec,
    })
}
