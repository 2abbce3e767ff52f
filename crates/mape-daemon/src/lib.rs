//! The io shell of mape: configuration, the TUN datapath, netlink set-up and teardown,
//! the control socket and signals. The only crate that touches the operating system.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod br;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
#[cfg(feature = "failpoints")]
pub mod failpoint;
#[allow(unsafe_code)]
pub mod lock;
pub mod metrics;
pub mod pipeline;
pub mod plumbing;
pub mod supervise;
#[allow(unsafe_code)]
pub mod tun;
