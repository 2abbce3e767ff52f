//! Why a pipeline configuration was rejected ([`CeError`], shared by the CE and the BR).

use core::fmt;

use mape_nat::ConfigError;
use mape_rules::MapError;

/// Why a CE (or BR) configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CeError {
    /// The End-user prefix does not map through the domain.
    Map(MapError),
    /// The domain has no BR address.
    NoBr,
    /// `ipv6_mtu` below 1280 (RFC 8200 §5) or `ipv4_mtu` below 68 (RFC 791).
    Mtu {
        /// Configured IPv4 MTU.
        ipv4_mtu: u16,
        /// Configured IPv6 MTU.
        ipv6_mtu: u16,
    },
    /// The NAT configuration was rejected.
    Nat(ConfigError),
}

impl fmt::Display for CeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CeError::Map(e) => write!(f, "end-user prefix does not map: {e}"),
            CeError::NoBr => f.write_str("the MAP domain has no BR address"),
            CeError::Mtu { ipv4_mtu, ipv6_mtu } => write!(
                f,
                "ipv6_mtu {ipv6_mtu} must be >= 1280 and ipv4_mtu {ipv4_mtu} >= 68"
            ),
            CeError::Nat(e) => write!(f, "nat: {e}"),
        }
    }
}

impl std::error::Error for CeError {}
