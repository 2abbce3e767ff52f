//! Drives the NAT engine with arbitrary operation sequences under every policy and port-set
//! shape: no panic, every translated port inside the set, table invariants intact.
#![no_main]

use std::net::Ipv4Addr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mape_nat::*;
use mape_rules::PortSet;

const EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

#[derive(Debug, Arbitrary)]
enum Op {
    Out {
        src: u32,
        sport: u16,
        dst: u32,
        dport: u16,
        proto: u8,
        flags: u8,
    },
    In {
        src: u32,
        sport: u16,
        port: u16,
        proto: u8,
        flags: u8,
    },
    IcmpErrIn {
        port: u16,
        dst: u32,
        dport: u16,
        proto: u8,
    },
    /// (src, sport, dst, dport, proto, flags) through the batch call.
    OutBatch(Vec<(u32, u16, u32, u16, u8, u8)>),
    /// (src, sport, port, proto, flags) through the batch call.
    InBatch(Vec<(u32, u16, u16, u8, u8)>),
    Advance(u16),
    Snapshot,
}

#[derive(Debug, Arbitrary)]
struct Input {
    policy: u8,
    psid: u16,
    k: u8,
    a: u8,
    eif: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let Ok(ports) = PortSet::new(input.psid, input.k % 17, input.a % 17) else {
        return;
    };
    let mut cfg = NatConfig::policy(POLICY_NAMES[usize::from(input.policy) % 3]).unwrap();
    if input.eif {
        cfg.filtering = Filtering::EndpointIndependent;
    }
    cfg.max_sessions = 512;
    let Ok(mut nat) = Nat::new(cfg, EXT, ports) else {
        return;
    };
    let mut now = Timestamp::from_secs(0);
    let proto = |p: u8| Protocol::ALL[usize::from(p % 3)];
    let out_pkt = |src: u32, sport, dst: u32, dport, p, flags| OutboundPacket {
        proto: proto(p),
        // A handful of LAN hosts; remotes anywhere (incl. our own address).
        src: Endpoint::new(Ipv4Addr::from(0xC0A8_0100 | (src & 7)), sport),
        dst: Endpoint::new(
            if dst & 0xF == 0 {
                EXT
            } else {
                Ipv4Addr::from(dst)
            },
            dport,
        ),
        flags: TcpFlags(flags),
        // Tied to the remote port, so an inbound RST of the same flow can fall in the
        // window the LAN host acknowledged, and often does not.
        seq: 0,
        ack: u32::from(dport) << 12,
    };
    let in_pkt = |src: u32, sport, port, p, flags| InboundPacket {
        proto: proto(p),
        src: Endpoint::new(Ipv4Addr::from(src), sport),
        dst: Endpoint::new(EXT, port),
        flags: TcpFlags(flags),
        seq: u32::from(sport) << 12,
        ack: 0,
    };
    let (mut out_v, mut in_v) = (Vec::new(), Vec::new());
    for op in input.ops.into_iter().take(2000) {
        match op {
            Op::Out {
                src,
                sport,
                dst,
                dport,
                proto: p,
                flags,
            } => {
                let pkt = out_pkt(src, sport, dst, dport, p, flags);
                match nat.outbound(now, &pkt) {
                    OutboundVerdict::Translate { external } => {
                        assert!(ports.contains(external.port))
                    }
                    OutboundVerdict::Hairpin { external_src, .. } => {
                        assert!(ports.contains(external_src.port))
                    }
                    OutboundVerdict::Drop { .. } => {}
                }
            }
            Op::In {
                src,
                sport,
                port,
                proto: p,
                flags,
            } => {
                let pkt = in_pkt(src, sport, port, p, flags);
                if let InboundVerdict::Translate { internal } = nat.inbound(now, &pkt) {
                    assert_eq!(internal.addr.octets()[..3], [192, 168, 1]);
                }
            }
            Op::OutBatch(list) => {
                let pkts: Vec<_> = list
                    .into_iter()
                    .take(200)
                    .map(|(src, sport, dst, dport, p, flags)| {
                        out_pkt(src, sport, dst, dport, p, flags)
                    })
                    .collect();
                nat.outbound_batch(now, &pkts, &mut out_v);
                assert_eq!(out_v.len(), pkts.len());
                for v in &out_v {
                    match v {
                        OutboundVerdict::Translate { external } => {
                            assert!(ports.contains(external.port))
                        }
                        OutboundVerdict::Hairpin { external_src, .. } => {
                            assert!(ports.contains(external_src.port))
                        }
                        OutboundVerdict::Drop { .. } => {}
                    }
                }
            }
            Op::InBatch(list) => {
                let pkts: Vec<_> = list
                    .into_iter()
                    .take(200)
                    .map(|(src, sport, port, p, flags)| in_pkt(src, sport, port, p, flags))
                    .collect();
                nat.inbound_batch(now, &pkts, &mut in_v);
                assert_eq!(in_v.len(), pkts.len());
                for v in &in_v {
                    if let InboundVerdict::Translate { internal } = v {
                        assert_eq!(internal.addr.octets()[..3], [192, 168, 1]);
                    }
                }
            }
            Op::IcmpErrIn {
                port,
                dst,
                dport,
                proto: p,
            } => {
                let _ = nat.inbound_icmp_error(
                    proto(p),
                    Endpoint::new(EXT, port),
                    Endpoint::new(Ipv4Addr::from(dst), dport),
                );
            }
            Op::Advance(s) => {
                now = now.plus_millis(u64::from(s) * 100);
                nat.expire(now);
            }
            Op::Snapshot => {
                let _ = nat.snapshot(now);
            }
        }
    }
    if let Err(e) = nat.check_invariants() {
        panic!("{e}");
    }
});
