//! The recyclable tiers: what a host's session could give up for a new flow of the same
//! host, in the order the engine recycles them (a host is never refused while it holds any
//! of these). Each host keeps one list per protocol and tier (`Session::tier`).

use crate::types::{Protocol, SessionState};

/// A flow seen again at least this long after it began is a stream, not a one-shot
/// exchange (Linux `nf_conntrack_proto_udp.c`: "still active after two seconds").
pub(crate) const STREAM_AFTER_MS: u64 = 2_000;

/// One recyclable tier, in recycling order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tier {
    /// TCP after both FINs, or after a believed RST: the connection is over (RFC 7857 §3.2).
    Closing = 0,
    /// UDP or ICMP with no answer yet, TCP SYN sent and nothing back.
    Unanswered = 1,
    /// UDP or ICMP that got its answer and was not heard of again `STREAM_AFTER_MS` after
    /// it began (a one-shot exchange: NTP, STUN, a game server ping, a single echo; Linux
    /// conntrack's "not a stream" test, `nf_conntrack_proto_udp.c`).
    AnsweredOnce = 2,
    /// UDP or ICMP still active `STREAM_AFTER_MS` after it began (a stream); recycled for
    /// its own host only after it has been idle `STREAM_IDLE_MS`.
    Stream = 3,
}

/// How many tiers there are (the length of the per-host arrays indexed by [`Tier::ix`]).
pub(crate) const TIERS: usize = 4;

impl Tier {
    /// The position of the tier in per-host arrays.
    #[inline]
    pub(crate) const fn ix(self) -> usize {
        self as usize
    }

    /// The tier of a session in `state` (`None` for TCP that is opening from outside,
    /// established or half closed: never recycled).
    #[inline]
    pub(crate) fn of(proto: Protocol, state: SessionState, stream: bool) -> Option<Self> {
        match (proto, state) {
            (Protocol::Tcp, SessionState::TimeWait) => Some(Tier::Closing),
            (_, SessionState::Unanswered | SessionState::SynSent) => Some(Tier::Unanswered),
            (Protocol::Tcp, _) => None,
            (_, SessionState::Answered) if stream => Some(Tier::Stream),
            (_, _) => Some(Tier::AnsweredOnce),
        }
    }

    /// What the flow is for the budget, in the words of the culprit view
    /// (`SessionInfo::kind`); a session in no tier is `open`.
    pub(crate) fn word(tier: Option<Self>) -> &'static str {
        match tier {
            Some(Tier::Closing) => "closing",
            Some(Tier::Unanswered) => "unanswered",
            Some(Tier::AnsweredOnce) => "answered_once",
            Some(Tier::Stream) => "stream",
            None => "open",
        }
    }
}
