//! The exhaustion forecast (issue #17 §1): a warning before any threshold when use grows
//! toward the budget, none while it is flat, falling or bound to level off.

use std::net::Ipv4Addr;

use mape_nat::*;
use mape_rules::PortSet;

const EXT: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);

fn nat(cfg: NatConfig) -> Nat {
    Nat::new(cfg, EXT, PortSet::new(161, 8, 4).unwrap()).unwrap()
}

fn udp(src: Endpoint, dst: Endpoint) -> OutboundPacket {
    OutboundPacket {
        proto: Protocol::Udp,
        src,
        dst,
        flags: TcpFlags::NONE,
        seq: 0,
        ack: 0,
    }
}

/// The seed's pattern, unanswered UDP from a new source port, `per_s` flows a second for
/// `secs`, with the engine's clock ticking every 100 ms as the daemon's does.
fn storm(n: &mut Nat, from_s: u64, secs: u64, per_s: u64) -> Vec<Event> {
    let host = Ipv4Addr::new(192, 168, 1, 23);
    let dst = Endpoint::new(Ipv4Addr::new(45, 76, 1, 1), 59870);
    let mut events = vec![];
    let mut port = 20000u16;
    for tick in from_s * 10..(from_s + secs) * 10 {
        let now = Timestamp::from_millis(tick * 100);
        for _ in 0..per_s.div_ceil(10) {
            if tick % 10 < per_s.min(10) || per_s >= 10 {
                port = port.wrapping_add(1).max(1024);
                let _ = n.outbound(now, &udp(Endpoint::new(host, port), dst));
            }
        }
        n.expire(now);
        events.extend(n.drain_events());
    }
    events
}

fn idle(n: &mut Nat, from_s: u64, secs: u64) -> Vec<Event> {
    let mut events = vec![];
    for tick in from_s * 10..(from_s + secs) * 10 {
        n.expire(Timestamp::from_millis(tick * 100));
        events.extend(n.drain_events());
    }
    events
}

#[test]
fn the_seed_storm_under_a_900_s_timer_is_forecast_before_80_percent() {
    let mut n = nat(NatConfig::rtx830_like());
    let mut events = idle(&mut n, 0, 40);
    events.extend(storm(&mut n, 40, 300, 1));
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| {
                matches!(
                    (&e.kind, kind),
                    (EventKind::ExhaustionForecast { .. }, "forecast")
                        | (EventKind::Budget80 { .. }, "80")
                        | (EventKind::BudgetExhausted { .. }, "exhausted")
                )
            })
            .map(|e| e.at)
    };
    let warned = at("forecast").expect("a forecast");
    let b80 = at("80").expect("80 % crossed");
    let exhausted = at("exhausted").expect("exhausted");
    assert!(
        warned < b80 && b80 < exhausted,
        "{warned:?} {b80:?} {exhausted:?}"
    );
    // Hand computed: 1 port/s from 0 at t = 40 s, 240 usable → exhausted near t = 280 s;
    // the warning comes within a few seconds of the storm's start, minutes ahead.
    assert!(
        exhausted.since(warned) > 120_000,
        "lead {} ms",
        exhausted.since(warned)
    );
    let Some(Event {
        kind: EventKind::ExhaustionForecast { proto, driver, .. },
        ..
    }) = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::ExhaustionForecast { .. }))
    else {
        unreachable!()
    };
    assert_eq!(*proto, Protocol::Udp);
    assert_eq!(*driver, Some(Ipv4Addr::new(192, 168, 1, 23)));
    let snap = n.snapshot(Timestamp::from_secs(339));
    assert!(
        snap.forecasts.is_empty(),
        "no forecast once nothing is left to grow into"
    );
}

#[test]
fn the_same_storm_under_a_30_s_timer_levels_off_and_is_not_forecast() {
    // linux-like: the storm's flows expire after 30 s: about 30 ports, far from 240.
    let mut n = nat(NatConfig::linux_like());
    let mut events = idle(&mut n, 0, 40);
    events.extend(storm(&mut n, 40, 300, 1));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExhaustionForecast { .. })),
        "{events:?}"
    );
    assert!(n.snapshot(Timestamp::from_secs(340)).forecasts.is_empty());
}

#[test]
fn a_fast_storm_is_forecast_in_the_snapshot_while_it_grows() {
    let mut n = nat(NatConfig::rtx830_like());
    idle(&mut n, 0, 40);
    storm(&mut n, 40, 2, 20);
    let snap = n.snapshot(Timestamp::from_secs(42));
    let f = snap.forecasts.first().expect("a forecast while it grows");
    assert_eq!(f.proto, Protocol::Udp);
    assert!(f.seconds < 60.0 && f.growth_per_s > 5.0, "{f:?}");
    assert_eq!(f.driver, Some(Ipv4Addr::new(192, 168, 1, 23)));
}
