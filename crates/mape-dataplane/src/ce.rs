//! The CE pipeline (RFC 7597 §8): IPv4 from the LAN → checks → NAPT → MSS clamp →
//! IPv4-in-IPv6 toward the BR or a peer CE (§5.2 mesh), and IPv6 from the WAN → checks
//! (§8.1) → decapsulation → reverse NAPT → LAN, with the ICMP (§8.2, RFC 5508, RFC 2473
//! §8) and fragment (§8.3) paths. Steps are named after the RFC text they implement.

mod lan;
mod wan;

use core::net::Ipv6Addr;

use mape_nat::{Nat, Timestamp};
use mape_wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

pub use crate::config::CeConfig;
use crate::defrag::{Defrag, Reassembles};
use crate::drop::{DropCounters, DropReason};
use crate::encap::{Outer, IPV6_HEADER_LEN};
pub use crate::error::CeError;
use crate::icmp::{icmp_limit, IcmpLimit};
use crate::plan::{Plan, Runs};
use crate::pmtu::PmtuCache;
use crate::sink::{Counters, Sink, Verdict};

/// Headroom in front of the IPv4 packet in the scratch buffer: the outer IPv6 header.
const HEAD: usize = IPV6_HEADER_LEN;
/// Scratch size: headroom + the largest IPv4 datagram.
const BUF_LEN: usize = HEAD + 65535;
/// Largest quote of an embedded IPv4 packet in an ICMPv4 error (576 − 20 − 8).
const MAX_QUOTE: usize = 548;

/// A MAP-E CE dataplane: sans-IO, one per worker (or behind a lock).
///
/// Input buffers are borrowed (`&[u8]`); each forwarded packet is copied once into a
/// scratch buffer owned by the pipeline, at offset 40 so the outer IPv6 header is written
/// in front, rewritten in place with RFC 1624 incremental checksums, and handed to the
/// [`Sink`]. Nothing is allocated per packet (reassembly slots are pooled).
#[derive(Debug)]
pub struct Ce {
    cfg: CeConfig,
    outer: Outer,
    nat: Nat,
    drops: DropCounters,
    counters: Counters,
    buf: Box<[u8]>,
    aux: Box<[u8]>,
    defrag: Defrag,
    pmtu: PmtuCache,
    icmp_rl: IcmpLimit,
    /// The pending run of flow packets of a batch (reused: no allocation).
    runs: Runs,
}

/// The outer header's fixed fields for `cfg`.
fn outer(cfg: &CeConfig) -> Outer {
    Outer {
        src: cfg.ce_ipv6,
        hop_limit: cfg.hop_limit,
        flow: cfg.flow_label,
        frag_id: u32::from(cfg.ce_ipv6.octets()[15]).wrapping_mul(0x9e37_79b9),
    }
}

/// What [`Ce::reprovision`] did with the sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reprovisioned {
    /// Sessions before.
    pub saved: u32,
    /// The restore's report, or why none was restored.
    pub kept: Result<mape_nat::RestoreReport, mape_nat::PersistError>,
}

impl Reprovisioned {
    /// Sessions kept.
    pub fn kept(&self) -> u32 {
        self.kept.as_ref().map_or(0, |r| r.restored)
    }

    /// Sessions dropped.
    pub fn dropped(&self) -> u32 {
        self.saved.saturating_sub(self.kept())
    }
}

/// Packets of a batch checked before their NAT lookups are made together (the TUN read
/// batch).
const BATCH: usize = 64;
/// Sessions from which the batch lookups (their prefetch pass) pay: below, the table
/// (64-byte sessions plus about 10 bytes of index each, 4.5 MiB at 2^16) stays in the
/// cache and a prefetch pass costs more than it saves
/// (`cargo bench -p mape-dataplane --bench pipeline`); runs are then looked up one by one.
const PREFETCH_FROM_SESSIONS: u32 = 1 << 16;

/// RFC 1812 §5.2.2: header sanity and checksum of an IPv4 packet from the LAN.
#[inline]
fn lan_ip(input: &[u8]) -> Result<Ipv4Packet<&[u8]>, DropReason> {
    let ip = Ipv4Packet::new_checked(input).map_err(|_| DropReason::Ipv4Malformed)?;
    if !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    Ok(ip)
}

impl Ce {
    /// Validates `cfg` and builds the pipeline and its NAT engine.
    pub fn new(cfg: CeConfig) -> Result<Ce, CeError> {
        if cfg.ipv6_mtu < 1280 || cfg.ipv4_mtu < 68 {
            return Err(CeError::Mtu {
                ipv4_mtu: cfg.ipv4_mtu,
                ipv6_mtu: cfg.ipv6_mtu,
            });
        }
        let nat =
            Nat::new(cfg.nat.clone(), cfg.external_ipv4, cfg.port_set).map_err(CeError::Nat)?;
        Ok(Ce {
            outer: outer(&cfg),
            nat,
            drops: DropCounters::default(),
            counters: Counters::default(),
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            aux: vec![0u8; BUF_LEN].into_boxed_slice(),
            defrag: Defrag::new(cfg.reassembly, BUF_LEN),
            pmtu: PmtuCache::default(),
            icmp_rl: icmp_limit(cfg.icmp_rate_per_sec),
            runs: Runs::with_capacity(BATCH),
            cfg,
        })
    }

    /// Puts a new MAP configuration (address, port set, BR, rules) in force in place, at
    /// `now`: the sessions move to a new NAT engine through the same save and restore as
    /// a restart (`mape_nat::Nat::save`, `Nat::restore`, no downtime), so those whose
    /// external port is in the new port set are kept and the rest are dropped and counted
    /// in the report; with another external address none is kept
    /// ([`Reprovisioned::kept`] is then `Err(PersistError::OtherRule)`). The engine's
    /// drop and refusal counters carry over, and the dataplane's own; the path MTU cache
    /// (of the old BR) starts again. Refused with nothing changed when `cfg` is invalid.
    pub fn reprovision(&mut self, cfg: CeConfig, now: Timestamp) -> Result<Reprovisioned, CeError> {
        if cfg.ipv6_mtu < 1280 || cfg.ipv4_mtu < 68 {
            return Err(CeError::Mtu {
                ipv4_mtu: cfg.ipv4_mtu,
                ipv6_mtu: cfg.ipv6_mtu,
            });
        }
        let mut nat =
            Nat::new(cfg.nat.clone(), cfg.external_ipv4, cfg.port_set).map_err(CeError::Nat)?;
        let (saved, kept) = nat.take_over(&self.nat, now);
        self.nat = nat;
        self.outer = outer(&cfg);
        self.pmtu = PmtuCache::default();
        self.cfg = cfg;
        Ok(Reprovisioned { saved, kept })
    }

    /// The configuration.
    pub fn config(&self) -> &CeConfig {
        &self.cfg
    }

    /// The NAT engine (snapshots, sessions).
    pub fn nat(&self) -> &Nat {
        &self.nat
    }

    /// The NAT engine, mutable (reconfigure, expire).
    pub fn nat_mut(&mut self) -> &mut Nat {
        &mut self.nat
    }

    /// Drop counters by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Packet and byte counters per direction.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The NAT engine and the counters together (the kernel fast path's fold-back
    /// updates both: [`Nat::offload_seen`], [`Counters::add_fast_path`]).
    pub fn nat_and_counters_mut(&mut self) -> (&mut Nat, &mut Counters) {
        (&mut self.nat, &mut self.counters)
    }

    /// Datagrams waiting in reassembly.
    pub fn reassembly_in_progress(&self) -> usize {
        self.defrag.in_progress()
    }

    /// The current tunnel IPv4 MTU toward `dst6` (lowered by Packet Too Big).
    pub fn tunnel_mtu(&mut self, now: Timestamp, dst6: &Ipv6Addr) -> u16 {
        let mtu6 = self.pmtu.get(dst6, now).unwrap_or(self.cfg.ipv6_mtu);
        self.cfg.ipv4_mtu.min(mtu6.saturating_sub(40))
    }

    /// What the kernel fast path must hold its packets to (issue #13): the tunnel IPv4
    /// MTU toward the BR as [`Ce::tunnel_mtu`] has it (lowered by a learned Packet Too
    /// Big, RFC 8201), and the MSS a SYN-ACK toward the LAN is clamped to within it
    /// (RFC 4459 §3.2; 0: no clamp), as the slow path clamps the BR's flows.
    pub fn fast_path_limits(&mut self, now: Timestamp) -> (u16, u16) {
        let br = self.cfg.br_ipv6;
        let mtu4 = self.tunnel_mtu(now, &br);
        let mss = self
            .cfg
            .mss_clamp
            .map_or(0, |m| m.min(crate::mss::mss_for_mtu(mtu4)));
        (mtu4, mss)
    }

    /// Timer work: NAT session expiry and reassembly timeouts. Call once per batch or
    /// when [`Nat::next_deadline`] passes.
    pub fn expire(&mut self, now: Timestamp) {
        self.nat.expire(now);
        self.defrag.expire(now.millis(), &mut self.drops);
    }

    /// Processes one packet read from the TUN: IP version 4 = from the LAN, 6 = from the
    /// WAN (one TUN carries both). Output packets go to `out`; the verdict says what
    /// became of the input (drops are already counted).
    pub fn process<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
        self.count_rx(input);
        let v = match self.plan(now, input) {
            Plan::Out(f) => self.lan_flow(now, input, &f, out),
            Plan::In(f) => self.wan_flow(now, input, &f, out),
            Plan::Drop(r) => Verdict::Dropped(r),
            _ => self.full_path(now, input, out),
        };
        self.settle(v)
    }

    /// [`Ce::process`] over a batch; returns how many were forwarded. Each packet is
    /// checked once; runs of consecutive flow packets of one direction are looked up in
    /// the NAT together (`Nat::outbound_batch` / `inbound_batch`, once the table is large
    /// enough for their prefetch to pay), then finished in order; every other packet takes
    /// the full path in its place. Outputs, counters and NAT state are those of
    /// [`Ce::process`] one packet at a time.
    pub fn process_batch<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        inputs: &[&[u8]],
        out: &mut S,
    ) -> usize {
        let mut forwarded = 0;
        let mut runs = core::mem::take(&mut self.runs);
        for chunk in inputs.chunks(BATCH) {
            let together = chunk.len() > 1 && self.nat.session_count() >= PREFETCH_FROM_SESSIONS;
            for (i, input) in chunk.iter().enumerate() {
                self.count_rx(input);
                match self.plan(now, input) {
                    Plan::Out(f) => {
                        if !runs.push_out(i, f) {
                            forwarded += self.finish_run(now, chunk, &mut runs, together, out);
                            runs.push_out(i, f);
                        }
                    }
                    Plan::In(f) => {
                        if !runs.push_in(i, f) {
                            forwarded += self.finish_run(now, chunk, &mut runs, together, out);
                            runs.push_in(i, f);
                        }
                    }
                    // No side effect but the count: the run need not finish first.
                    Plan::Drop(r) => {
                        self.settle(Verdict::Dropped(r));
                    }
                    _ => {
                        forwarded += self.finish_run(now, chunk, &mut runs, together, out);
                        let v = self.full_path(now, input, out);
                        forwarded += usize::from(self.settle(v) == Verdict::Forwarded);
                    }
                }
            }
            forwarded += self.finish_run(now, chunk, &mut runs, together, out);
        }
        self.runs = runs;
        forwarded
    }

    /// Looks up the pending run in the NAT and finishes its packets in order; returns how
    /// many were forwarded.
    fn finish_run<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        chunk: &[&[u8]],
        runs: &mut Runs,
        together: bool,
        out: &mut S,
    ) -> usize {
        if runs.is_empty() {
            return 0;
        }
        runs.look_up(&mut self.nat, now, together);
        let mut forwarded = 0;
        for (&(i, f), &v) in runs.out_flows.iter().zip(&runs.out_verdicts) {
            let pkt = chunk.get(i).and_then(|p| p.get(..f.len)).unwrap_or(&[]);
            let v = self.lan_finish(now, pkt, &f, v, out);
            forwarded += usize::from(self.settle(v) == Verdict::Forwarded);
        }
        for (&(i, f), &v) in runs.in_flows.iter().zip(&runs.in_verdicts) {
            let pkt = chunk.get(i).and_then(|p| p.get(f.at..f.at + f.len));
            let v = self.wan_finish(now, pkt.unwrap_or(&[]), &f, v, out);
            forwarded += usize::from(self.settle(v) == Verdict::Forwarded);
        }
        runs.clear();
        forwarded
    }

    #[inline]
    fn count_rx(&mut self, input: &[u8]) {
        match mape_wire::ip_version(input) {
            Some(4) => self.counters.rx_lan.add(input.len()),
            Some(6) => self.counters.rx_wan.add(input.len()),
            _ => {}
        }
    }

    /// Counts a drop under its reason.
    #[inline]
    fn settle(&mut self, v: Verdict) -> Verdict {
        if let Verdict::Dropped(r) = v {
            self.drops.add(r);
        }
        v
    }

    /// Checks a packet as far as that has no side effect: a plain flow packet (the NAT
    /// decides the rest), a drop, or [`Plan::Other`] for [`Ce::full_path`].
    #[inline(always)]
    fn plan(&mut self, now: Timestamp, input: &[u8]) -> Plan {
        match mape_wire::ip_version(input) {
            Some(4) => match lan_ip(input) {
                Err(r) => Plan::Drop(r),
                Ok(ip) if ip.is_fragment() => Plan::Other,
                Ok(ip) => self.lan_plan(now, &ip),
            },
            Some(6) => {
                let Ok(ip6) = Ipv6Packet::new_checked(input) else {
                    return Plan::Drop(DropReason::Ipv6Malformed);
                };
                // The fast path: no extension headers (RFC 2473 packets from the BR).
                if ip6.next_header() != IpProtocol::IPV4 {
                    return Plan::Other;
                }
                match self.decap(ip6.packet_bytes(), IPV6_HEADER_LEN) {
                    Err(r) => Plan::Drop(r),
                    Ok((_, ip)) if ip.is_fragment() => Plan::Other,
                    Ok((src6, ip)) => self.wan_plan(&src6, &ip, IPV6_HEADER_LEN),
                }
            }
            _ => Plan::Drop(DropReason::BadIpVersion),
        }
    }

    /// Every path of a packet, side effects included (fragments, ICMP, extension headers).
    fn full_path<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
        match mape_wire::ip_version(input) {
            Some(4) => self.lan_in(now, input, out),
            Some(6) => self.wan_in(now, input, out),
            _ => Verdict::Dropped(DropReason::BadIpVersion),
        }
    }
}

impl Reassembles for Ce {
    fn reassembly(&mut self) -> (&mut Defrag, &mut Counters, &mut DropCounters) {
        (&mut self.defrag, &mut self.counters, &mut self.drops)
    }
}
