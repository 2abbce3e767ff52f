//! Whole CE pipeline under arbitrary packets on either side (raw bytes, or fuzzed
//! payloads wrapped in valid IPv4 / IPv4-in-IPv6 headers from the BR or a peer CE so the
//! fuzzer reaches the NAT, ICMP and fragment paths): no panic, and every packet toward
//! the WAN has the CE's MAP address as outer source and, when it shows its inner header,
//! our external IPv4 address as inner source and a source port (ICMP identifier) inside
//! the port set (RFC 7597 §8, §9).
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use mape_dataplane::*;
use mape_nat::NatConfig;
use mape_rules::{IidFormat, MapDomain, PortSet, Rule, RuleSpec};

const EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 18);

fn ce() -> Ce {
    let mut spec = RuleSpec::new(
        "2001:db8::/40".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
        16,
    );
    spec.forwarding = true;
    let domain = MapDomain::new(
        vec![Rule::new(spec).unwrap()],
        vec!["2001:db8:ffff::1".parse().unwrap()],
        IidFormat::Rfc7597,
    );
    let nat = NatConfig::mape().allow_destinations(&["0.0.0.0/0".parse().unwrap()]);
    let mut cfg = CeConfig::from_domain(
        &domain,
        &"2001:db8:12:3400::/56".parse().unwrap(),
        Ipv4Addr::new(192, 168, 1, 1),
        nat,
    )
    .unwrap();
    cfg.reassembly.max_datagrams = 8;
    Ce::new(cfg).unwrap()
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Makes `body` a plausible IPv4 packet: version/IHL 0x45, total length, checksum.
fn ipv4(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    if p.len() < 20 {
        p.resize(20, 0);
    }
    p[0] = 0x45;
    let len = p.len().min(65535) as u16;
    p.truncate(usize::from(len));
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[10] = 0;
    p[11] = 0;
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn encap(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(inner.len().min(65535) as u16).to_be_bytes());
    v.extend_from_slice(&[4, 64]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(inner);
    v
}

struct Check {
    ce6: [u8; 16],
    set: PortSet,
}

impl Check {
    /// The inner IPv4 packet at `at` must come from our address and a port of the set.
    fn inner(&self, p: &[u8], at: usize) {
        let Some(ip) = p.get(at..) else { return };
        if ip.len() < 20 {
            return;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        assert_eq!(src, EXT, "inner source must be our external address");
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let Some(l4) = ip.get(hl..) else { return };
        let port = match ip[9] {
            6 | 17 if l4.len() >= 2 => u16::from_be_bytes([l4[0], l4[1]]),
            1 if l4.len() >= 6 && (l4[0] == 0 || l4[0] == 8) => u16::from_be_bytes([l4[4], l4[5]]),
            _ => return,
        };
        assert!(
            self.set.contains(port),
            "inner source port {port} outside the set"
        );
    }
}

impl Sink for Check {
    fn emit(&mut self, dir: Direction, p: &[u8]) {
        if dir != Direction::Wan {
            return;
        }
        assert!(p.len() >= 40 && p[0] >> 4 == 6, "WAN output must be IPv6");
        assert_eq!(&p[8..24], &self.ce6, "outer source must be the CE address");
        match p[6] {
            4 => self.inner(p, 40),
            44 => {
                // First fragment of an encapsulated packet shows the inner header.
                let off = u16::from_be_bytes([p[42], p[43]]) & 0xfff8;
                if off == 0 && p.get(40) == Some(&4) {
                    self.inner(p, 48);
                }
            }
            nh => panic!("unexpected next header {nh} toward the WAN"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = ce();
    let ce6 = c.config().ce_ipv6;
    let br6 = c.config().br_ipv6;
    let peer: Ipv6Addr = "2001:db8:13:3400:0:c000:213:34".parse().unwrap();
    let mut sink = Check {
        ce6: ce6.octets(),
        set: c.config().port_set,
    };
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 2048;
        let mode = rest[2];
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        now += u64::from(mode >> 3) * 100;
        let pkt = match mode % 5 {
            0 => body.to_vec(),
            1 => ipv4(body),
            2 => encap(br6, ce6, &ipv4(body)),
            3 => encap(peer, ce6, &ipv4(body)),
            _ => encap(br6, ce6, body),
        };
        c.process(Timestamp::from_millis(now), &pkt, &mut sink);
        if mode & 0x80 != 0 {
            c.expire(Timestamp::from_millis(now));
        }
    }
});
