//! The NAPT44 engine: session table, port allocation over the port set, timers, quotas and
//! the truth about the budget.
//!
//! Shape (reference/crates-and-style.md "Session DB shape", after Jool's BIB/session DB):
//! one arena of sessions (one 64-byte cache line each) and one of mappings; three hash
//! indexes (`index::FlowIndex`: outbound 5-tuple → session, inbound (port, remote) →
//! session, internal endpoint → endpoint-independent mapping); a dense per-protocol array
//! of port slots indexed by the port's position in the port set; one FIFO per timer class
//! with lazy re-queueing, so expiry is O(1) amortized and nothing ever scans the table.
//!
//! An established lookup costs two cache misses at most (index bucket, session). The batch
//! calls (`outbound_batch`, `inbound_batch`, and the `prefetch_*` hints the dataplane uses)
//! load the buckets, then the sessions, of a whole batch in tight loops of independent
//! loads, so the misses overlap: safe Rust has no prefetch instruction, but a load nothing
//! waits on is one (docs/performance.md).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::Arc;

use foldhash::fast::RandomState;
use mape_rules::PortSet;
use serde::Serialize;

use crate::config::{ConfigError, Filtering, NatConfig, PortStrategy};
use crate::drop::NatDrop;
use crate::forecast::{Forecast, Forecaster};
use crate::index::FlowIndex;
use crate::list::{Link, List, NIL};
use crate::pattern::{Evidence, Pattern};
use crate::rng::SplitMix64;
use crate::signatures::Catalogue;
use crate::stats::{
    Culprit, DestRecord, DestinationStats, Event, EventKind, HostRecord, ProtoBudget, Refusal,
    Snapshot,
};
use crate::types::{
    Endpoint, InboundPacket, OutboundPacket, Protocol, SessionState, TcpFlags, Timestamp,
};

mod inspect;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub kind: &'static str,
}

/// [`SessionInfo::kind`] of each tier, in `TIER_*` order.
const TIER_WORDS: [&str; TIERS] = ["closing", "unanswered", "answered_once", "stream"];

const CLASS_UDP_UNANSWERED: u8 = 0;
const CLASS_UDP_ANSWERED_ONCE: u8 = 1;
const CLASS_UDP_ANSWERED: u8 = 2;
const CLASS_UDP_DNS: u8 = 3;
const CLASS_TCP_TRANSITORY: u8 = 4;
const CLASS_TCP_ESTABLISHED: u8 = 5;
const CLASS_TCP_TIME_WAIT: u8 = 6;
const CLASS_ICMP: u8 = 7;
const CLASSES: usize = 8;
/// Names of the timer classes, in index order (metrics and show commands).
const CLASS_NAMES: [&str; CLASSES] = [
    "udp_unanswered",
    "udp_answered_once",
    "udp_answered",
    "udp_dns_answered",
    "tcp_transitory",
    "tcp_established",
    "tcp_time_wait",
    "icmp",
];

/// What a host's session could give up for a new flow of the same host, in the order the
/// engine recycles them (a host is never refused while it holds any of these): the
/// per-host, per-protocol lists a session sits in (`Session::tier`).
///
/// TCP after both FINs, or after a believed RST: the connection is over (RFC 7857 §3.2).
const TIER_CLOSING: u8 = 0;
/// UDP or ICMP with no answer yet, TCP SYN sent and nothing back.
const TIER_UNANSWERED: u8 = 1;
/// UDP or ICMP that got its answer and was not heard of again two seconds after it began
/// (a one-shot exchange: NTP, STUN, a game server ping, a single echo; Linux conntrack's
/// "not a stream" test, `nf_conntrack_proto_udp.c`).
const TIER_ANSWERED_ONCE: u8 = 2;
/// UDP or ICMP still active two seconds after it began (a stream); recycled for its own
/// host only after it has been idle `STREAM_IDLE_MS`.
const TIER_STREAM: u8 = 3;
const TIERS: usize = 4;
/// Not in any recyclable list (TCP opening by an inbound SYN, established, half closed).
const NO_TIER: u8 = u8::MAX;

/// A flow seen again at least this long after it began is a stream, not a one-shot
/// exchange (Linux `nf_conntrack_proto_udp.c`: "still active after two seconds").
const STREAM_AFTER_MS: u64 = 2_000;
/// An answered stream a host may recycle for itself has been silent this long (as long as
/// the shortest timer the policy gives a flow that never got an answer).
const STREAM_IDLE_MS: u64 = 30_000;
/// Inbound RSTs are believed when their sequence number lies within this many bytes at or
/// after the last acknowledgement the LAN host sent (RFC 5961 §3.2 in spirit: the host
/// itself accepts only RCV.NXT exactly and challenges the rest; a NAT cannot see its
/// window, so it allows the data that may be in flight at gigabit rates and home RTTs).
const RST_WINDOW: u32 = 1 << 22;

/// `Mapping::sessions` of a mapping on the free list.
const FREED: u32 = u32::MAX;

/// Bits in `Session::bits`: TCP FINs seen each way, an RST believed from the remote (a
/// later packet from the LAN host proves it wrong), an ACK from the LAN host recorded in
/// `lan_ack`, and a UDP/ICMP flow known to be a stream.
const FIN_OUT: u8 = 1;
const FIN_IN: u8 = 2;
const RST_IN: u8 = 4;
const ACK_SEEN: u8 = 8;
const STREAM: u8 = 16;

/// Per-packet expiry runs at most this often (the daemon also calls [`Nat::expire`]).
const EXPIRE_EVERY_MS: u64 = 50;
/// Lookups whose cache misses [`Nat::prefetch_outbound`] overlaps at once (about what a
/// core keeps in flight).
const PREFETCH_BATCH: usize = 64;
/// Refusal ring and event queue bounds.
const RECENT_REFUSALS: usize = 64;
const MAX_EVENTS: usize = 1024;
/// Destination records kept (live ones always; idle ones pruned when full).
const MAX_DESTINATIONS: usize = 8192;

/// One flow. Exactly one cache line, aligned to one, with the lookup key first: verifying
/// an index candidate and touching the session cost a single cache miss.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Session {
    proto: Protocol,
    state: SessionState,
    class: u8,
    bits: u8,
    internal: Endpoint,
    remote: Endpoint,
    ext_port: u16,
    /// The recyclable list of its host this session sits in (`TIER_*`, or `NO_TIER`).
    tier: u8,
    mapping: u32,
    /// TCP: the last acknowledgement number the LAN host sent (valid with `ACK_SEEN`).
    lan_ack: u32,
    /// Creation time in whole seconds (shown as the age; one line per session has no room
    /// for milliseconds).
    created_s: u32,
    last_seen: u64,
    queued_at: u64,
    timer: Link,
    host_link: Link,
}

const _: () = assert!(std::mem::size_of::<Session>() == 64);

#[derive(Debug, Clone)]
struct Mapping {
    proto: Protocol,
    internal: Endpoint,
    ext_port: u16,
    host: u32,
    sessions: u32,
    is_static: bool,
    eim_indexed: bool,
}

#[derive(Debug, Clone, Copy)]
struct PortSlot {
    /// Mappings on this port (more than one = shared across remote endpoints).
    users: u32,
    /// The mapping that took the port first, while it still holds it (`NIL` otherwise).
    owner: u32,
    is_static: bool,
}

#[derive(Debug, Clone)]
struct PortPool {
    slots: Vec<PortSlot>,
    free: Vec<u32>,
    free_pos: Vec<u32>,
    /// Ports never handed out (port 0).
    reserved: u32,
    peak: u32,
    peak_at: Timestamp,
    sessions: u32,
    level: u8,
}

impl PortPool {
    /// A pool of `count` ports; `never` (the index of port 0, when the set holds it: a = 0
    /// and PSID 0) is never handed out and does not count as in use.
    fn new(count: u32, never: Option<u32>) -> Self {
        let mut pool = Self {
            slots: vec![
                PortSlot {
                    users: 0,
                    owner: NIL,
                    is_static: false
                };
                count as usize
            ],
            free: (0..count).collect(),
            free_pos: (0..count).collect(),
            reserved: 0,
            peak: 0,
            peak_at: Timestamp(0),
            sessions: 0,
            level: 0,
        };
        if let Some(ix) = never.filter(|&ix| ix < count) {
            pool.take(ix);
            pool.slots[ix as usize].is_static = true;
            pool.reserved = 1;
        }
        pool
    }

    fn in_use(&self) -> u32 {
        (self.slots.len() - self.free.len()) as u32 - self.reserved
    }

    fn take(&mut self, ix: u32) {
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

    fn give_back(&mut self, ix: u32) {
        if self.free_pos[ix as usize] != NIL {
            return;
        }
        self.free_pos[ix as usize] = self.free.len() as u32;
        self.free.push(ix);
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
    timers: [List; CLASSES],
    timeouts_ms: [u64; CLASSES],
    next_expire: u64,
    hosts: Vec<HostRecord>,
    /// Per host, per protocol, one FIFO per recyclable tier.
    host_lists: Vec<[[List; TIERS]; 3]>,
    host_ix: HashMap<Ipv4Addr, u32, RandomState>,
    active_hosts: u32,
    dests: HashMap<(Protocol, Endpoint), DestRecord, RandomState>,
    drops: [u64; NatDrop::COUNT],
    refusals: u64,
    first_refusal: Option<Timestamp>,
    last_refusal: Option<Timestamp>,
    exhausted_at: Option<Timestamp>,
    recent: VecDeque<Refusal>,
    events: VecDeque<Event>,
    events_lost: u64,
    rst_unverified: u64,
    peak: u32,
    peak_at: Timestamp,
    icmp_tokens: u64,
    icmp_refill_at: u64,
    rng: SplitMix64,
    forecaster: Forecaster,
    /// Known offenders, to name a culprit's application (`signatures`).
    signatures: Arc<Catalogue>,
}

/// An address as a number for hashing (host byte order: no swap, never shown).
#[inline]
fn addr_bits(a: Ipv4Addr) -> u64 {
    u64::from(u32::from_ne_bytes(a.octets()))
}

/// The outbound lookup key (proto, internal, remote) in two words.
#[inline]
fn pack_out(proto: Protocol, internal: Endpoint, remote: Endpoint) -> (u64, u64) {
    (
        addr_bits(internal.addr) << 32 | addr_bits(remote.addr),
        (proto as u64) << 32 | u64::from(internal.port) << 16 | u64::from(remote.port),
    )
}

/// The inbound lookup key (proto, external port, remote) in two words.
#[inline]
fn pack_in(proto: Protocol, ext_port: u16, remote: Endpoint) -> (u64, u64) {
    (
        addr_bits(remote.addr) << 32 | u64::from(ext_port) << 16 | u64::from(remote.port),
        proto as u64,
    )
}

#[inline]
fn pack_map(proto: Protocol, internal: Endpoint) -> u64 {
    (proto as u64) << 48 | u64::from(u32::from(internal.addr)) << 16 | u64::from(internal.port)
}

fn timer_link(s: &mut Session) -> &mut Link {
    &mut s.timer
}

fn host_link(s: &mut Session) -> &mut Link {
    &mut s.host_link
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

fn class_of(proto: Protocol, state: SessionState, stream: bool) -> u8 {
    match (proto, state) {
        (Protocol::Icmp, _) => CLASS_ICMP,
        (Protocol::Udp, SessionState::Answered) if stream => CLASS_UDP_ANSWERED,
        (Protocol::Udp, SessionState::Answered) => CLASS_UDP_ANSWERED_ONCE,
        (Protocol::Udp, SessionState::DnsAnswered) => CLASS_UDP_DNS,
        (Protocol::Udp, _) => CLASS_UDP_UNANSWERED,
        (Protocol::Tcp, SessionState::Established) => CLASS_TCP_ESTABLISHED,
        (Protocol::Tcp, SessionState::TimeWait) => CLASS_TCP_TIME_WAIT,
        (Protocol::Tcp, _) => CLASS_TCP_TRANSITORY,
    }
}

/// The protocol of a timer class.
const fn class_proto(class: u8) -> Protocol {
    match class {
        CLASS_ICMP => Protocol::Icmp,
        CLASS_TCP_TRANSITORY | CLASS_TCP_ESTABLISHED | CLASS_TCP_TIME_WAIT => Protocol::Tcp,
        _ => Protocol::Udp,
    }
}

/// The recyclable tier of a session in `state` (`NO_TIER` for TCP that is opening from
/// outside, established or half closed: never recycled).
fn tier_of(proto: Protocol, state: SessionState, stream: bool) -> u8 {
    match (proto, state) {
        (Protocol::Tcp, SessionState::TimeWait) => TIER_CLOSING,
        (_, SessionState::Unanswered | SessionState::SynSent) => TIER_UNANSWERED,
        (Protocol::Tcp, _) => NO_TIER,
        (_, SessionState::Answered) if stream => TIER_STREAM,
        (_, _) => TIER_ANSWERED_ONCE,
    }
}

impl Nat {
    /// An engine translating to `external` over `ports`, configured by `cfg`.
    pub fn new(cfg: NatConfig, external: Ipv4Addr, ports: PortSet) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let budget = ports.count();
        let mut nat = Self {
            timeouts_ms: Self::timeouts_ms(&cfg),
            rng: SplitMix64::new(cfg.seed),
            icmp_tokens: u64::from(cfg.icmp_rate_per_sec),
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
            pools: [
                PortPool::new(budget, ports.index_of(0)),
                PortPool::new(budget, ports.index_of(0)),
                PortPool::new(budget, ports.index_of(0)),
            ],
            timers: [List::default(); CLASSES],
            next_expire: 0,
            hosts: Vec::new(),
            host_lists: Vec::new(),
            host_ix: HashMap::default(),
            active_hosts: 0,
            dests: HashMap::default(),
            drops: [0; NatDrop::COUNT],
            refusals: 0,
            first_refusal: None,
            last_refusal: None,
            exhausted_at: None,
            recent: VecDeque::with_capacity(RECENT_REFUSALS),
            events: VecDeque::new(),
            events_lost: 0,
            rst_unverified: 0,
            peak: 0,
            peak_at: Timestamp(0),
            icmp_refill_at: 0,
            forecaster: Forecaster::new(CLASSES),
            signatures: Arc::new(Catalogue::builtin()),
        };
        let forwards = nat.cfg.forwards.clone();
        nat.install_forwards(&forwards)?;
        Ok(nat)
    }

    fn timeouts_ms(cfg: &NatConfig) -> [u64; CLASSES] {
        let t = &cfg.timeouts;
        let ms = |s: u64| s.saturating_mul(1000);
        [
            ms(t.udp_unanswered),
            ms(t.udp_answered_once),
            ms(t.udp_answered),
            ms(t.udp_dns_answered),
            ms(t.tcp_transitory),
            ms(t.tcp_established),
            ms(t.tcp_time_wait),
            ms(t.icmp),
        ]
    }

    /// Checks forwards against the port set and each other (no state touched).
    fn check_forwards(&self, forwards: &[crate::config::StaticForward]) -> Result<(), ConfigError> {
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

    /// Whether a dynamic mapping holds a forward's port (then it cannot be installed now).
    fn forward_port_busy(&self, f: &crate::config::StaticForward) -> bool {
        self.ports.index_of(f.external_port).is_some_and(|ix| {
            let slot = self.pools[f.proto.index()].slots[ix as usize];
            slot.users > 0 && !slot.is_static
        })
    }

    fn install_forwards(
        &mut self,
        forwards: &[crate::config::StaticForward],
    ) -> Result<(), ConfigError> {
        self.check_forwards(forwards)?;
        if let Some(f) = forwards.iter().find(|f| self.forward_port_busy(f)) {
            return Err(ConfigError::ForwardBusy {
                proto: f.proto,
                port: f.external_port,
            });
        }
        for f in forwards {
            let Some(ix) = self.ports.index_of(f.external_port) else {
                continue;
            };
            let p = f.proto.index();
            let host = self.host_index(f.internal.addr);
            let m = self.alloc_mapping(Mapping {
                proto: f.proto,
                internal: f.internal,
                ext_port: f.external_port,
                host,
                sessions: 0,
                is_static: true,
                eim_indexed: false,
            });
            let slot = &mut self.pools[p].slots[ix as usize];
            slot.users = 1;
            slot.owner = m;
            slot.is_static = true;
            self.pools[p].take(ix);
            self.index_mapping(m);
        }
        Ok(())
    }

    /// Applies a new configuration (SIGHUP): timers, quotas, filters, strategy and forwards
    /// change; live sessions stay. A forward whose port a dynamic mapping holds now is
    /// refused with [`ConfigError::ForwardBusy`] and nothing changes.
    pub fn reconfigure(&mut self, cfg: NatConfig, now: Timestamp) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.check_forwards(&cfg.forwards)?;
        if let Some(f) = cfg.forwards.iter().find(|f| self.forward_port_busy(f)) {
            return Err(ConfigError::ForwardBusy {
                proto: f.proto,
                port: f.external_port,
            });
        }
        let old: Vec<u32> = (0..self.mappings.len() as u32)
            .filter(|&m| {
                let x = &self.mappings[m as usize];
                x.is_static && x.sessions != FREED
            })
            .collect();
        for m in old {
            self.drop_static_mapping(m, now);
        }
        self.timeouts_ms = Self::timeouts_ms(&cfg);
        let forwards = cfg.forwards.clone();
        self.cfg = cfg;
        self.install_forwards(&forwards)
    }

    fn drop_static_mapping(&mut self, m: u32, now: Timestamp) {
        // Sessions through the forward end with it (O(sessions), only on reload).
        let victims: Vec<u32> = (0..self.sessions.len() as u32)
            .filter(|&s| self.session_alive(s) && self.sessions[s as usize].mapping == m)
            .collect();
        self.mappings[m as usize].is_static = false;
        self.mappings[m as usize].sessions += 1; // keep it while its sessions go
        for s in victims {
            self.remove_session(s, now);
        }
        self.mappings[m as usize].sessions -= 1;
        let (proto, ext_port) = (
            self.mappings[m as usize].proto,
            self.mappings[m as usize].ext_port,
        );
        if let Some(ix) = self.ports.index_of(ext_port) {
            self.pools[proto.index()].slots[ix as usize].is_static = false;
        }
        self.release_mapping(m, now, false);
    }

    fn session_alive(&self, s: u32) -> bool {
        let sess = &self.sessions[s as usize];
        sess.mapping != NIL
    }

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
        self.drops[reason.index()]
    }

    /// New flows refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals
    }

    /// Takes the pending events (oldest first).
    pub fn drain_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// Events dropped because nobody drained the queue.
    pub fn events_lost(&self) -> u64 {
        self.events_lost
    }

    // ---------------------------------------------------------------- packet path

    /// Loads the index buckets and sessions the packets of a batch will look up, so that
    /// their cache misses overlap instead of coming one after another: with a million
    /// sessions every lookup misses the cache twice (bucket, then session), and a batch pays
    /// for those misses roughly once. A pure hint: it changes no state and no verdict.
    pub fn prefetch_outbound(&self, pkts: &[OutboundPacket]) {
        self.prefetch_all(pkts);
    }

    /// [`Nat::prefetch_outbound`] for packets from the tunnel.
    pub fn prefetch_inbound(&self, pkts: &[InboundPacket]) {
        self.prefetch_all(pkts);
    }

    /// Translates a batch of packets from the LAN: the verdicts, in order, that
    /// [`Nat::outbound`] gives one packet at a time, with the cache misses of up to 64
    /// lookups overlapped (see [`Nat::prefetch_outbound`]). `verdicts` is cleared first;
    /// reuse it and nothing is allocated.
    pub fn outbound_batch(
        &mut self,
        now: Timestamp,
        pkts: &[OutboundPacket],
        verdicts: &mut Vec<OutboundVerdict>,
    ) {
        self.batch(now, pkts, verdicts);
    }

    /// [`Nat::outbound_batch`] for packets from the tunnel.
    pub fn inbound_batch(
        &mut self,
        now: Timestamp,
        pkts: &[InboundPacket],
        verdicts: &mut Vec<InboundVerdict>,
    ) {
        self.batch(now, pkts, verdicts);
    }

    fn prefetch_all<P: Lookup>(&self, pkts: &[P]) {
        let mut hashes = [0u64; PREFETCH_BATCH];
        for chunk in pkts.chunks(PREFETCH_BATCH) {
            let hashes = self.hash_chunk(chunk, &mut hashes);
            self.prefetch_hashed(P::index(self), hashes, &mut [NIL; PREFETCH_BATCH]);
        }
    }

    /// The key hashes of a chunk of at most `PREFETCH_BATCH` packets, in `buf`.
    fn hash_chunk<'a, P: Lookup>(
        &self,
        chunk: &[P],
        buf: &'a mut [u64; PREFETCH_BATCH],
    ) -> &'a [u64] {
        let hashes = &mut buf[..chunk.len()];
        for (h, p) in hashes.iter_mut().zip(chunk) {
            *h = p.hash(self);
        }
        hashes
    }

    fn batch<P: Lookup>(&mut self, now: Timestamp, pkts: &[P], verdicts: &mut Vec<P::Verdict>) {
        verdicts.clear();
        let mut hashes = [0u64; PREFETCH_BATCH];
        for chunk in pkts.chunks(PREFETCH_BATCH) {
            let hashes = self.hash_chunk(chunk, &mut hashes);
            let mut hints = [NIL; PREFETCH_BATCH];
            self.prefetch_hashed(P::index(self), hashes, &mut hints);
            for ((p, &h), &hint) in chunk.iter().zip(hashes.iter()).zip(&hints) {
                verdicts.push(p.translate(self, now, h, hint));
            }
        }
    }

    /// Loads the buckets of `hashes`, then the sessions of their first candidates, which it
    /// leaves in `ids` (`NIL` for none) for the lookups to try first.
    fn prefetch_hashed(&self, index: &FlowIndex, hashes: &[u64], ids: &mut [u32; PREFETCH_BATCH]) {
        // Independent loads with no branch on their results: the CPU issues them all before
        // the first one returns. `black_box` keeps the compiler from dropping them.
        let mut acc = 0u32;
        for &h in hashes {
            acc ^= index.touch(h);
        }
        std::hint::black_box(acc);
        // The buckets are in the cache now: find the candidates first, then load their
        // sessions in a loop as tight as the first, so that as many misses are in flight.
        for (id, &h) in ids.iter_mut().zip(hashes) {
            *id = index.candidate(h);
        }
        let mut acc = 0u64;
        for &id in &ids[..hashes.len()] {
            if let Some(x) = self.sessions.get(id as usize) {
                acc ^= x.last_seen;
            }
        }
        std::hint::black_box(acc);
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
        if now.millis() >= self.next_expire {
            self.expire_tick(now);
        }
        let sessions = &self.sessions;
        let is_it =
            |x: &Session| x.internal == pkt.src && x.remote == pkt.dst && x.proto == pkt.proto;
        // A live session with the key is the one: keys are unique among live sessions.
        let found = match sessions.get(hint as usize) {
            Some(x) if x.mapping != NIL && is_it(x) => Some(hint),
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

    /// The timer work due every `EXPIRE_EVERY_MS`, bounded (amortized O(1) per packet).
    #[cold]
    #[inline(never)]
    fn expire_tick(&mut self, now: Timestamp) {
        self.expire_bounded(now, 256);
        self.next_expire = now.millis().saturating_add(EXPIRE_EVERY_MS);
        if self.forecaster.due(now) {
            self.forecast_tick(now);
        }
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
        if now.millis() >= self.next_expire {
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
        let accept = slot.owner != NIL
            && (slot.is_static
                || (self.cfg.filtering == Filtering::EndpointIndependent && slot.users == 1));
        let tcp_ok = pkt.proto != Protocol::Tcp || pkt.flags.is_syn_only();
        if !accept || !tcp_ok {
            return self.drop_in(NatDrop::Filtered);
        }
        if self.live_sessions >= self.cfg.max_sessions {
            return self.drop_in(NatDrop::SessionLimit);
        }
        let m = slot.owner;
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
            self.drops[NatDrop::IcmpErrorNoSession.index()] += 1;
            return None;
        }
        match self.find_inbound(proto, ext.port, remote) {
            Some(s) => Some(self.sessions[s as usize].internal),
            None => {
                self.drops[NatDrop::IcmpErrorNoSession.index()] += 1;
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
            self.drops[NatDrop::IcmpErrorNoSession.index()] += 1;
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
            Some(x) if x.mapping != NIL && is_it(x) => Some(hint),
            _ => self.in_index.find(hash, |s| is_it(&sessions[s as usize])),
        }
    }

    #[cold]
    fn drop_out(&mut self, reason: NatDrop) -> OutboundVerdict {
        self.drops[reason.index()] += 1;
        OutboundVerdict::Drop {
            reason,
            notice: None,
        }
    }

    #[cold]
    fn drop_in(&mut self, reason: NatDrop) -> InboundVerdict {
        self.drops[reason.index()] += 1;
        InboundVerdict::Drop(reason)
    }

    // ---------------------------------------------------------------- state machine

    fn touch_outbound(&mut self, s: u32, now: Timestamp, pkt: &OutboundPacket) {
        let flags = pkt.flags;
        let sess = &mut self.sessions[s as usize];
        sess.last_seen = sess.last_seen.max(now.millis());
        let new_state = match (sess.proto, sess.state) {
            (Protocol::Tcp, st) => {
                if flags.has(TcpFlags::ACK) {
                    sess.lan_ack = pkt.ack;
                    sess.bits |= ACK_SEEN;
                }
                if flags.has(TcpFlags::RST) {
                    // The LAN host ends its own connection: believed.
                    SessionState::TimeWait
                } else if flags.is_syn_only() && st == SessionState::TimeWait {
                    // A new incarnation of the same 5-tuple (RFC 7857 §3.2, RFC 6191).
                    sess.bits &= !(FIN_OUT | FIN_IN | RST_IN);
                    SessionState::SynSent
                } else if st == SessionState::TimeWait && sess.bits & RST_IN != 0 {
                    // The LAN host goes on after a reset we believed: it did not (RFC 5961
                    // §3.2 challenge ACK, or data), so the connection lives.
                    sess.bits &= !RST_IN;
                    SessionState::Established
                } else if flags.has(TcpFlags::FIN) {
                    sess.bits |= FIN_OUT;
                    if sess.bits & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN {
                        SessionState::TimeWait
                    } else {
                        SessionState::FinWait
                    }
                } else if st == SessionState::SynReceived && flags.has(TcpFlags::ACK) {
                    SessionState::Established
                } else {
                    st
                }
            }
            // A new query on an answered DNS socket waits for its own answer.
            (Protocol::Udp, SessionState::DnsAnswered) => SessionState::Unanswered,
            (_, SessionState::Answered) if sess.bits & STREAM == 0 => {
                return self.maybe_stream(s, now);
            }
            (_, st) => st,
        };
        if new_state != self.sessions[s as usize].state {
            self.set_state(s, new_state, now);
        }
    }

    fn touch_inbound(&mut self, s: u32, now: Timestamp, pkt: &InboundPacket) {
        let flags = pkt.flags;
        let sess = &mut self.sessions[s as usize];
        sess.last_seen = sess.last_seen.max(now.millis());
        let first_answer = sess.state.is_unanswered();
        let mut unverified_rst = false;
        let new_state = match (sess.proto, sess.state) {
            (Protocol::Tcp, st) => {
                if flags.has(TcpFlags::RST) {
                    // Anyone on the internet can send an RST with our external port in it;
                    // believe it only for a connection not yet answered (a refused SYN:
                    // already recyclable) or within the window the LAN host acknowledged.
                    let in_window = sess.bits & ACK_SEEN != 0
                        && pkt.seq.wrapping_sub(sess.lan_ack) < RST_WINDOW;
                    if st == SessionState::SynSent || in_window {
                        sess.bits |= RST_IN;
                        SessionState::TimeWait
                    } else {
                        unverified_rst = true;
                        st
                    }
                } else if flags.has(TcpFlags::FIN) {
                    sess.bits |= FIN_IN;
                    if sess.bits & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN {
                        SessionState::TimeWait
                    } else {
                        SessionState::FinWait
                    }
                } else if st == SessionState::SynSent {
                    SessionState::Established
                } else {
                    st
                }
            }
            (Protocol::Udp, _) if sess.remote.port == 53 => SessionState::DnsAnswered,
            (_, SessionState::Answered) if sess.bits & STREAM == 0 => {
                return self.maybe_stream(s, now);
            }
            (Protocol::Udp, _) | (Protocol::Icmp, _) => SessionState::Answered,
        };
        if first_answer {
            let (proto, remote) = (sess.proto, sess.remote);
            if let Some(d) = self.dests.get_mut(&(proto, remote)) {
                d.answered = d.answered.saturating_add(1);
            }
        }
        if unverified_rst {
            self.rst_unverified += 1;
        }
        if new_state != self.sessions[s as usize].state {
            self.set_state(s, new_state, now);
        }
    }

    /// A packet of an answered UDP/ICMP flow not yet known as a stream: it becomes one when
    /// the packet comes at least `STREAM_AFTER_MS` after the flow began.
    #[inline]
    fn maybe_stream(&mut self, s: u32, now: Timestamp) {
        let x = &self.sessions[s as usize];
        let began_ms = u64::from(x.created_s) * 1000;
        // `created_s` is whole seconds: add one so the flow is surely that old.
        if now.millis() >= began_ms + STREAM_AFTER_MS + 1000 {
            self.sessions[s as usize].bits |= STREAM;
            self.retier(s, now);
        }
    }

    #[inline(never)]
    fn set_state(&mut self, s: u32, state: SessionState, now: Timestamp) {
        let x = &mut self.sessions[s as usize];
        x.state = state;
        if state == SessionState::Answered
            && now.millis() >= u64::from(x.created_s) * 1000 + STREAM_AFTER_MS + 1000
        {
            x.bits |= STREAM;
        }
        self.retier(s, now);
    }

    /// Moves a session to the timer class and recyclable tier its state (and stream bit)
    /// call for.
    #[inline(never)]
    fn retier(&mut self, s: u32, now: Timestamp) {
        let (state, old_class, old_tier, proto, m, stream) = {
            let x = &self.sessions[s as usize];
            (
                x.state,
                x.class,
                x.tier,
                x.proto,
                x.mapping,
                x.bits & STREAM != 0,
            )
        };
        let host = self.mappings[m as usize].host;
        let class = class_of(proto, state, stream);
        if class != old_class {
            self.timers[old_class as usize].unlink(&mut self.sessions, s, timer_link);
            self.timers[class as usize].push_back(&mut self.sessions, s, timer_link);
            self.forecaster.left_early(old_class, now);
            self.forecaster.entered(class, now);
            let x = &mut self.sessions[s as usize];
            x.class = class;
            x.queued_at = now.millis().max(x.last_seen);
            x.last_seen = x.queued_at;
        }
        let tier = tier_of(proto, state, stream);
        if tier != old_tier {
            self.untier(s, host);
            self.entier(s, host, tier);
        }
    }

    /// Puts session `s` of `host` at the tail of its tier list.
    fn entier(&mut self, s: u32, host: u32, tier: u8) {
        if tier == NO_TIER {
            return;
        }
        let p = self.sessions[s as usize].proto.index();
        self.host_lists[host as usize][p][tier as usize].push_back(
            &mut self.sessions,
            s,
            host_link,
        );
        self.sessions[s as usize].tier = tier;
        self.hosts[host as usize].tiers[tier as usize] += 1;
    }

    /// Takes session `s` of `host` out of its tier list, if it is in one.
    fn untier(&mut self, s: u32, host: u32) {
        let (tier, p) = {
            let x = &self.sessions[s as usize];
            (x.tier, x.proto.index())
        };
        if tier == NO_TIER {
            return;
        }
        self.host_lists[host as usize][p][tier as usize].unlink(&mut self.sessions, s, host_link);
        self.sessions[s as usize].tier = NO_TIER;
        let n = &mut self.hosts[host as usize].tiers[tier as usize];
        *n = n.saturating_sub(1);
    }

    // ---------------------------------------------------------------- new flows

    fn host_index(&mut self, addr: Ipv4Addr) -> u32 {
        if let Some(&h) = self.host_ix.get(&addr) {
            return h;
        }
        let h = self.hosts.len() as u32;
        self.hosts.push(HostRecord::new(addr));
        self.host_lists.push([[List::default(); TIERS]; 3]);
        self.host_ix.insert(addr, h);
        h
    }

    #[cold]
    #[inline(never)]
    fn new_flow(
        &mut self,
        now: Timestamp,
        pkt: &OutboundPacket,
    ) -> Result<u32, (NatDrop, Option<RefuseNotice>)> {
        let proto = pkt.proto;
        let host = self.host_index(pkt.src.addr);
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
        if let Some(q) = self.cfg.quota {
            let cap = self.host_cap(host, proto);
            let held = self.hosts[host as usize].ports[proto.index()];
            if held >= cap {
                if !self.hosts[host as usize].capped[proto.index()] {
                    self.hosts[host as usize].capped[proto.index()] = true;
                    let addr = self.hosts[host as usize].addr;
                    self.push_event(
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
                    && tries < 16
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
        let syn = proto == Protocol::Tcp && pkt.flags.is_syn_only();
        choice = choice.filter(|&ix| self.tuple_free(proto, ix, pkt.dst, syn));
        if choice.is_none() {
            choice = self.choose_port(host, pkt);
        }
        if choice.is_none() {
            // Nothing free: expire what is due, then reclaim in order: closing TCP sessions
            // of any host (RFC 7857 §3.2), this host's own idle state, the oldest unanswered
            // flow of a host over its cap. Each reclaimed port is tried for this flow first.
            self.expire_bounded(now, usize::MAX);
            choice = self.choose_port(host, pkt);
            let mut tries = 0;
            while choice.is_none() && tries < 8 {
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
                    .filter(|&ix| self.tuple_free(proto, ix, pkt.dst, syn))
                    .or_else(|| self.choose_port(host, pkt));
            }
        }
        let Some(ix) = choice else {
            return Err(self.refuse(now, host, pkt, NatDrop::PortsExhausted));
        };
        let port = self.ports.nth(ix).unwrap_or(0);
        // A closing session that held the tuple gives it up to the new SYN (RFC 7857 §3.2).
        if let Some(old) = self.find_inbound(proto, port, pkt.dst) {
            if self.sessions[old as usize].state != SessionState::TimeWait {
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

    /// The most ports of `proto` a host may hold now: the cap while other hosts are active,
    /// the whole budget when alone.
    fn host_cap(&self, host: u32, _proto: Protocol) -> u32 {
        let Some(q) = self.cfg.quota else {
            return u32::MAX;
        };
        let me_active = self.hosts[host as usize].ports_held() > 0;
        let others = self.active_hosts - u32::from(me_active);
        if others == 0 {
            self.budget
        } else {
            (self.budget * u32::from(q.cap_percent) / 100).max(1)
        }
    }

    fn fair_share(&self, host: u32) -> u32 {
        let me_active = self.hosts[host as usize].ports_held() > 0;
        let active = self.active_hosts + u32::from(!me_active);
        self.budget / active.max(1)
    }

    /// Picks a port index for a new mapping, by the configured strategy; `None` when none fits.
    fn choose_port(&mut self, host: u32, pkt: &OutboundPacket) -> Option<u32> {
        let proto = pkt.proto;
        let p = proto.index();
        let syn = proto == Protocol::Tcp && pkt.flags.is_syn_only();
        let preserve = self.ports.index_of(pkt.src.port);
        match self.cfg.strategy {
            PortStrategy::BudgetAware {
                share_above_percent,
            } => {
                let in_use = self.pools[p].in_use();
                let pressure = u64::from(in_use) * 100
                    >= u64::from(self.budget) * u64::from(share_above_percent);
                let may_take_free = !self.pools[p].free.is_empty() && {
                    match self.cfg.quota {
                        None => true,
                        Some(q) => {
                            let reserve = self.budget * u32::from(q.reserve_percent) / 100;
                            self.pools[p].free.len() as u32 > reserve
                                || self.hosts[host as usize].ports[p] < self.fair_share(host)
                        }
                    }
                };
                if pressure {
                    if let Some(ix) = self.find_shareable(proto, pkt.dst, syn) {
                        return Some(ix);
                    }
                }
                if may_take_free {
                    // Port preservation (RFC 4787 REQ-3 spirit) when the port is ours and free.
                    if let Some(ix) = preserve {
                        let slot = self.pools[p].slots[ix as usize];
                        if slot.users == 0 && !slot.is_static {
                            return Some(ix);
                        }
                    }
                    return self.random_free(p, pkt.src.port);
                }
                if !pressure {
                    return self.find_shareable(proto, pkt.dst, syn);
                }
                None
            }
            PortStrategy::RandomProbe => {
                // nf_nat_core.c: keep the source port if the tuple is unique, else random probes.
                if let Some(ix) = preserve {
                    if self.tuple_free(proto, ix, pkt.dst, syn) {
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
                for _ in 0..128 {
                    let ix = self.rng.below(self.budget);
                    if self.tuple_free(proto, ix, pkt.dst, syn) {
                        return Some(ix);
                    }
                }
                None
            }
            PortStrategy::FreeFirst { share_tcp } => {
                if let Some(ix) = preserve {
                    let slot = self.pools[p].slots[ix as usize];
                    if slot.users == 0 && !slot.is_static {
                        return Some(ix);
                    }
                }
                if let Some(ix) = self.random_free(p, pkt.src.port) {
                    return Some(ix);
                }
                if share_tcp && proto == Protocol::Tcp {
                    return self.find_shareable(proto, pkt.dst, syn);
                }
                None
            }
        }
    }

    /// Whether port index `ix` can carry a new flow of `proto` to `remote`: not static, and
    /// no live session on (port, remote), except, for a new TCP SYN when the policy allows,
    /// a closing one (a new incarnation of the connection: RFC 7857 §3.2, RFC 6191).
    fn tuple_free(&self, proto: Protocol, ix: u32, remote: Endpoint, syn: bool) -> bool {
        let slot = self.pools[proto.index()].slots[ix as usize];
        if slot.is_static {
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
            Some(s) => {
                syn && self.cfg.reuse_closing_for_syn
                    && self.sessions[s as usize].state == SessionState::TimeWait
            }
        }
    }

    /// A random free port, preferring the source port's parity (RFC 4787 REQ-4).
    fn random_free(&mut self, p: usize, src_port: u16) -> Option<u32> {
        let n = self.pools[p].free.len() as u32;
        if n == 0 {
            return None;
        }
        let mut pick = 0;
        for _ in 0..4 {
            pick = self.pools[p].free[self.rng.below(n) as usize];
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
    fn closing_may_serve(&self, syn: bool) -> bool {
        syn && self.cfg.reuse_closing_for_syn && self.timers[CLASS_TCP_TIME_WAIT as usize].len > 0
    }

    /// An in-use, non-static port whose (port, remote) pair is free: port overlapping across
    /// remote endpoints (RFC 7857 §3), for every protocol.
    fn find_shareable(&mut self, proto: Protocol, remote: Endpoint, syn: bool) -> Option<u32> {
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
            slot.users > 0 && nat.tuple_free(proto, ix, remote, syn)
        };
        for _ in 0..32 {
            let ix = self.rng.below(self.budget);
            if usable(self, ix) {
                return Some(ix);
            }
        }
        let start = self.rng.below(self.budget);
        (0..self.budget.min(4096))
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

    /// How many entries of a list the recycling looks at for one that makes room.
    const RECLAIM_SCAN: usize = 64;

    /// Whether ending session `s` makes room for a new flow: it is its mapping's last
    /// session (the host's held count drops), and, when the new flow goes to `want`, its
    /// port is left free or its (port, remote) tuple is `want`'s.
    fn makes_room(&self, s: u32, want: Option<Endpoint>) -> bool {
        let x = &self.sessions[s as usize];
        if self.mappings[x.mapping as usize].sessions != 1 {
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
        want: Option<Endpoint>,
        link: fn(&mut Session) -> &mut Link,
    ) -> Option<u32> {
        let mut s = head;
        for _ in 0..Self::RECLAIM_SCAN {
            if s == NIL {
                return None;
            }
            if self.makes_room(s, want) {
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
            lists[TIER_CLOSING as usize].head,
            lists[TIER_ANSWERED_ONCE as usize].head,
            lists[TIER_UNANSWERED as usize].head,
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
        let roomy = heads.map(|h| self.first_making_room(h, want, host_link).unwrap_or(NIL));
        if roomy[0] != NIL {
            return Some(roomy[0]);
        }
        if let Some(s) = lru(self, roomy[1], roomy[2]) {
            return Some(s);
        }
        if heads[0] != NIL {
            return Some(heads[0]);
        }
        if let Some(s) = lru(self, heads[1], heads[2]) {
            return Some(s);
        }
        // Streams: the list is in the order they became streams; one heard from recently
        // goes to the tail (lazy LRU), at most eight per call.
        for _ in 0..8 {
            let s = self.host_lists[host as usize][p][TIER_STREAM as usize].head;
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
            let list = &mut self.host_lists[host as usize][p][TIER_STREAM as usize];
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
        let head = self.timers[CLASS_TCP_TIME_WAIT as usize].head;
        if head == NIL {
            return None;
        }
        let pick = self
            .first_making_room(head, Some(want), timer_link)
            .unwrap_or(head);
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
        let mut worst: Option<(u32, u32)> = None;
        for h in 0..self.hosts.len() as u32 {
            if h == asking || self.host_lists[h as usize][p][TIER_UNANSWERED as usize].head == NIL {
                continue;
            }
            let held = self.hosts[h as usize].ports[p];
            let cap = self.host_cap(h, proto);
            if held > cap.min(self.fair_share(h).max(1)) && worst.is_none_or(|(_, w)| held > w) {
                worst = Some((h, held));
            }
        }
        let (h, _) = worst?;
        let s = self.host_lists[h as usize][p][TIER_UNANSWERED as usize].head;
        let ix = self.recycle(s, now);
        self.check_culprit(now, h);
        ix
    }

    fn filtered(
        &mut self,
        now: Timestamp,
        host: u32,
        pkt: &OutboundPacket,
        block: &'static str,
    ) -> (NatDrop, Option<RefuseNotice>) {
        self.drops[NatDrop::DestinationFiltered.index()] += 1;
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
            self.push_event(
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

    fn refuse(
        &mut self,
        now: Timestamp,
        host: u32,
        pkt: &OutboundPacket,
        reason: NatDrop,
    ) -> (NatDrop, Option<RefuseNotice>) {
        self.drops[reason.index()] += 1;
        self.refusals += 1;
        self.first_refusal.get_or_insert(now);
        self.last_refusal = Some(now);
        let h = &mut self.hosts[host as usize];
        h.refusals += 1;
        h.last_refusal = Some(now);
        h.note_destination(now, pkt.proto, pkt.dst);
        if self.recent.len() == RECENT_REFUSALS {
            self.recent.pop_front();
        }
        let addr = self.hosts[host as usize].addr;
        self.recent.push_back(Refusal {
            at: now,
            host: addr,
            proto: pkt.proto,
            dst: pkt.dst,
            reason,
        });
        if reason == NatDrop::PortsExhausted {
            self.exhausted_at.get_or_insert(now);
            let pool = &mut self.pools[pkt.proto.index()];
            if pool.level < 3 {
                pool.level = 3;
                self.push_event(now, EventKind::BudgetExhausted { proto: pkt.proto });
            }
        }
        self.check_culprit(now, host);
        (reason, self.notice(now))
    }

    /// Token bucket for refusal notices (RFC 1812 §4.3.2.8 rate limiting).
    fn notice(&mut self, now: Timestamp) -> Option<RefuseNotice> {
        if !self.cfg.icmp_on_refusal || self.cfg.icmp_rate_per_sec == 0 {
            return None;
        }
        let rate = u64::from(self.cfg.icmp_rate_per_sec);
        let elapsed = now.millis().saturating_sub(self.icmp_refill_at);
        let add = elapsed * rate / 1000;
        if add > 0 {
            self.icmp_tokens = (self.icmp_tokens + add).min(rate);
            self.icmp_refill_at = now.millis();
        }
        if self.icmp_tokens > 0 {
            self.icmp_tokens -= 1;
            Some(RefuseNotice::AdminProhibited)
        } else {
            None
        }
    }

    /// What host `h` is doing: from what it could not keep, or, while nothing of it has
    /// ended yet (long timers), from a sample of its live unanswered flows.
    pub(crate) fn pattern_of(&self, h: u32, now: Timestamp) -> Pattern {
        let rec = &self.hosts[h as usize];
        let mut live = Evidence::default();
        if rec.evidence.is_empty() {
            // The newest of each protocol in turn, 32 at most.
            let mut at = self.host_lists[h as usize].map(|l| l[TIER_UNANSWERED as usize].tail);
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

    fn check_culprit(&mut self, now: Timestamp, host: u32) {
        let h = &self.hosts[host as usize];
        if h.named || !h.is_culprit(now, self.budget) {
            return;
        }
        let addr = h.addr;
        let pattern = self.pattern_of(host, now);
        let summary = pattern.to_string();
        self.hosts[host as usize].named = true;
        self.push_event(
            now,
            EventKind::CulpritNamed {
                host: addr,
                pattern,
                summary,
            },
        );
    }

    fn push_event(&mut self, at: Timestamp, kind: EventKind) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.events_lost += 1;
        }
        self.events.push_back(Event { at, kind });
    }

    // ---------------------------------------------------------------- table plumbing

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

    fn new_mapping(
        &mut self,
        now: Timestamp,
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
            is_static: false,
            eim_indexed: false,
        });
        let p = proto.index();
        let slot = &mut self.pools[p].slots[ix as usize];
        slot.users += 1;
        if slot.users == 1 {
            slot.owner = m;
            self.pools[p].take(ix);
        } else {
            slot.owner = NIL;
        }
        self.index_mapping(m);
        let h = &mut self.hosts[host as usize];
        if h.ports_held() == 0 {
            self.active_hosts += 1;
        }
        h.ports[p] += 1;
        h.new_ports[p].add(now.millis());
        h.peak_ports = h.peak_ports.max(h.ports_held());
        self.after_budget_change(proto, now);
        m
    }

    fn release_mapping(&mut self, m: u32, now: Timestamp, count_host: bool) {
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
            let slot = &mut self.pools[p].slots[ix as usize];
            slot.users = slot.users.saturating_sub(1);
            if slot.owner == m {
                slot.owner = NIL;
            }
            if slot.users == 0 {
                slot.is_static = false;
                self.pools[p].give_back(ix);
            }
        }
        if count_host {
            let h = &mut self.hosts[host as usize];
            h.ports[p] = h.ports[p].saturating_sub(1);
            if h.ports_held() == 0 {
                self.active_hosts = self.active_hosts.saturating_sub(1);
            }
            if h.capped[p] {
                let cap = self.host_cap(host, proto);
                if self.hosts[host as usize].ports[p] * 10 < cap * 9 {
                    self.hosts[host as usize].capped[p] = false;
                }
            }
        }
        self.mappings[m as usize].sessions = FREED;
        self.free_mappings.push(m);
        self.after_budget_change(proto, now);
    }

    fn add_session(
        &mut self,
        now: Timestamp,
        m: u32,
        remote: Endpoint,
        state: SessionState,
    ) -> u32 {
        let (proto, internal, ext_port, host) = {
            let x = &mut self.mappings[m as usize];
            x.sessions += 1;
            (x.proto, x.internal, x.ext_port, x.host)
        };
        let class = class_of(proto, state, false);
        let sess = Session {
            proto,
            state,
            class,
            bits: 0,
            tier: NO_TIER,
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
        self.timers[class as usize].push_back(&mut self.sessions, s, timer_link);
        self.forecaster.entered(class, now);
        self.entier(s, host, tier_of(proto, state, false));
        self.hosts[host as usize].flows += 1;
        // Both indexes (the pair is unique by construction: checked before the port was chosen).
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

    fn dest_record(
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

    fn remove_session(&mut self, s: u32, now: Timestamp) {
        let (proto, internal, remote, ext_port, class, m, tier) = {
            let x = &self.sessions[s as usize];
            (
                x.proto, x.internal, x.remote, x.ext_port, x.class, x.mapping, x.tier,
            )
        };
        if m == NIL {
            return;
        }
        let host = self.mappings[m as usize].host;
        self.timers[class as usize].unlink(&mut self.sessions, s, timer_link);
        self.untier(s, host);
        if tier == TIER_UNANSWERED {
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
        if mm.sessions == 0 && !mm.is_static {
            self.release_mapping(m, now, true);
        }
    }

    fn after_budget_change(&mut self, proto: Protocol, now: Timestamp) {
        let budget = self.budget.max(1);
        let p = proto.index();
        let in_use = self.pools[p].in_use();
        let pool = &mut self.pools[p];
        if in_use > pool.peak {
            pool.peak = in_use;
            pool.peak_at = now;
        }
        if in_use > self.peak {
            self.peak = in_use;
            self.peak_at = now;
        }
        let pct = u64::from(in_use) * 100 / u64::from(budget);
        let level = self.pools[p].level;
        let mut ev = None;
        if pct >= 95 && level < 2 {
            self.pools[p].level = 2;
            ev = Some(EventKind::Budget95 { proto, in_use });
            if level < 1 {
                self.push_event(now, EventKind::Budget80 { proto, in_use });
            }
        } else if pct >= 80 && level < 1 {
            self.pools[p].level = 1;
            ev = Some(EventKind::Budget80 { proto, in_use });
        } else if pct < 75 && level >= 1 {
            self.pools[p].level = 0;
            ev = Some(EventKind::BudgetRecovered { proto, in_use });
        }
        if let Some(kind) = ev {
            self.push_event(now, kind);
        }
    }

    // ---------------------------------------------------------------- timers

    /// Ends every session whose timer ran out by `now`. Amortized O(1) per session: each
    /// class is a FIFO of equal timeouts; a session refreshed since it was queued is moved to
    /// the tail when it reaches the head (lazy re-queueing), so the packet path only writes
    /// one timestamp.
    pub fn expire(&mut self, now: Timestamp) {
        self.expire_bounded(now, usize::MAX);
        if self.forecaster.due(now) {
            self.forecast_tick(now);
        }
    }

    /// Samples ports in use for the forecast and warns, once per episode, when a
    /// protocol's budget would run out within the horizon (`forecast` module).
    #[cold]
    #[inline(never)]
    fn forecast_tick(&mut self, now: Timestamp) {
        let in_use = Protocol::ALL.map(|p| self.pools[p.index()].in_use());
        self.forecaster.sample(now, in_use);
        for proto in Protocol::ALL {
            let f = self.forecast(proto, now);
            let horizon = self.cfg.forecast_horizon_s;
            if let Some(w) = self.forecaster.note(proto, f, horizon) {
                self.push_event(
                    now,
                    EventKind::ExhaustionForecast {
                        proto,
                        seconds: w.seconds.round() as u64,
                        driver: self.driver(proto, now),
                    },
                );
            }
        }
    }

    /// The exhaustion forecast of `proto` now, if its use grows toward the budget.
    pub fn forecast(&self, proto: Protocol, now: Timestamp) -> Option<Forecast> {
        // The classes of idle state, whose sessions leave when their timer runs out, less
        // those the policy gives to a new flow when the budget is out (closing TCP for
        // anyone; one-shot answers for their own host, which its cap bounds): those
        // cannot refuse anyone.
        let recycle_idle = self.cfg.quota.is_some_and(|q| q.recycle_idle);
        let mut classes = [(0u8, 0u64); CLASSES];
        let mut n = 0;
        for (c, timeout) in (0..CLASSES as u8)
            .filter(|&c| class_proto(c) == proto)
            .filter(|&c| c != CLASS_TCP_ESTABLISHED && c != CLASS_UDP_ANSWERED)
            .filter(|&c| !(self.cfg.reclaim_time_wait && c == CLASS_TCP_TIME_WAIT))
            .filter(|&c| {
                !(recycle_idle && matches!(c, CLASS_UDP_ANSWERED_ONCE | CLASS_UDP_DNS | CLASS_ICMP))
            })
            .map(|c| (c, self.timeouts_ms[usize::from(c)]))
        {
            // No allocation: this runs on the packet path every sample.
            classes[n] = (c, timeout);
            n += 1;
        }
        let usable = self.budget - self.pools[proto.index()].reserved;
        self.forecaster
            .forecast(proto, now, usable, &classes[..n])
            .map(|f| Forecast {
                driver: self.driver(proto, now),
                ..f
            })
    }

    /// The LAN host opening new ports of `proto` fastest lately.
    fn driver(&self, proto: Protocol, now: Timestamp) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .map(|h| (h.new_ports[proto.index()].decayed(now.millis()), h.addr))
            .filter(|&(r, _)| r > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, a)| a)
    }

    fn expire_bounded(&mut self, now: Timestamp, mut budget: usize) {
        let now_ms = now.millis();
        for class in 0..CLASSES {
            let timeout = self.timeouts_ms[class];
            while budget > 0 {
                let s = self.timers[class].head;
                if s == NIL {
                    break;
                }
                let (last_seen, queued_at) = {
                    let x = &self.sessions[s as usize];
                    (x.last_seen, x.queued_at)
                };
                if last_seen.saturating_add(timeout) <= now_ms {
                    self.remove_session(s, now);
                } else if last_seen > queued_at {
                    self.timers[class].unlink(&mut self.sessions, s, timer_link);
                    self.timers[class].push_back(&mut self.sessions, s, timer_link);
                    self.sessions[s as usize].queued_at = last_seen;
                } else {
                    break;
                }
                budget -= 1;
            }
        }
    }

    /// The earliest time a session may expire (for the daemon's timer), if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        (0..CLASSES)
            .filter_map(|c| {
                let s = self.timers[c].head;
                (s != NIL).then(|| {
                    Timestamp(
                        self.sessions[s as usize]
                            .queued_at
                            .saturating_add(self.timeouts_ms[c]),
                    )
                })
            })
            .min()
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
