//! `Ce::process_batch` checks every packet first, looks up runs of consecutive flow packets
//! in the NAT together and takes everything else (fragments, ICMP errors, TTL expiry,
//! "fragmentation needed", Packet Too Big, garbage) one at a time in its place. One batch
//! mixing all of them must give the outputs, verdicts, drops, counters and NAT table of the
//! same packets one at a time, in order — with a small table (runs looked up one by one)
//! and a large one (runs through `Nat::outbound_batch` / `inbound_batch`).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder};
use mape_dataplane::*;
use mape_nat::{Endpoint, Protocol};

/// The table size from which the CE looks runs up together (`PREFETCH_FROM_SESSIONS`).
const TOGETHER_FROM: u32 = 1 << 16;

/// A CE owning a whole IPv4 address (k = 0), with `fill` established UDP flows.
fn filled_ce(fill: u32) -> Ce {
    let mut c = whole_address_ce();
    for i in 0..fill {
        let host = [10, 1, (i / 250 % 250) as u8, 1 + (i % 250) as u8];
        let p = udp4(
            host,
            1024 + (i / 62_500) as u16,
            REMOTE,
            7000,
            64,
            &[0u8; 8],
        );
        assert_eq!(c.process(t(0), &p, &mut Discard), Verdict::Forwarded);
    }
    c
}

struct Discard;

impl Sink for Discard {
    fn emit(&mut self, _d: Direction, _p: &[u8]) {}
}

fn lan(i: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    udp4(LAN_HOST, 2000 + i, REMOTE, 53, ttl, payload)
}

/// ICMPv6 Packet Too Big from a router on the path, quoting `quoted`.
fn ptb(to: Ipv6Addr, mtu: u32, quoted: &[u8]) -> Vec<u8> {
    let router: Ipv6Addr = "2001:db8:0:1::1".parse().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ipv6(router.octets(), to.octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut v, &quoted[..quoted.len().min(1000)])
        .unwrap();
    v
}

/// Runs the mixed batch against a pair of identical CEs, one batched, one packet at a time.
fn mixed_batch_matches_one_at_a_time(fill: u32) {
    let mut batched = filled_ce(fill);
    let mut single = filled_ce(fill);
    let cfg = batched.config().clone();
    let (ce6, br6, ext) = (cfg.ce_ipv6, cfg.br_ipv6, cfg.external_ipv4.octets());

    // Flows 0..4 are open on both before the batch; their first packets, as sent.
    let mut sent = Vec::new();
    for i in 0..4 {
        let mut a: Out = Vec::new();
        let mut b: Out = Vec::new();
        assert_eq!(
            batched.process(t(1), &lan(i, 64, b"open"), &mut a),
            Verdict::Forwarded
        );
        assert_eq!(
            single.process(t(1), &lan(i, 64, b"open"), &mut b),
            Verdict::Forwarded
        );
        assert_eq!(a, b);
        sent.push(a[0].1.clone());
    }
    let ext_port = |i: u16| {
        batched
            .nat()
            .translation_of(
                Protocol::Udp,
                Endpoint::new(Ipv4Addr::from(LAN_HOST), 2000 + i),
                Endpoint::new(Ipv4Addr::from(REMOTE), 53),
            )
            .expect("an open flow")
            .port
    };
    let ports: Vec<u16> = (0..4).map(ext_port).collect();
    let reply = |i: u16, payload: &[u8]| udp4(REMOTE, 53, ext, ports[usize::from(i)], 60, payload);

    // A LAN datagram of a new flow in two fragments, and a reply in two IPv6 fragments.
    let mut whole = lan(10, 64, &[5u8; 600]);
    set_frag(&mut whole, 0x77, false, false, 0);
    let (frag_a, frag_b) = fragment4(&whole, 256, 0x77);
    let (frag6_a, frag6_b) = fragment6(&encap(br6, ce6, &reply(1, &[6u8; 400])), 160, 0xbeef);
    // An ICMP error from the internet about flow 2, and one a LAN host sends about a reply.
    let err_in = encap(
        br6,
        ce6,
        &icmp4_err(
            REMOTE,
            ext,
            60,
            false,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            &sent[2][40..],
        ),
    );
    // A reply to flow 3 delivered to the LAN on both before the batch.
    let delivered = {
        let r = encap(br6, ce6, &reply(3, b"answer"));
        let mut a: Out = Vec::new();
        let mut b: Out = Vec::new();
        assert_eq!(batched.process(t(1), &r, &mut a), Verdict::Forwarded);
        assert_eq!(single.process(t(1), &r, &mut b), Verdict::Forwarded);
        assert_eq!(a, b);
        a[0].1.clone()
    };
    let err_out = icmp4_err(
        LAN_HOST,
        REMOTE,
        64,
        false,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &delivered,
    );
    // 1400 bytes, DF set: fits the tunnel (1460) before the Packet Too Big, not after.
    let big_df = lan(1, 64, &[7u8; 1372]);

    let inputs: Vec<Vec<u8>> = vec![
        lan(0, 64, b"a"),
        lan(1, 64, b"b"),
        encap(br6, ce6, &reply(0, b"c")),
        encap(br6, ce6, &reply(1, b"d")),
        encap(br6, ce6, &reply(2, b"e")),
        frag_a,
        lan(2, 64, b"f"),
        big_df.clone(),
        err_in,
        lan(3, 64, b"g"),
        lan(11, 64, b"new flow"),
        encap(br6, ce6, &reply(3, b"answer")),
        err_out,
        frag6_a,
        // TTL 0: the kernel already took the CE's one decrement (lib.rs "TTL"), so only
        // 0 expires in the pipeline (was 1 while the CE decremented a second time).
        lan(0, 0, b"ttl expires"),
        encap(br6, ce6, &reply(0, b"h")),
        frag_b,
        ptb(ce6, 1280, &sent[1]),
        big_df,
        lan(1, 64, b"i"),
        vec![0x45; 20],
        Vec::new(),
        frag6_b,
        encap(br6, ce6, &udp4(REMOTE, 53, ext, 9, 60, b"no flow")),
        lan(2, 64, b"j"),
        lan(3, 64, b"k"),
    ];
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();

    let mut out_batched: Out = Vec::new();
    let forwarded = batched.process_batch(t(2), &refs, &mut out_batched);
    let mut out_single: Out = Vec::new();
    let mut forwarded_single = 0;
    let mut verdicts = Vec::new();
    for p in &refs {
        let v = single.process(t(2), p, &mut out_single);
        forwarded_single += usize::from(v == Verdict::Forwarded);
        verdicts.push(v);
    }
    // The batch holds every kind it claims to.
    assert!(verdicts.contains(&Verdict::Buffered), "{verdicts:?}");
    assert!(verdicts.contains(&Verdict::Dropped(DropReason::TtlExpired)));
    assert!(verdicts.contains(&Verdict::Dropped(DropReason::FragNeeded)));
    assert_eq!(
        verdicts[8],
        Verdict::Forwarded,
        "ICMP error from the tunnel"
    );
    assert_eq!(verdicts[12], Verdict::Forwarded, "ICMP error from the LAN");
    assert_eq!(
        verdicts[7],
        Verdict::Forwarded,
        "DF packet before the Packet Too Big"
    );
    assert_eq!(verdicts[18], Verdict::Dropped(DropReason::FragNeeded));

    assert_eq!(forwarded, forwarded_single);
    assert_eq!(out_batched, out_single);
    assert_eq!(batched.counters(), single.counters());
    assert_eq!(
        batched.drops().nonzero().collect::<Vec<_>>(),
        single.drops().nonzero().collect::<Vec<_>>()
    );
    assert_eq!(batched.nat().snapshot(t(2)), single.nat().snapshot(t(2)));
    assert_eq!(
        batched.tunnel_mtu(t(2), &br6),
        single.tunnel_mtu(t(2), &br6)
    );
}

#[test]
fn mixed_batch_small_table() {
    mixed_batch_matches_one_at_a_time(0);
}

#[test]
fn mixed_batch_large_table_runs_looked_up_together() {
    mixed_batch_matches_one_at_a_time(TOGETHER_FROM + 100);
}
