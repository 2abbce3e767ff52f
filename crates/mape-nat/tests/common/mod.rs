//! What the engine's integration tests share: the v6plus-style port set of the RFC 7597
//! examples used throughout (PSID 161, 8 bits, offset 4), the shared address, and packet
//! summaries built from `a.b.c.d:port` strings.
#![allow(dead_code, reason = "each test crate uses its own subset")]

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;

/// The external (shared) IPv4 address.
pub(crate) const EXT: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);

/// PSID 161 of 8 bits at offset 4: 240 ports.
pub(crate) fn v6plus() -> PortSet {
    PortSet::new(161, 8, 4).unwrap()
}

/// An engine with `cfg` on [`EXT`] and [`v6plus`].
pub(crate) fn nat(cfg: NatConfig) -> Nat {
    Nat::new(cfg, EXT, v6plus()).unwrap()
}

pub(crate) fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

pub(crate) fn t(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

/// A packet from the LAN (no sequence numbers).
pub(crate) fn out(proto: Protocol, src: &str, dst: &str, flags: u8) -> OutboundPacket {
    OutboundPacket {
        proto,
        src: ep(src),
        dst: ep(dst),
        flags: TcpFlags(flags),
        seq: 0,
        ack: 0,
    }
}

pub(crate) fn udp(src: &str, dst: &str) -> OutboundPacket {
    out(Protocol::Udp, src, dst, 0)
}

pub(crate) fn tcp(src: &str, dst: &str, flags: u8) -> OutboundPacket {
    out(Protocol::Tcp, src, dst, flags)
}

/// The remote's answer to `p`, addressed to the external endpoint `ext`.
pub(crate) fn reply(p: &OutboundPacket, ext: Endpoint, flags: u8) -> InboundPacket {
    InboundPacket {
        proto: p.proto,
        src: p.dst,
        dst: ext,
        flags: TcpFlags(flags),
        seq: 0,
        ack: 0,
    }
}
