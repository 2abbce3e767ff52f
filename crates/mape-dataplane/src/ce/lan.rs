//! The CE's LAN → tunnel path (RFC 7597 §8): IPv4 from the LAN, checks, NAPT, MSS clamp,
//! encapsulation toward the BR or a peer CE, and the ICMP errors sent back to the LAN.

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::{Endpoint, OutboundPacket, OutboundVerdict, RefuseNotice, TcpFlags, Timestamp};
use mape_rules::Ipv4Net;
use mape_wire::Ipv4Packet;

use crate::defrag;
use crate::drop::DropReason;
use crate::icmp::{self, send_icmp};
use crate::l4::{self, is_unicast, nat_remote, L4Kind, Side};
use crate::mss;
use crate::plan::{LanFlow, Plan};
use crate::route::longest_v4;
use crate::sink::{emit, Direction, Sink, Verdict};

use super::{lan_ip, Ce, HEAD};

impl Ce {
    pub(super) fn lan_in<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
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
    pub(super) fn lan_datagram<S: Sink + ?Sized>(
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
    pub(super) fn lan_source_ok(&self, src: Ipv4Addr) -> bool {
        self.cfg.lan_prefixes.is_empty() || self.cfg.lan_prefixes.iter().any(|n| n.contains(src))
    }

    /// Replaces the LAN prefixes (a reload); flows already translated keep going.
    pub fn set_lan_prefixes(&mut self, prefixes: Vec<Ipv4Net>) {
        self.cfg.lan_prefixes = prefixes;
    }

    /// The checks of a whole LAN datagram before the NAT, in RFC order.
    #[inline(always)]
    pub(super) fn lan_plan(&mut self, now: Timestamp, ip: &Ipv4Packet<&[u8]>) -> Plan {
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
    pub(super) fn lan_flow<S: Sink + ?Sized>(
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
    pub(super) fn lan_finish<S: Sink + ?Sized>(
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
    pub(super) fn lan_icmp_error<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        ip: &Ipv4Packet<&[u8]>,
        out: &mut S,
    ) -> Verdict {
        let e = match l4::checked_error_quote(ip) {
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
    pub(super) fn route(&mut self, now: Timestamp, dst: Ipv4Addr, dport: u16) -> (Ipv6Addr, u16) {
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
    pub(super) fn send_wan<S: Sink + ?Sized>(
        &mut self,
        len: usize,
        dst6: &Ipv6Addr,
        mtu4: u16,
        out: &mut S,
    ) {
        let mtu6 = usize::from(mtu4) + HEAD;
        let (buf, aux) = (&mut self.buf, &mut self.aux);
        self.outer
            .send(buf, aux, len, dst6, mtu6, &mut self.counters, out);
    }

    pub(super) fn icmp_to_lan<S: Sink + ?Sized>(
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
}
