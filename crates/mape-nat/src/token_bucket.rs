//! The token bucket every rate limit of mape uses (ICMP errors and refusal notices, RFC 1812
//! §4.3.2.8): sans-IO like the engine, time comes in as a [`Timestamp`].

use crate::types::Timestamp;

/// A token bucket: `rate_per_sec` tokens a second, at most `burst` kept, full at the start.
///
/// A rate of 0 means **nothing passes**: no token is ever added. "No limit" is not a rate:
/// the caller then has no bucket (`Option<TokenBucket>` = `None`). Config files that spell
/// "unlimited" as 0 map it at their edge.
///
/// Tokens are counted in thousandths, so no fraction of elapsed time is lost however the
/// takes are spaced. A `now` earlier than one seen before adds nothing (time never runs
/// back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate_per_sec: u32,
    /// Capacity in thousandths of a token.
    cap_milli: u64,
    /// Tokens in thousandths.
    milli_tokens: u64,
    /// The latest time seen, in milliseconds.
    last_ms: u64,
}

impl TokenBucket {
    /// A bucket of `rate_per_sec` tokens a second holding at most `burst`, full now.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        let cap_milli = u64::from(burst) * 1000;
        Self {
            rate_per_sec,
            cap_milli,
            milli_tokens: cap_milli,
            last_ms: 0,
        }
    }

    /// A bucket whose burst is one second of its rate.
    pub fn per_second(rate_per_sec: u32) -> Self {
        Self::new(rate_per_sec, rate_per_sec)
    }

    /// Tokens added a second.
    pub fn rate_per_sec(&self) -> u32 {
        self.rate_per_sec
    }

    /// Takes one token if one is there at `now`.
    pub fn try_take(&mut self, now: Timestamp) -> bool {
        let elapsed = now.millis().saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now.millis());
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(u64::from(self.rate_per_sec)))
            .min(self.cap_milli);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(b: &mut TokenBucket, at_ms: u64, n: usize) -> usize {
        (0..n).filter(|_| b.try_take(Timestamp(at_ms))).count()
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_its_rate() {
        let mut b = TokenBucket::per_second(2);
        assert_eq!(takes(&mut b, 0, 5), 2);
        // Half a second at 2/s is one token.
        assert_eq!(takes(&mut b, 500, 5), 1);
        // Ten idle seconds refill only up to the burst.
        assert_eq!(takes(&mut b, 10_500, 5), 2);
    }

    #[test]
    fn fractions_of_time_add_up() {
        // 10/s: 150 ms is 1.5 tokens; two such gaps are three.
        let mut b = TokenBucket::new(10, 10);
        assert_eq!(takes(&mut b, 0, 20), 10);
        assert_eq!(takes(&mut b, 150, 5), 1);
        assert_eq!(takes(&mut b, 300, 5), 2);
    }

    #[test]
    fn rate_zero_lets_nothing_through() {
        let mut b = TokenBucket::per_second(0);
        assert_eq!(takes(&mut b, 0, 3), 0);
        assert_eq!(takes(&mut b, 60_000, 3), 0);
    }

    #[test]
    fn time_running_back_adds_nothing() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.try_take(Timestamp(5_000)));
        assert!(!b.try_take(Timestamp(1_000)));
        assert!(!b.try_take(Timestamp(5_500)));
        assert!(b.try_take(Timestamp(6_000)));
    }
}
