//! The CE's tunnel → LAN path (RFC 7597 §8.1): IPv6 from the WAN, source checks,
//! decapsulation, reverse NAPT, and the ICMP and ICMPv6 errors (RFC 5508, RFC 2473 §8).

use core::net::Ipv6Addr;

use mape_nat::{Endpoint, InboundPacket, InboundVerdict, TcpFlags, Timestamp};
use mape_wire::{icmpv6, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::defrag;
use crate::drop::DropReason;
use crate::icmp::{self, send_icmp};
use crate::l4::{self, nat_remote, Embedded, L4Kind, Side};
use crate::mss;
use crate::plan::{Plan, WanFlow};
use crate::route::longest_v6;
use crate::sink::{emit, Direction, Sink, Verdict};

use super::{Ce, MAX_QUOTE};

impl Ce {
    #[inline]
    pub(super) fn is_br_source(&self, src: &Ipv6Addr) -> bool {
        *src == self.cfg.br_ipv6 || self.cfg.accepted_br_sources.contains(src)
    }

    pub(super) fn wan_in<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
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
    pub(super) fn wan_packet<S: Sink + ?Sized>(
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
    pub(super) fn decap<'a>(
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
    pub(super) fn wan_datagram<S: Sink + ?Sized>(
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
    pub(super) fn wan_plan(&self, src6: &Ipv6Addr, ip: &Ipv4Packet<&[u8]>, at: usize) -> Plan {
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
                Some(r) if !r.source_is_valid(*src6, src4, port, self.cfg.iid_format) => {
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
    pub(super) fn wan_flow<S: Sink + ?Sized>(
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
    pub(super) fn wan_finish<S: Sink + ?Sized>(
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
    pub(super) fn icmp_error_session(&mut self, e: &Embedded) -> Result<Endpoint, DropReason> {
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
    pub(super) fn wan_icmp_error<S: Sink + ?Sized>(
        &mut self,
        ip: &Ipv4Packet<&[u8]>,
        out: &mut S,
    ) -> Verdict {
        let e = match l4::checked_error_quote(ip) {
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
    pub(super) fn wan_icmpv6<S: Sink + ?Sized>(
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
