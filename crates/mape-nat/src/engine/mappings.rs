//! Port mappings that LAN applications ask for (PCP MAP, RFC 6887 §11; NAT-PMP, RFC 6886
//! §3.3; UPnP IGD AddPortMapping): static-forward-like entries with a lifetime, each drawn
//! from the port set and counted against the asking host's share, so that a mapping
//! outside the set — which can never work on MAP-E (RFC 7597 §8) — is never granted.
//!
//! A mapping is an engine [`Mapping`] of kind `Leased` whose port slot is reserved like a
//! forward's (`PortSlot::is_static`): inbound packets to its external port take the
//! static-forward path of `Nat::inbound_unknown` and reach the internal endpoint, and no
//! outbound flow of another endpoint shares the port. It counts in its host's ports held
//! (the share, `Nat::host_cap`) and keeps the host record from going idle. Its end — by
//! delete or expiry — takes the reservation away; flows already through it carry on as
//! ordinary dynamic state (RFC 6887 §15: deleting a mapping does not tear down the
//! connections that use it), so with endpoint- or address-dependent filtering nothing new
//! gets in from then on.
//!
//! Lifetimes run on the engine's clock (`now`, sans-IO): the deadlines are an ordered set
//! looked at by the same expiry tick that ends sessions (`Nat::expire_bounded`), and count
//! in `Nat::next_deadline`. Hosts without mappings pay nothing on the packet path.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::persist::{SavedLease, SavedMapping};
use crate::session::{Mapping, MappingKind};
use crate::stats::EventKind;
use crate::types::{Endpoint, MappingOrigin, Protocol, Timestamp};

use super::Nat;

/// Bounds the engine puts on mappings (the daemon's `[mappings]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingLimits {
    /// Longest lifetime granted, in seconds (longer requests get this).
    pub max_lifetime_s: u32,
    /// Mappings one host may hold at once.
    pub max_per_host: u32,
}

impl Default for MappingLimits {
    /// Two hours (RFC 6886 §3.3's recommended lifetime) and 16 mappings per host.
    fn default() -> Self {
        Self {
            max_lifetime_s: 7200,
            max_per_host: 16,
        }
    }
}

/// A request for a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingRequest {
    /// TCP or UDP.
    pub proto: Protocol,
    /// The LAN endpoint inbound packets go to.
    pub internal: Endpoint,
    /// The external port asked for; 0: none (the internal port is tried first).
    pub suggested: u16,
    /// Seconds asked for (at least 1; capped at `MappingLimits::max_lifetime_s`).
    pub lifetime_s: u32,
    /// Only the suggested port will do (UPnP AddPortMapping, PCP PREFER_FAILURE): a
    /// port outside the set or taken is refused instead of replaced.
    pub exact: bool,
    /// Who asks.
    pub origin: MappingOrigin,
}

/// What a granted request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingGrant {
    /// The external address and port.
    pub external: Endpoint,
    /// Seconds granted.
    pub lifetime_s: u32,
    /// The endpoint had this mapping already: its lifetime was renewed (RFC 6887 §11.3,
    /// RFC 6886 §3.3), its port kept.
    pub renewed: bool,
}

/// Why a mapping was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MappingRefusal {
    /// Only TCP and UDP ports can be mapped.
    #[error("cannot map {0} (TCP and UDP only)")]
    Protocol(Protocol),
    /// A zero internal port or lifetime.
    #[error("internal port and lifetime must not be 0")]
    Invalid,
    /// An exact request for a port outside the port set (RFC 7597 §8: it could never work).
    #[error("port {port} is outside this CE's port set")]
    OutsidePortSet {
        /// The port asked for.
        port: u16,
    },
    /// An exact request for a port that a session, forward or other mapping holds.
    #[error("port {port} is in use")]
    Conflict {
        /// The port asked for.
        port: u16,
    },
    /// The host holds its share of the port set already (RFC 6888 REQ-4).
    #[error("host holds {held} ports, its share is {cap}")]
    HostShare {
        /// Ports of the protocol it holds.
        held: u32,
        /// Its share now.
        cap: u32,
    },
    /// The host holds `MappingLimits::max_per_host` mappings already.
    #[error("host has {max} mappings, the most allowed")]
    TooMany {
        /// The limit.
        max: u32,
    },
    /// No port of the set is free.
    #[error("no free port in the port set")]
    NoFreePort,
    /// No host record can be made (`NatConfig::max_hosts` reached, none idle).
    #[error("too many LAN hosts")]
    HostLimit,
}

impl MappingRefusal {
    /// Stable snake_case name (metric label).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Protocol(_) => "protocol",
            Self::Invalid => "invalid",
            Self::OutsidePortSet { .. } => "outside_port_set",
            Self::Conflict { .. } => "conflict",
            Self::HostShare { .. } => "host_share",
            Self::TooMany { .. } => "too_many",
            Self::NoFreePort => "no_free_port",
            Self::HostLimit => "host_limit",
        }
    }
}

/// One mapping, for `show mappings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingInfo {
    /// Protocol.
    pub proto: Protocol,
    /// LAN endpoint.
    pub internal: Endpoint,
    /// External endpoint (in the port set).
    pub external: Endpoint,
    /// Who asked.
    pub origin: MappingOrigin,
    /// Seconds granted by the last request.
    pub lifetime_s: u32,
    /// Milliseconds until it expires.
    pub left_ms: u64,
    /// Live sessions through it.
    pub sessions: u32,
}

/// Why a mapping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Deleted,
    Expired,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    expires_ms: u64,
    granted_s: u32,
    origin: MappingOrigin,
}

/// The mappings next to the engine's arenas: keyed by engine mapping, by endpoint, by
/// deadline, and counted per host.
#[derive(Debug, Default)]
pub(super) struct Leases {
    by_mapping: HashMap<u32, Lease, RandomState>,
    by_key: HashMap<(Protocol, Endpoint), u32, RandomState>,
    deadlines: BTreeSet<(u64, u32)>,
    per_host: HashMap<Ipv4Addr, u32, RandomState>,
    limits: MappingLimits,
}

impl Leases {
    /// Whether a deadline is due at `now` (cheap: the expiry tick asks every time).
    #[inline]
    pub(super) fn due(&self, now: Timestamp) -> bool {
        self.deadlines
            .first()
            .is_some_and(|&(t, _)| t <= now.millis())
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(t, _)| Timestamp(t))
    }
}

impl Nat {
    /// Sets the bounds on mappings (mappings granted already keep their lifetimes).
    pub fn set_mapping_limits(&mut self, limits: MappingLimits) {
        self.leases.limits = limits;
    }

    /// The bounds in force.
    pub fn mapping_limits(&self) -> MappingLimits {
        self.leases.limits
    }

    /// Mappings now.
    pub fn mapping_count(&self) -> u32 {
        self.leases.by_mapping.len() as u32
    }

    /// Mappings `host` holds now.
    pub fn host_mapping_count(&self, host: Ipv4Addr) -> u32 {
        self.leases.per_host.get(&host).copied().unwrap_or(0)
    }

    /// Grants a mapping, or renews the endpoint's mapping, at `now`. The suggested port is
    /// given when it is in the set and free, else (unless `exact`) the free port of the
    /// set nearest to it (RFC 6887 §11.3: the server SHOULD honour the suggestion when it
    /// can, and otherwise assign another port).
    pub fn request_mapping(
        &mut self,
        now: Timestamp,
        req: &MappingRequest,
    ) -> Result<MappingGrant, MappingRefusal> {
        if req.proto == Protocol::Icmp {
            return Err(MappingRefusal::Protocol(req.proto));
        }
        if req.internal.port == 0 || req.lifetime_s == 0 {
            return Err(MappingRefusal::Invalid);
        }
        let lifetime_s = req.lifetime_s.min(self.leases.limits.max_lifetime_s.max(1));
        if let Some(&m) = self.leases.by_key.get(&(req.proto, req.internal)) {
            let port = self.mappings[m as usize].ext_port;
            if req.exact && req.suggested != 0 && req.suggested != port {
                return Err(MappingRefusal::Conflict {
                    port: req.suggested,
                });
            }
            self.set_deadline(m, now, lifetime_s, req.origin);
            return Ok(MappingGrant {
                external: Endpoint::new(self.external, port),
                lifetime_s,
                renewed: true,
            });
        }
        let addr = req.internal.addr;
        let max = self.leases.limits.max_per_host;
        if self.host_mapping_count(addr) >= max {
            return Err(MappingRefusal::TooMany { max });
        }
        let want = if req.suggested != 0 {
            req.suggested
        } else {
            req.internal.port
        };
        let p = req.proto.index();
        let ix = match self.ports.index_of(want) {
            Some(ix) if self.pools[p].slots[ix as usize].is_unused() => ix,
            Some(_) if req.exact => return Err(MappingRefusal::Conflict { port: want }),
            None if req.exact => return Err(MappingRefusal::OutsidePortSet { port: want }),
            _ => self
                .nearest_free(p, want)
                .ok_or(MappingRefusal::NoFreePort)?,
        };
        let host = self
            .host_slot(addr, now, true)
            .ok_or(MappingRefusal::HostLimit)?;
        if let Some(cap) = self.host_cap(host) {
            let held = self.hosts[host as usize].ports[p];
            if held >= cap {
                self.host_maybe_idle(host, now);
                return Err(MappingRefusal::HostShare { held, cap });
            }
        }
        // A LAN app's lease is a free port like a flow's: it never takes the ports kept for
        // the router's own flows (engine/router.rs).
        if !self.may_take_free(host, p) {
            self.host_maybe_idle(host, now);
            return Err(MappingRefusal::NoFreePort);
        }
        let port = self.ports.nth(ix).unwrap_or(0);
        let m = self.place_mapping(host, req.proto, req.internal, port, ix);
        self.hold_as_lease(now, m, ix);
        self.set_deadline(m, now, lifetime_s, req.origin);
        *self.leases.per_host.entry(addr).or_default() += 1;
        self.ledger.push_event(
            now,
            EventKind::MappingAdded {
                host: addr,
                proto: req.proto,
                internal: req.internal,
                external_port: port,
                lifetime_s,
                origin: req.origin,
            },
        );
        Ok(MappingGrant {
            external: Endpoint::new(self.external, port),
            lifetime_s,
            renewed: false,
        })
    }

    /// Deletes the mapping of `internal` (lifetime 0: RFC 6887 §15, RFC 6886 §3.4);
    /// returns the external endpoint it had.
    pub fn delete_mapping(
        &mut self,
        now: Timestamp,
        proto: Protocol,
        internal: Endpoint,
    ) -> Option<Endpoint> {
        let m = *self.leases.by_key.get(&(proto, internal))?;
        let port = self.mappings[m as usize].ext_port;
        self.end_lease(m, now, End::Deleted);
        Some(Endpoint::new(self.external, port))
    }

    /// Deletes every mapping of `host` (of `proto`, or of both): NAT-PMP's delete with
    /// internal port 0 (RFC 6886 §3.4). Returns how many went.
    pub fn delete_host_mappings(
        &mut self,
        now: Timestamp,
        host: Ipv4Addr,
        proto: Option<Protocol>,
    ) -> u32 {
        let mut gone: Vec<u32> = self
            .leases
            .by_key
            .iter()
            .filter(|((p, ep), _)| ep.addr == host && proto.is_none_or(|q| q == *p))
            .map(|(_, &m)| m)
            .collect();
        gone.sort_unstable();
        for &m in &gone {
            self.end_lease(m, now, End::Deleted);
        }
        gone.len() as u32
    }

    /// The external endpoint mapped to `internal`, if any.
    pub fn mapping_of(&self, proto: Protocol, internal: Endpoint) -> Option<Endpoint> {
        let m = *self.leases.by_key.get(&(proto, internal))?;
        Some(Endpoint::new(
            self.external,
            self.mappings[m as usize].ext_port,
        ))
    }

    /// Every mapping at `now`, by protocol, external port (`show mappings`; UPnP's
    /// GetGenericPortMappingEntry indexes this list).
    pub fn port_mappings(&self, now: Timestamp) -> Vec<MappingInfo> {
        let mut out: Vec<MappingInfo> = self
            .leases
            .by_mapping
            .iter()
            .map(|(&m, l)| {
                let x = &self.mappings[m as usize];
                MappingInfo {
                    proto: x.proto,
                    internal: x.internal,
                    external: Endpoint::new(self.external, x.ext_port),
                    origin: l.origin,
                    lifetime_s: l.granted_s,
                    left_ms: l.expires_ms.saturating_sub(now.millis()),
                    sessions: x.sessions,
                }
            })
            .collect();
        out.sort_by_key(|i| (i.proto, i.external.port));
        out
    }

    /// Ends the mappings whose lifetime ran out by `now` (the expiry tick).
    pub(super) fn expire_leases(&mut self, now: Timestamp) {
        while let Some(&(t, m)) = self.leases.deadlines.first() {
            if t > now.millis() {
                return;
            }
            self.end_lease(m, now, End::Expired);
        }
    }

    /// The free port index of protocol `p` whose port is nearest to `want` (the lower one
    /// of two as near). O(ports in the set), off the packet path.
    fn nearest_free(&self, p: usize, want: u16) -> Option<u32> {
        (0..self.budget)
            .filter(|&ix| self.pools[p].slots[ix as usize].is_unused())
            .filter_map(|ix| self.ports.nth(ix).map(|port| (ix, port)))
            .min_by_key(|&(_, port)| (port.abs_diff(want), port))
            .map(|(ix, _)| ix)
    }

    /// Makes the mapping `m` (just placed by `place_mapping` on port index `ix`) a lease:
    /// its slot held like a static forward's (`hold_like_forward`), indexed by its key.
    fn hold_as_lease(&mut self, now: Timestamp, m: u32, ix: u32) {
        let (host, proto, internal) = {
            let x = &mut self.mappings[m as usize];
            x.kind = MappingKind::Leased;
            (x.host, x.proto, x.internal)
        };
        self.hold_like_forward(host, proto, ix);
        self.leases.by_key.insert((proto, internal), m);
        self.after_budget_change(proto, now);
    }

    fn set_deadline(&mut self, m: u32, now: Timestamp, lifetime_s: u32, origin: MappingOrigin) {
        let expires_ms = now
            .millis()
            .saturating_add(u64::from(lifetime_s).saturating_mul(1000));
        self.set_lease(
            m,
            Lease {
                expires_ms,
                granted_s: lifetime_s,
                origin,
            },
        );
    }

    fn set_lease(&mut self, m: u32, lease: Lease) {
        if let Some(old) = self.leases.by_mapping.insert(m, lease) {
            self.leases.deadlines.remove(&(old.expires_ms, m));
        }
        self.leases.deadlines.insert((lease.expires_ms, m));
    }

    fn end_lease(&mut self, m: u32, now: Timestamp, why: End) {
        let Some(lease) = self.leases.by_mapping.remove(&m) else {
            return;
        };
        self.leases.deadlines.remove(&(lease.expires_ms, m));
        let Mapping {
            proto,
            internal,
            ext_port,
            host,
            sessions,
            ..
        } = self.mappings[m as usize];
        self.leases.by_key.remove(&(proto, internal));
        if let Some(n) = self.leases.per_host.get_mut(&internal.addr) {
            *n -= 1;
            if *n == 0 {
                self.leases.per_host.remove(&internal.addr);
            }
        }
        if let Some(ix) = self.ports.index_of(ext_port) {
            self.pools[proto.index()].slots[ix as usize].is_static = false;
        }
        let r = &mut self.hosts[host as usize];
        r.forwards = r.forwards.saturating_sub(1);
        if sessions == 0 {
            self.release_mapping(m, now, true);
        } else {
            // Its flows carry on as dynamic state; the last one releases the port.
            self.mappings[m as usize].kind = MappingKind::Dynamic;
        }
        self.host_maybe_idle(host, now);
        let (host, lifetime_s) = (internal.addr, lease.granted_s);
        let kind = match why {
            End::Deleted => EventKind::MappingRemoved {
                host,
                proto,
                internal,
                external_port: ext_port,
            },
            End::Expired => EventKind::MappingExpired {
                host,
                proto,
                internal,
                external_port: ext_port,
                lifetime_s,
            },
        };
        self.ledger.push_event(now, kind);
    }

    /// The saved form of mapping `m`'s lease, if it has one (`Nat::save`).
    pub(super) fn saved_lease(&self, m: u32, now: Timestamp) -> Option<SavedLease> {
        let l = self.leases.by_mapping.get(&m)?;
        Some(SavedLease {
            left_ms: l.expires_ms.saturating_sub(now.millis()),
            granted_s: l.granted_s,
            origin: l.origin,
        })
    }

    /// The engine mappings that are leases, lowest first (`Nat::save` saves them even
    /// without sessions).
    pub(super) fn lease_mappings(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.leases.by_mapping.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Restores the saved mapping `saved` with its lease, `downtime_ms` after it was
    /// saved: `None` when its lifetime ran out meanwhile, its port left the set or is
    /// taken, or its host cannot have a record (`Nat::restore` counts these).
    pub(super) fn restore_lease(
        &mut self,
        saved: &SavedMapping,
        lease: &SavedLease,
        now: Timestamp,
        downtime_ms: u64,
    ) -> Option<u32> {
        let left = lease.left_ms.checked_sub(downtime_ms).filter(|&l| l > 0)?;
        let ix = self.ports.index_of(saved.ext_port)?;
        let p = saved.proto.index();
        if !self.pools[p].slots[ix as usize].is_unused()
            || self
                .leases
                .by_key
                .contains_key(&(saved.proto, saved.internal))
        {
            return None;
        }
        let host = self.host_slot(saved.internal.addr, now, true)?;
        let m = self.place_mapping(host, saved.proto, saved.internal, saved.ext_port, ix);
        self.hold_as_lease(now, m, ix);
        *self.leases.per_host.entry(saved.internal.addr).or_default() += 1;
        self.set_lease(
            m,
            Lease {
                expires_ms: now.millis().saturating_add(left),
                granted_s: lease.granted_s,
                origin: lease.origin,
            },
        );
        Some(m)
    }

    /// Checks the mapping bookkeeping against the arenas (`Nat::check_invariants`).
    pub(super) fn check_leases(&self) -> Result<(), String> {
        let mut per_host: HashMap<Ipv4Addr, u32> = HashMap::new();
        for (&m, l) in &self.leases.by_mapping {
            let x = &self.mappings[m as usize];
            if x.kind != MappingKind::Leased {
                return Err(format!("lease {m}: mapping kind {:?}", x.kind));
            }
            if self.leases.by_key.get(&(x.proto, x.internal)) != Some(&m) {
                return Err(format!("lease {m}: not indexed by its endpoint"));
            }
            if !self.leases.deadlines.contains(&(l.expires_ms, m)) {
                return Err(format!("lease {m}: no deadline"));
            }
            let slot = self
                .ports
                .index_of(x.ext_port)
                .map(|ix| self.pools[x.proto.index()].slots[ix as usize]);
            if !slot.is_some_and(|s| s.is_static && s.users == 1 && s.owner == Some(m)) {
                return Err(format!("lease {m}: port {} not reserved", x.ext_port));
            }
            *per_host.entry(x.internal.addr).or_default() += 1;
        }
        if self.leases.by_key.len() != self.leases.by_mapping.len()
            || self.leases.deadlines.len() != self.leases.by_mapping.len()
        {
            return Err("leases: indexes disagree in size".to_owned());
        }
        let counted: HashMap<Ipv4Addr, u32> =
            self.leases.per_host.iter().map(|(&a, &n)| (a, n)).collect();
        if counted != per_host {
            return Err("leases: per-host counts disagree".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mape_rules::PortSet;

    use super::*;
    use crate::config::NatConfig;
    use crate::drop::NatDrop;
    use crate::persist::SavedTable;
    use crate::types::{InboundPacket, OutboundPacket, TcpFlags};
    use crate::{InboundVerdict, OutboundVerdict};

    const EXTERNAL: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    /// PSID 161 of 8 bits, offset 4: port = A·4096 + 161·16 + M for A in 1..=15, M in
    /// 0..=15, so 6672..=6687, 10768..=10783, ..., 240 ports (RFC 7597 §5.1).
    fn nat() -> Nat {
        Nat::new(
            NatConfig::mape(),
            EXTERNAL,
            PortSet::new(161, 8, 4).unwrap(),
        )
        .unwrap()
    }

    fn tcp(internal: &str, suggested: u16) -> MappingRequest {
        MappingRequest {
            proto: Protocol::Tcp,
            internal: ep(internal),
            suggested,
            lifetime_s: 3600,
            exact: false,
            origin: MappingOrigin::Pcp,
        }
    }

    fn syn_in(from: &str, port: u16) -> InboundPacket {
        InboundPacket {
            proto: Protocol::Tcp,
            src: ep(from),
            dst: Endpoint::new(EXTERNAL, port),
            flags: TcpFlags(TcpFlags::SYN),
            seq: 1,
            ack: 0,
        }
    }

    fn kinds(n: &mut Nat) -> Vec<&'static str> {
        n.drain_events()
            .filter_map(|e| match e.kind {
                EventKind::MappingAdded { .. } => Some("added"),
                EventKind::MappingRemoved { .. } => Some("removed"),
                EventKind::MappingExpired { .. } => Some("expired"),
                _ => None,
            })
            .collect()
    }

    /// A suggestion in the set and free is granted as is; one outside the set gets the
    /// nearest port of the set: 8000 lies between 6687 (1313 away) and 10768 (2768 away).
    /// No suggestion tries the internal port first (10775 is in the set).
    #[test]
    fn suggested_port_or_the_nearest_in_the_set() {
        let mut n = nat();
        let t = Timestamp::from_secs(1);
        let g = n.request_mapping(t, &tcp("192.168.1.10:22", 6680)).unwrap();
        assert_eq!(g.external, Endpoint::new(EXTERNAL, 6680));
        assert_eq!((g.lifetime_s, g.renewed), (3600, false));
        let g = n.request_mapping(t, &tcp("192.168.1.10:80", 8000)).unwrap();
        assert_eq!(g.external.port, 6687);
        // 6680 is taken now: the nearest free one, the lower of 6679 and 6681.
        let g = n.request_mapping(t, &tcp("192.168.1.11:80", 6680)).unwrap();
        assert_eq!(g.external.port, 6679);
        let g = n.request_mapping(t, &tcp("192.168.1.12:10775", 0)).unwrap();
        assert_eq!(g.external.port, 10775);
        assert_eq!(n.mapping_count(), 4);
        assert_eq!(n.ports_in_use(Protocol::Tcp), 4);
        assert_eq!(
            n.host_ports(Ipv4Addr::new(192, 168, 1, 10), Protocol::Tcp),
            2
        );
        assert_eq!(kinds(&mut n), ["added"; 4]);
        n.check_invariants().unwrap();
        // The same endpoint again: renewed on its port, whatever it suggests now.
        let g = n
            .request_mapping(t, &tcp("192.168.1.10:22", 10770))
            .unwrap();
        assert_eq!((g.external.port, g.renewed), (6680, true));
        assert_eq!(n.mapping_count(), 4);
        // UDP is another pool: 6680 is free there.
        let udp = MappingRequest {
            proto: Protocol::Udp,
            ..tcp("192.168.1.10:22", 6680)
        };
        assert_eq!(n.request_mapping(t, &udp).unwrap().external.port, 6680);
        let shown = n.port_mappings(t);
        assert_eq!(shown.len(), 5);
        assert_eq!(shown[0].proto, Protocol::Tcp);
        assert_eq!(shown[0].external.port, 6679);
        assert_eq!(shown[0].left_ms, 3_600_000);
    }

    #[test]
    fn exact_requests_and_bad_ones_are_refused_with_a_reason() {
        let mut n = nat();
        let t = Timestamp::from_secs(1);
        let exact = |port| MappingRequest {
            exact: true,
            ..tcp("192.168.1.10:22", port)
        };
        assert_eq!(
            n.request_mapping(t, &exact(8000)),
            Err(MappingRefusal::OutsidePortSet { port: 8000 })
        );
        n.request_mapping(t, &tcp("192.168.1.11:22", 6680)).unwrap();
        assert_eq!(
            n.request_mapping(t, &exact(6680)),
            Err(MappingRefusal::Conflict { port: 6680 })
        );
        let icmp = MappingRequest {
            proto: Protocol::Icmp,
            ..tcp("192.168.1.10:22", 0)
        };
        assert_eq!(
            n.request_mapping(t, &icmp),
            Err(MappingRefusal::Protocol(Protocol::Icmp))
        );
        let zero = MappingRequest {
            lifetime_s: 0,
            ..tcp("192.168.1.10:22", 0)
        };
        assert_eq!(n.request_mapping(t, &zero), Err(MappingRefusal::Invalid));
        // Lifetimes are capped.
        let long = MappingRequest {
            lifetime_s: u32::MAX,
            ..tcp("192.168.1.10:22", 0)
        };
        assert_eq!(n.request_mapping(t, &long).unwrap().lifetime_s, 7200);
        // The per-host limit: 16 by default.
        for port in 1..16u16 {
            n.request_mapping(t, &tcp(&format!("192.168.1.10:{}", 1000 + port), 0))
                .unwrap();
        }
        assert_eq!(n.host_mapping_count(Ipv4Addr::new(192, 168, 1, 10)), 16);
        assert_eq!(
            n.request_mapping(t, &tcp("192.168.1.10:2000", 0)),
            Err(MappingRefusal::TooMany { max: 16 })
        );
        n.check_invariants().unwrap();
    }

    /// The share: with another host active the mape policy caps a host at 50 % of the
    /// 240 ports, 120; its 121st TCP mapping is refused. Alone it may take all 240, and
    /// then the set has no port left.
    #[test]
    fn mappings_count_against_the_host_share_and_the_set() {
        let mut n = nat();
        n.set_mapping_limits(MappingLimits {
            max_per_host: 1000,
            ..MappingLimits::default()
        });
        let t = Timestamp::from_secs(1);
        let other = OutboundPacket {
            proto: Protocol::Udp,
            src: ep("192.168.1.30:5000"),
            dst: ep("8.8.8.8:123"),
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        };
        assert!(matches!(
            n.outbound(t, &other),
            OutboundVerdict::Translate { .. }
        ));
        for i in 0..120u16 {
            n.request_mapping(t, &tcp(&format!("192.168.1.20:{}", 1000 + i), 0))
                .unwrap();
        }
        assert_eq!(
            n.request_mapping(t, &tcp("192.168.1.20:2000", 0)),
            Err(MappingRefusal::HostShare {
                held: 120,
                cap: 120
            })
        );
        n.check_invariants().unwrap();
        let mut m = nat();
        m.set_mapping_limits(n.mapping_limits());
        for i in 0..240u16 {
            m.request_mapping(t, &tcp(&format!("192.168.1.20:{}", 1000 + i), 0))
                .unwrap();
        }
        assert_eq!(m.ports_in_use(Protocol::Tcp), 240);
        assert_eq!(
            m.request_mapping(t, &tcp("192.168.1.21:2000", 0)),
            Err(MappingRefusal::NoFreePort)
        );
        // And no outbound TCP flow gets a mapped port.
        let out = OutboundPacket {
            proto: Protocol::Tcp,
            src: ep("192.168.1.21:40000"),
            dst: ep("1.1.1.1:443"),
            flags: TcpFlags(TcpFlags::SYN),
            seq: 0,
            ack: 0,
        };
        assert!(matches!(
            m.outbound(t, &out),
            OutboundVerdict::Drop {
                reason: NatDrop::PortsExhausted,
                ..
            }
        ));
        m.check_invariants().unwrap();
    }

    /// Inbound connections to the mapped port reach the internal endpoint; after the
    /// delete the connection in progress carries on, a new one is dropped, and once its
    /// flows end the port is free again.
    #[test]
    fn inbound_reaches_the_mapping_until_it_is_deleted() {
        let mut n = nat();
        let t = Timestamp::from_secs(1);
        let g = n
            .request_mapping(t, &tcp("192.168.1.10:8080", 6680))
            .unwrap();
        assert_eq!(n.drops(NatDrop::NoMapping), 0);
        assert_eq!(
            n.inbound(t, &syn_in("203.0.113.7:50000", 6680)),
            InboundVerdict::Translate {
                internal: ep("192.168.1.10:8080")
            }
        );
        // The server answers through the mapping's port.
        let answer = OutboundPacket {
            proto: Protocol::Tcp,
            src: ep("192.168.1.10:8080"),
            dst: ep("203.0.113.7:50000"),
            flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
            seq: 9,
            ack: 2,
        };
        assert_eq!(
            n.outbound(t, &answer),
            OutboundVerdict::Translate {
                external: g.external
            }
        );
        assert_eq!(n.port_mappings(t)[0].sessions, 1);
        n.check_invariants().unwrap();
        assert_eq!(
            n.delete_mapping(t, Protocol::Tcp, ep("192.168.1.10:8080")),
            Some(g.external)
        );
        assert_eq!(
            n.delete_mapping(t, Protocol::Tcp, ep("192.168.1.10:8080")),
            None
        );
        assert_eq!(kinds(&mut n), ["added", "removed"]);
        assert_eq!(n.mapping_count(), 0);
        n.check_invariants().unwrap();
        assert!(matches!(
            n.inbound(t, &syn_in("203.0.113.8:50001", 6680)),
            InboundVerdict::Drop(NatDrop::Filtered)
        ));
        // The live connection's port is held until its flow ends.
        assert_eq!(n.ports_in_use(Protocol::Tcp), 1);
        n.expire(Timestamp::from_secs(100_000));
        assert_eq!(n.ports_in_use(Protocol::Tcp), 0);
        assert!(matches!(
            n.inbound(
                Timestamp::from_secs(100_000),
                &syn_in("203.0.113.8:50001", 6680)
            ),
            InboundVerdict::Drop(NatDrop::NoMapping)
        ));
        n.check_invariants().unwrap();
    }

    /// A 60 s mapping is there at 60.999 s (granted at 1 s) and gone at 61 s, by the
    /// expiry tick, with an event; the deadline is the engine's next one.
    #[test]
    fn a_mapping_expires_at_its_lifetime() {
        let mut n = nat();
        let req = MappingRequest {
            lifetime_s: 60,
            ..tcp("192.168.1.10:8080", 6680)
        };
        n.request_mapping(Timestamp::from_secs(1), &req).unwrap();
        assert_eq!(n.next_deadline(), Some(Timestamp::from_secs(61)));
        n.expire(Timestamp::from_millis(60_999));
        assert_eq!(n.mapping_count(), 1);
        n.expire(Timestamp::from_secs(61));
        assert_eq!(n.mapping_count(), 0);
        assert_eq!(n.ports_in_use(Protocol::Tcp), 0);
        assert_eq!(kinds(&mut n), ["added", "expired"]);
        assert_eq!(n.next_deadline(), None);
        n.check_invariants().unwrap();
        // Renewal moves the deadline.
        n.request_mapping(Timestamp::from_secs(100), &req).unwrap();
        n.request_mapping(Timestamp::from_secs(150), &req).unwrap();
        n.expire(Timestamp::from_secs(200));
        assert_eq!(n.mapping_count(), 1);
        n.expire(Timestamp::from_secs(210));
        assert_eq!(n.mapping_count(), 0);
        // Deleting all of a host's.
        n.request_mapping(Timestamp::from_secs(300), &req).unwrap();
        n.request_mapping(Timestamp::from_secs(300), &tcp("192.168.1.10:22", 0))
            .unwrap();
        n.request_mapping(Timestamp::from_secs(300), &tcp("192.168.1.11:22", 0))
            .unwrap();
        let h = Ipv4Addr::new(192, 168, 1, 10);
        assert_eq!(
            n.delete_host_mappings(Timestamp::from_secs(301), h, Some(Protocol::Udp)),
            0
        );
        assert_eq!(
            n.delete_host_mappings(Timestamp::from_secs(301), h, None),
            2
        );
        assert_eq!(n.mapping_count(), 1);
        n.check_invariants().unwrap();
    }

    /// Saved and restored 10 s later: the mapping keeps its port and has 10 s less left;
    /// one whose lifetime ran out in the downtime is not restored.
    #[test]
    fn mappings_survive_a_restart() {
        let mut n = nat();
        let t = Timestamp::from_secs(1000);
        n.request_mapping(t, &tcp("192.168.1.10:8080", 6680))
            .unwrap();
        let short = MappingRequest {
            lifetime_s: 5,
            ..tcp("192.168.1.10:22", 6681)
        };
        n.request_mapping(t, &short).unwrap();
        n.inbound(t, &syn_in("203.0.113.7:50000", 6680));
        let bytes = n.save(t, 1_000_000).encode();
        let table = SavedTable::decode(&bytes).unwrap();
        assert_eq!(table.lease_count(), 2);
        let mut m = nat();
        let later = Timestamp::from_secs(5000);
        let r = m.restore(&table, later, 1_010_000).unwrap();
        assert_eq!((r.mappings_saved, r.mappings_restored), (2, 1));
        assert_eq!(r.restored, 1);
        let shown = m.port_mappings(later);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].external.port, 6680);
        assert_eq!(shown[0].internal, ep("192.168.1.10:8080"));
        assert_eq!(shown[0].left_ms, 3_590_000);
        assert_eq!(shown[0].sessions, 1);
        assert_eq!(shown[0].origin, MappingOrigin::Pcp);
        m.check_invariants().unwrap();
        assert_eq!(
            m.inbound(later, &syn_in("203.0.113.9:1234", 6680)),
            InboundVerdict::Translate {
                internal: ep("192.168.1.10:8080")
            }
        );
    }
}

#[cfg(test)]
mod v1 {
    use mape_rules::PortSet;

    use crate::config::NatConfig;
    use crate::persist::{seal, PersistError, SavedTable};
    use crate::types::{Endpoint, OutboundPacket, Protocol, TcpFlags, Timestamp};
    use crate::Nat;

    /// A version 1 file (version 2's layout without port mappings) is still read: a
    /// table without mappings re-sealed as version 1 decodes to the same table; a version
    /// 1 file cannot carry kind 3.
    #[test]
    fn version_1_files_are_still_read() {
        let ext = std::net::Ipv4Addr::new(14, 9, 26, 101);
        let mut n = Nat::new(NatConfig::mape(), ext, PortSet::new(161, 8, 4).unwrap()).unwrap();
        let p = OutboundPacket {
            proto: Protocol::Udp,
            src: "192.168.1.10:5000".parse::<Endpoint>().unwrap(),
            dst: "8.8.8.8:123".parse::<Endpoint>().unwrap(),
            flags: TcpFlags::NONE,
            seq: 0,
            ack: 0,
        };
        n.outbound(Timestamp::from_secs(1), &p);
        let v2 = n.save(Timestamp::from_secs(2), 5).encode();
        let mut v1 = v2[..v2.len() - 4].to_vec();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        seal(&mut v1);
        assert_eq!(
            SavedTable::decode(&v1).unwrap(),
            SavedTable::decode(&v2).unwrap()
        );
        // Kind 3 in a version 1 file: corrupt. The mapping's kind byte follows the
        // header (46 bytes) and the counters.
        let table = SavedTable::decode(&v2).unwrap();
        let counters: usize = table.counters.iter().map(|(n, _)| 1 + n.len() + 8).sum();
        let kind_at = 46 + counters + 1;
        assert_eq!(v1[kind_at], 1);
        let mut bad = v1[..v1.len() - 4].to_vec();
        bad[kind_at] = 3;
        seal(&mut bad);
        assert_eq!(
            SavedTable::decode(&bad),
            Err(PersistError::Corrupt {
                what: "mapping kind",
                index: 0
            })
        );
    }
}
