//! Expiry and foresight: ending sessions whose timer ran out (bounded work per packet,
//! everything on `expire`), the deadline the daemon sleeps until, and the exhaustion
//! forecast with the host that drives it.

use std::net::Ipv4Addr;

use crate::forecast::Forecast;
use crate::stats::EventKind;
use crate::timers::{
    class_proto, CLASSES, CLASS_ICMP, CLASS_TCP_ESTABLISHED, CLASS_TCP_TIME_WAIT,
    CLASS_UDP_ANSWERED, CLASS_UDP_ANSWERED_ONCE, CLASS_UDP_DNS, EXPIRE_TICK_WORK,
};
use crate::types::{Protocol, Timestamp};

use super::Nat;

impl Nat {
    /// The timer work due every `timers::EXPIRE_EVERY_MS`, bounded (amortized O(1) per packet).
    #[cold]
    #[inline(never)]
    pub(super) fn expire_tick(&mut self, now: Timestamp) {
        self.expire_bounded(now, EXPIRE_TICK_WORK);
        self.culprit_tick(now);
        self.timers.ticked(now);
        if self.forecaster.due(now) {
            self.forecast_tick(now);
        }
    }

    /// Ends every session whose timer ran out by `now`. Amortized O(1) per session: each
    /// class is a FIFO of equal timeouts; a session refreshed since it was queued is moved to
    /// the tail when it reaches the head (lazy re-queueing), so the packet path only writes
    /// one timestamp.
    pub fn expire(&mut self, now: Timestamp) {
        self.expire_bounded(now, usize::MAX);
        self.culprit_tick(now);
        if self.forecaster.due(now) {
            self.forecast_tick(now);
        }
    }

    /// Samples ports in use for the forecast and warns, once per episode, when a
    /// protocol's budget would run out within the horizon (`forecast` module).
    #[cold]
    #[inline(never)]
    fn forecast_tick(&mut self, now: Timestamp) {
        let in_use = Protocol::ALL.map(|p| self.ports_in_use(p));
        self.forecaster.sample(now, in_use);
        for proto in Protocol::ALL {
            let f = self.forecast(proto, now);
            let horizon = self.cfg.forecast_horizon_s;
            if let Some(w) = self.forecaster.note(proto, f, horizon) {
                self.ledger.push_event(
                    now,
                    EventKind::ExhaustionForecast {
                        proto,
                        seconds: w.seconds.round() as u64,
                        driver: self.driver(proto, now),
                    },
                );
            }
        }
    }

    /// The exhaustion forecast of `proto` now, if its use grows toward the budget.
    pub fn forecast(&self, proto: Protocol, now: Timestamp) -> Option<Forecast> {
        // The classes of idle state, whose sessions leave when their timer runs out, less
        // those the policy gives to a new flow when the budget is out (closing TCP for
        // anyone; one-shot answers for their own host, which its cap bounds): those
        // cannot refuse anyone.
        let recycle_idle = self.cfg.quota.is_some_and(|q| q.recycle_idle);
        let mut classes = [(0u8, 0u64); CLASSES];
        let mut n = 0;
        for (c, timeout) in (0..CLASSES as u8)
            .filter(|&c| class_proto(c) == proto)
            .filter(|&c| c != CLASS_TCP_ESTABLISHED && c != CLASS_UDP_ANSWERED)
            .filter(|&c| !(self.cfg.reclaim_time_wait && c == CLASS_TCP_TIME_WAIT))
            .filter(|&c| {
                !(recycle_idle && matches!(c, CLASS_UDP_ANSWERED_ONCE | CLASS_UDP_DNS | CLASS_ICMP))
            })
            .map(|c| (c, self.timers.timeout_ms(c)))
        {
            // No allocation: this runs on the packet path every sample.
            classes[n] = (c, timeout);
            n += 1;
        }
        let usable = self.budget - self.pools[proto.index()].reserved;
        self.forecaster
            .forecast(proto, now, usable, &classes[..n])
            .map(|f| Forecast {
                driver: self.driver(proto, now),
                ..f
            })
    }

    /// The LAN host opening new ports of `proto` fastest lately.
    fn driver(&self, proto: Protocol, now: Timestamp) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .map(|h| (h.new_ports[proto.index()].decayed(now.millis()), h.addr))
            .filter(|&(r, _)| r > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, a)| a)
    }

    /// Ends sessions whose timer ran out by `now`, looking at `work` sessions at most.
    pub(super) fn expire_bounded(&mut self, now: Timestamp, mut work: usize) {
        let all = work == usize::MAX;
        for class in 0..CLASSES as u8 {
            while let Some(s) =
                self.timers
                    .pop_due(&mut self.sessions, class, now.millis(), &mut work)
            {
                self.remove_session(s, now);
            }
        }
        if self.leases.due(now) {
            self.expire_leases(now);
        }
        self.expire_hosts(now, all);
    }

    /// The earliest time a session may expire (for the daemon's timer), if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let sessions = self.timers.next_deadline(&self.sessions);
        match (sessions, self.leases.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
