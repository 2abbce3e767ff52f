//! Leading fields of headers whose end may be missing.
//!
//! A frame captured with a small snapshot length (`tcpdump -s`) keeps only its first bytes:
//! a TCP SYN with 20 bytes of options, cut after 14 bytes of its header, still names its
//! ports, sequence numbers and flags, while [`crate::tcp::Packet::check_len`] wants the
//! whole header. Each reader here looks only at the bytes it names and gives `None` when
//! they are not all there. (The port pair of a TCP or UDP header is [`crate::ports`].)

use crate::icmpv4;
use crate::tcp::{self, Flags};

/// The IP version (the high nibble of the first byte: RFC 791 §3.1, RFC 8200 §3) of a
/// packet, whatever its length. `None` for an empty buffer.
#[inline]
pub fn ip_version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

/// Bytes of a TCP header up to and including the control bits (RFC 9293 §3.1).
pub const TCP_PREFIX_LEN: usize = 14;

/// The fields of the first [`TCP_PREFIX_LEN`] bytes of a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpPrefix {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: Flags,
}

/// Reads a [`TcpPrefix`] from the start of `segment`; the data offset and what follows
/// are not looked at. `None` if fewer than [`TCP_PREFIX_LEN`] bytes.
#[inline]
pub fn tcp(segment: &[u8]) -> Option<TcpPrefix> {
    // The accessors used below read within the first TCP_PREFIX_LEN bytes only.
    let p = tcp::Packet::new_unchecked(segment.get(..TCP_PREFIX_LEN)?);
    Some(TcpPrefix {
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        seq_number: p.seq_number(),
        ack_number: p.ack_number(),
        flags: p.flags(),
    })
}

/// Bytes of an ICMPv4 query header up to the end of the identifier (RFC 792 echo and
/// timestamp messages).
pub const ICMPV4_QUERY_PREFIX_LEN: usize = 6;

/// The type and the identifier (bytes 4..6, the "port" a NAT maps, RFC 5508 §3.1) of an
/// ICMPv4 message. `None` if fewer than [`ICMPV4_QUERY_PREFIX_LEN`] bytes. Whether the
/// type is a query is the caller's to check ([`icmpv4::is_query_type`]).
#[inline]
pub fn icmpv4_query(msg: &[u8]) -> Option<(u8, u16)> {
    // The accessors used below read within the first ICMPV4_QUERY_PREFIX_LEN bytes only.
    let p = icmpv4::Packet::new_unchecked(msg.get(..ICMPV4_QUERY_PREFIX_LEN)?);
    Some((p.msg_type(), p.echo_ident()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_version_of_any_length() {
        assert_eq!(ip_version(&[0x45]), Some(4));
        assert_eq!(ip_version(&[0x60, 0, 0, 0]), Some(6));
        assert_eq!(ip_version(&[0x1f]), Some(1));
        assert_eq!(ip_version(&[]), None);
    }

    #[test]
    fn tcp_prefix_of_a_syn_cut_inside_its_options() {
        // SYN 40000 -> 443, seq 0x01020304, ack 0, data offset 10 (40-byte header),
        // flags 0x02; cut after the flags byte as a 14-byte snapshot would leave it.
        let cut = [
            0x9c, 0x40, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
        ];
        let want = TcpPrefix {
            src_port: 40000,
            dst_port: 443,
            seq_number: 0x0102_0304,
            ack_number: 0,
            flags: Flags::SYN,
        };
        assert_eq!(tcp(&cut), Some(want));
        assert!(tcp::Packet::new_checked(&cut[..]).is_err());
        // Every flag bit is kept, and a data offset below 5 is not looked at.
        let odd = [
            0, 1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xb0, 0xc0, 0xd0, 0x00, 0xd2,
        ];
        let p = tcp(&odd).unwrap();
        assert_eq!((p.src_port, p.dst_port), (1, 2));
        assert_eq!((p.seq_number, p.ack_number), (0xffff_ffff, 0xa0b0_c0d0));
        assert_eq!(p.flags.bits(), 0xd2);
        assert_eq!(tcp(&cut[..13]), None);
    }

    #[test]
    fn icmpv4_query_of_a_cut_echo() {
        // Echo request (type 8, code 0, checksum 0xf7a9), identifier 77, cut before the
        // sequence number.
        assert_eq!(icmpv4_query(&[8, 0, 0xf7, 0xa9, 0x00, 0x4d]), Some((8, 77)));
        assert_eq!(
            icmpv4_query(&[0, 0, 0, 0, 0x12, 0x34, 0, 1, 0xaa]),
            Some((0, 0x1234))
        );
        assert_eq!(icmpv4_query(&[3, 1, 0, 0, 0]), None);
    }
}
