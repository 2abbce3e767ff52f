//! The kernel fast path of mape (issue #13): tc-BPF programs that forward established
//! CE flows and the BR's plain-rule traffic without a TUN round trip, and the io shell
//! that loads them, attaches them with tc and keeps their maps in step with the engine.
//!
//! The engine stays the only authority: the CE's maps hold exactly the sessions the
//! engine journals as offloaded (`mape_nat::OffloadOp`), the programs forward only
//! before a deadline the daemon renews (a killed daemon's programs stop forwarding
//! within [`DEADLINE`]), and every packet they do not own goes on to the TUN, counted
//! by reason ([`layout::Counter`]).
//!
//! Module order: `layout` (the map ABI) → `objects` (the embedded ELF objects) → `tc`
//! (attach/detach) → `ce`, `br`.

pub mod layout;
mod objects;
mod tc;

mod br;
mod ce;

pub use br::{BrFastPath, BrParams, BrRule};
pub use ce::{CeFastPath, CeParams, CeSweeper};
pub use tc::{remove_ours, Hook, FILTER_HANDLE, FILTER_PRIORITY};

use std::time::Duration;

/// How long the programs keep forwarding after the daemon's last renewal: a daemon
/// killed with SIGKILL leaves them attached, and they leave every packet to the (gone)
/// slow path from then on, until the next start replaces them.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// Why the fast path could not be set up or updated.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// The kernel refused the object (no BPF, no permission, the verifier).
    #[error("loading the {object} BPF object: {source}")]
    Load {
        /// `ce` or `br`.
        object: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// The object lacks a program or map this crate expects, or its layout differs.
    #[error("the {object} BPF object does not match this build: {what}")]
    Mismatch {
        /// `ce` or `br`.
        object: &'static str,
        /// What is missing or wrong.
        what: String,
    },
    /// Attaching or detaching a tc filter failed.
    #[error("tc {action} on interface {ifindex}: {source}")]
    Tc {
        /// `attach` or `detach`.
        action: &'static str,
        /// Interface index.
        ifindex: u32,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A map update failed (e.g. full).
    #[error("map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns` (and of
/// `std::time::Instant` on Linux).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}
