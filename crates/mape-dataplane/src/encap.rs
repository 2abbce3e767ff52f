//! IPv4-in-IPv6 encapsulation (RFC 2473, RFC 7597 §5 and §8: next header 4): the outer
//! header, its flow label, and the emission (whole, or as IPv6 fragments) shared by the
//! CE and the BR.
//!
//! The outer header is written in front of the IPv4 packet in the same scratch buffer
//! (the packet is copied once to `scratch[40..]`, rewritten in place, then the 40-byte
//! header goes to `scratch[..40]`): one copy, no allocation.

use core::net::Ipv6Addr;

use mape_wire::{ipv4, IpProtocol, Ipv4Packet, Ipv6Repr};

use crate::frag::fragment_v6;
use crate::sink::{emit, Counters, Direction, Sink};

/// Length of the outer IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// How the outer flow label is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowLabel {
    /// Always zero.
    #[default]
    Zero,
    /// A hash of the inner addresses, protocol and ports (RFC 6437 §3, RFC 6438 for
    /// tunnels): ECMP on the path keeps a flow's packets together. Never zero.
    Hash,
}

/// Parameters of the outer header that do not change per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outer {
    pub(crate) src: Ipv6Addr,
    pub(crate) hop_limit: u8,
    pub(crate) flow: FlowLabel,
    /// Identification of the last fragmented packet (RFC 8200 §4.5), stepped per packet.
    pub(crate) frag_id: u32,
}

impl Outer {
    /// Writes the outer header into `hdr[..40]` for an IPv4 packet `inner` (already in
    /// place after it): traffic class copied from the IPv4 TOS (RFC 2473 §5.1 spirit:
    /// DSCP and ECN are carried), next header 4, hop limit, source, `dst`.
    #[inline]
    pub(crate) fn write(&self, hdr: &mut [u8], inner: &[u8], dst: &Ipv6Addr) {
        let ip = (inner.len() >= ipv4::HEADER_LEN).then(|| Ipv4Packet::new_unchecked(inner));
        let repr = Ipv6Repr {
            src_addr: self.src,
            dst_addr: *dst,
            next_header: IpProtocol::IPV4,
            // An IPv4 datagram is at most 65535 bytes: it always fits.
            payload_len: inner.len().min(usize::from(u16::MAX)),
            hop_limit: self.hop_limit,
            traffic_class: ip.as_ref().map_or(0, Ipv4Packet::tos),
            flow_label: match (self.flow, ip) {
                (FlowLabel::Zero, _) => 0,
                (FlowLabel::Hash, ip) => flow_hash(ip.as_ref()),
            },
        };
        // Cannot fail: 40 bytes of room, the payload length and the label fit their fields.
        let _ = repr.emit(hdr);
    }
}

impl Outer {
    /// Encapsulates the IPv4 packet at `buf[40..40 + len]` toward `dst` (the outer header
    /// goes to `buf[..40]`) and emits it toward the IPv6 side, fragmenting the IPv6 packet
    /// in `aux` when it exceeds `mtu6` (DF clear, RFC 2473 §7.2). Shared by the CE and
    /// the BR.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn send<S: Sink + ?Sized>(
        &mut self,
        buf: &mut [u8],
        aux: &mut [u8],
        len: usize,
        dst: &Ipv6Addr,
        mtu6: usize,
        counters: &mut Counters,
        out: &mut S,
    ) {
        let (hdr, inner) = buf.split_at_mut(IPV6_HEADER_LEN);
        self.write(hdr, &inner[..len], dst);
        let total = IPV6_HEADER_LEN + len;
        if total <= mtu6 {
            emit(counters, out, Direction::Wan, &buf[..total]);
            return;
        }
        self.frag_id = self.frag_id.wrapping_add(0x9e37_79b9);
        let n = fragment_v6(&buf[..total], mtu6, self.frag_id, aux, |f| {
            emit(counters, out, Direction::Wan, f)
        });
        counters.fragments_emitted += n as u64;
    }
}

/// 20-bit flow label from the inner addresses, protocol and (if present) first 4 bytes of
/// the transport header: a multiply-xorshift mix, never zero.
#[inline]
pub(crate) fn flow_hash(inner: Option<&Ipv4Packet<&[u8]>>) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    if let Some(ip) = inner {
        let ports = mape_wire::ports(ip.payload())
            .map(|(s, d)| u64::from((u32::from(s) << 16) | u32::from(d)))
            .unwrap_or(0);
        for w in [
            u64::from(u32::from(ip.src_addr())),
            u64::from(u32::from(ip.dst_addr())),
            u64::from(ip.protocol()),
            ports,
        ] {
            h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
        }
    }
    let l = (h as u32) & 0x000f_ffff;
    if l == 0 {
        1
    } else {
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let o = Outer {
            src: "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            hop_limit: 64,
            flow: FlowLabel::Zero,
            frag_id: 0,
        };
        let mut inner = [0u8; 28];
        inner[0] = 0x45;
        inner[1] = 0xb8;
        let mut h = [0u8; 40];
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        o.write(&mut h, &inner, &dst);
        assert_eq!(&h[..8], &[0x6b, 0x80, 0, 0, 0, 28, 4, 64]);
        assert_eq!(&h[24..40], &dst.octets());
        let ip = Ipv4Packet::new_unchecked(&inner[..]);
        let f = flow_hash(Some(&ip));
        assert!(f != 0 && f < (1 << 20));
    }
}
