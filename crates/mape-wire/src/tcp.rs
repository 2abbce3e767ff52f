//! TCP header view, options (RFC 9293 §3.1-3.2; window scale and timestamps RFC 7323,
//! SACK-permitted RFC 2018), in-place MSS clamping, checksum over the IPv4/IPv6
//! pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1), and [`Repr`].

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use crate::be;
use crate::checksum::{self, Delta, PseudoHeader};
use crate::{ChecksumMode, IpProtocol, Result, WireError};

/// Byte ranges of the TCP header (RFC 9293 §3.1).
mod field {
    use crate::Field;
    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const SEQ_NUM: Field = 4..8;
    pub(crate) const ACK_NUM: Field = 8..12;
    pub(crate) const DATA_OFF: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WIN_SIZE: Field = 14..16;
    pub(crate) const CHECKSUM: Field = 16..18;
    pub(crate) const URGENT: Field = 18..20;
    pub(crate) const OPTIONS_START: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod option_kind {
    /// End of option list.
    pub const END: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (RFC 9293 §3.7.1).
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323 §2).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (RFC 2018).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (RFC 2018).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323 §3).
    pub const TIMESTAMPS: u8 = 8;
}

/// TCP control bits (the low byte of the flags field: CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// FIN.
    pub const FIN: Flags = Flags(0x01);
    /// SYN.
    pub const SYN: Flags = Flags(0x02);
    /// RST.
    pub const RST: Flags = Flags(0x04);
    /// PSH.
    pub const PSH: Flags = Flags(0x08);
    /// ACK.
    pub const ACK: Flags = Flags(0x10);
    /// URG.
    pub const URG: Flags = Flags(0x20);
    /// ECE (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// CWR (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    /// No flag set.
    #[inline]
    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// From the raw byte.
    #[inline]
    pub const fn from_bits(b: u8) -> Flags {
        Flags(b)
    }
    /// The raw byte.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether all flags of `other` are set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
    /// Union.
    #[inline]
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    /// Whether this is a SYN without ACK (connection request).
    #[inline]
    pub const fn is_syn_only(self) -> bool {
        self.0 & (Self::SYN.0 | Self::ACK.0) == Self::SYN.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}
impl BitOrAssign for Flags {
    #[inline]
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0
    }
}
impl BitAnd for Flags {
    type Output = Flags;
    #[inline]
    fn bitand(self, o: Flags) -> Flags {
        Flags(self.0 & o.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        f.write_str("Flags(")?;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); the iterator stops after it.
    EndOfList,
    /// No-operation (kind 1).
    NoOp,
    /// Maximum segment size (kind 2, length 4).
    Mss(u16),
    /// Window scale shift (kind 3, length 3).
    WindowScale(u8),
    /// SACK permitted (kind 4, length 2).
    SackPermitted,
    /// Timestamps (kind 8, length 10): TSval, TSecr.
    Timestamps(u32, u32),
    /// Any other option: kind and data (without kind and length bytes).
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// Iterator over the options of a TCP header. Yields `Err(BadOption)` once for a malformed
/// option, then stops; stops after [`TcpOption::EndOfList`].
#[derive(Debug, Clone)]
pub struct Options<'a> {
    bytes: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Options<'a> {
    /// Iterate over raw option bytes (header bytes 20..data offset).
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options {
            bytes,
            pos: 0,
            done: false,
        }
    }

    /// Offset (within the option bytes) of the option the next `next()` returns.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        let kind = *rest.first()?;
        match kind {
            option_kind::END => {
                self.done = true;
                return Some(Ok(TcpOption::EndOfList));
            }
            option_kind::NOP => {
                self.pos += 1;
                return Some(Ok(TcpOption::NoOp));
            }
            _ => {}
        }
        let len = match rest.get(1) {
            Some(&l) if l >= 2 && usize::from(l) <= rest.len() => usize::from(l),
            _ => {
                self.done = true;
                return Some(Err(WireError::BadOption));
            }
        };
        let data = &rest[2..len];
        let opt = match (kind, data.len()) {
            (option_kind::MSS, 2) => TcpOption::Mss(be::u16_at(data, 0)),
            (option_kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(data[0]),
            (option_kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (option_kind::TIMESTAMPS, 8) => {
                TcpOption::Timestamps(be::u32_at(data, 0), be::u32_at(data, 4))
            }
            (
                option_kind::MSS
                | option_kind::WINDOW_SCALE
                | option_kind::SACK_PERMITTED
                | option_kind::TIMESTAMPS,
                _,
            ) => {
                self.done = true;
                return Some(Err(WireError::BadOption));
            }
            _ => TcpOption::Unknown { kind, data },
        };
        self.pos += len;
        Some(Ok(opt))
    }
}

/// A read/write view of a TCP segment. The buffer must be exactly the segment (e.g. the
/// IP payload): checksums cover all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and run [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// At least 20 bytes, data offset ≥ 5, and the header with its options present.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if d.len() < hl {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole segment.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Data offset in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFF] >> 4
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        self.data_offset() * 4
    }

    /// Control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// SYN set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(Flags::SYN)
    }
    /// ACK set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(Flags::ACK)
    }
    /// FIN set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(Flags::FIN)
    }
    /// RST set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(Flags::RST)
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::URGENT.start)
    }

    #[inline]
    fn header_end(&self) -> usize {
        let d = self.buffer.as_ref();
        (self.header_len() as usize).clamp(HEADER_LEN.min(d.len()), d.len())
    }

    /// Raw option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        let end = self.header_end();
        &self.buffer.as_ref()[field::OPTIONS_START.min(end)..end]
    }

    /// Iterator over the options.
    #[inline]
    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }

    /// Offset from the start of the segment of the MSS option's 2-byte value, if present
    /// and well-formed. Stops at the first malformed option.
    pub fn mss_offset(&self) -> Option<usize> {
        let mut it = self.options_iter();
        loop {
            let pos = it.position();
            match it.next()? {
                Ok(TcpOption::Mss(_)) => return Some(field::OPTIONS_START + pos + 2),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The MSS option's value, if present.
    #[inline]
    pub fn mss(&self) -> Option<u16> {
        self.mss_offset()
            .map(|at| be::u16_at(self.buffer.as_ref(), at))
    }

    /// Whether the buffer, perhaps cut short (the segment quoted in an ICMP error shows
    /// 8 bytes at least, RFC 792), reaches past the checksum field.
    #[inline]
    pub fn shows_checksum(&self) -> bool {
        self.buffer.as_ref().len() >= field::CHECKSUM.end
    }

    /// Payload after the header and options.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = self.header_end();
        &self.buffer.as_ref()[end..]
    }

    /// Whether the checksum verifies under the pseudo-header `ph`.
    #[inline]
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        let d = self.buffer.as_ref();
        checksum::add(ph.sum(IpProtocol::TCP, d.len() as u32), checksum::data(d)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::SRC_PORT.start, v)
    }
    /// Set destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::DST_PORT.start, v)
    }
    /// Set sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        be::set_u32(self.buffer.as_mut(), field::SEQ_NUM.start, v)
    }
    /// Set acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        be::set_u32(self.buffer.as_mut(), field::ACK_NUM.start, v)
    }
    /// Set the header length in bytes (multiple of 4, ≤ 60); keeps the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let d = self.buffer.as_mut();
        d[field::DATA_OFF] = (d[field::DATA_OFF] & 0x0f) | ((len / 4) << 4);
    }
    /// Set the control bits.
    #[inline]
    pub fn set_flags(&mut self, f: Flags) {
        self.buffer.as_mut()[field::FLAGS] = f.0
    }
    /// Set window size.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::WIN_SIZE.start, v)
    }
    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }
    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        be::set_u16(self.buffer.as_mut(), field::URGENT.start, v)
    }

    /// Compute and store the checksum over the whole buffer under `ph`.
    #[inline]
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let c = checksum::with_pseudo(ph.sum(IpProtocol::TCP, d.len() as u32), d);
        self.set_checksum(c)
    }

    /// Set the MSS option's value in place (checksum **not** updated). Returns false if
    /// there is no MSS option.
    pub fn set_mss(&mut self, v: u16) -> bool {
        match self.mss_offset() {
            Some(at) => {
                be::set_u16(self.buffer.as_mut(), at, v);
                true
            }
            None => false,
        }
    }

    /// MSS clamping (RFC 4459 §3.2, RFC 7597 §8.3.1 for the CE): if an MSS option is
    /// present and larger than `max`, rewrite it to `max` and update the checksum
    /// incrementally (RFC 1624), also when the option sits at an odd offset.
    /// Returns the old MSS if it was rewritten.
    pub fn clamp_mss(&mut self, max: u16) -> Option<u16> {
        let at = self.mss_offset()?;
        let old = be::u16_at(self.buffer.as_ref(), at);
        if old <= max {
            return None;
        }
        // The 16-bit checksum words covering the value: [at, at+2) if at is even,
        // [at-1, at+3) if odd. at + 3 ≤ header_len since header_len is a multiple of 4.
        let start = at & !1;
        let end = (at + 3) & !1;
        let mut before = [0u8; 4];
        let w = end - start;
        before[..w].copy_from_slice(&self.buffer.as_ref()[start..end]);
        be::set_u16(self.buffer.as_mut(), at, max);
        let mut after = [0u8; 4];
        after[..w].copy_from_slice(&self.buffer.as_ref()[start..end]);
        let c = Delta::new()
            .replace(&before[..w], &after[..w])
            .apply(self.checksum());
        self.set_checksum(c);
        Some(old)
    }

    /// Mutable option bytes.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        &mut self.buffer.as_mut()[field::OPTIONS_START.min(end)..end]
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        &mut self.buffer.as_mut()[end..]
    }
}

/// A high-level TCP header with the options a router cares about. Unknown options are
/// skipped by `parse` and not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window size (unscaled).
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// Timestamps option (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parse a segment; verifies the checksum under `ph` when `mode` is enabled.
    /// Malformed options give [`WireError::BadOption`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        ph: &PseudoHeader,
        mode: ChecksumMode,
    ) -> Result<Repr> {
        packet.check_len()?;
        if mode == ChecksumMode::Enabled && !packet.verify_checksum(ph) {
            return Err(WireError::BadChecksum);
        }
        let mut r = Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamps: None,
            payload_len: packet.payload().len(),
        };
        for opt in packet.options_iter() {
            match opt? {
                TcpOption::Mss(v) => r.mss = Some(v),
                TcpOption::WindowScale(v) => r.window_scale = Some(v),
                TcpOption::SackPermitted => r.sack_permitted = true,
                TcpOption::Timestamps(a, b) => r.timestamps = Some((a, b)),
                TcpOption::EndOfList | TcpOption::NoOp | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(r)
    }

    fn options_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4; // NOP + WS
        }
        n += match (self.sack_permitted, self.timestamps.is_some()) {
            (true, true) | (false, true) => 12, // SACKP + TS, or NOP NOP + TS
            (true, false) => 4,                 // NOP NOP SACKP
            (false, false) => 0,
        };
        n
    }

    /// Header length including options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Header plus payload length.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Write the header (and options) into `buf`, whose bytes
    /// `header_len()..buffer_len()` must already hold the payload; fill the checksum over
    /// `buf[..buffer_len()]` under `ph` if `mode` is enabled (else 0). Returns header length.
    pub fn emit(&self, buf: &mut [u8], ph: &PseudoHeader, mode: ChecksumMode) -> Result<usize> {
        let hl = self.header_len();
        let total = self.buffer_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        if u32::try_from(total).is_err() {
            return Err(WireError::FieldOverflow);
        }
        let mut p = Packet::new_unchecked(&mut buf[..total]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.buffer[field::DATA_OFF] = ((hl / 4) as u8) << 4;
        p.set_flags(self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent_at);
        {
            let o = &mut p.buffer[HEADER_LEN..hl];
            let mut i = 0;
            if let Some(m) = self.mss {
                o[i..i + 2].copy_from_slice(&[option_kind::MSS, 4]);
                be::set_u16(o, i + 2, m);
                i += 4;
            }
            match (self.sack_permitted, self.timestamps) {
                (sack, Some((a, b))) => {
                    if sack {
                        o[i..i + 2].copy_from_slice(&[option_kind::SACK_PERMITTED, 2]);
                    } else {
                        o[i..i + 2].copy_from_slice(&[option_kind::NOP, option_kind::NOP]);
                    }
                    o[i + 2..i + 4].copy_from_slice(&[option_kind::TIMESTAMPS, 10]);
                    be::set_u32(o, i + 4, a);
                    be::set_u32(o, i + 8, b);
                    i += 12;
                }
                (true, None) => {
                    o[i..i + 4].copy_from_slice(&[
                        option_kind::NOP,
                        option_kind::NOP,
                        option_kind::SACK_PERMITTED,
                        2,
                    ]);
                    i += 4;
                }
                (false, None) => {}
            }
            if let Some(ws) = self.window_scale {
                o[i..i + 4].copy_from_slice(&[option_kind::NOP, option_kind::WINDOW_SCALE, 3, ws]);
            }
        }
        if mode == ChecksumMode::Enabled {
            p.fill_checksum(ph);
        }
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_checksum_of_a_cut_short_segment() {
        // Bytes 16..18 hold the checksum (RFC 9293 §3.1).
        assert!(!Packet::new_unchecked(&[0u8; 8][..]).shows_checksum());
        assert!(!Packet::new_unchecked(&[0u8; 17][..]).shows_checksum());
        assert!(Packet::new_unchecked(&[0u8; 18][..]).shows_checksum());
    }
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // TCP part of tests/fixtures/ipv4_tcp_syn_mss.bin: SYN 192.0.2.10:40000 ->
    // 203.0.113.80:443, options MSS 1460, SACK-perm, TS(123456, 0), NOP, WS 7.
    // tshark 4.0.17: checksum 0xca70 [correct].
    static SYN_BYTES: [u8; 40] = [
        0x9c, 0x40, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xca, 0x70, 0x00, 0x00, // header
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07, // options
    ];

    fn ph() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 0, 2, 10),
            dst: Ipv4Addr::new(203, 0, 113, 80),
        }
    }

    fn syn_repr() -> Repr {
        Repr {
            src_port: 40000,
            dst_port: 443,
            seq_number: 0x01020304,
            ack_number: 0,
            flags: Flags::SYN,
            window_len: 64240,
            urgent_at: 0,
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((123456, 0)),
            payload_len: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SYN_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x01020304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert!(p.flags().is_syn_only());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0xca70);
        assert_eq!(p.urgent_at(), 0);
        assert!(p.verify_checksum(&ph()));
        assert_eq!(p.mss(), Some(1460));
        assert_eq!(p.mss_offset(), Some(22));
        let opts: Vec<_> = p.options_iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            vec![
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps(123456, 0),
                TcpOption::NoOp,
                TcpOption::WindowScale(7)
            ]
        );
        assert!(p.payload().is_empty());
        assert_eq!(
            Repr::parse(&p, &ph(), ChecksumMode::Enabled).unwrap(),
            syn_repr()
        );
    }

    #[test]
    fn construct() {
        let r = syn_repr();
        assert_eq!(r.header_len(), 40);
        let mut buf = [0xffu8; 40];
        assert_eq!(r.emit(&mut buf, &ph(), ChecksumMode::Enabled).unwrap(), 40);
        assert_eq!(buf, SYN_BYTES);
        assert_eq!(
            r.emit(&mut buf[..39], &ph(), ChecksumMode::Enabled),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..SYN_BYTES.len() {
            assert_eq!(
                Packet::new_checked(&SYN_BYTES[..n]),
                Err(WireError::Truncated),
                "len {n}"
            );
        }
        let mut b = SYN_BYTES;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]), Err(WireError::BadHeaderLen));
    }

    #[test]
    fn flags_ops() {
        let f = Flags::SYN | Flags::ACK;
        assert!(f.contains(Flags::SYN) && f.contains(Flags::ACK) && !f.is_syn_only());
        assert!(f.intersects(Flags::ACK | Flags::FIN));
        assert_eq!(f & Flags::ACK, Flags::ACK);
        assert_eq!(format!("{f:?}"), "Flags(SYN|ACK)");
        let mut g = Flags::empty();
        g |= Flags::RST;
        assert_eq!(g.bits(), 0x04);
        assert_eq!(Flags::from_bits(0x11), Flags::FIN.union(Flags::ACK));
    }

    #[test]
    fn clamp_mss_even_offset() {
        let mut b = SYN_BYTES;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.clamp_mss(1500), None);
        assert_eq!(p.clamp_mss(1420), Some(1460));
        assert_eq!(p.mss(), Some(1420));
        assert!(p.verify_checksum(&ph()));
        assert_eq!(p.clamp_mss(1420), None);
        assert!(p.set_mss(9000));
        assert!(!p.verify_checksum(&ph()));
    }

    #[test]
    fn clamp_mss_odd_offset() {
        // NOP, MSS 1460, NOP NOP NOP: value at offset 23 (odd).
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&SYN_BYTES[..20]);
        b[12] = 0x70;
        b[20..28].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 1]);
        let ph6 = PseudoHeader::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: "2001:db8::1".parse().unwrap(),
        };
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&ph6);
        assert_eq!(p.mss_offset(), Some(23));
        assert_eq!(p.clamp_mss(1220), Some(1460));
        assert_eq!(p.mss(), Some(1220));
        assert!(p.verify_checksum(&ph6));
    }

    #[test]
    fn malformed_options() {
        let mut b = [0u8; 24];
        b[..20].copy_from_slice(&SYN_BYTES[..20]);
        b[12] = 0x60;
        for bad in [[2u8, 3, 0, 0], [2, 0, 0, 0], [8, 10, 0, 0], [3, 4, 0, 0]] {
            b[20..24].copy_from_slice(&bad);
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.mss(), None);
            assert!(p.options_iter().any(|o| o.is_err()));
            assert_eq!(
                Repr::parse(&p, &ph(), ChecksumMode::Disabled),
                Err(WireError::BadOption)
            );
        }
        // EOL stops; unknown options are skipped.
        b[20..24].copy_from_slice(&[30, 3, 9, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let v: Vec<_> = p.options_iter().collect();
        assert_eq!(
            v,
            vec![
                Ok(TcpOption::Unknown {
                    kind: 30,
                    data: &[9]
                }),
                Ok(TcpOption::EndOfList)
            ]
        );
    }

    #[test]
    fn setters() {
        let mut b = SYN_BYTES;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(Flags::ACK | Flags::PSH);
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.set_header_len(20);
        p.fill_checksum(&ph());
        assert!(p.verify_checksum(&ph()));
        assert_eq!(p.payload().len(), 20);
        p.payload_mut()[0] = 0xaa;
        let r = Repr::parse(&p, &ph(), ChecksumMode::Disabled).unwrap();
        assert_eq!(
            (
                r.src_port,
                r.dst_port,
                r.seq_number,
                r.ack_number,
                r.window_len,
                r.urgent_at
            ),
            (1, 2, 3, 4, 5, 6)
        );
        assert_eq!(r.flags, Flags::ACK | Flags::PSH);
        assert_eq!(r.mss, None);
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<(u16, u16, u32, u32, u8, u16, u16)>(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..15),
            any::<bool>(),
            proptest::option::of(any::<(u32, u32)>()),
            0usize..64,
        )
            .prop_map(
                |((sp, dp, seq, ack, fl, win, urg), mss, ws, sack, ts, pl)| Repr {
                    src_port: sp,
                    dst_port: dp,
                    seq_number: seq,
                    ack_number: ack,
                    flags: Flags(fl),
                    window_len: win,
                    urgent_at: urg,
                    mss,
                    window_scale: ws,
                    sack_permitted: sack,
                    timestamps: ts,
                    payload_len: pl,
                },
            )
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(r in arb_repr(), payload in any::<[u8; 64]>(),
                                 s in any::<[u8; 16]>(), d in any::<[u8; 16]>(), v6 in any::<bool>()) {
            let ph = if v6 {
                PseudoHeader::V6 { src: s.into(), dst: d.into() }
            } else {
                let (a, b) = ([s[0], s[1], s[2], s[3]], [d[0], d[1], d[2], d[3]]);
                PseudoHeader::V4 { src: a.into(), dst: b.into() }
            };
            let mut buf = vec![0u8; r.buffer_len()];
            let hl = r.header_len();
            buf[hl..].copy_from_slice(&payload[..r.payload_len]);
            r.emit(&mut buf, &ph, ChecksumMode::Enabled).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, &ph, ChecksumMode::Enabled).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..r.payload_len]);
            // etherparse as an oracle for header fields and checksum.
            let (h, rest) = etherparse::TcpHeader::from_slice(&buf).unwrap();
            prop_assert_eq!(h.source_port, r.src_port);
            prop_assert_eq!(h.sequence_number, r.seq_number);
            prop_assert_eq!(h.syn, r.flags.contains(Flags::SYN));
            prop_assert_eq!(h.header_len(), hl);
            let want = match ph {
                PseudoHeader::V4 { src, dst } => h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), rest).unwrap(),
                PseudoHeader::V6 { src, dst } => h.calc_checksum_ipv6_raw(src.octets(), dst.octets(), rest).unwrap(),
            };
            prop_assert_eq!(p.checksum(), want);
        }

        /// Incremental MSS clamp agrees with a full recomputation, at any alignment.
        #[test]
        fn clamp_matches_full(nops in 0usize..3, mss in any::<u16>(), max in any::<u16>(),
                              body in any::<[u8; 20]>()) {
            let mut b = vec![0u8; 20];
            b.copy_from_slice(&body);
            b.extend(std::iter::repeat_n(1, nops));
            b.extend_from_slice(&[2, 4]);
            b.extend_from_slice(&mss.to_be_bytes());
            while !b.len().is_multiple_of(4) { b.push(0); }
            b[12] = ((b.len() / 4) as u8) << 4;
            let ph = ph();
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum(&ph);
            let r = p.clamp_mss(max);
            prop_assert_eq!(r.is_some(), mss > max);
            prop_assert!(p.verify_checksum(&ph));
            prop_assert_eq!(p.mss(), Some(mss.min(max)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..70), max in any::<u16>()) {
            let mut b = b;
            if let Ok(mut p) = Packet::new_checked(&mut b[..]) {
                for _ in p.options_iter() {}
                let _ = (p.mss(), p.payload().len(), p.verify_checksum(&ph()));
                let _ = Repr::parse(&p, &ph(), ChecksumMode::Enabled);
                p.clamp_mss(max);
            }
        }
    }
}
