//! The table: the session and mapping arenas with their free lists, the three indexes kept
//! in step with them, the port slots a mapping holds, the per-destination records, and
//! the static forwards and reconfiguration that add and remove mappings wholesale.

use std::hash::BuildHasher;

use crate::config::{ConfigError, NatConfig, StaticForward};
use crate::keys::{pack_in, pack_map, pack_out};
use crate::list::{Link, NIL};
use crate::session::{Mapping, MappingKind, Session};
use crate::stats::DestRecord;
use crate::tier::Tier;
use crate::timers::class_of;
use crate::types::{Endpoint, Protocol, SessionState, Timestamp};

use super::{notice_bucket, Nat};

/// Destination records kept (live ones always; idle ones pruned when full).
const MAX_DESTINATIONS: usize = 8192;

impl Nat {
    /// Checks forwards against the port set and each other (no state touched).
    fn check_forwards(&self, forwards: &[StaticForward]) -> Result<(), ConfigError> {
        for (i, f) in forwards.iter().enumerate() {
            if f.proto == Protocol::Icmp {
                return Err(ConfigError::ForwardProtocol(f.proto));
            }
            if f.external_port == 0 || !self.ports.contains(f.external_port) {
                let ranges: Vec<String> = self.ports.ranges().map(|r| r.to_string()).collect();
                return Err(ConfigError::ForwardOutsidePortSet {
                    proto: f.proto,
                    port: f.external_port,
                    ranges: fold(&ranges),
                });
            }
            if forwards[..i]
                .iter()
                .any(|g| g.proto == f.proto && g.external_port == f.external_port)
            {
                return Err(ConfigError::ForwardDuplicate {
                    proto: f.proto,
                    port: f.external_port,
                });
            }
        }
        Ok(())
    }

    /// Checks forwards as [`Nat::check_forwards`] does, and that no dynamic mapping holds
    /// one's port now ([`ConfigError::ForwardBusy`]).
    fn check_installable(&self, forwards: &[StaticForward]) -> Result<(), ConfigError> {
        self.check_forwards(forwards)?;
        match forwards.iter().find(|f| self.forward_port_busy(f)) {
            Some(f) => Err(ConfigError::ForwardBusy {
                proto: f.proto,
                port: f.external_port,
            }),
            None => Ok(()),
        }
    }

    /// Whether a dynamic mapping or a port mapping holds a forward's port (then it cannot
    /// be installed now).
    fn forward_port_busy(&self, f: &StaticForward) -> bool {
        self.ports.index_of(f.external_port).is_some_and(|ix| {
            let slot = self.pools[f.proto.index()].slots[ix as usize];
            let forward = slot
                .owner
                .is_some_and(|o| self.mappings[o as usize].is_static());
            slot.users > 0 && !(slot.is_static && forward)
        })
    }

    pub(super) fn install_forwards(
        &mut self,
        forwards: &[StaticForward],
        now: Timestamp,
    ) -> Result<(), ConfigError> {
        self.check_installable(forwards)?;
        for f in forwards {
            let Some(ix) = self.ports.index_of(f.external_port) else {
                continue;
            };
            let p = f.proto.index();
            let Some(host) = self.host_slot(f.internal.addr, now, false) else {
                continue;
            };
            let m = self.alloc_mapping(Mapping {
                proto: f.proto,
                internal: f.internal,
                ext_port: f.external_port,
                host,
                sessions: 0,
                kind: MappingKind::Static,
                eim_indexed: false,
            });
            self.hold_like_forward(host, f.proto, ix);
            let slot = &mut self.pools[p].slots[ix as usize];
            slot.users = 1;
            slot.owner = Some(m);
            self.pools[p].take(ix);
            self.index_mapping(m);
        }
        Ok(())
    }

    /// Holds port index `ix` of `proto` for `host` like a static forward's: the slot is
    /// static (never reused by a flow) and the host counts one more forward, so it is never
    /// expired. What a configured forward and a port mapping's lease (`engine::mappings`)
    /// share.
    pub(super) fn hold_like_forward(&mut self, host: u32, proto: Protocol, ix: u32) {
        self.hosts[host as usize].forwards += 1;
        self.host_busy(host);
        self.pools[proto.index()].slots[ix as usize].is_static = true;
    }

    /// Applies a new configuration (SIGHUP): timers, quotas, filters, strategy and forwards
    /// change; live sessions stay. A forward whose port a dynamic mapping holds now is
    /// refused with [`ConfigError::ForwardBusy`] and nothing changes.
    pub fn reconfigure(&mut self, cfg: NatConfig, now: Timestamp) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.check_installable(&cfg.forwards)?;
        let old: Vec<u32> = (0..self.mappings.len() as u32)
            .filter(|&m| self.mappings[m as usize].is_static())
            .collect();
        for m in old {
            self.drop_static_mapping(m, now);
        }
        self.timers.set_timeouts(&cfg);
        if notice_bucket(&cfg).map(|b| b.rate_per_sec())
            != self.notices.as_ref().map(|b| b.rate_per_sec())
        {
            self.notices = notice_bucket(&cfg);
        }
        let forwards = cfg.forwards.clone();
        let router_changed = cfg.router != self.cfg.router;
        self.cfg = cfg;
        if router_changed {
            self.rebuild_router();
        }
        let installed = self.install_forwards(&forwards, now);
        self.offload_reinstall_all();
        installed
    }

    fn drop_static_mapping(&mut self, m: u32, now: Timestamp) {
        // Sessions through the forward end with it (O(sessions), only on reload).
        let victims: Vec<u32> = (0..self.sessions.len() as u32)
            .filter(|&s| {
                let x = &self.sessions[s as usize];
                x.is_live() && x.mapping == m
            })
            .collect();
        // Still static while its sessions go, so that the last one does not release it.
        for s in victims {
            self.remove_session(s, now);
        }
        self.mappings[m as usize].kind = MappingKind::Dynamic;
        let host = self.mappings[m as usize].host;
        let r = &mut self.hosts[host as usize];
        r.forwards = r.forwards.saturating_sub(1);
        self.host_maybe_idle(host, now);
        let (proto, ext_port) = (
            self.mappings[m as usize].proto,
            self.mappings[m as usize].ext_port,
        );
        if let Some(ix) = self.ports.index_of(ext_port) {
            self.pools[proto.index()].slots[ix as usize].is_static = false;
        }
        self.release_mapping(m, now, false);
    }

    fn alloc_mapping(&mut self, m: Mapping) -> u32 {
        match self.free_mappings.pop() {
            Some(i) => {
                self.mappings[i as usize] = m;
                i
            }
            None => {
                self.mappings.push(m);
                (self.mappings.len() - 1) as u32
            }
        }
    }

    fn index_mapping(&mut self, m: u32) {
        let (proto, internal) = {
            let x = &self.mappings[m as usize];
            (x.proto, x.internal)
        };
        let key = pack_map(proto, internal);
        let hash = self.hasher.hash_one(key);
        let mappings = &self.mappings;
        if self
            .map_index
            .find(hash, |i| {
                let x = &mappings[i as usize];
                pack_map(x.proto, x.internal) == key
            })
            .is_some()
        {
            return;
        }
        let hasher = &self.hasher;
        self.map_index.insert(hash, m, |i| {
            let x = &mappings[i as usize];
            hasher.hash_one(pack_map(x.proto, x.internal))
        });
        self.mappings[m as usize].eim_indexed = true;
    }

    pub(super) fn new_mapping(
        &mut self,
        now: Timestamp,
        host: u32,
        proto: Protocol,
        internal: Endpoint,
        port: u16,
        ix: u32,
    ) -> u32 {
        let m = self.place_mapping(host, proto, internal, port, ix);
        self.hosts[host as usize].new_ports[proto.index()].add(now.millis());
        self.after_budget_change(proto, now);
        m
    }

    /// A dynamic mapping of `host` on port `port` (index `ix` in the port set): the arena
    /// row, the port slot, the endpoint-independent index and the host's ports held. What
    /// a new flow and a restore (`engine::restore`) share; neither the rate of new ports
    /// nor the budget level is touched.
    pub(super) fn place_mapping(
        &mut self,
        host: u32,
        proto: Protocol,
        internal: Endpoint,
        port: u16,
        ix: u32,
    ) -> u32 {
        let m = self.alloc_mapping(Mapping {
            proto,
            internal,
            ext_port: port,
            host,
            sessions: 0,
            kind: MappingKind::Dynamic,
            eim_indexed: false,
        });
        let p = proto.index();
        self.router_slot_change(host, p, ix, true);
        let slot = &mut self.pools[p].slots[ix as usize];
        slot.users += 1;
        if slot.users == 1 {
            slot.owner = Some(m);
            self.pools[p].take(ix);
        } else {
            slot.owner = None;
        }
        self.index_mapping(m);
        if self.hosts[host as usize].ports_held() == 0 {
            self.active_hosts += 1;
        }
        self.set_held(host, p, self.hosts[host as usize].ports[p] + 1);
        let h = &mut self.hosts[host as usize];
        h.peak_ports = h.peak_ports.max(h.ports_held());
        m
    }

    pub(super) fn release_mapping(&mut self, m: u32, now: Timestamp, count_host: bool) {
        let (proto, ext_port, host, eim) = {
            let x = &self.mappings[m as usize];
            (x.proto, x.ext_port, x.host, x.eim_indexed)
        };
        if eim {
            let key = pack_map(proto, self.mappings[m as usize].internal);
            let hash = self.hasher.hash_one(key);
            self.map_index.remove(hash, m);
            self.mappings[m as usize].eim_indexed = false;
        }
        let p = proto.index();
        if let Some(ix) = self.ports.index_of(ext_port) {
            if self.pools[p].slots[ix as usize].users > 0 {
                self.router_slot_change(host, p, ix, false);
            }
            let slot = &mut self.pools[p].slots[ix as usize];
            slot.users = slot.users.saturating_sub(1);
            if slot.owner == Some(m) {
                slot.owner = None;
            }
            if slot.users == 0 {
                slot.is_static = false;
                self.pools[p].give_back(ix);
            }
        }
        if count_host {
            self.set_held(
                host,
                p,
                self.hosts[host as usize].ports[p].saturating_sub(1),
            );
            if self.hosts[host as usize].ports_held() == 0 {
                self.active_hosts = self.active_hosts.saturating_sub(1);
            }
            if self.hosts[host as usize].capped[p] {
                // The episode ends (the next cap is announced again) below 90 % of the cap.
                let held = u64::from(self.hosts[host as usize].ports[p]);
                if self
                    .host_cap(host)
                    .is_none_or(|cap| held * 10 < u64::from(cap) * 9)
                {
                    self.hosts[host as usize].capped[p] = false;
                }
            }
        }
        self.mappings[m as usize].kind = MappingKind::Free;
        self.free_mappings.push(m);
        self.after_budget_change(proto, now);
    }

    pub(super) fn add_session(
        &mut self,
        now: Timestamp,
        m: u32,
        remote: Endpoint,
        state: SessionState,
    ) -> u32 {
        let (proto, internal, ext_port) = {
            let x = &self.mappings[m as usize];
            (x.proto, x.internal, x.ext_port)
        };
        let class = class_of(proto, state, false);
        let s = self.insert_session(Session {
            proto,
            state,
            class,
            bits: 0,
            tier: None,
            ext_port,
            internal,
            remote,
            mapping: m,
            lan_ack: 0,
            created_s: u32::try_from(now.millis() / 1000).unwrap_or(u32::MAX),
            last_seen: now.millis(),
            queued_at: now.millis(),
            timer: Link::default(),
            host_link: Link::default(),
        });
        self.forecaster.entered(class, now);
        // A TCP SYN's session is armed in the fast path at once (`engine::offload`).
        self.offload_sync(s);
        s
    }

    /// Puts a session row whose class, state and times are set (its tier and links are
    /// not: they follow from the row) into the arena, its timer FIFO (at the tail), its
    /// host's tier list, both indexes and its destination's record, and counts it on its
    /// mapping and host. What a new flow and a restore (`engine::restore`) share.
    pub(super) fn insert_session(&mut self, sess: Session) -> u32 {
        let (proto, internal, ext_port, remote, m) = (
            sess.proto,
            sess.internal,
            sess.ext_port,
            sess.remote,
            sess.mapping,
        );
        let tier = Tier::of(proto, sess.state, sess.is_stream());
        let host = {
            let x = &mut self.mappings[m as usize];
            x.sessions += 1;
            x.host
        };
        let s = match self.free_sessions.pop() {
            Some(i) => {
                self.sessions[i as usize] = sess;
                i
            }
            None => {
                self.sessions.push(sess);
                (self.sessions.len() - 1) as u32
            }
        };
        self.live_sessions += 1;
        self.pools[proto.index()].sessions += 1;
        self.timers.push(&mut self.sessions, s);
        self.entier(s, host, tier);
        self.hosts[host as usize].flows += 1;
        self.host_busy(host);
        // Both indexes (the pair is unique by construction: checked before the port was
        // chosen, or before a restore inserts it).
        let hasher = &self.hasher;
        let sessions = &self.sessions;
        let okey = pack_out(proto, internal, remote);
        self.out_index.insert(hasher.hash_one(okey), s, |i| {
            let x = &sessions[i as usize];
            hasher.hash_one(pack_out(x.proto, x.internal, x.remote))
        });
        let ikey = pack_in(proto, ext_port, remote);
        self.in_index.insert(hasher.hash_one(ikey), s, |i| {
            let x = &sessions[i as usize];
            hasher.hash_one(pack_in(x.proto, x.ext_port, x.remote))
        });
        if let Some(d) = self.dest_record(proto, remote, host) {
            d.flows += 1;
            d.flows_total += 1;
        }
        s
    }

    pub(super) fn dest_record(
        &mut self,
        proto: Protocol,
        dst: Endpoint,
        host: u32,
    ) -> Option<&mut DestRecord> {
        let key = (proto, dst);
        if !self.dests.contains_key(&key) && self.dests.len() >= MAX_DESTINATIONS {
            self.dests.retain(|_, d| d.flows > 0);
            if self.dests.len() >= MAX_DESTINATIONS {
                return None;
            }
        }
        let addr = self.hosts[host as usize].addr;
        let d = self.dests.entry(key).or_default();
        d.note_host(addr);
        Some(d)
    }

    pub(super) fn remove_session(&mut self, s: u32, now: Timestamp) {
        let (proto, internal, remote, ext_port, m, tier) = {
            let x = &self.sessions[s as usize];
            (x.proto, x.internal, x.remote, x.ext_port, x.mapping, x.tier)
        };
        if m == NIL {
            return;
        }
        let host = self.mappings[m as usize].host;
        self.offload_forget(s);
        self.timers.unlink(&mut self.sessions, s);
        self.untier(s, host);
        if tier == Some(Tier::Unanswered) {
            // It dies unanswered: evidence for the culprit score.
            self.hosts[host as usize].note_unanswered(now, proto, remote);
        }
        let ohash = self.hasher.hash_one(pack_out(proto, internal, remote));
        self.out_index.remove(ohash, s);
        let ihash = self.hasher.hash_one(pack_in(proto, ext_port, remote));
        self.in_index.remove(ihash, s);
        self.hosts[host as usize].flows -= 1;
        if let Some(d) = self.dests.get_mut(&(proto, remote)) {
            d.flows = d.flows.saturating_sub(1);
        }
        self.live_sessions -= 1;
        self.pools[proto.index()].sessions -= 1;
        self.sessions[s as usize].mapping = NIL;
        self.free_sessions.push(s);
        let mm = &mut self.mappings[m as usize];
        mm.sessions -= 1;
        if mm.sessions == 0 && !mm.is_held() {
            self.release_mapping(m, now, true);
        }
        self.host_maybe_idle(host, now);
    }

    /// Notes the ports in use of `proto` after a change: peaks, and the budget level
    /// events (`pool::PortPool::note_use`).
    pub(super) fn after_budget_change(&mut self, proto: Protocol, now: Timestamp) {
        let pool = &mut self.pools[proto.index()];
        let events = pool.note_use(proto, self.budget, now);
        self.ledger.note_in_use(pool.in_use(), now);
        for kind in events.into_iter().flatten() {
            self.ledger.push_event(now, kind);
        }
    }
}

/// Folds a list of ranges onto one line, eliding the middle of long lists.
fn fold(ranges: &[String]) -> String {
    if ranges.len() <= 4 {
        ranges.join(", ")
    } else {
        format!(
            "{}, {}, ..., {} ({} ranges)",
            ranges[0],
            ranges[1],
            ranges[ranges.len() - 1],
            ranges.len()
        )
    }
}
