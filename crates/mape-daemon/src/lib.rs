//! The io shell of mape: configuration, the TUN datapath, netlink set-up and teardown,
//! the control socket, the LAN-side port mapping servers (`portmap`: PCP and NAT-PMP;
//! `igd`: UPnP) and signals. The only
//! crate that touches the operating system.
//!
//! Modules depend one way: `clock`, `counters`, `config` and `metrics` at the bottom;
//! `fastpath` (the kernel fast path's bookkeeping) on them; `pipeline` (the CE and BR
//! behind the trait the rest sees) on those; `datapath` (the
//! worker threads), `control` (the socket's handlers), `events` and `sessions_file` (the
//! session table on disk) on those; `daemon`
//! (start, the control loop, stop) on top.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod datapath;
pub mod events;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod fastpath;
#[allow(unsafe_code)]
pub mod hostaddr;
pub mod igd;
#[allow(unsafe_code)]
pub mod lock;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod plumbing;
pub mod portmap;
#[allow(unsafe_code)]
pub mod privs;
pub mod provisioning;
pub mod ra;
pub mod sessions_file;
pub mod supervise;
#[allow(unsafe_code)]
pub mod tun;
pub mod web;
