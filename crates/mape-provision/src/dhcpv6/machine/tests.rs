//! The client against hand-built server messages (RFC 8415 §21 layouts) and RFC 8415's
//! timer rules.

use super::*;
use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::Decodable;
use rand::SeedableRng;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER: &str = "0003 0001 0a0000000001";
const SERVER2: &str = "0003 0001 0a0000000002";

fn hexb(s: &str) -> Vec<u8> {
    mape_rules::provision::parse_hex(s).unwrap()
}

fn client(seed: u64) -> Client<rand::rngs::StdRng> {
    Client::new(
        Config {
            duid: Duid::link_layer(MAC),
            iaid: 1,
            hint: None,
        },
        rand::rngs::StdRng::seed_from_u64(seed),
    )
}

fn s(n: f64) -> Time {
    Duration::from_secs_f64(n)
}

/// The IA_PD part: (t1, t2, preferred, valid, IA status code).
struct Ia {
    t1: u32,
    t2: u32,
    preferred: u32,
    valid: u32,
    status: Option<u16>,
}

const IA: Ia = Ia {
    t1: 3600,
    t2: 5400,
    preferred: 7200,
    valid: 10800,
    status: None,
};

/// A server message by hand: type, xid, Client ID (DUID-LL of MAC), Server ID,
/// Preference, IA_PD with one /56 (when its status is not NoPrefixAvail), option 94.
fn server(kind: u8, xid: [u8; 3], server_id: &str, pref: Option<u8>, ia: &Ia) -> Vec<u8> {
    let mut h = format!(
        "{kind:02x} {:02x}{:02x}{:02x} 0001 000a 0003 0001 020000000001 0002 000a {server_id}",
        xid[0], xid[1], xid[2]
    );
    if let Some(p) = pref {
        h += &format!(" 0007 0001 {p:02x}");
    }
    let mut inner = String::new();
    let mut len = 12;
    if ia.status != Some(6) {
        inner += &format!(
            " 001a 0019 {:08x} {:08x} 38 20010db8001234000000000000000000",
            ia.preferred, ia.valid
        );
        len += 29;
    }
    if let Some(c) = ia.status {
        inner += &format!(" 000d 0002 {c:04x}");
        len += 6;
    }
    h += &format!(
        " 0019 {len:04x} 00000001 {:08x} {:08x}{inner}",
        ia.t1, ia.t2
    );
    h += " 005e 002d 0059 0015 00 10 18 c0000200 28 20010db800 005d 0004 04 08 0000
           005a 0010 20010db8ffff00000000000000000001";
    hexb(&h)
}

/// The client message sent, decoded by dhcproto (independent of our server-side parser).
fn sent(step: &Step) -> Message {
    Message::from_bytes(step.send.as_ref().expect("a datagram")).unwrap()
}

fn server_id_of(m: &Message) -> Option<Vec<u8>> {
    match m.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(s)) => Some(s.clone()),
        _ => None,
    }
}

fn iapd_prefix(m: &Message) -> Option<(u32, String)> {
    match m.opts().get(OptionCode::IAPD) {
        Some(DhcpOption::IAPD(ia)) => Some((
            ia.id,
            match ia.opts.get(OptionCode::IAPrefix) {
                Some(DhcpOption::IAPrefix(p)) => format!("{}/{}", p.prefix_ip, p.prefix_len),
                _ => String::new(),
            },
        )),
        _ => None,
    }
}

fn elapsed(m: &Message) -> u16 {
    match m.opts().get(OptionCode::ElapsedTime) {
        Some(DhcpOption::ElapsedTime(e)) => *e,
        _ => panic!("no Elapsed Time"),
    }
}

/// Starts and sends the first Solicit; returns it and the time it went out.
fn first_solicit(c: &mut Client<rand::rngs::StdRng>) -> (Message, Time) {
    assert_eq!(c.start(s(0.0)), Step::default());
    let t = c.next_timer().unwrap();
    // §18.2.1: SOL_MAX_DELAY.
    assert!(t <= s(1.0), "{t:?}");
    assert_eq!(
        c.on_timer(t - s(0.001)).send,
        None,
        "early timer does nothing"
    );
    let step = c.on_timer(t);
    (sent(&step), t)
}

/// Solicit, Advertise, Request, Reply: the lease, at time `t_reply`.
fn bind(c: &mut Client<rand::rngs::StdRng>) -> (Lease, Time) {
    let (sol, t0) = first_solicit(c);
    let adv = server(2, sol.xid(), SERVER, None, &IA);
    assert_eq!(c.on_packet(t0 + s(0.1), &adv), Step::default());
    // Collected until the first RT (§18.2.1).
    let due = c.next_timer().unwrap();
    let req = sent(&c.on_timer(due));
    assert_eq!(req.msg_type(), MessageType::Request);
    let t = due + s(0.05);
    let step = c.on_packet(t, &server(7, req.xid(), SERVER, None, &IA));
    match &step.events[..] {
        [Event::Bound { lease, change }] => {
            assert_eq!(*change, Change::New);
            (lease.clone(), t)
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn solicit_asks_for_a_prefix_and_option_94_without_rapid_commit() {
    let mut c = client(1);
    let (m, _) = first_solicit(&mut c);
    assert_eq!(m.msg_type(), MessageType::Solicit);
    // §18.2.1: Client ID, Elapsed Time 0 on the first transmission, ORO, IA_PD; no
    // Server ID; no Rapid Commit.
    assert_eq!(
        m.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(hexb("0003 0001 020000000001")))
    );
    assert_eq!(elapsed(&m), 0);
    assert_eq!(server_id_of(&m), None);
    assert!(m.opts().get(OptionCode::RapidCommit).is_none());
    match m.opts().get(OptionCode::ORO) {
        Some(DhcpOption::ORO(o)) => assert!(o.opts.contains(&OptionCode::S46ContMape)),
        o => panic!("{o:?}"),
    }
    assert_eq!(iapd_prefix(&m), Some((1, String::new())));
}

#[test]
fn full_lease_life_renew_rebind_expiry() {
    let mut c = client(2);
    let (lease, t) = bind(&mut c);
    assert_eq!(lease.prefix.prefix.to_string(), "2001:db8:12:3400::/56");
    assert_eq!(
        (lease.t1, lease.t2, lease.prefix.valid),
        (3600, 5400, 10800)
    );
    assert_eq!(lease.server_id, hexb(SERVER));
    assert!(lease.has_s46());
    let p = lease.provision(None, None, &[]).unwrap();
    // The lab's rule: RFC 7597 example 1 with PSID offset 4: 192.0.2.18, PSID 0x34.
    assert_eq!(p.mapping.share.ipv4.to_string(), "192.0.2.18/32");
    assert_eq!(p.mapping.share.psid, Some(0x34));
    assert_eq!(p.mapping.share.port_set.count(), 240);
    assert_eq!(c.phase(), "bound");

    // T1: Renew to the same server with the prefix held (§18.2.4).
    assert_eq!(c.next_timer(), Some(t + s(3600.0)));
    let step = c.on_timer(t + s(3600.0));
    let ren = sent(&step);
    assert_eq!(ren.msg_type(), MessageType::Renew);
    assert_eq!(server_id_of(&ren), Some(hexb(SERVER)));
    assert_eq!(iapd_prefix(&ren), Some((1, "2001:db8:12:3400::/56".into())));
    // The Reply extends the lease.
    let t2 = t + s(3600.5);
    let step = c.on_packet(t2, &server(7, ren.xid(), SERVER, None, &IA));
    match &step.events[..] {
        [Event::Bound { lease, change }] => {
            assert_eq!(*change, Change::Extended);
            assert_eq!(lease.obtained, t2);
            assert_eq!(lease.expires_at(), Some(t2 + s(10800.0)));
        }
        e => panic!("{e:?}"),
    }

    // Next T1: Renew unanswered; retransmissions (REN_TIMEOUT 10 s ± 10 %) until T2.
    let t1 = t2 + s(3600.0);
    let first = sent(&c.on_timer(t1));
    let mut kinds = vec![first.msg_type()];
    let mut now = t1;
    let mut last_rebind = None;
    while now < t2 + s(10800.0) {
        let due = c.next_timer().unwrap();
        assert!(due > now, "timers move forward");
        now = due;
        let step = c.on_timer(now);
        if let Some(b) = &step.send {
            let m = Message::from_bytes(b).unwrap();
            if m.msg_type() == MessageType::Rebind && last_rebind.is_none() {
                // §18.2.5: at T2, Rebind, without Server ID.
                assert_eq!(now, t2 + s(5400.0));
                assert_eq!(server_id_of(&m), None);
                assert_eq!(elapsed(&m), 0);
                last_rebind = Some(now);
            }
            if m.msg_type() == MessageType::Renew {
                assert!(now < t2 + s(5400.0));
                // Elapsed Time counts from the first Renew (§21.9), capped at 0xffff.
                assert_eq!(
                    u128::from(elapsed(&m)),
                    ((now - t1).as_millis() / 10).min(0xffff)
                );
            }
            kinds.push(m.msg_type());
        }
        if let [Event::Lost { prefix, .. }, ..] = &step.events[..] {
            // The valid lifetime ends: Lost, and a Solicit at once.
            assert_eq!(now, t2 + s(10800.0));
            assert_eq!(prefix.prefix.to_string(), "2001:db8:12:3400::/56");
            assert_eq!(sent(&step).msg_type(), MessageType::Solicit);
            assert!(c.lease().is_none());
            break;
        }
    }
    assert!(last_rebind.is_some());
    let renews = kinds.iter().filter(|k| **k == MessageType::Renew).count();
    // 1800 s between T1 and T2 with RTs of ~10, 20, 40, ... 600: 8 or 9 Renews.
    assert!((7..=10).contains(&renews), "{renews} Renews");
    assert_eq!(c.phase(), "soliciting");
}

#[test]
fn advertise_selection_preference_and_255() {
    // Two Advertises within the first RT: the higher preference wins (§18.2.9).
    let mut c = client(3);
    let (sol, t0) = first_solicit(&mut c);
    c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(10), &IA));
    c.on_packet(t0, &server(2, sol.xid(), SERVER2, Some(20), &IA));
    let req = sent(&c.on_timer(c.next_timer().unwrap()));
    assert_eq!(server_id_of(&req), Some(hexb(SERVER2)));
    assert_eq!(iapd_prefix(&req), Some((1, "2001:db8:12:3400::/56".into())));

    // Preference 255: Request at once (§18.2.1).
    let mut c = client(4);
    let (sol, t0) = first_solicit(&mut c);
    let step = c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &IA));
    assert_eq!(sent(&step).msg_type(), MessageType::Request);

    // Nothing in the first RT: the first Advertise after it is taken at once.
    let mut c = client(5);
    let (sol, _) = first_solicit(&mut c);
    let due = c.next_timer().unwrap();
    let again = sent(&c.on_timer(due));
    assert_eq!(again.msg_type(), MessageType::Solicit);
    assert_eq!(again.xid(), sol.xid(), "a retransmission keeps its xid");
    assert!(elapsed(&again) >= 100);
    let step = c.on_packet(due, &server(2, sol.xid(), SERVER, None, &IA));
    assert_eq!(sent(&step).msg_type(), MessageType::Request);
}

#[test]
fn discards_are_counted_with_their_reason() {
    let mut c = client(6);
    let (sol, t0) = first_solicit(&mut c);
    // Another xid, a Reply while soliciting (no Rapid Commit asked), another client.
    c.on_packet(t0, &server(2, [0, 0, 0], SERVER, None, &IA));
    c.on_packet(t0, &server(7, sol.xid(), SERVER, None, &IA));
    let mut other = server(2, sol.xid(), SERVER, None, &IA);
    other[13] ^= 0xff; // a byte of the Client ID's MAC
    c.on_packet(t0, &other);
    c.on_packet(t0, &[2, 0]);
    // A Reconfigure: no Reconfigure Accept was sent, so it is discarded (§18.2.11).
    c.on_packet(t0, &hexb(&format!("0a 000000 0002 000a {SERVER}")));
    // NoPrefixAvail: ignored (§18.2.9), remembered for the give-up message.
    let none = Ia {
        status: Some(6),
        ..IA
    };
    assert_eq!(
        c.on_packet(t0, &server(2, sol.xid(), SERVER, None, &none)),
        Step::default()
    );
    let counts: Vec<(Discard, u64)> = c.discarded().collect();
    assert_eq!(
        counts,
        vec![
            (Discard::Malformed, 1),
            (Discard::Unexpected, 2),
            (Discard::WrongClient, 1),
            (Discard::NoPrefix, 1),
            (Discard::Reconfigure, 1)
        ]
    );
    let f = c.last_failure().unwrap();
    assert_eq!(f.class, FailureClass::NoPrefix);
    assert!(f.detail.contains("NoPrefixAvail"), "{}", f.detail);
    // Still soliciting: the next timer retransmits the Solicit.
    assert_eq!(
        sent(&c.on_timer(c.next_timer().unwrap())).msg_type(),
        MessageType::Solicit
    );
}

#[test]
fn request_failures_go_back_to_solicit() {
    // NoPrefixAvail in the Reply to Request.
    let mut c = client(7);
    let (sol, t0) = first_solicit(&mut c);
    let step = c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &IA));
    let req = sent(&step);
    let none = Ia {
        status: Some(6),
        ..IA
    };
    let step = c.on_packet(t0, &server(7, req.xid(), SERVER, None, &none));
    assert!(matches!(
        &step.events[..],
        [Event::Failed(Failure {
            class: FailureClass::NoPrefix,
            ..
        })]
    ));
    assert_eq!(sent(&step).msg_type(), MessageType::Solicit);

    // No Reply: REQ_MAX_RC = 10 Requests, then Solicit (§18.2.2).
    let mut c = client(8);
    let (sol, t0) = first_solicit(&mut c);
    c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &IA));
    let mut requests = 1;
    loop {
        let step = c.on_timer(c.next_timer().unwrap());
        let m = sent(&step);
        if m.msg_type() == MessageType::Solicit {
            assert!(matches!(
                &step.events[..],
                [Event::Failed(Failure {
                    class: FailureClass::NoServer,
                    ..
                })]
            ));
            break;
        }
        requests += 1;
    }
    assert_eq!(requests, 10);
}

#[test]
fn error_status_is_refused() {
    // A message-level UnspecFail (§18.2.10) in the Reply to Request: Refused, Solicit again.
    let mut c = client(13);
    let (sol, t0) = first_solicit(&mut c);
    let req = sent(&c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &IA)));
    let mut reply = server(7, req.xid(), SERVER, None, &IA);
    reply.extend(hexb("000d 0008 0001 6e6f7065 2121"));
    let step = c.on_packet(t0, &reply);
    match &step.events[..] {
        [Event::Failed(f)] => {
            assert_eq!(f.class, FailureClass::Refused);
            assert_eq!(f.detail, "Reply: UnspecFail (1): nope!!");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(sent(&step).msg_type(), MessageType::Solicit);
    assert_eq!(
        c.last_failure().map(|f| f.class),
        Some(FailureClass::Refused)
    );
    // UseMulticast: ignored, the Request is retransmitted on its timer.
    let req = sent(&c.on_packet(t0, &server(2, sent(&step).xid(), SERVER, Some(255), &IA)));
    let mut reply = server(7, req.xid(), SERVER, None, &IA);
    reply.extend(hexb("000d 0002 0005"));
    assert_eq!(c.on_packet(t0, &reply), Step::default());
    assert_eq!(c.phase(), "requesting");
}

#[test]
fn t1_t2_rules() {
    // §21.21: T1 > T2 (both non-zero): the IA_PD is discarded.
    let mut c = client(9);
    let (sol, t0) = first_solicit(&mut c);
    let bad = Ia {
        t1: 600,
        t2: 300,
        ..IA
    };
    c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &bad));
    assert_eq!(c.phase(), "soliciting");
    // T1 = T2 = 0: 0.5 and 0.8 × the preferred lifetime (§18.2.4).
    let zero = Ia { t1: 0, t2: 0, ..IA };
    let req = sent(&c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &zero)));
    let step = c.on_packet(t0, &server(7, req.xid(), SERVER, None, &zero));
    match &step.events[..] {
        [Event::Bound { lease, .. }] => assert_eq!((lease.t1, lease.t2), (3600, 5760)),
        e => panic!("{e:?}"),
    }
    // Infinite lifetimes and timers: nothing is ever due.
    let mut c = client(10);
    let (sol, t0) = first_solicit(&mut c);
    let inf = Ia {
        t1: INFINITY,
        t2: INFINITY,
        preferred: INFINITY,
        valid: INFINITY,
        status: None,
    };
    let req = sent(&c.on_packet(t0, &server(2, sol.xid(), SERVER, Some(255), &inf)));
    c.on_packet(t0, &server(7, req.xid(), SERVER, None, &inf));
    assert_eq!(c.phase(), "bound");
    assert_eq!(c.next_timer(), None);
}

#[test]
fn renew_no_binding_requests_and_withdrawal_is_lost() {
    let mut c = client(11);
    let (_, t) = bind(&mut c);
    let ren = sent(&c.on_timer(t + s(3600.0)));
    let nb = Ia {
        status: Some(3),
        ..IA
    };
    // §18.2.10.1: a Reply without the IA_PD is as if not received: still renewing.
    // Header 4, Client ID 14, Server ID 14 bytes; then the IA_PD (4 + 41), then option 94.
    let full = server(7, ren.xid(), SERVER, None, &IA);
    assert_eq!(&full[32..34], &[0, 25], "IA_PD at offset 32");
    let no_ia: Vec<u8> = [&full[..32], &full[32 + 45..]].concat();
    assert_eq!(c.on_packet(t + s(3600.0), &no_ia), Step::default());
    assert_eq!(c.phase(), "renewing");
    assert!(c.lease().is_some());
    // §18.2.10.1: NoBinding: Request the IA from that server.
    let req = sent(&c.on_packet(t + s(3600.0), &server(7, ren.xid(), SERVER, None, &nb)));
    assert_eq!(req.msg_type(), MessageType::Request);
    assert_eq!(server_id_of(&req), Some(hexb(SERVER)));
    // A Reply with valid lifetime 0: the prefix is withdrawn.
    let gone = Ia {
        preferred: 0,
        valid: 0,
        ..IA
    };
    let step = c.on_packet(t + s(3601.0), &server(7, req.xid(), SERVER, None, &gone));
    assert!(matches!(&step.events[0], Event::Lost { .. }), "{step:?}");
    assert!(c.lease().is_none());
    assert_eq!(sent(&step).msg_type(), MessageType::Solicit);
}

#[test]
fn a_changed_rule_is_changed() {
    let mut c = client(12);
    let (_, t) = bind(&mut c);
    let ren = sent(&c.on_timer(t + s(3600.0)));
    let mut reply = server(7, ren.xid(), SERVER, None, &IA);
    // Another BR address (last byte of option 94).
    let n = reply.len();
    reply[n - 1] = 2;
    match &c.on_packet(t + s(3600.0), &reply).events[..] {
        [Event::Bound { change, lease }] => {
            assert_eq!(*change, Change::Changed);
            let p = lease.provision(None, None, &[]).unwrap();
            assert_eq!(p.domain.br()[0].to_string(), "2001:db8:ffff::2");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn duids() {
    // RFC 8415 §11.4 and §11.2 layouts.
    assert_eq!(
        Duid::link_layer(MAC).to_hex(),
        "00:03:00:01:02:00:00:00:00:01"
    );
    // 2000-01-01 + 1 day.
    let llt = Duid::link_layer_time(MAC, 946_684_800 + 86_400);
    assert_eq!(llt.to_hex(), "00:01:00:01:00:01:51:80:02:00:00:00:00:01");
    assert_eq!(Duid::from_hex(&llt.to_hex()).unwrap(), llt);
    assert_eq!(Duid::from_bytes(vec![0, 1]), Err(DuidError::Length(2)));
    assert_eq!(Duid::from_bytes(vec![0; 131]), Err(DuidError::Length(131)));
}

proptest::proptest! {
    /// Seen from outside, with no server: the first Solicit within SOL_MAX_DELAY, then
    /// retransmissions of the same message (same xid, Elapsed Time counting from the
    /// first) whose gaps follow §15 — the first in (1.0, 1.1] s (§18.2.1), each next 1.9-2.1
    /// × the previous or, once past SOL_MAX_RT, within 3600 s ± 10 %.
    #[test]
    fn solicit_timing_as_sent(seed in proptest::prelude::any::<u64>()) {
        let mut c = client(seed);
        c.start(Duration::ZERO);
        let mut sends: Vec<(Time, Message)> = Vec::new();
        while sends.len() < 16 {
            let due = c.next_timer().unwrap();
            let step = c.on_timer(due);
            if step.send.is_some() {
                sends.push((due, sent(&step)));
            }
        }
        proptest::prop_assert!(sends[0].0 <= s(1.0));
        let t0 = sends[0].0;
        let mut prev: Option<f64> = None;
        for w in sends.windows(2) {
            let ((ta, a), (tb, b)) = (&w[0], &w[1]);
            proptest::prop_assert_eq!(a.xid(), b.xid());
            proptest::prop_assert_eq!(b.msg_type(), MessageType::Solicit);
            proptest::prop_assert_eq!(
                u128::from(elapsed(b)),
                ((*tb - t0).as_millis() / 10).min(0xffff)
            );
            let gap = (*tb - *ta).as_secs_f64();
            match prev {
                None => proptest::prop_assert!(gap > 1.0 && gap <= 1.1 + 1e-9, "{gap}"),
                Some(p) => proptest::prop_assert!(
                    (gap >= 1.9 * p - 1e-6 && gap <= 2.1 * p + 1e-6)
                        || (3240.0 - 1e-6..=3960.0 + 1e-6).contains(&gap),
                    "{p} -> {gap}"
                ),
            }
            prev = Some(gap);
        }
    }
}

fn stateless(seed: u64) -> Client<rand::rngs::StdRng> {
    Client::stateless(
        Config {
            duid: Duid::link_layer(MAC),
            iaid: 1,
            hint: None,
        },
        rand::rngs::StdRng::seed_from_u64(seed),
    )
}

/// A Reply to an Information-request by hand: Client ID, Server ID, optionally an
/// Information Refresh Time (§21.23), INF_MAX_RT (§21.25) and a Status Code, and option
/// 94 with the lab's rule whose EA length is `ea_len` (16: RFC 7597 example 1).
fn info_reply(
    xid: [u8; 3],
    refresh: Option<u32>,
    inf_max_rt: Option<u32>,
    status: Option<u16>,
    ea_len: u8,
) -> Vec<u8> {
    let mut h = format!(
        "07 {:02x}{:02x}{:02x} 0001 000a 0003 0001 020000000001 0002 000a {SERVER}",
        xid[0], xid[1], xid[2]
    );
    if let Some(r) = refresh {
        h += &format!(" 0020 0004 {r:08x}");
    }
    if let Some(r) = inf_max_rt {
        h += &format!(" 0053 0004 {r:08x}");
    }
    if let Some(c) = status {
        h += &format!(" 000d 0002 {c:04x}");
    }
    h += &format!(
        " 005e 002d 0059 0015 00 {ea_len:02x} 18 c0000200 28 20010db800 005d 0004 04 08 0000
           005a 0010 20010db8ffff00000000000000000001"
    );
    hexb(&h)
}

fn oro(m: &Message) -> Vec<OptionCode> {
    match m.opts().get(OptionCode::ORO) {
        Some(DhcpOption::ORO(o)) => o.opts.clone(),
        o => panic!("{o:?}"),
    }
}

/// RFC 8415 §18.2.6 and §21.23 on an RA-only line: Information-request (no IA, ORO with
/// 94, the refresh time and INF_MAX_RT) after at most INF_MAX_DELAY; the Reply's options
/// are held and refreshed at the server's refresh time; a new rule is a change.
#[test]
fn stateless_asks_for_option_94_and_refreshes() {
    let mut c = stateless(11);
    assert!(c.is_stateless());
    c.start(s(0.0));
    assert_eq!(c.phase(), "informing");
    let t0 = c.next_timer().unwrap();
    assert!(t0 <= s(1.0), "{t0:?}");
    let m = sent(&c.on_timer(t0));
    assert_eq!(m.msg_type(), MessageType::InformationRequest);
    assert_eq!(iapd_prefix(&m), None, "no IA_PD");
    assert_eq!(server_id_of(&m), None);
    assert_eq!(elapsed(&m), 0);
    let asked = oro(&m);
    for code in [
        OptionCode::S46ContMape,
        OptionCode::InformationRefreshTime,
        OptionCode::InfMaxRt,
    ] {
        assert!(asked.contains(&code), "{code:?} in {asked:?}");
    }
    assert!(!asked.contains(&OptionCode::SolMaxRt));
    // No Reply: retransmitted after INF_TIMEOUT ± 10 %, the same xid.
    let due = c.next_timer().unwrap();
    assert!(due >= t0 + s(0.9) && due <= t0 + s(1.1), "{due:?}");
    let again = sent(&c.on_timer(due));
    assert_eq!((again.msg_type(), again.xid()), (m.msg_type(), m.xid()));
    assert!(elapsed(&again) >= 90);
    // A Reply for another transaction is not ours.
    let t1 = due + s(0.2);
    assert_eq!(
        c.on_packet(t1, &info_reply([9, 9, 9], Some(3600), None, None, 16)),
        Step::default()
    );
    let step = c.on_packet(t1, &info_reply(m.xid(), Some(3600), None, None, 16));
    let info = match &step.events[..] {
        [Event::Informed { info, change }] => {
            assert_eq!(*change, Change::New);
            info.clone()
        }
        e => panic!("{e:?}"),
    };
    assert_eq!(c.phase(), "informed");
    assert_eq!((info.refresh, info.obtained), (3600, t1));
    assert_eq!(info.server_id, hexb(SERVER));
    assert_eq!(c.information(), Some(&info));
    assert!(c.lease().is_none());
    // The End-user prefix is the WAN's /64: RFC 7597 example 1's rule gives 192.0.2.18
    // PSID 0x34 for 2001:db8:12:3400::/56, so its /64 gives the same.
    let p = info
        .provision(&"2001:db8:12:3400::/64".parse().unwrap(), None, &[])
        .unwrap();
    assert_eq!(p.mapping.share.ipv4.to_string(), "192.0.2.18/32");
    assert_eq!(p.mapping.share.psid, Some(0x34));
    // §21.23: at the refresh time, a new Information-request (a new transaction).
    assert_eq!(c.next_timer(), Some(t1 + s(3600.0)));
    assert_eq!(c.on_timer(t1 + s(3599.0)), Step::default());
    let r = sent(&c.on_timer(t1 + s(3600.0)));
    assert_eq!(r.msg_type(), MessageType::InformationRequest);
    assert_ne!(r.xid(), m.xid());
    // The same options: extended; another rule: changed.
    let t2 = t1 + s(3600.1);
    let step = c.on_packet(t2, &info_reply(r.xid(), Some(3600), None, None, 16));
    assert!(
        matches!(
            &step.events[..],
            [Event::Informed {
                change: Change::Extended,
                ..
            }]
        ),
        "{step:?}"
    );
    let r = sent(&c.on_timer(c.next_timer().unwrap()));
    let step = c.on_packet(t2 + s(3700.0), &info_reply(r.xid(), None, None, None, 12));
    match &step.events[..] {
        [Event::Informed { info, change }] => {
            assert_eq!(*change, Change::Changed);
            // No Information Refresh Time: IRT_DEFAULT.
            assert_eq!(info.refresh, 86_400);
        }
        e => panic!("{e:?}"),
    }
}

/// §21.23: a refresh time under IRT_MINIMUM is raised to it, infinity is never; an error
/// status is a failure and the retransmissions go on; §21.25: INF_MAX_RT caps them.
#[test]
fn stateless_refresh_floor_errors_and_inf_max_rt() {
    let mut c = stateless(12);
    c.start(s(0.0));
    let t0 = c.next_timer().unwrap();
    let m = sent(&c.on_timer(t0));
    // UnspecFail (1) with INF_MAX_RT 60: failed, still informing, RTs now within 60 s ± 10 %.
    let step = c.on_packet(t0, &info_reply(m.xid(), None, Some(60), Some(1), 16));
    match &step.events[..] {
        [Event::Failed(f)] => assert_eq!(f.class, FailureClass::Refused),
        e => panic!("{e:?}"),
    }
    assert_eq!(c.phase(), "informing");
    let mut t = t0;
    for _ in 0..12 {
        let due = c.next_timer().unwrap();
        assert!(due - t <= s(66.0), "{:?}", due - t);
        t = due;
        assert_eq!(sent(&c.on_timer(t)).xid(), m.xid());
    }
    assert!(c.next_timer().unwrap() - t >= s(54.0));
    let step = c.on_packet(t, &info_reply(m.xid(), Some(10), None, None, 16));
    match &step.events[..] {
        [Event::Informed { info, .. }] => assert_eq!(info.refresh, 600),
        e => panic!("{e:?}"),
    }
    assert_eq!(c.next_timer(), Some(t + s(600.0)));
    let r = sent(&c.on_timer(t + s(600.0)));
    c.on_packet(
        t + s(601.0),
        &info_reply(r.xid(), Some(INFINITY), None, None, 16),
    );
    assert_eq!(
        c.next_timer(),
        None,
        "an infinite refresh time: never again"
    );
    // The link came back (§18.2.12): ask at once.
    let again = sent(&c.rebind_now(t + s(700.0)));
    assert_eq!(again.msg_type(), MessageType::InformationRequest);
}

/// §21.24 with §18.2.9: a server that has no prefix says how long to wait with SOL_MAX_RT
/// in its (ignored) Advertise; the Solicits under way follow it. An out-of-range value is
/// ignored.
#[test]
fn sol_max_rt_from_an_ignored_advertise_caps_the_solicits() {
    let mut c = client(13);
    let (sol, t0) = first_solicit(&mut c);
    assert!(
        oro(&sol).contains(&OptionCode::SolMaxRt),
        "§21.24: the ORO asks for it"
    );
    let none = Ia {
        status: Some(6),
        ..IA
    };
    let mut adv = server(2, sol.xid(), SERVER, None, &none);
    adv.extend(hexb("0052 0004 00000014")); // 20 s: out of range
    c.on_packet(t0, &adv);
    assert_eq!(c.sol_max_rt(), s(3600.0));
    let mut adv = server(2, sol.xid(), SERVER, None, &none);
    adv.extend(hexb("0052 0004 0000003c")); // 60 s
    c.on_packet(t0, &adv);
    assert_eq!(c.sol_max_rt(), s(60.0));
    let mut t = t0;
    for _ in 0..15 {
        let due = c.next_timer().unwrap();
        assert!(due - t <= s(66.0), "{:?}", due - t);
        t = due;
        assert_eq!(sent(&c.on_timer(t)).msg_type(), MessageType::Solicit);
    }
}
