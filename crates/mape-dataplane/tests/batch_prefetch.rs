//! `Ce::process_batch` prefetches the NAT lookups of a batch once the table is large (it
//! peeks each packet's key from its headers, without the checks `process` makes). That
//! must be a hint only: with the prefetch active, a batch of established flows, replies,
//! new flows and garbage gives the outputs, drops and table of one packet at a time.

mod common;

use std::net::Ipv4Addr;

use common::*;
use mape_dataplane::*;
use mape_nat::{Endpoint, Protocol};

/// The table size from which the CE prefetches (`PREFETCH_FROM_SESSIONS` in ce.rs).
const PREFETCH_FROM: u32 = 1 << 16;

struct Discard;

impl Sink for Discard {
    fn emit(&mut self, _d: Direction, _p: &[u8]) {}
}

fn host(i: u32) -> [u8; 4] {
    [192, 168, 1, 10 + (i % 50) as u8]
}

fn sport(i: u32) -> u16 {
    1024 + (i / 50) as u16
}

#[test]
fn batches_with_prefetch_match_one_packet_at_a_time() {
    let mut batched = whole_address_ce();
    let mut single = whole_address_ce();
    const FLOWS: u32 = PREFETCH_FROM + 4_000;
    for i in 0..FLOWS {
        let p = udp4(
            host(i),
            sport(i),
            REMOTE,
            5000 + (i % 7) as u16,
            64,
            &[7u8; 32],
        );
        assert_eq!(batched.process(t(0), &p, &mut Discard), Verdict::Forwarded);
        assert_eq!(single.process(t(0), &p, &mut Discard), Verdict::Forwarded);
    }
    assert!(batched.nat().session_count() >= PREFETCH_FROM);

    let cfg = batched.config().clone();
    let reply = |i: u32| {
        let ext = batched
            .nat()
            .translation_of(
                Protocol::Udp,
                Endpoint::new(Ipv4Addr::from(host(i)), sport(i)),
                Endpoint::new(Ipv4Addr::from(REMOTE), 5000 + (i % 7) as u16),
            )
            .expect("a live flow");
        let inner = udp4(
            REMOTE,
            5000 + (i % 7) as u16,
            cfg.external_ipv4.octets(),
            ext.port,
            60,
            &[9u8; 40],
        );
        encap(cfg.br_ipv6, cfg.ce_ipv6, &inner)
    };
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for k in 0..64u32 {
        let i = (k * 7919) % FLOWS;
        inputs.push(match k % 8 {
            // Established flows, both ways.
            0..=2 => udp4(
                host(i),
                sport(i),
                REMOTE,
                5000 + (i % 7) as u16,
                64,
                &[1u8; 16],
            ),
            3 | 4 => reply(i),
            // A new flow.
            5 => udp4(host(i), 60000 + k as u16, REMOTE, 443, 64, &[2u8; 16]),
            // Garbage the peek must shrug off and `process` drop by name.
            6 => match k / 8 {
                0 => Vec::new(),
                1 => vec![0x45],
                2 => vec![0x45; 20],
                3 => vec![0x60; 41],
                4 => {
                    let mut v = encap(cfg.br_ipv6, cfg.ce_ipv6, &[0x45, 0, 0, 20]);
                    v.truncate(44);
                    v
                }
                5 => vec![0x4f; 60],
                6 => vec![0xff; 64],
                _ => {
                    let mut p = udp4(host(i), sport(i), REMOTE, 53, 64, &[3u8; 64]);
                    set_frag(&mut p, 77, false, true, 0);
                    p
                }
            },
            // A reply to a flow that does not exist, and a packet of a flow already seen in
            // this batch.
            _ => {
                if k % 16 == 7 {
                    let inner = udp4(REMOTE, 9, cfg.external_ipv4.octets(), 40000, 60, &[0u8; 8]);
                    encap(cfg.br_ipv6, cfg.ce_ipv6, &inner)
                } else {
                    udp4(host(0), sport(0), REMOTE, 5000, 64, &[4u8; 16])
                }
            }
        });
    }
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();

    let mut out_batched: Out = Vec::new();
    let forwarded = batched.process_batch(t(1000), &refs, &mut out_batched);
    let mut out_single: Out = Vec::new();
    let mut forwarded_single = 0;
    for p in &refs {
        if single.process(t(1000), p, &mut out_single) == Verdict::Forwarded {
            forwarded_single += 1;
        }
    }
    assert_eq!(forwarded, forwarded_single);
    assert!(forwarded >= 40, "only {forwarded} of 64 forwarded");
    assert_eq!(out_batched, out_single);
    assert_eq!(
        batched.drops().nonzero().collect::<Vec<_>>(),
        single.drops().nonzero().collect::<Vec<_>>()
    );
    assert!(batched.drops().total() >= 8, "the garbage was dropped");
    assert_eq!(
        batched.nat().snapshot(t(1000)),
        single.nat().snapshot(t(1000))
    );
}
