//! RFC 8415 §15 retransmission: the RT sequence from IRT and MRT randomised by ±0.1, and
//! the MRC and MRD limits; the parameters of §7.6 per message type.

use std::time::Duration;

use rand::Rng;

use crate::machine::Time;

/// One message type's parameters (RFC 8415 §15); zero MRT, MRC or MRD means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Initial retransmission time.
    pub irt: Duration,
    /// Maximum retransmission time.
    pub mrt: Duration,
    /// Maximum retransmission count (transmissions).
    pub mrc: u32,
    /// Maximum retransmission duration.
    pub mrd: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// SOL_TIMEOUT 1 s, SOL_MAX_RT 3600 s, no MRC, no MRD (§7.6, §18.2.1).
pub const SOLICIT: Params = Params {
    irt: secs(1),
    mrt: secs(3600),
    mrc: 0,
    mrd: Duration::ZERO,
};
/// REQ_TIMEOUT 1 s, REQ_MAX_RT 30 s, REQ_MAX_RC 10 (§7.6, §18.2.2).
pub const REQUEST: Params = Params {
    irt: secs(1),
    mrt: secs(30),
    mrc: 10,
    mrd: Duration::ZERO,
};
/// REN_TIMEOUT 10 s, REN_MAX_RT 600 s; MRD is the time left until T2 (§18.2.4).
pub const RENEW: Params = Params {
    irt: secs(10),
    mrt: secs(600),
    mrc: 0,
    mrd: Duration::ZERO,
};
/// REB_TIMEOUT 10 s, REB_MAX_RT 600 s; MRD is the time left until the valid lifetime
/// ends (§18.2.5).
pub const REBIND: Params = Params {
    irt: secs(10),
    mrt: secs(600),
    mrc: 0,
    mrd: Duration::ZERO,
};
/// SOL_MAX_DELAY: the first Solicit waits a random time up to this (§7.6, §18.2.1).
pub const SOL_MAX_DELAY: Duration = secs(1);
/// INF_TIMEOUT 1 s, INF_MAX_RT 3600 s, no MRC, no MRD (§7.6, §18.2.6).
pub const INFORMATION_REQUEST: Params = Params {
    irt: secs(1),
    mrt: secs(3600),
    mrc: 0,
    mrd: Duration::ZERO,
};
/// INF_MAX_DELAY: the first Information-request waits a random time up to this (§7.6,
/// §18.2.6).
pub const INF_MAX_DELAY: Duration = secs(1);
/// IRT_DEFAULT: the refresh time when the Reply carries no Information Refresh Time
/// option (§7.6, §21.23).
pub const IRT_DEFAULT: u32 = 86_400;
/// IRT_MINIMUM: a shorter Information Refresh Time is raised to this (§7.6, §21.23).
pub const IRT_MINIMUM: u32 = 600;

/// A SOL_MAX_RT or INF_MAX_RT option's value as the new MRT: only 60..=86400 s is valid;
/// the client ignores any other (§21.24, §21.25).
pub fn max_rt_option(secs_value: u32) -> Option<Duration> {
    (60..=86_400)
        .contains(&secs_value)
        .then(|| secs(u64::from(secs_value)))
}

/// RAND, uniform in [-0.1, 0.1]; strictly positive for the first Solicit RT (§18.2.1).
fn rand_factor<R: Rng>(rng: &mut R, positive: bool) -> f64 {
    if positive {
        // (0, 0.1]: 1 - [0, 1) is in (0, 1].
        0.1 * (1.0 - rng.random::<f64>())
    } else {
        rng.random_range(-0.1..=0.1)
    }
}

/// An exchange's transmissions: when the next one is due and whether it may happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Retransmit {
    params: Params,
    /// First transmission.
    started: Time,
    /// Last transmission.
    sent: Time,
    /// Transmissions so far.
    count: u32,
    /// The current RT.
    rt: Duration,
}

impl Retransmit {
    /// The first transmission at `now` (§15: RT = IRT + RAND*IRT). `first_solicit`: RAND
    /// strictly above 0, so that Advertises are collected for more than IRT (§18.2.1).
    pub fn start<R: Rng>(params: Params, now: Time, rng: &mut R, first_solicit: bool) -> Self {
        let rt = params.irt.mul_f64(1.0 + rand_factor(rng, first_solicit));
        Self {
            params,
            started: now,
            sent: now,
            count: 1,
            rt,
        }
    }

    /// The same with MRD `mrd` (Renew, Rebind).
    pub fn start_with_mrd<R: Rng>(params: Params, mrd: Duration, now: Time, rng: &mut R) -> Self {
        Self::start(Params { mrd, ..params }, now, rng, false)
    }

    /// When the current RT ends: retransmit then, or give up (MRD caps it, §15).
    pub fn due(&self) -> Time {
        let t = self.sent + self.rt;
        if self.params.mrd.is_zero() {
            t
        } else {
            t.min(self.started + self.params.mrd)
        }
    }

    /// The RT ended at `now`: `true` and the next RT (§15: RT = 2*RTprev + RAND*RTprev,
    /// over MRT: MRT + RAND*MRT) if another transmission is allowed; `false` when MRC
    /// transmissions were made or MRD has elapsed.
    pub fn next<R: Rng>(&mut self, now: Time, rng: &mut R) -> bool {
        let p = self.params;
        if p.mrc != 0 && self.count >= p.mrc {
            return false;
        }
        if !p.mrd.is_zero() && now >= self.started + p.mrd {
            return false;
        }
        let mut rt = self.rt.mul_f64(2.0 + rand_factor(rng, false));
        if !p.mrt.is_zero() && rt > p.mrt {
            rt = p.mrt.mul_f64(1.0 + rand_factor(rng, false));
        }
        self.rt = rt;
        self.sent = now;
        self.count += 1;
        true
    }

    /// Elapsed Time for the message sent at `now` (§21.9): hundredths of a second since
    /// the first transmission, 0xffff when longer.
    pub fn elapsed_cs(&self, now: Time) -> u16 {
        let cs = now.saturating_sub(self.started).as_millis() / 10;
        u16::try_from(cs).unwrap_or(u16::MAX)
    }

    /// A new MRT for the RTs still to come (a server's SOL_MAX_RT or INF_MAX_RT, §21.24,
    /// §21.25, which the client MUST use from then on).
    pub fn set_mrt(&mut self, mrt: Duration) {
        self.params.mrt = mrt;
    }

    /// Transmissions so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The current RT.
    pub fn rt(&self) -> Duration {
        self.rt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn within(d: Duration, lo: f64, hi: f64) -> bool {
        let s = d.as_secs_f64();
        s >= lo - 1e-9 && s <= hi + 1e-9
    }

    proptest! {
        /// §15 and §18.2.1 on every RT of a Solicit run: the first in (1.0, 1.1] s, each
        /// next one 1.9-2.1 × the previous until it passes SOL_MAX_RT, then within
        /// 3600 ± 10 %, and never an end (no MRC, no MRD).
        #[test]
        fn solicit_rt_sequence(seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut t = Duration::ZERO;
            let mut x = Retransmit::start(SOLICIT, t, &mut r, true);
            prop_assert!(x.rt() > Duration::from_secs(1) && within(x.rt(), 1.0, 1.1));
            for _ in 0..30 {
                let prev = x.rt();
                t = x.due();
                prop_assert!(x.next(t, &mut r));
                let rt = x.rt().as_secs_f64();
                let doubled = prev.as_secs_f64() * 1.9 <= rt && rt <= prev.as_secs_f64() * 2.1;
                prop_assert!(doubled || within(x.rt(), 3240.0, 3960.0), "{prev:?} -> {rt}");
                prop_assert!(rt <= 3960.0 + 1e-9);
            }
        }

        /// REQ_MAX_RC: 10 transmissions, then the exchange fails; RTs stay within 30 s ± 10 %.
        #[test]
        fn request_stops_after_ten(seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut x = Retransmit::start(REQUEST, Duration::ZERO, &mut r, false);
            prop_assert!(within(x.rt(), 0.9, 1.1));
            let mut sent = 1;
            while x.next(x.due(), &mut r) {
                sent += 1;
                prop_assert!(x.rt().as_secs_f64() <= 33.0 + 1e-9);
            }
            prop_assert_eq!(sent, 10);
            prop_assert_eq!(x.count(), 10);
        }

        /// Renew with MRD = time to T2: no RT ends after T2, and the exchange fails there.
        #[test]
        fn renew_ends_at_mrd(seed in any::<u64>(), mrd in 1u64..5000) {
            let mut r = rng(seed);
            let mrd = Duration::from_secs(mrd);
            let t0 = Duration::from_secs(100);
            let mut x = Retransmit::start_with_mrd(RENEW, mrd, t0, &mut r);
            prop_assert!(within(x.rt(), 9.0, 11.0));
            let mut n = 0;
            loop {
                let due = x.due();
                prop_assert!(due <= t0 + mrd);
                if !x.next(due, &mut r) {
                    prop_assert_eq!(due, t0 + mrd);
                    break;
                }
                prop_assert!(x.rt().as_secs_f64() <= 660.0 + 1e-9);
                n += 1;
                prop_assert!(n < 1000);
            }
        }
    }

    /// A server's SOL_MAX_RT caps the RTs from the next one on (§21.24); values outside
    /// 60..=86400 are ignored.
    #[test]
    fn a_servers_max_rt_caps_the_next_rts() {
        assert_eq!(max_rt_option(59), None);
        assert_eq!(max_rt_option(86_401), None);
        assert_eq!(max_rt_option(60), Some(Duration::from_secs(60)));
        let mut r = rng(3);
        let mut x = Retransmit::start(SOLICIT, Duration::ZERO, &mut r, true);
        x.set_mrt(max_rt_option(60).unwrap());
        for _ in 0..20 {
            assert!(x.next(x.due(), &mut r));
            assert!(x.rt().as_secs_f64() <= 66.0 + 1e-9, "{:?}", x.rt());
        }
        assert!(x.rt().as_secs_f64() >= 54.0 - 1e-9);
    }

    #[test]
    fn elapsed_time_is_centiseconds_capped() {
        let mut r = rng(1);
        let x = Retransmit::start(SOLICIT, Duration::from_secs(10), &mut r, true);
        assert_eq!(x.elapsed_cs(Duration::from_secs(10)), 0);
        assert_eq!(x.elapsed_cs(Duration::from_millis(12_345)), 234);
        assert_eq!(x.elapsed_cs(Duration::from_secs(10_000)), 0xffff);
    }
}
