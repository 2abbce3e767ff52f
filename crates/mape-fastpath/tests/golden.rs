//! Golden packets: each program run on a buffer (`BPF_PROG_TEST_RUN`) gives the bytes
//! the userspace pipeline (mape-dataplane, itself checked against RFC 7597's examples
//! and etherparse) gives for the same packet of the same established flow, and leaves
//! to the slow path what it must. Root (CAP_BPF) only: skipped without it, except under
//! CI=true where a skip is a failure.
//!
//! With no route in the test's network namespace the programs take their "kernel
//! forwards it" branch (TC_ACT_OK after the rewrite): then the kernel would decrement
//! what the slow path's kernel decrement does, so the bytes compare one to one with the
//! pipeline's output for the packet as the kernel would have handed it to the TUN.

#[path = "../../mape-dataplane/tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;

use common::*;
use etherparse::PacketBuilder;
use libbpf_rs::ProgramInput;
use mape_dataplane::{Br, Ce, Direction, DropReason, Verdict};
use mape_fastpath::layout::{Counter, TcpEvent};
use mape_fastpath::{BrFastPath, BrParams, BrRule, CeFastPath, CeParams};
use mape_nat::{Endpoint, OffloadFlow, OffloadOp, OffloadedTcp, SessionState, TcpFlags, Timestamp};
use proptest::prelude::*;

const TC_ACT_OK: u32 = 0;

fn can_bpf() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root && std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("CI=true but not root: the BPF golden tests cannot run");
    }
    root
}

/// Ethernet in front of an IP packet.
fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Runs program `name` of `obj` on `frame`: (return value, output frame).
fn run(obj: &libbpf_rs::Object, name: &str, frame: &[u8]) -> (u32, Vec<u8>) {
    let prog = obj.progs_mut().find(|p| p.name() == name).expect("program");
    let mut out = vec![0u8; frame.len() + 128];
    let input = ProgramInput {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..Default::default()
    };
    let o = prog.test_run(input).expect("test_run");
    let ret = o.return_value;
    let len = o.data.map(|d| d.len()).unwrap_or(0);
    out.truncate(len);
    (ret, out)
}

fn ce_fast_path(ce: &Ce) -> CeFastPath {
    CeFastPath::load(CeParams {
        ce_addr: ce6(),
        ext_addr: Ipv4Addr::from(EXT),
        ipv4_mtu: 1460,
        hop_limit: 64,
        max_entries: 1024,
        mss_in: 1420,
    })
    .unwrap_or_else(|e| panic!("load: {e} (pipeline MTU {:?})", ce.counters().rx_lan))
}

/// Installs what the engine journals, toward the BR; the flows installed (not armed).
fn apply(ce: &mut Ce, fp: &CeFastPath) -> Vec<OffloadFlow> {
    apply_all(ce, fp).0
}

/// [`apply`], also returning the flows armed.
fn apply_all(ce: &mut Ce, fp: &CeFastPath) -> (Vec<OffloadFlow>, Vec<OffloadFlow>) {
    let mut installed = Vec::new();
    let mut armed = Vec::new();
    for op in ce.nat_mut().drain_offload().ops {
        match op {
            OffloadOp::Install(f) => {
                fp.install(&f, br6(), false).unwrap();
                installed.push(f);
            }
            OffloadOp::Arm(f) => {
                fp.install(&f, br6(), true).unwrap();
                armed.push(f);
            }
            OffloadOp::Remove(f) => {
                fp.remove(&f);
            }
            OffloadOp::Refresh(_) => {}
        }
    }
    (installed, armed)
}

fn ext_port_of(wan_out: &[u8]) -> u16 {
    // IPv6 (40) + IPv4 (20): the source port.
    u16::from_be_bytes([wan_out[60], wan_out[61]])
}

/// A CE with an established TCP flow LAN_HOST:40000 → REMOTE:80; returns it, the fast
/// path holding the flow, and the external port.
fn tcp_flow() -> (Ce, CeFastPath, u16) {
    let (mut ce, fp, port, _) = armed_flow();
    // Here the SYN-ACK takes the slow path (as when it beats the entry).
    let synack = encap(br6(), ce6(), &tcp_syn_ack4(REMOTE, 80, EXT, port, 50, 1400));
    let (_, out) = run_ce(&mut ce, 1, &synack);
    one(&out, Direction::Lan);
    assert_eq!(
        apply(&mut ce, &fp).len(),
        1,
        "answered: established, installed"
    );
    (ce, fp, port)
}

/// A CE whose engine translated the SYN of LAN_HOST:40000 → REMOTE:80 and armed it:
/// the CE, the fast path holding its pending entries, the external port, the flow.
fn armed_flow() -> (Ce, CeFastPath, u16, OffloadFlow) {
    let mut ce = ce(false);
    ce.nat_mut().set_offload(true);
    let fp = ce_fast_path(&ce);
    let syn = tcp_syn4(LAN_HOST, 40000, REMOTE, 80, 63, 1460);
    let (_, out) = run_ce(&mut ce, 0, &syn);
    let port = ext_port_of(&one(&out, Direction::Wan));
    let (installed, armed) = apply_all(&mut ce, &fp);
    assert_eq!(installed, vec![], "a SYN alone is not established");
    assert_eq!(armed.len(), 1, "but armed");
    (ce, fp, port, armed[0])
}

/// A TCP ACK (+PSH with a payload) with TOS `tos`.
fn tcp4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    tos: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv4(src, dst, ttl)
        .tcp(sport, dport, 0x1234_5679, 64240)
        .ack(0x9abc_def0);
    let b = if data.is_empty() { b } else { b.psh() };
    b.write(&mut v, data).unwrap();
    v[1] = tos;
    fix_ip_checksum(&mut v);
    v
}

fn with_ttl(p: &[u8], ttl: u8) -> Vec<u8> {
    let mut v = p.to_vec();
    v[8] = ttl;
    fix_ip_checksum(&mut v);
    v
}

#[test]
fn lan_to_tunnel_matches_the_pipeline() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, _) = tcp_flow();
    // The packet on the LAN wire, and as the kernel hands it to the TUN (TTL − 1).
    let wire = tcp4(
        LAN_HOST,
        40000,
        REMOTE,
        80,
        64,
        0xb8,
        b"GET / HTTP/1.1\r\n\r\n",
    );
    let (_, out) = run_ce(&mut ce, 3, &with_ttl(&wire, 63));
    let want = one(&out, Direction::Wan);
    let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(&got[12..14], &[0x86, 0xdd], "ethertype IPv6");
    assert_eq!(got[14..], want[..], "the same bytes as the pipeline");
    assert_eq!(fp.counters().get(Counter::OutPackets), 1);
    let (seen, _) = fp.seen(&fp.flows()[0]).unwrap();
    assert_eq!(seen.lan_ack, Some(0x9abc_def0));
    assert!(seen.last_seen_ns > 0);
}

#[test]
fn the_batched_sweep_reads_what_each_entry_recorded() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, port) = tcp_flow();
    let fp2 = CeFastPath::load(CeParams {
        ce_addr: ce6(),
        ext_addr: Ipv4Addr::from(EXT),
        ipv4_mtu: 1460,
        hop_limit: 64,
        max_entries: 4096,
        mss_in: 1420,
    })
    .expect("load");
    // 2 600 flows, more than a batch of libbpf-rs's iterator would hold.
    let flows: Vec<OffloadFlow> = (0..2600u16)
        .map(|i| OffloadFlow {
            proto: mape_nat::Protocol::Udp,
            internal: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + (i % 200) as u8), 1000 + i),
            remote: Endpoint::new(Ipv4Addr::from(REMOTE), 53),
            external: Endpoint::new(Ipv4Addr::from(EXT), 4000 + i),
        })
        .collect();
    for f in &flows {
        fp2.install(f, br6(), false).expect("install");
    }
    let all: std::collections::HashMap<_, _> = fp2.seen_all(flows.len()).into_iter().collect();
    assert_eq!(all.len(), flows.len());
    for f in &flows {
        assert_eq!(all.get(f).copied(), fp2.seen(f), "{f:?}");
    }
    // Expecting fewer than there are: at least what was asked for, possibly all (the
    // iterator goes on after a full batch and stops at a short one, whose size depends
    // on the buckets), each as recorded; what it left out the daemon reads alone.
    let part = fp2.seen_all(100);
    assert!(
        part.len() >= 100 && part.len() <= flows.len(),
        "{}",
        part.len()
    );
    assert!(part.iter().all(|(f, s)| fp2.seen(f) == Some(*s)));
    // A flow that carried traffic both ways: the sweep sees the packets and the ACK.
    let out = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"x");
    let back = encap(br6(), ce6(), &tcp4(REMOTE, 80, EXT, port, 50, 0, b"y"));
    run_ce(&mut ce, 3, &with_ttl(&out, 63));
    assert_eq!(run(fp.object(), "ce_lan", &eth(0x0800, &out)).0, TC_ACT_OK);
    assert_eq!(run(fp.object(), "ce_wan", &eth(0x86dd, &back)).0, TC_ACT_OK);
    let f = fp.flows()[0];
    let all = fp.seen_all(1);
    assert_eq!(all.len(), 1);
    let (g, (o, b)) = all[0];
    assert_eq!(g, f);
    assert_eq!(Some((o, b)), fp.seen(&f));
    assert_eq!((o.packets, b.packets), (1, 1));
    assert!(o.last_seen_ns > 0 && b.last_seen_ns > 0);
    assert_eq!(o.lan_ack, Some(0x9abc_def0));
    // Removed: gone from the sweep too.
    assert!(fp.remove(&f));
    assert!(fp.seen_all(1).is_empty());
}

#[test]
fn tunnel_to_lan_matches_the_pipeline() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, port) = tcp_flow();
    let inner = tcp4(REMOTE, 80, EXT, port, 50, 0x10, &[0xab; 700]);
    let wire = encap(br6(), ce6(), &inner);
    let (_, out) = run_ce(&mut ce, 3, &wire);
    let want = one(&out, Direction::Lan);
    let (ret, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(&got[12..14], &[0x08, 0x00], "ethertype IPv4");
    assert_eq!(got[14..], want[..]);
    assert_eq!(fp.counters().get(Counter::InPackets), 1);
}

#[test]
fn udp_with_no_checksum_keeps_none() {
    if !can_bpf() {
        return;
    }
    let mut ce = ce(false);
    ce.nat_mut().set_offload(true);
    let fp = ce_fast_path(&ce);
    let q = udp4(LAN_HOST, 5000, REMOTE, 3478, 63, b"ping");
    let (_, out) = run_ce(&mut ce, 0, &q);
    let port = ext_port_of(&one(&out, Direction::Wan));
    let answer = encap(br6(), ce6(), &udp4(REMOTE, 3478, EXT, port, 50, b"pong"));
    run_ce(&mut ce, 1, &answer);
    assert_eq!(apply(&mut ce, &fp).len(), 1, "answered: installed");
    let mut wire = udp4(LAN_HOST, 5000, REMOTE, 3478, 64, b"more data");
    wire[26] = 0;
    wire[27] = 0;
    let (_, out) = run_ce(&mut ce, 2, &with_ttl(&wire, 63));
    let want = one(&out, Direction::Wan);
    assert_eq!(&want[66..68], &[0, 0], "the pipeline keeps it absent");
    let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(got[14..], want[..]);
    // With a checksum, too.
    let wire = udp4(LAN_HOST, 5000, REMOTE, 3478, 64, b"more data");
    let (_, out) = run_ce(&mut ce, 2, &with_ttl(&wire, 63));
    let (_, got) = run(fp.object(), "ce_lan", &eth(0x0800, &wire));
    assert_eq!(got[14..], one(&out, Direction::Wan)[..]);
}

#[test]
fn what_the_fast_path_does_not_own_goes_on_unchanged() {
    if !can_bpf() {
        return;
    }
    let (_ce, fp, port) = tcp_flow();
    let unchanged = |prog: &str, frame: Vec<u8>, why: Counter| {
        let before = fp.counters().get(why);
        let (ret, got) = run(fp.object(), prog, &frame);
        assert_eq!(ret, TC_ACT_OK, "{why:?}");
        assert_eq!(got, frame, "{why:?}: untouched");
        assert_eq!(fp.counters().get(why), before + 1, "{why:?} counted");
    };
    // A SYN on the flow's 5-tuple (a new incarnation): the engine must see it.
    let mut v = Vec::new();
    PacketBuilder::ipv4(LAN_HOST, REMOTE, 64)
        .tcp(40000, 80, 1, 64240)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    unchanged("ce_lan", eth(0x0800, &v), Counter::PassControl);
    // Another flow of the host: no entry (new flows, storms).
    let other = tcp4(LAN_HOST, 40001, REMOTE, 80, 64, 0, b"x");
    unchanged("ce_lan", eth(0x0800, &other), Counter::PassNoEntry);
    // An expiring TTL: the slow path's kernel answers it.
    let dying = tcp4(LAN_HOST, 40000, REMOTE, 80, 1, 0, b"x");
    unchanged("ce_lan", eth(0x0800, &dying), Counter::PassTtl);
    // Bigger than the tunnel MTU: the slow path answers or fragments.
    let big = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, &[0u8; 1460]);
    unchanged("ce_lan", eth(0x0800, &big), Counter::PassMtu);
    // A fragment.
    let mut frag = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"x");
    set_frag(&mut frag, 7, false, true, 0);
    unchanged("ce_lan", eth(0x0800, &frag), Counter::PassNotFlow);
    // A bad header checksum.
    let mut bad = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"x");
    bad[10] ^= 0xff;
    unchanged("ce_lan", eth(0x0800, &bad), Counter::PassNotFlow);
    // From the tunnel: the flow's packet from a source other than its BR (§8.1).
    let inner = tcp4(REMOTE, 80, EXT, port, 50, 0, b"x");
    let spoofed = encap(ce6_2(), ce6(), &inner);
    unchanged("ce_wan", eth(0x86dd, &spoofed), Counter::PassSource);
    // ... an RST from the remote.
    let mut v = Vec::new();
    PacketBuilder::ipv4(REMOTE, EXT, 50)
        .tcp(80, port, 1, 0)
        .rst()
        .write(&mut v, &[])
        .unwrap();
    unchanged(
        "ce_wan",
        eth(0x86dd, &encap(br6(), ce6(), &v)),
        Counter::PassControl,
    );
}

/// A FIN with ACK.
fn fin4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .tcp(sport, dport, seq, 64240)
        .ack(ack)
        .fin()
        .write(&mut v, &[])
        .unwrap();
    v
}

/// The events the programs queued.
fn events(fp: &CeFastPath) -> Vec<TcpEvent> {
    let mut out = Vec::new();
    fp.drain_events(&mut out);
    out
}

/// The event of a packet of LAN_HOST:40000 ↔ REMOTE:80 through external port `port`.
fn event(outbound: bool, port: u16, flags: u8, seq: u32, ack: u32) -> TcpEvent {
    TcpEvent {
        outbound,
        internal: Endpoint::new(Ipv4Addr::from(LAN_HOST), 40000),
        remote: Endpoint::new(Ipv4Addr::from(REMOTE), 80),
        ext_port: port,
        flags,
        seq,
        ack,
    }
}

/// Feeds one FIN event to the engine as the daemon does.
fn feed(ce: &mut Ce, fp: &CeFastPath, e: &TcpEvent, at: u64) -> bool {
    let pkt = OffloadedTcp {
        outbound: e.outbound,
        flags: TcpFlags(e.flags),
        seq: e.seq,
        ack: e.ack,
    };
    ce.nat_mut()
        .offload_tcp(Timestamp::from_millis(at), &fp.flow_of(e), pkt)
}

fn state(ce: &Ce, at: u64) -> SessionState {
    ce.nat().sessions(Timestamp::from_millis(at), 9)[0].state
}

#[test]
fn a_close_rides_the_fast_path_and_the_engine_sees_each_fin() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, port) = tcp_flow();
    let flow = fp.flows()[0];
    // The LAN host closes: forwarded in the kernel, and told to the engine.
    let wire = fin4(LAN_HOST, 40000, REMOTE, 80, 64, 0x1234_5679, 0x9abc_def0);
    let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(&got[12..14], &[0x86, 0xdd], "encapsulated");
    assert_eq!(fp.counters().get(Counter::FinEvents), 1);
    assert_eq!(fp.counters().get(Counter::PassControl), 0);
    let ev = events(&fp);
    assert_eq!(ev, vec![event(true, port, 0x11, 0x1234_5679, 0x9abc_def0)]);
    assert_eq!(fp.flow_of(&ev[0]), flow);
    assert!(feed(&mut ce, &fp, &ev[0], 3));
    assert_eq!(state(&ce, 3), SessionState::FinWait);
    assert_eq!(apply(&mut ce, &fp), vec![], "the entry stays for the close");
    assert_eq!(fp.flows(), vec![flow]);
    // The bytes are the pipeline's for the same packet.
    let (_, out) = run_ce(&mut ce, 4, &with_ttl(&wire, 63));
    assert_eq!(got[14..], one(&out, Direction::Wan)[..]);
    // The server's FIN from the tunnel.
    let inner = fin4(REMOTE, 80, EXT, port, 50, 0x5555_0000, 0x1234_567a);
    let wire = encap(br6(), ce6(), &inner);
    let (ret, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(&got[12..14], &[0x08, 0x00], "decapsulated");
    let ev = events(&fp);
    assert_eq!(ev.len(), 1);
    assert!(!ev[0].outbound);
    assert_eq!(fp.flow_of(&ev[0]), flow, "the LAN endpoint from the entry");
    assert_eq!((ev[0].seq, ev[0].ack), (0x5555_0000, 0x1234_567a));
    assert!(feed(&mut ce, &fp, &ev[0], 5));
    assert_eq!(state(&ce, 5), SessionState::TimeWait);
    assert_eq!(apply(&mut ce, &fp), vec![]);
    let (_, out) = run_ce(&mut ce, 5, &wire);
    assert_eq!(got[14..], one(&out, Direction::Lan)[..]);
    // The last ACK rides the fast path with no event.
    let last = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"");
    let before = fp.counters().get(Counter::OutPackets);
    let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &last));
    assert_eq!((ret, &got[12..14]), (TC_ACT_OK, &[0x86, 0xdd][..]));
    assert_eq!(fp.counters().get(Counter::OutPackets), before + 1);
    assert_eq!(events(&fp), vec![]);
    // The TIME_WAIT timer ends the session, and the entry with it.
    ce.expire(Timestamp::from_millis(5 + 3_600_000));
    assert_eq!(apply(&mut ce, &fp), vec![]);
    assert_eq!(fp.flows(), vec![], "no entry outlives its session");
}

/// A SYN-ACK with `opts` as its TCP options.
fn syn_ack_with(port: u16, opts: &[etherparse::TcpOptionElement]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(REMOTE, EXT, 50)
        .tcp(80, port, 0x7777_0000, 64240)
        .syn()
        .ack(0x1234_5679)
        .options(opts)
        .unwrap()
        .write(&mut v, &[])
        .unwrap();
    v
}

#[test]
fn an_armed_flow_opens_in_the_kernel_with_its_syn_ack_and_nothing_before() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, port, flow) = armed_flow();
    assert_eq!(fp.pending(&flow), Some((true, true)));
    let unchanged = |prog: &str, frame: Vec<u8>, why: Counter| {
        let before = fp.counters().get(why);
        let (ret, got) = run(fp.object(), prog, &frame);
        assert_eq!((ret, &got), (TC_ACT_OK, &frame), "{why:?}: untouched");
        assert_eq!(fp.counters().get(why), before + 1, "{why:?} counted");
    };
    // Before an answer nothing of it is the kernel's: not the LAN host's packets, not a
    // packet from the tunnel that is not the SYN-ACK, not a SYN-ACK from elsewhere.
    let early = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"x");
    unchanged("ce_lan", eth(0x0800, &early), Counter::PassUnanswered);
    let data_in = encap(br6(), ce6(), &tcp4(REMOTE, 80, EXT, port, 50, 0, b"x"));
    unchanged("ce_wan", eth(0x86dd, &data_in), Counter::PassUnanswered);
    let syn_ack = tcp_syn_ack4(REMOTE, 80, EXT, port, 50, 1460);
    let spoofed = encap(ce6_2(), ce6(), &syn_ack);
    unchanged("ce_wan", eth(0x86dd, &spoofed), Counter::PassSource);
    // A SYN-ACK whose MSS is not the first option: the slow path finds it.
    let odd = syn_ack_with(
        port,
        &[
            etherparse::TcpOptionElement::Noop,
            etherparse::TcpOptionElement::Noop,
            etherparse::TcpOptionElement::MaximumSegmentSize(1460),
        ],
    );
    unchanged(
        "ce_wan",
        eth(0x86dd, &encap(br6(), ce6(), &odd)),
        Counter::PassControl,
    );
    assert_eq!(fp.pending(&flow), Some((true, true)));
    assert_eq!(events(&fp), vec![]);

    // The SYN-ACK: decapsulated, MSS clamped to the tunnel's 1420, both marks cleared,
    // and told to the engine.
    let wire = encap(br6(), ce6(), &syn_ack);
    let (ret, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(&got[12..14], &[0x08, 0x00], "decapsulated");
    assert_eq!(
        &got[14 + 20 + 20..14 + 20 + 24],
        &[2, 4, 0x05, 0x8c],
        "MSS 1420"
    );
    assert_eq!(fp.pending(&flow), Some((false, false)));
    assert_eq!(fp.counters().get(Counter::SynAckEvents), 1);
    let ev = events(&fp);
    assert_eq!(ev, vec![event(false, port, 0x12, 0x1234_5678, 0x1234_5679)]);
    assert_eq!(fp.flow_of(&ev[0]), flow);
    // The engine: established, the entry already open (nothing to install).
    assert!(feed(&mut ce, &fp, &ev[0], 1));
    assert_eq!(state(&ce, 1), SessionState::Established);
    assert_eq!(apply_all(&mut ce, &fp), (vec![], vec![]));
    // The same bytes (checksum included) as the pipeline's for the same SYN-ACK.
    let (_, out) = run_ce(&mut ce, 1, &wire);
    assert_eq!(got[14..], one(&out, Direction::Lan)[..]);
    // The LAN host's ACK and everything after ride the fast path.
    let ack = tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"");
    let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &ack));
    assert_eq!((ret, &got[12..14]), (TC_ACT_OK, &[0x86, 0xdd][..]));
    assert_eq!(fp.counters().get(Counter::OutPackets), 1);
    // An MSS at or below the clamp is left as it is.
    let small = tcp_syn_ack4(REMOTE, 80, EXT, port, 50, 1200);
    let wire = encap(br6(), ce6(), &small);
    let (_, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &wire));
    assert_eq!(
        &got[14 + 20 + 20..14 + 20 + 24],
        &[2, 4, 0x04, 0xb0],
        "MSS 1200"
    );
    let (_, out) = run_ce(&mut ce, 2, &wire);
    assert_eq!(got[14..], one(&out, Direction::Lan)[..]);
}

#[test]
fn a_lowered_tunnel_mtu_sends_the_larger_packets_to_the_slow_path() {
    if !can_bpf() {
        return;
    }
    let (_ce, mut fp, port) = tcp_flow();
    let wire = eth(
        0x0800,
        &tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, &[7u8; 1360]),
    ); // 1400 bytes of IPv4
    let (_, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!(&got[12..14], &[0x86, 0xdd], "within 1460: forwarded");
    // A Packet Too Big taught the slow path 1400 toward the BR (1360 for IPv4).
    assert!(fp.set_mtu(1360, 1320).unwrap());
    assert!(!fp.set_mtu(1360, 1320).unwrap(), "unchanged");
    let (ret, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!(
        (ret, &got),
        (TC_ACT_OK, &wire),
        "over 1360: the slow path's"
    );
    assert_eq!(fp.counters().get(Counter::PassMtu), 1);
    // A SYN-ACK toward the LAN is clamped within it.
    let syn_ack = encap(br6(), ce6(), &tcp_syn_ack4(REMOTE, 80, EXT, port, 50, 1460));
    let (_, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &syn_ack));
    assert_eq!(
        &got[14 + 20 + 20..14 + 20 + 24],
        &[2, 4, 0x05, 0x28],
        "MSS 1320"
    );
    // Expired: the configured MTU again.
    assert!(fp.set_mtu(1460, 1420).unwrap());
    let (_, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!(&got[12..14], &[0x86, 0xdd]);
}

#[test]
fn an_armed_flow_the_engine_ends_loses_its_entries() {
    if !can_bpf() {
        return;
    }
    let (mut ce, fp, port, _) = armed_flow();
    // Never answered: the SYN's timer ends the session, and its entries go with it.
    ce.expire(Timestamp::from_millis(3_600_000));
    apply(&mut ce, &fp);
    assert_eq!(fp.flows(), vec![], "no entry outlives its session");
    let wire = encap(br6(), ce6(), &tcp_syn_ack4(REMOTE, 80, EXT, port, 50, 1460));
    let (ret, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &wire));
    assert_eq!((ret, &got[..]), (TC_ACT_OK, &eth(0x86dd, &wire)[..]));
    assert_eq!(fp.counters().get(Counter::PassNoEntry), 1);
}

#[test]
fn a_fin_the_full_ring_cannot_tell_goes_to_the_slow_path() {
    if !can_bpf() {
        return;
    }
    let (_ce, fp, _) = tcp_flow();
    let wire = eth(0x0800, &fin4(LAN_HOST, 40000, REMOTE, 80, 64, 9, 9));
    // 256 KiB of 32-byte records (24 + the ring's 8-byte header), nothing drained: the
    // kernel keeps one record's room free, so 8191 fit.
    const FIT: u64 = (1 << 18) / 32 - 1;
    for _ in 0..FIT {
        assert_eq!(run(fp.object(), "ce_lan", &wire).0, TC_ACT_OK);
    }
    assert_eq!(fp.counters().get(Counter::FinEvents), FIT);
    let (ret, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!((ret, &got), (TC_ACT_OK, &wire), "untouched");
    assert_eq!(fp.counters().get(Counter::PassEventsFull), 1);
    assert_eq!(events(&fp).len() as u64, FIT, "every forwarded FIN is told");
    // Drained, the ring takes the next one.
    let (_, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!(&got[12..14], &[0x86, 0xdd]);
    assert_eq!(events(&fp).len(), 1);
}

#[test]
fn a_removed_entry_and_a_dead_daemon_forward_nothing() {
    if !can_bpf() {
        return;
    }
    let (_ce, fp, _) = tcp_flow();
    let wire = eth(0x0800, &tcp4(LAN_HOST, 40000, REMOTE, 80, 64, 0, b"x"));
    // Past the deadline (suspend sets it to 0): every packet goes to the slow path.
    fp.suspend().unwrap();
    let (ret, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!((ret, &got), (TC_ACT_OK, &wire));
    assert_eq!(fp.counters().get(Counter::PassStale), 1);
    fp.renew(mape_fastpath::monotonic_ns()).unwrap();
    let f = fp.flows()[0];
    assert!(fp.remove(&f));
    assert!(!fp.remove(&f), "a second remove finds nothing");
    let (ret, got) = run(fp.object(), "ce_lan", &wire);
    assert_eq!((ret, &got), (TC_ACT_OK, &wire));
    assert_eq!(fp.counters().get(Counter::PassNoEntry), 1);
    assert!(fp.flows().is_empty());
}

fn br_fast_path() -> (Br, BrFastPath) {
    let br = br();
    let rule = BrRule::of(&rule(false), mape_rules::IidFormat::Rfc7597).expect("a plain rule");
    let fp = BrFastPath::load(
        BrParams {
            br_addr: br6(),
            ipv6_mtu: 1500,
            hop_limit: 64,
        },
        &[rule],
    )
    .unwrap();
    (br, fp)
}

#[test]
fn br_both_ways_match_the_pipeline() {
    if !can_bpf() {
        return;
    }
    let (mut br, fp) = br_fast_path();
    // Internet → CE: the kernel decrements on the way into the slow path's TUN.
    let wire = tcp4(REMOTE, 80, EXT, PORT, 40, 0x28, b"hello");
    let (_, out) = run_br(&mut br, 0, &with_ttl(&wire, 39));
    let want = one(&out, Direction::Wan);
    let (ret, got) = run(fp.object(), "br_v4", &eth(0x0800, &wire));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(
        got[14..],
        want[..],
        "encapsulated toward the CE of 192.0.2.18 port {PORT}"
    );
    // CE → internet: decapsulated after the §8.1 check.
    let up = encap(ce6(), br6(), &tcp4(EXT, PORT, REMOTE, 80, 64, 0, b"hi"));
    let (_, out) = run_br(&mut br, 1, &up);
    let want = one(&out, Direction::INTERNET);
    let (ret, got) = run(fp.object(), "br_v6", &eth(0x86dd, &up));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(got[14..], want[..]);
    // A source port of another PSID from this CE address is spoofed: slow path.
    let spoof = encap(
        ce6(),
        br6(),
        &tcp4(EXT, PORT + 0x100, REMOTE, 80, 64, 0, b"hi"),
    );
    let (ret, got) = run(fp.object(), "br_v6", &eth(0x86dd, &spoof));
    assert_eq!((ret, &got[..]), (TC_ACT_OK, &eth(0x86dd, &spoof)[..]));
    assert_eq!(fp.counters().get(Counter::PassSource), 1);
    // The same prefix and EA bits under the other interface-ID layout (a draft-03 CE
    // facing an RFC 7597 BR) is not the CE's MAP address: the programs leave it to the
    // slow path, and the slow path drops it as spoofed, as both paths compare all 128
    // bits (§8.1).
    let draft03: std::net::Ipv6Addr = "2001:db8:12:3400:c0:2:1200:3400".parse().unwrap();
    let other = encap(draft03, br6(), &tcp4(EXT, PORT, REMOTE, 80, 64, 0, b"hi"));
    let (ret, got) = run(fp.object(), "br_v6", &eth(0x86dd, &other));
    assert_eq!((ret, &got[..]), (TC_ACT_OK, &eth(0x86dd, &other)[..]));
    assert_eq!(fp.counters().get(Counter::PassSource), 2);
    let (verdict, out) = run_br(&mut br, 2, &other);
    assert_eq!(
        (verdict, out.len()),
        (Verdict::Dropped(DropReason::SpoofedSource), 0)
    );
    // Between two CEs of the domain: the slow path hairpins it.
    let hair = encap(ce6(), br6(), &tcp4(EXT, PORT, EXT2, PORT, 64, 0, b"hi"));
    let (ret, _) = run(fp.object(), "br_v6", &eth(0x86dd, &hair));
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(fp.counters().get(Counter::PassHairpin), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any established UDP flow and payload, the fast path and the pipeline give
    /// the same bytes, both ways.
    #[test]
    fn fast_path_and_pipeline_agree(
        sport in 1024u16..,
        dport in 1u16..,
        tos in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
    ) {
        if !can_bpf() {
            return Ok(());
        }
        let mut ce = ce(false);
        ce.nat_mut().set_offload(true);
        let fp = ce_fast_path(&ce);
        let q = udp4(LAN_HOST, sport, REMOTE, dport, 63, b"q");
        let (_, out) = run_ce(&mut ce, 0, &q);
        let port = ext_port_of(&one(&out, Direction::Wan));
        let answer = encap(br6(), ce6(), &udp4(REMOTE, dport, EXT, port, 50, b"a"));
        run_ce(&mut ce, 1, &answer);
        prop_assert_eq!(apply(&mut ce, &fp).len(), 1);
        let mut wire = udp4(LAN_HOST, sport, REMOTE, dport, 64, &payload);
        wire[1] = tos;
        fix_ip_checksum(&mut wire);
        let (_, out) = run_ce(&mut ce, 2, &with_ttl(&wire, 63));
        let (ret, got) = run(fp.object(), "ce_lan", &eth(0x0800, &wire));
        prop_assert_eq!(ret, TC_ACT_OK);
        prop_assert_eq!(&got[14..], &one(&out, Direction::Wan)[..]);
        let mut back = udp4(REMOTE, dport, EXT, port, 50, &payload);
        back[1] = tos;
        fix_ip_checksum(&mut back);
        let back = encap(br6(), ce6(), &back);
        let (_, out) = run_ce(&mut ce, 3, &back);
        let (ret, got) = run(fp.object(), "ce_wan", &eth(0x86dd, &back));
        prop_assert_eq!(ret, TC_ACT_OK);
        prop_assert_eq!(&got[14..], &one(&out, Direction::Lan)[..]);
    }
}

#[test]
fn removals_in_one_batch_take_exactly_their_entries_even_past_one_already_gone() {
    if !can_bpf() {
        return;
    }
    let ce = ce(false);
    let fp = ce_fast_path(&ce);
    let flow = |i: u16| OffloadFlow {
        proto: mape_nat::Protocol::Tcp,
        internal: Endpoint::new(Ipv4Addr::from(LAN_HOST), 40_000 + i),
        remote: Endpoint::new(Ipv4Addr::from(REMOTE), 80),
        external: Endpoint::new(Ipv4Addr::from(EXT), 4_100 + i),
    };
    let flows: Vec<OffloadFlow> = (0..6).map(flow).collect();
    for f in &flows {
        fp.install(f, br6(), true).unwrap();
    }
    // All there: one batch per map.
    fp.remove_batch(&flows[0..2], &flows[0..2]);
    // Flow 3 already gone in the middle of the next batch: the kernel stops there,
    // the rest is removed one by one.
    assert!(fp.remove(&flows[3]));
    fp.remove_batch(&flows[2..5], &flows[2..5]);
    let state: Vec<Option<(bool, bool)>> = flows.iter().map(|f| fp.pending(f)).collect();
    assert_eq!(state, [None, None, None, None, None, Some((true, true))]);
    // One direction only: the other entry stays.
    fp.remove_batch(&[], &flows[5..]);
    assert_eq!(fp.pending(&flows[5]), Some((true, false)));
    fp.remove_batch(&[], &[]);
    assert_eq!(fp.flows(), [flows[5]]);
}
