//! Shared test fixtures: RFC 7597 Appendix A example 1 (rule 2001:db8::/40 →
//! 192.0.2.0/24, EA 16, a 6; End-user 2001:db8:12:3400::/56 → 192.0.2.18 PSID 0x34;
//! BR 2001:db8:ffff::1, Ex. 2), packets built with etherparse as the independent truth.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, PacketBuilder};
use mape_dataplane::*;
use mape_nat::NatConfig;
use mape_rules::{IidFormat, Ipv6Net, MapDomain, Rule, RuleSpec};

pub(crate) const LAN_HOST: [u8; 4] = [192, 168, 1, 10];
pub(crate) const CE_LAN: [u8; 4] = [192, 168, 1, 1];
pub(crate) const EXT: [u8; 4] = [192, 0, 2, 18];
/// A second CE of the same domain: End-user 2001:db8:13:3400::/56 → 192.0.2.19 PSID 0x34.
pub(crate) const EXT2: [u8; 4] = [192, 0, 2, 19];
pub(crate) const REMOTE: [u8; 4] = [198, 51, 100, 7];
pub(crate) const BR_V4: [u8; 4] = [203, 0, 113, 1];
/// First ports of PSID 0x34 (A = 1): 1232..=1235.
pub(crate) const PORT: u16 = 1233;

pub(crate) fn br6() -> Ipv6Addr {
    "2001:db8:ffff::1".parse().unwrap()
}

pub(crate) fn ce6() -> Ipv6Addr {
    "2001:db8:12:3400:0:c000:212:34".parse().unwrap()
}

pub(crate) fn ce6_2() -> Ipv6Addr {
    "2001:db8:13:3400:0:c000:213:34".parse().unwrap()
}

pub(crate) fn rule(fmr: bool) -> Rule {
    let mut s = RuleSpec::new(
        "2001:db8::/40".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
        16,
    );
    s.forwarding = fmr;
    Rule::new(s).unwrap()
}

pub(crate) fn domain(fmr: bool) -> MapDomain {
    MapDomain::new(vec![rule(fmr)], vec![br6()], IidFormat::Rfc7597)
}

pub(crate) fn nat_cfg() -> NatConfig {
    NatConfig::mape().allow_destinations(&[
        "192.0.2.0/24".parse().unwrap(),
        "198.51.100.0/24".parse().unwrap(),
        "203.0.113.0/24".parse().unwrap(),
    ])
}

pub(crate) fn ce_cfg(fmr: bool, end_user: &str) -> CeConfig {
    let eu: Ipv6Net = end_user.parse().unwrap();
    CeConfig::from_domain(&domain(fmr), &eu, Ipv4Addr::from(CE_LAN), nat_cfg()).unwrap()
}

pub(crate) fn ce(fmr: bool) -> Ce {
    Ce::new(ce_cfg(fmr, "2001:db8:12:3400::/56")).unwrap()
}

pub(crate) fn ce2(fmr: bool) -> Ce {
    Ce::new(ce_cfg(fmr, "2001:db8:13:3400::/56")).unwrap()
}

pub(crate) fn br() -> Br {
    Br::new(BrConfig::from_domain(&domain(false), Ipv4Addr::from(BR_V4)).unwrap()).unwrap()
}

pub(crate) fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) type Out = Vec<(Direction, Vec<u8>)>;

pub(crate) fn run_ce(c: &mut Ce, now: u64, pkt: &[u8]) -> (Verdict, Out) {
    let mut out = Vec::new();
    let v = c.process(t(now), pkt, &mut out);
    (v, out)
}

pub(crate) fn run_br(b: &mut Br, now: u64, pkt: &[u8]) -> (Verdict, Out) {
    let mut out = Vec::new();
    let v = b.process(t(now), pkt, &mut out);
    (v, out)
}

/// The single output packet, asserting its direction.
pub(crate) fn one(out: &Out, dir: Direction) -> Vec<u8> {
    assert_eq!(out.len(), 1, "expected one output, got {out:?}");
    assert_eq!(out[0].0, dir);
    out[0].1.clone()
}

pub(crate) fn udp4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

pub(crate) fn tcp_syn4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    mss: u16,
) -> Vec<u8> {
    tcp_syn_opt4(src, sport, dst, dport, ttl, mss, false)
}

/// The answer to [`tcp_syn4`]: SYN-ACK acknowledging its sequence number.
pub(crate) fn tcp_syn_ack4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    mss: u16,
) -> Vec<u8> {
    tcp_syn_opt4(src, sport, dst, dport, ttl, mss, true)
}

fn tcp_syn_opt4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    mss: u16,
    ack: bool,
) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(src, dst, ttl)
        .tcp(sport, dport, 0x1234_5678, 64240)
        .syn();
    let b = if ack { b.ack(0x1234_5679) } else { b };
    b.options(&[
        etherparse::TcpOptionElement::MaximumSegmentSize(mss),
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::WindowScale(7),
    ])
    .unwrap()
    .write(&mut v, &[])
    .unwrap();
    v
}

pub(crate) fn echo4(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    request: bool,
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(src, dst, ttl);
    let b = if request {
        b.icmpv4_echo_request(id, seq)
    } else {
        b.icmpv4_echo_reply(id, seq)
    };
    b.write(&mut v, b"ping-data").unwrap();
    v
}

/// An ICMPv4 error built by etherparse. `df` for the outer header; CE/BR-generated errors
/// have DF clear and TTL 64.
pub(crate) fn icmp4_err(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    df: bool,
    ty: etherparse::Icmpv4Type,
    quote: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, ttl, IpNumber::ICMP, src, dst).unwrap();
    h.dont_fragment = df;
    let mut v = Vec::new();
    PacketBuilder::ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        .icmpv4(ty)
        .write(&mut v, quote)
        .unwrap();
    v
}

/// IPv6 (next header 4, hop limit 64, traffic class from the TOS, flow label 0) + `inner`.
pub(crate) fn encap(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: inner[1],
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: inner.len() as u16,
        next_header: IpNumber::IPV4,
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    v.extend_from_slice(inner);
    v
}

/// Sets DF/MF/offset and the identification of an etherparse-built IPv4 packet and
/// recomputes the header checksum (for fragment fixtures).
pub(crate) fn set_frag(p: &mut [u8], id: u16, df: bool, mf: bool, off_bytes: u16) {
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let f = (u16::from(df) << 14) | (u16::from(mf) << 13) | (off_bytes / 8);
    p[6..8].copy_from_slice(&f.to_be_bytes());
    fix_ip_checksum(p);
}

pub(crate) fn fix_ip_checksum(p: &mut [u8]) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    p[10] = 0;
    p[11] = 0;
    let h = Ipv4Header::from_slice(&p[..hl]).unwrap().0;
    let c = h.calc_header_checksum();
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Splits a whole IPv4 datagram into fragments at `cut` (multiple of 8 bytes of payload).
pub(crate) fn fragment4(p: &[u8], cut: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    let payload = &p[hl..];
    let mut a = p[..hl + cut].to_vec();
    a[2..4].copy_from_slice(&((hl + cut) as u16).to_be_bytes());
    set_frag(&mut a, id, false, true, 0);
    let mut b = p[..hl].to_vec();
    b.extend_from_slice(&payload[cut..]);
    b[2..4].copy_from_slice(&((hl + payload.len() - cut) as u16).to_be_bytes());
    set_frag(&mut b, id, false, false, cut as u16);
    (a, b)
}

/// Splits an IPv6 packet (no extension headers) into two fragments at `cut` bytes of its
/// payload (multiple of 8), with identification `id`.
pub(crate) fn fragment6(p: &[u8], cut: usize, id: u32) -> (Vec<u8>, Vec<u8>) {
    let nh = p[6];
    let payload = &p[40..];
    let mk = |off: usize, data: &[u8], more: bool| {
        let mut v = p[..40].to_vec();
        v[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        v[6] = 44;
        v.push(nh);
        v.push(0);
        v.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(data);
        v
    };
    (
        mk(0, &payload[..cut], true),
        mk(cut, &payload[cut..], false),
    )
}

/// A CE owning a whole IPv4 address (a /48 rule, 8 EA bits, all of them IPv4 suffix:
/// k = 0) with no per-host quota, so that tens of thousands of flows fit without port
/// sharing (the batch tests' large tables).
pub(crate) fn whole_address_ce() -> Ce {
    let rule = Rule::new(RuleSpec::new(
        "2001:db8:12::/48".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
        8,
    ))
    .unwrap();
    let domain = MapDomain::new(vec![rule], vec![br6()], IidFormat::Rfc7597);
    let mut nat = NatConfig::mape().allow_destinations(&["198.51.100.0/24".parse().unwrap()]);
    nat.quota = None;
    // The large tables spread their flows over 62 500 LAN hosts.
    nat.max_hosts = 1 << 17;
    let cfg = CeConfig::from_domain(
        &domain,
        &"2001:db8:12:3400::/56".parse().unwrap(),
        Ipv4Addr::from(CE_LAN),
        nat,
    )
    .unwrap();
    Ce::new(cfg).unwrap()
}
