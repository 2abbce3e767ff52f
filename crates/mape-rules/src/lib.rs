//! MAP-E rule arithmetic (RFC 7597 §5–6): port sets, rules, domains, the RFC 7598 DHCPv6
//! option codec, and ISP profiles.
//!
//! Pure functions, no IO except [`profile::ProfileSet::load_dir`]. Shifts and masks are
//! computed once when a [`Rule`] is built; per-packet work is shifts, masks and compares.
//!
//! ```
//! use mape_rules::{IidFormat, Rule, RuleSpec};
//! // RFC 7597 Appendix A, example 1.
//! let rule = Rule::new(RuleSpec::new(
//!     "2001:db8::/40".parse().unwrap(),
//!     "192.0.2.0/24".parse().unwrap(),
//!     16,
//! ))
//! .unwrap();
//! let m = rule.map_prefix(&"2001:db8:12:3400::/56".parse().unwrap(), IidFormat::Rfc7597).unwrap();
//! assert_eq!(m.share.ipv4.to_string(), "192.0.2.18/32");
//! assert_eq!(m.share.psid, Some(0x34));
//! assert_eq!(m.share.port_set.count(), 252);
//! assert_eq!(m.ce_ipv6.to_string(), "2001:db8:12:3400:0:c000:212:34");
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dhcpv6;
pub mod domain;
pub mod portset;
pub mod prefix;
pub mod profile;
pub mod provision;
pub mod rule;

pub use dhcpv6::{Dhcpv6Error, MapeContainer, PortParams, S46Rule};
pub use domain::{MapDomain, SourceCheck};
pub use portset::{PortRange, PortSet, PortSetError};
pub use prefix::{Ipv4Net, Ipv6Net, PrefixError};
pub use profile::{Profile, ProfileError, ProfileMatch, ProfileSet, Source};
pub use provision::{provision, ProvisionError, Provisioned, RuleSource};
pub use rule::{CeMapping, IidFormat, Ipv4Share, MapError, Rule, RuleError, RuleSpec};
