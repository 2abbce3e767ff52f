//! Ordinary churn never locks a host out (issue #18), with the default `mape` policy: quota
//! on (two active hosts, so the churning host's cap is half the budget), FIN closes,
//! default sharing. Each test is one of the lock-outs seen in the lab: 240 short TCP
//! connections to one server, 240 one-shot UDP exchanges, 240 single pings. The principle
//! they check: a host is never refused while it holds idle state that could be recycled
//! for it (closing TCP, one-shot exchanges, answered echoes), and closing sessions are
//! reclaimed before any live session of any host (RFC 7857 §3.2, RFC 6191).

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;

const EXT: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);
const LAN1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const LAN2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 23);
const SERVER: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

/// The v6plus port set of PSID 161: 240 ports.
fn nat(cfg: NatConfig) -> Nat {
    Nat::new(cfg, EXT, PortSet::new(161, 8, 4).unwrap()).unwrap()
}

fn ms(v: u64) -> Timestamp {
    Timestamp::from_millis(v)
}

fn out(proto: Protocol, src: Endpoint, dst: Endpoint, flags: u8, ack: u32) -> OutboundPacket {
    OutboundPacket {
        proto,
        src,
        dst,
        flags: TcpFlags(flags),
        seq: 0,
        ack,
    }
}

fn back(p: &OutboundPacket, ext: Endpoint, flags: u8, seq: u32) -> InboundPacket {
    InboundPacket {
        proto: p.proto,
        src: p.dst,
        dst: ext,
        flags: TcpFlags(flags),
        seq,
        ack: 0,
    }
}

fn must_translate(v: OutboundVerdict, what: &str) -> Endpoint {
    match v {
        OutboundVerdict::Translate { external } => external,
        other => panic!("{what}: expected a translation, got {other:?}"),
    }
}

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;

/// One short connection: handshake, request, the server closes first (HTTP/1.0), the
/// client closes. Returns the external endpoint. Panics if any packet is refused.
fn short_connection(n: &mut Nat, t: u64, src: Endpoint, dst: Endpoint, what: &str) -> Endpoint {
    let syn = out(Protocol::Tcp, src, dst, SYN, 0);
    let ext = must_translate(n.outbound(ms(t), &syn), what);
    assert!(matches!(
        n.inbound(ms(t + 1), &back(&syn, ext, SYN | ACK, 1000)),
        InboundVerdict::Translate { .. }
    ));
    must_translate(
        n.outbound(ms(t + 2), &out(Protocol::Tcp, src, dst, ACK, 1001)),
        what,
    );
    n.inbound(ms(t + 3), &back(&syn, ext, ACK | FIN, 1001));
    must_translate(
        n.outbound(ms(t + 4), &out(Protocol::Tcp, src, dst, ACK | FIN, 1002)),
        what,
    );
    n.inbound(ms(t + 5), &back(&syn, ext, ACK, 1002));
    ext
}

/// An established connection of `host` that stays open.
fn open_connection(n: &mut Nat, t: u64, src: Endpoint, dst: Endpoint) -> Endpoint {
    let syn = out(Protocol::Tcp, src, dst, SYN, 0);
    let ext = must_translate(n.outbound(ms(t), &syn), "open");
    n.inbound(ms(t + 1), &back(&syn, ext, SYN | ACK, 1));
    must_translate(
        n.outbound(ms(t + 2), &out(Protocol::Tcp, src, dst, ACK, 2)),
        "open",
    );
    ext
}

fn host(s: &Snapshot, addr: Ipv4Addr) -> &HostStats {
    s.hosts
        .iter()
        .find(|h| h.addr == addr)
        .expect("host in snapshot")
}

#[test]
fn short_tcp_connections_to_one_server_never_lock_the_host_out() {
    for lan2_active in [false, true] {
        let mut n = nat(NatConfig::mape());
        let mut lan2_conns = vec![];
        if lan2_active {
            for i in 0..5u16 {
                let src = Endpoint::new(LAN2, 40000 + i);
                let dst = Endpoint::new(Ipv4Addr::new(1, 1, 1, 1), 443);
                lan2_conns.push((src, dst, open_connection(&mut n, 0, src, dst)));
            }
        }
        let server = Endpoint::new(SERVER, 80);
        // 100 connects a second for 30 s: 3000 connections, 12 times the budget.
        for i in 0..3000u64 {
            let t = 1000 + i * 10;
            let src = Endpoint::new(LAN1, 10000 + (i % 50000) as u16);
            let ext = short_connection(&mut n, t, src, server, "connect loop");
            assert!(PortSet::new(161, 8, 4).unwrap().contains(ext.port));
            if i % 100 == 50 {
                // lan1 and lan2 keep reaching other servers.
                let other = Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 443);
                let s1 = Endpoint::new(LAN1, 61000 + (i / 100) as u16);
                short_connection(&mut n, t + 6, s1, other, "lan1 elsewhere");
                let s2 = Endpoint::new(LAN2, 61000 + (i / 100) as u16);
                short_connection(&mut n, t + 7, s2, other, "lan2 elsewhere");
            }
        }
        let snap = n.snapshot(ms(40_000));
        assert_eq!(snap.refusals, 0, "no connection of any host was refused");
        assert!(n.ports_in_use(Protocol::Tcp) <= 240);
        if lan2_active {
            // lan1 stayed within its cap, and lan2's open connections all survived.
            let cap = n.cap_of(LAN1, Protocol::Tcp).unwrap();
            assert!(n.host_ports(LAN1, Protocol::Tcp) <= cap);
            for (src, dst, ext) in lan2_conns {
                assert_eq!(n.translation_of(Protocol::Tcp, src, dst), Some(ext));
            }
        }
        assert!(host(&snap, LAN1).recycled > 0 || !lan2_active);
        n.check_invariants().unwrap();
    }
}

#[test]
fn closing_sessions_are_reclaimed_before_any_live_one() {
    let mut n = nat(NatConfig::mape());
    let server = Endpoint::new(SERVER, 80);
    // lan2: 110 open connections (within its cap of 120).
    let mut open = vec![];
    for i in 0..110u16 {
        let src = Endpoint::new(LAN2, 30000 + i);
        let dst = Endpoint::new(Ipv4Addr::new(1, 1, 1, 1), 443);
        open.push((src, dst, open_connection(&mut n, 0, src, dst)));
    }
    // lan1: 120 closed connections (its cap), waiting out TIME_WAIT.
    for i in 0..120u64 {
        short_connection(
            &mut n,
            100 + i * 10,
            Endpoint::new(LAN1, 20000 + i as u16),
            server,
            "lan1",
        );
    }
    // A third host fills what is left, then needs more: only closing ports may go.
    let lan3 = Ipv4Addr::new(192, 168, 1, 30);
    for i in 0..60u16 {
        let src = Endpoint::new(lan3, 50000 + i);
        let dst = Endpoint::new(Ipv4Addr::new(9, 9, 9, 9), 443 + i);
        open_connection(&mut n, 5_000 + u64::from(i), src, dst);
    }
    for (src, dst, ext) in open {
        assert_eq!(
            n.translation_of(Protocol::Tcp, src, dst),
            Some(ext),
            "an open connection of lan2 was taken"
        );
    }
    assert_eq!(n.refusals(), 0);
    n.check_invariants().unwrap();
}

#[test]
fn one_shot_udp_exchanges_never_cut_the_host_off_from_dns() {
    let mut n = nat(NatConfig::mape());
    // lan2 keeps a UDP stream going, so lan1's cap is half the budget.
    let stream = out(
        Protocol::Udp,
        Endpoint::new(LAN2, 5000),
        Endpoint::new(Ipv4Addr::new(1, 1, 1, 1), 3478),
        0,
        0,
    );
    let s_ext = must_translate(n.outbound(ms(0), &stream), "stream");
    let echo = Endpoint::new(SERVER, 7008);
    let dns = Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 53);
    // 25 exchanges a second for 60 s, each from a new source port, each answered once;
    // one DNS lookup a second from its own new port.
    for i in 0..1500u64 {
        let t = i * 40;
        if i % 25 == 0 {
            let sp = must_translate(n.outbound(ms(t), &stream), "stream");
            assert_eq!(sp, s_ext);
            n.inbound(ms(t + 10), &back(&stream, s_ext, 0, 0));
        }
        let p = out(
            Protocol::Udp,
            Endpoint::new(LAN1, 20000 + i as u16),
            echo,
            0,
            0,
        );
        let ext = must_translate(n.outbound(ms(t), &p), "exchange");
        assert!(matches!(
            n.inbound(ms(t + 20), &back(&p, ext, 0, 0)),
            InboundVerdict::Translate { .. }
        ));
        if i % 25 == 12 {
            let q = out(
                Protocol::Udp,
                Endpoint::new(LAN1, 40000 + (i / 25) as u16),
                dns,
                0,
                0,
            );
            let ext = must_translate(n.outbound(ms(t), &q), "lan1's own DNS");
            assert!(matches!(
                n.inbound(ms(t + 5), &back(&q, ext, 0, 0)),
                InboundVerdict::Translate { .. }
            ));
        }
    }
    let snap = n.snapshot(ms(60_000));
    assert_eq!(snap.refusals, 0);
    let h = host(&snap, LAN1);
    // The truth views tell one-shot exchanges from unanswered flows and streams.
    assert!(h.answered_once >= 100, "answered once: {}", h.answered_once);
    assert!(h.unanswered <= 1, "unanswered: {}", h.unanswered);
    assert!(
        snap.culprit.as_ref().is_none_or(|c| c.host != LAN1),
        "answered exchanges are no storm: {:?}",
        snap.culprit
    );
    assert_eq!(host(&snap, LAN2).streams, 1);
    n.check_invariants().unwrap();
}

#[test]
fn six_hundred_single_pings_all_succeed() {
    let mut n = nat(NatConfig::mape());
    // lan2 pings continuously (one identifier, a stream).
    let lan2_ping = out(
        Protocol::Icmp,
        Endpoint::new(LAN2, 7),
        Endpoint::new(Ipv4Addr::new(1, 1, 1, 1), 0),
        0,
        0,
    );
    let target = Endpoint::new(SERVER, 0);
    for i in 0..600u64 {
        let t = i * 100;
        if i % 10 == 0 {
            let ext = must_translate(n.outbound(ms(t), &lan2_ping), "lan2 ping");
            n.inbound(ms(t + 3), &back(&lan2_ping, ext, 0, 0));
        }
        // `ping -c1`: a new identifier each time, one echo, one reply.
        let p = out(
            Protocol::Icmp,
            Endpoint::new(LAN1, 1000 + i as u16),
            target,
            0,
            0,
        );
        let ext = must_translate(n.outbound(ms(t), &p), "single ping");
        assert_eq!(
            n.inbound(ms(t + 2), &back(&p, ext, 0, 0)),
            InboundVerdict::Translate { internal: p.src }
        );
    }
    assert_eq!(n.refusals(), 0);
    assert!(n.ports_in_use(Protocol::Icmp) <= 240);
    n.check_invariants().unwrap();
}

#[test]
fn answered_streams_of_other_hosts_are_never_taken() {
    // RFC 6888 REQ-11: lan2's answered streams fill the budget; lan1 is refused, not given
    // them, however idle state it lacks.
    let mut n = nat(NatConfig::mape());
    for i in 0..240u16 {
        let p = out(
            Protocol::Udp,
            Endpoint::new(LAN2, 20000 + i),
            Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), 9000),
            0,
            0,
        );
        if let OutboundVerdict::Translate { external } = n.outbound(ms(0), &p) {
            n.inbound(ms(3500), &back(&p, external, 0, 0));
        }
    }
    let before = n.session_count();
    let p = out(
        Protocol::Udp,
        Endpoint::new(LAN1, 30000),
        Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), 9000),
        0,
        0,
    );
    assert!(matches!(
        n.outbound(ms(4000), &p),
        OutboundVerdict::Drop { .. }
    ));
    assert_eq!(n.session_count(), before);
    n.check_invariants().unwrap();
}

#[test]
fn linux_like_reuses_closed_tuples_and_times_one_shots_at_30_s() {
    let mut n = nat(NatConfig::linux_like());
    let server = Endpoint::new(SERVER, 80);
    for i in 0..1000u64 {
        short_connection(
            &mut n,
            i * 10,
            Endpoint::new(LAN1, 10000 + i as u16),
            server,
            "linux-like connect loop",
        );
    }
    assert_eq!(
        n.refusals(),
        0,
        "the kernel re-uses closed tuples for new SYNs"
    );

    // UDP: a one-shot exchange lives 30 s; a flow still active after 2 s is a stream (120 s).
    let mut n = nat(NatConfig::linux_like());
    let one = out(
        Protocol::Udp,
        Endpoint::new(LAN1, 1111),
        Endpoint::new(SERVER, 123),
        0,
        0,
    );
    let e1 = must_translate(n.outbound(ms(0), &one), "one-shot");
    n.inbound(ms(10), &back(&one, e1, 0, 0));
    let st = out(
        Protocol::Udp,
        Endpoint::new(LAN1, 2222),
        Endpoint::new(SERVER, 3478),
        0,
        0,
    );
    let e2 = must_translate(n.outbound(ms(0), &st), "stream");
    n.inbound(ms(10), &back(&st, e2, 0, 0));
    must_translate(n.outbound(ms(3_500), &st), "stream");
    n.expire(ms(30_009));
    assert_eq!(n.session_count(), 2);
    n.expire(ms(30_010));
    assert_eq!(n.session_count(), 1, "the one-shot exchange went at 30 s");
    n.expire(ms(3_500 + 119_999));
    assert_eq!(n.session_count(), 1);
    n.expire(ms(3_500 + 120_000));
    assert_eq!(
        n.session_count(),
        0,
        "the stream went 120 s after its last packet"
    );
}

#[test]
fn rtx830_like_locks_the_host_out_as_the_rtx_does() {
    let mut n = nat(NatConfig::rtx830_like());
    let server = Endpoint::new(SERVER, 80);
    let mut refused = 0;
    for i in 0..300u64 {
        let src = Endpoint::new(LAN1, 10000 + i as u16);
        let syn = out(Protocol::Tcp, src, server, SYN, 0);
        match n.outbound(ms(i * 10), &syn) {
            OutboundVerdict::Translate { .. } => {
                short_connection(&mut n, i * 10, src, server, "rtx");
            }
            OutboundVerdict::Drop { .. } => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    // 240 ports, each held 900 s by a closed connection to the one server.
    assert_eq!(refused, 300 - 240);
}
