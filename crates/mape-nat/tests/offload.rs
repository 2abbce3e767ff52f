//! The kernel fast path's journal (`Nat::drain_offload`): only established TCP and
//! answered UDP are installed, a TCP SYN's session is armed (pending entries that forward
//! only its SYN-ACK; the kernel's SYN-ACK installs it as it stands), a FIN close keeps the
//! entry (the kernel's FINs reach the state machine through `Nat::offload_tcp`), every end
//! of a session removes its entry in the same step, the fold-back keeps an offloaded flow
//! alive and judges a held-back reset.

mod common;

use common::*;
use mape_nat::*;

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;

fn engine() -> Nat {
    let mut n = nat(NatConfig::default());
    n.set_offload(true);
    n
}

fn ext_of(v: OutboundVerdict) -> Endpoint {
    match v {
        OutboundVerdict::Translate { external } => external,
        other => panic!("not translated: {other:?}"),
    }
}

fn ops(n: &mut Nat) -> Vec<OffloadOp> {
    let d = n.drain_offload();
    assert!(!d.resync);
    d.ops
}

fn flow(p: &OutboundPacket, ext: Endpoint) -> OffloadFlow {
    OffloadFlow {
        proto: p.proto,
        internal: p.src,
        remote: p.dst,
        external: ext,
    }
}

/// A TCP connection through its handshake; returns the outbound data packet and its
/// external endpoint.
fn established(n: &mut Nat, src: &str) -> (OutboundPacket, Endpoint) {
    let syn = tcp(src, "93.184.216.34:443", SYN);
    let ext = ext_of(n.outbound(t(1), &syn));
    let armed = if n.offload_enabled() {
        vec![OffloadOp::Arm(flow(&syn, ext))]
    } else {
        vec![]
    };
    assert_eq!(ops(n), armed, "a SYN is armed, not installed");
    let synack = reply(&syn, ext, SYN | ACK);
    assert!(matches!(
        n.inbound(t(1), &synack),
        InboundVerdict::Translate { .. }
    ));
    (tcp(src, "93.184.216.34:443", ACK), ext)
}

#[test]
fn tcp_is_installed_after_the_handshake_and_stays_through_a_fin_close() {
    let mut n = engine();
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    let f = flow(&data, ext);
    assert_eq!(ops(&mut n), vec![OffloadOp::Install(f)]);
    assert_eq!(n.offloaded(), 1);
    assert_eq!(n.offloaded_flows(), vec![f]);
    // Data on the slow path (e.g. during the move) changes nothing.
    ext_of(n.outbound(t(2), &data));
    assert_eq!(ops(&mut n), vec![]);
    // The FIN (here by the slow path): the rest of the close is ACKs the engine would
    // only count, so the entry stays.
    ext_of(n.outbound(
        t(3),
        &tcp("192.168.1.10:40000", "93.184.216.34:443", FIN | ACK),
    ));
    assert_eq!(ops(&mut n), vec![]);
    assert_eq!(n.sessions(t(3), 9)[0].state, SessionState::FinWait);
    assert_eq!(n.offloaded(), 1);
}

/// The state of the one session.
fn state(n: &Nat, at: u64) -> SessionState {
    n.sessions(t(at), 9)[0].state
}

#[test]
fn fins_the_kernel_forwarded_move_the_state_machine_as_the_slow_path_would() {
    let mut n = engine();
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    let f = flow(&data, ext);
    ops(&mut n);
    let fin = |outbound| OffloadedTcp {
        outbound,
        flags: TcpFlags(FIN | ACK),
        seq: 7,
        ack: 1_000,
    };
    // The LAN host closes, then the server: FIN_WAIT, then TIME_WAIT, entry kept.
    assert!(n.offload_tcp(t(2), &f, fin(true)));
    assert_eq!(state(&n, 2), SessionState::FinWait);
    assert!(n.offload_tcp(t(2), &f, fin(false)));
    assert_eq!(state(&n, 2), SessionState::TimeWait);
    assert_eq!(ops(&mut n), vec![], "the close rides the fast path");
    assert_eq!(n.offloaded_flows(), vec![f]);
    // Not a flow of the engine (another external port, or UDP): nothing happens.
    let other = OffloadFlow {
        external: Endpoint::new(ext.addr, ext.port.wrapping_add(1)),
        ..f
    };
    assert!(!n.offload_tcp(t(2), &other, fin(true)));
    let udp_flow = OffloadFlow {
        proto: Protocol::Udp,
        ..f
    };
    assert!(!n.offload_tcp(t(2), &udp_flow, fin(true)));
    // The TIME_WAIT timer (240 s in the default policy) ends the session and its entry.
    n.expire(t(2 + 241));
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(f)]);
    assert_eq!(n.offloaded(), 0);
    assert!(!n.offload_tcp(t(244), &f, fin(true)), "gone: nothing to do");
}

#[test]
fn a_reset_or_a_new_incarnation_takes_the_closing_entry_off() {
    // The LAN host resets after its FIN: the connection is over, the entry goes.
    let mut n = engine();
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    let f = flow(&data, ext);
    ops(&mut n);
    let fin_out = OffloadedTcp {
        outbound: true,
        flags: TcpFlags(FIN | ACK),
        seq: 7,
        ack: 1_000,
    };
    assert!(n.offload_tcp(t(2), &f, fin_out));
    ext_of(n.outbound(t(3), &tcp("192.168.1.10:40000", "93.184.216.34:443", RST)));
    assert_eq!(state(&n, 3), SessionState::TimeWait);
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(f)]);
    // Both FINs, then the same 5-tuple opens again (RFC 6191): the SYN came by the slow
    // path and the new connection is not established yet, so the entry is armed again
    // (pending: only the new SYN-ACK passes).
    let mut n = engine();
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    let f = flow(&data, ext);
    ops(&mut n);
    assert!(n.offload_tcp(t(2), &f, fin_out));
    let fin_in = OffloadedTcp {
        outbound: false,
        ..fin_out
    };
    assert!(n.offload_tcp(t(2), &f, fin_in));
    assert_eq!(ops(&mut n), vec![]);
    ext_of(n.outbound(t(4), &tcp("192.168.1.10:40000", "93.184.216.34:443", SYN)));
    assert_eq!(state(&n, 4), SessionState::SynSent);
    assert_eq!(ops(&mut n), vec![OffloadOp::Arm(f)]);
    assert_eq!(n.offload_resync(), vec![OffloadOp::Arm(f)]);
    assert_eq!(n.offloaded(), 1);
}

#[test]
fn a_syn_is_armed_and_the_kernels_syn_ack_installs_it_as_it_stands() {
    let mut n = engine();
    let syn = tcp("192.168.1.10:40000", "93.184.216.34:443", SYN);
    let ext = ext_of(n.outbound(t(1), &syn));
    let f = flow(&syn, ext);
    assert_eq!(ops(&mut n), vec![OffloadOp::Arm(f)]);
    assert_eq!(n.offloaded(), 1);
    assert_eq!(n.offload_resync(), vec![OffloadOp::Arm(f)]);
    // The programs forwarded the SYN-ACK and cleared both pending marks themselves.
    let syn_ack = OffloadedTcp {
        outbound: false,
        flags: TcpFlags(SYN | ACK),
        seq: 5_000,
        ack: 1,
    };
    assert!(n.offload_tcp(t(1), &f, syn_ack));
    assert_eq!(state(&n, 1), SessionState::Established);
    assert_eq!(ops(&mut n), vec![], "the entry is already open");
    assert_eq!(n.offload_resync(), vec![OffloadOp::Install(f)]);
    assert_eq!(n.offloaded(), 1);
    // A FIN later moves it on as before; the TIME_WAIT timer ends it.
    let fin = OffloadedTcp {
        outbound: true,
        flags: TcpFlags(FIN | ACK),
        seq: 2,
        ack: 5_001,
    };
    assert!(n.offload_tcp(t(2), &f, fin));
    assert_eq!(state(&n, 2), SessionState::FinWait);
    assert_eq!(ops(&mut n), vec![]);
}

#[test]
fn a_refused_or_unanswered_syn_takes_its_armed_entry_off() {
    // Refused: the server's RST comes by the slow path (the programs leave RSTs to it).
    let mut n = engine();
    let syn = tcp("192.168.1.10:40000", "93.184.216.34:443", SYN);
    let ext = ext_of(n.outbound(t(1), &syn));
    let f = flow(&syn, ext);
    assert_eq!(ops(&mut n), vec![OffloadOp::Arm(f)]);
    n.inbound(t(1), &reply(&syn, ext, RST | ACK));
    assert_eq!(state(&n, 1), SessionState::TimeWait);
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(f)]);
    assert_eq!(n.offloaded(), 0);
    // Unanswered: its timer ends the session and the entry in the same step.
    let mut n = engine();
    let ext = ext_of(n.outbound(t(1), &syn));
    assert_eq!(ops(&mut n), vec![OffloadOp::Arm(f)]);
    assert_eq!(ext, f.external);
    n.expire(t(1 + 3_600));
    assert_eq!(n.sessions(t(3_601), 9).len(), 0);
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(f)]);
    assert_eq!(n.offloaded(), 0);
}

#[test]
fn an_unanswered_storm_never_reaches_the_fast_path() {
    let mut n = engine();
    let mut translated = 0;
    for i in 0..200u16 {
        let p = udp(&format!("192.168.1.23:{}", 20000 + i), "1.2.3.4:5000");
        translated += matches!(n.outbound(t(1), &p), OutboundVerdict::Translate { .. }) as u32;
    }
    for i in 0..50u16 {
        let syn = tcp(
            &format!("192.168.1.23:{}", 30000 + i),
            "93.184.216.34:80",
            SYN,
        );
        translated += matches!(n.outbound(t(1), &syn), OutboundVerdict::Translate { .. }) as u32;
    }
    assert!(translated > 40, "the storm got ports: {translated}");
    // The UDP storm journals nothing; each translated SYN is only armed (pending
    // entries: the programs forward nothing of it from the LAN, only a SYN-ACK back).
    let journal = ops(&mut n);
    let armed = journal
        .iter()
        .filter(|op| matches!(op, OffloadOp::Arm(f) if f.proto == Protocol::Tcp))
        .count();
    assert_eq!(armed, journal.len(), "{journal:?}");
    assert!(armed > 0 && armed <= 50, "{armed}");
    assert_eq!(n.offloaded() as usize, armed);
    // Never answered: their timers take every entry off again.
    n.expire(t(1 + 3_600));
    let journal = ops(&mut n);
    assert_eq!(journal.len(), armed);
    assert!(journal.iter().all(|op| matches!(op, OffloadOp::Remove(_))));
    assert_eq!(n.offloaded(), 0);
}

#[test]
fn udp_is_installed_after_a_reply_but_dns_is_not() {
    let mut n = engine();
    let q = udp("192.168.1.10:5353", "1.1.1.1:53");
    let ext = ext_of(n.outbound(t(1), &q));
    n.inbound(t(1), &reply(&q, ext, 0));
    assert_eq!(ops(&mut n), vec![], "a DNS answer closes the flow");
    let p = udp("192.168.1.10:6000", "1.2.3.4:3478");
    let ext = ext_of(n.outbound(t(1), &p));
    assert_eq!(ops(&mut n), vec![]);
    n.inbound(t(1), &reply(&p, ext, 0));
    assert_eq!(ops(&mut n), vec![OffloadOp::Install(flow(&p, ext))]);
}

#[test]
fn expiry_removes_the_entry_and_the_fold_back_keeps_it_alive() {
    let mut n = engine();
    let p = udp("192.168.1.10:6000", "1.2.3.4:3478");
    let q = udp("192.168.1.10:6001", "1.2.3.4:3478");
    let (ep, eq) = (ext_of(n.outbound(t(1), &p)), ext_of(n.outbound(t(1), &q)));
    n.inbound(t(1), &reply(&p, ep, 0));
    n.inbound(t(1), &reply(&q, eq, 0));
    let (fp, fq) = (flow(&p, ep), flow(&q, eq));
    assert_eq!(
        ops(&mut n),
        vec![OffloadOp::Install(fp), OffloadOp::Install(fq)]
    );
    // `p` keeps going on the fast path, `q` falls silent. The answered-once timer of the
    // default policy is 300 s.
    for s in (10..=600).step_by(10) {
        let seen = FlowSeen {
            last_seen: t(s),
            lan_ack: None,
        };
        assert!(n.offload_seen(t(s), &fp, seen));
        n.expire(t(s));
    }
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(fq)]);
    assert_eq!(n.offloaded_flows(), vec![fp]);
    let infos = n.sessions(t(600), usize::MAX);
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].internal, p.src);
    assert_eq!(infos[0].kind, "stream", "kept going past 2 s: a stream");
    // A fold-back for a flow the engine no longer has says so.
    let seen = FlowSeen {
        last_seen: t(600),
        lan_ack: None,
    };
    assert!(!n.offload_seen(t(600), &fq, seen));
}

#[test]
fn a_reset_held_back_is_believed_on_the_fresh_acknowledgement() {
    let mut n = engine();
    let (mut data, ext) = established(&mut n, "192.168.1.10:40000");
    data.ack = 1_000;
    ext_of(n.outbound(t(1), &data));
    let f = flow(&data, ext);
    assert_eq!(ops(&mut n), vec![OffloadOp::Install(f)]);
    // Megabytes later (the LAN host's ACKs went by the fast path) the server resets.
    let mut rst = reply(&data, ext, RST);
    rst.seq = 900_000_000;
    n.inbound(t(5), &rst);
    assert_eq!(
        ops(&mut n),
        vec![OffloadOp::Refresh(f)],
        "judged on a stale ACK: asked"
    );
    let seen = FlowSeen {
        last_seen: t(5),
        lan_ack: Some(899_999_000),
    };
    assert!(n.offload_seen(t(5), &f, seen));
    assert_eq!(ops(&mut n), vec![OffloadOp::Remove(f)], "believed: closing");
    let infos = n.sessions(t(5), usize::MAX);
    assert_eq!(infos[0].state, SessionState::TimeWait);
}

#[test]
fn a_spoofed_reset_stays_unbelieved_and_the_entry_stays() {
    let mut n = engine();
    let (mut data, ext) = established(&mut n, "192.168.1.10:40000");
    data.ack = 1_000;
    ext_of(n.outbound(t(1), &data));
    let f = flow(&data, ext);
    ops(&mut n);
    let mut rst = reply(&data, ext, RST);
    rst.seq = 3_000_000_000;
    n.inbound(t(5), &rst);
    assert_eq!(ops(&mut n), vec![OffloadOp::Refresh(f)]);
    let seen = FlowSeen {
        last_seen: t(5),
        lan_ack: Some(2_000),
    };
    assert!(n.offload_seen(t(5), &f, seen));
    assert_eq!(ops(&mut n), vec![]);
    assert_eq!(n.offloaded(), 1);
}

#[test]
fn a_reload_moves_every_entry_off_and_back() {
    let mut n = engine();
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    let f = flow(&data, ext);
    ops(&mut n);
    n.reconfigure(NatConfig::default(), t(2)).unwrap();
    assert_eq!(
        ops(&mut n),
        vec![OffloadOp::Remove(f), OffloadOp::Install(f)]
    );
}

#[test]
fn turning_it_on_installs_what_is_established_and_save_forgets_the_marks() {
    let mut n = nat(NatConfig::default());
    let (data, ext) = established(&mut n, "192.168.1.10:40000");
    assert_eq!(n.drain_offload().ops, vec![], "off: no journal");
    n.set_offload(true);
    let f = flow(&data, ext);
    assert_eq!(ops(&mut n), vec![OffloadOp::Install(f)]);
    // A restored table starts with no entry until the fast path is turned on again.
    let saved = n.save(t(3), 0);
    let back = SavedTable::decode(&saved.encode()).unwrap();
    let mut m = nat(NatConfig::default());
    m.restore(&back, t(3), 0).unwrap();
    assert_eq!(m.offloaded(), 0);
    m.set_offload(true);
    assert_eq!(ops(&mut m), vec![OffloadOp::Install(f)]);
}
