//! When the port mapping server announces itself unsolicited: after a restart (the server's
//! state, and so its epoch, starts anew) and when the external address changes.
//!
//! - RFC 6886 §3.2.1 (NAT-PMP): "Upon boot, or when the external IP address changes, the
//!   NAT gateway MUST multicast" the external address response to 224.0.0.1 port 5350,
//!   ten times, the first two 250 ms apart and each interval after that doubling.
//! - RFC 6887 §14.1.3 (PCP): after a restart or other loss of state the server MAY send
//!   unsolicited ANNOUNCE responses to the all-nodes group on port 5350, up to ten times,
//!   at least 250 ms between the first two and the interval doubling, each with the
//!   epoch time of its sending.
//!
//! IO-free: [`Schedule::due`] says at `now` whether a round is due and when the next one
//! is; the server's socket task sends it.

use std::net::{Ipv4Addr, SocketAddrV4};

use mape_nat::Timestamp;

/// Where announcements go: the all-hosts group, the clients' port (RFC 6886 §3.2.1,
/// RFC 6887 §14.1.3 and §19.1).
pub const GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 5350);
/// How many rounds one episode sends.
pub const ROUNDS: u32 = 10;
/// The interval between the first two rounds; each later one doubles.
pub const FIRST_INTERVAL_MS: u64 = 250;

/// One announcement episode's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Rounds sent in this episode.
    sent: u32,
    /// When the next round is due (engine milliseconds); `None` once all are sent.
    next_ms: Option<u64>,
}

impl Schedule {
    /// A new episode whose first round is due at `now`.
    pub const fn start(now: Timestamp) -> Self {
        Self {
            sent: 0,
            next_ms: Some(now.millis()),
        }
    }

    /// Whether a round is due at `now`; if so it counts as sent and the next one is
    /// planned from this one's planned time (so a late wake-up does not stretch the
    /// doubling).
    pub fn due(&mut self, now: Timestamp) -> bool {
        let Some(at) = self.next_ms else {
            return false;
        };
        if now.millis() < at {
            return false;
        }
        self.sent += 1;
        self.next_ms = (self.sent < ROUNDS).then(|| {
            let shift = self.sent.saturating_sub(1).min(30);
            at.saturating_add(FIRST_INTERVAL_MS << shift)
        });
        true
    }

    /// When the next round is due, `None` when the episode is over.
    pub fn next(&self) -> Option<Timestamp> {
        self.next_ms.map(Timestamp::from_millis)
    }

    /// Rounds sent so far.
    pub const fn sent(&self) -> u32 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock stepped 1 ms at a time for 5 minutes: ten rounds, at 0, 250, 750,
    /// 1750, ... ms (intervals 250, 500, 1000, ... doubling), then silence.
    #[test]
    fn ten_rounds_doubling_from_250_ms() {
        let t0 = 5_000u64;
        let mut s = Schedule::start(Timestamp::from_millis(t0));
        let mut at = Vec::new();
        for ms in t0..t0 + 300_000 {
            if s.due(Timestamp::from_millis(ms)) {
                at.push(ms - t0);
            }
        }
        assert_eq!(
            at,
            vec![0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750, 127750]
        );
        assert_eq!((s.sent(), s.next()), (10, None));
    }

    /// A late wake-up sends once (no burst), and the next round keeps the planned time.
    #[test]
    fn late_wake_up_sends_one_round() {
        let mut s = Schedule::start(Timestamp::from_millis(0));
        assert!(s.due(Timestamp::from_millis(0)));
        assert!(!s.due(Timestamp::from_millis(249)));
        assert!(s.due(Timestamp::from_millis(600)));
        assert!(!s.due(Timestamp::from_millis(600)));
        assert_eq!(s.next(), Some(Timestamp::from_millis(750)));
    }
}
