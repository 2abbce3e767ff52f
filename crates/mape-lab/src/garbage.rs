//! Garbage and spoofed WAN traffic at the CE or the BR, fast (a raw IPv6 socket, one
//! `sendto` per packet, paced): IPv6 packets with random payloads, IPv4-in-IPv6 from
//! sources no rule covers, and valid-looking IPv4-in-IPv6 for another PSID or with an
//! inner source outside the rule. Every packet has a well-formed IPv6 header (a packet the
//! kernel itself drops never reaches mape; see `crates/mape/tests/lab_wan_garbage.rs`),
//! no fragment or extension header (nothing a pipeline may hold instead of dropping), and
//! only lab addresses (documentation ranges). Run it inside the ISP namespace.
//!
//! [`run_lan`] is the LAN side's counterpart: UDP from spoofed IPv4 sources, half outside
//! the lab's `lan.prefixes` (192.168.10.0/24), half inside it; run it inside a LAN host.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::addr;
use crate::error::LabError;

/// Which daemon the packets go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The CE's MAP address (through the ISP → CE link).
    Ce,
    /// The BR's address (its TUN in the ISP namespace).
    Br,
}

/// The kinds of packet, sent in turn.
pub const KINDS: [&str; 4] = [
    "random_payload",
    "4in6_unknown_source",
    "4in6_other_psid",
    "4in6_inner_source_outside_rule",
];

/// What was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Packets the kernel accepted, per kind (`KINDS` order).
    pub sent: [u64; 4],
    /// Sends the kernel refused (ENOBUFS and the like).
    pub errors: u64,
}

impl GarbageReport {
    /// Packets sent, all kinds.
    pub fn total(&self) -> u64 {
        self.sent.iter().sum()
    }
}

/// A source of pseudo-random numbers (xorshift64*): reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The lab's BR address.
fn br() -> Ipv6Addr {
    addr::BR.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// The lab CE's MAP address.
fn ce_map() -> Ipv6Addr {
    addr::CE_MAP.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// A source no rule covers and that is not the BR: 2001:db8:ffff:ff00::/64 (outside the
/// rule's 2001:db8::/40).
fn unknown_source(rng: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db8_ffff_ff00_u128 << 64) | u128::from(rng.next() | 2))
}

/// A port of the lab CE's PSID 0x34 (offset 4, PSID length 8): `a << 12 | 0x34 << 4 | m`,
/// a in 1..=15 (RFC 7597 §5.1).
fn port_of_psid(psid: u16, rng: &mut Rng) -> u16 {
    let a = 1 + rng.below(15) as u16;
    let m = rng.below(16) as u16;
    (a << 12) | ((psid & 0xff) << 4) | m
}

/// Next headers of the random kind: no hop-by-hop (the kernel parses it), no routing,
/// fragment, destination-options, ESP/AH or mobility header (chains a pipeline walks or the
/// kernel acts on).
const RANDOM_NEXT: [u8; 8] = [4, 6, 17, 58, 59, 132, 253, 254];

/// Writes an IPv6 header for `payload_len` bytes into `b[..40]`.
fn ipv6_header(b: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload_len: usize) {
    b[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    b[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    b[6] = next;
    b[7] = 64;
    b[8..24].copy_from_slice(&src.octets());
    b[24..40].copy_from_slice(&dst.octets());
}

/// Writes an IPv4/UDP packet (header checksum right, UDP checksum 0: none, RFC 768) with
/// `data` bytes of payload into `b`; returns its length.
fn ipv4_udp(b: &mut [u8], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: usize) -> usize {
    let len = 20 + 8 + data;
    b[..len].fill(0);
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[8] = 64;
    b[9] = 17;
    b[12..16].copy_from_slice(&src.0.octets());
    b[16..20].copy_from_slice(&dst.0.octets());
    let mut sum: u32 = b[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    b[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    b[20..22].copy_from_slice(&src.1.to_be_bytes());
    b[22..24].copy_from_slice(&dst.1.to_be_bytes());
    b[24..26].copy_from_slice(&((8 + data) as u16).to_be_bytes());
    len
}

/// Builds packet number `i` for `target` into `buf`; returns (kind, length, destination).
fn build(target: Target, i: u64, rng: &mut Rng, buf: &mut [u8]) -> (usize, usize, Ipv6Addr) {
    let kind = (i % 4) as usize;
    let dst = match target {
        Target::Ce => ce_map(),
        Target::Br => br(),
    };
    let server = (addr::SERVER, 53);
    let inner = &mut buf[40..];
    let (src, next, len) = match (target, kind) {
        (_, 0) => {
            let n = 8 + rng.below(248) as usize;
            for chunk in inner[..n].chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let next = RANDOM_NEXT[rng.below(RANDOM_NEXT.len() as u64) as usize];
            (unknown_source(rng), next, n)
        }
        (Target::Ce, 1) => {
            let to = (addr::CE_EXTERNAL, port_of_psid(0x34, rng));
            (unknown_source(rng), 4, ipv4_udp(inner, server, to, 16))
        }
        // From the BR (accepted), to the CE's address but a port of PSID 0x35.
        (Target::Ce, 2) => {
            let to = (addr::CE_EXTERNAL, port_of_psid(0x35, rng));
            (br(), 4, ipv4_udp(inner, server, to, 16))
        }
        // From the BR, an inner source of no session (a sink host), to a port of our set.
        (Target::Ce, _) => {
            let from = (addr::SINK, 1024 + rng.below(60000) as u16);
            let to = (addr::CE_EXTERNAL, port_of_psid(0x34, rng));
            (br(), 4, ipv4_udp(inner, from, to, 16))
        }
        (Target::Br, 1) => {
            let from = (addr::CE_EXTERNAL, port_of_psid(0x34, rng));
            (unknown_source(rng), 4, ipv4_udp(inner, from, server, 16))
        }
        // The CE's own IPv6 source (PSID 0x34) with a port of PSID 0x35 inside.
        (Target::Br, 2) => {
            let from = (addr::CE_EXTERNAL, port_of_psid(0x35, rng));
            (ce_map(), 4, ipv4_udp(inner, from, server, 16))
        }
        // The CE's IPv6 source with an inner source outside the rule's 192.0.2.0/24.
        (Target::Br, _) => {
            let from = (addr::SINK, port_of_psid(0x34, rng));
            (ce_map(), 4, ipv4_udp(inner, from, server, 16))
        }
    };
    ipv6_header(buf, src, dst, next, len);
    (kind, 40 + len, dst)
}

/// After packet `i` (from 0) of a send that began at `t0`: every 256 packets, sleeps
/// until `pps` per second are on schedule (0: never).
fn pace(t0: Instant, i: u64, pps: u64) {
    if pps > 0 && i % 256 == 255 {
        let due = Duration::from_secs_f64((i + 1) as f64 / pps as f64);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Sends `count` packets to `target` at about `pps` packets per second (0: as fast as
/// the kernel takes them). Needs CAP_NET_RAW; bounded by `count`.
pub fn run(target: Target, count: u64, pps: u64, seed: u64) -> Result<GarbageReport, LabError> {
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255)))?;
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; 1280];
    let mut report = GarbageReport::default();
    let t0 = Instant::now();
    for i in 0..count {
        let (kind, len, dst) = build(target, i, &mut rng, &mut buf);
        // IPPROTO_RAW on IPv6 implies the header is ours (IPV6_HDRINCL); the address only
        // routes the packet.
        let to = SockAddr::from(SocketAddrV6::new(dst, 0, 0, 0));
        match sock.send_to(&buf[..len], &to) {
            Ok(_) => report.sent[kind] += 1,
            Err(_) => report.errors += 1,
        }
        pace(t0, i, pps);
    }
    Ok(report)
}

/// The kinds of [`run_lan`], sent in turn.
pub const LAN_KINDS: [&str; 2] = ["outside_lan_prefixes", "inside_lan_prefixes"];

/// Spoofed LAN sources, inside 192.168.10.0/24 but held by no lab host: .100 - .199.
pub const SPOOFED_INSIDE: u8 = 100;

/// Sends `count` UDP packets to the internet server's port 9 from spoofed sources, in
/// turn outside the LAN prefixes (192.0.2.100 - 192.0.2.199, never the CE's .18) and
/// inside them (192.168.10.100 - .199), at about `pps` per second (0: unpaced). Counted in
/// `sent[0]` and `sent[1]`. Needs CAP_NET_RAW; bounded by `count`.
pub fn run_lan(count: u64, pps: u64) -> Result<GarbageReport, LabError> {
    // IPPROTO_RAW on IPv4 implies IP_HDRINCL: the source is ours.
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
    let mut buf = [0u8; 64];
    let mut report = GarbageReport::default();
    let to = SockAddr::from(SocketAddrV4::new(addr::SERVER, 0));
    let t0 = Instant::now();
    for i in 0..count {
        let kind = (i % 2) as usize;
        let host = SPOOFED_INSIDE + ((i / 2) % 100) as u8;
        let src = if kind == 0 {
            Ipv4Addr::new(192, 0, 2, host)
        } else {
            Ipv4Addr::new(192, 168, 10, host)
        };
        let len = ipv4_udp(
            &mut buf,
            (src, 40_000 + (i % 1000) as u16),
            (addr::SERVER, 9),
            8,
        );
        match sock.send_to(&buf[..len], &to) {
            Ok(_) => report.sent[kind] += 1,
            Err(_) => report.errors += 1,
        }
        pace(t0, i, pps);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builders by hand: an IPv4 header checksum from RFC 1071's worked method, the
    /// PSID 0x34 ports of the lab (4928-4943 first), and the four kinds' shapes.
    #[test]
    fn packets_have_the_shapes_the_lab_test_counts_on() {
        let mut b = [0u8; 64];
        let n = ipv4_udp(
            &mut b,
            (Ipv4Addr::new(203, 0, 113, 10), 53),
            (Ipv4Addr::new(192, 0, 2, 18), 4928),
            16,
        );
        assert_eq!(n, 44);
        // Sum of the header's words with the checksum in place folds to 0xffff.
        let mut sum: u32 = b[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        sum = (sum & 0xffff) + (sum >> 16);
        assert_eq!(sum, 0xffff);
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let p = port_of_psid(0x34, &mut rng);
            assert_eq!((p >> 4) & 0xff, 0x34, "{p}");
            assert!(p >= addr::LAB_PORTS_FIRST);
        }
        let mut buf = vec![0u8; 1280];
        for target in [Target::Ce, Target::Br] {
            for i in 0..400u64 {
                let (kind, len, dst) = build(target, i, &mut rng, &mut buf);
                assert_eq!(kind, (i % 4) as usize);
                assert_eq!(buf[0] >> 4, 6);
                assert_eq!(usize::from(u16::from_be_bytes([buf[4], buf[5]])), len - 40);
                assert_eq!(&buf[24..40], &dst.octets());
                assert!(!matches!(buf[6], 0 | 43 | 44 | 60), "no extension header");
                if kind > 0 {
                    assert_eq!(buf[6], 4);
                    assert_eq!(buf[40], 0x45);
                }
            }
        }
    }
}
