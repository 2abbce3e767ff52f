//! The router's own flows (`NatConfig::router`): which host records are the router, the
//! ports held by the router alone, and the gate that keeps `reserve_ports` of each
//! protocol's set for them whatever the number of LAN hosts.
//!
//! The invariant, per protocol: free ports + ports used by router flows alone
//! (`RouterBook::alone`) ≥ `reserve_ports`. LAN hosts take a free port only while that sum
//! is above the reserve, and never share a port a router flow uses (the router's flow
//! could end and leave the port neither free nor the router's). The router takes a free
//! port whenever it holds fewer than `reserve_ports` alone, whatever the strategy or its
//! pressure rules say. Port randomisation (RFC 6056) is kept: the reserved ports are no
//! fixed ports, just a count of the free list. Static forwards (configuration) are
//! outside this count and may make the free list shorter; a LAN app's port mapping
//! (PCP, NAT-PMP, UPnP lease) is a free port taken like a flow's, through the same gate.

use crate::pool::PortSlot;
use crate::session::MappingKind;

use super::Nat;

/// What the router code keeps next to the records.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RouterBook {
    /// Per protocol, ports whose every user is a router flow.
    pub(super) alone: [u32; 3],
}

/// Whether a slot counts as the router's alone.
fn alone(slot: &PortSlot) -> bool {
    slot.router_users > 0 && slot.users == slot.router_users
}

impl Nat {
    /// Whether the reservation is in force: some router address and a non-zero reserve.
    fn reserving(&self) -> bool {
        self.cfg.router.reserve_ports > 0 && !self.cfg.router.addresses.is_empty()
    }

    /// The reserve in force: as configured, at most half the set (a small set keeps
    /// ports for its LAN too).
    fn reserve(&self) -> u32 {
        self.cfg.router.reserve_ports.min(self.budget / 2)
    }

    /// Whether host record `h` is the router.
    pub(super) fn is_router(&self, h: u32) -> bool {
        self.hosts[h as usize].router
    }

    /// Whether `addr` is one of the router's addresses.
    pub(super) fn router_addr(&self, addr: std::net::Ipv4Addr) -> bool {
        self.cfg.router.addresses.contains(&addr)
    }

    /// Whether host `h` may take a free port of protocol `p` now.
    pub(super) fn may_take_free(&self, h: u32, p: usize) -> bool {
        if !self.reserving() || self.is_router(h) {
            return true;
        }
        let kept = self.reserve().saturating_sub(self.router.alone[p]);
        self.pools[p].free_count() > kept
    }

    /// Whether host `h` may put a mapping on port slot `slot` of protocol `p` (free or in
    /// use; the tuple is checked elsewhere).
    pub(super) fn may_use_slot(&self, h: u32, p: usize, slot: &PortSlot) -> bool {
        if slot.users == 0 {
            self.may_take_free(h, p)
        } else {
            slot.router_users == 0 || self.is_router(h)
        }
    }

    /// Whether host `h` is the router and below its reserve for protocol `p`: it takes a
    /// free port then, whatever the strategy says.
    pub(super) fn router_below_reserve(&self, h: u32, p: usize) -> bool {
        self.reserving() && self.is_router(h) && self.router.alone[p] < self.reserve()
    }

    /// A mapping of host `h` is about to join (`joined`) or leave slot `ix` of protocol
    /// `p` (called before the slot's `users` changes): keeps the slot's router users and
    /// the count of ports the router holds alone in step.
    pub(super) fn router_slot_change(&mut self, h: u32, p: usize, ix: u32, joined: bool) {
        let router = self.is_router(h);
        let slot = &mut self.pools[p].slots[ix as usize];
        let before = alone(slot);
        let step = |n: u32| if joined { n + 1 } else { n.saturating_sub(1) };
        if router {
            slot.router_users = step(slot.router_users);
        }
        let after = alone(&PortSlot {
            users: step(slot.users),
            ..*slot
        });
        let a = &mut self.router.alone[p];
        match (before, after) {
            (false, true) => *a += 1,
            (true, false) => *a = a.saturating_sub(1),
            _ => {}
        }
    }

    /// Ports of protocol `p` used by router flows alone (for the snapshot).
    pub(super) fn router_alone(&self, p: usize) -> u32 {
        self.router.alone[p]
    }

    /// Checks the slots' router users and the counts against the mappings (for
    /// `check_invariants`); `users` holds the router mappings per slot and protocol.
    pub(super) fn check_router(&self, router_users: &[[u32; 3]]) -> Result<(), String> {
        for (p, (pool, &counted)) in self.pools.iter().zip(&self.router.alone).enumerate() {
            let mut count = 0;
            for (ix, (slot, found)) in pool.slots.iter().zip(router_users).enumerate() {
                if slot.router_users != found[p] {
                    return Err(format!(
                        "port index {ix} protocol {p}: {} router users, {} router mappings",
                        slot.router_users, found[p]
                    ));
                }
                count += u32::from(alone(slot));
            }
            if count != counted {
                return Err(format!(
                    "protocol {p}: {count} ports the router's alone, {counted} counted"
                ));
            }
        }
        Ok(())
    }
}

impl Nat {
    /// The router's flows and reserve as the snapshot and the metrics show them.
    pub(super) fn router_stats(&self) -> crate::stats::RouterStats {
        let mut s = crate::stats::RouterStats {
            addresses: self.cfg.router.addresses.clone(),
            reserve_ports: if self.reserving() { self.reserve() } else { 0 },
            ..Default::default()
        };
        for h in self.hosts.iter().filter(|h| h.router) {
            s.flows += h.flows;
            s.refusals += h.refusals;
            for p in 0..3 {
                s.ports_by_proto[p] += h.ports[p];
            }
        }
        for p in 0..3 {
            s.alone_by_proto[p] = self.router_alone(p);
            s.kept_free_by_proto[p] = s.reserve_ports.saturating_sub(s.alone_by_proto[p]);
        }
        s
    }
}

impl Nat {
    /// After a new configuration: which records are the router, the slots' router users
    /// and the ports the router holds alone, again from the mappings (O(mappings), on
    /// reload only).
    pub(super) fn rebuild_router(&mut self) {
        for i in 0..self.hosts.len() {
            let addr = self.hosts[i].addr;
            self.hosts[i].router = !addr.is_unspecified() && self.router_addr(addr);
        }
        for pool in &mut self.pools {
            for slot in &mut pool.slots {
                slot.router_users = 0;
            }
        }
        for m in &self.mappings {
            if m.kind == MappingKind::Free || m.is_static() || !self.hosts[m.host as usize].router {
                continue;
            }
            if let Some(ix) = self.ports.index_of(m.ext_port) {
                self.pools[m.proto.index()].slots[ix as usize].router_users += 1;
            }
        }
        for p in 0..3 {
            self.router.alone[p] = self.pools[p].slots.iter().filter(|s| alone(s)).count() as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use mape_rules::PortSet;
    use proptest::prelude::*;

    use super::*;
    use crate::config::NatConfig;
    use crate::engine::hosts::tests::answered;
    use crate::types::{Endpoint, OutboundPacket, Protocol, TcpFlags, Timestamp};

    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const UDP: usize = 1;

    fn udp(src: Ipv4Addr, port: u16, dst: Endpoint) -> OutboundPacket {
        OutboundPacket {
            proto: Protocol::Udp,
            src: Endpoint::new(src, port),
            dst,
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        }
    }

    /// 240 ports (PSID 161 of 8 bits, offset 4), the router at 192.168.1.1 keeping 8.
    fn nat(mut cfg: NatConfig, reserve: u32) -> Nat {
        cfg.router = crate::config::RouterShare {
            addresses: vec![ROUTER],
            reserve_ports: reserve,
        };
        Nat::new(
            cfg,
            Ipv4Addr::new(14, 9, 26, 101),
            PortSet::new(161, 8, 4).unwrap(),
        )
        .unwrap()
    }

    fn resolver() -> Endpoint {
        "8.8.8.8:53".parse().unwrap()
    }

    /// Ports of protocol `p` the LAN hosts (every record but the router's) hold.
    fn lan_held(n: &Nat, p: usize) -> u32 {
        n.hosts
            .iter()
            .filter(|h| !h.router)
            .map(|h| h.ports[p])
            .sum()
    }

    /// `hosts` LAN hosts send `per_host` unanswered UDP flows each, from new source
    /// ports, all to the resolver the router uses (no port can be shared with it), over
    /// the second from `from` ms.
    fn storm(n: &mut Nat, from: u64, hosts: u8, per_host: u16) {
        for i in 0..per_host {
            for h in 0..hosts {
                let src = Ipv4Addr::new(192, 168, 1, 10 + h);
                let at = Timestamp::from_millis(from + u64::from(i) * 1000 / u64::from(per_host));
                let _ = n.outbound(at, &udp(src, 10_000 + i, resolver()));
                assert!(lan_held(n, UDP) <= 240 - 8, "LAN above set − reserve");
            }
        }
    }

    /// The router's DNS lookup at `at`: its query goes out and the answer comes back in.
    fn lookup(n: &mut Nat, at: Timestamp, port: u16) -> bool {
        answered(n, at, &udp(ROUTER, port, resolver()))
    }

    /// LAN apps' port mappings go through the same gate as flows: three hosts asking for
    /// 100 UDP leases each (limits raised past the defaults) get 232 of the 240 ports in
    /// all, 100 + 100 + 32, the rest refused as no free port; the router's 8 lookups then
    /// all pass on the kept ports.
    #[test]
    fn port_mappings_never_take_the_routers_reserve() {
        use crate::engine::{MappingLimits, MappingRefusal, MappingRequest};
        use crate::MappingOrigin;
        let mut n = nat(NatConfig::mape(), 8);
        n.set_mapping_limits(MappingLimits {
            max_lifetime_s: 7200,
            max_per_host: 240,
        });
        let t = Timestamp::from_secs(1);
        let mut granted = [0u32; 3];
        for h in 0..3u8 {
            for i in 0..100u16 {
                let req = MappingRequest {
                    proto: Protocol::Udp,
                    internal: Endpoint::new(Ipv4Addr::new(192, 168, 1, 10 + h), 20_000 + i),
                    suggested: 0,
                    lifetime_s: 3600,
                    exact: false,
                    origin: MappingOrigin::Pcp,
                };
                match n.request_mapping(t, &req) {
                    Ok(_) => granted[usize::from(h)] += 1,
                    Err(e) => assert_eq!(e, MappingRefusal::NoFreePort, "host {h} ask {i}"),
                }
            }
        }
        assert_eq!(granted, [100, 100, 32]);
        assert_eq!(lan_held(&n, UDP), 232);
        for k in 0..8u16 {
            let at = Timestamp::from_millis(2_000 + u64::from(k) * 100);
            assert!(lookup(&mut n, at, 40_000 + k), "router lookup {k}");
        }
    }

    /// 30 hosts × 20 flows (600 attempts) to one remote: they take every port they can,
    /// 240 − 8 = 232, and no more; the 8 stay free, the snapshot shows them kept. Then
    /// lookups of the router, 100 ms apart, with the storm going on, all get through:
    /// 8 on the kept ports in every policy (the imitation policies recycle nothing, so 8
    /// is what they can promise until the router's own flows end), 20 in `mape` (the
    /// router recycles its own answered lookups). Afterwards the router holds exactly its
    /// 8 alone, the LAN exactly 232: every port is used and none is kept free any more.
    #[test]
    fn storming_hosts_leave_the_router_its_reserve() {
        for cfg in [
            NatConfig::mape(),
            NatConfig::linux_like(),
            NatConfig::rtx830_like(),
        ] {
            let name = cfg.name.clone();
            let lookups = if name == "mape" { 20 } else { 8 };
            let mut n = nat(cfg, 8);
            storm(&mut n, 0, 30, 20);
            assert_eq!(lan_held(&n, UDP), 232, "{name}");
            assert_eq!(n.pools[UDP].free_count(), 8, "{name}");
            let s = n.snapshot(Timestamp::from_secs(1)).router;
            assert_eq!(s.reserve_ports, 8);
            assert_eq!(s.kept_free_by_proto, [8, 8, 8], "{name}");
            assert_eq!(s.addresses, [ROUTER]);
            for i in 0..lookups {
                let at = 2_000 + u64::from(i) * 100;
                assert!(
                    lookup(&mut n, Timestamp::from_millis(at), 40_000 + i),
                    "{name}: lookup {i}"
                );
                storm(&mut n, at, 30, 1);
            }
            n.check_invariants().unwrap();
            let s = n.snapshot(Timestamp::from_secs(4)).router;
            assert_eq!(s.alone_by_proto[UDP], 8, "{name}");
            assert_eq!(s.kept_free_by_proto[UDP], 0, "{name}");
            assert_eq!(s.refusals, 0, "{name}");
            assert_eq!(lan_held(&n, UDP), 232, "{name}");
            let hosts = n.snapshot(Timestamp::from_secs(4)).hosts;
            assert_eq!(hosts.iter().filter(|h| h.router).count(), 1);
            assert!(hosts.iter().any(|h| h.router && h.addr == ROUTER));
            n.check_invariants().unwrap();
        }
    }

    /// Without router addresses nothing is kept: one host alone may take all 240 ports
    /// (the behaviour before the reserve), and a reserve of 0 keeps nothing either.
    #[test]
    fn no_router_no_reserve() {
        let mut cfg = NatConfig::mape();
        cfg.router.addresses.clear();
        let mut n = Nat::new(
            cfg,
            Ipv4Addr::new(14, 9, 26, 101),
            PortSet::new(161, 8, 4).unwrap(),
        )
        .unwrap();
        for i in 0..240u16 {
            let _ = n.outbound(
                Timestamp::from_millis(u64::from(i)),
                &udp(Ipv4Addr::new(192, 168, 1, 10), 10_000 + i, resolver()),
            );
        }
        assert_eq!(lan_held(&n, UDP), 240);
        let mut n = nat(NatConfig::mape(), 0);
        let before = lan_held(&n, UDP);
        assert_eq!(before, 0);
        for i in 0..240 {
            let _ = n.outbound(
                Timestamp::from_millis(i),
                &udp(
                    Ipv4Addr::new(192, 168, 1, 10),
                    10_000 + i as u16,
                    resolver(),
                ),
            );
        }
        assert_eq!(lan_held(&n, UDP), 240);
    }

    /// A LAN host never shares a port a router flow uses: the router's flow to 8.8.8.8:53
    /// holds one port; a LAN host's flows to another remote under pressure (sharing on)
    /// never land on it, so when the router's flow ends its port is free again.
    #[test]
    fn lan_never_shares_the_routers_port() {
        let mut n = nat(NatConfig::mape(), 8);
        assert!(lookup(&mut n, Timestamp::from_secs(0), 40_000));
        let port = n
            .mappings
            .iter()
            .find(|m| m.kind != MappingKind::Free && n.hosts[m.host as usize].router)
            .map(|m| m.ext_port)
            .unwrap();
        let ix = n.ports.index_of(port).unwrap() as usize;
        let other: Endpoint = "1.1.1.1:443".parse().unwrap();
        for i in 0..600u16 {
            let h = Ipv4Addr::new(192, 168, 1, 10 + (i % 30) as u8);
            let _ = n.outbound(Timestamp::from_millis(500), &udp(h, 20_000 + i, other));
            assert_eq!(n.pools[UDP].slots[ix].users, 1, "after flow {i}");
        }
        n.check_invariants().unwrap();
        // The answered DNS flow ends 2 s later (udp_dns_answered): the port is free.
        n.expire(Timestamp::from_secs(10));
        assert_eq!(n.pools[UDP].slots[ix].users, 0);
        assert!(n.pools[UDP].is_free(ix));
    }

    /// A reserve above half the set keeps half: 121 of 240 asked, 120 kept, and one host
    /// storming alone takes the other 120.
    #[test]
    fn a_reserve_keeps_at_most_half_the_set() {
        let mut n = nat(NatConfig::mape(), 121);
        assert_eq!(
            n.snapshot(Timestamp::from_secs(0)).router.reserve_ports,
            120
        );
        for i in 0..240u16 {
            let _ = n.outbound(
                Timestamp::from_millis(u64::from(i)),
                &udp(Ipv4Addr::new(192, 168, 1, 10), 10_000 + i, resolver()),
            );
        }
        assert_eq!(lan_held(&n, UDP), 120);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any number of storming hosts, any reserve up to 16, any policy: the LAN never
        /// holds more than 240 − reserve, and the router's next `reserve` lookups all pass.
        #[test]
        fn reserve_holds_whatever_the_storm(hosts in 1u8..60, per_host in 1u16..40,
                                            reserve in 1u32..16, policy in 0usize..3) {
            let cfg = NatConfig::policy(crate::config::POLICY_NAMES[policy]).unwrap();
            let mut n = nat(cfg, reserve);
            for i in 0..per_host {
                for h in 0..hosts {
                    let src = Ipv4Addr::new(192, 168, 1, 10 + h);
                    let _ = n.outbound(Timestamp::from_millis(u64::from(i)), &udp(src, 10_000 + i, resolver()));
                    prop_assert!(lan_held(&n, UDP) <= 240 - reserve);
                }
            }
            for i in 0..reserve as u16 {
                prop_assert!(lookup(&mut n, Timestamp::from_millis(100 + u64::from(i)), 40_000 + i));
            }
            n.check_invariants().unwrap();
        }
    }
}
