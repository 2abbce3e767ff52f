//! Pipeline benchmarks: `cargo bench -p mape-dataplane --bench pipeline`.
//!
//! - `ce_encap`: LAN IPv4/UDP of established flows → NAPT → IPv6 encapsulation.
//! - `ce_decap`: IPv6-encapsulated replies from the BR → checks → reverse NAPT → LAN.
//!
//! 64 flows (different LAN hosts and ports), payloads of 64 and 1400 bytes, one
//! `Throughput::Elements` per packet: read the figures as packets per second.
//!
//! - `ce_encap_1m_sessions`: the same with a million established flows in the table (a
//!   whole IPv4 address, k = 0), batches of 64 packets of flows drawn in a scrambled order,
//!   as the TUN hands them over: every NAT lookup misses the cache, and `process_batch`
//!   prefetches them together.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mape_dataplane::*;
use mape_nat::NatConfig;
use mape_rules::{IidFormat, MapDomain, Rule, RuleSpec};

const FLOWS: usize = 64;

fn ce() -> Ce {
    ce_with("2001:db8::/40", 16, NatConfig::mape())
}

fn ce_with(rule_prefix: &str, ea_len: u8, nat: NatConfig) -> Ce {
    let rule = Rule::new(RuleSpec::new(
        rule_prefix.parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
        ea_len,
    ))
    .unwrap();
    let domain = MapDomain::new(
        vec![rule],
        vec!["2001:db8:ffff::1".parse().unwrap()],
        IidFormat::Rfc7597,
    );
    let nat = nat.allow_destinations(&["198.51.100.0/24".parse().unwrap()]);
    let cfg = CeConfig::from_domain(
        &domain,
        &"2001:db8:12:3400::/56".parse().unwrap(),
        Ipv4Addr::new(192, 168, 1, 1),
        nat,
    )
    .unwrap();
    Ce::new(cfg).unwrap()
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let total = 28 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut ph = Vec::new();
    ph.extend_from_slice(&src);
    ph.extend_from_slice(&dst);
    ph.extend_from_slice(&[0, 17]);
    ph.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    ph.extend_from_slice(&p[20..]);
    let c = checksum(&ph);
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

fn encap(src: [u8; 16], dst: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    v.extend_from_slice(&[4, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(inner);
    v
}

/// A CE with `FLOWS` established UDP flows, their LAN packets and their BR replies.
fn setup(payload: usize) -> (Ce, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut c = ce();
    let mut lan = Vec::new();
    let mut wan = Vec::new();
    let now = Timestamp::from_millis(0);
    for i in 0..FLOWS {
        let host = [192, 168, 1, 10 + (i % 16) as u8];
        let remote = [198, 51, 100, 1 + (i / 16) as u8];
        let p = udp4(host, 40000 + i as u16, remote, 443, payload);
        let mut out: Vec<(Direction, Vec<u8>)> = Vec::new();
        assert_eq!(c.process(now, &p, &mut out), Verdict::Forwarded);
        let up = &out[0].1;
        let ext_port = u16::from_be_bytes([up[60], up[61]]);
        let ext = [up[52], up[53], up[54], up[55]];
        let reply = udp4(remote, 443, ext, ext_port, payload);
        let mut src = [0u8; 16];
        src.copy_from_slice(&up[24..40]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&up[8..24]);
        let r = encap(src, dst, &reply);
        let mut o2: Vec<(Direction, Vec<u8>)> = Vec::new();
        assert_eq!(c.process(now, &r, &mut o2), Verdict::Forwarded);
        lan.push(p);
        wan.push(r);
    }
    (c, lan, wan)
}

struct Count(u64);

impl Sink for Count {
    fn emit(&mut self, _dir: Direction, packet: &[u8]) {
        self.0 += packet.len() as u64;
    }
}

fn bench(c: &mut Criterion) {
    for (name, wan_side) in [("ce_encap", false), ("ce_decap", true)] {
        let mut g = c.benchmark_group(name);
        for payload in [64usize, 1400] {
            let (mut ce, lan, wan) = setup(payload);
            let pkts = if wan_side { wan } else { lan };
            let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
            g.throughput(Throughput::Elements(refs.len() as u64));
            let mut sink = Count(0);
            let now = Timestamp::from_millis(1000);
            g.bench_function(format!("{payload}B"), |b| {
                b.iter(|| black_box(ce.process_batch(now, black_box(&refs), &mut sink)))
            });
            assert_eq!(
                ce.drops().total(),
                0,
                "{name}: drops {:?}",
                ce.drops().nonzero().collect::<Vec<_>>()
            );
        }
        g.finish();
    }
}

/// A million established UDP flows through the CE, then batches of 64 of their packets.
fn bench_million(c: &mut Criterion) {
    const N: u32 = 1_000_000;
    let mut nat = NatConfig::mape();
    nat.quota = None;
    nat.max_sessions = N + 1;
    // /48 rule + /56 delegation: 8 EA bits, all IPv4 suffix: the whole address, k = 0.
    let mut ce = ce_with("2001:db8:12::/48", 8, nat);
    let now = Timestamp::from_millis(0);
    let mut sink = Count(0);
    let mut pkts = Vec::with_capacity(N as usize);
    for i in 0..N {
        let host = [192, 168, 1, 10 + (i % 64) as u8];
        let remote = [198, 51, 100, 1 + (i % 250) as u8];
        let p = udp4(host, 1024 + (i / 64) as u16, remote, 443, 64);
        assert_eq!(ce.process(now, &p, &mut sink), Verdict::Forwarded);
        pkts.push(p);
    }
    // The packets laid out one after another in the scrambled order, as fresh reads land
    // in the TUN buffers: reading them costs no cache miss of its own.
    let len = pkts[0].len();
    let mut arena = Vec::with_capacity(pkts.len() * len);
    for i in (0..pkts.len()).map(|i| (i * 7919) % pkts.len()) {
        arena.extend_from_slice(&pkts[i]);
    }
    drop(pkts);
    let stream: Vec<&[u8]> = arena.chunks(len).collect();
    let mut g = c.benchmark_group("ce_encap_1m_sessions");
    const PER_ITER: usize = 4096;
    g.throughput(Throughput::Elements(PER_ITER as u64));
    let mut k = 0usize;
    g.bench_function("64B_batch64", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER / 64 {
                let at = k % (stream.len() - 63);
                k += 64;
                black_box(ce.process_batch(now, black_box(&stream[at..at + 64]), &mut sink));
            }
        })
    });
    // The same packets one at a time (`process`: no prefetch), for the ratio.
    g.bench_function("64B_one_by_one", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER {
                let p = stream[k % stream.len()];
                k += 1;
                black_box(ce.process(now, black_box(p), &mut sink));
            }
        })
    });
    assert_eq!(ce.drops().total(), 0);
    g.finish();
}

criterion_group!(benches, bench, bench_million);
criterion_main!(benches);
