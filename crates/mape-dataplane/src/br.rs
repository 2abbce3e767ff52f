//! The stateless BR pipeline (RFC 7597 §5.3, §8, §8.1, §8.3), for labs and tests: IPv4
//! from the internet → rule by longest IPv4 match → PSID from the destination port →
//! encapsulation to the CE; IPv6 from CEs → §8.1 source validation → decapsulation →
//! internet, or straight back into the domain (hairpin between CEs).

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::Timestamp;
use mape_rules::{IidFormat, MapDomain, Rule};
use mape_wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::defrag::{self, Defrag, Reassembles};
use crate::drop::{DropCounters, DropReason};
use crate::encap::{FlowLabel, Outer, IPV6_HEADER_LEN};
use crate::error::CeError;
use crate::frag::ReassemblyConfig;
use crate::icmp::{self, icmp_limit, send_icmp, IcmpLimit};
use crate::l4::{self, is_unicast, Side};
use crate::route::{longest_v4, longest_v6};
use crate::sink::{emit, Counters, Direction, Sink, Verdict};

const HEAD: usize = IPV6_HEADER_LEN;
const BUF_LEN: usize = HEAD + 65535;

/// A BR's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrConfig {
    /// The BR address: outer source toward CEs (§7: also when anycast) and accepted
    /// outer destination.
    pub br_ipv6: Ipv6Addr,
    /// Further accepted outer destinations (other BR addresses of the domain).
    pub extra_br_addresses: Vec<Ipv6Addr>,
    /// All rules of the domain (BMRs and FMRs): the BR serves every CE.
    pub rules: Vec<Rule>,
    /// CE IID layout (RFC 7597 §6 or draft-03).
    pub iid_format: IidFormat,
    /// IPv6 MTU toward CEs (default 1500): larger packets are fragmented in IPv6 (DF clear)
    /// or answered with "fragmentation needed", MTU − 40 (DF set).
    pub ipv6_mtu: u16,
    /// Outer hop limit (default 64).
    pub hop_limit: u8,
    /// Outer flow label.
    pub flow_label: FlowLabel,
    /// Source of the ICMP errors the BR sends to the internet.
    pub icmp_source_ipv4: Ipv4Addr,
    /// ICMP errors per second (default 100; `None` = unlimited, `Some(0)` = none).
    pub icmp_rate_per_sec: Option<u32>,
    /// Reassembly limits.
    pub reassembly: ReassemblyConfig,
}

impl BrConfig {
    /// A BR for `domain`: its first BR address, every rule, its IID format.
    pub fn from_domain(domain: &MapDomain, icmp_source_ipv4: Ipv4Addr) -> Result<Self, CeError> {
        let br_ipv6 = *domain.br().first().ok_or(CeError::NoBr)?;
        Ok(Self {
            br_ipv6,
            extra_br_addresses: domain.br().iter().skip(1).copied().collect(),
            rules: domain.rules().to_vec(),
            iid_format: domain.iid_format(),
            ipv6_mtu: 1500,
            hop_limit: 64,
            flow_label: FlowLabel::Zero,
            icmp_source_ipv4,
            icmp_rate_per_sec: Some(100),
            reassembly: ReassemblyConfig::default(),
        })
    }
}

/// A stateless MAP-E BR dataplane. Same buffer discipline as [`crate::Ce`].
#[derive(Debug)]
pub struct Br {
    cfg: BrConfig,
    outer: Outer,
    drops: DropCounters,
    counters: Counters,
    buf: Box<[u8]>,
    aux: Box<[u8]>,
    defrag: Defrag,
    icmp_rl: IcmpLimit,
}

impl Br {
    /// Validates `cfg` (IPv6 MTU ≥ 1280) and builds the pipeline.
    pub fn new(cfg: BrConfig) -> Result<Br, CeError> {
        if cfg.ipv6_mtu < 1280 {
            return Err(CeError::Mtu {
                ipv4_mtu: cfg.ipv6_mtu.saturating_sub(40),
                ipv6_mtu: cfg.ipv6_mtu,
            });
        }
        Ok(Br {
            outer: Outer {
                src: cfg.br_ipv6,
                hop_limit: cfg.hop_limit,
                flow: cfg.flow_label,
                frag_id: 0x4d41_5045,
            },
            drops: DropCounters::default(),
            counters: Counters::default(),
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            aux: vec![0u8; BUF_LEN].into_boxed_slice(),
            defrag: Defrag::new(cfg.reassembly, BUF_LEN),
            icmp_rl: icmp_limit(cfg.icmp_rate_per_sec),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BrConfig {
        &self.cfg
    }

    /// Drop counters by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Packet and byte counters ([`Direction::INTERNET`] = `Lan`, domain = `Wan`).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters, to add the kernel fast path's traffic to ([`Counters::add_fast_path`]).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Reassembly timeouts.
    pub fn expire(&mut self, now: Timestamp) {
        self.defrag.expire(now.millis(), &mut self.drops);
    }

    /// Processes one packet: IPv4 = from the internet, IPv6 = from the MAP domain.
    pub fn process<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
        let v = match mape_wire::ip_version(input) {
            Some(4) => {
                self.counters.rx_lan.add(input.len());
                self.internet_in(now, input, out)
            }
            Some(6) => {
                self.counters.rx_wan.add(input.len());
                self.domain_in(now, input, out)
            }
            _ => Verdict::Dropped(DropReason::BadIpVersion),
        };
        if let Verdict::Dropped(r) = v {
            self.drops.add(r);
        }
        v
    }

    /// [`Br::process`] over a batch; returns how many were forwarded.
    pub fn process_batch<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        inputs: &[&[u8]],
        out: &mut S,
    ) -> usize {
        inputs
            .iter()
            .filter(|p| self.process(now, p, out) == Verdict::Forwarded)
            .count()
    }

    fn is_ours(&self, dst: &Ipv6Addr) -> bool {
        *dst == self.cfg.br_ipv6 || self.cfg.extra_br_addresses.contains(dst)
    }

    // ------------------------------------------------------------- internet → domain

    fn internet_in<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
        let Ok(ip) = Ipv4Packet::new_checked(input) else {
            return Verdict::Dropped(DropReason::Ipv4Malformed);
        };
        if !ip.verify_checksum() {
            return Verdict::Dropped(DropReason::Ipv4BadChecksum);
        }
        if ip.is_fragment() {
            // §8.3.2: only the first fragment has ports: reassemble before forwarding.
            return defrag::via_v4(self, now.millis(), &ip, |br, whole| {
                br.internet_datagram(now, whole, out)
            });
        }
        self.internet_datagram(now, ip.packet_bytes(), out)
    }

    fn internet_datagram<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        out: &mut S,
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(pkt);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if !is_unicast(dst) {
            return Verdict::Dropped(DropReason::Ipv4BadDestination);
        }
        if !is_unicast(src) {
            return Verdict::Dropped(DropReason::Ipv4BadSource);
        }
        // RFC 1812 §5.3.1: the kernel's ip_forward decremented the TTL on the way from
        // the internet into the TUN (and answered TTL ≤ 1 itself): that is the BR's one
        // decrement. Only a TTL of 0 (made so by this host's own stack) is refused here.
        if ip.ttl() == 0 {
            self.icmp(now, icmp::TIME_EXCEEDED, 0, pkt, out);
            return Verdict::Dropped(DropReason::TtlExpired);
        }
        self.encap_to_ce(now, pkt, false, out)
    }

    /// Encapsulates a whole IPv4 datagram toward the CE that owns its destination address
    /// and port (RFC 7597 §5.3: EA = IPv4 suffix ‖ PSID(port); ICMP queries: identifier;
    /// ICMP errors: the embedded packet's source port, §8.2). The TTL is decremented here
    /// only when `decrement` (a hairpin: no kernel forwarding of IPv4 on that path).
    fn encap_to_ce<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        decrement: bool,
        out: &mut S,
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(pkt);
        let dst = ip.dst_addr();
        let Some(rule) = longest_v4(&self.cfg.rules, dst) else {
            self.icmp(now, icmp::NET_UNREACHABLE, 0, pkt, out);
            return Verdict::Dropped(DropReason::NoRule);
        };
        let l4 = match l4::parse(&ip) {
            Ok(l) => l,
            Err(r) => return Verdict::Dropped(r),
        };
        let port = match l4::map_port(&ip, &l4, Side::Dst) {
            Ok(p) => p,
            Err(r) => return Verdict::Dropped(r),
        };
        let Ok(ce6) = rule.ce_ipv6_for(dst, port, self.cfg.iid_format) else {
            return Verdict::Dropped(DropReason::NoCe);
        };
        let len = pkt.len();
        let mtu4 = usize::from(self.cfg.ipv6_mtu) - HEAD;
        if len > mtu4 && ip.dont_frag() {
            self.icmp(now, icmp::FRAG_NEEDED, mtu4 as u32, pkt, out);
            return Verdict::Dropped(DropReason::FragNeeded);
        }
        let inner = &mut self.buf[HEAD..HEAD + len];
        inner.copy_from_slice(pkt);
        if decrement {
            Ipv4Packet::new_unchecked(inner).decrement_ttl();
        }
        let mtu6 = usize::from(self.cfg.ipv6_mtu);
        let (buf, aux) = (&mut self.buf, &mut self.aux);
        self.outer
            .send(buf, aux, len, &ce6, mtu6, &mut self.counters, out);
        Verdict::Forwarded
    }

    fn icmp<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
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
            true,
            self.cfg.icmp_source_ipv4,
            kind,
            rest,
            offending,
        );
    }

    // ------------------------------------------------------------- domain → internet

    fn domain_in<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        input: &[u8],
        out: &mut S,
    ) -> Verdict {
        let admit = |br: &Br, src: Ipv6Addr, dst: Ipv6Addr| {
            if !br.is_ours(&dst) {
                Err(DropReason::Ipv6NotForUs)
            } else if longest_v6(&br.cfg.rules, src).is_none() {
                Err(DropReason::UnknownTunnelSource)
            } else {
                Ok(())
            }
        };
        defrag::ipv6_in(self, now.millis(), input, admit, |br, p, nh, at| {
            br.domain_packet(now, p, nh, at, out)
        })
    }

    fn domain_packet<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        pkt: &[u8],
        proto: u8,
        off: usize,
        out: &mut S,
    ) -> Verdict {
        // §8.3.1: an anycast BR does not do PMTUD; ICMPv6 and other payloads are dropped.
        if proto != IpProtocol::IPV4 {
            return Verdict::Dropped(DropReason::Ipv6NotIpip);
        }
        let ip6 = Ipv6Packet::new_unchecked(pkt);
        if !self.is_ours(&ip6.dst_addr()) {
            return Verdict::Dropped(DropReason::Ipv6NotForUs);
        }
        let src6 = ip6.src_addr();
        let inner = pkt.get(off..).unwrap_or(&[]);
        let Ok(ip) = Ipv4Packet::new_checked(inner) else {
            return Verdict::Dropped(DropReason::Ipv4Malformed);
        };
        if !ip.verify_checksum() {
            return Verdict::Dropped(DropReason::Ipv4BadChecksum);
        }
        if ip.is_fragment() {
            if longest_v6(&self.cfg.rules, src6).is_none() {
                return Verdict::Dropped(DropReason::UnknownTunnelSource);
            }
            return defrag::via_v4(self, now.millis(), &ip, |br, whole| {
                br.domain_datagram(now, &src6, whole, out)
            });
        }
        self.domain_datagram(now, &src6, ip.packet_bytes(), out)
    }

    /// §8.1: decapsulate only if the IPv6 source is the CE address the inner source
    /// address and port map to; then forward to the internet, or back into the domain
    /// when the destination is covered by a rule (hairpin between CEs).
    fn domain_datagram<S: Sink + ?Sized>(
        &mut self,
        now: Timestamp,
        src6: &Ipv6Addr,
        pkt: &[u8],
        out: &mut S,
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(pkt);
        let (src4, dst4) = (ip.src_addr(), ip.dst_addr());
        let Some(rule) = longest_v6(&self.cfg.rules, *src6) else {
            return Verdict::Dropped(DropReason::UnknownTunnelSource);
        };
        let l4 = match l4::parse(&ip) {
            Ok(l) => l,
            Err(r) => return Verdict::Dropped(r),
        };
        let port = match l4::map_port(&ip, &l4, Side::Src) {
            Ok(p) => p,
            Err(r) => return Verdict::Dropped(r),
        };
        if !rule.source_is_valid(*src6, src4, port, self.cfg.iid_format) {
            return Verdict::Dropped(DropReason::SpoofedSource);
        }
        if !is_unicast(dst4) {
            return Verdict::Dropped(DropReason::Ipv4BadDestination);
        }
        if longest_v4(&self.cfg.rules, dst4).is_some() {
            // Hairpin inside the domain: re-encapsulate to the destination CE. IPv6 in,
            // IPv6 out: the kernel never forwards this IPv4 packet, so the BR's one
            // decrement (RFC 1812 §5.3.1) is ours. An expiring TTL is dropped, counted,
            // without time exceeded (a known limit: the error would have to be
            // encapsulated toward the source CE).
            if ip.ttl() <= 1 {
                return Verdict::Dropped(DropReason::TtlExpired);
            }
            return self.encap_to_ce(now, pkt, true, out);
        }
        // Toward the internet the kernel decrements when it forwards our output from the
        // TUN (RFC 1812 §5.3.1), and answers an expiring TTL with time exceeded from the BR
        // (back into the TUN, then encapsulated to the CE by the §8.2 embedded port). Only
        // a TTL of 0, which no router may have forwarded, is refused here.
        if ip.ttl() == 0 {
            return Verdict::Dropped(DropReason::TtlExpired);
        }
        let len = pkt.len();
        let b = &mut self.buf[..len];
        b.copy_from_slice(pkt);
        emit(
            &mut self.counters,
            out,
            Direction::INTERNET,
            &self.buf[..len],
        );
        Verdict::Forwarded
    }
}

impl Reassembles for Br {
    fn reassembly(&mut self) -> (&mut Defrag, &mut Counters, &mut DropCounters) {
        (&mut self.defrag, &mut self.counters, &mut self.drops)
    }
}
