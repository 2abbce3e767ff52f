//! Fragments (RFC 7597 §8.3): reassembly of IPv4 and IPv6 fragments so that the NAPT and
//! the §8.1 checks always see ports (§8.3.2: "fragments from outside must be
//! reassembled"), and IPv6 fragmentation of encapsulated packets that exceed the tunnel
//! MTU (RFC 2473 §7.2, RFC 8200 §4.5).
//!
//! Design choice (documented in the crate root): packets too big for the tunnel with DF
//! clear are encapsulated whole and the **IPv6** packet is fragmented (RFC 2473 §7.2); the
//! receiving BR/CE reassembles IPv6 and then sees the whole IPv4 packet with its ports.
//! IPv4 fragments are reassembled fully (not virtually) before translation, on both sides.
//!
//! Reassembly is bounded (RFC 7597 §10: "reassembly is the DoS surface"): datagrams in
//! progress per source host, in total, bytes held, fragments per datagram, and a timeout
//! (default 2 s). Overlapping fragments discard the whole datagram (RFC 5722, RFC 8200
//! §4.5). Slots and their buffers are pooled: after warm-up no allocation happens.

use core::net::{Ipv4Addr, Ipv6Addr};

use mape_wire::{ipv6, FragmentHeader, IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::drop::DropReason;

/// Reassembly limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Milliseconds an incomplete datagram is kept (default 2000).
    pub timeout_ms: u64,
    /// Datagrams in progress per source host (default 64).
    pub max_per_host: u16,
    /// Datagrams in progress in total (default 256).
    pub max_datagrams: u16,
    /// Bytes held in total (default 4 MiB).
    pub max_bytes: usize,
    /// Fragments per datagram (default 64).
    pub max_fragments: u16,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 2000,
            max_per_host: 64,
            max_datagrams: 256,
            max_bytes: 4 << 20,
            max_fragments: 64,
        }
    }
}

/// What identifies the fragments of one datagram (RFC 791: src, dst, protocol, id;
/// RFC 8200 §4.5: src, dst, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragKey {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        id: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        id: u32,
    },
}

impl FragKey {
    fn host(&self) -> u128 {
        match self {
            FragKey::V4 { src, .. } => u128::from(u32::from(*src)),
            FragKey::V6 { src, .. } => u128::from(*src) | (1u128 << 127),
        }
    }
}

/// One fragment as the pipeline hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment<'a> {
    pub(crate) key: FragKey,
    /// Offset of `data` in the datagram's fragmentable part, bytes.
    pub(crate) offset: usize,
    pub(crate) more: bool,
    /// IPv4: the header (with options). IPv6: the unfragmentable part (everything before
    /// the fragment header). Used from the first fragment only.
    pub(crate) header: &'a [u8],
    /// IPv6: index in `header` of the next-header byte that said 44.
    pub(crate) nh_at: usize,
    /// IPv6: the fragment header's next header.
    pub(crate) next_header: u8,
    pub(crate) data: &'a [u8],
}

/// Outcome of [`Reassembler::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragResult {
    /// Stored; more fragments needed.
    Incomplete,
    /// The datagram is complete and written to the output buffer.
    Complete,
    /// Dropped (the datagram may have been discarded too).
    Dropped(DropReason),
}

const MAX_HEADER: usize = 512;

#[derive(Debug)]
struct Slot {
    key: Option<FragKey>,
    host: u128,
    deadline: u64,
    header: Vec<u8>,
    have_first: bool,
    nh_at: usize,
    next_header: u8,
    data: Vec<u8>,
    extent: usize,
    total: Option<usize>,
    received: usize,
    pieces: Vec<(usize, usize)>,
}

impl Slot {
    fn new(max_fragments: u16) -> Self {
        Slot {
            key: None,
            host: 0,
            deadline: 0,
            header: Vec::with_capacity(64),
            have_first: false,
            nh_at: 0,
            next_header: 0,
            data: Vec::with_capacity(2048),
            extent: 0,
            total: None,
            received: 0,
            pieces: Vec::with_capacity(usize::from(max_fragments)),
        }
    }

    fn clear(&mut self) {
        self.key = None;
        self.header.clear();
        self.have_first = false;
        self.data.clear();
        self.extent = 0;
        self.total = None;
        self.received = 0;
        self.pieces.clear();
    }
}

/// Bounded, pooled reassembly of IPv4 and IPv6 datagrams.
#[derive(Debug)]
pub(crate) struct Reassembler {
    cfg: ReassemblyConfig,
    slots: Vec<Slot>,
    bytes: usize,
    /// Datagrams discarded by timeout since the last [`Reassembler::take_timeouts`].
    timeouts: u64,
}

impl Reassembler {
    pub(crate) fn new(cfg: ReassemblyConfig) -> Self {
        Self {
            cfg,
            slots: Vec::with_capacity(usize::from(cfg.max_datagrams)),
            bytes: 0,
            timeouts: 0,
        }
    }

    /// Datagrams in progress.
    pub(crate) fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Timed-out datagrams since the last call.
    pub(crate) fn take_timeouts(&mut self) -> u64 {
        core::mem::take(&mut self.timeouts)
    }

    /// Discards datagrams whose deadline passed.
    pub(crate) fn expire(&mut self, now: u64) {
        for s in &mut self.slots {
            if s.key.is_some() && s.deadline <= now {
                self.bytes -= s.extent;
                s.clear();
                self.timeouts += 1;
            }
        }
    }

    fn discard(&mut self, i: usize, r: DropReason) -> FragResult {
        if let Some(s) = self.slots.get_mut(i) {
            self.bytes -= s.extent;
            s.clear();
        }
        FragResult::Dropped(r)
    }

    /// Adds a fragment; on completion writes the reassembled packet (header fixed:
    /// lengths, flags, checksum / next header) into `out`.
    pub(crate) fn insert(&mut self, now: u64, f: Fragment<'_>, out: &mut Vec<u8>) -> FragResult {
        self.expire(now);
        let end = f.offset + f.data.len();
        let limit = match f.key {
            FragKey::V4 { .. } => 65535 - 20,
            FragKey::V6 { .. } => 65535,
        };
        // Non-last fragments carry a multiple of 8 bytes (RFC 791, RFC 8200 §4.5).
        if (f.more && (f.data.is_empty() || !f.data.len().is_multiple_of(8)))
            || f.header.len() > MAX_HEADER
        {
            return FragResult::Dropped(DropReason::FragMalformed);
        }
        if end > limit {
            return match self.find(&f.key) {
                Some(i) => self.discard(i, DropReason::FragTooBig),
                None => FragResult::Dropped(DropReason::FragTooBig),
            };
        }
        let i = match self.find(&f.key) {
            Some(i) => i,
            None => match self.allocate(now, &f.key) {
                Ok(i) => i,
                Err(r) => return FragResult::Dropped(r),
            },
        };
        let max_fragments = usize::from(self.cfg.max_fragments);
        let max_bytes = self.cfg.max_bytes;
        let s = &mut self.slots[i];
        // RFC 5722: any overlap (duplicates included) discards the datagram.
        if s.pieces
            .iter()
            .any(|&(a, b)| f.offset < b && a < end.max(f.offset + 1))
        {
            return self.discard(i, DropReason::FragOverlap);
        }
        if !f.more {
            if s.total.is_some_and(|t| t != end) || s.extent > end {
                return self.discard(i, DropReason::FragMalformed);
            }
        } else if s.total.is_some_and(|t| end > t) {
            return self.discard(i, DropReason::FragMalformed);
        }
        if s.pieces.len() >= max_fragments {
            return self.discard(i, DropReason::FragLimit);
        }
        let grow = end.saturating_sub(s.extent);
        if self.bytes + grow > max_bytes {
            // Keep the datagram; this fragment does not fit now.
            return FragResult::Dropped(DropReason::FragLimit);
        }
        self.bytes += grow;
        let s = &mut self.slots[i];
        if end > s.data.len() {
            s.data.resize(end, 0);
        }
        s.data[f.offset..end].copy_from_slice(f.data);
        s.extent = s.extent.max(end);
        s.pieces.push((f.offset, end));
        s.received += f.data.len();
        if !f.more {
            s.total = Some(end);
        }
        if f.offset == 0 {
            s.header.clear();
            s.header.extend_from_slice(f.header);
            s.have_first = true;
            s.nh_at = f.nh_at;
            s.next_header = f.next_header;
        }
        match s.total {
            Some(t) if s.have_first && s.received == t => {}
            _ => return FragResult::Incomplete,
        }
        let t = s.received;
        let hlen = s.header.len();
        if hlen + t
            > 65535
                + if matches!(f.key, FragKey::V6 { .. }) {
                    40
                } else {
                    0
                }
        {
            return self.discard(i, DropReason::FragTooBig);
        }
        out.clear();
        out.extend_from_slice(&s.header);
        out.extend_from_slice(&s.data[..t]);
        match f.key {
            FragKey::V4 { .. } => {
                let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
                ip.set_total_len((hlen + t) as u16);
                ip.clear_flags();
                ip.fill_checksum();
            }
            FragKey::V6 { .. } => {
                let nh_at = s.nh_at;
                if nh_at >= hlen || hlen < ipv6::HEADER_LEN {
                    return self.discard(i, DropReason::FragMalformed);
                }
                // The byte that named the fragment header (found by
                // `ipv6::fragment_nh_index`) now names what the fragments carried.
                out[nh_at] = s.next_header;
                Ipv6Packet::new_unchecked(&mut out[..])
                    .set_payload_len((hlen - ipv6::HEADER_LEN + t) as u16);
            }
        }
        self.bytes -= s.extent;
        s.clear();
        FragResult::Complete
    }

    fn find(&self, key: &FragKey) -> Option<usize> {
        self.slots.iter().position(|s| s.key.as_ref() == Some(key))
    }

    fn allocate(&mut self, now: u64, key: &FragKey) -> Result<usize, DropReason> {
        let host = key.host();
        let per_host = self
            .slots
            .iter()
            .filter(|s| s.key.is_some() && s.host == host)
            .count();
        if per_host >= usize::from(self.cfg.max_per_host) {
            return Err(DropReason::FragLimit);
        }
        let i = match self.slots.iter().position(|s| s.key.is_none()) {
            Some(i) => i,
            None if self.slots.len() < usize::from(self.cfg.max_datagrams) => {
                self.slots.push(Slot::new(self.cfg.max_fragments));
                self.slots.len() - 1
            }
            None => return Err(DropReason::FragLimit),
        };
        let s = &mut self.slots[i];
        s.clear();
        s.key = Some(*key);
        s.host = host;
        s.deadline = now.saturating_add(self.cfg.timeout_ms);
        Ok(i)
    }
}

/// Feeds one IPv4 fragment (RFC 791 §3.2) to the reassembler. `Ok(true)`: `buf` now
/// holds the whole datagram (header fixed); `Ok(false)`: more fragments are needed;
/// `Err`: dropped for that reason. Shared by the CE (both sides) and the BR.
pub(crate) fn reassemble_v4(
    reasm: &mut Reassembler,
    now_ms: u64,
    ip: &Ipv4Packet<&[u8]>,
    buf: &mut Vec<u8>,
) -> Result<bool, DropReason> {
    let f = Fragment {
        key: FragKey::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            proto: ip.protocol(),
            id: ip.ident(),
        },
        offset: usize::from(ip.frag_offset()),
        more: ip.more_frags(),
        header: ip.header(),
        nh_at: 0,
        next_header: 0,
        data: ip.payload(),
    };
    match reasm.insert(now_ms, f, buf) {
        FragResult::Incomplete => Ok(false),
        FragResult::Complete => Ok(true),
        FragResult::Dropped(d) => Err(d),
    }
}

/// Feeds one IPv6 fragment (RFC 8200 §4.5) of `pkt`, whose fragment header `fh` sits at
/// `fat`, to the reassembler. `Ok(Some((protocol, offset)))`: `buf` now holds the whole
/// datagram, its upper layer `protocol` at `offset`; `Ok(None)`: more fragments are
/// needed; `Err`: dropped for that reason. Shared by the CE and the BR.
pub(crate) fn reassemble_v6(
    reasm: &mut Reassembler,
    now_ms: u64,
    pkt: &[u8],
    fh: &FragmentHeader,
    fat: usize,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    buf: &mut Vec<u8>,
) -> Result<Option<(u8, usize)>, DropReason> {
    let nh_at = ipv6::fragment_nh_index(pkt, fat).ok_or(DropReason::Ipv6BadExtHeader)?;
    let f = Fragment {
        key: FragKey::V6 {
            src,
            dst,
            id: fh.ident,
        },
        offset: usize::from(fh.offset),
        more: fh.more_fragments,
        header: &pkt[..fat],
        nh_at,
        next_header: fh.next_header,
        data: pkt.get(fat + FragmentHeader::LEN..).unwrap_or(&[]),
    };
    match reasm.insert(now_ms, f, buf) {
        FragResult::Incomplete => Ok(None),
        FragResult::Dropped(d) => Err(d),
        FragResult::Complete => match Ipv6Packet::new_checked(&buf[..]).map(|p| p.ext_headers()) {
            Ok(Ok(e)) if e.fragment.is_none() => Ok(Some((e.protocol, e.offset))),
            _ => Err(DropReason::Ipv6BadExtHeader),
        },
    }
}

/// Splits the IPv6 packet `pkt` (40-byte header, no extension headers) into fragments of
/// at most `mtu` bytes (RFC 8200 §4.5, RFC 2473 §7.2), built one at a time in `scratch`
/// and handed to `emit`. Returns the number of fragments.
pub(crate) fn fragment_v6(
    pkt: &[u8],
    mtu: usize,
    ident: u32,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> usize {
    let ip6 = Ipv6Packet::new_unchecked(pkt);
    let Some(payload) = pkt.get(ipv6::HEADER_LEN..) else {
        return 0;
    };
    let nh = ip6.next_header();
    let head = ipv6::HEADER_LEN + FragmentHeader::LEN;
    let step = (mtu.saturating_sub(head) / 8) * 8;
    if step == 0 || scratch.len() < head + step.min(payload.len()) {
        return 0;
    }
    let mut off = 0;
    let mut n = 0;
    while off < payload.len() {
        let len = step.min(payload.len() - off);
        let more = off + len < payload.len();
        scratch[..ipv6::HEADER_LEN].copy_from_slice(&pkt[..ipv6::HEADER_LEN]);
        let mut f = Ipv6Packet::new_unchecked(&mut scratch[..]);
        f.set_next_header(IpProtocol::IPV6_FRAG);
        f.set_payload_len((FragmentHeader::LEN + len) as u16);
        let fh = FragmentHeader {
            next_header: nh,
            offset: off as u16,
            more_fragments: more,
            ident,
        };
        // Cannot fail: `scratch` holds `head` bytes at least.
        let _ = fh.emit(&mut scratch[ipv6::HEADER_LEN..]);
        scratch[head..head + len].copy_from_slice(&payload[off..off + len]);
        emit(&scratch[..head + len]);
        off += len;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 1),
            proto: 17,
            id,
        }
    }

    fn frag<'a>(k: FragKey, off: usize, more: bool, hdr: &'a [u8], d: &'a [u8]) -> Fragment<'a> {
        Fragment {
            key: k,
            offset: off,
            more,
            header: hdr,
            nh_at: 0,
            next_header: 0,
            data: d,
        }
    }

    fn hdr() -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[9] = 17;
        h
    }

    #[test]
    fn out_of_order_completes_and_fixes_header() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        let h = hdr();
        let a = [1u8; 16];
        let b = [2u8; 5];
        assert_eq!(
            r.insert(0, frag(key(1), 16, false, &h, &b), &mut out),
            FragResult::Incomplete
        );
        assert_eq!(
            r.insert(1, frag(key(1), 0, true, &h, &a), &mut out),
            FragResult::Complete
        );
        assert_eq!(out.len(), 41);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 41);
        assert_eq!(mape_wire::checksum::data(&out[..20]), 0xffff);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.bytes, 0);
    }

    #[test]
    fn overlap_discards_datagram() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        let h = hdr();
        let a = [1u8; 16];
        r.insert(0, frag(key(1), 0, true, &h, &a), &mut out);
        assert_eq!(
            r.insert(0, frag(key(1), 8, true, &h, &a), &mut out),
            FragResult::Dropped(DropReason::FragOverlap)
        );
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn limits_and_timeout() {
        let cfg = ReassemblyConfig {
            max_per_host: 2,
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let mut out = Vec::new();
        let h = hdr();
        let a = [1u8; 8];
        for id in 0..2 {
            assert_eq!(
                r.insert(0, frag(key(id), 0, true, &h, &a), &mut out),
                FragResult::Incomplete
            );
        }
        assert_eq!(
            r.insert(0, frag(key(9), 0, true, &h, &a), &mut out),
            FragResult::Dropped(DropReason::FragLimit)
        );
        r.expire(2000);
        assert_eq!(r.take_timeouts(), 2);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(
            r.insert(0, frag(key(1), 65528, false, &h, &a), &mut out),
            FragResult::Dropped(DropReason::FragTooBig)
        );
        assert_eq!(
            r.insert(0, frag(key(1), 0, true, &h, &[1, 2, 3]), &mut out),
            FragResult::Dropped(DropReason::FragMalformed)
        );
    }

    #[test]
    fn fragment_v6_splits_on_8_byte_boundaries() {
        let mut pkt = vec![0u8; 40 + 100];
        pkt[0] = 0x60;
        pkt[6] = 4;
        for (i, b) in pkt[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut scratch = vec![0u8; 200];
        let mut got = Vec::new();
        let n = fragment_v6(&pkt, 48 + 60, 7, &mut scratch, |f| got.push(f.to_vec()));
        assert_eq!(n, 2);
        assert_eq!(got[0].len(), 48 + 56);
        assert_eq!(&got[0][40..48], &[4, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&got[1][40..48], &[4, 0, 0, 56, 0, 0, 0, 7]);
        assert_eq!(got[1].len(), 48 + 44);
    }
}
