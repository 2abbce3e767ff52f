//! Whole BR pipeline under arbitrary packets from the internet and from CEs (raw, or
//! fuzzed payloads in valid headers): no panic; every packet into the domain has the BR
//! address as outer source; every packet decapsulated to the internet passed the
//! RFC 7597 §8.1 check (its source address and port are the ones its CE may use).
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use mape_dataplane::*;
use mape_rules::{IidFormat, MapDomain, Rule, RuleSpec};

const BR_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn rule() -> Rule {
    Rule::new(RuleSpec::new(
        "2001:db8::/40".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
        16,
    ))
    .unwrap()
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
    br6: [u8; 16],
    rule: Rule,
    /// Outer source of the input being processed, when it came from the domain.
    from: Option<Ipv6Addr>,
}

impl Sink for Check {
    fn emit(&mut self, dir: Direction, p: &[u8]) {
        match dir {
            Direction::Wan => {
                assert!(p.len() >= 40 && p[0] >> 4 == 6);
                assert_eq!(&p[8..24], &self.br6, "outer source must be the BR");
                assert!(p[6] == 4 || p[6] == 44);
            }
            Direction::Lan => {
                assert!(p.len() >= 20 && p[0] >> 4 == 4);
                let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                let Some(src6) = self.from else { return };
                if src == BR_V4 {
                    return; // an ICMP error of the BR's own
                }
                let hl = usize::from(p[0] & 0x0f) * 4;
                let port = match p[9] {
                    6 | 17 => u16::from_be_bytes([p[hl], p[hl + 1]]),
                    1 if p[hl] == 0 || p[hl] == 8 => u16::from_be_bytes([p[hl + 4], p[hl + 5]]),
                    // ICMP errors: the embedded destination port.
                    1 => {
                        let e = hl + 8;
                        let ehl = usize::from(p[e] & 0x0f) * 4;
                        u16::from_be_bytes([p[e + ehl + 2], p[e + ehl + 3]])
                    }
                    other => panic!("protocol {other} decapsulated"),
                };
                assert!(
                    self.rule.source_is_valid(src6, src, port, IidFormat::Rfc7597),
                    "{src}:{port} decapsulated from {src6}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let domain = MapDomain::new(
        vec![rule()],
        vec!["2001:db8:ffff::1".parse().unwrap()],
        IidFormat::Rfc7597,
    );
    let mut cfg = BrConfig::from_domain(&domain, BR_V4).unwrap();
    cfg.reassembly.max_datagrams = 8;
    let br6 = cfg.br_ipv6;
    let mut b = Br::new(cfg).unwrap();
    let mut sink = Check {
        br6: br6.octets(),
        rule: rule(),
        from: None,
    };
    let ce6: Ipv6Addr = "2001:db8:12:3400:0:c000:212:34".parse().unwrap();
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 2048;
        let mode = rest[2];
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        now += u64::from(mode >> 3) * 100;
        let (pkt, from) = match mode % 4 {
            0 => (body.to_vec(), None),
            1 => (ipv4(body), None),
            2 => (encap(ce6, br6, &ipv4(body)), Some(ce6)),
            _ => (encap(ce6, br6, body), Some(ce6)),
        };
        sink.from = from.or_else(|| {
            (pkt.len() >= 40 && pkt[0] >> 4 == 6).then(|| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&pkt[8..24]);
                Ipv6Addr::from(o)
            })
        });
        b.process(Timestamp::from_millis(now), &pkt, &mut sink);
    }
});
