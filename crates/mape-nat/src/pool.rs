//! The port pool of one protocol: a dense array of slots indexed by the port's position in
//! the port set, the free list with O(1) take and give-back, the peak, and the budget level
//! whose crossings become events.

use crate::list::NIL;
use crate::stats::EventKind;
use crate::types::{Protocol, Timestamp};

/// One external port of one protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PortSlot {
    /// Mappings on this port (more than one = shared across remote endpoints).
    pub(crate) users: u32,
    /// The mapping that took the port first, while it still holds it.
    pub(crate) owner: Option<u32>,
    /// A forward holds it, or it is port 0 (never handed out).
    pub(crate) is_static: bool,
    /// Mappings of the router's own flows on it (`engine::router`).
    pub(crate) router_users: u32,
}

impl PortSlot {
    /// Free and not reserved: a new mapping may take it whole.
    #[inline]
    pub(crate) fn is_unused(self) -> bool {
        self.users == 0 && !self.is_static
    }
}

/// How far into its budget a protocol is, for the once-per-episode events. Ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BudgetLevel {
    /// Below 80 % (or back below 75 % after an episode).
    Normal,
    /// 80 % or more in use.
    Above80,
    /// 95 % or more in use.
    Above95,
    /// A flow was refused for want of a port.
    Exhausted,
}

/// Use at or above this percentage raises the level to [`BudgetLevel::Above80`].
const WARN_PERCENT: u64 = 80;
/// ... and this to [`BudgetLevel::Above95`].
const CRITICAL_PERCENT: u64 = 95;
/// Use below this ends an episode (hysteresis under `WARN_PERCENT`).
const RECOVERED_PERCENT: u64 = 75;

/// The ports of one protocol.
#[derive(Debug, Clone)]
pub(crate) struct PortPool {
    pub(crate) slots: Vec<PortSlot>,
    free: Vec<u32>,
    free_pos: Vec<u32>,
    /// Ports never handed out (port 0).
    pub(crate) reserved: u32,
    pub(crate) peak: u32,
    pub(crate) peak_at: Timestamp,
    /// Live sessions of the protocol.
    pub(crate) sessions: u32,
    level: BudgetLevel,
}

impl PortPool {
    /// A pool of `count` ports; `never` (the index of port 0, when the set holds it: a = 0
    /// and PSID 0) is never handed out and does not count as in use.
    pub(crate) fn new(count: u32, never: Option<u32>) -> Self {
        let mut pool = Self {
            slots: vec![
                PortSlot {
                    users: 0,
                    owner: None,
                    is_static: false,
                    router_users: 0,
                };
                count as usize
            ],
            free: (0..count).collect(),
            free_pos: (0..count).collect(),
            reserved: 0,
            peak: 0,
            peak_at: Timestamp(0),
            sessions: 0,
            level: BudgetLevel::Normal,
        };
        if let Some(ix) = never.filter(|&ix| ix < count) {
            pool.take(ix);
            pool.slots[ix as usize].is_static = true;
            pool.reserved = 1;
        }
        pool
    }

    /// Ports held by mappings.
    pub(crate) fn in_use(&self) -> u32 {
        (self.slots.len() - self.free.len()) as u32 - self.reserved
    }

    /// Ports on the free list.
    pub(crate) fn free_count(&self) -> u32 {
        self.free.len() as u32
    }

    /// The `i`-th port index on the free list (`i < free_count()`).
    pub(crate) fn free_at(&self, i: u32) -> u32 {
        self.free[i as usize]
    }

    /// Whether port index `ix` is on the free list.
    pub(crate) fn is_free(&self, ix: usize) -> bool {
        self.free_pos[ix] != NIL
    }

    /// Takes port index `ix` off the free list (nothing if it is not on it).
    pub(crate) fn take(&mut self, ix: u32) {
        let pos = self.free_pos[ix as usize];
        if pos == NIL {
            return;
        }
        let last = self.free.len() - 1;
        self.free.swap(pos as usize, last);
        let moved = self.free[pos as usize];
        self.free_pos[moved as usize] = pos;
        self.free.pop();
        self.free_pos[ix as usize] = NIL;
    }

    /// Puts port index `ix` back on the free list (nothing if it is on it).
    pub(crate) fn give_back(&mut self, ix: u32) {
        if self.free_pos[ix as usize] != NIL {
            return;
        }
        self.free_pos[ix as usize] = self.free.len() as u32;
        self.free.push(ix);
    }

    /// Records the use after a change: the peak, and the level, returning the events of
    /// the crossings, oldest first (80 % then 95 % when one change crosses both).
    pub(crate) fn note_use(
        &mut self,
        proto: Protocol,
        budget: u32,
        now: Timestamp,
    ) -> [Option<EventKind>; 2] {
        let in_use = self.in_use();
        if in_use > self.peak {
            self.peak = in_use;
            self.peak_at = now;
        }
        let pct = u64::from(in_use) * 100 / u64::from(budget.max(1));
        let level = self.level;
        if pct >= CRITICAL_PERCENT && level < BudgetLevel::Above95 {
            self.level = BudgetLevel::Above95;
            let warn =
                (level < BudgetLevel::Above80).then_some(EventKind::Budget80 { proto, in_use });
            [warn, Some(EventKind::Budget95 { proto, in_use })]
        } else if pct >= WARN_PERCENT && level < BudgetLevel::Above80 {
            self.level = BudgetLevel::Above80;
            [Some(EventKind::Budget80 { proto, in_use }), None]
        } else if pct < RECOVERED_PERCENT && level > BudgetLevel::Normal {
            self.level = BudgetLevel::Normal;
            [Some(EventKind::BudgetRecovered { proto, in_use }), None]
        } else {
            [None, None]
        }
    }

    /// Marks the pool exhausted; true the first time in an episode.
    pub(crate) fn note_exhausted(&mut self) -> bool {
        let first = self.level < BudgetLevel::Exhausted;
        self.level = BudgetLevel::Exhausted;
        first
    }

    /// Bytes held by the pool's arrays.
    pub(crate) fn bytes(&self) -> usize {
        use std::mem::size_of;
        self.slots.capacity() * size_of::<PortSlot>()
            + (self.free.capacity() + self.free_pos.capacity()) * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(evs: [Option<EventKind>; 2]) -> Vec<&'static str> {
        evs.iter()
            .flatten()
            .map(|e| match e {
                EventKind::Budget80 { .. } => "80",
                EventKind::Budget95 { .. } => "95",
                EventKind::BudgetRecovered { .. } => "recovered",
                _ => "other",
            })
            .collect()
    }

    fn use_ports(pool: &mut PortPool, n: u32) {
        for ix in 0..n {
            pool.take(ix);
        }
    }

    #[test]
    fn port_zero_is_reserved_and_not_in_use() {
        let pool = PortPool::new(10, Some(0));
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.free_count(), 9);
        assert!(!pool.is_free(0));
    }

    #[test]
    fn take_and_give_back_keep_the_free_list_exact() {
        let mut pool = PortPool::new(4, None);
        pool.take(1);
        pool.take(1);
        assert_eq!(pool.in_use(), 1);
        assert!(!pool.is_free(1));
        pool.give_back(1);
        pool.give_back(1);
        assert_eq!(pool.free_count(), 4);
        let mut all: Vec<u32> = (0..4).map(|i| pool.free_at(i)).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
    }

    #[test]
    fn levels_fire_once_per_episode_with_hysteresis() {
        // 100 ports: 96 in use at once crosses 80 and 95 in that order.
        let mut pool = PortPool::new(100, None);
        use_ports(&mut pool, 96);
        assert_eq!(
            kinds(pool.note_use(Protocol::Udp, 100, Timestamp(1))),
            ["80", "95"]
        );
        assert_eq!(
            kinds(pool.note_use(Protocol::Udp, 100, Timestamp(2))),
            Vec::<&str>::new()
        );
        assert_eq!(pool.peak, 96);
        // Down to 76: still in the episode (75 % hysteresis).
        for ix in 76..96 {
            pool.give_back(ix);
        }
        assert!(kinds(pool.note_use(Protocol::Udp, 100, Timestamp(3))).is_empty());
        pool.give_back(75);
        pool.give_back(74);
        assert_eq!(
            kinds(pool.note_use(Protocol::Udp, 100, Timestamp(4))),
            ["recovered"]
        );
        assert_eq!(pool.peak_at, Timestamp(1));
    }

    #[test]
    fn exhaustion_is_announced_once_and_ends_with_recovery() {
        let mut pool = PortPool::new(100, None);
        assert!(pool.note_exhausted());
        assert!(!pool.note_exhausted());
        // Exhausted is above 95: a 95 % crossing adds nothing, recovery resets.
        use_ports(&mut pool, 96);
        assert!(kinds(pool.note_use(Protocol::Tcp, 100, Timestamp(1))).is_empty());
        for ix in 0..96 {
            pool.give_back(ix);
        }
        assert_eq!(
            kinds(pool.note_use(Protocol::Tcp, 100, Timestamp(2))),
            ["recovered"]
        );
        assert!(pool.note_exhausted());
    }
}
