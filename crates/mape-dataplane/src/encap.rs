//! IPv4-in-IPv6 encapsulation (RFC 2473, RFC 7597 §5 and §8: next header 4) and the
//! decapsulation-side parsing helpers.
//!
//! The outer header is written in front of the IPv4 packet in the same scratch buffer
//! (the packet is copied once to `scratch[40..]`, rewritten in place, then the 40-byte
//! header goes to `scratch[..40]`): one copy, no allocation.

use core::net::Ipv6Addr;

use mape_wire::IpProtocol;

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
    pub(crate) src: [u8; 16],
    pub(crate) hop_limit: u8,
    pub(crate) flow: FlowLabel,
}

impl Outer {
    /// Writes the outer header into `hdr[..40]` for an IPv4 packet `inner` (already in
    /// place after it): traffic class copied from the IPv4 TOS (RFC 2473 §5.1 spirit:
    /// DSCP and ECN are carried), next header 4, hop limit, source, `dst`.
    #[inline]
    pub(crate) fn write(&self, hdr: &mut [u8], inner: &[u8], dst: &Ipv6Addr) {
        let tos = inner.get(1).copied().unwrap_or(0);
        let flow = match self.flow {
            FlowLabel::Zero => 0,
            FlowLabel::Hash => flow_hash(inner),
        };
        let vtf = (6u32 << 28) | (u32::from(tos) << 20) | flow;
        hdr[0..4].copy_from_slice(&vtf.to_be_bytes());
        let plen = u16::try_from(inner.len()).unwrap_or(u16::MAX);
        hdr[4..6].copy_from_slice(&plen.to_be_bytes());
        hdr[6] = IpProtocol::IPV4;
        hdr[7] = self.hop_limit;
        hdr[8..24].copy_from_slice(&self.src);
        hdr[24..40].copy_from_slice(&dst.octets());
    }
}

/// 20-bit flow label from the inner addresses, protocol and (if present) first 4 bytes of
/// the transport header: a multiply-xorshift mix, never zero.
#[inline]
pub(crate) fn flow_hash(inner: &[u8]) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    if inner.len() >= 20 {
        let hl = usize::from(inner[0] & 0x0f) * 4;
        let a = u64::from(u32::from_be_bytes([
            inner[12], inner[13], inner[14], inner[15],
        ]));
        let b = u64::from(u32::from_be_bytes([
            inner[16], inner[17], inner[18], inner[19],
        ]));
        let ports = inner
            .get(hl..hl + 4)
            .map(|p| u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
            .unwrap_or(0);
        for w in [a, b, u64::from(inner[9]), ports] {
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

/// The index of the byte that holds next header 44 (fragment) in front of the fragment
/// header at `frag_at`: byte 6 of the IPv6 header, or the next-header byte of the last
/// extension header before it. `None` if the chain is inconsistent.
pub(crate) fn frag_nh_index(pkt: &[u8], frag_at: usize) -> Option<usize> {
    let mut pos = 6;
    let mut off = IPV6_HEADER_LEN;
    while off < frag_at {
        pos = off;
        let len = (usize::from(*pkt.get(off + 1)?) + 1) * 8;
        off += len;
    }
    (off == frag_at && *pkt.get(pos)? == IpProtocol::IPV6_FRAG).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let o = Outer {
            src: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            hop_limit: 64,
            flow: FlowLabel::Zero,
        };
        let mut inner = [0u8; 28];
        inner[0] = 0x45;
        inner[1] = 0xb8;
        let mut h = [0u8; 40];
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        o.write(&mut h, &inner, &dst);
        assert_eq!(&h[..8], &[0x6b, 0x80, 0, 0, 0, 28, 4, 64]);
        assert_eq!(&h[24..40], &dst.octets());
        let f = flow_hash(&inner);
        assert!(f != 0 && f < (1 << 20));
    }

    #[test]
    fn frag_nh_index_walks() {
        let mut p = [0u8; 64];
        p[6] = 44;
        assert_eq!(frag_nh_index(&p, 40), Some(6));
        p[6] = 60;
        p[40] = 44;
        p[41] = 0;
        assert_eq!(frag_nh_index(&p, 48), Some(40));
        assert_eq!(frag_nh_index(&p, 44), None);
    }
}
