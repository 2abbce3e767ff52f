//! TCP MSS clamping on the SYNs and SYN-ACKs that cross the tunnel, both ways, so that
//! neither end sends segments the 40-byte encapsulation would push past the path MTU
//! (RFC 7597 §8.3: "uses PMTUD, fragmentation and TCP MSS"; RFC 4459 §3.2; tunnel MTU
//! 1460 → MSS 1420): an outbound SYN limits what the remote sends, an inbound SYN-ACK (or
//! SYN, to a static forward) what the LAN host sends. RFC 1624 incremental checksum.

use mape_wire::tcp;

/// The MSS for an IPv4 tunnel MTU: MTU − 20 (IPv4) − 20 (TCP).
pub const fn mss_for_mtu(ipv4_mtu: u16) -> u16 {
    ipv4_mtu.saturating_sub(40)
}

/// If the TCP segment `tcp` carries an MSS option above `max`, lowers it to `max` and
/// fixes the checksum (RFC 1624). Returns the old MSS if clamped. The caller checked the
/// header (`l4::parse`) and that the segment is a SYN.
#[inline]
pub(crate) fn clamp(tcp: &mut [u8], max: u16) -> Option<u16> {
    tcp::Packet::new_unchecked(tcp).clamp_mss(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mape_wire::checksum::PseudoHeader;

    #[test]
    fn clamps_syn_and_keeps_checksum_valid() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 168, 1, 10], [8, 8, 8, 8], 64)
            .tcp(40000, 443, 1, 64240)
            .syn()
            .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap()
            .write(&mut v, &[])
            .unwrap();
        assert_eq!(clamp(&mut v[20..], 1420), Some(1460));
        let t = tcp::Packet::new_checked(&v[20..]).unwrap();
        assert_eq!(t.mss(), Some(1420));
        let ph = PseudoHeader::V4 {
            src: [192, 168, 1, 10].into(),
            dst: [8, 8, 8, 8].into(),
        };
        assert!(t.verify_checksum(&ph));
        assert_eq!(clamp(&mut v[20..], 1420), None);
        assert_eq!(mss_for_mtu(1460), 1420);
    }
}
