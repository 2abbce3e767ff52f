//! ICMP the pipelines generate or translate: error builders (RFC 792, RFC 1812 §4.3.2),
//! the ICMPv6-about-the-tunnel → ICMPv4 mapping (RFC 2473 §8.1/§8.2, RFC 7597 §8.2) and their
//! rate limit (RFC 1812 §4.3.2.8, mape-nat's `TokenBucket`), and [`send_icmp`], which builds, limits,
//! counts and emits one error (shared by the CE and the BR).

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_nat::{Timestamp, TokenBucket};
use mape_wire::icmpv4::{self, msg_type, unreach};
use mape_wire::{icmpv6, ipv4, ipv6, Icmpv6Packet, IpProtocol, Ipv6Packet};

use crate::drop::DropReason;
use crate::l4::{self, Embedded};
use crate::sink::{emit, Counters, Direction, Sink};

/// The limit on generated ICMP errors (RFC 1812 §4.3.2.8): mape-nat's [`TokenBucket`]
/// (a rate of 0 lets nothing pass), or none when the configuration sets no rate.
pub(crate) type IcmpLimit = Option<TokenBucket>;

/// The limit for `rate_per_sec` (bursts of one second's worth; `None` = unlimited).
pub(crate) fn icmp_limit(rate_per_sec: Option<u32>) -> IcmpLimit {
    rate_per_sec.map(TokenBucket::per_second)
}

/// Builds a whole IPv4 packet with an ICMP error from `src` to the source of `offending`
/// (quoted as far as 576 bytes allow). Returns the length, or `None` if RFC 1812
/// §4.3.2.7 forbids an error about `offending` or the buffer is too small.
pub(crate) fn build_error(
    buf: &mut [u8],
    src: Ipv4Addr,
    msg: u8,
    code: u8,
    rest: u32,
    offending: &[u8],
) -> Option<usize> {
    if !icmpv4::may_send_error(offending) {
        return None;
    }
    let dst = ipv4::Packet::new_checked_header(offending).ok()?.src_addr();
    let ip = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::ICMP,
        payload_len: 0,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    let repr = icmpv4::Repr {
        msg_type: msg,
        code,
        rest,
        payload_len: 0,
    };
    icmpv4::emit_error_packet(buf, &ip, &repr, offending).ok()
}

/// Time exceeded in transit (RFC 1812 §5.3.1).
pub(crate) const TIME_EXCEEDED: (u8, u8) = (msg_type::TIME_EXCEEDED, 0);
/// Communication administratively prohibited (RFC 5508 REQ-8, RFC 1812 §5.2.7.1): the
/// NAT refused a flow.
pub(crate) const ADMIN_PROHIBITED: (u8, u8) =
    (msg_type::DEST_UNREACHABLE, unreach::ADMIN_PROHIBITED);
/// Fragmentation needed and DF set (RFC 1191 §4); rest = next-hop MTU.
pub(crate) const FRAG_NEEDED: (u8, u8) = (msg_type::DEST_UNREACHABLE, unreach::FRAG_NEEDED);
/// Network unreachable: the BR has no rule for the destination.
pub(crate) const NET_UNREACHABLE: (u8, u8) = (msg_type::DEST_UNREACHABLE, unreach::NET);

/// The ICMPv4 error a CE (the tunnel entry point) sends to the original IPv4 sender when
/// an ICMPv6 error about its encapsulated packet arrives (RFC 2473 §8.1–8.2, RFC 7597
/// §8.2 "relayed to the original source"). Packet Too Big is handled apart (it carries an
/// MTU). The tunnel is one IPv4 hop, so a failure inside it reads as "host unreachable"
/// (RFC 2473 §8.2), except an administrative prohibition, which keeps its meaning.
pub(crate) const fn tunnel_error_to_v4(v6_type: u8, v6_code: u8) -> Option<(u8, u8)> {
    match v6_type {
        icmpv6::msg_type::DEST_UNREACHABLE => Some(match v6_code {
            icmpv6::unreach::ADMIN_PROHIBITED | icmpv6::unreach::FAILED_POLICY => ADMIN_PROHIBITED,
            _ => (msg_type::DEST_UNREACHABLE, unreach::HOST),
        }),
        icmpv6::msg_type::TIME_EXCEEDED | icmpv6::msg_type::PARAM_PROBLEM => {
            Some((msg_type::DEST_UNREACHABLE, unreach::HOST))
        }
        _ => None,
    }
}

/// Builds an ICMPv4 error in `aux` and emits it toward `dir` (rate limited unless
/// `limited` is false). A free function so callers can lend disjoint fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_icmp<S: Sink + ?Sized>(
    rl: &mut IcmpLimit,
    counters: &mut Counters,
    aux: &mut [u8],
    out: &mut S,
    now: Timestamp,
    limited: bool,
    src: Ipv4Addr,
    (msg, code): (u8, u8),
    rest: u32,
    offending: &[u8],
) -> bool {
    if !mape_wire::icmpv4::may_send_error(offending) {
        return false;
    }
    if limited && !rl.as_mut().is_none_or(|b| b.try_take(now)) {
        counters.icmp_rate_limited += 1;
        return false;
    }
    match build_error(aux, src, msg, code, rest, offending) {
        Some(n) => {
            counters.icmp_generated += 1;
            emit(counters, out, Direction::Lan, &aux[..n]);
            true
        }
        None => false,
    }
}

/// An ICMPv6 error about one of our encapsulated packets (RFC 2473 §8): it quotes our
/// IPv6 header and the IPv4 packet we sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TunnelError<'a> {
    pub(crate) msg_type: u8,
    pub(crate) code: u8,
    /// The MTU of a Packet Too Big (RFC 8201).
    pub(crate) mtu: u32,
    /// The outer destination of the quoted packet: the tunnel peer.
    pub(crate) peer: Ipv6Addr,
    /// The quoted IPv4 packet, as far as present, and what it says.
    pub(crate) quote: &'a [u8],
    pub(crate) embedded: Embedded,
}

/// Parses the ICMPv6 error at offset `off` of the IPv6 packet `pkt`, which must be for
/// `ce` and quote a packet `ce` encapsulated (next header 4, after any extension headers).
pub(crate) fn tunnel_error<'a>(
    pkt: &'a [u8],
    off: usize,
    ce: &Ipv6Addr,
) -> Result<TunnelError<'a>, DropReason> {
    let ip6 = Ipv6Packet::new_unchecked(pkt);
    let (src6, dst6) = (ip6.src_addr(), ip6.dst_addr());
    if dst6 != *ce {
        return Err(DropReason::Ipv6NotForUs);
    }
    let msg = Icmpv6Packet::new_unchecked(pkt.get(off..).unwrap_or(&[]));
    if msg.check_len().is_err() || msg.data().len() < ipv6::HEADER_LEN {
        return Err(DropReason::IcmpErrorMalformed);
    }
    if !msg.verify_checksum(&src6, &dst6) {
        return Err(DropReason::IcmpBadChecksum);
    }
    let (msg_type, code, mtu) = (msg.msg_type(), msg.msg_code(), msg.mtu());
    let emb6 = Ipv6Packet::new_checked_header(msg.into_data())
        .map_err(|_| DropReason::IcmpErrorMalformed)?;
    if emb6.src_addr() != *ce {
        return Err(DropReason::IcmpErrorNotOurs);
    }
    let ext = ipv6::walk(emb6.next_header(), emb6.payload())
        .map_err(|_| DropReason::IcmpErrorMalformed)?;
    if ext.protocol != IpProtocol::IPV4 || !ext.has_upper_header() {
        return Err(DropReason::IcmpErrorNotOurs);
    }
    let peer = emb6.dst_addr();
    let quote = emb6.into_payload().get(ext.offset..).unwrap_or(&[]);
    Ok(TunnelError {
        msg_type,
        code,
        mtu,
        peer,
        quote,
        embedded: l4::embedded(quote)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_limit_refills_and_none_is_unlimited() {
        let allow = |l: &mut IcmpLimit, ms| {
            l.as_mut()
                .is_none_or(|b| b.try_take(Timestamp::from_millis(ms)))
        };
        let mut r = icmp_limit(Some(2));
        assert!(allow(&mut r, 0));
        assert!(allow(&mut r, 0));
        assert!(!allow(&mut r, 0));
        assert!(!allow(&mut r, 400));
        assert!(allow(&mut r, 500));
        let mut none = icmp_limit(None);
        assert!((0..1000).all(|_| allow(&mut none, 0)));
        let mut zero = icmp_limit(Some(0));
        assert!(!allow(&mut zero, 0) && !allow(&mut zero, 60_000));
    }

    #[test]
    fn mapping() {
        assert_eq!(tunnel_error_to_v4(1, 0), Some((3, 1)));
        assert_eq!(tunnel_error_to_v4(1, 1), Some((3, 13)));
        assert_eq!(tunnel_error_to_v4(3, 0), Some((3, 1)));
        assert_eq!(tunnel_error_to_v4(2, 0), None);
    }
}
