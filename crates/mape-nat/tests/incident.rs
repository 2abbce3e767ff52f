//! The seed incident, simulated deterministically for one hour (issue: NAT engine,
//! acceptance). Host A (192.168.1.10) makes normal DNS and HTTPS traffic; host B
//! (192.168.1.23) sends 2–4 UDP packets every 3 s from new source ports to
//! 192.168.1.211:59870 (a private address of another network) or, in a second run, to a
//! public address that never answers, at 1× and 100× the seed's rate.
//!
//! Under `mape`: A is never refused; B's private-destination packets get no port; B never
//! holds more than its cap. Under `rtx830-like`: the budget runs out and A is refused, which
//! proves the scenario really bites.

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;

const EXT: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);
const HOST_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const HOST_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 23);
const PRIVATE_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 211);
const SILENT_SINK: Ipv4Addr = Ipv4Addr::new(45, 76, 10, 10);

#[derive(Debug, Default)]
struct Outcome {
    a_ok: u64,
    a_refused: u64,
    b_translated_to_private: u64,
    b_max_ports: u32,
    peak: u32,
    exhausted_at: Option<Timestamp>,
    culprit: Option<Ipv4Addr>,
    culprit_pattern: Option<String>,
}

/// A tiny deterministic generator (xorshift) so both policies see identical traffic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn run(policy: &str, target: Ipv4Addr, rate_x: u64) -> Outcome {
    let cfg = NatConfig::policy(policy).unwrap();
    let mut nat = Nat::new(cfg, EXT, PortSet::new(161, 8, 4).unwrap()).unwrap();
    let mut rng = Rng(0x5eed);
    let mut out = Outcome::default();
    let mut a_port: u16 = 30000;
    let mut b_port: u16 = 40000;
    let servers = [
        Ipv4Addr::new(93, 184, 216, 34),
        Ipv4Addr::new(151, 101, 1, 69),
        Ipv4Addr::new(140, 82, 112, 3),
    ];
    // Time in milliseconds; one hour.
    let end = 3_600_000u64;
    // B bursts every 3 s / rate_x; A does a DNS query every 2 s and an HTTPS fetch every 5 s.
    let b_every = 3000 / rate_x;
    let mut next_b = 0u64;
    let mut next_dns = 500u64;
    let mut next_https = 1000u64;
    while next_b < end || next_dns < end || next_https < end {
        let now_ms = next_b.min(next_dns).min(next_https);
        if now_ms >= end {
            break;
        }
        let now = Timestamp::from_millis(now_ms);
        if now_ms == next_b {
            let burst = 2 + rng.below(3);
            for i in 0..burst {
                b_port = b_port.wrapping_add(1).max(1024);
                let port = if i % 2 == 0 { 59870 } else { 59781 };
                let p = OutboundPacket {
                    proto: Protocol::Udp,
                    src: Endpoint::new(HOST_B, b_port),
                    dst: Endpoint::new(target, port),
                    flags: TcpFlags::NONE,
                    seq: 0,
                    ack: 0,
                };
                if let OutboundVerdict::Translate { .. } = nat.outbound(now, &p) {
                    if target == PRIVATE_TARGET {
                        out.b_translated_to_private += 1;
                    }
                }
            }
            next_b += b_every.max(1);
        } else if now_ms == next_dns {
            a_port = a_port.wrapping_add(1).max(1024);
            let q = OutboundPacket {
                proto: Protocol::Udp,
                src: Endpoint::new(HOST_A, a_port),
                dst: Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 53),
                flags: TcpFlags::NONE,
                seq: 0,
                ack: 0,
            };
            match nat.outbound(now, &q) {
                OutboundVerdict::Translate { external } => {
                    let answer = InboundPacket {
                        proto: Protocol::Udp,
                        src: q.dst,
                        dst: external,
                        flags: TcpFlags::NONE,
                        seq: 0,
                        ack: 0,
                    };
                    assert!(matches!(
                        nat.inbound(now.plus_millis(20), &answer),
                        InboundVerdict::Translate { internal } if internal == q.src
                    ));
                    out.a_ok += 1;
                }
                _ => out.a_refused += 1,
            }
            next_dns += 2000;
        } else {
            a_port = a_port.wrapping_add(1).max(1024);
            let server = servers[rng.below(3) as usize];
            let src = Endpoint::new(HOST_A, a_port);
            let dst = Endpoint::new(server, 443);
            let pkt = |flags| OutboundPacket {
                proto: Protocol::Tcp,
                src,
                dst,
                flags: TcpFlags(flags),
                seq: 0,
                ack: 0,
            };
            match nat.outbound(now, &pkt(TcpFlags::SYN)) {
                OutboundVerdict::Translate { external } => {
                    let back = |flags| InboundPacket {
                        proto: Protocol::Tcp,
                        src: dst,
                        dst: external,
                        flags: TcpFlags(flags),
                        seq: 0,
                        ack: 0,
                    };
                    let t1 = now.plus_millis(30);
                    nat.inbound(t1, &back(TcpFlags::SYN | TcpFlags::ACK));
                    nat.outbound(t1, &pkt(TcpFlags::ACK));
                    nat.inbound(t1.plus_millis(100), &back(TcpFlags::ACK));
                    nat.outbound(t1.plus_millis(200), &pkt(TcpFlags::FIN | TcpFlags::ACK));
                    nat.inbound(t1.plus_millis(230), &back(TcpFlags::FIN | TcpFlags::ACK));
                    out.a_ok += 1;
                }
                _ => out.a_refused += 1,
            }
            next_https += 5000;
        }
        out.b_max_ports = out.b_max_ports.max(nat.host_ports(HOST_B, Protocol::Udp));
    }
    nat.check_invariants().unwrap();
    let snap = nat.snapshot(Timestamp::from_millis(end));
    out.peak = snap.peak;
    out.exhausted_at = snap.exhausted_at;
    out.culprit = snap.culprit.as_ref().map(|c| c.host);
    out.culprit_pattern = snap.culprit.map(|c| c.summary);
    out
}

fn check_mape(target: Ipv4Addr, rate_x: u64) {
    let o = run("mape", target, rate_x);
    assert_eq!(o.a_refused, 0, "mape refused the normal host: {o:?}");
    assert!(o.a_ok > 2000, "{o:?}");
    assert_eq!(o.b_translated_to_private, 0, "{o:?}");
    assert!(o.b_max_ports <= 120, "B exceeded its cap: {o:?}");
    assert_eq!(o.exhausted_at, None, "{o:?}");
    assert_eq!(o.culprit, Some(HOST_B), "{o:?}");
    let pattern = o.culprit_pattern.clone().unwrap();
    assert!(pattern.contains(&target.to_string()), "{pattern}");
    if target == PRIVATE_TARGET {
        assert_eq!(o.b_max_ports, 0, "the private storm costs no port: {o:?}");
    }
}

fn check_rtx(target: Ipv4Addr, rate_x: u64) {
    let o = run("rtx830-like", target, rate_x);
    assert!(
        o.exhausted_at.is_some(),
        "the scenario must bite under rtx830-like: {o:?}"
    );
    assert!(o.a_refused > 0, "{o:?}");
    assert_eq!(o.peak, 240);
    // At the seed's rate (about one new port a second) 240 ports last about four minutes.
    if rate_x == 1 {
        let at = o.exhausted_at.unwrap().secs_f64();
        assert!((120.0..=400.0).contains(&at), "exhausted at {at} s");
    }
    assert_eq!(o.culprit, Some(HOST_B), "{o:?}");
}

#[test]
fn private_target_1x() {
    check_mape(PRIVATE_TARGET, 1);
    check_rtx(PRIVATE_TARGET, 1);
}

#[test]
fn private_target_100x() {
    check_mape(PRIVATE_TARGET, 100);
    check_rtx(PRIVATE_TARGET, 100);
}

#[test]
fn silent_public_sink_1x() {
    check_mape(SILENT_SINK, 1);
    check_rtx(SILENT_SINK, 1);
}

#[test]
fn silent_public_sink_100x() {
    check_mape(SILENT_SINK, 100);
    check_rtx(SILENT_SINK, 100);
}

#[test]
fn linux_like_survives_private_1x_but_burns_ports() {
    // Linux's 30 s unreplied timer keeps the 1× storm at 20-40 ports (nat-facts §7), and
    // nothing stops the packets from entering the tunnel.
    let o = run("linux-like", PRIVATE_TARGET, 1);
    assert!(o.b_translated_to_private > 1000);
    assert!(
        (15..=60).contains(&o.b_max_ports),
        "storm holds {} ports",
        o.b_max_ports
    );
    assert_eq!(o.a_refused, 0);
}
