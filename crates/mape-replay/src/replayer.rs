//! The sans-IO replay core: packets with timestamps in, N NAT engines (one per policy) run
//! side by side on the same packets, ports in use sampled at a fixed interval, a
//! [`Report`] out.
//!
//! A capture is taken on the LAN side: packets from the LAN carry private sources, and the
//! answers from the internet carry the *internal* LAN address as destination. So for each
//! outbound flow the replayer remembers, per policy, the external port the engine gave it;
//! an answer is fed to that engine as an inbound packet to that external endpoint, which
//! makes "answered" real (timers, filtering). An answer with no translation in a policy
//! (the flow was refused, filtered or never seen) is counted as a reply without mapping.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use foldhash::fast::RandomState;
use hashbrown::HashMap;
use mape_nat::{
    ConfigError, Endpoint, EventKind, InboundPacket, InboundVerdict, Nat, NatConfig, NatDrop,
    OutboundPacket, OutboundVerdict, Pattern, Protocol, TcpFlags, Timestamp, POLICY_NAMES,
};
use mape_rules::PortSet;

use crate::lan::{Direction, Lan};
use crate::packet::{decode, IcmpKind, Packet, SkipReason};
use crate::report::{PolicyReport, Replies, Report};
use crate::series::{Series, MAX_POLICIES};

/// At most this many LAN hosts are tracked one by one (the rest are counted together).
pub const MAX_HOSTS: usize = 65_536;
/// The default external address (TEST-NET-1) when no rule gives one.
pub const DEFAULT_EXTERNAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

const NONE: u32 = u32::MAX;
const FIN_OUT: u8 = 1;
const FIN_IN: u8 = 2;
const RST: u8 = 4;
const ANSWERED: u8 = 8;
const PURGE_EVERY_MS: u64 = 60_000;
/// A gap in the capture longer than this many sample intervals is jumped over.
const GAP_TICKS: u64 = 600;

/// Why a replay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No policy selected.
    #[error("no policy selected (known: {known})", known = POLICY_NAMES.join(", "))]
    NoPolicy,
    /// More than [`MAX_POLICIES`].
    #[error("at most {MAX_POLICIES} policies run side by side, {0} given")]
    TooManyPolicies(usize),
    /// A name that is no built-in policy.
    #[error("unknown policy '{0}' (known: {known})", known = POLICY_NAMES.join(", "))]
    UnknownPolicy(String),
    /// The engine refused its configuration.
    #[error("policy {policy}: {source}")]
    Config {
        /// Policy name.
        policy: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
}

/// Built-in policies by name (duplicates removed, order kept).
pub fn policies_by_name<S: AsRef<str>>(names: &[S]) -> Result<Vec<NatConfig>, ReplayError> {
    let mut out: Vec<NatConfig> = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        if n.is_empty() || out.iter().any(|c| c.name == n) {
            continue;
        }
        out.push(NatConfig::policy(n).ok_or_else(|| ReplayError::UnknownPolicy(n.to_owned()))?);
    }
    if out.is_empty() {
        return Err(ReplayError::NoPolicy);
    }
    Ok(out)
}

/// What a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The policies, side by side (at most [`MAX_POLICIES`]).
    pub policies: Vec<NatConfig>,
    /// The port set (the budget).
    pub ports: PortSet,
    /// The external IPv4 address.
    pub external: Ipv4Addr,
    /// The LAN.
    pub lan: Lan,
    /// Sampling interval of ports in use, in capture milliseconds.
    pub sample_ms: u64,
    /// Most points kept per policy; longer runs are downsampled (max per bucket).
    pub max_points: usize,
}

impl ReplayConfig {
    /// The three built-in policies over `ports`, external [`DEFAULT_EXTERNAL`], private
    /// sources as the LAN, one sample per second, at most 1200 points.
    pub fn new(ports: PortSet) -> Self {
        Self {
            policies: POLICY_NAMES
                .iter()
                .filter_map(|n| NatConfig::policy(n))
                .collect(),
            ports,
            external: DEFAULT_EXTERNAL,
            lan: Lan::Private,
            sample_ms: 1000,
            max_points: 1200,
        }
    }
}

/// Per-policy counters the replayer keeps beside the engine's own truth.
#[derive(Debug, Clone, Default)]
struct Counters {
    translated: u64,
    hairpin: u64,
    refused: u64,
    filtered: u64,
    out_drops: [u64; NatDrop::COUNT],
    in_drops: [u64; NatDrop::COUNT],
    replies_delivered: u64,
    replies_without_mapping: u64,
}

#[derive(Debug)]
struct Engine {
    nat: Nat,
    c: Counters,
    /// The last culprit the engine named (kept in case it is quiet at the end).
    last_named: Option<(Ipv4Addr, Pattern, Option<Endpoint>)>,
    /// When the engine first warned that the budget would run out within its horizon.
    forecast_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy)]
struct FlowEntry {
    ext: [u32; MAX_POLICIES],
    last_seen: u64,
    flags: u8,
    proto: Protocol,
}

#[derive(Debug, Clone, Copy, Default)]
struct HostRow {
    refused: [u64; MAX_POLICIES],
    filtered: [u64; MAX_POLICIES],
}

/// How long the replayer keeps a flow's translations after its last packet: the longest
/// timer any policy could still hold it under.
#[derive(Debug, Clone, Copy)]
struct Holds {
    udp_unanswered: u64,
    udp_answered: u64,
    tcp_opening: u64,
    tcp_established: u64,
    tcp_closed: u64,
    icmp: u64,
}

#[inline]
fn flow_key(proto: Protocol, internal: Endpoint, remote: Endpoint) -> u128 {
    (proto as u128) << 96
        | u128::from(u32::from(internal.addr)) << 64
        | u128::from(internal.port) << 48
        | u128::from(u32::from(remote.addr)) << 16
        | u128::from(remote.port)
}

/// Runs every policy over one stream of packets.
#[derive(Debug)]
pub struct Replayer {
    engines: Vec<Engine>,
    names: Vec<String>,
    lan: Lan,
    external: Ipv4Addr,
    ports: PortSet,
    flows: HashMap<u128, FlowEntry, RandomState>,
    hosts: HashMap<Ipv4Addr, HostRow, RandomState>,
    hosts_untracked: u64,
    skipped: [u64; SkipReason::COUNT],
    frames: u64,
    replayed: u64,
    origin: Option<u64>,
    now: u64,
    backwards: u64,
    tick_ms: u64,
    next_tick: u64,
    next_purge: u64,
    holds: Holds,
    series: Series,
    capture_error: Option<String>,
}

impl Replayer {
    /// Builds one engine per policy.
    pub fn new(cfg: ReplayConfig) -> Result<Self, ReplayError> {
        if cfg.policies.is_empty() {
            return Err(ReplayError::NoPolicy);
        }
        if cfg.policies.len() > MAX_POLICIES {
            return Err(ReplayError::TooManyPolicies(cfg.policies.len()));
        }
        let s = |x: u64| x.saturating_mul(1000).saturating_add(1000);
        let mut holds = Holds {
            udp_unanswered: 0,
            udp_answered: 0,
            tcp_opening: 0,
            tcp_established: 0,
            tcp_closed: 0,
            icmp: 0,
        };
        for p in &cfg.policies {
            let t = &p.timeouts;
            holds.udp_unanswered = holds.udp_unanswered.max(s(t.udp_unanswered));
            holds.udp_answered = holds.udp_answered.max(s(t
                .udp_answered
                .max(t.udp_dns_answered)
                .max(t.udp_unanswered)));
            holds.tcp_opening = holds.tcp_opening.max(s(t.tcp_transitory));
            holds.tcp_established = holds
                .tcp_established
                .max(s(t.tcp_established.max(t.tcp_transitory)));
            holds.tcp_closed = holds
                .tcp_closed
                .max(s(t.tcp_time_wait.max(t.tcp_transitory)));
            holds.icmp = holds.icmp.max(s(t.icmp));
        }
        let mut engines = Vec::with_capacity(cfg.policies.len());
        let mut names = Vec::with_capacity(cfg.policies.len());
        for p in cfg.policies {
            let name = p.name.clone();
            let nat =
                Nat::new(p, cfg.external, cfg.ports).map_err(|source| ReplayError::Config {
                    policy: name.clone(),
                    source,
                })?;
            names.push(name);
            engines.push(Engine {
                nat,
                c: Counters::default(),
                last_named: None,
                forecast_at: None,
            });
        }
        let tick_ms = cfg.sample_ms.max(1);
        Ok(Self {
            engines,
            names,
            lan: cfg.lan,
            external: cfg.external,
            ports: cfg.ports,
            flows: HashMap::with_hasher(RandomState::default()),
            hosts: HashMap::with_hasher(RandomState::default()),
            hosts_untracked: 0,
            skipped: [0; SkipReason::COUNT],
            frames: 0,
            replayed: 0,
            origin: None,
            now: 0,
            backwards: 0,
            tick_ms,
            next_tick: 0,
            next_purge: PURGE_EVERY_MS,
            holds,
            series: Series::new(cfg.max_points, tick_ms),
            capture_error: None,
        })
    }

    /// The policy names, in report order.
    pub fn policy_names(&self) -> &[String] {
        &self.names
    }

    /// Milliseconds of capture time replayed so far.
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Records why the input ended early (the report shows it).
    pub fn set_capture_error(&mut self, msg: impl Into<String>) {
        self.capture_error = Some(msg.into());
    }

    /// Feeds a captured frame of link type `link` taken at `ts_ns` (any epoch).
    pub fn feed_frame(&mut self, ts_ns: u64, link: u32, data: &[u8]) {
        self.frames += 1;
        let ts_ms = ts_ns / 1_000_000;
        match decode(link, data) {
            Ok(p) => self.handle(ts_ms, &p),
            Err(r) => {
                self.clock(ts_ms);
                self.skipped[r.index()] += 1;
            }
        }
    }

    /// Feeds an already decoded packet seen at `ts_ms` (any epoch).
    pub fn feed(&mut self, ts_ms: u64, p: &Packet) {
        self.frames += 1;
        self.handle(ts_ms, p);
    }

    /// Counts a frame skipped before decoding (e.g. a record the reader could not place).
    pub fn skip(&mut self, reason: SkipReason) {
        self.frames += 1;
        self.skipped[reason.index()] += 1;
    }

    fn handle(&mut self, ts_ms: u64, p: &Packet) {
        let now = self.clock(ts_ms);
        match self.lan.classify(p.src.addr, p.dst.addr) {
            Ok(Direction::Outbound) => {
                if p.proto == Protocol::Icmp && p.icmp != Some(IcmpKind::Request) {
                    self.skipped[SkipReason::IcmpNotEcho.index()] += 1;
                    return;
                }
                self.replayed += 1;
                self.outbound(now, p);
            }
            Ok(Direction::Inbound) => {
                if p.proto == Protocol::Icmp && p.icmp != Some(IcmpKind::Reply) {
                    self.skipped[SkipReason::IcmpNotEcho.index()] += 1;
                    return;
                }
                self.replayed += 1;
                self.inbound(now, p);
            }
            Err(r) => self.skipped[r.index()] += 1,
        }
    }

    /// Capture time → milliseconds since the first frame, never going backwards.
    fn clock(&mut self, ts_ms: u64) -> u64 {
        let origin = *self.origin.get_or_insert(ts_ms);
        let mut rel = ts_ms.saturating_sub(origin);
        if rel < self.now || ts_ms < origin {
            self.backwards += 1;
            rel = self.now;
        }
        self.now = rel;
        self.advance(rel);
        rel
    }

    /// Takes every sample due up to `now`.
    fn advance(&mut self, now: u64) {
        while self.next_tick <= now {
            let t = self.next_tick;
            self.sample(t);
            self.next_tick = t + self.tick_ms;
            let gap = self.tick_ms.saturating_mul(GAP_TICKS);
            if now.saturating_sub(self.next_tick) > gap {
                // A long silence: nothing but expiry happens; jump to its end.
                self.next_tick = now - now % self.tick_ms;
            }
        }
    }

    fn sample(&mut self, t: u64) {
        let mut used = [0u32; MAX_POLICIES];
        for (i, e) in self.engines.iter_mut().enumerate() {
            e.nat.expire(Timestamp::from_millis(t));
            used[i] = e.nat.budget_used();
            for ev in e.nat.drain_events() {
                match ev.kind {
                    EventKind::CulpritNamed {
                        host,
                        pattern,
                        top_destination,
                        ..
                    } => {
                        e.last_named = Some((host, pattern, top_destination));
                    }
                    EventKind::ExhaustionForecast { .. } => {
                        e.forecast_at.get_or_insert(ev.at);
                    }
                    _ => {}
                }
            }
        }
        self.series.add(t, used);
        if t >= self.next_purge {
            self.purge(t);
            self.next_purge = t + PURGE_EVERY_MS;
        }
    }

    /// Forgets flows no policy can still hold (bounded memory on long captures).
    fn purge(&mut self, now: u64) {
        let h = self.holds;
        self.flows.retain(|_, f| {
            let hold = match f.proto {
                Protocol::Udp if f.flags & ANSWERED != 0 => h.udp_answered,
                Protocol::Udp => h.udp_unanswered,
                Protocol::Icmp => h.icmp,
                Protocol::Tcp
                    if f.flags & RST != 0 || f.flags & (FIN_IN | FIN_OUT) == FIN_IN | FIN_OUT =>
                {
                    h.tcp_closed
                }
                Protocol::Tcp if f.flags & ANSWERED != 0 => h.tcp_established,
                Protocol::Tcp => h.tcp_opening,
            };
            f.last_seen.saturating_add(hold) > now
        });
    }

    fn tcp_bits(p: &Packet, fin: u8) -> u8 {
        if p.proto != Protocol::Tcp {
            return 0;
        }
        let mut b = 0;
        if p.flags.has(TcpFlags::FIN) {
            b |= fin;
        }
        if p.flags.has(TcpFlags::RST) {
            b |= RST;
        }
        b
    }

    fn outbound(&mut self, now: u64, p: &Packet) {
        let key = flow_key(p.proto, p.src, p.dst);
        let row = if self.hosts.len() < MAX_HOSTS || self.hosts.contains_key(&p.src.addr) {
            Some(self.hosts.entry(p.src.addr).or_default())
        } else {
            self.hosts_untracked += 1;
            None
        };
        let mut scratch = HostRow::default();
        let row = row.unwrap_or(&mut scratch);
        let pkt = OutboundPacket {
            proto: p.proto,
            src: p.src,
            dst: p.dst,
            flags: p.flags,
            seq: p.seq,
            ack: p.ack,
        };
        let entry = self.flows.get_mut(&key);
        let mut ext = entry.as_ref().map_or([NONE; MAX_POLICIES], |e| e.ext);
        let ts = Timestamp::from_millis(now);
        for (i, e) in self.engines.iter_mut().enumerate() {
            match e.nat.outbound(ts, &pkt) {
                OutboundVerdict::Translate { external } => {
                    ext[i] = u32::from(external.port);
                    e.c.translated += 1;
                }
                OutboundVerdict::Hairpin { .. } => {
                    e.c.hairpin += 1;
                }
                OutboundVerdict::Drop { reason, .. } => {
                    ext[i] = NONE;
                    e.c.out_drops[reason.index()] += 1;
                    if reason.is_refusal() {
                        e.c.refused += 1;
                        row.refused[i] += 1;
                    } else if reason == NatDrop::DestinationFiltered {
                        e.c.filtered += 1;
                        row.filtered[i] += 1;
                    }
                }
            }
        }
        let bits = Self::tcp_bits(p, FIN_OUT);
        match entry {
            Some(f) => {
                f.ext = ext;
                f.last_seen = now;
                f.flags |= bits;
            }
            None if ext.iter().any(|&x| x != NONE) => {
                self.flows.insert(
                    key,
                    FlowEntry {
                        ext,
                        last_seen: now,
                        flags: bits,
                        proto: p.proto,
                    },
                );
            }
            None => {}
        }
    }

    fn inbound(&mut self, now: u64, p: &Packet) {
        // The reply's destination is the internal endpoint, its source the remote one.
        let key = flow_key(p.proto, p.dst, p.src);
        let Some(f) = self.flows.get_mut(&key) else {
            for e in &mut self.engines {
                e.c.replies_without_mapping += 1;
            }
            return;
        };
        f.last_seen = now;
        f.flags |= ANSWERED | Self::tcp_bits(p, FIN_IN);
        let ts = Timestamp::from_millis(now);
        for (i, e) in self.engines.iter_mut().enumerate() {
            let port = f.ext[i];
            if port == NONE {
                e.c.replies_without_mapping += 1;
                continue;
            }
            let pkt = InboundPacket {
                proto: p.proto,
                src: p.src,
                dst: Endpoint::new(self.external, port as u16),
                flags: p.flags,
                seq: p.seq,
                ack: p.ack,
            };
            match e.nat.inbound(ts, &pkt) {
                InboundVerdict::Translate { .. } => e.c.replies_delivered += 1,
                InboundVerdict::Drop(r) => e.c.in_drops[r.index()] += 1,
            }
        }
    }

    /// Ends the replay and builds the report; `source` names the input.
    pub fn finish(mut self, source: impl Into<String>) -> Report {
        let end = self.now;
        self.advance(end);
        if self.next_tick != end + self.tick_ms {
            // One last sample at the very end (not on a tick).
            self.sample(end);
        }
        self.series.flush();
        let budget = self.ports.count();
        let ts = Timestamp::from_millis(end);
        let mut lan_hosts: Vec<Ipv4Addr> = self.hosts.keys().copied().collect();
        lan_hosts.sort_unstable();
        let mut policies = Vec::with_capacity(self.engines.len());
        for (i, e) in self.engines.iter().enumerate() {
            let snap = e.nat.snapshot(ts);
            let refused_by_host: BTreeMap<Ipv4Addr, u64> = lan_hosts
                .iter()
                .map(|h| (*h, self.hosts.get(h).map_or(0, |r| r.refused[i])))
                .collect();
            let filtered_by_host: BTreeMap<Ipv4Addr, u64> = lan_hosts
                .iter()
                .filter_map(|h| {
                    let n = self.hosts.get(h).map_or(0, |r| r.filtered[i]);
                    (n > 0).then_some((*h, n))
                })
                .collect();
            let (culprit, kind, pattern, signature, dst) = match (&snap.culprit, &e.last_named) {
                (Some(c), _) => {
                    let pat = match &c.description {
                        Some(d) => format!("{} ({d})", c.summary),
                        None => c.summary.clone(),
                    };
                    (
                        Some(c.host),
                        Some(c.pattern.clone()),
                        Some(pat),
                        c.signature.clone(),
                        c.top_destination,
                    )
                }
                (None, Some((h, pat, dst))) => (
                    Some(*h),
                    Some(pat.clone()),
                    Some(pat.to_string()),
                    None,
                    *dst,
                ),
                (None, None) => (None, None, None, None, None),
            };
            let culprit_rate = snap.culprit.as_ref().map(|c| c.rate_per_s);
            let suffered = refused_by_host
                .iter()
                .filter(|(h, n)| **n > 0 && Some(**h) != culprit)
                .map(|(h, _)| *h)
                .collect();
            let drops = NatDrop::ALL
                .iter()
                .filter_map(|r| {
                    let n = e.c.out_drops[r.index()] + e.c.in_drops[r.index()];
                    (n > 0).then_some((r.as_str(), n))
                })
                .collect();
            let peak = snap.peak;
            policies.push(PolicyReport {
                name: self.names.get(i).cloned().unwrap_or_default(),
                peak_ports: peak,
                peak_at_s: snap.peak_at.secs_f64(),
                peak_percent: percent(peak, budget),
                exhausted_at_s: snap.exhausted_at.map(|t| t.secs_f64()),
                forecast_warned_at_s: e.forecast_at.map(|t| t.secs_f64()),
                forecast_lead_s: match (e.forecast_at, snap.exhausted_at) {
                    (Some(w), Some(x)) if w <= x => Some(x.since(w) as f64 / 1000.0),
                    _ => None,
                },
                refused: e.c.refused,
                refused_by_host,
                filtered: e.c.filtered,
                filtered_by_host,
                suffered,
                culprit,
                culprit_destination: dst.map(|d| d.addr),
                culprit_pattern_kind: kind,
                culprit_pattern: pattern,
                culprit_signature: signature,
                culprit_rate_per_s: culprit_rate,
                translated: e.c.translated,
                hairpin: e.c.hairpin,
                replies: Replies {
                    delivered: e.c.replies_delivered,
                    dropped: e.c.in_drops.iter().sum(),
                    without_mapping: e.c.replies_without_mapping,
                },
                drops,
                ports_in_use_end: snap.in_use,
                sessions_end: snap.sessions,
                advice: String::new(),
            });
        }
        let skipped = SkipReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.skipped[r.index()]))
            .collect();
        let mut report = Report {
            source: source.into(),
            budget,
            port_set: describe_ports(&self.ports),
            external: self.external,
            duration_s: end as f64 / 1000.0,
            packets: self.frames,
            replayed: self.replayed,
            skipped,
            capture_error: self.capture_error,
            time_went_backwards: self.backwards,
            hosts_untracked: self.hosts_untracked,
            policies,
            advice: String::new(),
            series: self.series,
        };
        crate::report::write_advice(&mut report);
        report
    }
}

fn percent(n: u32, of: u32) -> f64 {
    if of == 0 {
        0.0
    } else {
        (f64::from(n) * 1000.0 / f64::from(of)).round() / 10.0
    }
}

/// "PSID 161/8 offset 4: 240 ports" or "all 65536 ports".
pub fn describe_ports(p: &PortSet) -> String {
    if p.psid_len() == 0 {
        format!("{} ports (a={}, k=0)", p.count(), p.offset())
    } else {
        format!(
            "PSID {} of {} bits, offset {}: {} ports",
            p.psid(),
            p.psid_len(),
            p.offset(),
            p.count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn v6plus() -> PortSet {
        PortSet::new(161, 8, 4).unwrap()
    }

    #[test]
    fn replies_reach_the_engine_through_the_remembered_translation() {
        let mut r = Replayer::new(ReplayConfig::new(v6plus())).unwrap();
        let q = Packet::udp(ep("192.168.1.10:40000"), ep("1.1.1.1:53"));
        r.feed(1_000, &q);
        r.feed(1_010, &q.reversed(0));
        // A reply for a flow never seen.
        r.feed(
            1_020,
            &Packet::udp(ep("8.8.8.8:53"), ep("192.168.1.10:40001")),
        );
        let rep = r.finish("test");
        for p in &rep.policies {
            assert_eq!(p.replies.delivered, 1, "{}", p.name);
            assert_eq!(p.replies.without_mapping, 1, "{}", p.name);
            assert_eq!(p.translated, 1);
            assert_eq!(p.refused_by_host.len(), 1);
        }
        assert_eq!(rep.packets, 3);
        assert_eq!(rep.replayed, 3);
    }

    #[test]
    fn private_destination_is_filtered_by_mape_only() {
        let mut r = Replayer::new(ReplayConfig::new(v6plus())).unwrap();
        for i in 0..50u16 {
            let p = Packet::udp(
                Endpoint::new("192.168.1.23".parse().unwrap(), 50000 + i),
                ep("192.168.1.211:59870"),
            );
            r.feed(u64::from(i) * 1000, &p);
        }
        let rep = r.finish("test");
        let mape = &rep.policies[0];
        assert_eq!(mape.name, "mape");
        assert_eq!(mape.filtered, 50);
        assert_eq!(mape.peak_ports, 0);
        let rtx = &rep.policies[2];
        assert_eq!(rtx.filtered, 0);
        assert_eq!(rtx.peak_ports, 50);
    }

    #[test]
    fn time_going_backwards_is_clamped_and_counted() {
        let mut r = Replayer::new(ReplayConfig::new(v6plus())).unwrap();
        let q = Packet::udp(ep("192.168.1.10:40000"), ep("1.1.1.1:53"));
        r.feed(10_000, &q);
        r.feed(5_000, &q);
        r.feed(u64::MAX / 2, &q);
        let rep = r.finish("test");
        assert_eq!(rep.time_went_backwards, 1);
        assert!(rep.series.points.len() <= 1200);
    }

    #[test]
    fn policy_selection() {
        assert!(matches!(
            policies_by_name::<&str>(&[]),
            Err(ReplayError::NoPolicy)
        ));
        assert!(matches!(
            policies_by_name(&["nope"]),
            Err(ReplayError::UnknownPolicy(_))
        ));
        assert_eq!(
            policies_by_name(&["mape", "mape", "rtx830-like"])
                .unwrap()
                .len(),
            2
        );
    }
}
