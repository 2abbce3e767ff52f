//! The NAPT44 engine of mape: sessions, a port allocator over an arbitrary MAP-E port set,
//! per-state timers, per-host quotas, a destination filter, named policies and the truth
//! about the port budget (statistics, culprits, events).
//!
//! The engine is sans-IO: time is always passed in as [`Timestamp`], never read inside, so
//! the daemon, `mape replay`, property tests and benchmarks run the same code.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

mod config;
mod drop;
mod engine;
mod filter;
mod forecast;
mod index;
mod list;
mod pattern;
mod rng;
pub mod signatures;
mod stats;
mod types;

pub use config::{
    ConfigError, Filtering, HostQuota, NatConfig, PortStrategy, StaticForward, Timeouts,
    POLICY_NAMES,
};
pub use drop::NatDrop;
pub use engine::{InboundVerdict, Nat, OutboundVerdict, RefuseNotice, SessionInfo};
pub use filter::{DestinationFilter, Ipv4Prefix, SPECIAL_PURPOSE};
pub use forecast::Forecast;
pub use pattern::Pattern;
pub use signatures::{Catalogue, DestinationKind, Signature, SignatureError};
pub use stats::{
    Culprit, DestinationStats, Event, EventKind, HostStats, ProtoBudget, Refusal, Snapshot,
};
pub use types::{
    Endpoint, InboundPacket, OutboundPacket, Protocol, SessionState, TcpFlags, Timestamp,
};
