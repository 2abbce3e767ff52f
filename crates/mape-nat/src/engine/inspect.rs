//! Reading the engine without changing it: snapshots for show commands, metrics and replay
//! reports, the session list, memory accounting and the invariant checker used by tests
//! and fuzzing. All of it runs off the packet path.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::drop::NatDrop;
use crate::forecast::Forecast;
use crate::keys::pack_in;
use crate::pattern::Pattern;
use crate::query::SessionFilter;
use crate::session::{Mapping, MappingKind, Session};
use crate::stats::{Culprit, DestinationStats, HostRecord, MetricsView, ProtoBudget, Snapshot};
use crate::tier::Tier;
use crate::types::{Endpoint, Protocol, Timestamp};

use super::{Nat, SessionInfo};

impl Nat {
    /// A copy of the statistics for readers. Costs O(hosts + destinations); call it off the
    /// packet path (the daemon does once per second per worker).
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let budget = self.budget;
        let mut hosts: Vec<_> = self
            .hosts
            .iter()
            .filter(|h| h.flows > 0 || h.refusals > 0 || h.filtered > 0 || h.peak_ports > 0)
            .map(|h| h.to_stats(now, budget, &self.signatures))
            .collect();
        hosts.sort_by(|a, b| {
            b.ports_held
                .cmp(&a.ports_held)
                .then(b.culprit_score.total_cmp(&a.culprit_score))
                .then(a.addr.cmp(&b.addr))
        });
        let mut destinations: Vec<_> = self
            .dests
            .iter()
            .map(|(&(proto, dst), d)| DestinationStats {
                proto,
                dst,
                flows: d.flows,
                flows_total: d.flows_total,
                hosts: d.host_count(),
                filtered: d.filtered,
            })
            .collect();
        destinations.sort_by(|a, b| {
            (b.flows, b.flows_total + b.filtered)
                .cmp(&(a.flows, a.flows_total + a.filtered))
                .then(a.dst.cmp(&b.dst))
                .then(a.proto.cmp(&b.proto))
        });
        destinations.truncate(64);
        let sig = |h: &HostRecord| h.signature().and_then(|i| self.signatures.entries().get(i));
        let as_culprit = |h: &HostRecord, pattern: Pattern| Culprit {
            host: h.addr,
            summary: pattern.to_string(),
            top_destination: pattern.destination(),
            pattern,
            signature: sig(h).map(|s| s.name.clone()),
            description: sig(h).map(|s| s.application.clone()),
            advice: sig(h).map(|s| s.advice.clone()),
            rate_per_s: h.unanswered_rate(now),
            ports_held: h.ports_held(),
            unanswered: h.unanswered(),
            answered_once: h.tiers[Tier::AnsweredOnce.ix()],
            streams: h.tiers[Tier::Stream.ix()],
            score: h.score(now, budget),
        };
        let culprit = self
            .hosts
            .iter()
            .filter(|h| h.is_culprit(now, budget) || h.named.is_some())
            .max_by(|a, b| a.score(now, budget).total_cmp(&b.score(now, budget)))
            .map(|h| {
                let ix = self.host_ix.get(&h.addr).copied().unwrap_or(0);
                as_culprit(h, self.pattern_of(ix, now))
            });
        // No storm: a host holding half of a protocol's budget with answered, long-lived
        // flows is named as a heavy user, in words that do not blame it.
        let heavy_user = match culprit {
            Some(_) => None,
            None => self
                .hosts
                .iter()
                .filter(|h| h.ports.iter().any(|&p| p * 2 >= budget))
                .max_by_key(|h| h.ports_held())
                .map(|h| as_culprit(h, h.heavy_use())),
        };
        Snapshot {
            now,
            policy: self.cfg.name.clone(),
            external: self.external,
            budget,
            in_use: self.budget_used(),
            peak: self.ledger.peak,
            peak_at: self.ledger.peak_at,
            protocols: self.proto_budgets(),
            sessions: self.live_sessions,
            sessions_by_state: self.timers.lens().map(|(n, c)| (n.into(), c)).collect(),
            refusals: self.ledger.refusals,
            first_refusal: self.ledger.first_refusal,
            last_refusal: self.ledger.last_refusal,
            exhausted_at: self.ledger.exhausted_at,
            recent_refusals: self.ledger.recent.iter().copied().collect(),
            hosts,
            destinations,
            drops: NatDrop::ALL
                .iter()
                .map(|&r| (r, self.ledger.drops[r.index()]))
                .collect(),
            tcp_rst_unverified: self.ledger.rst_unverified,
            culprit,
            heavy_user,
            forecasts: self.forecasts(now),
            router: self.router_stats(),
        }
    }

    /// What a metrics scrape exports, with the `top` hosts holding the most ports named.
    /// Costs O(hosts) and builds no per-host statistics: cheap enough to take under the
    /// datapath lock at every scrape.
    pub fn metrics_view(&self, now: Timestamp, top: usize) -> MetricsView {
        let mut held: Vec<(u32, Ipv4Addr)> = self
            .hosts
            .iter()
            .filter(|h| !h.router)
            .map(|h| (h.ports_held(), h.addr))
            .filter(|&(n, _)| n > 0)
            .collect();
        let most_first =
            |a: &(u32, Ipv4Addr), b: &(u32, Ipv4Addr)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        if held.len() > top && top > 0 {
            held.select_nth_unstable_by(top - 1, most_first);
        }
        let rest = held.split_off(top.min(held.len()));
        held.sort_unstable_by(most_first);
        MetricsView {
            protocols: self.proto_budgets(),
            sessions_by_state: self.timers.lens().collect(),
            refusals: NatDrop::ALL
                .iter()
                .map(|&r| (r, self.ledger.refused_by[r.index()]))
                .filter(|&(r, n)| r.is_refusal() || n > 0)
                .collect(),
            forecasts: self.forecasts(now),
            top_hosts: held.into_iter().map(|(n, a)| (a, n)).collect(),
            other_hosts_ports: rest.iter().map(|&(n, _)| u64::from(n)).sum(),
            events_lost: self.ledger.events_lost,
            host_records: self.host_records() as u64,
            host_records_released: self.host_records_released(),
            router: self.router_stats(),
        }
    }

    fn proto_budgets(&self) -> Vec<ProtoBudget> {
        Protocol::ALL
            .iter()
            .map(|&proto| {
                let pool = &self.pools[proto.index()];
                ProtoBudget {
                    proto,
                    total: self.budget,
                    in_use: pool.in_use(),
                    peak: pool.peak,
                    peak_at: pool.peak_at,
                    sessions: pool.sessions,
                }
            })
            .collect()
    }

    fn forecasts(&self, now: Timestamp) -> Vec<Forecast> {
        Protocol::ALL
            .iter()
            .filter_map(|&p| self.forecast(p, now))
            .collect()
    }

    /// The live sessions (at most `limit`), for `mape show sessions`.
    pub fn sessions(&self, now: Timestamp, limit: usize) -> Vec<SessionInfo> {
        self.sessions_matching(now, &SessionFilter::default(), limit)
    }

    /// The live sessions `filter` lets through, at most `limit`, in table order. One pass
    /// over the arena that builds only the rows it returns and stops at `limit` (the
    /// daemon calls it under the datapath lock).
    pub fn sessions_matching(
        &self,
        now: Timestamp,
        filter: &SessionFilter,
        limit: usize,
    ) -> Vec<SessionInfo> {
        let mut rows = Vec::new();
        self.sessions_page(now, filter, limit, 0, usize::MAX, &mut rows);
        rows
    }

    /// One bounded step of [`Nat::sessions_matching`]: looks at no more than `scan` slots of
    /// the session table from slot `from` on, appends the rows `filter` lets through to
    /// `rows` until it holds `limit`, and returns the slot to resume from (`None`: the end
    /// of the table; the walk is also done once `rows` holds the caller's limit). A caller
    /// that holds a lock around the engine releases it between steps, so no step costs
    /// O(table); sessions created or ended between steps may or may not be listed.
    pub fn sessions_page(
        &self,
        now: Timestamp,
        filter: &SessionFilter,
        limit: usize,
        from: usize,
        scan: usize,
        rows: &mut Vec<SessionInfo>,
    ) -> Option<usize> {
        let end = from.saturating_add(scan).min(self.sessions.len());
        if rows.len() >= limit {
            return (from < self.sessions.len()).then_some(from);
        }
        for (i, s) in self.sessions.get(from..end)?.iter().enumerate() {
            if s.is_live() && filter.matches(s.proto, s.internal, s.remote, s.state) {
                rows.push(self.session_info(now, s));
                if rows.len() >= limit {
                    let next = from + i + 1;
                    return (next < self.sessions.len()).then_some(next);
                }
            }
        }
        (end < self.sessions.len()).then_some(end)
    }

    /// One row of the session list.
    fn session_info(&self, now: Timestamp, s: &Session) -> SessionInfo {
        let timeout = self.timers.timeout_ms(s.class);
        let shared = self
            .ports
            .index_of(s.ext_port)
            .is_some_and(|ix| self.pools[s.proto.index()].slots[ix as usize].users > 1);
        SessionInfo {
            proto: s.proto,
            internal: s.internal,
            external: Endpoint::new(self.external, s.ext_port),
            remote: s.remote,
            state: s.state,
            age_ms: now.since(Timestamp(u64::from(s.created_s) * 1000)),
            idle_ms: now.since(Timestamp(s.last_seen)),
            left_ms: s
                .last_seen
                .saturating_add(timeout)
                .saturating_sub(now.millis()),
            shared_port: shared,
            kind: Tier::word(s.tier).into(),
        }
    }

    /// Checks the table's invariants (tests and fuzzing): every live session is in both
    /// indexes, no two share an external 5-tuple, every port is inside the port set, every
    /// counter agrees with a recount. Returns the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen_in = std::collections::HashSet::new();
        let mut live = 0u32;
        let mut users = vec![[0u32; 3]; self.budget as usize];
        let mut host_ports = vec![[0u32; 3]; self.hosts.len()];
        let mut router_users = vec![[0u32; 3]; self.budget as usize];
        let mut mapping_sessions: HashMap<u32, u32> = HashMap::new();
        for (i, s) in self.sessions.iter().enumerate() {
            if !s.is_live() {
                continue;
            }
            live += 1;
            if !self.ports.contains(s.ext_port) {
                return Err(format!("session {i}: port {} outside the set", s.ext_port));
            }
            if !seen_in.insert(pack_in(s.proto, s.ext_port, s.remote)) {
                return Err(format!("session {i}: external 5-tuple used twice"));
            }
            if self.find_inbound(s.proto, s.ext_port, s.remote) != Some(i as u32) {
                return Err(format!("session {i}: not in the inbound index"));
            }
            *mapping_sessions.entry(s.mapping).or_default() += 1;
            let m = &self.mappings[s.mapping as usize];
            if m.ext_port != s.ext_port || m.internal != s.internal || m.proto != s.proto {
                return Err(format!("session {i}: disagrees with its mapping"));
            }
        }
        if live != self.live_sessions
            || self.out_index.len() as u32 != live
            || self.in_index.len() as u32 != live
        {
            return Err(format!(
                "live {live} vs counter {} / out {} / in {}",
                self.live_sessions,
                self.out_index.len(),
                self.in_index.len()
            ));
        }
        let free: std::collections::HashSet<u32> = self.free_mappings.iter().copied().collect();
        for (i, m) in self.mappings.iter().enumerate() {
            if free.contains(&(i as u32)) != (m.kind == MappingKind::Free) {
                return Err(format!(
                    "mapping {i}: free list and kind {:?} disagree",
                    m.kind
                ));
            }
            if m.kind == MappingKind::Free {
                continue;
            }
            let n = mapping_sessions.get(&(i as u32)).copied().unwrap_or(0);
            if n != m.sessions {
                return Err(format!(
                    "mapping {i}: {} sessions counted, {n} found",
                    m.sessions
                ));
            }
            if n == 0 && !m.is_held() {
                return Err(format!("mapping {i}: alive without sessions"));
            }
            let Some(ix) = self.ports.index_of(m.ext_port) else {
                return Err(format!("mapping {i}: port outside the set"));
            };
            users[ix as usize][m.proto.index()] += 1;
            if !m.is_static() {
                host_ports[m.host as usize][m.proto.index()] += 1;
                if self.is_router(m.host) {
                    router_users[ix as usize][m.proto.index()] += 1;
                }
            }
        }
        self.check_router(&router_users)?;
        for (p, pool) in self.pools.iter().enumerate() {
            for (ix, (slot, counted)) in pool.slots.iter().zip(&users).enumerate() {
                if slot.users != counted[p] {
                    return Err(format!(
                        "port index {ix} proto {p}: users {} vs {}",
                        slot.users, counted[p]
                    ));
                }
                let is_free = pool.is_free(ix);
                let never = slot.is_static && slot.users == 0; // port 0
                if is_free != (counted[p] == 0 && !never) {
                    return Err(format!("port index {ix} proto {p}: free list disagrees"));
                }
            }
        }
        for (h, rec) in self.hosts.iter().enumerate() {
            if rec.ports != host_ports[h] {
                return Err(format!(
                    "host {}: ports {:?} vs {:?}",
                    rec.addr, rec.ports, host_ports[h]
                ));
            }
        }
        let active = self.hosts.iter().filter(|h| h.ports_held() > 0).count() as u32;
        if active != self.active_hosts {
            return Err(format!("active hosts {} vs {active}", self.active_hosts));
        }
        self.check_hosts()?;
        self.check_leases()
    }

    /// Bytes held by the session table: arenas, free lists, the three indexes (64-byte
    /// buckets of twelve ids) and the port pools. Used to report memory per session.
    pub fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        self.sessions.capacity() * size_of::<Session>()
            + self.mappings.capacity() * size_of::<Mapping>()
            + (self.free_sessions.capacity() + self.free_mappings.capacity()) * size_of::<u32>()
            + self.out_index.bytes()
            + self.in_index.bytes()
            + self.map_index.bytes()
            + self
                .pools
                .iter()
                .map(crate::pool::PortPool::bytes)
                .sum::<usize>()
    }

    /// Ports of `proto` that `host` holds now (one per mapping).
    pub fn host_ports(&self, host: Ipv4Addr, proto: Protocol) -> u32 {
        self.host_ix
            .get(&host)
            .map_or(0, |&h| self.hosts[h as usize].ports[proto.index()])
    }

    /// The most ports `host` may hold now for `proto` (its cap), for show commands.
    pub fn cap_of(&self, host: Ipv4Addr, _proto: Protocol) -> Option<u32> {
        let h = *self.host_ix.get(&host)?;
        self.host_cap(h)
    }
}

#[cfg(test)]
mod tests {
    use mape_rules::PortSet;

    use super::*;
    use crate::config::NatConfig;
    use crate::query::RemoteFilter;
    use crate::types::{InboundPacket, OutboundPacket, SessionState, TcpFlags};
    use crate::{InboundVerdict, OutboundVerdict};

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn out(proto: Protocol, src: &str, dst: &str, flags: u8) -> OutboundPacket {
        OutboundPacket {
            proto,
            src: ep(src),
            dst: ep(dst),
            flags: TcpFlags(flags),
            seq: 0,
            ack: 0,
        }
    }

    /// Four flows of two hosts, by hand: .10 asks 8.8.8.8:53 (answered) and opens TCP to
    /// 1.1.1.1:443; .11 sends to 8.8.8.8:123 and 9.9.9.9:53 (both unanswered).
    fn table() -> Nat {
        let ports = PortSet::new(161, 8, 4).unwrap();
        let mut n = Nat::new(NatConfig::mape(), Ipv4Addr::new(14, 9, 26, 101), ports).unwrap();
        let now = Timestamp::from_secs(1);
        let dns = out(Protocol::Udp, "192.168.1.10:5000", "8.8.8.8:53", 0);
        let OutboundVerdict::Translate { external } = n.outbound(now, &dns) else {
            panic!("not translated");
        };
        let answer = InboundPacket {
            proto: Protocol::Udp,
            src: dns.dst,
            dst: external,
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        };
        assert!(matches!(
            n.inbound(now, &answer),
            InboundVerdict::Translate { .. }
        ));
        for p in [
            out(
                Protocol::Tcp,
                "192.168.1.10:5001",
                "1.1.1.1:443",
                TcpFlags::SYN,
            ),
            out(Protocol::Udp, "192.168.1.11:6000", "8.8.8.8:123", 0),
            out(Protocol::Udp, "192.168.1.11:6001", "9.9.9.9:53", 0),
        ] {
            assert!(matches!(
                n.outbound(now, &p),
                OutboundVerdict::Translate { .. }
            ));
        }
        n
    }

    /// The (internal, remote, state) of each row, sorted.
    fn rows(n: &Nat, f: SessionFilter, limit: usize) -> Vec<(Endpoint, Endpoint, SessionState)> {
        let mut v: Vec<_> = n
            .sessions_matching(Timestamp::from_secs(2), &f, limit)
            .iter()
            .map(|s| (s.internal, s.remote, s.state))
            .collect();
        v.sort_by_key(|r| (r.0, r.1));
        v
    }

    #[test]
    fn sessions_matching_returns_what_the_filter_names_up_to_the_limit() {
        let n = table();
        let all = SessionFilter::default();
        let dns10 = (
            ep("192.168.1.10:5000"),
            ep("8.8.8.8:53"),
            SessionState::DnsAnswered,
        );
        let tcp10 = (
            ep("192.168.1.10:5001"),
            ep("1.1.1.1:443"),
            SessionState::SynSent,
        );
        let ntp11 = (
            ep("192.168.1.11:6000"),
            ep("8.8.8.8:123"),
            SessionState::Unanswered,
        );
        let dns11 = (
            ep("192.168.1.11:6001"),
            ep("9.9.9.9:53"),
            SessionState::Unanswered,
        );
        assert_eq!(rows(&n, all, usize::MAX), [dns10, tcp10, ntp11, dns11]);
        assert_eq!(n.sessions(Timestamp::from_secs(2), usize::MAX).len(), 4);
        let host = |a: u8| SessionFilter {
            host: Some(Ipv4Addr::new(192, 168, 1, a)),
            ..all
        };
        assert_eq!(rows(&n, host(10), usize::MAX), [dns10, tcp10]);
        assert_eq!(rows(&n, host(12), usize::MAX), []);
        let google = Ipv4Addr::new(8, 8, 8, 8);
        let to = |r| SessionFilter {
            remote: Some(r),
            ..all
        };
        assert_eq!(
            rows(&n, to(RemoteFilter::Addr(google)), usize::MAX),
            [dns10, ntp11]
        );
        assert_eq!(
            rows(&n, to(RemoteFilter::Endpoint(ep("8.8.8.8:53"))), usize::MAX),
            [dns10]
        );
        let state = |st| SessionFilter {
            state: Some(st),
            ..all
        };
        assert_eq!(
            rows(&n, state(SessionState::Unanswered), usize::MAX),
            [ntp11, dns11]
        );
        // The limit counts rows that pass, not sessions looked at.
        let one = rows(&n, state(SessionState::Unanswered), 1);
        assert!(one == [ntp11] || one == [dns11], "{one:?}");
        assert_eq!(rows(&n, all, 0), []);
        let tcp11 = SessionFilter {
            proto: Some(Protocol::Tcp),
            ..host(11)
        };
        assert_eq!(rows(&n, tcp11, usize::MAX), []);
        let tcp = SessionFilter {
            proto: Some(Protocol::Tcp),
            ..all
        };
        assert_eq!(rows(&n, tcp, usize::MAX), [tcp10]);
    }

    #[test]
    fn sessions_page_steps_through_the_table_in_bounded_slices() {
        let n = table();
        let now = Timestamp::from_secs(2);
        let all = SessionFilter::default();
        let whole = n.sessions_matching(now, &all, usize::MAX);
        assert_eq!(whole.len(), 4);
        // One slot at a time: the same rows in the same order, one resume point per slot.
        let (mut rows, mut from, mut steps) = (Vec::new(), Some(0), 0);
        while let Some(f) = from {
            from = n.sessions_page(now, &all, usize::MAX, f, 1, &mut rows);
            steps += 1;
            assert!(steps <= 4, "a slice of one slot must move on");
        }
        let key = |r: &SessionInfo| (r.internal, r.remote);
        assert_eq!(
            rows.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>()
        );
        // The limit ends a step early, and the next step resumes after the last row.
        let mut two = Vec::new();
        assert_eq!(
            n.sessions_page(now, &all, 2, 0, usize::MAX, &mut two),
            Some(2)
        );
        assert_eq!(two.len(), 2);
        assert_eq!(n.sessions_page(now, &all, 4, 2, usize::MAX, &mut two), None);
        assert_eq!(
            two.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>()
        );
        // Past the end: nothing, done.
        let mut none = Vec::new();
        assert_eq!(n.sessions_page(now, &all, 9, 99, 1, &mut none), None);
        assert!(none.is_empty());
    }
}
