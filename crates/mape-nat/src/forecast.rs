//! The exhaustion forecast: how long until a protocol's port budget runs out at the current
//! rate, from the engine's own records, before any threshold is crossed (issue #17 §1).
//!
//! Two questions, both answered from state this module owns:
//! - **Is use growing?** Ports in use are sampled every [`SAMPLE_MS`] into a ring; the
//!   growth rate is the least-squares slope over the last [`SHORT_SAMPLES`] samples (fast
//!   ramps are seen within a second), counted only while the slope over the whole ring
//!   ([`LONG_SAMPLES`], 30 s) is positive too (a single burst is not a trend).
//! - **Will it keep growing until the budget is gone?** Little's law with the timers folded
//!   in: a timer class `c` whose sessions stay until expiry holds, in steady state,
//!   `(entries_c − early exits_c) × timeout_c` sessions, where entries and early exits
//!   (moves to another class, recycling) are smoothed rates ([`RATE_TAU_MS`]). Only the
//!   classes of idle state count (unanswered, opening and closing TCP, one-shot answers,
//!   DNS, ICMP): an established connection or a stream leaves when it ends, not when a
//!   timer says, so its timer says nothing of where use levels off. When the sum stays
//!   below the budget (with a margin, [`CEILING_MARGIN`]), use will level off first (an
//!   unanswered storm under a 30 s timer, a DNS burst whose ports close 2 s after the
//!   answer): no forecast, no false alarm.
//!
//! When both say yes, the forecast is the free ports divided by the growth rate.

use serde::{Deserialize, Serialize};

use crate::types::{Protocol, Timestamp};

/// Sampling period of ports in use.
pub(crate) const SAMPLE_MS: u64 = 250;
/// Samples of the growth rate's slope (5 s).
const SHORT_SAMPLES: usize = 20;
/// Samples kept (30 s): the trend must hold over all of them.
const LONG_SAMPLES: usize = 120;
/// Time constant of the smoothed class entry and exit rates.
const RATE_TAU_MS: f64 = 60_000.0;
/// A warning needs the forecast under the horizon in this many samples in a row.
const PERSIST_SAMPLES: u32 = 2;
/// An episode ends when no forecast stood for this many samples (60 s).
const QUIET_SAMPLES: u32 = 240;
/// The ceiling must exceed the budget by this factor: the smoothed rates of ordinary
/// traffic wander by tens of percent (an RTX-like household levels off at 87 % of the
/// budget and would cross a ceiling of 1.25 budgets), a storm's ceiling is several budgets
/// (the seed under a 900 s timer: 3.75).
const CEILING_MARGIN: f64 = 2.0;

/// How long until a protocol's budget runs out at the current rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Protocol.
    pub proto: Protocol,
    /// Seconds until no port is left at the current rate.
    pub seconds: f64,
    /// Net growth of ports in use, per second.
    pub growth_per_s: f64,
    /// Where use would level off if the current rates held (Little's law), in ports.
    pub ceiling: f64,
    /// The LAN host opening new ports of this protocol fastest, if any.
    pub driver: Option<std::net::Ipv4Addr>,
}

/// A rate smoothed exponentially over time (events per millisecond).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rate {
    value: f64,
    at_ms: u64,
}

impl Rate {
    pub(crate) fn decayed(&self, now_ms: u64) -> f64 {
        let dt = now_ms.saturating_sub(self.at_ms) as f64;
        self.value * (-dt / RATE_TAU_MS).exp()
    }

    pub(crate) fn add(&mut self, now_ms: u64) {
        self.value = self.decayed(now_ms) + 1.0 / RATE_TAU_MS;
        self.at_ms = self.at_ms.max(now_ms);
    }
}

/// The forecaster's state for the engine's `classes` timer classes.
#[derive(Debug, Clone)]
pub(crate) struct Forecaster {
    entries: Vec<Rate>,
    exits: Vec<Rate>,
    /// Ports in use per protocol, one per sample, oldest first once full.
    samples: [Vec<u32>; 3],
    next_sample_ms: u64,
    streak: [u32; 3],
    quiet: [u32; 3],
    warned: [bool; 3],
}

/// Least-squares slope of evenly spaced samples, per sample.
fn slope(ys: &[u32]) -> f64 {
    let n = ys.len();
    if n < 2 {
        return 0.0;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = ys.iter().map(|&y| f64::from(y)).sum::<f64>() / nf;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (f64::from(y) - mean_y);
        den += dx * dx;
    }
    num / den
}

impl Forecaster {
    pub(crate) fn new(classes: usize) -> Self {
        Self {
            entries: vec![Rate::default(); classes],
            exits: vec![Rate::default(); classes],
            samples: std::array::from_fn(|_| Vec::with_capacity(LONG_SAMPLES)),
            next_sample_ms: 0,
            streak: [0; 3],
            quiet: [0; 3],
            warned: [false; 3],
        }
    }

    /// A session entered timer class `class`.
    pub(crate) fn entered(&mut self, class: u8, now: Timestamp) {
        if let Some(r) = self.entries.get_mut(usize::from(class)) {
            r.add(now.millis());
        }
    }

    /// A session left timer class `class` before its timer ran out (moved to another
    /// class, or recycled).
    pub(crate) fn left_early(&mut self, class: u8, now: Timestamp) {
        if let Some(r) = self.exits.get_mut(usize::from(class)) {
            r.add(now.millis());
        }
    }

    /// Whether a sample is due at `now`.
    #[inline]
    pub(crate) fn due(&self, now: Timestamp) -> bool {
        now.millis() >= self.next_sample_ms
    }

    /// Takes the due samples (a silence repeats the last value, at most one ring's worth).
    pub(crate) fn sample(&mut self, now: Timestamp, in_use: [u32; 3]) {
        let now_ms = now.millis();
        let missed =
            (now_ms.saturating_sub(self.next_sample_ms) / SAMPLE_MS).min(LONG_SAMPLES as u64);
        for (p, ring) in self.samples.iter_mut().enumerate() {
            for _ in 0..=missed {
                if ring.len() == LONG_SAMPLES {
                    ring.remove(0);
                }
                ring.push(in_use[p]);
            }
        }
        self.next_sample_ms = (now_ms - now_ms % SAMPLE_MS).saturating_add(SAMPLE_MS);
    }

    /// The forecast for `proto` now, given the budget of usable ports and the timeout of
    /// each class of the protocol (`(class, timeout_ms)`), or `None` while use is flat,
    /// falling, or bound to level off below the budget.
    pub(crate) fn forecast(
        &self,
        proto: Protocol,
        now: Timestamp,
        usable: u32,
        classes: &[(u8, u64)],
    ) -> Option<Forecast> {
        let ring = &self.samples[proto.index()];
        if ring.len() < SHORT_SAMPLES {
            return None;
        }
        let per_s = 1000.0 / SAMPLE_MS as f64;
        let long = slope(ring) * per_s;
        let short = slope(&ring[ring.len() - SHORT_SAMPLES..]) * per_s;
        if long <= 0.0 || short <= 0.0 {
            return None;
        }
        let now_ms = now.millis();
        let ceiling: f64 = classes
            .iter()
            .map(|&(c, timeout_ms)| {
                let c = usize::from(c);
                let stay = self.entries[c].decayed(now_ms) - self.exits[c].decayed(now_ms);
                stay.max(0.0) * timeout_ms as f64
            })
            .sum();
        if ceiling < CEILING_MARGIN * f64::from(usable) {
            return None;
        }
        let in_use = ring.last().copied().unwrap_or(0);
        let free = f64::from(usable.saturating_sub(in_use));
        Some(Forecast {
            proto,
            seconds: free / short,
            growth_per_s: short,
            ceiling,
            driver: None,
        })
    }

    /// Notes the forecast of `proto` for this sample; returns it when it is the first in
    /// its episode to fall under `horizon_s` (the moment to warn).
    pub(crate) fn note(
        &mut self,
        proto: Protocol,
        f: Option<Forecast>,
        horizon_s: u64,
    ) -> Option<Forecast> {
        let p = proto.index();
        match f {
            Some(f) if f.seconds < horizon_s as f64 => {
                self.quiet[p] = 0;
                self.streak[p] += 1;
                if self.streak[p] >= PERSIST_SAMPLES && !self.warned[p] {
                    self.warned[p] = true;
                    return Some(f);
                }
            }
            _ => {
                self.streak[p] = 0;
                self.quiet[p] = self.quiet[p].saturating_add(1);
                if self.quiet[p] >= QUIET_SAMPLES {
                    self.warned[p] = false;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_its_step() {
        let ys: Vec<u32> = (0..20).map(|i| 3 * i + 7).collect();
        assert!((slope(&ys) - 3.0).abs() < 1e-9);
        assert!(slope(&[5, 5, 5, 5]).abs() < 1e-9);
        assert_eq!(slope(&[4]), 0.0);
    }

    #[test]
    fn rate_converges_to_the_event_rate() {
        // One event a second for ten time constants: the smoothed rate is 1/s.
        let mut r = Rate::default();
        for s in 0..600u64 {
            r.add(s * 1000);
        }
        let per_s = r.decayed(599_000) * 1000.0;
        assert!((per_s - 1.0).abs() < 0.02, "{per_s}");
    }

    /// A linear ramp of one port a second with sessions that stay 900 s: the forecast is
    /// the free ports over the slope (hand computed: at 100 ports, 140 left, 1/s → 140 s).
    #[test]
    fn a_steady_ramp_toward_a_high_ceiling_is_forecast() {
        let mut f = Forecaster::new(1);
        for i in 0..=400u64 {
            let now = Timestamp::from_millis(i * SAMPLE_MS);
            if i % 4 == 0 {
                f.entered(0, now);
            }
            f.sample(now, [(i / 4) as u32, 0, 0]);
        }
        let now = Timestamp::from_millis(400 * SAMPLE_MS);
        let got = f
            .forecast(Protocol::Tcp, now, 240, &[(0, 900_000)])
            .unwrap();
        // The samples are a staircase (one step every fourth sample): the fitted slope is
        // within 1 % of the ramp's.
        assert!(
            (got.growth_per_s - 1.0).abs() < 0.01 * 1.0 + 0.005,
            "{got:?}"
        );
        assert!((got.seconds - 140.0).abs() < 2.0, "{got:?}");
        // The same ramp under a 30 s timer levels off near 30 ports: no forecast.
        assert_eq!(f.forecast(Protocol::Tcp, now, 240, &[(0, 30_000)]), None);
    }

    #[test]
    fn flat_or_falling_use_has_no_forecast_and_warnings_come_once_per_episode() {
        let mut f = Forecaster::new(1);
        for i in 0..200u64 {
            f.sample(Timestamp::from_millis(i * SAMPLE_MS), [100, 0, 0]);
        }
        assert_eq!(
            f.forecast(
                Protocol::Tcp,
                Timestamp::from_millis(50_000),
                240,
                &[(0, 1)]
            ),
            None
        );
        let w = Forecast {
            proto: Protocol::Tcp,
            seconds: 10.0,
            growth_per_s: 1.0,
            ceiling: 1e9,
            driver: None,
        };
        assert_eq!(
            f.note(Protocol::Tcp, Some(w), 600),
            None,
            "one sample is no trend"
        );
        assert_eq!(f.note(Protocol::Tcp, Some(w), 600), Some(w));
        assert_eq!(
            f.note(Protocol::Tcp, Some(w), 600),
            None,
            "once per episode"
        );
        for _ in 0..QUIET_SAMPLES {
            f.note(Protocol::Tcp, None, 600);
        }
        f.note(Protocol::Tcp, Some(w), 600);
        assert_eq!(
            f.note(Protocol::Tcp, Some(w), 600),
            Some(w),
            "a new episode"
        );
        let far = Forecast {
            seconds: 601.0,
            ..w
        };
        let mut g = Forecaster::new(1);
        g.note(Protocol::Tcp, Some(far), 600);
        assert_eq!(
            g.note(Protocol::Tcp, Some(far), 600),
            None,
            "beyond the horizon"
        );
    }
}
