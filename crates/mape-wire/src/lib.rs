//! Zero-copy views over packet buffers (IPv4, IPv6, TCP, UDP, ICMPv4, ICMPv6), checksums,
//! and the port-mapping protocol messages (NAT-PMP in [`natpmp`], PCP in [`pcp`]).
//!
//! The shape follows smoltcp's `wire` module:
//!
//! * `Packet<T: AsRef<[u8]>>` wraps a buffer. `new_unchecked` wraps it as is;
//!   `new_checked` runs `check_len` first. **Contract:** after `check_len` succeeds no
//!   accessor of that view panics, whatever the bytes are.
//! * Byte ranges of each header live in a private `field` module; getters are named after
//!   the fields and setters are `set_*`, available when `T: AsMut<[u8]>` too.
//! * A `Repr` per protocol is a plain-value header description with `parse` and `emit`
//!   (emit writes into a caller buffer; `header_len()`/`buffer_len()` tell how much room is
//!   needed).
//! * Checksums: full (RFC 1071) and incremental (RFC 1624) helpers live in [`checksum`];
//!   setters never update checksums behind the caller's back. The few methods that do
//!   (e.g. [`tcp::Packet::clamp_mss`], [`ipv4::Packet::decrement_ttl`]) say so in their name
//!   or documentation.
//!
//! Nothing here allocates or performs IO.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use core::fmt;

pub mod checksum;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod natpmp;
pub mod pcp;
pub mod prefix;
pub mod tcp;
pub mod udp;

pub use checksum::PseudoHeader;
pub use icmpv4::{Packet as Icmpv4Packet, Repr as Icmpv4Repr};
pub use icmpv6::{Packet as Icmpv6Packet, Repr as Icmpv6Repr};
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    ExtHeaders, FragmentHeader, Packet as Ipv6Packet, Repr as Ipv6Repr, MAX_EXT_HEADERS,
};
pub use tcp::{Flags as TcpFlags, Packet as TcpPacket, Repr as TcpRepr, TcpOption};
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};

/// Errors from parsing or emitting wire formats. Fieldless and `Copy`, so it can be counted
/// or used as a metric label via [`WireError::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than a header or a length field says.
    Truncated,
    /// IP version field is not the expected one.
    BadVersion,
    /// A header length field is too small (IPv4 IHL < 5, TCP data offset < 5, ...) or
    /// points beyond the buffer.
    BadHeaderLen,
    /// IPv4 total length smaller than its header, IPv6/UDP length inconsistent.
    BadTotalLen,
    /// A checksum did not verify.
    BadChecksum,
    /// Malformed IPv6 extension header chain (e.g. hop-by-hop not first).
    BadExtHeader,
    /// More IPv6 extension headers than [`MAX_EXT_HEADERS`].
    TooManyExtHeaders,
    /// Malformed TCP option.
    BadOption,
    /// A value cannot be represented in the wire field (e.g. length > 65535).
    FieldOverflow,
    /// The output buffer given to an `emit`/builder is too small.
    BufferTooSmall,
}

impl WireError {
    /// Stable snake_case name, usable as a metric label or log field.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_version",
            WireError::BadHeaderLen => "bad_header_len",
            WireError::BadTotalLen => "bad_total_len",
            WireError::BadChecksum => "bad_checksum",
            WireError::BadExtHeader => "bad_ext_header",
            WireError::TooManyExtHeaders => "too_many_ext_headers",
            WireError::BadOption => "bad_option",
            WireError::FieldOverflow => "field_overflow",
            WireError::BufferTooSmall => "buffer_too_small",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            WireError::Truncated => "packet truncated",
            WireError::BadVersion => "bad IP version",
            WireError::BadHeaderLen => "bad header length",
            WireError::BadTotalLen => "bad total/payload length",
            WireError::BadChecksum => "bad checksum",
            WireError::BadExtHeader => "malformed IPv6 extension header chain",
            WireError::TooManyExtHeaders => "too many IPv6 extension headers",
            WireError::BadOption => "malformed option",
            WireError::FieldOverflow => "value does not fit its wire field",
            WireError::BufferTooSmall => "output buffer too small",
        };
        f.write_str(s)
    }
}

impl std::error::Error for WireError {}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, WireError>;

/// Whether `parse` verifies checksums and `emit` fills them in.
///
/// The policy is a parameter (as smoltcp's `ChecksumCapabilities`): a TUN device with
/// checksum offload, or a test, may skip the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Verify on parse, compute on emit.
    #[default]
    Enabled,
    /// Skip verification on parse; leave the checksum field zero on emit.
    Disabled,
}

/// IP protocol numbers (IPv4 "Protocol", IPv6 "Next Header"), IANA registry.
///
/// A namespace of `u8` constants usable in `match` patterns:
/// `match proto { IpProtocol::TCP => .., _ => .. }`.
#[derive(Debug, Clone, Copy)]
pub struct IpProtocol;

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulation (IPv4-in-IPv6 for MAP-E, RFC 2473 / RFC 7597 §5).
    pub const IPV4: u8 = 4;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header (RFC 8200 §4.4).
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header (RFC 8200 §4.5).
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 "No Next Header" (RFC 8200 §4.7).
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options (RFC 8200 §4.6).
    pub const IPV6_OPTS: u8 = 60;

    /// Short name for logs, `"other"` for numbers not listed above.
    pub const fn name(proto: u8) -> &'static str {
        match proto {
            Self::HOPOPT => "hopopt",
            Self::ICMP => "icmp",
            Self::IPV4 => "ipv4",
            Self::TCP => "tcp",
            Self::UDP => "udp",
            Self::IPV6 => "ipv6",
            Self::IPV6_ROUTE => "ipv6-route",
            Self::IPV6_FRAG => "ipv6-frag",
            Self::ESP => "esp",
            Self::AH => "ah",
            Self::ICMPV6 => "icmpv6",
            Self::IPV6_NONXT => "ipv6-nonxt",
            Self::IPV6_OPTS => "ipv6-opts",
            _ => "other",
        }
    }
}

/// Source and destination port from the first 4 bytes of a TCP or UDP header.
///
/// Works on the 8-byte transport quote inside ICMP errors (RFC 792), where the full
/// [`tcp::Packet`] view would fail `check_len`. `None` if fewer than 4 bytes.
#[inline]
pub fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    match l4 {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

/// Byte range of a header field.
/// The IP version of a packet: its first nibble (RFC 791 §3.1, RFC 8200 §3), which says
/// which view parses it; `None` for an empty buffer.
#[inline]
pub fn ip_version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

pub(crate) type Field = core::ops::Range<usize>;

/// Big-endian reads and writes at fixed offsets. Callers guarantee bounds (via `check_len`).
pub(crate) mod be {
    #[inline]
    pub(crate) fn u16_at(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }
    #[inline]
    pub(crate) fn u32_at(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }
    #[inline]
    pub(crate) fn set_u16(d: &mut [u8], at: usize, v: u16) {
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub(crate) fn set_u32(d: &mut [u8], at: usize, v: u32) {
        d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_version_is_the_first_nibble() {
        assert_eq!(ip_version(&[0x45, 0]), Some(4));
        assert_eq!(ip_version(&[0x60]), Some(6));
        assert_eq!(ip_version(&[]), None);
    }

    #[test]
    fn error_names_and_display() {
        assert_eq!(WireError::Truncated.as_str(), "truncated");
        assert_eq!(WireError::BadChecksum.to_string(), "bad checksum");
        assert_eq!(IpProtocol::name(IpProtocol::ICMPV6), "icmpv6");
        assert_eq!(IpProtocol::name(200), "other");
        let p = 6u8;
        assert!(matches!(p, IpProtocol::TCP));
        assert_eq!(ports(&[0x9c, 0x40, 0x01, 0xbb]), Some((40000, 443)));
        assert_eq!(ports(&[1, 2, 3]), None);
    }
}
