//! Property tests over random operation sequences (ARCHITECTURE.md testing ladder, step 2):
//! no translated packet has a source port outside the port set; no two live sessions share
//! an external 5-tuple; translate then reverse-translate is the identity; quotas hold;
//! expired sessions free their ports exactly once (the table's recount agrees).
//!
//! Sequences per run: `MAPE_PROPTEST_CASES` (default 100 000; the slow suite raises it).

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;
use proptest::prelude::*;

const EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

#[derive(Debug, Clone)]
enum Op {
    Out {
        host: u8,
        sport: u16,
        remote: u8,
        rport: u16,
        proto: u8,
        flags: u8,
    },
    Reply {
        which: u8,
        flags: u8,
    },
    Stray {
        port_ix: u8,
        remote: u8,
        rport: u16,
        proto: u8,
    },
    Advance(u16),
}

fn out_op() -> impl Strategy<Value = Op> {
    (0u8..4, 1u16..40, 0u8..6, 1u16..4, 0u8..3, any::<u8>()).prop_map(
        |(host, sport, remote, rport, proto, flags)| Op::Out {
            host,
            sport,
            remote,
            rport,
            proto,
            flags,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => out_op(),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(which, flags)| Op::Reply { which, flags }),
        1 => (any::<u8>(), 0u8..6, 1u16..4, 0u8..3).prop_map(|(port_ix, remote, rport, proto)| Op::Stray { port_ix, remote, rport, proto }),
        1 => (0u16..400).prop_map(Op::Advance),
    ]
}

fn remote_addr(i: u8) -> Ipv4Addr {
    match i {
        0 => Ipv4Addr::new(192, 168, 1, 211), // filtered by mape
        1 => EXT,                             // hairpin
        n => Ipv4Addr::new(8, 8, 8, n),
    }
}

fn proto(i: u8) -> Protocol {
    Protocol::ALL[usize::from(i % 3)]
}

fn config() -> impl Strategy<Value = (NatConfig, PortSet)> {
    (0usize..3, 0u8..3, any::<bool>(), 0u8..3).prop_map(|(policy, shape, eif, small)| {
        let mut cfg = NatConfig::policy(POLICY_NAMES[policy]).unwrap();
        if eif {
            cfg.filtering = Filtering::EndpointIndependent;
        }
        // Small sets make exhaustion, sharing and quotas happen within a short sequence.
        let ports = match (shape, small) {
            (0, _) => PortSet::new(161, 8, 4).unwrap(), // 240
            (1, 0) => PortSet::new(5, 12, 2).unwrap(),  // 3 ranges of 4 = 12
            (1, _) => PortSet::new(1, 13, 1).unwrap(),  // 1 range of 4
            _ => PortSet::new(9, 10, 3).unwrap(),       // 7 ranges of 8 = 56
        };
        (cfg, ports)
    })
}

fn cases() -> u32 {
    std::env::var("MAPE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants_hold((cfg, ports) in config(), ops in prop::collection::vec(op(), 1..40)) {
        let mut nat = Nat::new(cfg.clone(), EXT, ports).unwrap();
        let mut now = Timestamp::from_secs(0);
        let mut translations: Vec<(OutboundPacket, Endpoint)> = Vec::new();
        for op in ops {
            match op {
                Op::Out { host, sport, remote, rport, proto: p, flags } => {
                    let pkt = OutboundPacket {
                        proto: proto(p),
                        src: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + host), 1000 + sport),
                        dst: Endpoint::new(remote_addr(remote), if proto(p) == Protocol::Icmp { 0 } else { 50 + rport }),
                        flags: TcpFlags(flags),
                        seq: 0,
                        ack: 0,
                    };
                    let before = nat.host_ports(pkt.src.addr, pkt.proto);
                    match nat.outbound(now, &pkt) {
                        OutboundVerdict::Translate { external } => {
                            prop_assert_eq!(external.addr, EXT);
                            prop_assert!(ports.contains(external.port), "port {} outside the set", external.port);
                            prop_assert_ne!(external.port, 0, "port 0 handed out");
                            // Translate then reverse-translate is the identity.
                            prop_assert_eq!(nat.outbound_icmp_error(pkt.proto, pkt.src, pkt.dst), Some(external));
                            prop_assert_eq!(nat.inbound_icmp_error(pkt.proto, external, pkt.dst), Some(pkt.src));
                            translations.push((pkt, external));
                        }
                        OutboundVerdict::Hairpin { external_src, internal_dst } => {
                            prop_assert_eq!(external_src.addr, EXT);
                            prop_assert!(ports.contains(external_src.port));
                            prop_assert_eq!(&internal_dst.addr.octets()[..3], &[192u8, 168, 1][..]);
                        }
                        OutboundVerdict::Drop { reason, .. } => {
                            if reason == NatDrop::DestinationFiltered {
                                prop_assert!(cfg.destinations.enabled);
                            }
                        }
                    }
                    // Quotas hold: a host that grew did so within its cap.
                    let after = nat.host_ports(pkt.src.addr, pkt.proto);
                    if after > before {
                        if let Some(cap) = nat.cap_of(pkt.src.addr, pkt.proto) {
                            prop_assert!(after <= cap, "host holds {} > cap {}", after, cap);
                        }
                    }
                }
                Op::Reply { which, flags } => {
                    if translations.is_empty() { continue; }
                    let (pkt, ext) = translations[usize::from(which) % translations.len()];
                    // A capped host may have recycled that flow and its port gone to another.
                    if nat.translation_of(pkt.proto, pkt.src, pkt.dst) != Some(ext) { continue; }
                    let back = InboundPacket { proto: pkt.proto, src: pkt.dst, dst: ext, flags: TcpFlags(flags), seq: 0, ack: 0 };
                    if let InboundVerdict::Translate { internal } = nat.inbound(now, &back) {
                        prop_assert_eq!(internal, pkt.src, "reply reached the wrong host");
                    }
                }
                Op::Stray { port_ix, remote, rport, proto: p } => {
                    let Some(port) = ports.nth(u32::from(port_ix) % ports.count()) else { continue };
                    let back = InboundPacket {
                        proto: proto(p),
                        src: Endpoint::new(remote_addr(remote), 50 + rport),
                        dst: Endpoint::new(EXT, port),
                        flags: TcpFlags(TcpFlags::SYN),
                        seq: 0,
                        ack: 0,
                    };
                    if let InboundVerdict::Translate { internal } = nat.inbound(now, &back) {
                        // Under address-and-port-dependent filtering only a flow that sent to
                        // this very remote from this port may receive.
                        if cfg.filtering == Filtering::AddressAndPortDependent {
                            prop_assert_eq!(
                                nat.translation_of(back.proto, internal, back.src),
                                Some(back.dst),
                                "APDF let a stranger in to {}", internal
                            );
                        }
                    }
                }
                Op::Advance(s) => {
                    now = now.plus_millis(u64::from(s) * 1000);
                    nat.expire(now);
                    translations.clear();
                }
            }
        }
        if let Err(e) = nat.check_invariants() {
            prop_assert!(false, "{}", e);
        }
        // Everything expires eventually and frees each port exactly once.
        nat.expire(now.plus_millis(10 * 86_400_000));
        prop_assert_eq!(nat.session_count(), 0);
        for p in Protocol::ALL {
            prop_assert_eq!(nat.ports_in_use(p), 0);
        }
        if let Err(e) = nat.check_invariants() {
            prop_assert!(false, "{}", e);
        }
    }
}

/// One packet of a batch: a new or repeated outbound flow, or a reply to the `which`-th
/// translation seen so far (or a stray when there is none).
#[derive(Debug, Clone)]
enum BatchPkt {
    Out(Op),
    Reply { which: u8, flags: u8 },
}

fn batch_pkt() -> impl Strategy<Value = BatchPkt> {
    prop_oneof![
        3 => out_op().prop_map(BatchPkt::Out),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(which, flags)| BatchPkt::Reply { which, flags }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 10, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// The batch API (prefetch, then lookups that try the prefetched candidate first) gives
    /// exactly the verdicts and the table of one packet at a time, even when earlier packets
    /// of a batch create, recycle or expire the sessions later ones were prefetched for.
    #[test]
    fn batches_give_the_verdicts_of_single_packets(
        (cfg, ports) in config(),
        batches in prop::collection::vec((prop::collection::vec(batch_pkt(), 1..70), 0u16..200), 1..8),
    ) {
        let mut single = Nat::new(cfg.clone(), EXT, ports).unwrap();
        let mut batched = Nat::new(cfg, EXT, ports).unwrap();
        let mut now = Timestamp::from_secs(0);
        let mut translations: Vec<(OutboundPacket, Endpoint)> = Vec::new();
        let (mut out_v, mut in_v) = (Vec::new(), Vec::new());
        for (batch, advance) in batches {
            now = now.plus_millis(u64::from(advance) * 1000);
            // Runs of one direction go through the batch calls; the reference engine takes
            // the same packets one at a time.
            let mut outs = Vec::new();
            let mut ins = Vec::new();
            for p in batch.iter().chain(std::iter::once(&BatchPkt::Reply { which: 0, flags: 0xff })) {
                let flush_out = !matches!(p, BatchPkt::Out(_)) && !outs.is_empty();
                if flush_out {
                    batched.outbound_batch(now, &outs, &mut out_v);
                    for (pkt, got) in outs.iter().zip(&out_v) {
                        let want = single.outbound(now, pkt);
                        prop_assert_eq!(got, &want);
                        if let OutboundVerdict::Translate { external } = want {
                            translations.push((*pkt, external));
                        }
                    }
                    outs.clear();
                }
                match p {
                    BatchPkt::Out(Op::Out { host, sport, remote, rport, proto: pr, flags }) => {
                        if !ins.is_empty() {
                            batched.inbound_batch(now, &ins, &mut in_v);
                            for (pkt, got) in ins.iter().zip(&in_v) {
                                prop_assert_eq!(got, &single.inbound(now, pkt));
                            }
                            ins.clear();
                        }
                        outs.push(OutboundPacket {
                            proto: proto(*pr),
                            src: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + host), 1000 + sport),
                            dst: Endpoint::new(remote_addr(*remote), if proto(*pr) == Protocol::Icmp { 0 } else { 50 + rport }),
                            flags: TcpFlags(*flags),
                            seq: 0,
                            ack: 0,
                        });
                    }
                    BatchPkt::Out(_) => {}
                    BatchPkt::Reply { which, flags } => {
                        let back = match translations.get(usize::from(*which) % translations.len().max(1)) {
                            Some(&(pkt, ext)) => InboundPacket { proto: pkt.proto, src: pkt.dst, dst: ext, flags: TcpFlags(*flags), seq: 0, ack: 0 },
                            None => InboundPacket {
                                proto: Protocol::Udp,
                                src: Endpoint::new(remote_addr(2), 51),
                                dst: Endpoint::new(EXT, ports.nth(0).unwrap_or(1)),
                                flags: TcpFlags(*flags),
                                seq: 0,
                                ack: 0,
                            },
                        };
                        ins.push(back);
                    }
                }
            }
            if !ins.is_empty() {
                batched.inbound_batch(now, &ins, &mut in_v);
                for (pkt, got) in ins.iter().zip(&in_v) {
                    prop_assert_eq!(got, &single.inbound(now, pkt));
                }
            }
            prop_assert_eq!(batched.session_count(), single.session_count());
        }
        prop_assert_eq!(batched.sessions(now, usize::MAX), single.sessions(now, usize::MAX));
        prop_assert_eq!(batched.snapshot(now), single.snapshot(now));
        if let Err(e) = batched.check_invariants() {
            prop_assert!(false, "{}", e);
        }
    }
}

/// One step of ordinary churn for the "never refused while idle state could serve" property.
#[derive(Debug, Clone)]
enum Churn {
    /// A new flow from a new source port (TCP: a SYN).
    Open {
        host: u8,
        proto: u8,
        remote: u8,
        rport: u8,
    },
    /// The remote answers the `which`-th flow (TCP: SYN-ACK).
    Answer { which: u8 },
    /// The LAN host speaks again on the `which`-th flow (TCP: its ACK, establishing it).
    Again { which: u8 },
    /// TCP: both sides close the `which`-th flow with FINs, or the LAN host resets it.
    Close { which: u8, reset: bool },
    /// Time passes (milliseconds).
    Wait(u16),
}

fn churn_op() -> impl Strategy<Value = Churn> {
    prop_oneof![
        6 => (0u8..3, 0u8..3, 0u8..3, 0u8..2).prop_map(|(host, proto, remote, rport)| Churn::Open { host, proto, remote, rport }),
        4 => any::<u8>().prop_map(|which| Churn::Answer { which }),
        2 => any::<u8>().prop_map(|which| Churn::Again { which }),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(which, reset)| Churn::Close { which, reset }),
        2 => (0u16..5000).prop_map(Churn::Wait),
    ]
}

/// Whether `s` is state its host could give up for a new flow, judged from the session
/// list alone (independent of the engine's own tiers): TCP after both FINs or a reset;
/// anything unanswered; a UDP/ICMP flow answered and not heard of again three seconds
/// after it began (the engine calls a flow a stream once a packet comes two seconds after
/// its start, and `age_ms` counts from the start's whole second).
fn recyclable(s: &SessionInfo) -> bool {
    match s.state {
        SessionState::TimeWait | SessionState::Unanswered | SessionState::SynSent => true,
        SessionState::DnsAnswered => true,
        SessionState::Answered => s.age_ms.saturating_sub(s.idle_ms) < 2000,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 10, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// Issue #18, with the default `mape` policy: no new flow is refused while a port held
    /// only by closing sessions, or by the same host's idle flows, could serve it.
    #[test]
    fn no_refusal_while_idle_state_could_serve(
        small in any::<bool>(),
        ops in prop::collection::vec(churn_op(), 1..400),
    ) {
        // 12 or 56 ports make the budget bind within a short sequence.
        let ports = if small { PortSet::new(5, 12, 2).unwrap() } else { PortSet::new(9, 10, 3).unwrap() };
        let mut nat = Nat::new(NatConfig::mape(), EXT, ports).unwrap();
        let mut now = Timestamp::from_secs(0);
        let mut flows: Vec<(OutboundPacket, Endpoint)> = Vec::new();
        let mut next_port = 1000u16;
        for op in ops {
            match op {
                Churn::Open { host, proto: p, remote, rport } => {
                    next_port = next_port.wrapping_add(1).max(1000);
                    let pr = proto(p);
                    let pkt = OutboundPacket {
                        proto: pr,
                        src: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + host), next_port),
                        dst: Endpoint::new(Ipv4Addr::new(8, 8, 8, 2 + remote), if pr == Protocol::Icmp { 0 } else { 80 + u16::from(rport) }),
                        flags: TcpFlags(if pr == Protocol::Tcp { TcpFlags::SYN } else { 0 }),
                        seq: 0,
                        ack: 0,
                    };
                    let before = nat.sessions(now, usize::MAX);
                    match nat.outbound(now, &pkt) {
                        OutboundVerdict::Translate { external } => flows.push((pkt, external)),
                        OutboundVerdict::Drop { reason, .. } => {
                            // At its cap (quota): it held no idle session it could give up.
                            let own_idle = |s: &SessionInfo| s.internal.addr == pkt.src.addr && s.proto == pr && recyclable(s);
                            if reason == NatDrop::HostQuota {
                                prop_assert!(!before.iter().any(own_idle), "{:?} refused at its cap while it held idle state: {:?}",
                                    pkt.src, before.iter().filter(|s| own_idle(s)).collect::<Vec<_>>());
                            }
                            // Out of ports: no port was held only by closing TCP sessions or by
                            // this host's own idle sessions.
                            if reason == NatDrop::PortsExhausted {
                                let mut ports: std::collections::BTreeMap<u16, bool> = Default::default();
                                for s in before.iter().filter(|s| s.proto == pr) {
                                    let ok = s.state == SessionState::TimeWait || own_idle(s);
                                    *ports.entry(s.external.port).or_insert(true) &= ok;
                                }
                                let spare: Vec<_> = ports.iter().filter(|(_, &ok)| ok).map(|(p, _)| *p).collect();
                                prop_assert!(spare.is_empty(), "{:?} refused ({:?}) while ports {:?} were held only by closing or its own idle sessions", pkt.src, reason, spare);
                            }
                        }
                        other => prop_assert!(false, "{:?}", other),
                    }
                }
                Churn::Answer { which } | Churn::Again { which } | Churn::Close { which, .. } if flows.is_empty() => { let _ = which; }
                Churn::Answer { which } => {
                    let (pkt, ext) = flows[usize::from(which) % flows.len()];
                    if nat.translation_of(pkt.proto, pkt.src, pkt.dst) != Some(ext) { continue; }
                    let flags = if pkt.proto == Protocol::Tcp { TcpFlags::SYN | TcpFlags::ACK } else { 0 };
                    let back = InboundPacket { proto: pkt.proto, src: pkt.dst, dst: ext, flags: TcpFlags(flags), seq: 0, ack: 0 };
                    prop_assert_eq!(nat.inbound(now, &back), InboundVerdict::Translate { internal: pkt.src });
                }
                Churn::Again { which } => {
                    let (pkt, ext) = flows[usize::from(which) % flows.len()];
                    if nat.translation_of(pkt.proto, pkt.src, pkt.dst) != Some(ext) { continue; }
                    let again = OutboundPacket { flags: TcpFlags(if pkt.proto == Protocol::Tcp { TcpFlags::ACK } else { 0 }), ..pkt };
                    prop_assert_eq!(nat.outbound(now, &again), OutboundVerdict::Translate { external: ext });
                }
                Churn::Close { which, reset } => {
                    let (pkt, ext) = flows[usize::from(which) % flows.len()];
                    if pkt.proto != Protocol::Tcp || nat.translation_of(pkt.proto, pkt.src, pkt.dst) != Some(ext) { continue; }
                    if reset {
                        nat.outbound(now, &OutboundPacket { flags: TcpFlags(TcpFlags::RST), ..pkt });
                    } else {
                        nat.outbound(now, &OutboundPacket { flags: TcpFlags(TcpFlags::FIN | TcpFlags::ACK), ..pkt });
                        let fin = InboundPacket { proto: pkt.proto, src: pkt.dst, dst: ext, flags: TcpFlags(TcpFlags::FIN | TcpFlags::ACK), seq: 0, ack: 0 };
                        nat.inbound(now, &fin);
                    }
                }
                Churn::Wait(ms) => {
                    now = now.plus_millis(u64::from(ms));
                    // Due expiry first, so the session list the checks read is current.
                    nat.expire(now);
                }
            }
        }
        if let Err(e) = nat.check_invariants() {
            prop_assert!(false, "{}", e);
        }
    }
}
