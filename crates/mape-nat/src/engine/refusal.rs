//! Refusals and blame: a new flow refused or filtered is counted and remembered, told to
//! its sender with a rate-limited notice, and weighed as evidence against its host, which
//! is named as the culprit once its score says so, and cleared once its storm has stopped.

use crate::drop::NatDrop;
use crate::pattern::{Evidence, Pattern};
use crate::stats::{EventKind, Refusal};
use crate::tier::Tier;
use crate::types::{OutboundPacket, Timestamp};

use super::{Nat, RefuseNotice, NIL};

/// A named culprit is cleared when its score stays below this (a fifth of the 0.5 that
/// names it, `HostRecord::is_culprit`) for [`CLEAR_HOLD_MS`]. The gap between the two
/// thresholds is the hysteresis: a storm that only slows down (its one-minute rate of
/// unanswered flows, or the share of the budget its live unanswered flows hold, still
/// well above nothing) stays named, so the events do not flap named/cleared.
pub(crate) const CLEAR_SCORE: f64 = 0.1;
/// How long a named host must stay below [`CLEAR_SCORE`] to be cleared: one minute, the
/// window of the rate in the score, so that a storm pausing between bursts (retries every
/// 30 s) is not cleared in a pause, and one that stopped is cleared within about two
/// minutes (its rate decays over one minute, then the hold).
pub(crate) const CLEAR_HOLD_MS: u64 = 60_000;

impl Nat {
    /// A new flow to a destination the filter blocks (`block` names its special-purpose
    /// block): counted, the first of each destination announced.
    pub(super) fn filtered(
        &mut self,
        now: Timestamp,
        host: u32,
        pkt: &OutboundPacket,
        block: &'static str,
    ) -> (NatDrop, Option<RefuseNotice>) {
        self.ledger.count(NatDrop::DestinationFiltered);
        let h = &mut self.hosts[host as usize];
        h.filtered += 1;
        h.first_filtered.get_or_insert(now);
        h.note_unanswered(now, pkt.proto, pkt.dst);
        let first = self.dest_record(pkt.proto, pkt.dst, host).is_some_and(|d| {
            d.filtered += 1;
            d.filtered == 1
        });
        if first {
            let addr = self.hosts[host as usize].addr;
            self.ledger.push_event(
                now,
                EventKind::DestinationFiltered {
                    host: addr,
                    dst: pkt.dst,
                    block,
                },
            );
        }
        self.check_culprit(now, host);
        (NatDrop::DestinationFiltered, self.notice(now))
    }

    /// Refuses a new flow of `host` for `reason`: counted, remembered, and told with a
    /// notice when the policy and its rate allow.
    pub(super) fn refuse(
        &mut self,
        now: Timestamp,
        host: u32,
        pkt: &OutboundPacket,
        reason: NatDrop,
    ) -> (NatDrop, Option<RefuseNotice>) {
        let h = &mut self.hosts[host as usize];
        h.refusals += 1;
        h.last_refusal = Some(now);
        h.note_destination(now, pkt.proto, pkt.dst);
        let addr = h.addr;
        self.ledger.refused(Refusal {
            at: now,
            host: addr,
            proto: pkt.proto,
            dst: pkt.dst,
            reason,
        });
        if reason == NatDrop::PortsExhausted && self.pools[pkt.proto.index()].note_exhausted() {
            self.ledger
                .push_event(now, EventKind::BudgetExhausted { proto: pkt.proto });
        }
        self.check_culprit(now, host);
        (reason, self.notice(now))
    }

    /// Refuses a new flow of a host that could get no record (`hosts`: at the cap, none
    /// idle): counted `host_limit` and remembered by address; no per-host state is made.
    pub(super) fn refuse_no_record(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
    ) -> (NatDrop, Option<RefuseNotice>) {
        self.ledger.refused(Refusal {
            at: now,
            host: pkt.src.addr,
            proto: pkt.proto,
            dst: pkt.dst,
            reason: NatDrop::HostLimit,
        });
        (NatDrop::HostLimit, self.notice(now))
    }

    /// A refusal notice if the rate allows one now (RFC 1812 §4.3.2.8 rate limiting).
    fn notice(&mut self, now: Timestamp) -> Option<RefuseNotice> {
        let bucket = self.notices.as_mut()?;
        bucket
            .try_take(now)
            .then_some(RefuseNotice::AdminProhibited)
    }

    /// What host `h` is doing: from what it could not keep, or, while nothing of it has
    /// ended yet (long timers), from a sample of its live unanswered flows.
    pub(crate) fn pattern_of(&self, h: u32, now: Timestamp) -> Pattern {
        let rec = &self.hosts[h as usize];
        let mut live = Evidence::default();
        if rec.evidence.is_empty() {
            // The newest of each protocol in turn, 32 at most.
            let mut at = self.host_lists[h as usize].map(|l| l[Tier::Unanswered.ix()].tail);
            for _ in 0..32 {
                let mut any = false;
                for s in at.iter_mut().filter(|s| **s != NIL) {
                    let x = &self.sessions[*s as usize];
                    live.note(now, x.proto, x.remote);
                    *s = x.host_link.prev;
                    any = true;
                }
                if !any {
                    break;
                }
            }
        }
        rec.pattern(now, &live)
    }

    pub(super) fn check_culprit(&mut self, now: Timestamp, host: u32) {
        let h = &self.hosts[host as usize];
        if h.named.is_some() || !h.is_culprit(now, self.budget) {
            return;
        }
        let addr = h.addr;
        let pattern = self.pattern_of(host, now);
        let summary = pattern.to_string();
        let h = &mut self.hosts[host as usize];
        h.named = Some(now);
        h.quiet_since = None;
        self.named.push(host);
        self.ledger.push_event(
            now,
            EventKind::CulpritNamed {
                host: addr,
                top_destination: pattern.destination(),
                pattern,
                summary,
            },
        );
    }

    /// Clears the named culprits whose storm has stopped (`CLEAR_SCORE` for
    /// `CLEAR_HOLD_MS`), with a `culprit_cleared` event each. O(named hosts): run with
    /// the timers.
    pub(super) fn culprit_tick(&mut self, now: Timestamp) {
        let mut i = 0;
        while let Some(&host) = self.named.get(i) {
            let budget = self.budget;
            let h = &mut self.hosts[host as usize];
            let Some(named_at) = h.named else {
                self.named.swap_remove(i);
                continue;
            };
            if h.score(now, budget) >= CLEAR_SCORE {
                h.quiet_since = None;
                i += 1;
                continue;
            }
            let since = *h.quiet_since.get_or_insert(now);
            if now.millis().saturating_sub(since.millis()) < CLEAR_HOLD_MS {
                i += 1;
                continue;
            }
            h.named = None;
            h.quiet_since = None;
            let addr = h.addr;
            self.named.swap_remove(i);
            self.ledger.push_event(
                now,
                EventKind::CulpritCleared {
                    host: addr,
                    named_at,
                },
            );
        }
    }
}
