//! The truth the engine keeps about the port budget: per protocol, per LAN host and per
//! destination; refusals; a culprit score with known flow signatures; and an event stream.
//! Snapshots are plain owned values built off the packet path.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::drop::NatDrop;
use crate::forecast::{Forecast, Rate};
use crate::list::Link;
use crate::pattern::{Evidence, Pattern};
use crate::signatures::Catalogue;
use crate::tier::{Tier, TIERS};
use crate::types::{Endpoint, Protocol, Timestamp};

/// Budget of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoBudget {
    /// Protocol.
    pub proto: Protocol,
    /// Ports in the set.
    pub total: u32,
    /// Ports holding at least one mapping.
    pub in_use: u32,
    /// Highest `in_use` seen.
    pub peak: u32,
    /// When the peak was first reached.
    pub peak_at: Timestamp,
    /// Live sessions.
    pub sessions: u32,
}

/// A refused or filtered new flow, kept in a bounded ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// When.
    pub at: Timestamp,
    /// LAN host.
    pub host: Ipv4Addr,
    /// Protocol.
    pub proto: Protocol,
    /// Remote endpoint.
    pub dst: Endpoint,
    /// Why.
    pub reason: NatDrop,
}

/// Per-LAN-host statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    /// The host.
    pub addr: Ipv4Addr,
    /// Live sessions (flows).
    pub flows: u32,
    /// Ports held, all protocols (one per mapping).
    pub ports_held: u32,
    /// Ports held per protocol (tcp, udp, icmp).
    pub ports_by_proto: [u32; 3],
    /// Live sessions never answered.
    pub unanswered: u32,
    /// Live UDP/ICMP sessions that got their answer and were not heard of again (one-shot
    /// exchanges: recycled for this host first when it needs room).
    pub answered_once: u32,
    /// Live UDP/ICMP sessions still active two seconds after they began.
    pub streams: u32,
    /// Live TCP sessions that are over (both FINs, or a reset) and wait out TIME_WAIT.
    pub closing: u32,
    /// Highest `ports_held` seen.
    pub peak_ports: u32,
    /// New flows refused (quota, exhaustion, table full).
    pub refusals: u64,
    /// Last refusal.
    pub last_refusal: Option<Timestamp>,
    /// New flows to filtered special-purpose destinations.
    pub filtered: u64,
    /// First time one of them was filtered.
    pub first_filtered: Option<Timestamp>,
    /// Own idle sessions (closing, one-shot, unanswered, idle streams) given up to make room.
    pub recycled: u64,
    /// Unanswered flows (filtered, refused or ended unanswered) per second, last minute.
    pub new_unanswered_per_s: f64,
    /// Share of new flows that used a source port not used before (0..1).
    pub source_port_spread: f64,
    /// Culprit score: the higher, the likelier this host burns the budget.
    pub culprit_score: f64,
    /// Matched signature (its name in the catalogue), if any.
    pub signature: Option<String>,
    /// The host is the router itself (`NatConfig::router`): its own flows.
    #[serde(default)]
    pub router: bool,
}

/// The router's own flows and the ports kept for them (`NatConfig::router`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouterStats {
    /// Internal source addresses that are the router.
    pub addresses: Vec<Ipv4Addr>,
    /// Ports of each protocol's set kept for the router's flows.
    pub reserve_ports: u32,
    /// Live sessions of the router's flows.
    pub flows: u32,
    /// Ports held by the router's mappings per protocol (tcp, udp, icmp).
    pub ports_by_proto: [u32; 3],
    /// Ports used by the router's flows alone per protocol: they count toward the reserve.
    pub alone_by_proto: [u32; 3],
    /// Ports LAN hosts cannot take now per protocol: the reserve not yet used by the router.
    pub kept_free_by_proto: [u32; 3],
    /// New router flows refused.
    pub refusals: u64,
}

/// Per-destination statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStats {
    /// Protocol.
    pub proto: Protocol,
    /// Remote endpoint.
    pub dst: Endpoint,
    /// Live flows to it.
    pub flows: u32,
    /// Flows ever opened (or attempted, when filtered) to it.
    pub flows_total: u64,
    /// Distinct LAN hosts that sent to it (saturates at 255).
    pub hosts: u32,
    /// Attempts refused by the destination filter.
    pub filtered: u64,
}

/// A named suspect with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Culprit {
    /// The host.
    pub host: Ipv4Addr,
    /// What it is doing, typed.
    pub pattern: Pattern,
    /// The destination that pattern centres on, typed (`Pattern::destination`: the one
    /// place a storm goes to, the first resolver of a DNS storm; none for a fan-out).
    pub top_destination: Option<Endpoint>,
    /// The same in words, e.g. "udp to 192.168.1.211:59870 from new source ports, never
    /// answered" (what `show culprits`, events and the replay report print).
    pub summary: String,
    /// Matched signature name (`signatures` catalogue).
    pub signature: Option<String>,
    /// The application the signature names.
    pub description: Option<String>,
    /// What to do about it, from the signature.
    pub advice: Option<String>,
    /// New unanswered flows per second.
    pub rate_per_s: f64,
    /// Ports held.
    pub ports_held: u32,
    /// Its live flows never answered.
    pub unanswered: u32,
    /// Its live one-shot exchanges that got their answer.
    pub answered_once: u32,
    /// Its live streams.
    pub streams: u32,
    /// Score.
    pub score: f64,
}

/// What happened, once per episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// Budget use crossed 80 %.
    Budget80 {
        /// Protocol.
        proto: Protocol,
        /// Ports in use.
        in_use: u32,
    },
    /// Budget use crossed 95 %.
    Budget95 {
        /// Protocol.
        proto: Protocol,
        /// Ports in use.
        in_use: u32,
    },
    /// No port left; a flow was refused.
    BudgetExhausted {
        /// Protocol.
        proto: Protocol,
    },
    /// Back below 75 % after an episode.
    BudgetRecovered {
        /// Protocol.
        proto: Protocol,
        /// Ports in use.
        in_use: u32,
    },
    /// A host hit its cap.
    HostCapped {
        /// The host.
        host: Ipv4Addr,
        /// Protocol.
        proto: Protocol,
        /// Its cap in ports.
        cap: u32,
    },
    /// At the current rate the protocol's budget runs out within the forecast horizon
    /// (once per episode, before any threshold is crossed).
    ExhaustionForecast {
        /// Protocol.
        proto: Protocol,
        /// Seconds until no port is left at the current rate.
        seconds: u64,
        /// The LAN host opening new ports fastest, if any.
        driver: Option<Ipv4Addr>,
    },
    /// A culprit was named.
    CulpritNamed {
        /// The host.
        host: Ipv4Addr,
        /// What it is doing.
        pattern: Pattern,
        /// The destination that pattern centres on (see [`Culprit::top_destination`]).
        top_destination: Option<Endpoint>,
        /// The same in words.
        summary: String,
    },
    /// A named culprit's storm has stopped: its score stayed below the clearing
    /// threshold for the hold time (hysteresis, see `Nat::culprit_tick`); it is no longer
    /// shown as the culprit, and is named again (a new `culprit_named`) if it starts over.
    CulpritCleared {
        /// The host.
        host: Ipv4Addr,
        /// When it was named.
        named_at: Timestamp,
    },
    /// A LAN application got a port mapping (PCP, NAT-PMP, UPnP IGD).
    MappingAdded {
        /// The host.
        host: Ipv4Addr,
        /// Protocol.
        proto: Protocol,
        /// The LAN endpoint.
        internal: Endpoint,
        /// The external port (in the port set).
        external_port: u16,
        /// Seconds granted.
        lifetime_s: u32,
        /// Who asked.
        origin: crate::types::MappingOrigin,
    },
    /// A port mapping was deleted (lifetime 0).
    MappingRemoved {
        /// The host.
        host: Ipv4Addr,
        /// Protocol.
        proto: Protocol,
        /// The LAN endpoint.
        internal: Endpoint,
        /// The external port it had.
        external_port: u16,
    },
    /// A port mapping's lifetime ran out without renewal.
    MappingExpired {
        /// The host.
        host: Ipv4Addr,
        /// Protocol.
        proto: Protocol,
        /// The LAN endpoint.
        internal: Endpoint,
        /// The external port it had.
        external_port: u16,
        /// Seconds its last renewal granted.
        lifetime_s: u32,
    },
    /// First filtered flow from a host to a destination.
    DestinationFiltered {
        /// The host.
        host: Ipv4Addr,
        /// The destination.
        dst: Endpoint,
        /// The special-purpose block.
        block: &'static str,
    },
}

/// An event with its time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What the metrics endpoint exports ([`crate::Nat::metrics_view`]): the few numbers a
/// scrape needs, without the per-host statistics and destinations of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsView {
    /// Per protocol.
    pub protocols: Vec<ProtoBudget>,
    /// Live sessions by timer class.
    pub sessions_by_state: Vec<(&'static str, u32)>,
    /// Refused new flows by reason: every refusal reason, and any other with a count.
    pub refusals: Vec<(NatDrop, u64)>,
    /// Protocols whose use grows toward the budget.
    pub forecasts: Vec<Forecast>,
    /// The hosts holding the most ports, most first, and the ports they hold.
    pub top_hosts: Vec<(Ipv4Addr, u32)>,
    /// Ports held by every other host.
    pub other_hosts_ports: u64,
    /// Budget events lost because nobody drained the queue.
    pub events_lost: u64,
    /// LAN hosts with a record (at most `NatConfig::max_hosts`).
    pub host_records: u64,
    /// Host records given up: idle, and early for a new host at the cap.
    pub host_records_released: (u64, u64),
    /// The router's own flows (never among `top_hosts` nor `other_hosts_ports`).
    pub router: RouterStats,
}

/// A copy of the truth for readers (show commands, metrics, replay reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time of the snapshot.
    pub now: Timestamp,
    /// Policy name.
    pub policy: String,
    /// External IPv4 address.
    pub external: Ipv4Addr,
    /// Ports in the set (per protocol).
    pub budget: u32,
    /// Ports in use in the most pressed protocol.
    pub in_use: u32,
    /// Highest `in_use` seen.
    pub peak: u32,
    /// When the peak was first reached.
    pub peak_at: Timestamp,
    /// Per protocol.
    pub protocols: Vec<ProtoBudget>,
    /// Live sessions.
    pub sessions: u32,
    /// Live sessions by timer class (udp_unanswered, udp_answered, udp_dns_answered,
    /// tcp_transitory, tcp_established, tcp_time_wait, icmp).
    pub sessions_by_state: Vec<(Cow<'static, str>, u32)>,
    /// New flows refused, all hosts.
    pub refusals: u64,
    /// First refusal.
    pub first_refusal: Option<Timestamp>,
    /// Last refusal.
    pub last_refusal: Option<Timestamp>,
    /// First time a protocol's budget had no free port left.
    pub exhausted_at: Option<Timestamp>,
    /// Most recent refusals (bounded).
    pub recent_refusals: Vec<Refusal>,
    /// Hosts, by ports held (descending).
    pub hosts: Vec<HostStats>,
    /// Destinations, by live flows then total flows (descending, bounded).
    pub destinations: Vec<DestinationStats>,
    /// Drops by reason (all reasons, zero included).
    pub drops: Vec<(NatDrop, u64)>,
    /// Inbound TCP RSTs passed to the LAN host but not believed by the engine: outside
    /// the window the host acknowledged (RFC 5961 §3.2), so the session stays as it was.
    pub tcp_rst_unverified: u64,
    /// The likeliest culprit, if one stands out.
    pub culprit: Option<Culprit>,
    /// Without a culprit: the host holding the most ports with answered, long-lived flows
    /// when it holds a large share (pattern `heavy_use`: legitimate, not a storm).
    pub heavy_user: Option<Culprit>,
    /// Exhaustion forecasts, for the protocols whose use grows toward the budget.
    pub forecasts: Vec<Forecast>,
    /// The router's own flows and the ports kept for them.
    #[serde(default)]
    pub router: RouterStats,
}

/// Rolling one-minute counter in six 10-second buckets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MinuteRate {
    buckets: [u32; 6],
    current: u64,
}

impl MinuteRate {
    const BUCKET_MS: u64 = 10_000;

    pub(crate) fn add(&mut self, now: Timestamp) {
        self.roll(now);
        let i = (self.current % 6) as usize;
        self.buckets[i] = self.buckets[i].saturating_add(1);
    }

    fn roll(&mut self, now: Timestamp) {
        let b = now.millis() / Self::BUCKET_MS;
        if b <= self.current {
            return;
        }
        let steps = (b - self.current).min(6);
        for s in 1..=steps {
            self.buckets[((self.current + s) % 6) as usize] = 0;
        }
        self.current = b;
    }

    /// Events per second over the last minute.
    pub(crate) fn per_sec(&self, now: Timestamp) -> f64 {
        let mut c = *self;
        c.roll(now);
        f64::from(c.buckets.iter().sum::<u32>()) / 60.0
    }
}

/// Engine-internal per-host record.
#[derive(Debug, Clone)]
pub(crate) struct HostRecord {
    pub(crate) addr: Ipv4Addr,
    pub(crate) flows: u32,
    pub(crate) ports: [u32; 3],
    /// Live sessions per recyclable tier (closing, unanswered, answered once, streams).
    pub(crate) tiers: [u32; TIERS],
    pub(crate) peak_ports: u32,
    pub(crate) refusals: u64,
    pub(crate) last_refusal: Option<Timestamp>,
    pub(crate) filtered: u64,
    pub(crate) first_filtered: Option<Timestamp>,
    pub(crate) recycled: u64,
    pub(crate) new_unanswered: MinuteRate,
    pub(crate) new_flows: u64,
    pub(crate) new_source_ports: u64,
    pub(crate) last_source_port: [u16; 4],
    pub(crate) signature_hits: u32,
    /// The catalogue entry its new flows matched last, and whether that entry's pattern
    /// uses a new source port per flow.
    pub(crate) signature_idx: Option<(u32, bool)>,
    pub(crate) capped: [bool; 3],
    /// New ports (mappings) opened per protocol, smoothed: who drives the growth.
    pub(crate) new_ports: [Rate; 3],
    /// Where its recent flows that could not be kept went (the pattern's evidence).
    pub(crate) evidence: Evidence,
    /// New DNS queries (flows to port 53) per second.
    pub(crate) dns_queries: MinuteRate,
    /// The most DNS queries it sent within one minute.
    pub(crate) dns_peak_per_minute: u32,
    /// Named as the culprit (`culprit_named`) at this time, until cleared.
    pub(crate) named: Option<Timestamp>,
    /// Since when a named host's score stayed below the clearing threshold.
    pub(crate) quiet_since: Option<Timestamp>,
    /// Static forwards and port mappings to it: a host with one is never expired
    /// (`engine::hosts`).
    pub(crate) forwards: u32,
    /// Since when it has held nothing (no session, no forward), while on the idle list.
    pub(crate) idle_since: Option<Timestamp>,
    /// Its link in the engine's idle list (oldest idle first).
    pub(crate) idle_link: Link,
    /// It is the router itself (`NatConfig::router`).
    pub(crate) router: bool,
}

impl HostRecord {
    pub(crate) fn new(addr: Ipv4Addr) -> Self {
        Self {
            addr,
            flows: 0,
            ports: [0; 3],
            tiers: [0; TIERS],
            peak_ports: 0,
            refusals: 0,
            last_refusal: None,
            filtered: 0,
            first_filtered: None,
            recycled: 0,
            new_unanswered: MinuteRate::default(),
            new_flows: 0,
            new_source_ports: 0,
            last_source_port: [0; 4],
            signature_hits: 0,
            signature_idx: None,
            capped: [false; 3],
            new_ports: [Rate::default(); 3],
            evidence: Evidence::default(),
            dns_queries: MinuteRate::default(),
            dns_peak_per_minute: 0,
            named: None,
            quiet_since: None,
            forwards: 0,
            idle_since: None,
            idle_link: Link::default(),
            router: false,
        }
    }

    pub(crate) fn ports_held(&self) -> u32 {
        self.ports.iter().sum()
    }

    /// Live sessions never answered.
    pub(crate) fn unanswered(&self) -> u32 {
        self.tiers[Tier::Unanswered.ix()]
    }

    /// Records a new flow attempt (translated or not): source-port spread and signatures.
    pub(crate) fn note_new_flow(
        &mut self,
        now: Timestamp,
        proto: Protocol,
        src_port: u16,
        dst: Endpoint,
        catalogue: &Catalogue,
    ) {
        self.new_flows += 1;
        if proto == Protocol::Udp && dst.port == 53 {
            self.dns_queries.add(now);
            let last_minute = (self.dns_queries.per_sec(now) * 60.0).round() as u32;
            self.dns_peak_per_minute = self.dns_peak_per_minute.max(last_minute);
        }
        if !self.last_source_port.contains(&src_port) {
            self.new_source_ports += 1;
        }
        self.last_source_port.rotate_right(1);
        self.last_source_port[0] = src_port;
        if let Some(sig) = catalogue.matches(proto, dst) {
            let ix = catalogue
                .entries()
                .iter()
                .position(|e| std::ptr::eq(e, sig))
                .unwrap_or(0);
            self.signature_idx = Some((ix as u32, sig.changing_source_ports));
            self.signature_hits = self.signature_hits.saturating_add(1);
        }
    }

    /// Records a flow that got no answer: filtered, refused, or ended unanswered.
    pub(crate) fn note_unanswered(&mut self, now: Timestamp, proto: Protocol, dst: Endpoint) {
        self.new_unanswered.add(now);
        self.note_destination(now, proto, dst);
    }

    /// Records where a flow the host could not keep went (ended unanswered, filtered, or
    /// refused: a refused flow is evidence of what the host does, not of an unanswered one).
    pub(crate) fn note_destination(&mut self, now: Timestamp, proto: Protocol, dst: Endpoint) {
        self.evidence.note(now, proto, dst);
    }

    /// Unanswered flows per second over the last minute.
    pub(crate) fn unanswered_rate(&self, now: Timestamp) -> f64 {
        self.new_unanswered.per_sec(now)
    }

    pub(crate) fn spread(&self) -> f64 {
        if self.new_flows == 0 {
            0.0
        } else {
            self.new_source_ports as f64 / self.new_flows as f64
        }
    }

    /// The catalogue index of the signature the host's traffic matches: at least three
    /// new flows matched it, with new source ports when the pattern has them.
    pub(crate) fn signature(&self) -> Option<usize> {
        let (ix, changing) = self.signature_idx?;
        (self.signature_hits >= 3 && (!changing || self.spread() > 0.5)).then_some(ix as usize)
    }

    /// Rate of unanswered flows × (0.5 + spread of source ports) × (1 + known signature),
    /// plus twice the share of the budget held by live unanswered flows.
    pub(crate) fn score(&self, now: Timestamp, budget: u32) -> f64 {
        let rate = self.unanswered_rate(now);
        let live = f64::from(self.unanswered()) / f64::from(budget.max(1));
        let sig = if self.signature().is_some() { 1.0 } else { 0.0 };
        rate * (0.5 + self.spread()) * (1.0 + sig) + 2.0 * live
    }

    /// Whether this host stands out as burning the budget.
    pub(crate) fn is_culprit(&self, now: Timestamp, budget: u32) -> bool {
        let live = f64::from(self.unanswered()) / f64::from(budget.max(1));
        self.score(now, budget) >= 0.5 && (self.unanswered_rate(now) >= 0.1 || live >= 0.25)
    }

    pub(crate) fn to_stats(&self, now: Timestamp, budget: u32, catalogue: &Catalogue) -> HostStats {
        HostStats {
            addr: self.addr,
            flows: self.flows,
            ports_held: self.ports_held(),
            ports_by_proto: self.ports,
            unanswered: self.unanswered(),
            answered_once: self.tiers[Tier::AnsweredOnce.ix()],
            streams: self.tiers[Tier::Stream.ix()],
            closing: self.tiers[Tier::Closing.ix()],
            peak_ports: self.peak_ports,
            refusals: self.refusals,
            last_refusal: self.last_refusal,
            filtered: self.filtered,
            first_filtered: self.first_filtered,
            recycled: self.recycled,
            new_unanswered_per_s: self.unanswered_rate(now),
            source_port_spread: self.spread(),
            culprit_score: self.score(now, budget),
            signature: self
                .signature()
                .and_then(|i| catalogue.entries().get(i))
                .map(|s| s.name.clone()),
            router: self.router,
        }
    }

    /// The host's live flows as heavy legitimate use.
    pub(crate) fn heavy_use(&self) -> Pattern {
        Pattern::HeavyUse {
            answered_once: self.tiers[Tier::AnsweredOnce.ix()],
            streams: self.tiers[Tier::Stream.ix()],
            open_tcp: self.flows.saturating_sub(self.tiers.iter().sum()),
        }
    }

    /// What the host is doing, from its evidence; heavy legitimate use when it has no
    /// storm evidence.
    pub(crate) fn pattern(&self, now: Timestamp, live: &Evidence) -> Pattern {
        let evidence = if self.evidence.is_empty() {
            live
        } else {
            &self.evidence
        };
        evidence
            .classify(now, self.spread(), self.dns_peak_per_minute)
            .unwrap_or_else(|| self.heavy_use())
    }
}

/// Engine-internal per-destination record.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DestRecord {
    pub(crate) flows: u32,
    pub(crate) flows_total: u64,
    pub(crate) answered: u64,
    pub(crate) filtered: u64,
    hosts: [Option<Ipv4Addr>; 8],
    more_hosts: bool,
}

impl DestRecord {
    /// Remembers that `host` sent here (exact up to eight hosts).
    pub(crate) fn note_host(&mut self, host: Ipv4Addr) {
        if self.hosts.contains(&Some(host)) {
            return;
        }
        match self.hosts.iter_mut().find(|h| h.is_none()) {
            Some(slot) => *slot = Some(host),
            None => self.more_hosts = true,
        }
    }

    /// Distinct hosts seen (9 means "more than eight").
    pub(crate) fn host_count(&self) -> u32 {
        self.hosts.iter().filter(|h| h.is_some()).count() as u32 + u32::from(self.more_hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_rate_rolls_off() {
        let mut r = MinuteRate::default();
        for s in 0..60 {
            r.add(Timestamp::from_secs(s));
        }
        assert!((r.per_sec(Timestamp::from_secs(59)) - 1.0).abs() < 0.01);
        assert!(r.per_sec(Timestamp::from_secs(200)) < 1e-9);
    }

    #[test]
    fn signature_needs_hits_and_spread() {
        let cat = Catalogue::builtin();
        let mut h = HostRecord::new(Ipv4Addr::new(192, 168, 1, 23));
        let dst = Endpoint::new(Ipv4Addr::new(192, 168, 1, 211), 59870);
        for i in 0..5u16 {
            h.note_new_flow(Timestamp::from_secs(0), Protocol::Udp, 50000 + i, dst, &cat);
            h.note_unanswered(Timestamp::from_secs(u64::from(i) * 3), Protocol::Udp, dst);
        }
        let name = |h: &HostRecord| h.signature().map(|i| cat.entries()[i].name.clone());
        assert_eq!(name(&h).as_deref(), Some("logi-options-flow"));
        assert_eq!(
            h.pattern(Timestamp::from_secs(12), &Evidence::default())
                .to_string(),
            "udp to 192.168.1.211:59870 from new source ports, never answered"
        );
        let mut quiet = HostRecord::new(Ipv4Addr::new(192, 168, 1, 10));
        for i in 0..5u64 {
            quiet.note_new_flow(Timestamp::from_secs(0), Protocol::Udp, 5353, dst, &cat);
            quiet.note_unanswered(Timestamp::from_secs(i), Protocol::Udp, dst);
        }
        assert_eq!(name(&quiet), None, "one source port is not the pattern");
    }
}
