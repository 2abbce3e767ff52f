//! New flows: the endpoint-independent mapping reused when it can be, the port a new
//! mapping gets (by the policy's strategy), per-host quotas, and the recycling and
//! reclaiming that make room when the budget is out.

use crate::config::PortStrategy;
use crate::drop::NatDrop;
use crate::keys::pack_map;
use crate::list::{Link, NIL};
use crate::session::{host_link, timer_link, MappingKind, Session};
use crate::stats::EventKind;
use crate::tier::Tier;
use crate::timers::CLASS_TCP_TIME_WAIT;
use crate::types::{Endpoint, OutboundPacket, Protocol, SessionState, Timestamp};
use std::hash::BuildHasher;

use super::{Nat, RefuseNotice};

/// An answered stream a host may recycle for itself has been silent this long (as long as
/// the shortest timer the policy gives a flow that never got an answer).
const STREAM_IDLE_MS: u64 = 30_000;
/// How many entries of a list the recycling looks at for one that makes room.
const RECLAIM_SCAN: usize = 64;
/// Ports a host at its cap may recycle of its own for one new flow, at most.
const CAP_RECYCLE_TRIES: u32 = 16;
/// Reclaim rounds (closing, own idle, over cap) for one new flow when the budget is out.
const RECLAIM_TRIES: u32 = 8;
/// Random ports the `random-probe` strategy tries for a free tuple (`nf_nat_core.c` style).
const RANDOM_PROBES: u32 = 128;
/// Free ports drawn, at most, for one of the source port's parity (RFC 4787 REQ-4).
const PARITY_TRIES: u32 = 4;
/// Random in-use ports tried for a shareable one before the scan.
const SHARE_PROBES: u32 = 32;
/// Ports the scan for a shareable one looks at, at most.
const SHARE_SCAN: u32 = 4096;
/// Streams looked at, at most, for one idle long enough to recycle.
const STREAM_ROTATE: u32 = 8;

impl Nat {
    #[cold]
    #[inline(never)]
    pub(super) fn new_flow(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
    ) -> Result<u32, (NatDrop, Option<RefuseNotice>)> {
        let proto = pkt.proto;
        let Some(host) = self.host_slot(pkt.src.addr, now, true) else {
            return Err(self.refuse_no_record(now, pkt));
        };
        self.host_attempt(host, now);
        self.hosts[host as usize].note_new_flow(
            now,
            proto,
            pkt.src.port,
            pkt.dst,
            &self.signatures,
        );

        // RFC 6890 / RFC 6888 REQ-6: never translate toward destinations that cannot answer.
        if pkt.dst.addr != self.external {
            if let Some(block) = self.cfg.destinations.blocked(pkt.dst.addr) {
                return Err(self.filtered(now, host, pkt, block));
            }
        }
        if self.live_sessions >= self.cfg.max_sessions {
            self.expire_bounded(now, usize::MAX);
            if self.live_sessions >= self.cfg.max_sessions {
                return Err(self.refuse(now, host, pkt, NatDrop::SessionLimit));
            }
        }

        // Endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): reuse the internal
        // endpoint's mapping when its (port, remote) pair is free.
        let mkey = pack_map(proto, pkt.src);
        let mhash = self.hasher.hash_one(mkey);
        let mappings = &self.mappings;
        if let Some(m) = self.map_index.find(mhash, |m| {
            let x = &mappings[m as usize];
            pack_map(x.proto, x.internal) == mkey
        }) {
            let port = self.mappings[m as usize].ext_port;
            if self.find_inbound(proto, port, pkt.dst).is_none() {
                let s = self.add_session(now, m, pkt.dst, Self::initial_state(pkt));
                return Ok(s);
            }
        }

        // A new mapping needs a port: first the host's share (RFC 6888 REQ-4). A host at its
        // cap trades its own idle state for the new flow (its held count never grows past
        // the cap that way); it is refused only when it holds nothing it could give up.
        let mut choice = None;
        if let (Some(q), Some(cap)) = (self.cfg.quota, self.host_cap(host)) {
            let held = self.hosts[host as usize].ports[proto.index()];
            if held >= cap {
                if !self.hosts[host as usize].capped[proto.index()] {
                    self.hosts[host as usize].capped[proto.index()] = true;
                    let addr = self.hosts[host as usize].addr;
                    self.ledger.push_event(
                        now,
                        EventKind::HostCapped {
                            host: addr,
                            proto,
                            cap,
                        },
                    );
                }
                let mut tries = 0;
                while q.recycle_idle
                    && tries < CAP_RECYCLE_TRIES
                    && self.hosts[host as usize].ports[proto.index()] >= held
                {
                    tries += 1;
                    match self.recycle_own_idle(host, proto, now, None) {
                        Some(ix) => choice = Some(ix),
                        None => break,
                    }
                }
                if self.hosts[host as usize].ports[proto.index()] >= held {
                    return Err(self.refuse(now, host, pkt, NatDrop::HostQuota));
                }
            }
        }

        // The port the host just gave up serves the new flow when its tuple is free;
        // otherwise the strategy picks one.
        let syn = (proto == Protocol::Tcp && pkt.flags.is_syn_only()).then_some(now);
        choice = choice.filter(|&ix| self.tuple_free(host, proto, ix, pkt.dst, syn));
        if choice.is_none() {
            choice = self.choose_port(now, host, pkt);
        }
        if choice.is_none() && self.router_below_reserve(host, proto.index()) {
            // The router below its reserve: a free port is there (`engine::router`).
            choice = self.random_free(proto.index(), pkt.src.port);
        }
        if choice.is_none() {
            // Nothing free: expire what is due, then reclaim in order: closing TCP sessions
            // of any host (RFC 7857 §3.2), this host's own idle state, the oldest unanswered
            // flow of a host over its cap. Each reclaimed port is tried for this flow first.
            self.expire_bounded(now, usize::MAX);
            choice = self.choose_port(now, host, pkt);
            let mut tries = 0;
            while choice.is_none() && tries < RECLAIM_TRIES {
                tries += 1;
                let recycle_own = self.cfg.quota.is_some_and(|q| q.recycle_idle);
                let freed = (if self.cfg.reclaim_time_wait && proto == Protocol::Tcp {
                    self.reclaim_closing(now, pkt.dst)
                } else {
                    None
                })
                .or_else(|| {
                    recycle_own
                        .then(|| self.recycle_own_idle(host, proto, now, Some(pkt.dst)))
                        .flatten()
                })
                .or_else(|| {
                    self.cfg
                        .reclaim_from_over_cap
                        .then(|| self.reclaim_from_over_cap(host, proto, now))
                        .flatten()
                });
                let Some(ix) = freed else {
                    break;
                };
                choice = Some(ix)
                    .filter(|&ix| self.tuple_free(host, proto, ix, pkt.dst, syn))
                    .or_else(|| self.choose_port(now, host, pkt));
            }
        }
        let Some(ix) = choice else {
            return Err(self.refuse(now, host, pkt, NatDrop::PortsExhausted));
        };
        let port = self.ports.nth(ix).unwrap_or(0);
        // A closing session that held the tuple gives it up to the new SYN (RFC 7857 §3.2).
        if let Some(old) = self.find_inbound(proto, port, pkt.dst) {
            if !self.closing_reclaimable(old, now) {
                // Every path above checked the tuple; never two sessions on one.
                return Err(self.refuse(now, host, pkt, NatDrop::PortsExhausted));
            }
            self.recycle(old, now);
        }
        let m = self.new_mapping(now, host, proto, pkt.src, port, ix);
        Ok(self.add_session(now, m, pkt.dst, Self::initial_state(pkt)))
    }

    fn initial_state(pkt: &OutboundPacket) -> SessionState {
        match pkt.proto {
            Protocol::Tcp => SessionState::SynSent,
            _ => SessionState::Unanswered,
        }
    }

    /// The most ports of one protocol a host may hold now: the cap while other hosts are
    /// active, the whole budget when alone; `None` when the policy has no quota.
    pub(super) fn host_cap(&self, host: u32) -> Option<u32> {
        let q = self.cfg.quota?;
        let me_active = self.hosts[host as usize].ports_held() > 0;
        let others = self.active_hosts - u32::from(me_active);
        Some(if others == 0 {
            self.budget
        } else {
            (self.budget * u32::from(q.cap_percent) / 100).max(1)
        })
    }

    fn fair_share(&self, host: u32) -> u32 {
        let me_active = self.hosts[host as usize].ports_held() > 0;
        let active = self.active_hosts + u32::from(!me_active);
        self.budget / active.max(1)
    }

    /// Picks a port index for a new mapping, by the configured strategy; `None` when none fits.
    fn choose_port(&mut self, now: Timestamp, host: u32, pkt: &OutboundPacket) -> Option<u32> {
        let proto = pkt.proto;
        let p = proto.index();
        let syn = (proto == Protocol::Tcp && pkt.flags.is_syn_only()).then_some(now);
        let preserve = self.ports.index_of(pkt.src.port);
        match self.cfg.strategy {
            PortStrategy::BudgetAware {
                share_above_percent,
            } => {
                let in_use = self.pools[p].in_use();
                let pressure = u64::from(in_use) * 100
                    >= u64::from(self.budget) * u64::from(share_above_percent);
                let may_take_free = self.pools[p].free_count() > 0 && {
                    match self.cfg.quota {
                        None => true,
                        Some(q) => {
                            let reserve = self.budget * u32::from(q.reserve_percent) / 100;
                            self.pools[p].free_count() > reserve
                                || self.hosts[host as usize].ports[p] < self.fair_share(host)
                                || self.router_below_reserve(host, p)
                        }
                    }
                };
                if pressure {
                    if let Some(ix) = self.find_shareable(host, proto, pkt.dst, syn) {
                        return Some(ix);
                    }
                }
                if may_take_free {
                    return self.free_port(host, p, preserve, pkt.src.port);
                }
                if !pressure {
                    return self.find_shareable(host, proto, pkt.dst, syn);
                }
                None
            }
            PortStrategy::RandomProbe => {
                // nf_nat_core.c: keep the source port if the tuple is unique, else random probes.
                if let Some(ix) = preserve {
                    if self.tuple_free(host, proto, ix, pkt.dst, syn) {
                        return Some(ix);
                    }
                }
                // Every port already talks to this remote (each of its flows holds a distinct
                // port): no tuple can be free, so the probes would all fail.
                let usable = self.budget - self.pools[p].reserved;
                if !self.closing_may_serve(syn)
                    && self
                        .dests
                        .get(&(proto, pkt.dst))
                        .is_some_and(|d| d.flows >= usable)
                {
                    return None;
                }
                for _ in 0..RANDOM_PROBES {
                    let ix = self.rng.below(self.budget);
                    if self.tuple_free(host, proto, ix, pkt.dst, syn) {
                        return Some(ix);
                    }
                }
                None
            }
            PortStrategy::FreeFirst { share_tcp } => {
                if let Some(ix) = self.free_port(host, p, preserve, pkt.src.port) {
                    return Some(ix);
                }
                if share_tcp && proto == Protocol::Tcp {
                    return self.find_shareable(host, proto, pkt.dst, syn);
                }
                None
            }
        }
    }

    /// Whether port index `ix` can carry a new flow of `proto` to `remote`: not static, and
    /// no live session on (port, remote), except, for a new TCP SYN (`syn`: its time) when
    /// the policy allows, a closing one that may be reclaimed then (a new incarnation of
    /// the connection: RFC 7857 §3.2, RFC 6191; `Nat::closing_reclaimable`).
    fn tuple_free(
        &self,
        host: u32,
        proto: Protocol,
        ix: u32,
        remote: Endpoint,
        syn: Option<Timestamp>,
    ) -> bool {
        let slot = self.pools[proto.index()].slots[ix as usize];
        if slot.is_static || !self.may_use_slot(host, proto.index(), &slot) {
            return false;
        }
        let Some(port) = self.ports.nth(ix) else {
            return false;
        };
        if slot.users == 0 {
            return true;
        }
        match self.find_inbound(proto, port, remote) {
            None => true,
            Some(s) => syn.is_some_and(|now| {
                self.cfg.reuse_closing_for_syn && self.closing_reclaimable(s, now)
            }),
        }
    }

    /// A free port: the source port itself when it is ours and unused (port preservation,
    /// RFC 4787 REQ-3 spirit; `preserve` is its index), else a random one.
    fn free_port(
        &mut self,
        host: u32,
        p: usize,
        preserve: Option<u32>,
        src_port: u16,
    ) -> Option<u32> {
        if !self.may_take_free(host, p) {
            return None;
        }
        if let Some(ix) = preserve.filter(|&ix| self.pools[p].slots[ix as usize].is_unused()) {
            return Some(ix);
        }
        self.random_free(p, src_port)
    }

    /// A random free port, preferring the source port's parity (RFC 4787 REQ-4).
    fn random_free(&mut self, p: usize, src_port: u16) -> Option<u32> {
        let n = self.pools[p].free_count();
        if n == 0 {
            return None;
        }
        let mut pick = 0;
        for _ in 0..PARITY_TRIES {
            pick = self.pools[p].free_at(self.rng.below(n));
            if self
                .ports
                .nth(pick)
                .is_some_and(|port| port & 1 == src_port & 1)
            {
                break;
            }
        }
        Some(pick)
    }

    /// Whether a closing session may give its tuple to this new flow (a TCP SYN, the policy
    /// allowing it, and some closing session alive).
    fn closing_may_serve(&self, syn: Option<Timestamp>) -> bool {
        syn.is_some() && self.cfg.reuse_closing_for_syn && self.timers.len(CLASS_TCP_TIME_WAIT) > 0
    }

    /// An in-use, non-static port whose (port, remote) pair is free: port overlapping across
    /// remote endpoints (RFC 7857 §3), for every protocol.
    fn find_shareable(
        &mut self,
        host: u32,
        proto: Protocol,
        remote: Endpoint,
        syn: Option<Timestamp>,
    ) -> Option<u32> {
        let p = proto.index();
        let in_use = self.pools[p].in_use();
        if in_use == 0 {
            return None;
        }
        // Every in-use port already talks to this remote: nothing to share.
        if !self.closing_may_serve(syn)
            && self
                .dests
                .get(&(proto, remote))
                .is_some_and(|d| d.flows >= in_use)
        {
            return None;
        }
        let usable = |nat: &Self, ix: u32| {
            let slot = nat.pools[p].slots[ix as usize];
            slot.users > 0 && nat.tuple_free(host, proto, ix, remote, syn)
        };
        for _ in 0..SHARE_PROBES {
            let ix = self.rng.below(self.budget);
            if usable(self, ix) {
                return Some(ix);
            }
        }
        let start = self.rng.below(self.budget);
        (0..self.budget.min(SHARE_SCAN))
            .map(|i| (start + i) % self.budget)
            .find(|&ix| usable(self, ix))
    }

    /// Ends session `s` to make room and returns the position of its port in the set.
    fn recycle(&mut self, s: u32, now: Timestamp) -> Option<u32> {
        let (port, m) = {
            let x = &self.sessions[s as usize];
            (x.ext_port, x.mapping)
        };
        let host = self.mappings[m as usize].host;
        self.hosts[host as usize].recycled += 1;
        self.forecaster
            .left_early(self.sessions[s as usize].class, now);
        self.remove_session(s, now);
        self.ports.index_of(port)
    }

    /// Whether ending session `s` makes room for a new flow at `now`: it may be reclaimed
    /// (not a reset still in its grace, `Nat::closing_reclaimable`), it is its mapping's
    /// last session (the host's held count drops), and, when the new flow goes to `want`,
    /// its port is left free or its (port, remote) tuple is `want`'s. Never a session of a
    /// port mapping (`engine::mappings`: its port stays held).
    fn makes_room(&self, s: u32, now: Timestamp, want: Option<Endpoint>) -> bool {
        let x = &self.sessions[s as usize];
        let m = &self.mappings[x.mapping as usize];
        // A port mapping keeps its port when its last session goes.
        if m.sessions != 1 || m.kind == MappingKind::Leased || self.in_rst_grace(s, now) {
            return false;
        }
        let Some(want) = want else {
            return true;
        };
        x.remote == want
            || self
                .ports
                .index_of(x.ext_port)
                .is_some_and(|ix| self.pools[x.proto.index()].slots[ix as usize].users == 1)
    }

    /// The first of at most `RECLAIM_SCAN` entries of a list (host tier or timer FIFO, as
    /// `link` says), from its head, that makes room (see [`Nat::makes_room`]).
    fn first_making_room(
        &mut self,
        head: u32,
        now: Timestamp,
        want: Option<Endpoint>,
        link: fn(&mut Session) -> &mut Link,
    ) -> Option<u32> {
        let mut s = head;
        for _ in 0..RECLAIM_SCAN {
            if s == NIL {
                return None;
            }
            if self.makes_room(s, now, want) {
                return Some(s);
            }
            s = link(&mut self.sessions[s as usize]).next;
        }
        None
    }

    /// The session `host` can best give up for a new flow of `proto` (to `want`, when the
    /// budget is out; `None` at the host's cap), if any: a closing TCP connection first;
    /// then, least recently used first, a one-shot exchange that got its answer or a flow
    /// still unanswered; then a stream idle for `STREAM_IDLE_MS`. Entries that make room
    /// come before the heads of their lists. Nothing live is ever taken: TCP that is
    /// established, opening from outside or half closed is in no tier. Bounded: at most
    /// `RECLAIM_SCAN` entries per list are looked at.
    fn own_idle(
        &mut self,
        host: u32,
        proto: Protocol,
        now: Timestamp,
        want: Option<Endpoint>,
    ) -> Option<u32> {
        let p = proto.index();
        let lists = self.host_lists[host as usize][p];
        let heads = [
            lists[Tier::Closing.ix()].head,
            lists[Tier::AnsweredOnce.ix()].head,
            lists[Tier::Unanswered.ix()].head,
        ];
        let lru = |nat: &Self, o: u32, u: u32| match (o, u) {
            (NIL, NIL) => None,
            (NIL, u) => Some(u),
            (o, NIL) => Some(o),
            (o, u) => Some(
                if nat.sessions[o as usize].last_seen <= nat.sessions[u as usize].last_seen {
                    o
                } else {
                    u
                },
            ),
        };
        let roomy = heads.map(|h| {
            self.first_making_room(h, now, want, host_link)
                .unwrap_or(NIL)
        });
        if roomy[0] != NIL {
            return Some(roomy[0]);
        }
        if let Some(s) = lru(self, roomy[1], roomy[2]) {
            return Some(s);
        }
        if heads[0] != NIL && !self.in_rst_grace(heads[0], now) {
            return Some(heads[0]);
        }
        if let Some(s) = lru(self, heads[1], heads[2]) {
            return Some(s);
        }
        // Streams: the list is in the order they became streams; one heard from recently
        // goes to the tail (lazy LRU), at most `STREAM_ROTATE` per call.
        for _ in 0..STREAM_ROTATE {
            let s = self.host_lists[host as usize][p][Tier::Stream.ix()].head;
            if s == NIL {
                return None;
            }
            if now
                .millis()
                .saturating_sub(self.sessions[s as usize].last_seen)
                >= STREAM_IDLE_MS
            {
                return Some(s);
            }
            let list = &mut self.host_lists[host as usize][p][Tier::Stream.ix()];
            list.unlink(&mut self.sessions, s, host_link);
            list.push_back(&mut self.sessions, s, host_link);
        }
        None
    }

    /// Recycles `host`'s own best idle session of `proto` (see [`Nat::own_idle`]); returns
    /// the position of the port it held.
    fn recycle_own_idle(
        &mut self,
        host: u32,
        proto: Protocol,
        now: Timestamp,
        want: Option<Endpoint>,
    ) -> Option<u32> {
        let s = self.own_idle(host, proto, now, want)?;
        let ix = self.recycle(s, now);
        self.check_culprit(now, host);
        ix
    }

    /// A closing TCP session of any host, the oldest that makes room for a flow to `want`
    /// among the first `RECLAIM_SCAN`, else the oldest (RFC 7857 §3.2: a port in
    /// TIME_WAIT may be reused when it is needed).
    fn reclaim_closing(&mut self, now: Timestamp, want: Endpoint) -> Option<u32> {
        let head = self.timers.head(CLASS_TCP_TIME_WAIT);
        if head == NIL {
            return None;
        }
        let pick = self
            .first_making_room(head, now, Some(want), timer_link)
            .or_else(|| (!self.in_rst_grace(head, now)).then_some(head))?;
        self.recycle(pick, now)
    }

    /// When the budget is exhausted, the oldest unanswered flow of the host furthest over its
    /// cap makes room (never an answered flow; never a host within its share). A deliberate,
    /// narrow exception to RFC 6888 REQ-11, which the 240-port budget forces.
    fn reclaim_from_over_cap(
        &mut self,
        asking: u32,
        proto: Protocol,
        now: Timestamp,
    ) -> Option<u32> {
        let p = proto.index();
        // Every candidate holds ports, so is active: its share and cap are the same for
        // all of them, and the one holding the most decides (O(log hosts) through the
        // index; the scan over every host it replaces was O(hosts)).
        let (h, held) = self.most_held_unanswered(asking, p)?;
        let share = self.fair_share(h).max(1);
        let limit = self.host_cap(h).map_or(share, |cap| cap.min(share));
        if held <= limit {
            return None;
        }
        let s = self.host_lists[h as usize][p][Tier::Unanswered.ix()].head;
        let ix = self.recycle(s, now);
        self.check_culprit(now, h);
        ix
    }
}
