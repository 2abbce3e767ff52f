//! The lab: network namespaces with two LAN hosts, the CE running `mape run ce`, an ISP
//! running `mape run br`, and an "internet" with real servers (dnsmasq for a lab zone, two
//! HTTP servers, iperf3, a UDP echo, a TCP accept-and-close listener, coturn on demand)
//! and silent sinks that never answer.
//!
//! ```text
//!  lan1 192.168.10.10 ─┐                                    ┌─ inet 203.0.113.10 (dns, http, iperf3,
//!                     │                                    │      udp echo :7008, tcp close :7009)
//!                     ├─ br-lan 192.168.10.1 [ce] ce-wan ── isp-ce [isp] isp-inet ─┤  203.0.113.11 (http, turn)
//!  lan2 192.168.10.23 ─┘   2001:db8:0:1::2/64    2001:db8:0:1::1  203.0.113.1      └─ sink 198.51.100.99,
//!                                                                                       192.168.1.211 (silent)
//! ```
//! MAP rule (documentation ranges): 2001:db8::/40 → 192.0.2.0/24, EA 16, PSID offset 4 →
//! End-user prefix 2001:db8:12:3400::/56 gets 192.0.2.18, PSID 0x34, 240 ports. BR
//! 2001:db8:ffff::1. Every address a test sends to is held by a lab namespace. Names carry a
//! per-run prefix; everything is removed on drop, on `down`, and by `down --all` after a crash.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod addr;
pub mod bench;
pub mod churn;
mod cmd;
mod daemons;
pub mod demo;
pub mod dhcpv6;
mod error;
pub mod garbage;
pub mod hb46pp;
mod servers;
pub mod storm;
mod topology;
mod traffic;
mod up;

pub use addr::LAB_PORTS_FIRST;
pub use cmd::{possible_or_skip, preflight, run};
pub use error::LabError;
pub use topology::{down, status, Lab, LabOptions, LabState, KEEP_ENV, NS_FAMILY, STATE_DIR};
pub use traffic::{count_frames, parse_target, Keep, HEADER_SNAPLEN};
