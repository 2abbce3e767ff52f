//! MAP-E rule arithmetic (RFC 7597 §5–6): port sets, rules, domains, and ISP profiles.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod portset;

pub use portset::{PortRange, PortSet, PortSetError};
