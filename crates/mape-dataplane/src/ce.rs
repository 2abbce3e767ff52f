//! The CE pipeline (RFC 7597 §8): IPv4 from the LAN → checks → NAPT → MSS clamp →
//! IPv4-in-IPv6 toward the BR or a peer CE (§5.2 mesh), and IPv6 from the WAN → checks
//! (§8.1) → decapsulation → reverse NAPT → LAN, with the ICMP (§8.2, RFC 5508, RFC 2473
//! §8) and fragment (§8.3) paths. Steps are named after the RFC text they implement.

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::{
    Endpoint, InboundPacket, InboundVerdict, Nat, OutboundPacket, OutboundVerdict, RefuseNotice,
    TcpFlags, Timestamp,
};
use mape_rules::Ipv4Net;
use mape_wire::{icmpv6, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet};

pub use crate::config::CeConfig;
use crate::defrag::{self, Defrag, Reassembles};
use crate::drop::{DropCounters, DropReason};
use crate::encap::{Outer, IPV6_HEADER_LEN};
pub use crate::error::CeError;
use crate::icmp::{self, icmp_limit, send_icmp, IcmpLimit};
use crate::l4::{self, is_unicast, nat_remote, Embedded, L4Kind, Side};
use crate::mss;
use crate::plan::{LanFlow, Plan, Runs, WanFlow};
use crate::pmtu::PmtuCache;
use crate::route::{longest_v4, longest_v6};
use crate::sink::{emit, Counters, Direction, Sink, Verdict};

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

    // ------------------------------------------------------------------ LAN → tunnel

    fn lan_in<S: Sink + ?Sized>(&mut self, now: Timestamp, input: &[u8], out: &mut S) -> Verdict {
        let ip = match lan_ip(input) {
            Ok(ip) => ip,
            Err(r) => return Verdict::Dropped(r),
        };
        if ip.is_fragment() {
            // A spoofed source spends no reassembly slot (checked again on the datagram).
            if !self.lan_source_ok(ip.src_addr()) {
                return Verdict::Dropped(DropReason::SourceOutsideLan);
            }
            // §8.3: reassemble so the NAPT sees ports (RFC 4787 REQ-14: any order).
            return defrag::via_v4(self, now.millis(), &ip, |ce, whole| {
                ce.lan_datagram(now, whole, out)
            });
        }
        self.lan_datagram(now, ip.packet_bytes(), out)
    }

    /// A whole, checked IPv4 datagram from the LAN.
    fn lan_datagram<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        out: &mut S,
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(pkt);
        match self.lan_plan(now, &ip) {
            Plan::Out(f) => self.lan_flow(now, pkt, &f, out),
            Plan::Drop(r) => Verdict::Dropped(r),
            Plan::TtlExpired => {
                self.icmp_to_lan(now, true, icmp::TIME_EXCEEDED, 0, pkt, out);
                Verdict::Dropped(DropReason::TtlExpired)
            }
            Plan::IcmpError => self.lan_icmp_error(now, &ip, out),
            Plan::TooBig(mtu4) => {
                self.icmp_to_lan(now, true, icmp::FRAG_NEEDED, u32::from(mtu4), pkt, out);
                Verdict::Dropped(DropReason::FragNeeded)
            }
            // `lan_plan` never answers these for a whole LAN datagram.
            Plan::In(_) | Plan::Other => Verdict::Dropped(DropReason::Ipv4Malformed),
        }
    }

    /// Whether `src` may send from the LAN: inside a LAN prefix, or any source when no
    /// prefix is configured (`CeConfig::lan_prefixes`).
    #[inline(always)]
    fn lan_source_ok(&self, src: Ipv4Addr) -> bool {
        self.cfg.lan_prefixes.is_empty() || self.cfg.lan_prefixes.iter().any(|n| n.contains(src))
    }

    /// Replaces the LAN prefixes (a reload); flows already translated keep going.
    pub fn set_lan_prefixes(&mut self, prefixes: Vec<Ipv4Net>) {
        self.cfg.lan_prefixes = prefixes;
    }

    /// The checks of a whole LAN datagram before the NAT, in RFC order.
    #[inline(always)]
    fn lan_plan(&mut self, now: Timestamp, ip: &Ipv4Packet<&[u8]>) -> Plan {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        // RFC 1812 §5.3.7: never forward to or from non-unicast addresses.
        if !is_unicast(dst) {
            return Plan::Drop(DropReason::Ipv4BadDestination);
        }
        if !is_unicast(src) || src == self.cfg.external_ipv4 {
            return Plan::Drop(DropReason::Ipv4BadSource);
        }
        if !self.lan_source_ok(src) {
            return Plan::Drop(DropReason::SourceOutsideLan);
        }
        // RFC 1812 §5.3.1: the kernel's ip_forward already decremented the TTL on the way
        // from the LAN into the TUN (and answered TTL ≤ 1 with time exceeded from the LAN
        // address): that is this router's one decrement (see `ttl` in the crate docs). Only
        // a TTL of 0 (a packet the CE's own stack made so) is left to refuse here.
        if ip.ttl() == 0 {
            return Plan::TtlExpired;
        }
        let l4 = match l4::parse(ip) {
            Ok(l) => l,
            Err(r) => return Plan::Drop(r),
        };
        if l4.kind == L4Kind::IcmpError {
            return Plan::IcmpError;
        }
        let hairpin = dst == self.cfg.external_ipv4;
        let (dst6, mtu4) = if hairpin {
            (self.cfg.br_ipv6, u16::MAX)
        } else {
            self.route(now, dst, l4.dport)
        };
        let len = ip.packet_bytes().len();
        // RFC 4787 REQ-13, RFC 2473 §7.2: too big for the tunnel with DF set → tell the
        // sender the tunnel MTU; checked before NAT so no port is spent on it.
        if len > usize::from(mtu4) && ip.dont_frag() {
            return Plan::TooBig(mtu4);
        }
        let proto = l4.kind.protocol();
        Plan::Out(LanFlow {
            nat: OutboundPacket {
                proto,
                src: Endpoint::new(src, l4.sport),
                dst: nat_remote(Endpoint::new(dst, l4.dport), proto),
                flags: TcpFlags(l4.flags),
                seq: l4.seq,
                ack: l4.ack,
            },
            kind: l4.kind,
            syn: l4.is_syn(),
            dst6,
            mtu4,
            len,
        })
    }

    /// A LAN flow packet through the NAT, one at a time.
    #[inline(always)]
    fn lan_flow<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        f: &LanFlow,
        out: &mut S,
    ) -> Verdict {
        let v = self.nat.outbound(now, &f.nat);
        self.lan_finish(now, pkt.get(..f.len).unwrap_or(&[]), f, v, out)
    }

    /// A LAN flow packet `pkt` (the whole datagram) with its NAT verdict.
    #[inline(always)]
    fn lan_finish<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        f: &LanFlow,
        v: OutboundVerdict,
        out: &mut S,
    ) -> Verdict {
        let len = pkt.len();
        match v {
            OutboundVerdict::Translate { external } => {
                // §8: the packet leaves with the provisioned address and a port of the set.
                let b = &mut self.buf[HEAD..HEAD + len];
                b.copy_from_slice(pkt);
                let mut ip = Ipv4Packet::new_unchecked(b);
                l4::rewrite(&mut ip, f.kind, Side::Src, external);
                if f.syn {
                    if let Some(m) = self.cfg.mss_clamp {
                        mss::clamp(ip.payload_mut(), m.min(mss::mss_for_mtu(f.mtu4)));
                    }
                }
                self.send_wan(len, &f.dst6, f.mtu4, out);
                Verdict::Forwarded
            }
            OutboundVerdict::Hairpin {
                external_src,
                internal_dst,
            } => {
                // RFC 4787 REQ-9: back to the LAN, seen as coming from the mapping.
                let b = &mut self.buf[..len];
                b.copy_from_slice(pkt);
                let mut ip = Ipv4Packet::new_unchecked(b);
                l4::rewrite(&mut ip, f.kind, Side::Src, external_src);
                l4::rewrite(&mut ip, f.kind, Side::Dst, internal_dst);
                emit(&mut self.counters, out, Direction::Lan, &self.buf[..len]);
                Verdict::Forwarded
            }
            OutboundVerdict::Drop { reason, notice } => {
                if notice == Some(RefuseNotice::AdminProhibited) {
                    // RFC 5508 REQ-8: type 3 code 13 (the engine rate limits these).
                    self.icmp_to_lan(now, false, icmp::ADMIN_PROHIBITED, 0, pkt, out);
                }
                Verdict::Dropped(DropReason::Nat(reason))
            }
        }
    }

    /// RFC 5508 §4.2 (outbound): an ICMP error a LAN host (or the CE's own stack) sends
    /// about a packet it received: the embedded packet is remote → internal; both the
    /// outer source and the embedded destination become our external endpoint.
    fn lan_icmp_error<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        ip: &Ipv4Packet<&[u8]>,
        out: &mut S,
    ) -> Verdict {
        if !Icmpv4Packet::new_unchecked(ip.payload()).verify_checksum() {
            return Verdict::Dropped(DropReason::IcmpBadChecksum);
        }
        let e = match l4::error_quote(ip) {
            Ok(e) => e,
            Err(r) => return Verdict::Dropped(r),
        };
        let remote = nat_remote(e.src, e.proto);
        let Some(ext) = self.nat.outbound_icmp_error(e.proto, e.dst, remote) else {
            return Verdict::Dropped(DropReason::Nat(mape_nat::NatDrop::IcmpErrorNoSession));
        };
        let (dst6, mtu4) = self.route(now, e.src.addr, e.src.port);
        let pkt = ip.packet_bytes();
        let len = pkt.len();
        let b = &mut self.buf[HEAD..HEAD + len];
        b.copy_from_slice(pkt);
        let mut ip = Ipv4Packet::new_unchecked(b);
        l4::rewrite_addr(&mut ip, Side::Src, ext.addr);
        let mut icmp = l4::icmp_mut(&mut ip);
        l4::rewrite_embedded(icmp.data_mut(), e.proto, Side::Dst, ext);
        icmp.fill_checksum();
        self.send_wan(len, &dst6, mtu4, out);
        Verdict::Forwarded
    }

    /// Tunnel destination for an IPv4 destination (RFC 7597 §5.2/§8: FMR match → peer CE
    /// derived from address and port, else the BR) and the tunnel IPv4 MTU toward it.
    #[inline]
    fn route(&mut self, now: Timestamp, dst: Ipv4Addr, dport: u16) -> (Ipv6Addr, u16) {
        let mut dst6 = self.cfg.br_ipv6;
        if !self.cfg.fmrs.is_empty() {
            if let Some(r) = longest_v4(&self.cfg.fmrs, dst) {
                if let Ok(a) = r.ce_ipv6_for(dst, dport, self.cfg.iid_format) {
                    dst6 = a;
                }
            }
        }
        let mtu4 = self.tunnel_mtu(now, &dst6);
        (dst6, mtu4)
    }

    /// Encapsulates the IPv4 packet at `buf[40..40 + len]` toward `dst6` (RFC 2473, next
    /// header 4) and emits it within the tunnel MTU.
    #[inline]
    fn send_wan<S: Sink + ?Sized>(&mut self, len: usize, dst6: &Ipv6Addr, mtu4: u16, out: &mut S) {
        let mtu6 = usize::from(mtu4) + HEAD;
        let (buf, aux) = (&mut self.buf, &mut self.aux);
        self.outer
            .send(buf, aux, len, dst6, mtu6, &mut self.counters, out);
    }

    fn icmp_to_lan<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        limited: bool,
        kind: (u8, u8),
        rest: u32,
        offending: &[u8],
        out: &mut S,
    ) {
        send_icmp(
            &mut self.icmp_rl,
            &mut self.counters,
            &mut self.aux,
            out,
            now,
            limited,
            self.cfg.icmp_source_ipv4,
            kind,
            rest,
            offending,
        );
    }

    // ------------------------------------------------------------------ tunnel → LAN

    #[inline]
    fn is_br_source(&self, src: &Ipv6Addr) -> bool {
        *src == self.cfg.br_ipv6 || self.cfg.accepted_br_sources.contains(src)
    }

    fn wan_in<S: Sink + ?Sized>(&mut self, now: Timestamp, input: &[u8], out: &mut S) -> Verdict {
        let admit = |ce: &Ce, src: Ipv6Addr, dst: Ipv6Addr| {
            if dst != ce.cfg.ce_ipv6 {
                Err(DropReason::Ipv6NotForUs)
            } else if !ce.is_br_source(&src) && longest_v6(&ce.cfg.fmrs, src).is_none() {
                Err(DropReason::UnknownTunnelSource)
            } else {
                Ok(())
            }
        };
        defrag::ipv6_in(self, now.millis(), input, admit, |ce, p, nh, at| {
            ce.wan_packet(now, p, nh, at, out)
        })
    }

    /// An unfragmented IPv6 packet whose upper layer is `proto` at offset `off`.
    fn wan_packet<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        proto: u8,
        off: usize,
        out: &mut S,
    ) -> Verdict {
        match proto {
            IpProtocol::IPV4 => {}
            IpProtocol::ICMPV6 => {
                let msg = pkt.get(off..).filter(|m| !m.is_empty());
                return match msg.map(|m| Icmpv6Packet::new_unchecked(m).msg_type()) {
                    Some(t) if icmpv6::is_error_type(t) => self.wan_icmpv6(now, pkt, off, out),
                    _ => Verdict::Dropped(DropReason::Ipv6NotIpip),
                };
            }
            _ => return Verdict::Dropped(DropReason::Ipv6NotIpip),
        }
        let (src6, ip) = match self.decap(pkt, off) {
            Ok(d) => d,
            Err(r) => return Verdict::Dropped(r),
        };
        if ip.is_fragment() {
            if !self.is_br_source(&src6) && longest_v6(&self.cfg.fmrs, src6).is_none() {
                return Verdict::Dropped(DropReason::UnknownTunnelSource);
            }
            return defrag::via_v4(self, now.millis(), &ip, |ce, whole| {
                ce.wan_datagram(now, &src6, whole, out)
            });
        }
        self.wan_datagram(now, &src6, ip.packet_bytes(), out)
    }

    /// The IPv4 packet at `off` of the IPv6 packet `pkt` (checked), and the IPv6 source.
    #[inline]
    fn decap<'a>(
        &self,
        pkt: &'a [u8],
        off: usize,
    ) -> Result<(Ipv6Addr, Ipv4Packet<&'a [u8]>), DropReason> {
        let ip6 = Ipv6Packet::new_unchecked(pkt);
        // §8.1: the CE decapsulates packets for its MAP address only.
        if ip6.dst_addr() != self.cfg.ce_ipv6 {
            return Err(DropReason::Ipv6NotForUs);
        }
        let inner = pkt.get(off..).unwrap_or(&[]);
        let ip = Ipv4Packet::new_checked(inner).map_err(|_| DropReason::Ipv4Malformed)?;
        if !ip.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        Ok((ip6.src_addr(), ip))
    }

    /// A whole, checked IPv4 datagram decapsulated from `src6`.
    fn wan_datagram<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        src6: &Ipv6Addr,
        pkt: &[u8],
        out: &mut S,
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(pkt);
        match self.wan_plan(src6, &ip, 0) {
            Plan::In(f) => self.wan_flow(now, pkt, &f, out),
            Plan::Drop(r) => Verdict::Dropped(r),
            Plan::IcmpError => self.wan_icmp_error(&ip, out),
            // `wan_plan` never answers these for a decapsulated datagram.
            _ => Verdict::Dropped(DropReason::Ipv4Malformed),
        }
    }

    /// The checks of a whole datagram from the tunnel before the NAT (§8.1); `at` is its
    /// offset in the input, kept for the flow.
    #[inline(always)]
    fn wan_plan(&self, src6: &Ipv6Addr, ip: &Ipv4Packet<&[u8]>, at: usize) -> Plan {
        let (src4, dst4) = (ip.src_addr(), ip.dst_addr());
        // §8.1: "MUST by default drop decapsulated packets whose IPv4 destination is not
        // its own shared address".
        if dst4 != self.cfg.external_ipv4 {
            return Plan::Drop(DropReason::Nat(mape_nat::NatDrop::NotOurAddress));
        }
        let l4 = match l4::parse(ip) {
            Ok(l) => l,
            Err(r) => return Plan::Drop(r),
        };
        // §8.1 source validation (not done for the BR): the inner source address and port
        // must be the ones the FMR derives from the IPv6 source (§10: no spoofing between
        // CEs). ICMP errors: the peer's port is the embedded packet's destination port.
        if !self.is_br_source(src6) {
            let port = match l4::map_port(ip, &l4, Side::Src) {
                Ok(p) => p,
                Err(r) => return Plan::Drop(r),
            };
            match longest_v6(&self.cfg.fmrs, *src6) {
                None => return Plan::Drop(DropReason::UnknownTunnelSource),
                Some(r) if !r.source_is_valid(*src6, src4, port) => {
                    return Plan::Drop(DropReason::SpoofedSource)
                }
                Some(_) => {}
            }
        }
        // RFC 1812 §5.3.1: the kernel decrements when it forwards our output from the TUN
        // to the LAN, and answers an expiring TTL with time exceeded (which comes back
        // into the TUN and is translated outward like any error from the LAN). Only a TTL
        // of 0, which no router may have forwarded, is refused here.
        if ip.ttl() == 0 {
            return Plan::Drop(DropReason::TtlExpired);
        }
        if l4.kind == L4Kind::IcmpError {
            return Plan::IcmpError;
        }
        if !self.cfg.port_set.contains(l4.dport) {
            return Plan::Drop(DropReason::Nat(mape_nat::NatDrop::PortOutsideSet));
        }
        let proto = l4.kind.protocol();
        Plan::In(WanFlow {
            nat: InboundPacket {
                proto,
                src: nat_remote(Endpoint::new(src4, l4.sport), proto),
                dst: Endpoint::new(dst4, l4.dport),
                flags: TcpFlags(l4.flags),
                seq: l4.seq,
                ack: l4.ack,
            },
            kind: l4.kind,
            syn: l4.is_syn(),
            at,
            len: ip.packet_bytes().len(),
        })
    }

    /// A tunnel flow packet through the NAT, one at a time; `input` holds the datagram at
    /// the flow's offset.
    #[inline(always)]
    fn wan_flow<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        f: &WanFlow,
        out: &mut S,
    ) -> Verdict {
        let v = self.nat.inbound(now, &f.nat);
        let pkt = input.get(f.at..f.at + f.len).unwrap_or(&[]);
        self.wan_finish(now, pkt, f, v, out)
    }

    /// A tunnel flow packet `pkt` (the whole inner datagram) with its NAT verdict.
    #[inline(always)]
    fn wan_finish<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        f: &WanFlow,
        v: InboundVerdict,
        out: &mut S,
    ) -> Verdict {
        match v {
            InboundVerdict::Translate { internal } => {
                let len = pkt.len();
                let b = &mut self.buf[..len];
                b.copy_from_slice(pkt);
                let mut ip = Ipv4Packet::new_unchecked(b);
                l4::rewrite(&mut ip, f.kind, Side::Dst, internal);
                if f.syn {
                    if let Some(m) = self.cfg.mss_clamp {
                        // RFC 4459 §3.2, RFC 7597 §8.3: the LAN host's segments go back
                        // through the tunnel toward the remote, so its SYN-ACK (or its
                        // SYN, to a static forward or port mapping) is clamped to the
                        // tunnel MTU toward that remote, like outbound SYNs.
                        let remote = f.nat.src;
                        let (_, mtu4) = self.route(now, remote.addr, remote.port);
                        let mut ip = Ipv4Packet::new_unchecked(&mut self.buf[..len]);
                        mss::clamp(ip.payload_mut(), m.min(mss::mss_for_mtu(mtu4)));
                    }
                }
                emit(&mut self.counters, out, Direction::Lan, &self.buf[..len]);
                Verdict::Forwarded
            }
            InboundVerdict::Drop(r) => Verdict::Dropped(DropReason::Nat(r)),
        }
    }

    /// The internal endpoint of the session an ICMP error from the tunnel is about: its
    /// quote must be a packet we sent (source: our external address).
    fn icmp_error_session(&mut self, e: &Embedded) -> Result<Endpoint, DropReason> {
        if e.src.addr != self.cfg.external_ipv4 {
            return Err(DropReason::IcmpErrorNotOurs);
        }
        self.nat
            .inbound_icmp_error(e.proto, e.src, nat_remote(e.dst, e.proto))
            .ok_or(DropReason::Nat(mape_nat::NatDrop::IcmpErrorNoSession))
    }

    /// RFC 5508 §4.2 (inbound): an ICMPv4 error about a packet we sent. The embedded
    /// source (our external endpoint) becomes the internal endpoint, the outer
    /// destination the internal host; embedded IP and transport checksums are adjusted
    /// incrementally and the ICMP checksum recomputed.
    fn wan_icmp_error<S: Sink + ?Sized>(&mut self, ip: &Ipv4Packet<&[u8]>, out: &mut S) -> Verdict {
        if !Icmpv4Packet::new_unchecked(ip.payload()).verify_checksum() {
            return Verdict::Dropped(DropReason::IcmpBadChecksum);
        }
        let e = match l4::error_quote(ip) {
            Ok(e) => e,
            Err(r) => return Verdict::Dropped(r),
        };
        let internal = match self.icmp_error_session(&e) {
            Ok(i) => i,
            Err(r) => return Verdict::Dropped(r),
        };
        let pkt = ip.packet_bytes();
        let len = pkt.len();
        let b = &mut self.buf[..len];
        b.copy_from_slice(pkt);
        let mut ip = Ipv4Packet::new_unchecked(b);
        l4::rewrite_addr(&mut ip, Side::Dst, internal.addr);
        let mut icmp = l4::icmp_mut(&mut ip);
        l4::rewrite_embedded(icmp.data_mut(), e.proto, Side::Src, internal);
        icmp.fill_checksum();
        emit(&mut self.counters, out, Direction::Lan, &self.buf[..len]);
        Verdict::Forwarded
    }

    /// RFC 2473 §8 / RFC 7597 §8.2: an ICMPv6 error about one of our encapsulated packets
    /// (it quotes our IPv6 header and the IPv4 packet we sent) becomes an ICMPv4 error to
    /// the original LAN sender, its quote translated back to the internal endpoint.
    /// Packet Too Big lowers the tunnel MTU toward that peer (RFC 8201) and, for a DF
    /// packet, becomes "fragmentation needed" with MTU − 40 (RFC 1191); for DF clear the
    /// lower MTU makes later packets be fragmented and nobody is told.
    fn wan_icmpv6<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        off: usize,
        out: &mut S,
    ) -> Verdict {
        let te = match icmp::tunnel_error(pkt, off, &self.cfg.ce_ipv6) {
            Ok(te) => te,
            Err(r) => return Verdict::Dropped(r),
        };
        let (e, emb) = (te.embedded, te.quote);
        let internal = match self.icmp_error_session(&e) {
            Ok(i) => i,
            Err(r) => return Verdict::Dropped(r),
        };
        // The quote, translated back (RFC 5508 §4.2), in the scratch buffer.
        let n = emb.len().min(MAX_QUOTE);
        self.buf[..n].copy_from_slice(&emb[..n]);
        l4::rewrite_embedded(&mut self.buf[..n], e.proto, Side::Src, internal);
        let (kind, rest) = if te.msg_type == icmpv6::msg_type::PACKET_TOO_BIG {
            let mtu6 = te.mtu.clamp(1280, 65535) as u16;
            self.pmtu.learn(te.peer, mtu6, now);
            if !e.dont_frag {
                return Verdict::Absorbed;
            }
            let next_hop = self.cfg.ipv4_mtu.min(mtu6 - 40);
            (icmp::FRAG_NEEDED, u32::from(next_hop))
        } else {
            match icmp::tunnel_error_to_v4(te.msg_type, te.code) {
                Some(k) => (k, 0),
                None => return Verdict::Dropped(DropReason::IcmpUnsupported),
            }
        };
        let sent = send_icmp(
            &mut self.icmp_rl,
            &mut self.counters,
            &mut self.aux,
            out,
            now,
            true,
            self.cfg.icmp_source_ipv4,
            kind,
            rest,
            &self.buf[..n],
        );
        if sent {
            Verdict::Forwarded
        } else {
            Verdict::Absorbed
        }
    }
}

impl Reassembles for Ce {
    fn reassembly(&mut self) -> (&mut Defrag, &mut Counters, &mut DropCounters) {
        (&mut self.defrag, &mut self.counters, &mut self.drops)
    }
}
