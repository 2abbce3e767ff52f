//! The timer FIFOs: one list per timer class, whose sessions all share the class's
//! timeout, with lazy re-queueing (the packet path writes only `last_seen`; a session
//! refreshed since it was queued moves to the tail when it reaches the head). Expiry is
//! O(1) amortized and never scans the table.

use crate::config::NatConfig;
use crate::list::{List, NIL};
use crate::session::{timer_link, Session};
use crate::types::{Protocol, SessionState, Timestamp};

pub(crate) const CLASS_UDP_UNANSWERED: u8 = 0;
pub(crate) const CLASS_UDP_ANSWERED_ONCE: u8 = 1;
pub(crate) const CLASS_UDP_ANSWERED: u8 = 2;
pub(crate) const CLASS_UDP_DNS: u8 = 3;
pub(crate) const CLASS_TCP_TRANSITORY: u8 = 4;
pub(crate) const CLASS_TCP_ESTABLISHED: u8 = 5;
pub(crate) const CLASS_TCP_TIME_WAIT: u8 = 6;
pub(crate) const CLASS_ICMP: u8 = 7;
pub(crate) const CLASSES: usize = 8;
/// Names of the timer classes, in index order (metrics and show commands).
pub(crate) const CLASS_NAMES: [&str; CLASSES] = [
    "udp_unanswered",
    "udp_answered_once",
    "udp_answered",
    "udp_dns_answered",
    "tcp_transitory",
    "tcp_established",
    "tcp_time_wait",
    "icmp",
];

/// Per-packet expiry runs at most this often (the daemon also calls `Nat::expire`).
pub(crate) const EXPIRE_EVERY_MS: u64 = 50;
/// Sessions the per-packet expiry looks at, at most, each time it runs.
pub(crate) const EXPIRE_TICK_WORK: usize = 256;

/// The timer class of a session in `state` (`stream`: a UDP flow known to be a stream).
#[inline]
pub(crate) fn class_of(proto: Protocol, state: SessionState, stream: bool) -> u8 {
    match (proto, state) {
        (Protocol::Icmp, _) => CLASS_ICMP,
        (Protocol::Udp, SessionState::Answered) if stream => CLASS_UDP_ANSWERED,
        (Protocol::Udp, SessionState::Answered) => CLASS_UDP_ANSWERED_ONCE,
        (Protocol::Udp, SessionState::DnsAnswered) => CLASS_UDP_DNS,
        (Protocol::Udp, _) => CLASS_UDP_UNANSWERED,
        (Protocol::Tcp, SessionState::Established) => CLASS_TCP_ESTABLISHED,
        (Protocol::Tcp, SessionState::TimeWait) => CLASS_TCP_TIME_WAIT,
        (Protocol::Tcp, _) => CLASS_TCP_TRANSITORY,
    }
}

/// The protocol of a timer class.
pub(crate) const fn class_proto(class: u8) -> Protocol {
    match class {
        CLASS_ICMP => Protocol::Icmp,
        CLASS_TCP_TRANSITORY | CLASS_TCP_ESTABLISHED | CLASS_TCP_TIME_WAIT => Protocol::Tcp,
        _ => Protocol::Udp,
    }
}

/// The timer lists, their timeouts, and when the packet path next runs expiry.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable {
    lists: [List; CLASSES],
    timeouts_ms: [u64; CLASSES],
    /// The packet path runs bounded expiry when `now` reaches this (milliseconds).
    pub(crate) next_expire: u64,
}

impl TimerTable {
    /// Empty lists with the timeouts of `cfg`.
    pub(crate) fn new(cfg: &NatConfig) -> Self {
        Self {
            lists: [List::default(); CLASSES],
            timeouts_ms: Self::timeouts_ms(cfg),
            next_expire: 0,
        }
    }

    /// Takes the timeouts of a new configuration (queued sessions keep their place).
    pub(crate) fn set_timeouts(&mut self, cfg: &NatConfig) {
        self.timeouts_ms = Self::timeouts_ms(cfg);
    }

    fn timeouts_ms(cfg: &NatConfig) -> [u64; CLASSES] {
        let t = &cfg.timeouts;
        let ms = |s: u64| s.saturating_mul(1000);
        [
            ms(t.udp_unanswered),
            ms(t.udp_answered_once),
            ms(t.udp_answered),
            ms(t.udp_dns_answered),
            ms(t.tcp_transitory),
            ms(t.tcp_established),
            ms(t.tcp_time_wait),
            ms(t.icmp),
        ]
    }

    /// Whether the packet path is due to run expiry at `now`.
    #[inline]
    pub(crate) fn tick_due(&self, now: Timestamp) -> bool {
        now.millis() >= self.next_expire
    }

    /// Sets the next per-packet expiry after one ran at `now`.
    pub(crate) fn ticked(&mut self, now: Timestamp) {
        self.next_expire = now.millis().saturating_add(EXPIRE_EVERY_MS);
    }

    /// The timeout of `class` in milliseconds.
    #[inline]
    pub(crate) fn timeout_ms(&self, class: u8) -> u64 {
        self.timeouts_ms[usize::from(class)]
    }

    /// Sessions queued in `class`.
    pub(crate) fn len(&self, class: u8) -> u32 {
        self.lists[usize::from(class)].len
    }

    /// The oldest session queued in `class` (`NIL` for none).
    pub(crate) fn head(&self, class: u8) -> u32 {
        self.lists[usize::from(class)].head
    }

    /// Sessions queued per class, in class order.
    pub(crate) fn lens(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        CLASS_NAMES
            .iter()
            .zip(&self.lists)
            .map(|(n, l)| (*n, l.len))
    }

    /// Queues session `s` at the tail of its class (`Session::class`).
    pub(crate) fn push(&mut self, sessions: &mut [Session], s: u32) {
        let class = sessions[s as usize].class;
        self.lists[usize::from(class)].push_back(sessions, s, timer_link);
    }

    /// Takes session `s` out of its class's list.
    pub(crate) fn unlink(&mut self, sessions: &mut [Session], s: u32) {
        let class = sessions[s as usize].class;
        self.lists[usize::from(class)].unlink(sessions, s, timer_link);
    }

    /// The next session of `class` whose timer ran out by `now_ms`, left queued for the
    /// caller to remove; sessions refreshed since they were queued move to the tail on the
    /// way. Each session looked at (expired or moved) costs one unit of `work`; `None` when
    /// the class has nothing due or `work` is spent.
    pub(crate) fn pop_due(
        &mut self,
        sessions: &mut [Session],
        class: u8,
        now_ms: u64,
        work: &mut usize,
    ) -> Option<u32> {
        let c = usize::from(class);
        let timeout = self.timeouts_ms[c];
        while *work > 0 {
            let s = self.lists[c].head;
            if s == NIL {
                return None;
            }
            let (last_seen, queued_at) = {
                let x = &sessions[s as usize];
                (x.last_seen, x.queued_at)
            };
            *work -= 1;
            if last_seen.saturating_add(timeout) <= now_ms {
                return Some(s);
            }
            if last_seen <= queued_at {
                // Heads are in queueing order: nothing behind it is due either. It was
                // looked at, but nothing was done: give the unit back.
                *work += 1;
                return None;
            }
            self.lists[c].unlink(sessions, s, timer_link);
            self.lists[c].push_back(sessions, s, timer_link);
            sessions[s as usize].queued_at = last_seen;
        }
        None
    }

    /// The earliest time a queued session may expire, if any.
    pub(crate) fn next_deadline(&self, sessions: &[Session]) -> Option<Timestamp> {
        self.lists
            .iter()
            .zip(&self.timeouts_ms)
            .filter(|(l, _)| l.head != NIL)
            .map(|(l, t)| Timestamp(sessions[l.head as usize].queued_at.saturating_add(*t)))
            .min()
    }
}
