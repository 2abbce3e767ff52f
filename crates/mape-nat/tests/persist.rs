//! Saving the session table and restoring it into a fresh engine (a restart): the restored
//! engine answers every lookup with the same ports, shows the same truth (sessions, states,
//! timers, per-host ports and tiers, counters) and expires the same sessions at the same
//! times; the downtime is taken off every remaining lifetime; damaged, truncated, foreign
//! or other-rule files are refused with their own error.

use std::net::Ipv4Addr;

use mape_nat::persist::seal;
use mape_nat::*;
use mape_rules::PortSet;

mod common;
use common::{ep, nat, out, reply, t, v6plus, EXT};

/// Wall clock of the save (any value: only differences count).
const WALL: u64 = 1_780_000_000_000;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
/// PSID 161 (0xa1) with offset 4 and length 8: ports i·4096 + 0xa10 + j, i = 1..15.
const FORWARD_PORT: u16 = 0x1a10 + 3;

fn config() -> NatConfig {
    let mut cfg = NatConfig::mape();
    cfg.forwards = vec![StaticForward {
        proto: Protocol::Tcp,
        external_port: FORWARD_PORT,
        internal: ep("192.168.1.20:22"),
    }];
    cfg
}

fn ext_of(n: &mut Nat, now: Timestamp, p: &OutboundPacket) -> Endpoint {
    match n.outbound(now, p) {
        OutboundVerdict::Translate { external } => external,
        other => panic!("{p:?}: {other:?}"),
    }
}

/// An engine with sessions in every state, of several hosts, through a forward, created
/// and last seen at different times, and some drops counted; at t = 100 s.
fn busy() -> Nat {
    let mut n = nat(config());
    // host .10: an established TCP connection (t 0..2) and one SYN never answered (t 90).
    let est = out(Protocol::Tcp, "192.168.1.10:40000", "8.8.4.5:443", SYN);
    let e = ext_of(&mut n, t(0), &est);
    n.inbound(t(0), &reply(&est, e, SYN | ACK));
    ext_of(
        &mut n,
        t(2),
        &out(Protocol::Tcp, "192.168.1.10:40000", "8.8.4.5:443", ACK),
    );
    ext_of(
        &mut n,
        t(90),
        &out(Protocol::Tcp, "192.168.1.10:40001", "8.8.4.6:80", SYN),
    );
    // host .11: a TCP connection closed both ways (TIME_WAIT), an unanswered UDP flow.
    let fin = out(Protocol::Tcp, "192.168.1.11:50000", "8.8.4.7:443", SYN);
    let f = ext_of(&mut n, t(10), &fin);
    n.inbound(t(10), &reply(&fin, f, SYN | ACK));
    ext_of(
        &mut n,
        t(11),
        &out(
            Protocol::Tcp,
            "192.168.1.11:50000",
            "8.8.4.7:443",
            FIN | ACK,
        ),
    );
    n.inbound(t(12), &reply(&fin, f, FIN | ACK));
    ext_of(
        &mut n,
        t(95),
        &out(Protocol::Udp, "192.168.1.11:5000", "9.9.9.1:9999", 0),
    );
    // host .12: a UDP stream to two remotes from one socket (one mapping, two sessions),
    // a one-shot exchange, an answered DNS query, an ICMP echo.
    let s1 = out(Protocol::Udp, "192.168.1.12:6000", "9.9.9.2:3478", 0);
    let x = ext_of(&mut n, t(20), &s1);
    n.inbound(t(20), &reply(&s1, x, 0));
    ext_of(&mut n, t(25), &s1);
    let s2 = out(Protocol::Udp, "192.168.1.12:6000", "9.9.9.3:3478", 0);
    assert_eq!(
        ext_of(&mut n, t(85), &s2),
        x,
        "endpoint-independent mapping"
    );
    let once = out(Protocol::Udp, "192.168.1.12:6001", "9.9.9.4:123", 0);
    let o = ext_of(&mut n, t(97), &once);
    n.inbound(t(97), &reply(&once, o, 0));
    let dns = out(Protocol::Udp, "192.168.1.12:6002", "8.8.8.8:53", 0);
    let d = ext_of(&mut n, t(99), &dns);
    n.inbound(t(99), &reply(&dns, d, 0));
    let ping = out(Protocol::Icmp, "192.168.1.12:77", "8.8.4.9:0", 0);
    let pe = ext_of(&mut n, t(80), &ping);
    n.inbound(t(80), &reply(&ping, pe, 0));
    // An inbound connection through the forward.
    let inbound_syn = InboundPacket {
        proto: Protocol::Tcp,
        src: ep("8.8.4.50:33333"),
        dst: Endpoint::new(EXT, FORWARD_PORT),
        flags: TcpFlags(SYN),
        seq: 0,
        ack: 0,
    };
    assert!(matches!(
        n.inbound(t(60), &inbound_syn),
        InboundVerdict::Translate { .. }
    ));
    // Drops: a port outside the set, an unknown port.
    let mut stray = inbound_syn;
    stray.dst.port = 1000;
    n.inbound(t(61), &stray);
    stray.dst.port = 0x1a10 + 9;
    n.inbound(t(61), &stray);
    n.check_invariants().unwrap();
    n
}

/// The truth a restart must keep, at `now`: every session, the per-protocol budget, the
/// timer classes, per-host ports, flows and tiers, the counters.
fn view(n: &Nat, now: Timestamp) -> String {
    let mut sessions = n.sessions(now, usize::MAX);
    sessions.sort_by_key(|s| (s.proto, s.internal, s.remote));
    let snap = n.snapshot(now);
    // Hosts with live flows, by address: a host record's history (peak, refusals, the
    // culprit score that orders the snapshot) starts again with a restore.
    let mut hosts: Vec<_> = snap
        .hosts
        .iter()
        .filter(|h| h.flows > 0)
        .map(|h| {
            (
                h.addr,
                h.flows,
                h.ports_by_proto,
                h.unanswered,
                h.answered_once,
                h.streams,
                h.closing,
                Protocol::ALL.map(|p| n.cap_of(h.addr, p)),
            )
        })
        .collect();
    hosts.sort_by_key(|h| h.0);
    let budget: Vec<_> = snap
        .protocols
        .iter()
        .map(|p| (p.proto, p.in_use, p.sessions))
        .collect();
    format!(
        "{sessions:#?}\n{budget:?}\n{:?}\n{hosts:?}\n{:?}\nrefusals {} rst {} in_use {}",
        snap.sessions_by_state, snap.drops, snap.refusals, snap.tcp_rst_unverified, snap.in_use
    )
}

/// One session's lookups: key, then outbound and inbound answers.
type Lookups = (
    Protocol,
    Endpoint,
    Endpoint,
    Option<Endpoint>,
    Option<Endpoint>,
);

/// Every session's lookups both ways.
fn lookups(n: &mut Nat, now: Timestamp) -> Vec<Lookups> {
    let mut v: Vec<_> = n
        .sessions(now, usize::MAX)
        .into_iter()
        .map(|s| (s.proto, s.internal, s.remote, s.external))
        .collect();
    v.sort();
    v.into_iter()
        .map(|(p, i, r, e)| {
            (
                p,
                i,
                r,
                n.translation_of(p, i, r),
                n.inbound_icmp_error(p, e, r),
            )
        })
        .collect()
}

fn round_trip(n: &Nat, now: Timestamp) -> SavedTable {
    let bytes = n.save(now, WALL).encode();
    SavedTable::decode(&bytes).unwrap()
}

#[test]
fn a_restored_engine_is_the_one_that_saved() {
    let now = t(100);
    let mut a = busy();
    let table = round_trip(&a, now);
    assert_eq!(table.session_count(), 10);
    assert!(a.sessions(now, usize::MAX).iter().all(|s| s.left_ms > 0));
    let mut b = nat(config());
    let report = b.restore(&table, now, WALL).unwrap();
    assert_eq!(report.restored, 10, "{report:?}");
    assert_eq!(
        report.expired + report.outside_port_set + report.conflicting,
        0
    );
    b.check_invariants().unwrap();
    assert_eq!(view(&a, now), view(&b, now));
    assert_eq!(lookups(&mut a, now), lookups(&mut b, now));
    for (_, internal, _, out, back) in lookups(&mut b, now) {
        assert_eq!(back, Some(internal));
        assert_eq!(out.unwrap().addr, EXT);
    }
    // Both go on the same way: established traffic keeps its port, and the timers end the
    // same sessions at the same moments.
    let again = out(Protocol::Tcp, "192.168.1.10:40000", "8.8.4.5:443", ACK);
    assert_eq!(a.outbound(t(101), &again), b.outbound(t(101), &again));
    for s in [102, 103, 130, 160, 200, 400, 1000, 8000] {
        a.expire(t(s));
        b.expire(t(s));
        assert_eq!(view(&a, t(s)), view(&b, t(s)), "at {s} s");
        b.check_invariants().unwrap();
    }
    assert_eq!(b.session_count(), 0);
}

#[test]
fn the_downtime_comes_off_every_remaining_lifetime() {
    let now = t(100);
    let a = busy();
    let table = round_trip(&a, now);
    let before = a.sessions(now, usize::MAX);
    // Restarted 10 s later by the wall clock, the new engine's clock at 1000 s.
    let mut b = nat(config());
    let later = t(1000);
    let report = b.restore(&table, later, WALL + 10_000).unwrap();
    assert_eq!(report.downtime_ms, 10_000);
    // The answered DNS query (2 s) did not live through 10 s; the rest did.
    assert_eq!((report.restored, report.expired), (9, 1), "{report:?}");
    assert_eq!(report.shortened, 0);
    for s in b.sessions(later, usize::MAX) {
        let old = before
            .iter()
            .find(|o| o.proto == s.proto && o.internal == s.internal && o.remote == s.remote)
            .unwrap();
        assert_eq!(s.external, old.external);
        assert_eq!(s.state, old.state);
        assert_eq!(s.left_ms, old.left_ms - 10_000, "{s:?}");
        assert_eq!(s.idle_ms, old.idle_ms + 10_000, "{s:?}");
        assert_eq!(s.age_ms, old.age_ms + 10_000, "{s:?}");
    }
    // A clock that starts too late to hold a session's past shortens it, counted.
    let mut c = nat(config());
    let r = c.restore(&table, t(5), WALL + 10_000).unwrap();
    assert!(r.shortened > 0 && r.restored == 9, "{r:?}");
    c.check_invariants().unwrap();
}

#[test]
fn sessions_outside_the_new_port_set_or_forwards_are_dropped_and_counted() {
    let now = t(100);
    let table = round_trip(&busy(), now);
    // Same address, another PSID: no saved port is in the new set.
    let mut cfg = config();
    cfg.forwards.clear();
    let mut other = Nat::new(cfg.clone(), EXT, PortSet::new(162, 8, 4).unwrap()).unwrap();
    let r = other.restore(&table, now, WALL).unwrap();
    assert_eq!((r.restored, r.outside_port_set), (0, 10), "{r:?}");
    assert_eq!(other.session_count(), 0);
    other.check_invariants().unwrap();
    // The forward is gone from the configuration: its session goes, the others stay.
    let mut b = nat(cfg);
    let r = b.restore(&table, now, WALL).unwrap();
    assert_eq!((r.restored, r.forward_gone), (9, 1), "{r:?}");
    b.check_invariants().unwrap();
    // A forward now holds a port a dynamic mapping had.
    let stream_port = busy()
        .translation_of(Protocol::Udp, ep("192.168.1.12:6000"), ep("9.9.9.2:3478"))
        .unwrap()
        .port;
    let mut cfg = config();
    cfg.forwards.push(StaticForward {
        proto: Protocol::Udp,
        external_port: stream_port,
        internal: ep("192.168.1.30:9"),
    });
    let mut c = nat(cfg);
    let r = c.restore(&table, now, WALL).unwrap();
    assert_eq!((r.restored, r.conflicting), (8, 2), "{r:?}");
    c.check_invariants().unwrap();
    // A session limit below the saved count.
    let mut cfg = config();
    cfg.max_sessions = 4;
    let mut d = nat(cfg);
    let r = d.restore(&table, now, WALL).unwrap();
    assert_eq!((r.restored, r.over_limit), (4, 6), "{r:?}");
}

#[test]
fn another_rule_or_a_busy_engine_is_refused_whole() {
    let now = t(100);
    let table = round_trip(&busy(), now);
    let mut other = Nat::new(config(), Ipv4Addr::new(14, 9, 26, 102), v6plus()).unwrap();
    assert_eq!(
        other.restore(&table, now, WALL),
        Err(PersistError::OtherRule {
            saved: EXT,
            current: Ipv4Addr::new(14, 9, 26, 102)
        })
    );
    assert_eq!(other.session_count(), 0);
    let mut full = busy();
    assert_eq!(
        full.restore(&table, now, WALL),
        Err(PersistError::NotEmpty(10))
    );
}

#[test]
fn damaged_files_are_refused_with_their_own_error() {
    let bytes = busy().save(t(100), WALL).encode();
    assert_eq!(&bytes[..8], b"MAPESESS");
    // 46 bytes of header, 12 counters, mappings of 12 bytes, sessions of 36, a CRC.
    let counters: usize = NatDrop::ALL
        .iter()
        .map(|r| 9 + r.as_str().len())
        .sum::<usize>()
        + 9
        + "refusals".len()
        + 9
        + "tcp_rst_unverified".len();
    assert_eq!(bytes.len(), 46 + counters + 9 * 12 + 10 * 36 + 4);
    for cut in 0..bytes.len() {
        let e = SavedTable::decode(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(e, PersistError::Truncated { .. }),
            "cut at {cut}: {e}"
        );
    }
    // Any byte after the version and length changed: the checksum says so.
    for i in 20..bytes.len() - 4 {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        let e = SavedTable::decode(&b).unwrap_err();
        assert!(matches!(e, PersistError::Checksum { .. }), "byte {i}: {e}");
    }
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(SavedTable::decode(&b), Err(PersistError::BadMagic));
    let mut b = bytes.clone();
    b[8] = 3;
    assert_eq!(
        SavedTable::decode(&b),
        Err(PersistError::Version {
            found: 3,
            supported: 2
        })
    );
    let mut b = bytes.clone();
    b[8] = 0;
    assert_eq!(
        SavedTable::decode(&b),
        Err(PersistError::Version {
            found: 0,
            supported: 2
        })
    );
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(
        SavedTable::decode(&b),
        Err(PersistError::Corrupt { .. })
    ));
    // A sealed file with a value no writer writes (a session state 9): corrupt, with the
    // record named. The first session's state byte sits after its mapping index.
    let mut b = bytes[..bytes.len() - 4].to_vec();
    let first_session = 46 + counters + 9 * 12;
    b[first_session + 4] = 9;
    seal(&mut b);
    assert_eq!(
        SavedTable::decode(&b),
        Err(PersistError::Corrupt {
            what: "session state",
            index: 0
        })
    );
    // And the messages are one line each.
    assert_eq!(
        SavedTable::decode(&bytes[..100]).unwrap_err().to_string(),
        format!("truncated: {} bytes needed, 100 present", bytes.len())
    );
}

#[test]
fn an_empty_table_round_trips() {
    let n = nat(config());
    let table = round_trip(&n, t(5));
    assert_eq!(table.session_count(), 0);
    let mut b = nat(config());
    assert_eq!(b.restore(&table, t(0), WALL).unwrap().restored, 0);
    assert_eq!(view(&n, t(5)), view(&b, t(5)));
}

/// The copy the daemon takes under the datapath lock, for 10^5 sessions: one pass, no
/// encoding. Prints the time (the figure in README.md); the bound only catches a
/// pass that is no longer linear.
#[test]
fn saving_a_hundred_thousand_sessions_is_one_quick_pass() {
    let mut cfg = NatConfig::mape();
    cfg.quota = None;
    let mut n = Nat::new(cfg, EXT, PortSet::all()).unwrap();
    let now = t(10);
    for i in 0..100_000u32 {
        let host = Ipv4Addr::new(192, 168, (i / 50_000) as u8, (i % 200) as u8 + 1);
        let p = OutboundPacket {
            proto: if i % 2 == 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            src: Endpoint::new(host, 10_000 + ((i / 200) % 250) as u16),
            dst: Endpoint::new(Ipv4Addr::new(8, 8, (i % 7) as u8, 1), 443),
            flags: TcpFlags(SYN),
            seq: 0,
            ack: 0,
        };
        ext_of(&mut n, now, &p);
    }
    assert_eq!(n.session_count(), 100_000);
    let t0 = std::time::Instant::now();
    let table = n.save(now, WALL);
    let held = t0.elapsed();
    let t1 = std::time::Instant::now();
    let bytes = table.encode();
    let encoded = t1.elapsed();
    eprintln!(
        "save of 100000 sessions: {held:?} (the lock's hold); encode {encoded:?}, {} bytes",
        bytes.len()
    );
    assert_eq!(table.session_count(), 100_000);
    assert!(held < std::time::Duration::from_secs(1), "{held:?}");
    let mut b = Nat::new(
        NatConfig {
            quota: None,
            ..NatConfig::mape()
        },
        EXT,
        PortSet::all(),
    )
    .unwrap();
    let t2 = std::time::Instant::now();
    let r = b
        .restore(&SavedTable::decode(&bytes).unwrap(), now, WALL)
        .unwrap();
    eprintln!("decode and restore: {:?}", t2.elapsed());
    assert_eq!(r.restored, 100_000);
    b.check_invariants().unwrap();
}

/// Cases of the property below: `MAPE_PROPTEST_CASES` (default 2 000; the slow suite
/// raises it).
fn cases() -> u32 {
    std::env::var("MAPE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(2_000, |n: u32| n.min(20_000))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: cases(), ..Default::default() })]

    /// Whatever traffic built the table (any protocol, flags, replies, time steps, shared
    /// and forwarded ports, policy): the restored engine answers every lookup alike, shows
    /// the same truth and expires the same sessions at the same times.
    #[test]
    fn any_table_restores_to_the_same_engine(
        policy in 0usize..3,
        ops in proptest::collection::vec((0u8..4, 0u8..4, 1u16..30, 0u8..5, 0u8..3, proptest::prelude::any::<u8>(), 0u16..200), 1..60),
        later in proptest::collection::vec(1u64..400_000, 1..4),
    ) {
        let mut cfg = NatConfig::policy(POLICY_NAMES[policy]).unwrap();
        cfg.forwards = config().forwards;
        let mut a = Nat::new(cfg.clone(), EXT, v6plus()).unwrap();
        let mut now = t(1);
        for (kind, host, sport, remote, proto, flags, step) in ops {
            let proto = Protocol::ALL[usize::from(proto)];
            let src = Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + host), 1000 + sport);
            let dst = Endpoint::new(Ipv4Addr::new(8, 8, 8, 1 + remote), if proto == Protocol::Icmp { 0 } else { 443 });
            let p = OutboundPacket { proto, src, dst, flags: TcpFlags(flags), seq: 0, ack: 0 };
            match (kind, a.outbound(now, &p)) {
                (0 | 1, OutboundVerdict::Translate { external }) if kind == 1 => {
                    a.inbound(now, &reply(&p, external, flags));
                }
                (3, _) => {
                    let syn = InboundPacket {
                        proto: Protocol::Tcp,
                        src: dst,
                        dst: Endpoint::new(EXT, FORWARD_PORT),
                        flags: TcpFlags(SYN),
                        seq: 0,
                        ack: 0,
                    };
                    a.inbound(now, &syn);
                }
                _ => {}
            }
            now = now.plus_millis(u64::from(step) * 100);
        }
        let mut b = Nat::new(cfg, EXT, v6plus()).unwrap();
        let table = round_trip(&a, now);
        let r = b.restore(&table, now, WALL).unwrap();
        b.check_invariants().unwrap();
        // A restore ends every session already due; the saving engine's lazy expiry may
        // keep one due a few timer steps behind a refreshed one (left_ms 0): compare the
        // sessions that are not due, and that the restored engine has no other (whether a
        // port is shared counts the due one too: not compared here, exactly in the tests
        // above).
        let not_due = |n: &Nat, now| -> Vec<SessionInfo> {
            let mut v: Vec<_> = n
                .sessions(now, usize::MAX)
                .into_iter()
                .filter(|s| s.left_ms > 0)
                .map(|s| SessionInfo { shared_port: false, ..s })
                .collect();
            v.sort_by_key(|s| (s.proto, s.internal, s.remote));
            v
        };
        proptest::prop_assert_eq!(r.restored as usize, not_due(&a, now).len(), "{:?}", r);
        proptest::prop_assert_eq!(not_due(&a, now), not_due(&b, now));
        proptest::prop_assert_eq!(lookups(&mut b, now).len(), r.restored as usize);
        for l in lookups(&mut b, now) {
            proptest::prop_assert_eq!(a.translation_of(l.0, l.1, l.2), l.3);
        }
        for step in later {
            now = now.plus_millis(step);
            a.expire(now);
            b.expire(now);
            proptest::prop_assert_eq!(not_due(&a, now), not_due(&b, now));
            proptest::prop_assert!(b.session_count() <= a.session_count());
        }
        b.check_invariants().unwrap();
    }
}

#[test]
fn take_over_keeps_sessions_whose_port_stays_and_moves_the_counters() {
    let now = t(100);
    let old = busy();
    let drops = |n: &Nat| NatDrop::ALL.map(|r| n.drops(r));
    let old_drops = drops(&old);
    assert!(old_drops.iter().any(|&d| d > 0));
    // Same rule: every session is kept, at the same external port.
    let mut same = nat(config());
    let (saved, r) = same.take_over(&old, now);
    assert_eq!((saved, r.unwrap().restored), (10, 10));
    let (src, dst) = (ep("192.168.1.12:6000"), ep("9.9.9.2:3478"));
    assert!(old.translation_of(Protocol::Udp, src, dst).is_some());
    assert_eq!(
        same.translation_of(Protocol::Udp, src, dst),
        old.translation_of(Protocol::Udp, src, dst)
    );
    assert_eq!(drops(&same), old_drops);
    same.check_invariants().unwrap();
    // Another PSID: none kept, each counted as outside the port set.
    let mut cfg = config();
    cfg.forwards.clear();
    let mut other = Nat::new(cfg.clone(), EXT, PortSet::new(162, 8, 4).unwrap()).unwrap();
    let (saved, r) = other.take_over(&old, now);
    let r = r.unwrap();
    assert_eq!((saved, r.restored, r.outside_port_set), (10, 0, 10));
    // Another external address: nothing kept, the counters still move.
    let mut moved = Nat::new(cfg, Ipv4Addr::new(192, 0, 2, 18), v6plus()).unwrap();
    let (saved, r) = moved.take_over(&old, now);
    assert!(matches!(r, Err(PersistError::OtherRule { .. })), "{r:?}");
    assert_eq!((saved, moved.session_count()), (10, 0));
    assert_eq!(drops(&moved), old_drops);
    moved.check_invariants().unwrap();
}
