//! CE pipeline golden tests: input bytes → expected output bytes, the expected packets
//! built independently with etherparse (full checksums), RFC sections named per test.
//!
//! TTLs: the CE leaves the IPv4 TTL as it is, because the kernel's forwarding into or out
//! of the TUN is the CE's one decrement (RFC 1812 §5.3.1; mape-dataplane crate docs,
//! "TTL"). The expected TTLs marked "TTL" were one lower (two after a BR) while the CE
//! and the BR decremented a second time (issue #12 item 8).

mod common;

use common::*;
use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder};
use mape_dataplane::*;
use mape_nat::NatDrop;

/// Opens a UDP flow LAN_HOST:PORT → REMOTE:53 (PORT is in the set, so it is preserved).
fn open_udp(c: &mut Ce) -> Vec<u8> {
    let (v, out) = run_ce(c, 0, &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello"));
    assert_eq!(v, Verdict::Forwarded);
    one(&out, Direction::Wan)
}

#[test]
fn lan_udp_is_napt_and_encapsulated_to_the_br_rfc7597_s8() {
    let mut c = ce(false);
    let got = open_udp(&mut c);
    let want = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 53, 64, b"hello")); // TTL: see the module docs
    assert_eq!(got, want);
    assert_eq!(c.counters().tx_wan.packets, 1);
}

#[test]
fn port_outside_the_set_is_replaced_by_one_inside_rfc7597_s9() {
    let mut c = ce(false);
    let (v, out) = run_ce(&mut c, 0, &udp4(LAN_HOST, 40000, REMOTE, 53, 64, b"x"));
    assert_eq!(v, Verdict::Forwarded);
    let p = one(&out, Direction::Wan);
    let sport = u16::from_be_bytes([p[60], p[61]]);
    assert!(c.config().port_set.contains(sport), "port {sport}");
    let want = encap(ce6(), br6(), &udp4(EXT, sport, REMOTE, 53, 64, b"x")); // TTL: see the module docs
    assert_eq!(p, want);
}

#[test]
fn traffic_class_is_copied_from_tos_rfc2473() {
    let mut c = ce(false);
    let mut p = udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"tos");
    p[1] = 0xb8;
    fix_ip_checksum(&mut p);
    let (_, out) = run_ce(&mut c, 0, &p);
    let got = one(&out, Direction::Wan);
    assert_eq!(got[0], 0x6b);
    assert_eq!(got[1] & 0xf0, 0x80);
    let mut inner = udp4(EXT, PORT, REMOTE, 53, 64, b"tos"); // TTL: see the module docs
    inner[1] = 0xb8;
    fix_ip_checksum(&mut inner);
    assert_eq!(got, encap(ce6(), br6(), &inner));
}

#[test]
fn flow_label_hash_is_stable_and_nonzero() {
    let mut cfg = ce_cfg(false, "2001:db8:12:3400::/56");
    cfg.flow_label = FlowLabel::Hash;
    let mut c = Ce::new(cfg).unwrap();
    let p = udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"a");
    let a = one(&run_ce(&mut c, 0, &p).1, Direction::Wan);
    let b = one(&run_ce(&mut c, 1, &p).1, Direction::Wan);
    let fl = |x: &[u8]| u32::from_be_bytes([0, x[1] & 0x0f, x[2], x[3]]);
    assert_ne!(fl(&a), 0);
    assert_eq!(fl(&a), fl(&b));
}

#[test]
fn reply_from_the_br_is_decapsulated_and_reverse_translated_rfc7597_s8_1() {
    let mut c = ce(false);
    open_udp(&mut c);
    let input = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 60, b"answer"));
    let (v, out) = run_ce(&mut c, 10, &input);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        udp4(REMOTE, 53, LAN_HOST, PORT, 60, b"answer") // TTL: see the module docs
    );
}

#[test]
fn accepted_br_sources_are_exempt_from_the_source_check() {
    let mut cfg = ce_cfg(false, "2001:db8:12:3400::/56");
    let alt: std::net::Ipv6Addr = "2001:260:700:1::1:275".parse().unwrap();
    cfg.accepted_br_sources.push(alt);
    let mut c = Ce::new(cfg).unwrap();
    open_udp(&mut c);
    let input = encap(alt, ce6(), &udp4(REMOTE, 53, EXT, PORT, 60, b"answer"));
    assert_eq!(run_ce(&mut c, 10, &input).0, Verdict::Forwarded);
    let other: std::net::Ipv6Addr = "2001:db8:eeee::1".parse().unwrap();
    let input = encap(other, ce6(), &udp4(REMOTE, 53, EXT, PORT, 60, b"answer"));
    assert_eq!(
        run_ce(&mut c, 10, &input).0,
        Verdict::Dropped(DropReason::UnknownTunnelSource)
    );
}

#[test]
fn tcp_syn_mss_is_clamped_to_1420() {
    let mut c = ce(false);
    let (v, out) = run_ce(&mut c, 0, &tcp_syn4(LAN_HOST, PORT, REMOTE, 443, 64, 1460));
    assert_eq!(v, Verdict::Forwarded);
    let want = encap(ce6(), br6(), &tcp_syn4(EXT, PORT, REMOTE, 443, 64, 1420)); // TTL: see the module docs
    assert_eq!(one(&out, Direction::Wan), want);
    // An MSS already below the clamp is untouched.
    let (_, out) = run_ce(
        &mut c,
        1,
        &tcp_syn4(LAN_HOST, PORT + 1, REMOTE, 443, 64, 1200),
    );
    let want = encap(
        ce6(),
        br6(),
        &tcp_syn4(EXT, PORT + 1, REMOTE, 443, 64, 1200), // TTL: see the module docs
    );
    assert_eq!(one(&out, Direction::Wan), want);
}

#[test]
fn inbound_syn_ack_mss_is_clamped_rfc4459_s3_2_rfc7597_s8_3() {
    // The LAN host's segments go back through the tunnel: the remote's SYN-ACK must not
    // promise it more than 1420 either (the "neither end" of mss.rs).
    let mut c = ce(false);
    run_ce(&mut c, 0, &tcp_syn4(LAN_HOST, PORT, REMOTE, 443, 64, 1460));
    let input = encap(
        br6(),
        ce6(),
        &tcp_syn_ack4(REMOTE, 443, EXT, PORT, 60, 1460),
    );
    let (v, out) = run_ce(&mut c, 1, &input);
    assert_eq!(v, Verdict::Forwarded);
    let got = one(&out, Direction::Lan);
    assert_eq!(got, tcp_syn_ack4(REMOTE, 443, LAN_HOST, PORT, 60, 1420));
    // MSS option bytes and the TCP checksum, computed by hand (RFC 793 pseudo-header
    // 198.51.100.7 → 192.168.1.10, proto 6, length 28, and the 28 header bytes: ports
    // 443 → 1233, seq 0x12345678, ack 0x12345679, offset 7, SYN|ACK, window 64240, MSS
    // 0x058c, NOP, window scale 7): 0xc56c.
    assert_eq!(&got[40..44], &[2, 4, 0x05, 0x8c]);
    assert_eq!(&got[36..38], &[0xc5, 0x6c]);
    // An MSS already below the clamp is untouched.
    run_ce(
        &mut c,
        2,
        &tcp_syn4(LAN_HOST, PORT + 1, REMOTE, 443, 64, 1460),
    );
    let input = encap(
        br6(),
        ce6(),
        &tcp_syn_ack4(REMOTE, 443, EXT, PORT + 1, 60, 1200),
    );
    let (_, out) = run_ce(&mut c, 3, &input);
    assert_eq!(
        one(&out, Direction::Lan),
        tcp_syn_ack4(REMOTE, 443, LAN_HOST, PORT + 1, 60, 1200)
    );
}

#[test]
fn inbound_syn_to_a_static_forward_is_clamped_rfc4459_s3_2() {
    let mut cfg = ce_cfg(false, "2001:db8:12:3400::/56");
    cfg.nat.forwards.push(mape_nat::StaticForward {
        proto: mape_nat::Protocol::Tcp,
        external_port: 1234,
        internal: mape_nat::Endpoint::new(LAN_HOST.into(), 8080),
    });
    let mut c = Ce::new(cfg).unwrap();
    let input = encap(br6(), ce6(), &tcp_syn4(REMOTE, 50000, EXT, 1234, 60, 1460));
    let (v, out) = run_ce(&mut c, 0, &input);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        tcp_syn4(REMOTE, 50000, LAN_HOST, 8080, 60, 1420)
    );
    // After a Packet Too Big toward the BR (1400 → tunnel IPv4 MTU 1360), the clamp
    // follows the lower MTU: 1320.
    let sent = {
        let (_, out) = run_ce(&mut c, 1, &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello"));
        one(&out, Direction::Wan)
    };
    run_ce(&mut c, 2, &ptb(1400, &sent));
    let input = encap(br6(), ce6(), &tcp_syn4(REMOTE, 50001, EXT, 1234, 60, 1460));
    let (_, out) = run_ce(&mut c, 3, &input);
    assert_eq!(
        one(&out, Direction::Lan),
        tcp_syn4(REMOTE, 50001, LAN_HOST, 8080, 60, 1320)
    );
}

#[test]
fn icmp_echo_identifier_is_natted_like_a_port_rfc7597_s8_2() {
    let mut c = ce(false);
    let (v, out) = run_ce(&mut c, 0, &echo4(LAN_HOST, REMOTE, 64, true, PORT, 1));
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Wan),
        encap(ce6(), br6(), &echo4(EXT, REMOTE, 64, true, PORT, 1)) // TTL: see the module docs
    );
    let reply = encap(br6(), ce6(), &echo4(REMOTE, EXT, 50, false, PORT, 1));
    let (v, out) = run_ce(&mut c, 5, &reply);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        echo4(REMOTE, LAN_HOST, 50, false, PORT, 1) // TTL: see the module docs
    );
    // An identifier outside the set never leaves: it is rewritten into the set.
    let (_, out) = run_ce(&mut c, 6, &echo4(LAN_HOST, REMOTE, 64, true, 7, 1));
    let p = one(&out, Direction::Wan);
    let id = u16::from_be_bytes([p[64], p[65]]);
    assert!(c.config().port_set.contains(id));
}

#[test]
fn ttl_expiry_is_answered_with_time_exceeded_rfc1812_s5_3_1() {
    let mut c = ce(false);
    // TTL 0 (was 1 while the CE decremented a second time): the kernel answers TTL 1
    // itself before the packet reaches the TUN; only 0 can reach the pipeline.
    let offending = udp4(LAN_HOST, PORT, REMOTE, 53, 0, b"ttl");
    let (v, out) = run_ce(&mut c, 0, &offending);
    assert_eq!(v, Verdict::Dropped(DropReason::TtlExpired));
    let want = icmp4_err(
        CE_LAN,
        LAN_HOST,
        64,
        false,
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        &offending,
    );
    assert_eq!(one(&out, Direction::Lan), want);
    assert_eq!(c.drops().get(DropReason::TtlExpired), 1);
}

#[test]
fn ttl_1_from_the_tun_is_forwarded_unchanged_rfc1812_s5_3_1() {
    // A LAN packet sent with TTL 2 reaches the TUN with 1 (the kernel's decrement, the
    // CE's one) and must go on to the BR with 1, both ways: the next router answers it.
    let mut c = ce(false);
    let (v, out) = run_ce(&mut c, 0, &udp4(LAN_HOST, PORT, REMOTE, 53, 1, b"hop2"));
    assert_eq!(v, Verdict::Forwarded);
    let want = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 53, 1, b"hop2"));
    assert_eq!(one(&out, Direction::Wan), want);
    let input = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 1, b"back"));
    let (v, out) = run_ce(&mut c, 1, &input);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        udp4(REMOTE, 53, LAN_HOST, PORT, 1, b"back")
    );
    // TTL 0 from the tunnel: no router may have forwarded it.
    let input = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 0, b"dead"));
    assert_eq!(
        run_ce(&mut c, 2, &input).0,
        Verdict::Dropped(DropReason::TtlExpired)
    );
}

#[test]
fn refused_flow_gets_admin_prohibited_rfc5508_req8() {
    let mut c = ce(false);
    // 10.1.2.3 is private: the destination filter refuses it and tells the sender.
    let offending = udp4(LAN_HOST, PORT, [10, 1, 2, 3], 59870, 64, b"mouse");
    let (v, out) = run_ce(&mut c, 0, &offending);
    assert_eq!(
        v,
        Verdict::Dropped(DropReason::Nat(NatDrop::DestinationFiltered))
    );
    let want = icmp4_err(
        CE_LAN,
        LAN_HOST,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FilterProhibited),
        &offending,
    );
    assert_eq!(one(&out, Direction::Lan), want);
    assert_eq!(
        c.drops().get(DropReason::Nat(NatDrop::DestinationFiltered)),
        1
    );
}

#[test]
fn df_packet_over_the_tunnel_mtu_gets_frag_needed_rfc4787_req13() {
    let mut c = ce(false);
    let big = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[7u8; 1472]); // 1500 bytes, DF
    let (v, out) = run_ce(&mut c, 0, &big);
    assert_eq!(v, Verdict::Dropped(DropReason::FragNeeded));
    let want = icmp4_err(
        CE_LAN,
        LAN_HOST,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1460,
        }),
        &big[..548],
    );
    assert_eq!(one(&out, Direction::Lan), want);
    // No NAT session was spent on it.
    assert_eq!(c.nat().session_count(), 0);
}

#[test]
fn icmp_error_from_the_tunnel_is_translated_back_rfc5508_s4_2() {
    let mut c = ce(false);
    let sent = open_udp(&mut c);
    let sent_inner = &sent[40..];
    let err = icmp4_err(
        REMOTE,
        EXT,
        60,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        sent_inner,
    );
    let (v, out) = run_ce(&mut c, 5, &encap(br6(), ce6(), &err));
    assert_eq!(v, Verdict::Forwarded);
    let want = icmp4_err(
        REMOTE,
        LAN_HOST,
        60, // TTL: see the module docs
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello"), // TTL: see the module docs
    );
    assert_eq!(one(&out, Direction::Lan), want);
}

#[test]
fn lan_icmp_error_about_an_inbound_packet_is_translated_outward() {
    let mut c = ce(false);
    open_udp(&mut c);
    let inbound = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 60, b"answer"));
    let (_, out) = run_ce(&mut c, 1, &inbound);
    let delivered = one(&out, Direction::Lan);
    let err = icmp4_err(
        LAN_HOST,
        REMOTE,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &delivered,
    );
    let (v, out) = run_ce(&mut c, 2, &err);
    assert_eq!(v, Verdict::Forwarded);
    let want_inner = icmp4_err(
        EXT,
        REMOTE,
        64, // TTL: see the module docs
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &udp4(REMOTE, 53, EXT, PORT, 60, b"answer"), // TTL: see the module docs
    );
    assert_eq!(one(&out, Direction::Wan), encap(ce6(), br6(), &want_inner));
}

fn ptb(mtu: u32, quoted: &[u8]) -> Vec<u8> {
    let router: std::net::Ipv6Addr = "2001:db8:0:1::1".parse().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ipv6(router.octets(), ce6().octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut v, quoted)
        .unwrap();
    v
}

#[test]
fn packet_too_big_becomes_frag_needed_for_df_rfc2473_s8() {
    let mut c = ce(false);
    let sent = open_udp(&mut c);
    let (v, out) = run_ce(&mut c, 5, &ptb(1400, &sent));
    assert_eq!(v, Verdict::Forwarded);
    let want = icmp4_err(
        CE_LAN,
        LAN_HOST,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1360,
        }),
        &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello"), // TTL: see the module docs
    );
    assert_eq!(one(&out, Direction::Lan), want);
    assert_eq!(c.tunnel_mtu(t(6), &br6()), 1360);
    // The kernel fast path is held to it too (its MTU check and SYN-ACK clamp), until
    // the learned MTU expires (RFC 8201 §4: 10 minutes).
    assert_eq!(c.fast_path_limits(t(6)), (1360, 1320));
    // A later DF packet above the learned MTU is refused with the new MTU.
    let big = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[1u8; 1372]); // 1400 bytes
    let (v, out) = run_ce(&mut c, 7, &big);
    assert_eq!(v, Verdict::Dropped(DropReason::FragNeeded));
    assert_eq!(u16::from_be_bytes([out[0].1[26], out[0].1[27]]), 1360);
    assert_eq!(c.fast_path_limits(t(5 + 600_001)), (1460, 1420));
}

#[test]
fn packet_too_big_for_df_clear_lowers_the_mtu_and_later_packets_are_fragmented() {
    let mut c = ce(false);
    let mut first = udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello");
    set_frag(&mut first, 0x4242, false, false, 0);
    let (_, out) = run_ce(&mut c, 0, &first);
    let sent = one(&out, Direction::Wan);
    let (v, out) = run_ce(&mut c, 1, &ptb(1300, &sent));
    assert_eq!(v, Verdict::Absorbed);
    assert!(out.is_empty());
    let mut big = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[3u8; 1372]);
    set_frag(&mut big, 0x4243, false, false, 0);
    let (v, out) = run_ce(&mut c, 2, &big);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(out.len(), 2);
    for (d, f) in &out {
        assert_eq!(*d, Direction::Wan);
        assert!(f.len() <= 1300, "fragment of {} bytes", f.len());
        assert_eq!(f[6], 44, "fragment header");
        assert_eq!(f[40], 4, "fragmentable part is IPv4");
    }
    // Reassembled by the BR, the inner packet is the translated one.
    let mut b = br();
    assert_eq!(run_br(&mut b, 3, &out[0].1).0, Verdict::Buffered);
    let (v, got) = run_br(&mut b, 3, &out[1].1);
    assert_eq!(v, Verdict::Forwarded);
    let mut want = udp4(EXT, PORT, REMOTE, 53, 64, &[3u8; 1372]); // TTL: see the module docs
    set_frag(&mut want, 0x4243, false, false, 0);
    assert_eq!(one(&got, Direction::INTERNET), want);
}

#[test]
fn time_exceeded_in_the_tunnel_becomes_host_unreachable_rfc2473_s8() {
    let mut c = ce(false);
    let sent = open_udp(&mut c);
    let router: std::net::Ipv6Addr = "2001:db8:0:1::1".parse().unwrap();
    let mut e = Vec::new();
    PacketBuilder::ipv6(router.octets(), ce6().octets(), 64)
        .icmpv6(Icmpv6Type::TimeExceeded(
            etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
        ))
        .write(&mut e, &sent)
        .unwrap();
    let (v, out) = run_ce(&mut c, 5, &e);
    assert_eq!(v, Verdict::Forwarded);
    let want = icmp4_err(
        CE_LAN,
        LAN_HOST,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
        &udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"hello"), // TTL: see the module docs
    );
    assert_eq!(one(&out, Direction::Lan), want);
}

#[test]
fn icmpv6_errors_about_foreign_packets_are_dropped() {
    let mut c = ce(false);
    open_udp(&mut c);
    // Quotes a packet from another source: not ours.
    let forged = encap(ce6_2(), br6(), &udp4(EXT, PORT, REMOTE, 53, 63, b"hello"));
    assert_eq!(
        run_ce(&mut c, 5, &ptb(1400, &forged)).0,
        Verdict::Dropped(DropReason::IcmpErrorNotOurs)
    );
    // Quotes our address but a flow we never had.
    let forged = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 54, 63, b"hello"));
    assert_eq!(
        run_ce(&mut c, 5, &ptb(1400, &forged)).0,
        Verdict::Dropped(DropReason::Nat(NatDrop::IcmpErrorNoSession))
    );
    assert_eq!(c.tunnel_mtu(t(6), &br6()), 1460);
}

#[test]
fn lan_fragments_are_reassembled_before_napt_rfc7597_s8_3_2() {
    let mut c = ce(false);
    let mut whole = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[9u8; 600]);
    set_frag(&mut whole, 0x77, false, false, 0);
    let (a, b) = fragment4(&whole, 256, 0x77);
    // Out of order (RFC 4787 REQ-14).
    assert_eq!(run_ce(&mut c, 0, &b).0, Verdict::Buffered);
    assert_eq!(c.reassembly_in_progress(), 1);
    let (v, out) = run_ce(&mut c, 1, &a);
    assert_eq!(v, Verdict::Forwarded);
    let mut inner = udp4(EXT, PORT, REMOTE, 53, 64, &[9u8; 600]); // TTL: see the module docs
    set_frag(&mut inner, 0x77, false, false, 0);
    assert_eq!(one(&out, Direction::Wan), encap(ce6(), br6(), &inner));
    assert_eq!(c.counters().reassembled, 1);
}

#[test]
fn tunnel_ipv6_fragments_are_reassembled_rfc7597_s8_3() {
    let mut c = ce(false);
    open_udp(&mut c);
    let whole = encap(br6(), ce6(), &udp4(REMOTE, 53, EXT, PORT, 60, &[5u8; 300]));
    let (a, b) = fragment6(&whole, 160, 0xdead_beef);
    assert_eq!(run_ce(&mut c, 1, &a).0, Verdict::Buffered);
    let (v, out) = run_ce(&mut c, 2, &b);
    assert_eq!(v, Verdict::Forwarded);
    assert_eq!(
        one(&out, Direction::Lan),
        udp4(REMOTE, 53, LAN_HOST, PORT, 60, &[5u8; 300]) // TTL: see the module docs
    );
}

#[test]
fn inner_ipv4_fragments_are_reassembled() {
    let mut c = ce(false);
    open_udp(&mut c);
    let mut whole = udp4(REMOTE, 53, EXT, PORT, 60, &[6u8; 400]);
    set_frag(&mut whole, 0x99, false, false, 0);
    let (a, b) = fragment4(&whole, 200, 0x99);
    assert_eq!(
        run_ce(&mut c, 1, &encap(br6(), ce6(), &b)).0,
        Verdict::Buffered
    );
    let (v, out) = run_ce(&mut c, 2, &encap(br6(), ce6(), &a));
    assert_eq!(v, Verdict::Forwarded);
    let mut want = udp4(REMOTE, 53, LAN_HOST, PORT, 60, &[6u8; 400]); // TTL: see the module docs
    set_frag(&mut want, 0x99, false, false, 0);
    assert_eq!(one(&out, Direction::Lan), want);
}

#[test]
fn overlapping_and_expired_fragments_are_dropped_rfc5722() {
    let mut c = ce(false);
    let mut whole = udp4(LAN_HOST, PORT, REMOTE, 53, 64, &[9u8; 600]);
    set_frag(&mut whole, 0x55, false, false, 0);
    let (a, _) = fragment4(&whole, 256, 0x55);
    let (a2, _) = fragment4(&whole, 248, 0x55);
    assert_eq!(run_ce(&mut c, 0, &a).0, Verdict::Buffered);
    assert_eq!(
        run_ce(&mut c, 0, &a2).0,
        Verdict::Dropped(DropReason::FragOverlap)
    );
    assert_eq!(run_ce(&mut c, 0, &a).0, Verdict::Buffered);
    c.expire(t(2_000));
    assert_eq!(c.drops().get(DropReason::FragTimeout), 1);
    assert_eq!(c.reassembly_in_progress(), 0);
}

#[test]
fn noise_and_malformed_input_are_counted_drops() {
    let mut c = ce(false);
    // MLD report from the kernel (::  → ff02::16, hop-by-hop then ICMPv6 143).
    let mut mld = vec![0u8; 40 + 8 + 8];
    mld[0] = 0x60;
    mld[5] = 16;
    mld[6] = 0;
    mld[7] = 1;
    mld[24] = 0xff;
    mld[25] = 0x02;
    mld[39] = 0x16;
    mld[40] = 58;
    mld[48] = 143;
    assert_eq!(
        run_ce(&mut c, 0, &mld).0,
        Verdict::Dropped(DropReason::Ipv6NotIpip)
    );
    assert_eq!(
        run_ce(&mut c, 0, &[]).0,
        Verdict::Dropped(DropReason::BadIpVersion)
    );
    assert_eq!(
        run_ce(&mut c, 0, &[0x45, 0, 0]).0,
        Verdict::Dropped(DropReason::Ipv4Malformed)
    );
    let mut bad = udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"x");
    bad[10] ^= 1;
    assert_eq!(
        run_ce(&mut c, 0, &bad).0,
        Verdict::Dropped(DropReason::Ipv4BadChecksum)
    );
    let wrong_dst = encap(br6(), ce6_2(), &udp4(REMOTE, 53, EXT, PORT, 60, b"x"));
    assert_eq!(
        run_ce(&mut c, 0, &wrong_dst).0,
        Verdict::Dropped(DropReason::Ipv6NotForUs)
    );
    let gre = {
        let mut p = udp4(LAN_HOST, PORT, REMOTE, 53, 64, b"x");
        p[9] = 47;
        fix_ip_checksum(&mut p);
        p
    };
    assert_eq!(
        run_ce(&mut c, 0, &gre).0,
        Verdict::Dropped(DropReason::ProtocolUnsupported)
    );
    let mcast = udp4(LAN_HOST, 5353, [224, 0, 0, 251], 5353, 255, b"mdns");
    assert_eq!(
        run_ce(&mut c, 0, &mcast).0,
        Verdict::Dropped(DropReason::Ipv4BadDestination)
    );
    assert_eq!(c.drops().total(), 7);
    assert_eq!(c.counters().tx_wan.packets + c.counters().tx_lan.packets, 0);
}

#[test]
fn hairpin_goes_back_to_the_lan_rfc4787_req9() {
    let mut c = ce(false);
    // Host B opens a mapping (ext PORT) toward host A's mapping; host A then sends to
    // our external address: endpoint-independent checks are the engine's; here we check
    // that whatever it decides, nothing hairpinned reaches the WAN.
    let a = [192, 168, 1, 20];
    open_udp(&mut c);
    let (v, out) = run_ce(&mut c, 1, &udp4(a, 1234, EXT, PORT, 64, b"hp"));
    match v {
        Verdict::Forwarded => {
            let p = one(&out, Direction::Lan);
            assert_eq!(&p[16..20], &LAN_HOST);
            assert_eq!(&p[12..16], &EXT);
        }
        Verdict::Dropped(_) => assert!(out.iter().all(|(d, _)| *d == Direction::Lan)),
        other => panic!("{other:?}"),
    }
}

/// `lan.prefixes` bounds the LAN (RFC 2827 ingress filtering): with 192.168.1.0/24
/// configured, 192.168.1.10 is translated as before, 10.9.9.9 and 192.168.2.10 (one bit
/// outside the /24) are dropped, counted `source_outside_lan`, with no output and no NAT
/// host record; a fragment from outside is dropped before reassembly.
#[test]
fn lan_sources_outside_the_lan_prefixes_are_dropped_and_counted() {
    let mut cfg = ce_cfg(false, "2001:db8:12:3400::/56");
    cfg.lan_prefixes = vec!["192.168.1.0/24".parse().unwrap()];
    let mut c = Ce::new(cfg).unwrap();
    let got = open_udp(&mut c);
    // TTL as sent: the kernel's forward into the TUN was the CE's one decrement.
    let want = encap(ce6(), br6(), &udp4(EXT, PORT, REMOTE, 53, 64, b"hello"));
    assert_eq!(got, want);
    for src in [[10, 9, 9, 9], [192, 168, 2, 10]] {
        let (v, out) = run_ce(&mut c, 1, &udp4(src, 5000, REMOTE, 53, 64, b"x"));
        assert_eq!(v, Verdict::Dropped(DropReason::SourceOutsideLan));
        assert!(out.is_empty());
    }
    let (first, _) = fragment4(&udp4([10, 0, 0, 1], 5000, REMOTE, 53, 64, &[7; 64]), 40, 9);
    let (v, out) = run_ce(&mut c, 2, &first);
    assert_eq!(v, Verdict::Dropped(DropReason::SourceOutsideLan));
    assert!(out.is_empty());
    assert_eq!(c.reassembly_in_progress(), 0);
    assert_eq!(c.drops().get(DropReason::SourceOutsideLan), 3);
    assert_eq!(DropReason::SourceOutsideLan.as_str(), "source_outside_lan");
    // Only 192.168.1.10 got a host record (one session).
    assert_eq!(c.nat().session_count(), 1);
}
