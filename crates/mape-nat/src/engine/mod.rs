//! The NAPT44 engine: the [`Nat`] type, its packet path (established flows inline, the
//! rest out of line), and the files that hold the rest of its behaviour, each over state
//! a type of its own owns:
//!
//! - `batch`: the batch calls and prefetch hints over the flow indexes;
//! - `state`: the per-session state machine (TCP, answered, stream) and tier moves;
//! - `alloc`: new flows — port choice, per-host quotas, recycling and reclaiming;
//! - `hosts`: the per-host records — bounded in number and idle time, and the index of
//!   hosts with unanswered flows the exhaustion path reclaims from;
//! - `refusal`: refusals, filtered flows, refusal notices and naming the culprit;
//! - `table`: the arenas and indexes (add and remove sessions and mappings), forwards
//!   and reconfiguration;
//! - `expiry`: timer expiry and the exhaustion forecast;
//! - `inspect`: snapshots, the session list and the invariant checker (off the packet path);
//! - `restore`: saving the session table and restoring it after a restart;
//! - `router`: the router's own flows and the ports kept for them;
//! - `mappings`: port mappings LAN applications ask for (PCP, NAT-PMP, UPnP IGD), with
//!   their lifetimes.
//!
//! Shape (after Jool's BIB/session DB): one arena of sessions (one 64-byte cache line
//! each, `session::Session`) and one of mappings; three hash indexes (`index::FlowIndex`:
//! outbound 5-tuple → session, inbound (port, remote) → session, internal endpoint →
//! endpoint-independent mapping); a dense per-protocol `pool::PortPool` of port slots
//! indexed by the port's position in the port set; one FIFO per timer class with lazy
//! re-queueing (`timers::TimerTable`), so expiry is O(1) amortized and nothing ever scans
//! the table.
//!
//! An established lookup costs two cache misses at most (index bucket, session). The batch
//! calls (`outbound_batch`, `inbound_batch`, and the `prefetch_*` hints the dataplane uses)
//! load the buckets, then the sessions, of a whole batch in tight loops of independent
//! loads, so the misses overlap: safe Rust has no prefetch instruction, but a load nothing
//! waits on is one (docs/performance.md).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::Arc;

use foldhash::fast::RandomState;
use mape_rules::PortSet;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Filtering, NatConfig};
use crate::drop::NatDrop;
use crate::forecast::Forecaster;
use crate::index::FlowIndex;
use crate::keys::{pack_in, pack_out};
use crate::ledger::Ledger;
use crate::list::{List, NIL};
use crate::pool::PortPool;
use crate::rng::SplitMix64;
use crate::session::{Mapping, Session};
use crate::signatures::Catalogue;
use crate::stats::{DestRecord, Event, HostRecord};
use crate::tier::TIERS;
use crate::timers::{TimerTable, CLASSES};
use crate::token_bucket::TokenBucket;
pub use mappings::{MappingGrant, MappingInfo, MappingLimits, MappingRefusal, MappingRequest};
pub use offload::{FlowSeen, OffloadDrain, OffloadFlow, OffloadOp, OffloadedTcp};
pub use restore::RestoreReport;

use crate::types::{Endpoint, InboundPacket, OutboundPacket, Protocol, SessionState, Timestamp};

mod alloc;
mod batch;
mod expiry;
mod hosts;
mod inspect;
mod mappings;
mod offload;
mod refusal;
mod restore;
mod router;
mod state;
mod table;

/// What to do with a packet from the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundVerdict {
    /// Rewrite the source to `external` and send it into the tunnel.
    Translate {
        /// External source endpoint (address and port, or ICMP identifier).
        external: Endpoint,
    },
    /// Hairpin (RFC 4787 REQ-9): rewrite the source to `external_src` (our external address,
    /// so the receiver sees the mapped endpoint) and the destination to `internal_dst`, and
    /// send it back to the LAN.
    Hairpin {
        /// New source: the sender's external endpoint.
        external_src: Endpoint,
        /// New destination: the LAN endpoint behind the mapping.
        internal_dst: Endpoint,
    },
    /// Drop the packet, counted under `reason`.
    Drop {
        /// Why.
        reason: NatDrop,
        /// Whether to tell the sender with ICMP (rate limited already).
        notice: Option<RefuseNotice>,
    },
}

/// The ICMP message that tells a LAN sender its flow was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseNotice {
    /// ICMP destination unreachable, communication administratively prohibited (type 3,
    /// code 13; RFC 5508 REQ-8, RFC 1812 §5.2.7.1).
    AdminProhibited,
}

/// What to do with a packet from the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundVerdict {
    /// Rewrite the destination to `internal` and send it to the LAN.
    Translate {
        /// The LAN endpoint.
        internal: Endpoint,
    },
    /// Drop, counted under the reason.
    Drop(NatDrop),
}

/// One row of the session table, for `mape show sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Protocol.
    pub proto: Protocol,
    /// LAN endpoint.
    pub internal: Endpoint,
    /// External endpoint.
    pub external: Endpoint,
    /// Remote endpoint.
    pub remote: Endpoint,
    /// State.
    pub state: SessionState,
    /// Milliseconds since creation.
    pub age_ms: u64,
    /// Milliseconds since the last packet.
    pub idle_ms: u64,
    /// Milliseconds until expiry.
    pub left_ms: u64,
    /// Whether the external port is shared with other mappings.
    pub shared_port: bool,
    /// What the flow is for the budget, in the words of the culprit view: `closing` (TCP
    /// that is over), `unanswered`, `answered_once` (a one-shot exchange), `stream`, or
    /// `open` (TCP opening from outside, established or half closed: never recycled).
    pub kind: Cow<'static, str>,
}

/// A packet the batch calls look up: outbound through the outbound index, inbound through
/// the inbound one.
trait Lookup {
    type Verdict;
    fn hash(&self, nat: &Nat) -> u64;
    fn index(nat: &Nat) -> &FlowIndex;
    fn translate(&self, nat: &mut Nat, now: Timestamp, hash: u64, hint: u32) -> Self::Verdict;
}

impl Lookup for OutboundPacket {
    type Verdict = OutboundVerdict;
    #[inline]
    fn hash(&self, nat: &Nat) -> u64 {
        nat.hasher
            .hash_one(pack_out(self.proto, self.src, self.dst))
    }
    #[inline]
    fn index(nat: &Nat) -> &FlowIndex {
        &nat.out_index
    }
    #[inline]
    fn translate(&self, nat: &mut Nat, now: Timestamp, hash: u64, hint: u32) -> OutboundVerdict {
        nat.outbound_hashed(now, self, hash, hint)
    }
}

impl Lookup for InboundPacket {
    type Verdict = InboundVerdict;
    #[inline]
    fn hash(&self, nat: &Nat) -> u64 {
        nat.hasher
            .hash_one(pack_in(self.proto, self.dst.port, self.src))
    }
    #[inline]
    fn index(nat: &Nat) -> &FlowIndex {
        &nat.in_index
    }
    #[inline]
    fn translate(&self, nat: &mut Nat, now: Timestamp, hash: u64, hint: u32) -> InboundVerdict {
        nat.inbound_hashed(now, self, hash, hint)
    }
}

/// The NAPT44 engine over one external address and one port set.
#[derive(Debug)]
pub struct Nat {
    cfg: NatConfig,
    external: Ipv4Addr,
    ports: PortSet,
    budget: u32,
    hasher: RandomState,
    sessions: Vec<Session>,
    free_sessions: Vec<u32>,
    live_sessions: u32,
    mappings: Vec<Mapping>,
    free_mappings: Vec<u32>,
    /// (proto, internal, remote) → session: the outbound lookup.
    out_index: FlowIndex,
    /// (proto, external port, remote) → session: the inbound lookup.
    in_index: FlowIndex,
    /// (proto, internal) → endpoint-independent mapping.
    map_index: FlowIndex,
    pools: [PortPool; 3],
    timers: TimerTable,
    hosts: Vec<HostRecord>,
    /// Per host, per protocol, one FIFO per recyclable tier (`tier::Tier`).
    host_lists: Vec<[[List; TIERS]; 3]>,
    host_ix: HashMap<Ipv4Addr, u32, RandomState>,
    /// Free slots, the idle list and the unanswered index of the host records (`hosts`).
    book: hosts::HostBook,
    active_hosts: u32,
    dests: HashMap<(Protocol, Endpoint), DestRecord, RandomState>,
    ledger: Ledger,
    /// Refusal notices allowed (RFC 1812 §4.3.2.8); `None` when the policy sends none.
    notices: Option<TokenBucket>,
    rng: SplitMix64,
    forecaster: Forecaster,
    /// Known offenders, to name a culprit's application (`signatures`).
    signatures: Arc<Catalogue>,
    /// Hosts named as culprits and not cleared yet (`refusal::culprit_tick`).
    named: Vec<u32>,
    /// The kernel fast path's journal (`offload`).
    offload: offload::Offload,
    /// Port mappings with their lifetimes (`mappings`).
    leases: mappings::Leases,
    /// The ports the router's flows hold alone (`router`).
    router: router::RouterBook,
}

/// The refusal notice bucket a configuration asks for.
fn notice_bucket(cfg: &NatConfig) -> Option<TokenBucket> {
    cfg.icmp_on_refusal
        .then(|| TokenBucket::per_second(cfg.icmp_rate_per_sec))
}

impl Nat {
    /// An engine translating to `external` over `ports`, configured by `cfg`.
    pub fn new(cfg: NatConfig, external: Ipv4Addr, ports: PortSet) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let budget = ports.count();
        let pool = || PortPool::new(budget, ports.index_of(0));
        let mut nat = Self {
            timers: TimerTable::new(&cfg),
            rng: SplitMix64::new(cfg.seed),
            notices: notice_bucket(&cfg),
            cfg,
            external,
            ports,
            budget,
            hasher: RandomState::default(),
            sessions: Vec::new(),
            free_sessions: Vec::new(),
            live_sessions: 0,
            mappings: Vec::new(),
            free_mappings: Vec::new(),
            out_index: FlowIndex::default(),
            in_index: FlowIndex::default(),
            map_index: FlowIndex::default(),
            pools: [pool(), pool(), pool()],
            hosts: Vec::new(),
            host_lists: Vec::new(),
            host_ix: HashMap::default(),
            book: hosts::HostBook::default(),
            active_hosts: 0,
            dests: HashMap::default(),
            ledger: Ledger::new(),
            forecaster: Forecaster::new(CLASSES),
            signatures: Arc::new(Catalogue::builtin()),
            named: Vec::new(),
            offload: offload::Offload::default(),
            leases: mappings::Leases::default(),
            router: router::RouterBook::default(),
        };
        let forwards = nat.cfg.forwards.clone();
        nat.install_forwards(&forwards, Timestamp(0))?;
        Ok(nat)
    }
}

impl Nat {
    // ---------------------------------------------------------------- accessors

    /// The configuration in force.
    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    /// Replaces the catalogue of known offenders (the built-in one by default; the daemon
    /// adds `/etc/mape/signatures.d`).
    pub fn set_signatures(&mut self, catalogue: Arc<Catalogue>) {
        self.signatures = catalogue;
    }

    /// The catalogue of known offenders in use.
    pub fn signatures(&self) -> &Catalogue {
        &self.signatures
    }

    /// The external IPv4 address.
    pub fn external(&self) -> Ipv4Addr {
        self.external
    }

    /// The port set.
    pub fn port_set(&self) -> PortSet {
        self.ports
    }

    /// Ports per protocol (the budget).
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Ports in use for `proto`.
    pub fn ports_in_use(&self, proto: Protocol) -> u32 {
        self.pools[proto.index()].in_use()
    }

    /// Ports in use in the most pressed protocol.
    pub fn budget_used(&self) -> u32 {
        Protocol::ALL
            .iter()
            .map(|p| self.ports_in_use(*p))
            .max()
            .unwrap_or(0)
    }

    /// Live sessions.
    pub fn session_count(&self) -> u32 {
        self.live_sessions
    }

    /// Drops counted under `reason`.
    pub fn drops(&self, reason: NatDrop) -> u64 {
        self.ledger.drops[reason.index()]
    }

    /// New flows refused so far.
    pub fn refusals(&self) -> u64 {
        self.ledger.refusals
    }

    /// Takes the pending events (oldest first).
    pub fn drain_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.ledger.events.drain(..)
    }

    /// Events dropped because nobody drained the queue.
    pub fn events_lost(&self) -> u64 {
        self.ledger.events_lost
    }

    /// Translates a packet from the LAN (RFC 4787, RFC 5382, RFC 5508 outbound rules).
    pub fn outbound(&mut self, now: Timestamp, pkt: &OutboundPacket) -> OutboundVerdict {
        let hash = pkt.hash(self);
        self.outbound_hashed(now, pkt, hash, NIL)
    }

    /// [`Nat::outbound`] with the hash of the packet's key already computed, and `hint`, a
    /// session that may be the packet's (tried first; `NIL` for none). Only the established
    /// path is inline; new flows, hairpins, drops and timer work are calls.
    #[inline(always)]
    fn outbound_hashed(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
        hash: u64,
        hint: u32,
    ) -> OutboundVerdict {
        if pkt.proto != Protocol::Icmp && (pkt.src.port == 0 || pkt.dst.port == 0) {
            return self.drop_out(NatDrop::PortZero);
        }
        if self.timers.tick_due(now) {
            self.expire_tick(now);
        }
        let sessions = &self.sessions;
        let is_it =
            |x: &Session| x.internal == pkt.src && x.remote == pkt.dst && x.proto == pkt.proto;
        // A live session with the key is the one: keys are unique among live sessions.
        let found = match sessions.get(hint as usize) {
            Some(x) if x.is_live() && is_it(x) => Some(hint),
            _ => self.out_index.find(hash, |s| is_it(&sessions[s as usize])),
        };
        match found {
            Some(s) => {
                self.touch_outbound(s, now, pkt);
                self.outbound_translated(now, pkt, s)
            }
            None => self.outbound_new(now, pkt),
        }
    }

    /// A packet of a new flow: a session if the budget allows.
    #[inline(never)]
    fn outbound_new(&mut self, now: Timestamp, pkt: &OutboundPacket) -> OutboundVerdict {
        match self.new_flow(now, pkt) {
            Ok(s) => self.outbound_translated(now, pkt, s),
            Err((reason, notice)) => OutboundVerdict::Drop { reason, notice },
        }
    }

    #[inline(always)]
    fn outbound_translated(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
        s: u32,
    ) -> OutboundVerdict {
        let external = Endpoint::new(self.external, self.sessions[s as usize].ext_port);
        // Only ports of our own set hairpin: another CE sharing the address (another PSID)
        // is reached through the tunnel and the BR (RFC 7597 §8).
        if pkt.dst.addr == self.external && self.ports.contains(pkt.dst.port) {
            return self.hairpin(now, pkt, external);
        }
        OutboundVerdict::Translate { external }
    }

    /// Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): the packet re-enters as if it came
    /// from our external endpoint, and obeys the same filtering.
    #[cold]
    #[inline(never)]
    fn hairpin(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
        external: Endpoint,
    ) -> OutboundVerdict {
        let back = InboundPacket {
            proto: pkt.proto,
            src: external,
            dst: pkt.dst,
            flags: pkt.flags,
            seq: pkt.seq,
            ack: pkt.ack,
        };
        match self.inbound(now, &back) {
            InboundVerdict::Translate { internal } => OutboundVerdict::Hairpin {
                external_src: external,
                internal_dst: internal,
            },
            InboundVerdict::Drop(reason) => OutboundVerdict::Drop {
                reason,
                notice: None,
            },
        }
    }

    /// Translates a packet from the tunnel back to the LAN.
    pub fn inbound(&mut self, now: Timestamp, pkt: &InboundPacket) -> InboundVerdict {
        let hash = pkt.hash(self);
        self.inbound_hashed(now, pkt, hash, NIL)
    }

    /// [`Nat::inbound`] with the hash of the packet's key already computed and a session
    /// to try first (see [`Nat::outbound_hashed`]).
    #[inline(always)]
    fn inbound_hashed(
        &mut self,
        now: Timestamp,
        pkt: &InboundPacket,
        hash: u64,
        hint: u32,
    ) -> InboundVerdict {
        if pkt.dst.addr != self.external {
            return self.drop_in(NatDrop::NotOurAddress);
        }
        if pkt.proto != Protocol::Icmp && (pkt.src.port == 0 || pkt.dst.port == 0) {
            return self.drop_in(NatDrop::PortZero);
        }
        let Some(ix) = self.ports.index_of(pkt.dst.port) else {
            return self.drop_in(NatDrop::PortOutsideSet);
        };
        if self.timers.tick_due(now) {
            self.expire_tick(now);
        }
        if let Some(s) = self.find_inbound_hashed(pkt.proto, pkt.dst.port, pkt.src, hash, hint) {
            self.touch_inbound(s, now, pkt);
            return InboundVerdict::Translate {
                internal: self.sessions[s as usize].internal,
            };
        }
        self.inbound_unknown(now, pkt, ix)
    }

    /// A packet from the tunnel with no session for its remote endpoint; `ix` is the
    /// position of its destination port in the port set.
    #[inline(never)]
    fn inbound_unknown(&mut self, now: Timestamp, pkt: &InboundPacket, ix: u32) -> InboundVerdict {
        // No session for this remote: a static forward or an unshared endpoint-independent
        // mapping may accept it (RFC 4787 §5 filtering; RFC 5382 REQ-4 for inbound SYN).
        let slot = self.pools[pkt.proto.index()].slots[ix as usize];
        if slot.users == 0 {
            return self.drop_in(NatDrop::NoMapping);
        }
        let accept = slot.is_static
            || (self.cfg.filtering == Filtering::EndpointIndependent && slot.users == 1);
        let tcp_ok = pkt.proto != Protocol::Tcp || pkt.flags.is_syn_only();
        let Some(m) = slot.owner.filter(|_| accept && tcp_ok) else {
            return self.drop_in(NatDrop::Filtered);
        };
        if self.live_sessions >= self.cfg.max_sessions {
            return self.drop_in(NatDrop::SessionLimit);
        }
        let state = match pkt.proto {
            Protocol::Tcp => SessionState::SynReceived,
            _ => SessionState::Answered,
        };
        let s = self.add_session(now, m, pkt.src, state);
        InboundVerdict::Translate {
            internal: self.sessions[s as usize].internal,
        }
    }

    /// Maps the packet embedded in an ICMP error from the tunnel back to the LAN: the
    /// embedded packet is one we sent (`ext` → `remote`). Returns the LAN endpoint to put in
    /// its place. Never refreshes or ends a session (RFC 5508 REQ-6, RFC 4787 REQ-12).
    pub fn inbound_icmp_error(
        &mut self,
        proto: Protocol,
        ext: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        if ext.addr != self.external {
            self.ledger.count(NatDrop::IcmpErrorNoSession);
            return None;
        }
        match self.find_inbound(proto, ext.port, remote) {
            Some(s) => Some(self.sessions[s as usize].internal),
            None => {
                self.ledger.count(NatDrop::IcmpErrorNoSession);
                None
            }
        }
    }

    /// Maps the packet embedded in an ICMP error a LAN host sends about a packet it got
    /// (`remote` → `internal`): returns our external endpoint to put in its place.
    pub fn outbound_icmp_error(
        &mut self,
        proto: Protocol,
        internal: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        let found = self.translation_of(proto, internal, remote);
        if found.is_none() {
            self.ledger.count(NatDrop::IcmpErrorNoSession);
        }
        found
    }

    /// The external endpoint of the live session `internal` → `remote`, if any (no side
    /// effects; for show commands and tests).
    pub fn translation_of(
        &self,
        proto: Protocol,
        internal: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        let key = pack_out(proto, internal, remote);
        let hash = self.hasher.hash_one(key);
        let sessions = &self.sessions;
        self.out_index
            .find(hash, |s| {
                let x = &sessions[s as usize];
                pack_out(x.proto, x.internal, x.remote) == key
            })
            .map(|s| Endpoint::new(self.external, self.sessions[s as usize].ext_port))
    }

    fn find_inbound(&self, proto: Protocol, ext_port: u16, remote: Endpoint) -> Option<u32> {
        let hash = self.hasher.hash_one(pack_in(proto, ext_port, remote));
        self.find_inbound_hashed(proto, ext_port, remote, hash, NIL)
    }

    #[inline]
    fn find_inbound_hashed(
        &self,
        proto: Protocol,
        ext_port: u16,
        remote: Endpoint,
        hash: u64,
        hint: u32,
    ) -> Option<u32> {
        let sessions = &self.sessions;
        let is_it = |x: &Session| x.remote == remote && x.ext_port == ext_port && x.proto == proto;
        match sessions.get(hint as usize) {
            Some(x) if x.is_live() && is_it(x) => Some(hint),
            _ => self.in_index.find(hash, |s| is_it(&sessions[s as usize])),
        }
    }

    #[cold]
    fn drop_out(&mut self, reason: NatDrop) -> OutboundVerdict {
        self.ledger.count(reason);
        OutboundVerdict::Drop {
            reason,
            notice: None,
        }
    }

    #[cold]
    fn drop_in(&mut self, reason: NatDrop) -> InboundVerdict {
        self.ledger.count(reason);
        InboundVerdict::Drop(reason)
    }
}
