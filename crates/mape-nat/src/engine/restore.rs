//! Saving and restoring the session table across a restart (`persist` holds the format):
//! [`Nat::save`] copies the live sessions in timer order with their mappings and the
//! counters, in one O(sessions) pass with no encoding; [`Nat::restore`] rebuilds a fresh
//! engine's arenas, indexes, port pools, timer FIFOs, tier lists and host records from it.
//! Host records are rebuilt from the sessions (ports held, flows, tiers); their history
//! (rates, culprit evidence, refusals) starts again.

use serde::Serialize;

use crate::drop::NatDrop;
use crate::list::{Link, NIL};
use crate::persist::{PersistError, SavedMapping, SavedSession, SavedTable};
use crate::session::{Session, ARMED, OFFLOADED, STREAM};
use crate::timers::{class_of, CLASSES};
use crate::types::{Protocol, Timestamp};

use super::Nat;

/// Counter names besides the drop reasons (`NatDrop::as_str`).
const REFUSALS: &str = "refusals";
const RST_UNVERIFIED: &str = "tcp_rst_unverified";

/// What a restore did with the saved sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Sessions in the file.
    pub saved: u32,
    /// Sessions restored.
    pub restored: u32,
    /// Sessions whose timer ran out during the downtime.
    pub expired: u32,
    /// Sessions whose external port is no longer in the port set (the rule's port set
    /// changed).
    pub outside_port_set: u32,
    /// Sessions through a forward the configuration no longer has.
    pub forward_gone: u32,
    /// Sessions through a port mapping that was not restored.
    pub mapping_gone: u32,
    /// Port mappings in the file.
    pub mappings_saved: u32,
    /// Port mappings restored, with their lifetime less the downtime.
    pub mappings_restored: u32,
    /// Sessions whose port a forward holds now, or that repeat another session's key.
    pub conflicting: u32,
    /// Sessions over the configured session limit, or of a new host beyond
    /// `NatConfig::max_hosts`.
    pub over_limit: u32,
    /// Restored sessions whose age or idle time reached back before the engine's clock
    /// began, and were shortened to it (the daemon starts its clock far enough back).
    pub shortened: u32,
    /// Milliseconds between the save and the restore, by the wall clock.
    pub downtime_ms: u64,
}

/// Where a saved mapping went.
#[derive(Debug, Clone, Copy)]
enum Placed {
    /// Not created yet (a dynamic mapping is created with its first restored session).
    Pending,
    /// This engine mapping.
    At(u32),
    /// Its sessions are not restored, for this reason.
    Gone(Gone),
}

#[derive(Debug, Clone, Copy)]
enum Gone {
    OutsidePortSet,
    NoForward,
    Conflicting,
    NoLease,
}

impl Nat {
    /// A copy of the live sessions, their mappings and the drop and refusal counters at
    /// `now`, stamped with the wall clock `wall_ms` (milliseconds since the UNIX epoch).
    /// O(sessions), no encoding: the daemon takes it under the datapath lock and encodes
    /// and writes it outside.
    pub fn save(&self, now: Timestamp, wall_ms: u64) -> SavedTable {
        let now_ms = now.millis();
        let mut order = Vec::with_capacity(self.live_sessions as usize);
        for class in 0..CLASSES as u8 {
            let mut s = self.timers.head(class);
            while s != NIL {
                order.push(s);
                s = self.sessions[s as usize].timer.next;
            }
        }
        // Mappings in the endpoint-independent index first, so that a restore indexes the
        // same one of several mappings of an endpoint.
        let mut used = vec![NIL; self.mappings.len()];
        let mut ids: Vec<u32> = Vec::new();
        for &s in &order {
            let m = self.sessions[s as usize].mapping;
            if used[m as usize] == NIL {
                used[m as usize] = 0;
                ids.push(m);
            }
        }
        // Port mappings are kept without sessions too.
        for m in self.lease_mappings() {
            if used[m as usize] == NIL {
                used[m as usize] = 0;
                ids.push(m);
            }
        }
        ids.sort_by_key(|&m| !self.mappings[m as usize].eim_indexed);
        for (i, &m) in ids.iter().enumerate() {
            used[m as usize] = i as u32;
        }
        let mappings = ids
            .iter()
            .map(|&m| {
                let x = &self.mappings[m as usize];
                SavedMapping {
                    proto: x.proto,
                    internal: x.internal,
                    ext_port: x.ext_port,
                    forward: x.is_static(),
                    lease: self.saved_lease(m, now),
                }
            })
            .collect();
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let sessions = order
            .iter()
            .map(|&s| {
                let x = &self.sessions[s as usize];
                SavedSession {
                    mapping: used[x.mapping as usize],
                    state: x.state,
                    bits: x.bits & !(OFFLOADED | ARMED),
                    remote: x.remote,
                    lan_ack: x.lan_ack,
                    age_s: now_s.saturating_sub(x.created_s),
                    idle_ms: now_ms.saturating_sub(x.last_seen),
                    queued_ms: now_ms.saturating_sub(x.queued_at.min(x.last_seen)),
                }
            })
            .collect();
        let mut counters: Vec<(String, u64)> = NatDrop::ALL
            .iter()
            .map(|&r| (r.as_str().to_owned(), self.ledger.drops[r.index()]))
            .collect();
        counters.push((REFUSALS.to_owned(), self.ledger.refusals));
        counters.push((RST_UNVERIFIED.to_owned(), self.ledger.rst_unverified));
        SavedTable {
            external: self.external,
            ports: self.ports,
            taken_wall_ms: wall_ms,
            counters,
            mappings,
            sessions,
        }
    }

    /// Restores a saved table into this engine, which must have no session yet, at `now`
    /// and wall clock `wall_now_ms`. Every session keeps its state and its idle time plus
    /// the downtime (the wall clock between save and restore): its remaining lifetime
    /// less the downtime. Sessions whose timer ran out meanwhile, whose port left the port
    /// set, whose forward is gone, whose port a forward holds now, or over the session
    /// limit are not restored, and counted in the report. Refused whole, with nothing
    /// changed, when taken under another external address ([`PersistError::OtherRule`]).
    pub fn restore(
        &mut self,
        table: &SavedTable,
        now: Timestamp,
        wall_now_ms: u64,
    ) -> Result<RestoreReport, PersistError> {
        if self.live_sessions != 0 {
            return Err(PersistError::NotEmpty(self.live_sessions));
        }
        if table.external != self.external {
            return Err(PersistError::OtherRule {
                saved: table.external,
                current: self.external,
            });
        }
        let downtime = wall_now_ms.saturating_sub(table.taken_wall_ms);
        let mut report = RestoreReport {
            saved: table.sessions.len() as u32,
            downtime_ms: downtime,
            ..RestoreReport::default()
        };
        // Port mappings first: their sessions go onto them, and they hold their ports.
        let mut placed: Vec<Option<Placed>> = Vec::with_capacity(table.mappings.len());
        for m in &table.mappings {
            placed.push(m.lease.map(|lease| {
                report.mappings_saved += 1;
                match self.restore_lease(m, &lease, now, downtime) {
                    Some(at) => {
                        report.mappings_restored += 1;
                        Placed::At(at)
                    }
                    None => Placed::Gone(Gone::NoLease),
                }
            }));
        }
        let mut placed: Vec<Placed> = placed
            .into_iter()
            .zip(&table.mappings)
            .map(|(p, m)| p.unwrap_or_else(|| self.place_of(m)))
            .collect();
        for saved in &table.sessions {
            let m = &table.mappings[saved.mapping as usize];
            let stream = saved.bits & STREAM != 0;
            let class = class_of(m.proto, saved.state, stream);
            let idle = saved.idle_ms.saturating_add(downtime);
            if idle >= self.timers.timeout_ms(class) {
                report.expired += 1;
                continue;
            }
            if self.live_sessions >= self.cfg.max_sessions {
                report.over_limit += 1;
                continue;
            }
            let slot = &mut placed[saved.mapping as usize];
            let at = match *slot {
                Placed::Gone(why) => {
                    *match why {
                        Gone::OutsidePortSet => &mut report.outside_port_set,
                        Gone::NoForward => &mut report.forward_gone,
                        Gone::Conflicting => &mut report.conflicting,
                        Gone::NoLease => &mut report.mapping_gone,
                    } += 1;
                    continue;
                }
                Placed::At(at) => Some(at),
                Placed::Pending => None,
            };
            if self
                .translation_of(m.proto, m.internal, saved.remote)
                .is_some()
                || self
                    .find_inbound(m.proto, m.ext_port, saved.remote)
                    .is_some()
            {
                report.conflicting += 1;
                continue;
            }
            let at = match at {
                Some(at) => at,
                None => {
                    let Some(ix) = self.ports.index_of(m.ext_port) else {
                        report.outside_port_set += 1;
                        continue;
                    };
                    let Some(host) = self.host_slot(m.internal.addr, now, true) else {
                        report.over_limit += 1;
                        continue;
                    };
                    let at = self.place_mapping(host, m.proto, m.internal, m.ext_port, ix);
                    *slot = Placed::At(at);
                    at
                }
            };
            let now_ms = now.millis();
            let queued = saved.queued_ms.saturating_add(downtime);
            let age_s = u64::from(saved.age_s).saturating_add(downtime / 1000);
            if queued > now_ms || age_s > now_ms / 1000 {
                report.shortened += 1;
            }
            self.insert_session(Session {
                proto: m.proto,
                state: saved.state,
                class,
                // The fast path's marks are this run's (a file may carry any bits).
                bits: saved.bits & !(OFFLOADED | ARMED),
                internal: m.internal,
                remote: saved.remote,
                ext_port: m.ext_port,
                tier: None,
                mapping: at,
                lan_ack: saved.lan_ack,
                created_s: u32::try_from((now_ms / 1000).saturating_sub(age_s)).unwrap_or(u32::MAX),
                last_seen: now_ms.saturating_sub(idle),
                queued_at: now_ms.saturating_sub(queued),
                timer: Link::default(),
                host_link: Link::default(),
            });
            report.restored += 1;
        }
        for proto in Protocol::ALL {
            self.after_budget_change(proto, now);
        }
        for (name, value) in &table.counters {
            if let Some(r) = NatDrop::ALL.iter().find(|r| r.as_str() == name) {
                self.ledger.drops[r.index()] = *value;
            } else if name == REFUSALS {
                self.ledger.refusals = *value;
            } else if name == RST_UNVERIFIED {
                self.ledger.rst_unverified = *value;
            }
        }
        Ok(report)
    }

    /// Takes over the sessions, counters and signature catalogue of `old`, the engine of
    /// the previous MAP rule, into this fresh one at `now` (a rule changed in place, issue
    /// #14 §3): [`Nat::save`] then [`Nat::restore`] with no downtime, so that a session is
    /// kept when its external port is in this engine's port set and its forward still
    /// exists. Returns the sessions `old` had and the restore's report; with another
    /// external address no session is kept (`Err(PersistError::OtherRule)`), the counters
    /// still move.
    pub fn take_over(
        &mut self,
        old: &Nat,
        now: Timestamp,
    ) -> (u32, Result<RestoreReport, PersistError>) {
        let mut table = old.save(now, 0);
        let saved = table.sessions.len() as u32;
        self.signatures = old.signatures.clone();
        let report = self.restore(&table, now, 0);
        if let Err(PersistError::OtherRule { .. }) = report {
            table.external = self.external;
            table.mappings.clear();
            table.sessions.clear();
            let _ = self.restore(&table, now, 0);
        }
        (saved, report)
    }

    /// Where the sessions of a saved mapping go: onto the forward of the same port and
    /// internal endpoint, onto a dynamic mapping made with the first of them, or nowhere.
    fn place_of(&self, m: &SavedMapping) -> Placed {
        let Some(ix) = self.ports.index_of(m.ext_port) else {
            return Placed::Gone(Gone::OutsidePortSet);
        };
        let slot = self.pools[m.proto.index()].slots[ix as usize];
        let forward = slot
            .owner
            .filter(|&o| slot.is_static && self.mappings[o as usize].is_static())
            .filter(|&o| self.mappings[o as usize].internal == m.internal);
        match (m.forward, forward) {
            (true, Some(o)) => Placed::At(o),
            (true, None) => Placed::Gone(Gone::NoForward),
            (false, _) if slot.is_static => Placed::Gone(Gone::Conflicting),
            (false, _) => Placed::Pending,
        }
    }
}
