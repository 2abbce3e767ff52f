//! Behaviour of the engine, one test per requirement, RFC sections named.

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;

mod common;
use common::{ep, nat, reply, t, tcp, udp, v6plus, EXT};

fn translated(v: OutboundVerdict) -> Endpoint {
    match v {
        OutboundVerdict::Translate { external } => external,
        other => panic!("expected a translation, got {other:?}"),
    }
}

#[test]
fn translate_then_reverse_is_identity_and_ports_stay_in_the_set() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:40000", "8.8.8.8:53");
    let ext = translated(n.outbound(t(0), &p));
    assert_eq!(ext.addr, EXT);
    assert!(v6plus().contains(ext.port));
    assert_eq!(
        n.inbound(t(1), &reply(&p, ext, 0)),
        InboundVerdict::Translate { internal: p.src }
    );
    n.check_invariants().unwrap();
}

#[test]
fn port_preserved_when_inside_the_set_and_free() {
    let mut n = nat(NatConfig::mape());
    // 6672 is the first port of PSID 161 (a = 4, k = 8).
    let ext = translated(n.outbound(t(0), &udp("192.168.1.10:6672", "1.1.1.1:443")));
    assert_eq!(ext.port, 6672);
}

#[test]
fn endpoint_independent_mapping_rfc4787_req1() {
    let mut n = nat(NatConfig::mape());
    let a = translated(n.outbound(t(0), &udp("192.168.1.10:40000", "1.1.1.1:3478")));
    let b = translated(n.outbound(t(0), &udp("192.168.1.10:40000", "9.9.9.9:3478")));
    assert_eq!(a, b, "same internal endpoint, same external endpoint");
    assert_eq!(n.ports_in_use(Protocol::Udp), 1);
    let c = translated(n.outbound(t(0), &udp("192.168.1.10:40001", "1.1.1.1:3478")));
    assert_ne!(a.port, c.port);
}

#[test]
fn address_and_port_dependent_filtering_by_default() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:40000", "1.1.1.1:3478");
    let ext = translated(n.outbound(t(0), &p));
    let stranger = InboundPacket {
        proto: Protocol::Udp,
        src: ep("1.1.1.1:3479"),
        dst: ext,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    assert_eq!(
        n.inbound(t(1), &stranger),
        InboundVerdict::Drop(NatDrop::Filtered)
    );
    assert_eq!(n.drops(NatDrop::Filtered), 1);
    let nobody = InboundPacket {
        dst: Endpoint::new(EXT, v6plus().nth(200).unwrap()),
        ..stranger
    };
    assert_eq!(
        n.inbound(t(1), &nobody),
        InboundVerdict::Drop(NatDrop::NoMapping)
    );
    let outside = InboundPacket {
        dst: Endpoint::new(EXT, 6671),
        ..stranger
    };
    assert_eq!(
        n.inbound(t(1), &outside),
        InboundVerdict::Drop(NatDrop::PortOutsideSet)
    );
}

#[test]
fn endpoint_independent_filtering_when_asked_and_unshared() {
    let mut cfg = NatConfig::mape();
    cfg.filtering = Filtering::EndpointIndependent;
    let mut n = nat(cfg);
    let p = udp("192.168.1.10:40000", "1.1.1.1:3478");
    let ext = translated(n.outbound(t(0), &p));
    let other = InboundPacket {
        proto: Protocol::Udp,
        src: ep("5.6.7.8:9999"),
        dst: ext,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    assert_eq!(
        n.inbound(t(1), &other),
        InboundVerdict::Translate { internal: p.src }
    );
    // The new remote now has its own session: replies to it go out on the same mapping.
    assert_eq!(
        translated(n.outbound(t(2), &udp("192.168.1.10:40000", "5.6.7.8:9999"))),
        ext
    );
    n.check_invariants().unwrap();
}

#[test]
fn hairpinning_rfc4787_req9() {
    let mut cfg = NatConfig::mape();
    cfg.filtering = Filtering::EndpointIndependent;
    let mut n = nat(cfg);
    let server = translated(n.outbound(t(0), &udp("192.168.1.20:5000", "1.1.1.1:3478")));
    // Another LAN host sends to the server's external endpoint.
    let p = OutboundPacket {
        proto: Protocol::Udp,
        src: ep("192.168.1.10:6000"),
        dst: server,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    match n.outbound(t(1), &p) {
        OutboundVerdict::Hairpin {
            external_src,
            internal_dst,
        } => {
            assert_eq!(
                external_src.addr, EXT,
                "hairpinned source is the external address"
            );
            assert!(v6plus().contains(external_src.port));
            assert_eq!(internal_dst, ep("192.168.1.20:5000"));
        }
        other => panic!("expected hairpin, got {other:?}"),
    }
    n.check_invariants().unwrap();
}

#[test]
fn udp_timers_by_state() {
    let mut n = nat(NatConfig::mape());
    // Unanswered: 30 s.
    translated(n.outbound(t(0), &udp("192.168.1.10:40000", "1.2.3.4:9000")));
    n.expire(t(29));
    assert_eq!(n.session_count(), 1);
    n.expire(t(30));
    assert_eq!(n.session_count(), 0);
    assert_eq!(n.ports_in_use(Protocol::Udp), 0, "the port is free again");
    // Answered: 300 s, refreshed by traffic.
    let p = udp("192.168.1.10:40001", "1.2.3.4:9000");
    let ext = translated(n.outbound(t(100), &p));
    n.inbound(t(101), &reply(&p, ext, 0));
    n.expire(t(101 + 299));
    assert_eq!(n.session_count(), 1);
    translated(n.outbound(t(400), &p));
    n.expire(t(699));
    assert_eq!(n.session_count(), 1, "refreshed at 400 s");
    n.expire(t(700));
    assert_eq!(n.session_count(), 0);
    // DNS: closes 2 s after its answer.
    let q = udp("192.168.1.10:40002", "8.8.8.8:53");
    let ext = translated(n.outbound(t(1000), &q));
    n.inbound(t(1000), &reply(&q, ext, 0));
    n.expire(t(1001));
    assert_eq!(n.session_count(), 1);
    n.expire(t(1002));
    assert_eq!(n.session_count(), 0);
    n.check_invariants().unwrap();
}

#[test]
fn tcp_timers_rfc5382() {
    let mut n = nat(NatConfig::mape());
    let syn = tcp("192.168.1.10:50000", "93.184.216.34:443", TcpFlags::SYN);
    let ext = translated(n.outbound(t(0), &syn));
    n.inbound(t(0), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
    let ack = tcp("192.168.1.10:50000", "93.184.216.34:443", TcpFlags::ACK);
    translated(n.outbound(t(0), &ack));
    // Established: at least 2 h 4 min idle (REQ-5).
    n.expire(t(7439));
    assert_eq!(n.session_count(), 1);
    n.expire(t(7440));
    assert_eq!(n.session_count(), 0);

    // FIN both ways then TIME_WAIT 240 s.
    let syn = tcp("192.168.1.10:50001", "93.184.216.34:443", TcpFlags::SYN);
    let ext = translated(n.outbound(t(10_000), &syn));
    n.inbound(t(10_000), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
    translated(n.outbound(
        t(10_001),
        &tcp(
            "192.168.1.10:50001",
            "93.184.216.34:443",
            TcpFlags::FIN | TcpFlags::ACK,
        ),
    ));
    n.inbound(t(10_001), &reply(&syn, ext, TcpFlags::FIN | TcpFlags::ACK));
    n.expire(t(10_240));
    assert_eq!(n.session_count(), 1);
    n.expire(t(10_241));
    assert_eq!(n.session_count(), 0);

    // Unanswered SYN: transitory 4 min.
    translated(n.outbound(
        t(20_000),
        &tcp("192.168.1.10:50002", "93.184.216.34:443", TcpFlags::SYN),
    ));
    n.expire(t(20_239));
    assert_eq!(n.session_count(), 1);
    n.expire(t(20_240));
    assert_eq!(n.session_count(), 0);
}

#[test]
fn icmp_echo_ids_come_from_the_port_set_rfc7597_8_2() {
    let mut n = nat(NatConfig::mape());
    let ping = OutboundPacket {
        proto: Protocol::Icmp,
        src: ep("192.168.1.10:1"),
        dst: ep("1.1.1.1:0"),
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    let ext = translated(n.outbound(t(0), &ping));
    assert!(
        v6plus().contains(ext.port),
        "identifier {} in the set",
        ext.port
    );
    let pong = InboundPacket {
        proto: Protocol::Icmp,
        src: ep("1.1.1.1:0"),
        dst: ext,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    assert_eq!(
        n.inbound(t(1), &pong),
        InboundVerdict::Translate { internal: ping.src }
    );
    // Query timer: 60 s (RFC 5508 REQ-2).
    n.expire(t(60));
    assert_eq!(n.session_count(), 1);
    n.expire(t(61));
    assert_eq!(n.session_count(), 0);
}

#[test]
fn destination_filter_gives_no_port_and_says_so() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.23:51000", "192.168.1.211:59870");
    match n.outbound(t(0), &p) {
        OutboundVerdict::Drop { reason, notice } => {
            assert_eq!(reason, NatDrop::DestinationFiltered);
            assert_eq!(notice, Some(RefuseNotice::AdminProhibited));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(n.budget_used(), 0);
    assert_eq!(n.session_count(), 0);
    let snap = n.snapshot(t(0));
    let host = snap
        .hosts
        .iter()
        .find(|h| h.addr == Ipv4Addr::new(192, 168, 1, 23))
        .unwrap();
    assert_eq!(host.filtered, 1);
    let dst = snap.destinations.iter().find(|d| d.dst == p.dst).unwrap();
    assert_eq!(dst.filtered, 1);
    assert!(n
        .drain_events()
        .any(|e| matches!(e.kind, EventKind::DestinationFiltered { .. })));
    // The allow-list overrides it (the lab uses documentation ranges).
    let mut n = nat(NatConfig::mape().allow_destinations(&["192.168.1.0/24".parse().unwrap()]));
    translated(n.outbound(t(0), &p));
}

#[test]
fn static_forwards_must_lie_in_the_set_and_accept_inbound() {
    let mut cfg = NatConfig::mape();
    cfg.forwards = vec![StaticForward {
        proto: Protocol::Tcp,
        external_port: 6000,
        internal: ep("192.168.1.30:22"),
    }];
    let err = Nat::new(cfg.clone(), EXT, v6plus()).unwrap_err();
    assert!(
        matches!(err, ConfigError::ForwardOutsidePortSet { port: 6000, .. }),
        "{err}"
    );
    cfg.forwards[0].external_port = 6680;
    let mut n = Nat::new(cfg, EXT, v6plus()).unwrap();
    let syn = InboundPacket {
        proto: Protocol::Tcp,
        src: ep("203.0.113.5:40000"),
        dst: Endpoint::new(EXT, 6680),
        flags: TcpFlags(TcpFlags::SYN),
        seq: 0,
        ack: 0,
    };
    assert_eq!(
        n.inbound(t(0), &syn),
        InboundVerdict::Translate {
            internal: ep("192.168.1.30:22")
        }
    );
    // The reply leaves from the forwarded port.
    let synack = tcp(
        "192.168.1.30:22",
        "203.0.113.5:40000",
        TcpFlags::SYN | TcpFlags::ACK,
    );
    assert_eq!(translated(n.outbound(t(0), &synack)).port, 6680);
    // No dynamic flow ever gets the forwarded port.
    for i in 0..500u16 {
        if let OutboundVerdict::Translate { external } = n.outbound(
            t(1),
            &tcp(
                &format!("192.168.1.40:{}", 30000 + i),
                "1.1.1.1:443",
                TcpFlags::SYN,
            ),
        ) {
            assert_ne!(external.port, 6680);
        }
    }
    n.check_invariants().unwrap();
}

#[test]
fn a_host_alone_may_use_everything_then_shares_when_others_come() {
    let mut cfg = NatConfig::mape();
    cfg.strategy = PortStrategy::BudgetAware {
        share_above_percent: 100,
    };
    let mut n = nat(cfg);
    // Host A alone opens 240 answered flows to one remote: all ports.
    for i in 0..240u16 {
        let p = udp(&format!("192.168.1.10:{}", 20000 + i), "1.2.3.4:9000");
        let ext = translated(n.outbound(t(0), &p));
        n.inbound(t(0), &reply(&p, ext, 0));
    }
    assert_eq!(n.ports_in_use(Protocol::Udp), 240);
    // Host B arrives: A's answered flows are never evicted for B (RFC 6888 REQ-11).
    let b = udp("192.168.1.11:30000", "1.2.3.4:9000");
    match n.outbound(t(1), &b) {
        OutboundVerdict::Drop { reason, .. } => assert_eq!(reason, NatDrop::PortsExhausted),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.session_count(), 240);
    n.check_invariants().unwrap();
}

#[test]
fn fair_share_cap_recycles_own_unanswered_and_keeps_others_alive() {
    let mut n = nat(NatConfig::mape());
    // Host A: a few answered flows.
    let mut a_flows = vec![];
    for i in 0..10u16 {
        let p = udp(&format!("192.168.1.10:{}", 20000 + i), "8.8.4.4:443");
        let ext = translated(n.outbound(t(0), &p));
        n.inbound(t(0), &reply(&p, ext, 0));
        a_flows.push((p, ext));
    }
    // Host B storms one unanswered public destination from new source ports.
    let mut b_refused = 0;
    for i in 0..1000u16 {
        // A public address that never answers (the "silent sink" of the lab).
        let p = udp(&format!("192.168.1.23:{}", 40000 + i), "45.76.1.1:59870");
        match n.outbound(t(u64::from(i) / 10), &p) {
            OutboundVerdict::Translate { .. } => {}
            OutboundVerdict::Drop { reason, .. } => {
                assert_eq!(reason, NatDrop::HostQuota);
                b_refused += 1;
            }
            other => panic!("{other:?}"),
        }
        let held = n
            .snapshot(t(0))
            .hosts
            .iter()
            .find(|h| h.addr == Ipv4Addr::new(192, 168, 1, 23))
            .map(|h| h.ports_by_proto[1])
            .unwrap_or(0);
        assert!(held <= 120, "B holds {held} > its cap of 50 % of 240");
    }
    assert_eq!(
        b_refused, 0,
        "B recycles its own oldest unanswered flows instead of failing"
    );
    // A's answered flows all survive.
    for (p, ext) in &a_flows {
        assert_eq!(
            n.inbound(t(99), &reply(p, *ext, 0)),
            InboundVerdict::Translate { internal: p.src }
        );
    }
    let snap = n.snapshot(t(100));
    let b = snap
        .hosts
        .iter()
        .find(|h| h.addr == Ipv4Addr::new(192, 168, 1, 23))
        .unwrap();
    assert!(b.recycled > 0);
    let events: Vec<_> = n.drain_events().collect();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::HostCapped { .. })));
    assert!(
        events.iter().any(|e| matches!(&e.kind, EventKind::CulpritNamed { host, .. } if *host == Ipv4Addr::new(192, 168, 1, 23))),
        "the storm host is named as it is capped"
    );
    // The culprit names where its storm goes, typed (the sink of every flow above).
    let sink = Endpoint::new(Ipv4Addr::new(45, 76, 1, 1), 59870);
    assert_eq!(
        snap.culprit.as_ref().and_then(|c| c.top_destination),
        Some(sink)
    );
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::CulpritNamed { top_destination, .. } if *top_destination == Some(sink)
    )));
    n.check_invariants().unwrap();
}

/// The `mape` policy without per-host quota and sharing no port before all are in use.
fn unshared_no_quota() -> NatConfig {
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    cfg.strategy = PortStrategy::BudgetAware {
        share_above_percent: 100,
    };
    cfg
}

/// [`unshared_no_quota`] with all 240 UDP ports held by 192.168.1.10's flows to
/// 1.2.3.4:9000, opened at 0 s.
fn full_udp_nat() -> Nat {
    let mut n = nat(unshared_no_quota());
    for i in 0..240u16 {
        translated(n.outbound(
            t(0),
            &udp(&format!("192.168.1.10:{}", 20000 + i), "1.2.3.4:9000"),
        ));
    }
    n
}

#[test]
fn refusal_is_counted_and_notified_at_a_bounded_rate() {
    let mut n = full_udp_nat();
    let mut notices = 0;
    for i in 0..100u16 {
        if let OutboundVerdict::Drop { reason, notice } = n.outbound(
            t(1),
            &udp(&format!("192.168.1.11:{}", 30000 + i), "1.2.3.4:9000"),
        ) {
            assert_eq!(reason, NatDrop::PortsExhausted);
            notices += usize::from(notice.is_some());
        } else {
            panic!("should be refused");
        }
    }
    assert_eq!(n.refusals(), 100);
    assert!(notices <= 10, "{notices} notices within one second");
    assert!(notices >= 1);
    let snap = n.snapshot(t(1));
    assert_eq!(snap.exhausted_at, Some(t(1)));
    assert_eq!(snap.last_refusal, Some(t(1)));
    let b = snap
        .hosts
        .iter()
        .find(|h| h.addr == Ipv4Addr::new(192, 168, 1, 11))
        .unwrap();
    assert_eq!(b.refusals, 100);
}

#[test]
fn under_pressure_ports_are_shared_across_destinations_for_udp() {
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    let mut n = nat(cfg);
    // 400 flows to 400 different remotes fit in far fewer than 240 ports.
    for i in 0..400u16 {
        let p = udp(
            &format!("192.168.1.10:{}", 20000 + i),
            &format!("1.2.{}.{}:443", i / 200, i % 200 + 1),
        );
        translated(n.outbound(t(0), &p));
    }
    assert_eq!(n.session_count(), 400);
    let used = n.ports_in_use(Protocol::Udp);
    assert!(used <= 181, "sharing starts at 75 %: {used} ports in use");
    n.check_invariants().unwrap();
}

#[test]
fn rtx830_like_shares_tcp_only() {
    let mut n = nat(NatConfig::rtx830_like());
    for i in 0..240u16 {
        translated(n.outbound(
            t(0),
            &udp(
                &format!("192.168.1.10:{}", 20000 + i),
                &format!("1.2.3.{}:443", i % 200 + 1),
            ),
        ));
    }
    // UDP to a fresh destination: refused, silently.
    match n.outbound(t(0), &udp("192.168.1.11:1000", "9.9.9.9:53")) {
        OutboundVerdict::Drop { reason, notice } => {
            assert_eq!(reason, NatDrop::PortsExhausted);
            assert_eq!(notice, None);
        }
        other => panic!("{other:?}"),
    }
    // TCP has its own 240 ports and shares when they run out.
    for i in 0..300u16 {
        translated(n.outbound(
            t(0),
            &tcp(
                &format!("192.168.1.10:{}", 20000 + i),
                &format!("1.2.3.{}:443", i % 250 + 1),
                TcpFlags::SYN,
            ),
        ));
    }
    n.check_invariants().unwrap();
}

#[test]
fn linux_like_reuses_ports_per_tuple_and_drops_silently() {
    let mut n = nat(NatConfig::linux_like());
    // Same destination: exactly 240 flows fit (perf-anchors: "exactly 240 work").
    let mut ok = 0;
    for i in 0..400u16 {
        if let OutboundVerdict::Translate { .. } = n.outbound(
            t(0),
            &udp(&format!("192.168.1.10:{}", 20000 + i), "1.2.3.4:9000"),
        ) {
            ok += 1;
        }
    }
    assert!((230..=240).contains(&ok), "{ok} flows to one destination");
    // Different destination: still works (ports reused across destinations).
    translated(n.outbound(t(0), &udp("192.168.1.10:45000", "5.6.7.8:9000")));
    // Private destinations are not filtered.
    translated(n.outbound(t(0), &udp("192.168.1.10:45001", "192.168.1.211:59870")));
    n.check_invariants().unwrap();
}

#[test]
fn time_wait_is_reclaimed_when_the_port_is_needed() {
    let mut n = nat(unshared_no_quota());
    let dst = "93.184.216.34:443";
    for i in 0..240u16 {
        let src = format!("192.168.1.10:{}", 20000 + i);
        let syn = tcp(&src, dst, TcpFlags::SYN);
        let ext = translated(n.outbound(t(0), &syn));
        n.inbound(t(0), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
        translated(n.outbound(t(1), &tcp(&src, dst, TcpFlags::RST)));
    }
    // All 240 in TIME_WAIT; a new connection to the same destination still gets a port.
    translated(n.outbound(t(2), &tcp("192.168.1.10:30000", dst, TcpFlags::SYN)));
    n.check_invariants().unwrap();
}

#[test]
fn bad_input_gets_a_typed_verdict() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:0", "1.1.1.1:53");
    assert!(matches!(
        n.outbound(t(0), &p),
        OutboundVerdict::Drop {
            reason: NatDrop::PortZero,
            ..
        }
    ));
    let p = udp("192.168.1.10:1000", "1.1.1.1:0");
    assert!(matches!(
        n.outbound(t(0), &p),
        OutboundVerdict::Drop {
            reason: NatDrop::PortZero,
            ..
        }
    ));
    let wrong = InboundPacket {
        proto: Protocol::Udp,
        src: ep("1.1.1.1:53"),
        dst: ep("14.9.26.102:6672"),
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    };
    assert_eq!(
        n.inbound(t(0), &wrong),
        InboundVerdict::Drop(NatDrop::NotOurAddress)
    );
    // A TCP non-SYN to a forward-less port and an ICMP error without a session.
    assert_eq!(
        n.inbound_icmp_error(Protocol::Udp, Endpoint::new(EXT, 6672), ep("1.1.1.1:53")),
        None
    );
    assert_eq!(n.drops(NatDrop::IcmpErrorNoSession), 1);
}

#[test]
fn icmp_errors_map_embedded_packets_without_refreshing() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:40000", "1.2.3.4:9000");
    let ext = translated(n.outbound(t(0), &p));
    assert_eq!(n.inbound_icmp_error(Protocol::Udp, ext, p.dst), Some(p.src));
    assert_eq!(
        n.outbound_icmp_error(Protocol::Udp, p.src, p.dst),
        Some(ext)
    );
    n.expire(t(30));
    assert_eq!(
        n.session_count(),
        0,
        "ICMP errors did not refresh (RFC 5508 REQ-6)"
    );
}

#[test]
fn reload_keeps_sessions_and_changes_timers() {
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:40000", "1.2.3.4:9000");
    let ext = translated(n.outbound(t(0), &p));
    let mut cfg = NatConfig::mape();
    cfg.timeouts.udp_unanswered = 90;
    cfg.forwards = vec![StaticForward {
        proto: Protocol::Udp,
        external_port: ext.port,
        internal: ep("192.168.1.30:53"),
    }];
    assert!(matches!(
        n.reconfigure(cfg.clone(), t(1)),
        Err(ConfigError::ForwardBusy { .. })
    ));
    cfg.forwards[0].external_port = if ext.port == 6672 { 6673 } else { 6672 };
    n.reconfigure(cfg, t(1)).unwrap();
    n.expire(t(60));
    assert_eq!(
        n.session_count(),
        1,
        "live session kept, new 90 s timer applies"
    );
    assert_eq!(
        n.inbound(t(61), &reply(&p, ext, 0)),
        InboundVerdict::Translate { internal: p.src }
    );
    n.check_invariants().unwrap();
}

#[test]
fn budget_events_once_per_episode() {
    let mut n = full_udp_nat();
    let _ = n.outbound(t(0), &udp("192.168.1.10:1", "1.2.3.4:9000"));
    n.expire(t(31));
    let kinds: Vec<String> = n
        .drain_events()
        .map(|e| serde_json_kind(&e.kind))
        .filter(|k| k.starts_with("budget"))
        .collect();
    assert_eq!(
        kinds,
        [
            "budget80",
            "budget95",
            "budget_exhausted",
            "budget_recovered"
        ]
    );
}

fn serde_json_kind(k: &EventKind) -> String {
    match k {
        EventKind::Budget80 { .. } => "budget80",
        EventKind::Budget95 { .. } => "budget95",
        EventKind::BudgetExhausted { .. } => "budget_exhausted",
        EventKind::BudgetRecovered { .. } => "budget_recovered",
        EventKind::HostCapped { .. } => "host_capped",
        EventKind::CulpritNamed { .. } => "culprit_named",
        EventKind::CulpritCleared { .. } => "culprit_cleared",
        EventKind::DestinationFiltered { .. } => "destination_filtered",
        EventKind::ExhaustionForecast { .. } => "exhaustion_forecast",
        EventKind::MappingAdded { .. } => "mapping_added",
        EventKind::MappingRemoved { .. } => "mapping_removed",
        EventKind::MappingExpired { .. } => "mapping_expired",
    }
    .to_string()
}

#[test]
fn time_at_the_end_of_u64_does_not_overflow() {
    let mut n = nat(NatConfig::mape());
    let late = Timestamp::from_millis(u64::MAX - 1);
    let p = udp("192.168.1.10:40000", "1.1.1.1:53");
    let ext = translated(n.outbound(late, &p));
    assert_eq!(
        n.inbound(late, &reply(&p, ext, 0)),
        InboundVerdict::Translate { internal: p.src }
    );
    n.expire(Timestamp::from_millis(u64::MAX));
    n.check_invariants().unwrap();
}

#[test]
fn ports_of_another_psid_on_our_address_go_through_the_tunnel() {
    // 14.9.26.101 is shared: port 6688 belongs to PSID 162, another CE (RFC 7597 §8).
    let mut n = nat(NatConfig::mape());
    let p = udp("192.168.1.10:40000", "14.9.26.101:6688");
    let ext = translated(n.outbound(t(0), &p));
    assert!(v6plus().contains(ext.port));
    // Our own set's ports still hairpin (nobody listens: filtered by APDF here).
    let q = udp("192.168.1.10:40001", "14.9.26.101:6672");
    assert!(matches!(
        n.outbound(t(0), &q),
        OutboundVerdict::Drop {
            reason: NatDrop::NoMapping,
            ..
        }
    ));
}

#[test]
fn port_zero_is_never_handed_out() {
    // a = 0, PSID 0: the set 0-4095 holds port 0 (RFC 7597 §5.1, Figure 2, and Appendix B).
    let ports = PortSet::new(0, 4, 0).unwrap();
    let mut n = Nat::new(NatConfig::linux_like(), EXT, ports).unwrap();
    let mut seen = std::collections::HashSet::new();
    for i in 0..5000u16 {
        let p = udp(&format!("192.168.1.10:{}", 1 + i), "1.2.3.4:9000");
        if let OutboundVerdict::Translate { external } = n.outbound(t(0), &p) {
            assert_ne!(external.port, 0);
            seen.insert(external.port);
        }
    }
    assert_eq!(seen.len(), 4095, "every other port of the set is used");
    assert_eq!(n.ports_in_use(Protocol::Udp), 4095);
    n.check_invariants().unwrap();
}

#[test]
fn tcp_mapping_is_endpoint_independent_rfc5382_req1() {
    let mut n = nat(NatConfig::mape());
    let a = translated(n.outbound(
        t(0),
        &tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::SYN),
    ));
    let b = translated(n.outbound(
        t(0),
        &tcp("192.168.1.10:50000", "9.9.9.9:443", TcpFlags::SYN),
    ));
    assert_eq!(a, b);
}

#[test]
fn session_limit_refuses_without_evicting() {
    let mut cfg = NatConfig::mape();
    cfg.max_sessions = 3;
    let mut n = nat(cfg);
    for i in 0..3u16 {
        let p = udp(&format!("192.168.1.10:{}", 40000 + i), "1.2.3.4:9000");
        let ext = translated(n.outbound(t(0), &p));
        n.inbound(t(0), &reply(&p, ext, 0));
    }
    match n.outbound(t(1), &udp("192.168.1.11:40000", "1.2.3.4:9000")) {
        OutboundVerdict::Drop { reason, .. } => assert_eq!(reason, NatDrop::SessionLimit),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.session_count(), 3, "no live session was evicted");
    assert_eq!(n.refusals(), 1);
}

#[test]
fn rst_moves_to_time_wait_and_icmp_never_ends_a_connection() {
    let mut n = nat(NatConfig::mape());
    let syn = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::SYN);
    let ext = translated(n.outbound(t(0), &syn));
    n.inbound(t(0), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
    // An ICMP error about the connection neither refreshes nor ends it (RFC 5382 REQ-10).
    assert_eq!(
        n.inbound_icmp_error(Protocol::Tcp, ext, syn.dst),
        Some(syn.src)
    );
    assert_eq!(n.session_count(), 1);
    // The LAN host acknowledges the remote's data up to 5000.
    let mut ack = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::ACK);
    ack.ack = 5000;
    translated(n.outbound(t(1), &ack));
    // A spoofed RST far outside that window is passed on but not believed (RFC 5961 §3.2).
    let mut spoofed = reply(&syn, ext, TcpFlags::RST);
    spoofed.seq = 5000 + (1 << 30);
    n.inbound(t(2), &spoofed);
    assert_eq!(n.snapshot(t(2)).tcp_rst_unverified, 1);
    let state = |n: &Nat| n.sessions(t(3), 10)[0].state;
    assert_eq!(state(&n), SessionState::Established);
    // An RST at the acknowledged point: the session lingers in TIME_WAIT (240 s, RFC 7857
    // §2.2), then goes.
    let mut rst = reply(&syn, ext, TcpFlags::RST);
    rst.seq = 5000;
    n.inbound(t(10), &rst);
    assert_eq!(state(&n), SessionState::TimeWait);
    n.expire(t(10 + 239));
    assert_eq!(n.session_count(), 1);
    n.expire(t(10 + 240));
    assert_eq!(n.session_count(), 0);
}

#[test]
fn a_believed_rst_the_lan_host_ignores_does_not_end_the_connection() {
    let mut n = nat(NatConfig::mape());
    let syn = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::SYN);
    let ext = translated(n.outbound(t(0), &syn));
    n.inbound(t(0), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
    let mut ack = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::ACK);
    ack.ack = 77;
    translated(n.outbound(t(1), &ack));
    // An in-window RST the host challenges (RFC 5961 §3.2): its challenge ACK (or any
    // further segment) shows the connection lives.
    let mut rst = reply(&syn, ext, TcpFlags::RST);
    rst.seq = 77 + 1000;
    n.inbound(t(2), &rst);
    assert_eq!(n.sessions(t(2), 10)[0].state, SessionState::TimeWait);
    translated(n.outbound(t(2), &ack));
    assert_eq!(n.sessions(t(3), 10)[0].state, SessionState::Established);
    // A RST the LAN host sends itself is believed at once.
    translated(n.outbound(
        t(4),
        &tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::RST),
    ));
    assert_eq!(n.sessions(t(4), 10)[0].state, SessionState::TimeWait);
    n.check_invariants().unwrap();
}

#[test]
fn port_parity_is_preferred_rfc4787_req4() {
    let mut n = nat(NatConfig::mape());
    let mut same = 0;
    for i in 0..60u16 {
        // Source ports outside the set so none is preserved.
        let src = 30000 + i;
        let ext =
            translated(n.outbound(t(0), &udp(&format!("192.168.1.10:{src}"), "1.2.3.4:9000")));
        same += usize::from(ext.port % 2 == src % 2);
    }
    assert!(same >= 55, "parity kept for {same} of 60");
}

#[test]
fn a_capped_host_whose_quota_a_reload_removed_releases_its_ports() {
    let mut n = nat(NatConfig::mape());
    translated(n.outbound(t(0), &udp("192.168.1.10:5000", "1.2.3.4:9000")));
    // B runs into its cap (half of 240 while A is active) and is announced.
    for i in 0..130u16 {
        let _ = n.outbound(
            t(0),
            &udp(&format!("192.168.1.23:{}", 40000 + i), "45.76.1.1:59870"),
        );
    }
    assert!(n
        .drain_events()
        .any(|e| matches!(e.kind, EventKind::HostCapped { .. })));
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    n.reconfigure(cfg, t(1)).unwrap();
    // Every flow ends unanswered: B gives back all it held, with no cap to compare with.
    n.expire(t(3600));
    assert_eq!(
        n.host_ports(Ipv4Addr::new(192, 168, 1, 23), Protocol::Udp),
        0
    );
    assert_eq!(n.ports_in_use(Protocol::Udp), 0);
    n.check_invariants().unwrap();
}

/// The storm host's culprit score in a snapshot at `s` seconds.
fn score_of(n: &mut Nat, host: Ipv4Addr, s: u64) -> f64 {
    n.snapshot(t(s))
        .hosts
        .iter()
        .find(|h| h.addr == host)
        .map_or(0.0, |h| h.culprit_score)
}

#[test]
fn a_culprit_is_cleared_once_its_storm_has_stopped_with_hysteresis() {
    let mut n = nat(NatConfig::mape());
    let b = Ipv4Addr::new(192, 168, 1, 23);
    let mut port = 40000u16;
    let mut storm_flow = |n: &mut Nat, s: u64| {
        port += 1;
        let p = udp(&format!("192.168.1.23:{port}"), "45.76.1.1:59870");
        n.outbound(t(s), &p);
    };
    let culprit = |n: &mut Nat, s: u64| n.snapshot(t(s)).culprit.map(|c| c.host);
    let kinds = |n: &mut Nat| -> Vec<(String, u64)> {
        n.drain_events()
            .filter(|e| {
                matches!(&e.kind, EventKind::CulpritNamed { host, .. }
                    | EventKind::CulpritCleared { host, .. } if *host == b)
            })
            .map(|e| (serde_json_kind(&e.kind), e.at.millis() / 1000))
            .collect()
    };
    // A storm: 10 unanswered flows a second for 30 s names B.
    for i in 0..300u64 {
        storm_flow(&mut n, i / 10);
    }
    n.expire(t(30));
    assert_eq!(culprit(&mut n, 30), Some(b));
    assert_eq!(
        kinds(&mut n).first().map(|k| k.0.as_str()),
        Some("culprit_named")
    );
    // It slows down to one flow every 10 s: far too little to be named (score < 0.5),
    // not little enough to be cleared (≥ 0.1): the hysteresis keeps it named.
    for s in 30..400u64 {
        if s % 10 == 0 {
            storm_flow(&mut n, s);
        }
        n.expire(t(s));
    }
    let slow = score_of(&mut n, b, 399);
    assert!(
        (0.1..0.5).contains(&slow),
        "score of the slow storm: {slow}"
    );
    assert_eq!(culprit(&mut n, 399), Some(b), "named while it still storms");
    assert!(kinds(&mut n).is_empty(), "no flapping");
    // It stops. Cleared exactly 60 s (the hold) after its score fell below 0.1.
    let mut below = None;
    let mut cleared = None;
    for s in 400..700u64 {
        n.expire(t(s));
        if below.is_none() && score_of(&mut n, b, s) < 0.1 {
            below = Some(s);
        }
        let ev = kinds(&mut n);
        if let Some((k, at)) = ev.first() {
            assert_eq!(k, "culprit_cleared");
            cleared = Some(*at);
            break;
        }
        assert_eq!(culprit(&mut n, s), Some(b), "still named at {s}");
    }
    let (below, cleared) = (below.unwrap(), cleared.expect("cleared"));
    assert_eq!(
        cleared - below,
        60,
        "below 0.1 at {below} s, cleared at {cleared} s"
    );
    assert_eq!(culprit(&mut n, cleared), None);
    // The event says when it was named.
    // (checked on a fresh storm below: named again, a new culprit_named.)
    for i in 0..300u64 {
        storm_flow(&mut n, 800 + i / 10);
    }
    n.expire(t(830));
    assert_eq!(culprit(&mut n, 830), Some(b));
    assert_eq!(
        kinds(&mut n).first().map(|k| k.0.clone()),
        Some("culprit_named".to_string())
    );
}

#[test]
fn culprit_cleared_carries_the_naming_time() {
    let mut n = nat(NatConfig::mape());
    for i in 0..300u16 {
        let p = udp(&format!("192.168.1.23:{}", 40000 + i), "45.76.1.1:59870");
        n.outbound(t(100 + u64::from(i) / 10), &p);
    }
    let named_at = n
        .drain_events()
        .find_map(|e| matches!(e.kind, EventKind::CulpritNamed { .. }).then_some(e.at))
        .expect("named");
    for s in 130..600u64 {
        n.expire(t(s));
    }
    let cleared: Vec<_> = n
        .drain_events()
        .filter_map(|e| match e.kind {
            EventKind::CulpritCleared { host, named_at } => Some((host, named_at)),
            _ => None,
        })
        .collect();
    assert_eq!(cleared, [(Ipv4Addr::new(192, 168, 1, 23), named_at)]);
}

/// A victim connection 192.168.1.10:50000 → 1.1.1.1:443, established, its host having
/// acknowledged up to 5000, and every other port of the budget held by established
/// connections of 192.168.1.23 to the same remote (so that no port can be shared and a
/// newcomer to that remote needs a reclaim). No quota: the only reclaim path is TIME_WAIT
/// (RFC 7857 §3.2).
fn full_budget_with_a_victim() -> (Nat, OutboundPacket, Endpoint) {
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    let mut n = nat(cfg);
    let syn = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::SYN);
    let ext = translated(n.outbound(t(0), &syn));
    n.inbound(t(0), &reply(&syn, ext, TcpFlags::SYN | TcpFlags::ACK));
    let mut ack = tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::ACK);
    ack.ack = 5000;
    translated(n.outbound(t(0), &ack));
    for i in 0..n.budget() - 1 {
        let p = tcp(
            &format!("192.168.1.23:{}", 20000 + i),
            "1.1.1.1:443",
            TcpFlags::SYN,
        );
        let e = translated(n.outbound(t(0), &p));
        n.inbound(t(0), &reply(&p, e, TcpFlags::SYN | TcpFlags::ACK));
    }
    assert_eq!(n.ports_in_use(Protocol::Tcp), n.budget());
    (n, ack, ext)
}

fn newcomer(n: &mut Nat, s: u64, port: u16) -> OutboundVerdict {
    n.outbound(
        t(s),
        &tcp(
            &format!("192.168.1.30:{port}"),
            "1.1.1.1:443",
            TcpFlags::SYN,
        ),
    )
}

#[test]
fn a_spoofed_in_window_rst_does_not_free_a_live_connections_port_rfc5961_s3() {
    let (mut n, ack, ext) = full_budget_with_a_victim();
    // Someone on the internet guesses a sequence number inside the window (not RCV.NXT):
    // believed as far as a NAT can tell, so the session is closing...
    let mut spoofed = reply(&ack, ext, TcpFlags::RST);
    spoofed.seq = 5000 + 1400;
    assert!(matches!(
        n.inbound(t(10), &spoofed),
        InboundVerdict::Translate { .. }
    ));
    // ...but while the LAN host has not had its say, its port is no one's to take: the
    // newcomer who needs a port right now is refused rather than handed the victim's.
    match newcomer(&mut n, 10, 40000) {
        OutboundVerdict::Drop { reason, .. } => assert_eq!(reason, NatDrop::PortsExhausted),
        other => panic!("the victim's port was given away: {other:?}"),
    }
    // The host answers with a challenge ACK (RFC 5961 §3.2): the connection lives, and
    // data after the RST still flows both ways on the same port.
    assert_eq!(
        n.outbound(t(10), &ack),
        OutboundVerdict::Translate { external: ext }
    );
    let mut data = reply(&ack, ext, TcpFlags::ACK);
    data.seq = 5000;
    assert_eq!(
        n.inbound(t(11), &data),
        InboundVerdict::Translate { internal: ack.src }
    );
    let state = n
        .sessions(t(11), 1000)
        .into_iter()
        .find(|s| s.internal == ack.src)
        .map(|s| s.state);
    assert_eq!(state, Some(SessionState::Established));
    // Long after the grace, it still holds: a live connection is never reclaimed.
    assert!(matches!(
        newcomer(&mut n, 60, 40001),
        OutboundVerdict::Drop { .. }
    ));
    assert_eq!(
        n.outbound(t(60), &ack),
        OutboundVerdict::Translate { external: ext }
    );
    n.check_invariants().unwrap();
}

#[test]
fn a_real_rst_frees_the_port_once_the_lan_host_stayed_silent_rfc7857_s2_2() {
    let (mut n, ack, ext) = full_budget_with_a_victim();
    // The remote really resets (RCV.NXT exactly); the LAN host closes and says nothing.
    let mut rst = reply(&ack, ext, TcpFlags::RST);
    rst.seq = 5000;
    n.inbound(t(10), &rst);
    // Within the grace (5 s) the port is kept...
    assert!(matches!(
        newcomer(&mut n, 14, 40000),
        OutboundVerdict::Drop { .. }
    ));
    // ...then it is an ordinary closing session, reclaimed for the newcomer (RFC 7857
    // §3.2), long before its 240 s TIME_WAIT would have ended.
    assert_eq!(
        newcomer(&mut n, 15, 40001),
        OutboundVerdict::Translate { external: ext }
    );
    assert!(n
        .sessions(t(15), 1000)
        .iter()
        .all(|s| s.internal != ack.src));
    n.check_invariants().unwrap();
}

#[test]
fn a_reset_the_lan_host_sends_frees_its_port_at_once() {
    let (mut n, ack, ext) = full_budget_with_a_victim();
    translated(n.outbound(
        t(10),
        &tcp("192.168.1.10:50000", "1.1.1.1:443", TcpFlags::RST),
    ));
    assert_eq!(
        newcomer(&mut n, 10, 40000),
        OutboundVerdict::Translate { external: ext }
    );
    let _ = ack;
}

#[test]
fn metrics_view_names_the_top_hosts_and_counts_refusals_by_reason() {
    // 192.168.1.10 holds all 240 UDP ports; 100 flows of .11 are refused for exhaustion.
    let mut n = full_udp_nat();
    for i in 0..100u16 {
        n.outbound(
            t(1),
            &udp(&format!("192.168.1.11:{}", 30000 + i), "1.2.3.4:9000"),
        );
    }
    let v = n.metrics_view(t(1), 10);
    assert_eq!(v.top_hosts, vec![(Ipv4Addr::new(192, 168, 1, 10), 240)]);
    assert_eq!(v.other_hosts_ports, 0);
    let by = |r: NatDrop| v.refusals.iter().find(|(x, _)| *x == r).map(|(_, n)| *n);
    assert_eq!(by(NatDrop::PortsExhausted), Some(100));
    // Every refusal reason is exported, also at zero; other reasons only with a count.
    assert_eq!(by(NatDrop::HostQuota), Some(0));
    assert_eq!(by(NatDrop::SessionLimit), Some(0));
    assert_eq!(by(NatDrop::NoMapping), None);
    let udp_budget = v
        .protocols
        .iter()
        .find(|p| p.proto == Protocol::Udp)
        .unwrap();
    assert_eq!((udp_budget.total, udp_budget.in_use), (240, 240));
    // The same numbers as the full snapshot.
    let snap = n.snapshot(t(1));
    assert_eq!(v.protocols, snap.protocols);
    assert_eq!(
        v.refusals.iter().map(|(_, n)| n).sum::<u64>(),
        snap.refusals
    );
}

#[test]
fn metrics_view_keeps_the_top_and_sums_the_rest() {
    // Host .1 holds 1 port, .2 holds 2, … .5 holds 5 (UDP flows to one server).
    let mut n = nat(unshared_no_quota());
    for h in 1..=5u16 {
        for i in 0..h {
            translated(n.outbound(
                t(0),
                &udp(&format!("192.168.1.{h}:{}", 20000 + i), "1.2.3.4:9000"),
            ));
        }
    }
    let v = n.metrics_view(t(0), 2);
    let a = |x: u8| Ipv4Addr::new(192, 168, 1, x);
    assert_eq!(v.top_hosts, vec![(a(5), 5), (a(4), 4)]);
    assert_eq!(v.other_hosts_ports, 3 + 2 + 1);
    assert_eq!(n.metrics_view(t(0), 0).other_hosts_ports, 15);
}
