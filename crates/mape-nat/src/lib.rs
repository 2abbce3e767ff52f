//! The NAPT44 engine of mape: sessions, a port allocator over an arbitrary MAP-E port set,
//! per-state timers, per-host quotas, a destination filter, named policies and the truth
//! about the port budget (statistics, culprits, events).
//!
//! The engine is sans-IO: time is always passed in as [`Timestamp`], never read inside, so
//! the daemon, `mape replay`, property tests and benchmarks run the same code.
//!
//! Module order (each file uses only those before it; no import circle):
//! `types`, `drop`, `list`, `rng`, `token_bucket`, `keys`, `tier`, `query`, `filter` →
//! `config`, `forecast`, `pattern`, `signatures`, `persist` (the saved table's format) → `session` (the arena rows) → `timers`
//! (timer FIFOs) → `stats` (public statistics and per-host records) → `pool` (port pools
//! and budget levels), `ledger` (drops, refusals, events, peaks), `index` (flow indexes)
//! → `engine` (the [`Nat`] type), whose files `batch`, `state`, `alloc`, `refusal`,
//! `table`, `expiry`, `inspect`, `restore`, `offload` and `mappings` each use `engine` itself and the modules before it,
//! never each other.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod drop;
mod engine;
mod filter;
mod forecast;
mod index;
mod keys;
mod ledger;
mod list;
mod pattern;
pub mod persist;
mod pool;
mod query;
mod rng;
mod session;
pub mod signatures;
mod stats;
mod tier;
mod timers;
mod token_bucket;
mod types;

pub use config::{
    ConfigError, Filtering, HostQuota, NatConfig, PortStrategy, RouterShare, StaticForward,
    Timeouts, DEFAULT_MAX_HOSTS, DEFAULT_ROUTER_RESERVE, POLICY_NAMES,
};
pub use drop::NatDrop;
pub use engine::{
    FlowSeen, InboundVerdict, MappingGrant, MappingInfo, MappingLimits, MappingRefusal,
    MappingRequest, Nat, OffloadDrain, OffloadFlow, OffloadOp, OffloadedTcp, OutboundVerdict,
    RefuseNotice, RestoreReport, SessionInfo,
};
pub use filter::{DestinationFilter, Ipv4Prefix, SPECIAL_PURPOSE};
pub use forecast::Forecast;
pub use pattern::Pattern;
pub use persist::{PersistError, SavedTable};
pub use query::{RemoteFilter, SessionFilter};
pub use signatures::{Catalogue, DestinationKind, Signature, SignatureError};
pub use stats::{
    Culprit, DestinationStats, Event, EventKind, HostStats, MetricsView, ProtoBudget, Refusal,
    RouterStats, Snapshot,
};
pub use token_bucket::TokenBucket;
pub use types::{
    Endpoint, InboundPacket, MappingOrigin, OutboundPacket, Protocol, SessionState, TcpFlags,
    Timestamp,
};
