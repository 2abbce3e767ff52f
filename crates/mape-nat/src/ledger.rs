//! The ledger: what the engine counts and tells — drops by reason, refused flows with the
//! recent ones, the event queue, the peak of ports in use. Written by the engine, read by
//! snapshots; it never decides anything.

use std::collections::VecDeque;

use crate::drop::NatDrop;
use crate::stats::{Event, EventKind, Refusal};
use crate::types::Timestamp;

/// Refusals kept for `Snapshot::recent_refusals`.
const RECENT_REFUSALS: usize = 64;
/// Events kept until drained; older ones are dropped and counted.
const MAX_EVENTS: usize = 1024;

/// Counters and queues of one engine.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    pub(crate) drops: [u64; NatDrop::COUNT],
    pub(crate) refusals: u64,
    /// Refusals by reason (indexed like `drops`).
    pub(crate) refused_by: [u64; NatDrop::COUNT],
    pub(crate) first_refusal: Option<Timestamp>,
    pub(crate) last_refusal: Option<Timestamp>,
    pub(crate) exhausted_at: Option<Timestamp>,
    pub(crate) recent: VecDeque<Refusal>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) events_lost: u64,
    /// Inbound RSTs not believed (outside the window the LAN host acknowledged).
    pub(crate) rst_unverified: u64,
    /// The most ports in use in any protocol, and when.
    pub(crate) peak: u32,
    pub(crate) peak_at: Timestamp,
}

impl Ledger {
    pub(crate) fn new() -> Self {
        Self {
            drops: [0; NatDrop::COUNT],
            refusals: 0,
            refused_by: [0; NatDrop::COUNT],
            first_refusal: None,
            last_refusal: None,
            exhausted_at: None,
            recent: VecDeque::with_capacity(RECENT_REFUSALS),
            events: VecDeque::new(),
            events_lost: 0,
            rst_unverified: 0,
            peak: 0,
            peak_at: Timestamp(0),
        }
    }

    /// Counts one drop.
    #[inline]
    pub(crate) fn count(&mut self, reason: NatDrop) {
        self.drops[reason.index()] += 1;
    }

    /// Counts a refused new flow: the drop under its reason, the refusal, the recent ring.
    pub(crate) fn refused(&mut self, r: Refusal) {
        self.count(r.reason);
        self.refusals += 1;
        self.refused_by[r.reason.index()] += 1;
        self.first_refusal.get_or_insert(r.at);
        self.last_refusal = Some(r.at);
        if r.reason == NatDrop::PortsExhausted {
            self.exhausted_at.get_or_insert(r.at);
        }
        if self.recent.len() == RECENT_REFUSALS {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
    }

    /// Queues an event; the oldest goes (counted) when nobody drained the queue.
    pub(crate) fn push_event(&mut self, at: Timestamp, kind: EventKind) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.events_lost += 1;
        }
        self.events.push_back(Event { at, kind });
    }

    /// Notes `in_use` ports of one protocol at `now` for the overall peak.
    pub(crate) fn note_in_use(&mut self, in_use: u32, now: Timestamp) {
        if in_use > self.peak {
            self.peak = in_use;
            self.peak_at = now;
        }
    }
}
