//! BR golden tests (RFC 7597 §5.3, §8.1, Appendix A Ex. 2), the in-memory CE → BR →
//! internet → BR → CE loop, hairpin between CEs through the BR, and the spoofing
//! checklist of VPP's test_map_br.py at the BR and at the CE.
//!
//! TTLs: the pipelines leave the IPv4 TTL as it is, because the kernel's forwarding into
//! or out of the TUN is each router's one decrement (RFC 1812 §5.3.1; mape-dataplane
//! crate docs, "TTL"). The expected TTLs marked "TTL" were one or two lower while CE and
//! BR decremented a second time (issue #12 item 8); only the BR's hairpin between CEs,
//! which the kernel never forwards as IPv4, decrements (64 → 63).

mod common;

use std::net::Ipv4Addr;

use common::*;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::Icmpv4Type;
use mape_dataplane::*;
use mape_nat::NatDrop;

#[test]
fn br_encapsulates_to_the_ce_owning_the_port_rfc7597_appendix_a_ex2() {
    let mut b = br();
    // Ex. 2: 1.2.3.4:80 → 192.0.2.18:1232 goes to 2001:db8:12:3400:0:c000:212:34.
    let input = udp4([1, 2, 3, 4], 80, EXT, 1232, 64, b"ex2");
    let (v, out) = run_br(&mut b, 0, &input);
    assert_eq!(v, Verdict::Forwarded);
    let want = encap(br6(), ce6(), &udp4([1, 2, 3, 4], 80, EXT, 1232, 64, b"ex2")); // TTL: see the module docs
    assert_eq!(one(&out, Direction::DOMAIN), want);
    // Port 1236 carries PSID 0x35: another CE (2001:db8:12:3500::/56).
    let (_, out) = run_br(&mut b, 0, &udp4([1, 2, 3, 4], 80, EXT, 1236, 64, b"x"));
    let p = one(&out, Direction::DOMAIN);
    assert_eq!(
        &p[24..40],
        &"2001:db8:12:3500:0:c000:212:35"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
}

#[test]
fn br_maps_icmp_by_identifier_and_errors_by_embedded_source_port_rfc7597_s8_2() {
    let mut b = br();
    let (_, out) = run_br(&mut b, 0, &echo4(REMOTE, EXT, 64, false, PORT, 3));
    assert_eq!(
        one(&out, Direction::DOMAIN),
        encap(br6(), ce6(), &echo4(REMOTE, EXT, 64, false, PORT, 3)) // TTL: see the module docs
    );
    let quote = udp4(EXT, PORT, REMOTE, 53, 60, b"q");
    let err = icmp4_err(
        REMOTE,
        EXT,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &quote,
    );
    let (v, out) = run_br(&mut b, 0, &err);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(&one(&out, Direction::DOMAIN)[24..40], &ce6().octets());
}

#[test]
fn br_without_rule_answers_unreachable_rate_limited() {
    let mut cfg = BrConfig::from_domain(&domain(false), Ipv4Addr::from(BR_V4)).unwrap();
    cfg.icmp_rate_per_sec = Some(2);
    let mut b = Br::new(cfg).unwrap();
    let input = udp4(REMOTE, 53, [203, 0, 113, 50], 1232, 64, b"x");
    let (v, out) = run_br(&mut b, 0, &input);
    assert_eq!(v, Verdict::Dropped(DropReason::NoRule));
    let want = icmp4_err(
        BR_V4,
        REMOTE,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Network),
        &input,
    );
    assert_eq!(one(&out, Direction::INTERNET), want);
    run_br(&mut b, 0, &input);
    let (_, out) = run_br(&mut b, 0, &input);
    assert!(
        out.is_empty(),
        "third error within the second is rate limited"
    );
    assert_eq!(b.counters().icmp_rate_limited, 1);
    assert_eq!(b.drops().get(DropReason::NoRule), 3);
    // A port in the excluded range (A = 0, ports 0-1023) belongs to no CE.
    let (v, _) = run_br(&mut b, 0, &udp4(REMOTE, 53, EXT, 80, 64, b"x"));
    assert_eq!(v, Verdict::Dropped(DropReason::NoCe));
}

#[test]
fn br_decapsulates_valid_ce_traffic_rfc7597_s8_1() {
    let mut b = br();
    let inner = udp4(EXT, PORT, REMOTE, 53, 63, b"up");
    let (v, out) = run_br(&mut b, 0, &encap(ce6(), br6(), &inner));
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::INTERNET),
        udp4(EXT, PORT, REMOTE, 53, 63, b"up") // TTL: see the module docs
    );
}

#[test]
fn br_spoofing_checklist_vpp_test_map_br() {
    let mut b = br();
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        (
            "spoofed IPv4 source (192.0.2.19 from the .18 CE)",
            encap(ce6(), br6(), &udp4(EXT2, PORT, REMOTE, 53, 63, b"s")),
            DropReason::SpoofedSource,
        ),
        (
            "spoofed PSID (port 1236 = PSID 0x35 from the 0x34 CE)",
            encap(ce6(), br6(), &udp4(EXT, 1236, REMOTE, 53, 63, b"s")),
            DropReason::SpoofedSource,
        ),
        (
            "ICMP identifier outside the PSID",
            encap(ce6(), br6(), &echo4(EXT, REMOTE, 63, true, 1236, 1)),
            DropReason::SpoofedSource,
        ),
        (
            "port in the excluded range",
            encap(ce6(), br6(), &udp4(EXT, 80, REMOTE, 53, 63, b"s")),
            DropReason::SpoofedSource,
        ),
        (
            "IPv6 source outside every rule",
            encap(
                "2001:db9::1".parse().unwrap(),
                br6(),
                &udp4(EXT, PORT, REMOTE, 53, 63, b"s"),
            ),
            DropReason::UnknownTunnelSource,
        ),
        (
            "not for the BR",
            encap(ce6(), ce6_2(), &udp4(EXT, PORT, REMOTE, 53, 63, b"s")),
            DropReason::Ipv6NotForUs,
        ),
    ];
    for (name, pkt, want) in &cases {
        let (v, out) = run_br(&mut b, 0, pkt);
        assert_eq!(v, Verdict::Dropped(*want), "{name}");
        assert!(out.is_empty(), "{name}");
    }
    assert_eq!(b.drops().get(DropReason::SpoofedSource), 4);
    // The genuine ones pass.
    let ok = encap(ce6(), br6(), &echo4(EXT, REMOTE, 63, true, PORT, 1));
    assert_eq!(run_br(&mut b, 0, &ok).0, Verdict::Forwarded);
}

#[test]
fn ce_spoofing_checklist_with_fmr_rfc7597_s8_1_s10() {
    // Mesh: the rule is an FMR, so packets from CE 2 arrive directly and are checked.
    let mut c = ce(true);
    // We talk to CE 2 first (mesh: straight to its address, §5.2).
    let (v, out) = run_ce(&mut c, 0, &udp4(LAN_HOST, PORT, EXT2, 1234, 64, b"hi"));
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Wan),
        encap(ce6(), ce6_2(), &udp4(EXT, PORT, EXT2, 1234, 64, b"hi")) // TTL: see the module docs
    );
    let genuine = encap(ce6_2(), ce6(), &udp4(EXT2, 1234, EXT, PORT, 63, b"re"));
    let (v, out) = run_ce(&mut c, 1, &genuine);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        udp4(EXT2, 1234, LAN_HOST, PORT, 63, b"re") // TTL: see the module docs
    );
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        (
            "wrong PSID (port 1236 from CE 2 whose PSID is 0x34)",
            encap(ce6_2(), ce6(), &udp4(EXT2, 1236, EXT, PORT, 63, b"s")),
            DropReason::SpoofedSource,
        ),
        (
            "wrong IPv4 source (192.0.2.20 from CE 2)",
            encap(
                ce6_2(),
                ce6(),
                &udp4([192, 0, 2, 20], 1234, EXT, PORT, 63, b"s"),
            ),
            DropReason::SpoofedSource,
        ),
        (
            "ICMP id outside CE 2's PSID",
            encap(ce6_2(), ce6(), &echo4(EXT2, EXT, 63, false, 1236, 1)),
            DropReason::SpoofedSource,
        ),
        (
            "unknown IPv6 source",
            encap(
                "2001:db9::2".parse().unwrap(),
                ce6(),
                &udp4(EXT2, 1234, EXT, PORT, 63, b"s"),
            ),
            DropReason::UnknownTunnelSource,
        ),
        (
            "inner destination not ours",
            encap(br6(), ce6(), &udp4(REMOTE, 53, EXT2, PORT, 63, b"s")),
            DropReason::Nat(NatDrop::NotOurAddress),
        ),
        (
            "inner destination port outside our set",
            encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, 1236, 63, b"s")),
            DropReason::Nat(NatDrop::PortOutsideSet),
        ),
        (
            "no mapping for this remote",
            encap(br6(), ce6(), &udp4(REMOTE, 999, EXT, PORT, 63, b"s")),
            DropReason::Nat(NatDrop::Filtered),
        ),
    ];
    for (name, pkt, want) in &cases {
        let (v, out) = run_ce(&mut c, 2, pkt);
        assert_eq!(v, Verdict::Dropped(*want), "{name}");
        assert!(out.is_empty(), "{name}");
    }
    assert_eq!(c.drops().get(DropReason::SpoofedSource), 3);
}

/// The internet stub: swaps addresses and ports, new checksums (etherparse).
fn internet_answer(p: &[u8], payload: &[u8]) -> Vec<u8> {
    let s = etherparse::SlicedPacket::from_ip(p).unwrap();
    let (src, dst) = match s.net.unwrap() {
        etherparse::InternetSlice::Ipv4(h) => (h.header().source(), h.header().destination()),
        _ => panic!("ipv4 expected"),
    };
    match s.transport.unwrap() {
        etherparse::TransportSlice::Udp(u) => {
            udp4(dst, u.destination_port(), src, u.source_port(), 64, payload)
        }
        etherparse::TransportSlice::Icmpv4(i) => {
            let id = u16::from_be_bytes([i.slice()[4], i.slice()[5]]);
            let seq = u16::from_be_bytes([i.slice()[6], i.slice()[7]]);
            echo4(dst, src, 64, false, id, seq)
        }
        _ => panic!("udp or icmp expected"),
    }
}

#[test]
fn ce_br_internet_br_ce_loop_is_byte_identical_where_it_must_be() {
    let mut c = ce(false);
    let mut b = br();
    for (i, sport) in [40000u16, 50000, 1233, 3000].into_iter().enumerate() {
        let now = i as u64 * 10;
        let payload = format!("query {i}").into_bytes();
        let lan = udp4(LAN_HOST, sport, REMOTE, 53, 64, &payload);
        let (_, up) = run_ce(&mut c, now, &lan);
        let up = one(&up, Direction::Wan);
        let ext_port = u16::from_be_bytes([up[60], up[61]]);
        assert!(c.config().port_set.contains(ext_port));
        let (v, inet) = run_br(&mut b, now, &up);
        assert_eq!(v, Verdict::Forwarded);
        let inet = one(&inet, Direction::INTERNET);
        assert_eq!(&inet[12..16], &EXT, "source is the shared address");
        assert_eq!(&inet[28..], &payload[..], "payload unchanged");
        let answer = internet_answer(&inet, b"answer!");
        let (v, down) = run_br(&mut b, now + 1, &answer);
        assert_eq!(v, Verdict::Forwarded);
        let down = one(&down, Direction::DOMAIN);
        assert_eq!(&down[24..40], &ce6().octets());
        let (v, lan_out) = run_ce(&mut c, now + 2, &down);
        assert_eq!(v, Verdict::Forwarded);
        assert_eq!(
            one(&lan_out, Direction::Lan),
            udp4(REMOTE, 53, LAN_HOST, sport, 64, b"answer!"), // TTL: see the module docs
            "internal address and port restored, checksums right"
        );
    }
    // ICMP echo through the loop.
    let (_, up) = run_ce(&mut c, 100, &echo4(LAN_HOST, REMOTE, 64, true, 77, 9));
    let (_, inet) = run_br(&mut b, 100, &one(&up, Direction::Wan));
    let inet = one(&inet, Direction::INTERNET);
    let id = u16::from_be_bytes([inet[24], inet[25]]);
    assert!(c.config().port_set.contains(id));
    let (_, down) = run_br(&mut b, 101, &internet_answer(&inet, b""));
    let (_, lan) = run_ce(&mut c, 102, &one(&down, Direction::DOMAIN));
    assert_eq!(
        one(&lan, Direction::Lan),
        echo4(REMOTE, LAN_HOST, 64, false, 77, 9) // TTL: see the module docs
    );
    assert_eq!(c.drops().total() + b.drops().total(), 0);
}

#[test]
fn hairpin_between_two_ces_through_the_br() {
    let mut c1 = ce(false);
    let mut c2 = ce2(false);
    let mut b = br();
    // CE 2's host first talks to CE 1's external endpoint, so CE 1 learns nothing yet;
    // CE 1's host opens the flow to CE 2.
    let (_, up) = run_ce(&mut c1, 0, &udp4(LAN_HOST, PORT, EXT2, 1234, 64, b"to ce2"));
    let up = one(&up, Direction::Wan);
    assert_eq!(&up[24..40], &br6().octets(), "hub and spoke: via the BR");
    let (v, via) = run_br(&mut b, 0, &up);
    assert_eq!(v, Verdict::Forwarded);
    let via = one(&via, Direction::DOMAIN);
    assert_eq!(
        via,
        encap(br6(), ce6_2(), &udp4(EXT, PORT, EXT2, 1234, 63, b"to ce2")) // TTL: see the module docs
    );
    // CE 2 has no mapping for it (nobody inside opened one): filtered, counted.
    let (v, _) = run_ce(&mut c2, 1, &via);
    assert_eq!(v, Verdict::Dropped(DropReason::Nat(NatDrop::NoMapping)));
    // Now CE 2's host sends to CE 1's endpoint from port 1234: hairpins through the BR
    // and reaches CE 1's host.
    let (_, up2) = run_ce(&mut c2, 2, &udp4(LAN_HOST, 1234, EXT, PORT, 64, b"to ce1"));
    let (_, via2) = run_br(&mut b, 2, &one(&up2, Direction::Wan));
    let (v, lan) = run_ce(&mut c1, 3, &one(&via2, Direction::DOMAIN));
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&lan, Direction::Lan),
        udp4(EXT2, 1234, LAN_HOST, PORT, 63, b"to ce1") // TTL: see the module docs
    );
}

#[test]
fn br_fragments_big_df_clear_packets_and_refuses_df_ones() {
    let mut b = br();
    let mut big = udp4(REMOTE, 53, EXT, PORT, 64, &[4u8; 1472]);
    set_frag(&mut big, 0x1111, false, false, 0);
    let (v, out) = run_br(&mut b, 0, &big);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, f)| f.len() <= 1500 && f[6] == 44));
    // The CE reassembles them.
    let mut c = ce(false);
    run_ce(&mut c, 0, &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"open"));
    assert_eq!(run_ce(&mut c, 1, &out[1].1).0, Verdict::Buffered);
    let (v, lan) = run_ce(&mut c, 1, &out[0].1);
    assert_eq!(v, Verdict::Forwarded);
    let mut want = udp4(REMOTE, 53, LAN_HOST, PORT, 64, &[4u8; 1472]); // TTL: see the module docs
    set_frag(&mut want, 0x1111, false, false, 0);
    assert_eq!(one(&lan, Direction::Lan), want);
    // DF set: fragmentation needed with 1460.
    let big_df = udp4(REMOTE, 53, EXT, PORT, 64, &[4u8; 1472]);
    let (v, out) = run_br(&mut b, 0, &big_df);
    assert_eq!(v, Verdict::Dropped(DropReason::FragNeeded));
    assert_eq!(out[0].0, Direction::INTERNET);
    assert_eq!(u16::from_be_bytes([out[0].1[26], out[0].1[27]]), 1460);
}

#[test]
fn br_reassembles_internet_ipv4_fragments_before_lookup_rfc7597_s8_3_2() {
    let mut b = br();
    let mut whole = udp4(REMOTE, 53, EXT, PORT, 64, &[8u8; 500]);
    set_frag(&mut whole, 0x2222, false, false, 0);
    let (a, z) = fragment4(&whole, 256, 0x2222);
    assert_eq!(run_br(&mut b, 0, &z).0, Verdict::Buffered);
    let (v, out) = run_br(&mut b, 0, &a);
    assert_eq!(v, Verdict::Forwarded);
    let mut inner = udp4(REMOTE, 53, EXT, PORT, 64, &[8u8; 500]); // TTL: see the module docs
    set_frag(&mut inner, 0x2222, false, false, 0);
    assert_eq!(one(&out, Direction::DOMAIN), encap(br6(), ce6(), &inner));
}

#[test]
fn br_forwards_ttl_1_both_ways_and_expires_it_only_on_a_hairpin_rfc1812_s5_3_1() {
    // TTL 1 reaches the BR's TUN after the kernel's decrement (the BR's one) from the
    // internet, or is decremented by the kernel after it (toward the internet): forwarded
    // unchanged. On a hairpin between CEs the BR decrements itself: 1 expires there.
    let mut b = br();
    let (v, out) = run_br(&mut b, 0, &udp4(REMOTE, 53, EXT, PORT, 1, b"in"));
    assert_eq!(v, Verdict::Forwarded);
    let want = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 1, b"in"));
    assert_eq!(one(&out, Direction::DOMAIN), want);
    let up = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 53, 1, b"out"));
    let (v, out) = run_br(&mut b, 0, &up);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::INTERNET),
        udp4(EXT, PORT, REMOTE, 53, 1, b"out")
    );
    let hairpin = encap(ce6(), br6(), &udp4(EXT, PORT, EXT2, 1234, 1, b"hp"));
    assert_eq!(
        run_br(&mut b, 0, &hairpin).0,
        Verdict::Dropped(DropReason::TtlExpired)
    );
    let (v, out) = run_br(&mut b, 0, &udp4(REMOTE, 53, EXT, PORT, 0, b"zero"));
    assert_eq!(v, Verdict::Dropped(DropReason::TtlExpired));
    assert_eq!(out.len(), 1, "time exceeded to the sender");
}
