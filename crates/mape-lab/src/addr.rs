//! Addresses of the lab and the CE's port set (the picture is in the crate
//! documentation).

use std::net::Ipv4Addr;

/// The CE's LAN address.
pub const CE_LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
/// The normal LAN host.
pub const LAN1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 10);
/// The storm host.
pub const LAN2: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 23);
/// The CE's external IPv4 (rule: 2001:db8:12:34xx → 192.0.2.18).
pub const CE_EXTERNAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 18);
/// Internet server (DNS, HTTP, iperf3, TURN primary).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Second internet address (RFC 5780 needs two; a second HTTP server on port 80).
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
/// The ISP's IPv4 side.
pub const ISP_INET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A public address that never answers.
pub const SINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
/// The seed's private target of another network (held silently by the sink host).
pub const PRIVATE_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 211);
/// The CE's MAP IPv6 address (RFC 7597 IID).
pub const CE_MAP: &str = "2001:db8:12:3400:0:c000:212:34";
/// The BR.
pub const BR: &str = "2001:db8:ffff::1";
/// The lab zone's web host.
pub const WWW: &str = "www.lab.example";

/// The 240-port set of the lab CE (PSID 0x34, a = 4, k = 8): first range 4928-4943.
pub const LAB_PORTS_FIRST: u16 = 4928;
