//! The per-host records: one per LAN source address, in a slot arena with a free list,
//! bounded in number (`NatConfig::max_hosts`) and in time (a record that holds nothing is
//! given up `HOST_IDLE_MS` after its last flow ended), and the index that lets the
//! exhaustion path find the host furthest over its cap without scanning every host.
//!
//! A record holds nothing when it has no session and no static forward; it then sits on
//! the idle list, oldest first (an intrusive FIFO: O(1) to join, leave and expire). A new
//! flow attempt of an idle host refreshes its place. At the cap, a new host takes the slot
//! of the longest idle record (its statistics go: nothing else referred to it); with none
//! idle, the new host is refused, counted `host_limit`, and hosts with a record keep
//! working. Everything is driven by the `now` the caller passes (sans-IO).

use std::cmp::Reverse;
use std::net::Ipv4Addr;

use crate::list::{List, NIL};
use crate::stats::HostRecord;
use crate::tier::{Tier, TIERS};
use crate::types::Timestamp;

use super::Nat;

/// A record that holds nothing is given up after this long without a new flow attempt:
/// longer than every idle timer of an unanswered or one-shot flow (at most 300 s in the
/// built-in policies), so `show hosts` still lists a host that just went quiet, with its
/// refusals, for a while; short enough that addresses that came and went (DHCP churn,
/// a spoofing storm) leave within minutes.
pub(crate) const HOST_IDLE_MS: u64 = 600_000;
/// Idle records given up per timer tick, at most (the rest on the next ticks).
const HOST_EXPIRE_WORK: usize = 64;

/// The idle list link of a host record (for `List`).
fn idle_link(h: &mut HostRecord) -> &mut crate::list::Link {
    &mut h.idle_link
}

/// What the host-record code keeps next to the records.
#[derive(Debug, Default)]
pub(super) struct HostBook {
    /// Slots given up, for reuse.
    pub(super) free: Vec<u32>,
    /// Records holding nothing, the longest idle first.
    pub(super) idle: List,
    /// Per protocol, the hosts with an unanswered flow of it, by (ports held, lowest slot
    /// first): the exhaustion path's victim is the last entry that is not the asker.
    pub(super) unanswered: [std::collections::BTreeSet<(u32, Reverse<u32>)>; 3],
    /// Records given up after `HOST_IDLE_MS`.
    pub(super) expired: u64,
    /// Idle records given up early for a new host at the cap.
    pub(super) evicted: u64,
}

impl Nat {
    /// The record of `addr`, made if needed. `None` at the cap with no idle record to give
    /// up. Static forwards pass `bounded = false`: the configuration, not traffic, sets
    /// their number.
    pub(super) fn host_slot(
        &mut self,
        addr: Ipv4Addr,
        now: Timestamp,
        bounded: bool,
    ) -> Option<u32> {
        if let Some(&h) = self.host_ix.get(&addr) {
            return Some(h);
        }
        if bounded && self.host_ix.len() >= self.cfg.max_hosts as usize {
            let oldest = self.book.idle.head;
            if oldest == NIL {
                return None;
            }
            self.free_host(oldest);
            self.book.evicted += 1;
        }
        let mut rec = HostRecord::new(addr);
        rec.router = self.router_addr(addr);
        let h = match self.book.free.pop() {
            Some(h) => {
                self.hosts[h as usize] = rec;
                self.host_lists[h as usize] = [[List::default(); TIERS]; 3];
                h
            }
            None => {
                self.hosts.push(rec);
                self.host_lists.push([[List::default(); TIERS]; 3]);
                (self.hosts.len() - 1) as u32
            }
        };
        self.host_ix.insert(addr, h);
        self.host_maybe_idle(h, now);
        Some(h)
    }

    /// A new flow attempt of `h`: an idle record starts its idle time again.
    pub(super) fn host_attempt(&mut self, h: u32, now: Timestamp) {
        if self.hosts[h as usize].idle_since.is_some() {
            self.host_busy(h);
            self.host_maybe_idle(h, now);
        }
    }

    /// `h` holds something now (a session or a forward): off the idle list.
    pub(super) fn host_busy(&mut self, h: u32) {
        if self.hosts[h as usize].idle_since.take().is_some() {
            self.book.idle.unlink(&mut self.hosts, h, idle_link);
        }
    }

    /// `h` may hold nothing now: onto the idle list, idle from `now`.
    pub(super) fn host_maybe_idle(&mut self, h: u32, now: Timestamp) {
        let r = &self.hosts[h as usize];
        if r.flows == 0 && r.forwards == 0 && r.idle_since.is_none() {
            self.hosts[h as usize].idle_since = Some(now);
            self.book.idle.push_back(&mut self.hosts, h, idle_link);
        }
    }

    /// Gives up the records idle for `HOST_IDLE_MS` by `now`; `all` lifts the per-tick bound.
    pub(super) fn expire_hosts(&mut self, now: Timestamp, all: bool) {
        let mut work = if all { usize::MAX } else { HOST_EXPIRE_WORK };
        while work > 0 {
            let h = self.book.idle.head;
            let Some(since) = self.hosts.get(h as usize).and_then(|r| r.idle_since) else {
                return;
            };
            if now.millis().saturating_sub(since.millis()) < HOST_IDLE_MS {
                return;
            }
            self.free_host(h);
            self.book.expired += 1;
            work -= 1;
        }
    }

    /// Gives up idle record `h`: nothing refers to it (no session, mapping or forward;
    /// destinations and refusals keep addresses, not slots) but the list of named culprits,
    /// which forgets it here so that a new host in the slot is not taken for it.
    fn free_host(&mut self, h: u32) {
        self.host_busy(h);
        self.named.retain(|&n| n != h);
        let addr = self.hosts[h as usize].addr;
        self.host_ix.remove(&addr);
        self.hosts[h as usize] = HostRecord::new(Ipv4Addr::UNSPECIFIED);
        self.book.free.push(h);
    }

    /// Sets the ports of protocol `p` that `h` holds, keeping the unanswered index in step.
    pub(super) fn set_held(&mut self, h: u32, p: usize, held: u32) {
        let old = self.hosts[h as usize].ports[p];
        if self.host_lists[h as usize][p][Tier::Unanswered.ix()].len > 0 {
            self.book.unanswered[p].remove(&(old, Reverse(h)));
            self.book.unanswered[p].insert((held, Reverse(h)));
        }
        self.hosts[h as usize].ports[p] = held;
    }

    /// `h`'s unanswered list of protocol `p` just became non-empty (`true`) or empty.
    pub(super) fn note_unanswered_list(&mut self, h: u32, p: usize, non_empty: bool) {
        let key = (self.hosts[h as usize].ports[p], Reverse(h));
        if non_empty {
            self.book.unanswered[p].insert(key);
        } else {
            self.book.unanswered[p].remove(&key);
        }
    }

    /// The host other than `asking` holding the most ports of protocol `p` among those with
    /// an unanswered flow of it (the lowest slot among equals), and what it holds:
    /// O(log hosts).
    pub(super) fn most_held_unanswered(&self, asking: u32, p: usize) -> Option<(u32, u32)> {
        self.book.unanswered[p]
            .iter()
            .rev()
            .find(|(_, Reverse(h))| *h != asking && !self.hosts[*h as usize].router)
            .map(|&(held, Reverse(h))| (h, held))
    }

    /// Host records kept now (at most `NatConfig::max_hosts`, plus hosts of forwards).
    pub fn host_records(&self) -> usize {
        self.host_ix.len()
    }

    /// Host records given up so far: after `HOST_IDLE_MS` idle, and early for a new host
    /// at the cap.
    pub fn host_records_released(&self) -> (u64, u64) {
        (self.book.expired, self.book.evicted)
    }

    /// Checks the host records against the idle list, free list and unanswered index
    /// (for `check_invariants`).
    pub(super) fn check_hosts(&self) -> Result<(), String> {
        let free: std::collections::HashSet<u32> = self.book.free.iter().copied().collect();
        if free.len() + self.host_ix.len() != self.hosts.len() {
            return Err(format!(
                "hosts: {} slots, {} free, {} indexed",
                self.hosts.len(),
                free.len(),
                self.host_ix.len()
            ));
        }
        for (&addr, &h) in &self.host_ix {
            if free.contains(&h) || self.hosts[h as usize].addr != addr {
                return Err(format!("host {addr}: index and slot {h} disagree"));
            }
        }
        let mut idle = 0;
        let mut at = self.book.idle.head;
        let mut last = 0;
        while at != NIL {
            let r = &self.hosts[at as usize];
            let Some(since) = r.idle_since else {
                return Err(format!("host {}: on the idle list, not idle", r.addr));
            };
            if r.flows != 0 || r.forwards != 0 || since.millis() < last {
                return Err(format!("host {}: idle list out of order or busy", r.addr));
            }
            last = since.millis();
            idle += 1;
            at = r.idle_link.next;
        }
        let should: usize = self
            .host_ix
            .values()
            .filter(|&&h| {
                let r = &self.hosts[h as usize];
                r.flows == 0 && r.forwards == 0
            })
            .count();
        if idle != should || idle != self.book.idle.len as usize {
            return Err(format!("idle list {idle} vs {should} idle hosts"));
        }
        for p in 0..3 {
            let want: std::collections::BTreeSet<(u32, Reverse<u32>)> = self
                .host_ix
                .values()
                .filter(|&&h| self.host_lists[h as usize][p][Tier::Unanswered.ix()].len > 0)
                .map(|&h| (self.hosts[h as usize].ports[p], Reverse(h)))
                .collect();
            if want != self.book.unanswered[p] {
                return Err(format!("unanswered index of protocol {p} disagrees"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use mape_rules::PortSet;

    use super::*;
    use crate::config::{NatConfig, StaticForward};
    use crate::drop::NatDrop;
    use crate::types::{Endpoint, InboundPacket, OutboundPacket, Protocol, TcpFlags};
    use crate::{InboundVerdict, OutboundVerdict};

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn udp(src: Endpoint, dst: Endpoint) -> OutboundPacket {
        OutboundPacket {
            proto: Protocol::Udp,
            src,
            dst,
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        }
    }

    /// 240 ports (PSID 161 of 8 bits, offset 4), the mape policy.
    fn nat(cfg: NatConfig) -> Nat {
        Nat::new(
            cfg,
            Ipv4Addr::new(14, 9, 26, 101),
            PortSet::new(161, 8, 4).unwrap(),
        )
        .unwrap()
    }

    fn translated(n: &mut Nat, now: Timestamp, p: &OutboundPacket) -> bool {
        matches!(n.outbound(now, p), OutboundVerdict::Translate { .. })
    }

    /// Whether `p` is translated and its remote's answer comes back in (also the router
    /// tests' lookup).
    pub(in crate::engine) fn answered(n: &mut Nat, now: Timestamp, p: &OutboundPacket) -> bool {
        let OutboundVerdict::Translate { external } = n.outbound(now, p) else {
            return false;
        };
        let back = InboundPacket {
            proto: Protocol::Udp,
            src: p.dst,
            dst: external,
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        };
        matches!(n.inbound(now, &back), InboundVerdict::Translate { .. })
    }

    fn shown(n: &Nat, now: Timestamp) -> Vec<Ipv4Addr> {
        n.snapshot(now).hosts.iter().map(|h| h.addr).collect()
    }

    /// .10 sends one unanswered UDP flow at t = 1 s: the mape policy ends it after 30 s
    /// (`udp_unanswered`), at t = 31 s; the record then holds nothing and goes at
    /// 31 + 600 = 631 s, not a millisecond before. `show hosts` lists it until then.
    #[test]
    fn an_idle_record_goes_after_the_idle_time() {
        let mut n = nat(NatConfig::mape());
        let p = udp(ep("192.168.1.10:5000"), ep("8.8.8.8:123"));
        assert!(translated(&mut n, Timestamp::from_secs(1), &p));
        n.expire(Timestamp::from_secs(31));
        assert_eq!(n.session_count(), 0);
        assert_eq!(n.host_records(), 1);
        n.expire(Timestamp::from_millis(630_999));
        assert_eq!(n.host_records(), 1);
        assert_eq!(
            shown(&n, Timestamp::from_secs(630)),
            [Ipv4Addr::new(192, 168, 1, 10)]
        );
        n.expire(Timestamp::from_secs(631));
        assert_eq!(n.host_records(), 0);
        assert_eq!(n.host_records_released(), (1, 0));
        assert!(shown(&n, Timestamp::from_secs(631)).is_empty());
        n.check_invariants().unwrap();
        // It comes back as a new record and works.
        assert!(translated(&mut n, Timestamp::from_secs(700), &p));
        assert_eq!(n.host_records(), 1);
        n.check_invariants().unwrap();
    }

    /// A record with a live session, or with a static forward, never goes; a new flow
    /// attempt of an idle host starts its idle time again.
    #[test]
    fn busy_records_and_forward_hosts_stay() {
        let mut cfg = NatConfig::mape();
        let fwd = StaticForward {
            proto: Protocol::Tcp,
            external_port: PortSet::new(161, 8, 4).unwrap().nth(0).unwrap(),
            internal: ep("192.168.1.50:22"),
        };
        cfg.forwards = vec![fwd];
        let mut n = nat(cfg);
        assert_eq!(n.host_records(), 1);
        // .10: an answered DNS-free stream kept alive by one packet a minute.
        let p = udp(ep("192.168.1.10:5000"), ep("8.8.8.8:123"));
        assert!(answered(&mut n, Timestamp::from_secs(0), &p));
        // .11: refused by the destination filter at 0 s and again at 500 s (holds nothing).
        let blocked = udp(ep("192.168.1.11:5000"), ep("10.1.2.3:53"));
        assert!(!translated(&mut n, Timestamp::from_secs(0), &blocked));
        for m in 1..=20u64 {
            assert!(translated(&mut n, Timestamp::from_secs(m * 60), &p));
        }
        assert!(!translated(&mut n, Timestamp::from_secs(500), &blocked));
        n.expire(Timestamp::from_secs(1099));
        assert_eq!(
            n.host_records(),
            3,
            "the .11 attempt at 500 s counts from 500 s"
        );
        n.expire(Timestamp::from_secs(1100));
        assert_eq!(n.host_records(), 2);
        assert!(n.host_ix.contains_key(&Ipv4Addr::new(192, 168, 1, 10)));
        assert!(n.host_ix.contains_key(&Ipv4Addr::new(192, 168, 1, 50)));
        n.check_invariants().unwrap();
    }

    /// `max_hosts` = 3: three hosts with live flows fill it; a fourth is refused
    /// `host_limit` (a refusal, no record) while the three keep opening flows; once one of
    /// them holds nothing, the newcomer takes its record at once (given up early).
    #[test]
    fn the_cap_holds_and_an_idle_record_makes_room() {
        let cfg = NatConfig {
            max_hosts: 3,
            ..NatConfig::mape()
        };
        let mut n = nat(cfg);
        let t0 = Timestamp::from_secs(1);
        for h in 1..=3 {
            let p = udp(ep(&format!("192.168.1.{h}:5000")), ep("8.8.8.8:123"));
            assert!(translated(&mut n, t0, &p));
        }
        let newcomer = udp(ep("192.168.1.4:5000"), ep("8.8.8.8:123"));
        assert_eq!(
            n.outbound(t0, &newcomer),
            OutboundVerdict::Drop {
                reason: NatDrop::HostLimit,
                notice: Some(crate::RefuseNotice::AdminProhibited),
            }
        );
        assert_eq!(n.drops(NatDrop::HostLimit), 1);
        assert_eq!(n.refusals(), 1);
        assert_eq!(n.host_records(), 3);
        for h in 1..=3 {
            let p = udp(ep(&format!("192.168.1.{h}:5001")), ep("9.9.9.9:123"));
            assert!(translated(&mut n, t0, &p));
        }
        let snap = n.snapshot(t0);
        assert_eq!(snap.recent_refusals[0].host, Ipv4Addr::new(192, 168, 1, 4));
        assert_eq!(snap.hosts.len(), 3);
        n.check_invariants().unwrap();
        // .1's two flows end at 31 s (unanswered), the others are refreshed at 20 s.
        let t20 = Timestamp::from_secs(20);
        for h in 2..=3 {
            for (port, dst) in [(5000, "8.8.8.8:123"), (5001, "9.9.9.9:123")] {
                let p = udp(ep(&format!("192.168.1.{h}:{port}")), ep(dst));
                assert!(translated(&mut n, t20, &p));
            }
        }
        let t31 = Timestamp::from_secs(31);
        n.expire(t31);
        assert_eq!(
            n.host_ports(Ipv4Addr::new(192, 168, 1, 1), Protocol::Udp),
            0
        );
        assert!(translated(&mut n, t31, &newcomer));
        assert_eq!(n.host_records(), 3);
        assert_eq!(n.host_records_released(), (0, 1));
        assert!(!n.host_ix.contains_key(&Ipv4Addr::new(192, 168, 1, 1)));
        n.check_invariants().unwrap();
    }

    /// 10^5 spoofed sources inside the LAN prefix (10.0.0.0/8 here: the dataplane let them
    /// through), one UDP packet each to 8.8.8.8:5353, one a millisecond, while .10 opens an
    /// answered flow to a new port of 1.1.1.1 every 100 packets. The records stay at the
    /// default cap of 4096 (no more, checked every packet), every flow of .10 gets a port
    /// (under pressure, by sharing a spoofer's port toward another remote: RFC 7857 §3),
    /// and the table's invariants hold.
    #[test]
    fn spoofed_sources_stay_bounded_and_another_host_keeps_getting_ports() {
        let mut n = nat(NatConfig::mape());
        let real = Ipv4Addr::new(192, 168, 1, 10);
        let mut peak = 0;
        let mut real_ok = 0;
        for i in 0..100_000u32 {
            let now = Timestamp::from_millis(1_000 + u64::from(i));
            let src = Endpoint::new(Ipv4Addr::from(0x0a00_0000 | (i + 1)), 40_000);
            n.outbound(now, &udp(src, ep("8.8.8.8:5353")));
            peak = peak.max(n.host_records());
            assert!(n.host_records() <= 4096);
            if i % 100 == 0 {
                let port = 20_000 + (i / 100) as u16;
                let p = udp(
                    Endpoint::new(real, port),
                    Endpoint::new([1, 1, 1, 1].into(), port),
                );
                assert!(
                    answered(&mut n, now, &p),
                    "the real host refused at packet {i}"
                );
                real_ok += 1;
            }
        }
        assert_eq!(real_ok, 1000);
        // All spoofers talk to one remote, so each needs a port of its own; a port serves
        // at most 4 of them one after another in 101 s (an unanswered flow lives 30 s):
        // at most 960 spoofers got one, the rest were refused.
        assert!(n.refusals() >= 100_000 - 960, "{}", n.refusals());
        assert_eq!(
            n.drops(NatDrop::HostLimit),
            0,
            "an idle record was always there"
        );
        assert_eq!(peak, 4096, "the storm reached the cap");
        assert!(n.host_ix.contains_key(&real));
        let (expired, evicted) = n.host_records_released();
        assert_eq!(expired, 0, "nothing was idle for 600 s within 101 s");
        // Every spoofer beyond the 4096th took an idle record: 100 000 + 1 hosts seen.
        assert_eq!(evicted, 100_001 - 4096);
        let now = Timestamp::from_secs(102);
        let snap = n.snapshot(now);
        assert!(snap.hosts.len() <= 4096);
        for h in &snap.hosts {
            assert_eq!(h.ports_by_proto[1], n.host_ports(h.addr, Protocol::Udp));
        }
        n.check_invariants().unwrap();
        // Once every flow has ended (by 7441 s at the latest: nothing here lives longer
        // than TCP established) the records are idle from that expiry on, and go 600 s
        // later.
        let ended = Timestamp::from_secs(102 + 7441);
        n.expire(ended);
        assert_eq!(n.session_count(), 0);
        n.expire(Timestamp::from_millis(ended.millis() + HOST_IDLE_MS - 1));
        // .10 still held flows until `ended`: idle from then, so still kept.
        assert!(n.host_ix.contains_key(&real));
        n.expire(Timestamp::from_millis(ended.millis() + HOST_IDLE_MS));
        assert_eq!(n.host_records(), 0);
        n.check_invariants().unwrap();
    }

    /// The exhaustion path takes from the host furthest over its cap, found through the
    /// index among 1000 idle records: .2 opens 200 unanswered flows to 8.8.8.8:443 while
    /// alone (its cap is the whole budget then), .3 the other 40 (free ports above the
    /// 10 % reserve, then below its fair share of 120). A newcomer .4 to the same remote
    /// finds no port free nor shareable: with two active hosts the limit is
    /// min(cap 120, share 240 / 2) = 120, .2 holds 200 > 120, so .2's oldest flow (source
    /// port 10000) gives up its port; .3 keeps its 40. Then .5: limit min(120, 240 / 3 =
    /// 80), .2 holds 199: again .2 (port 10001).
    #[test]
    fn reclaim_takes_from_the_host_furthest_over_its_cap() {
        let mut n = nat(NatConfig::mape());
        let t0 = Timestamp::from_secs(1);
        for i in 0..1000u32 {
            let src = Endpoint::new(Ipv4Addr::from(0xac10_0000 + i), 5000);
            assert!(!translated(&mut n, t0, &udp(src, ep("10.0.0.1:53"))));
        }
        let r = ep("8.8.8.8:443");
        let host = |h: u8| Ipv4Addr::new(192, 168, 1, h);
        for (h, count) in [(2u8, 200u16), (3, 40)] {
            for port in 0..count {
                let p = udp(Endpoint::new(host(h), 10_000 + port), r);
                assert!(translated(&mut n, t0, &p), "{h}:{port}");
            }
        }
        assert_eq!(n.ports_in_use(Protocol::Udp), 240);
        let first_of_2 = udp(Endpoint::new(host(2), 10_000), r);
        let ext = n
            .translation_of(Protocol::Udp, first_of_2.src, r)
            .expect(".2's first flow");
        let t1 = Timestamp::from_secs(2);
        let OutboundVerdict::Translate { external } =
            n.outbound(t1, &udp(Endpoint::new(host(4), 7000), r))
        else {
            panic!(".4 refused");
        };
        assert_eq!(external, ext, "the port of .2's oldest flow");
        assert_eq!(n.host_ports(host(2), Protocol::Udp), 199);
        assert_eq!(n.host_ports(host(3), Protocol::Udp), 40);
        assert_eq!(n.translation_of(Protocol::Udp, first_of_2.src, r), None);
        let second_of_2 = Endpoint::new(host(2), 10_001);
        let ext2 = n.translation_of(Protocol::Udp, second_of_2, r).unwrap();
        let OutboundVerdict::Translate { external } =
            n.outbound(t1, &udp(Endpoint::new(host(5), 7000), r))
        else {
            panic!(".5 refused");
        };
        assert_eq!(external, ext2);
        assert_eq!(n.host_ports(host(2), Protocol::Udp), 198);
        assert_eq!(n.host_records(), 1004);
        n.check_invariants().unwrap();
    }
}
