//! The reassembly state a CE or a BR owns (the fragment slots and the two buffers a whole
//! datagram is rebuilt in), and the one way both pipelines feed it a fragment and go on
//! with the whole datagram (RFC 7597 §8.3: reassemble before the NAPT and the §8.1 checks).

use core::net::Ipv6Addr;

use mape_wire::{FragmentHeader, IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::drop::{DropCounters, DropReason};
use crate::encap::IPV6_HEADER_LEN;
use crate::frag::{reassemble_v4, reassemble_v6, Reassembler, ReassemblyConfig};
use crate::sink::{Counters, Verdict};

/// Fragment slots plus the buffers a completed IPv4 or IPv6 datagram is written to.
#[derive(Debug)]
pub(crate) struct Defrag {
    reasm: Reassembler,
    v4: Vec<u8>,
    v6: Vec<u8>,
}

impl Defrag {
    /// Slots within `cfg`'s limits; each buffer holds `buf_len` bytes without growing.
    pub(crate) fn new(cfg: ReassemblyConfig, buf_len: usize) -> Self {
        Defrag {
            reasm: Reassembler::new(cfg),
            v4: Vec::with_capacity(buf_len),
            v6: Vec::with_capacity(buf_len),
        }
    }

    /// Datagrams waiting for more fragments.
    pub(crate) fn in_progress(&self) -> usize {
        self.reasm.in_progress()
    }

    /// Drops the datagrams whose time ran out (RFC 791 §3.2, RFC 8200 §4.5), counted
    /// `frag_timeout`.
    pub(crate) fn expire(&mut self, now_ms: u64, drops: &mut DropCounters) {
        self.reasm.expire(now_ms);
        self.count_timeouts(drops);
    }

    fn count_timeouts(&mut self, drops: &mut DropCounters) {
        let n = self.reasm.take_timeouts();
        if n > 0 {
            drops.add_n(DropReason::FragTimeout, n);
        }
    }
}

/// A pipeline that owns a [`Defrag`] and the counters it feeds.
pub(crate) trait Reassembles {
    /// The reassembly state, the pipeline's counters and its drop counters.
    fn reassembly(&mut self) -> (&mut Defrag, &mut Counters, &mut DropCounters);
}

/// Feeds the IPv4 fragment `ip` to `this`'s reassembly. When it completes a datagram,
/// `whole(this, datagram)` decides its fate; otherwise the fragment is buffered or dropped
/// (counted by the caller from the verdict).
pub(crate) fn via_v4<T: Reassembles>(
    this: &mut T,
    now_ms: u64,
    ip: &Ipv4Packet<&[u8]>,
    whole: impl FnOnce(&mut T, &[u8]) -> Verdict,
) -> Verdict {
    let (d, _, _) = this.reassembly();
    // The buffer leaves `this` while `whole` runs, which needs all of `this`.
    let mut buf = core::mem::take(&mut d.v4);
    let v = match reassemble_v4(&mut d.reasm, now_ms, ip, &mut buf) {
        Ok(false) => Verdict::Buffered,
        Err(r) => Verdict::Dropped(r),
        Ok(true) => {
            this.reassembly().1.reassembled += 1;
            whole(this, &buf)
        }
    };
    let (d, _, drops) = this.reassembly();
    d.v4 = buf;
    d.count_timeouts(drops);
    v
}

/// Feeds the IPv6 fragment `pkt` (its fragment header `fh` at `fat`, addressed
/// `src → dst`) to `this`'s reassembly. When it completes a datagram,
/// `whole(this, datagram, upper-layer protocol, its offset)` decides its fate.
pub(crate) fn via_v6<T: Reassembles>(
    this: &mut T,
    now_ms: u64,
    pkt: &[u8],
    (fh, fat): (&FragmentHeader, usize),
    addrs: (Ipv6Addr, Ipv6Addr),
    whole: impl FnOnce(&mut T, &[u8], u8, usize) -> Verdict,
) -> Verdict {
    let (d, _, _) = this.reassembly();
    let mut buf = core::mem::take(&mut d.v6);
    let v = match reassemble_v6(&mut d.reasm, now_ms, pkt, fh, fat, addrs, &mut buf) {
        Ok(None) => Verdict::Buffered,
        Err(r) => Verdict::Dropped(r),
        Ok(Some((proto, off))) => {
            this.reassembly().1.reassembled += 1;
            whole(this, &buf, proto, off)
        }
    };
    let (d, _, drops) = this.reassembly();
    d.v6 = buf;
    d.count_timeouts(drops);
    v
}

/// The entry of an IPv6 packet from the tunnel side, the same at the CE (from the WAN) and
/// the BR (from the MAP domain): checks the header and the extension-header chain; a
/// fragment is fed to the reassembly only if `admit(this, src, dst)` lets it in (RFC 7597
/// §8.1, §10: buffer nothing that could never pass the source check); then
/// `packet(this, whole packet, upper-layer protocol, its offset)` goes on with it.
pub(crate) fn ipv6_in<T: Reassembles>(
    this: &mut T,
    now_ms: u64,
    input: &[u8],
    admit: impl FnOnce(&T, Ipv6Addr, Ipv6Addr) -> Result<(), DropReason>,
    packet: impl FnOnce(&mut T, &[u8], u8, usize) -> Verdict,
) -> Verdict {
    let Ok(ip6) = Ipv6Packet::new_checked(input) else {
        return Verdict::Dropped(DropReason::Ipv6Malformed);
    };
    let pkt = ip6.packet_bytes();
    if ip6.next_header() == IpProtocol::IPV4 {
        // No extension headers: what RFC 2473 encapsulation normally sends.
        return packet(this, pkt, IpProtocol::IPV4, IPV6_HEADER_LEN);
    }
    let Ok(ext) = ip6.ext_headers() else {
        return Verdict::Dropped(DropReason::Ipv6BadExtHeader);
    };
    let (Some(fh), Some(fat)) = (ext.fragment, ext.fragment_at) else {
        return packet(this, pkt, ext.protocol, ext.offset);
    };
    let addrs = (ip6.src_addr(), ip6.dst_addr());
    if let Err(r) = admit(this, addrs.0, addrs.1) {
        return Verdict::Dropped(r);
    }
    via_v6(this, now_ms, pkt, (&fh, fat), addrs, packet)
}
