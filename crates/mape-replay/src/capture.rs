//! Streaming pcap / pcapng reader and a pcap writer, in a few hundred lines of our own so
//! that errors are typed, memory is bounded (one reused record buffer) and nothing panics
//! on corrupt input.
//!
//! Read: pcap (both byte orders, microsecond and nanosecond magics, the "modified" Kuznetsov
//! variant) and pcapng (SHB with either byte order, IDB with `if_tsresol`, EPB, SPB and the
//! obsolete PB; other blocks skipped). Write: classic pcap, microsecond resolution.

use std::io::{self, Read, Write};

/// Largest packet record accepted (tcpdump's MAXIMUM_SNAPLEN is 256 KiB).
pub const MAX_RECORD: usize = 1 << 20;
/// Largest pcapng block accepted.
pub const MAX_BLOCK: usize = 16 << 20;
/// Link type reported for a record whose pcapng interface is unknown.
pub const UNKNOWN_INTERFACE: u32 = u32::MAX;

/// Why a capture could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file is empty.
    #[error("empty file: not a pcap or pcapng capture")]
    Empty,
    /// The first bytes are no known capture magic.
    #[error("not a pcap or pcapng capture (starts with {0})")]
    NotACapture(String),
    /// Reading failed.
    #[error("read error at byte {offset}: {source}")]
    Io {
        /// Byte offset in the file.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file ends in the middle of a header or a record.
    #[error("capture truncated at byte {offset} (inside {what})")]
    Truncated {
        /// Byte offset where the incomplete part starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A length or field that cannot be right; reading stops here.
    #[error("corrupt capture at byte {offset}: {what} ({value})")]
    Corrupt {
        /// Byte offset of the bad header.
        offset: u64,
        /// What is wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
}

impl CaptureError {
    /// Whether the error means the input is not a capture at all (as opposed to a capture
    /// that breaks off somewhere: that one is reported and the replay keeps what it read).
    pub fn is_not_a_capture(&self) -> bool {
        matches!(self, CaptureError::Empty | CaptureError::NotACapture(_))
    }
}

/// The container format found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time in nanoseconds since the Unix epoch (as written in the file).
    pub ts_ns: u64,
    /// Link-layer type ([`crate::packet::linktype`]), or [`UNKNOWN_INTERFACE`].
    pub link: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    link: u32,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pcap {
        link: u32,
        /// Timestamp fraction units per second (1e6 or 1e9).
        units: u64,
        /// Extra bytes per record header (8 in the Kuznetsov variant).
        extra: usize,
    },
    PcapNg,
}

/// A streaming capture reader over any [`Read`] (wrap files in a `BufReader`).
#[derive(Debug)]
pub struct CaptureReader<R> {
    r: R,
    pos: u64,
    kind: Kind,
    big_endian: bool,
    ifaces: Vec<Iface>,
    buf: Vec<u8>,
    last_ts: u64,
    done: bool,
}

/// Reads up to `buf.len()` bytes; returns how many (short only at end of file).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn u16_at(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    let a = [s[0], s[1]];
    Some(if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    })
}

fn u32_at(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let a = [s[0], s[1], s[2], s[3]];
    Some(if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

/// `ts` in `units` per second → nanoseconds, saturating.
fn to_ns(ts: u64, units: u64) -> u64 {
    if units == 0 {
        return ts;
    }
    let ns = u128::from(ts) * 1_000_000_000 / u128::from(units);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAP_KUZNETSOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and tells pcap from pcapng.
    pub fn new(mut r: R) -> Result<Self, CaptureError> {
        let mut head = [0u8; 24];
        let n = read_full(&mut r, &mut head[..4])
            .map_err(|source| CaptureError::Io { offset: 0, source })?;
        if n == 0 {
            return Err(CaptureError::Empty);
        }
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        if n < 4 {
            return Err(CaptureError::NotACapture(hex(&head[..n])));
        }
        let le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let mut me = Self {
            r,
            pos: 4,
            kind: Kind::PcapNg,
            big_endian: false,
            ifaces: Vec::new(),
            buf: Vec::with_capacity(2048),
            last_ts: 0,
            done: false,
        };
        let pcap = [PCAP_US, PCAP_NS, PCAP_KUZNETSOV];
        if be == PCAPNG_SHB {
            // The block length and byte order follow; next_frame handles the block whole.
            me.pos = 0;
            me.buf.extend_from_slice(&head[..4]);
            me.kind = Kind::PcapNg;
            return Ok(me);
        }
        let (magic, big) = if pcap.contains(&le) {
            (le, false)
        } else if pcap.contains(&be) {
            (be, true)
        } else {
            return Err(CaptureError::NotACapture(hex(&head[..4])));
        };
        let got = read_full(&mut me.r, &mut head[4..24])
            .map_err(|source| CaptureError::Io { offset: 4, source })?;
        if got < 20 {
            return Err(CaptureError::Truncated {
                offset: 0,
                what: "the pcap file header",
            });
        }
        me.pos = 24;
        me.big_endian = big;
        let link = u32_at(&head, 20, big).unwrap_or(0) & 0x0fff_ffff;
        me.kind = Kind::Pcap {
            link,
            units: if magic == PCAP_NS {
                1_000_000_000
            } else {
                1_000_000
            },
            extra: if magic == PCAP_KUZNETSOV { 8 } else { 0 },
        };
        Ok(me)
    }

    /// The container format.
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Pcap { .. } => Format::Pcap,
            Kind::PcapNg => Format::PcapNg,
        }
    }

    /// Bytes consumed so far (for progress).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads exactly `n` bytes appended to `self.buf` from offset `keep`. `Ok(false)` on a
    /// clean end of file before the first byte when `eof_ok`.
    fn fill(
        &mut self,
        keep: usize,
        n: usize,
        eof_ok: bool,
        what: &'static str,
    ) -> Result<bool, CaptureError> {
        self.buf.resize(keep + n, 0);
        let start = self.pos;
        let got =
            read_full(&mut self.r, &mut self.buf[keep..]).map_err(|source| CaptureError::Io {
                offset: start,
                source,
            })?;
        self.pos += got as u64;
        if got == n {
            return Ok(true);
        }
        self.done = true;
        if got == 0 && eof_ok && keep == 0 {
            return Ok(false);
        }
        Err(CaptureError::Truncated {
            offset: start.saturating_sub(keep as u64),
            what,
        })
    }

    /// The next packet record, `Ok(None)` at the end. After an error the reader is done.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        match self.kind {
            Kind::Pcap { link, units, extra } => self.next_pcap(link, units, extra),
            Kind::PcapNg => self.next_pcapng(),
        }
    }

    fn next_pcap(
        &mut self,
        link: u32,
        units: u64,
        extra: usize,
    ) -> Result<Option<Frame<'_>>, CaptureError> {
        let hdr = 16 + extra;
        let at = self.pos;
        if !self.fill(0, hdr, true, "a pcap record header")? {
            return Ok(None);
        }
        let be = self.big_endian;
        let sec = u64::from(u32_at(&self.buf, 0, be).unwrap_or(0));
        let frac = u64::from(u32_at(&self.buf, 4, be).unwrap_or(0));
        let caplen = u32_at(&self.buf, 8, be).unwrap_or(0);
        let orig_len = u32_at(&self.buf, 12, be).unwrap_or(0);
        if caplen as usize > MAX_RECORD {
            self.done = true;
            return Err(CaptureError::Corrupt {
                offset: at,
                what: "record length too large",
                value: u64::from(caplen),
            });
        }
        self.fill(0, caplen as usize, false, "a pcap packet record")?;
        let ts_ns = sec
            .saturating_mul(1_000_000_000)
            .saturating_add(to_ns(frac, units));
        self.last_ts = ts_ns;
        Ok(Some(Frame {
            ts_ns,
            link,
            data: &self.buf,
            orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            let at = self.pos;
            // A block starts with type and total length; the SHB magic may already sit in
            // the buffer (read while sniffing the format).
            let keep = if self.buf.len() == 4 && at == 0 {
                self.pos = 4;
                4
            } else {
                0
            };
            if !self.fill(keep, 8 - keep, true, "a pcapng block header")? {
                return Ok(None);
            }
            let raw_type = u32_at(&self.buf, 0, false).unwrap_or(0);
            if raw_type == PCAPNG_SHB {
                // Byte order comes from the byte-order magic, after the length.
                self.fill(8, 4, false, "a section header block")?;
                let bom = u32_at(&self.buf, 8, false).unwrap_or(0);
                self.big_endian = if bom == PCAPNG_BOM {
                    false
                } else if bom.swap_bytes() == PCAPNG_BOM {
                    true
                } else {
                    self.done = true;
                    return Err(CaptureError::Corrupt {
                        offset: at,
                        what: "bad byte-order magic in section header",
                        value: u64::from(bom),
                    });
                };
                let len = self.block_len(at)?;
                if len < 28 {
                    self.done = true;
                    return Err(CaptureError::Corrupt {
                        offset: at,
                        what: "section header block too short",
                        value: len as u64,
                    });
                }
                self.fill(12, len - 12, false, "a section header block")?;
                self.ifaces.clear();
                continue;
            }
            let be = self.big_endian;
            let btype = u32_at(&self.buf, 0, be).unwrap_or(0);
            let len = self.block_len(at)?;
            if len < 12 {
                self.done = true;
                return Err(CaptureError::Corrupt {
                    offset: at,
                    what: "block shorter than 12 bytes",
                    value: len as u64,
                });
            }
            self.fill(8, len - 8, false, "a pcapng block")?;
            // Body without the header and trailing length.
            let body_end = len - 4;
            match btype {
                1 => self.interface(body_end),
                6 | 2 => {
                    let obsolete = btype == 2;
                    let (iface, ts_hi, ts_lo, caplen, orig) = if obsolete {
                        (
                            u32::from(u16_at(&self.buf, 8, be).unwrap_or(0)),
                            u32_at(&self.buf, 12, be),
                            u32_at(&self.buf, 16, be),
                            u32_at(&self.buf, 20, be),
                            u32_at(&self.buf, 24, be),
                        )
                    } else {
                        (
                            u32_at(&self.buf, 8, be).unwrap_or(0),
                            u32_at(&self.buf, 12, be),
                            u32_at(&self.buf, 16, be),
                            u32_at(&self.buf, 20, be),
                            u32_at(&self.buf, 24, be),
                        )
                    };
                    let (Some(hi), Some(lo), Some(caplen), Some(orig)) =
                        (ts_hi, ts_lo, caplen, orig)
                    else {
                        // Block too short for its fixed fields: skip it.
                        continue;
                    };
                    let ts = u64::from(hi) << 32 | u64::from(lo);
                    let (link, units) = match self.ifaces.get(iface as usize) {
                        Some(i) => (i.link, i.units),
                        None => (UNKNOWN_INTERFACE, 1_000_000),
                    };
                    let start = 28usize;
                    let end = start
                        .saturating_add(caplen as usize)
                        .min(body_end)
                        .max(start);
                    let ts_ns = to_ns(ts, units);
                    self.last_ts = ts_ns;
                    return Ok(Some(Frame {
                        ts_ns,
                        link,
                        data: self.buf.get(start..end).unwrap_or(&[]),
                        orig_len: orig,
                    }));
                }
                3 => {
                    let Some(orig) = u32_at(&self.buf, 8, be) else {
                        continue;
                    };
                    let (link, snap) = match self.ifaces.first() {
                        Some(i) => (i.link, i.snaplen),
                        None => (UNKNOWN_INTERFACE, u32::MAX),
                    };
                    let snap = if snap == 0 { u32::MAX } else { snap };
                    let start = 12usize;
                    let caplen = orig.min(snap) as usize;
                    let end = start.saturating_add(caplen).min(body_end).max(start);
                    return Ok(Some(Frame {
                        ts_ns: self.last_ts,
                        link,
                        data: self.buf.get(start..end).unwrap_or(&[]),
                        orig_len: orig,
                    }));
                }
                _ => continue,
            }
        }
    }

    fn block_len(&mut self, at: u64) -> Result<usize, CaptureError> {
        let len = u32_at(&self.buf, 4, self.big_endian).unwrap_or(0) as usize;
        if len > MAX_BLOCK {
            self.done = true;
            return Err(CaptureError::Corrupt {
                offset: at,
                what: "block length too large",
                value: len as u64,
            });
        }
        Ok(len)
    }

    /// Parses an interface description block held in `self.buf`.
    fn interface(&mut self, body_end: usize) {
        let be = self.big_endian;
        let link = u32::from(u16_at(&self.buf, 8, be).unwrap_or(0));
        let snaplen = u32_at(&self.buf, 12, be).unwrap_or(0);
        let mut units = 1_000_000u64;
        let mut at = 16usize;
        while at + 4 <= body_end {
            let (Some(code), Some(olen)) =
                (u16_at(&self.buf, at, be), u16_at(&self.buf, at + 2, be))
            else {
                break;
            };
            if code == 0 {
                break;
            }
            let olen = usize::from(olen);
            if code == 9 && olen >= 1 {
                if let Some(&v) = self.buf.get(at + 4) {
                    let e = u32::from(v & 0x7f);
                    units = if v & 0x80 == 0 {
                        10u64.checked_pow(e).unwrap_or(u64::MAX)
                    } else {
                        1u64.checked_shl(e).unwrap_or(u64::MAX)
                    };
                }
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        // Bound the table: a corrupt file cannot make it grow without end.
        if self.ifaces.len() < 4096 {
            self.ifaces.push(Iface {
                link,
                snaplen,
                units: units.max(1),
            });
        }
    }
}

/// Writes a classic pcap file (microsecond timestamps).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for link type `link`.
    pub fn new(mut w: W, link: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&link.to_le_bytes());
        w.write_all(&h)?;
        Ok(Self { w })
    }

    /// Appends one packet captured at `ts_ns` (nanoseconds since the epoch).
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let sec = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let usec = ((ts_ns % 1_000_000_000) / 1000) as u32;
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Frames = Vec<(u64, u32, Vec<u8>)>;

    fn read_all(bytes: &[u8]) -> (Frames, Option<CaptureError>) {
        let mut out = Vec::new();
        let mut r = match CaptureReader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (out, Some(e)),
        };
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push((f.ts_ns, f.link, f.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn sample_pcap() -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), 101).unwrap();
        w.write(1_000_000_000, &[0x45, 1, 2]).unwrap();
        w.write(2_500_000_000, &[]).unwrap();
        w.write(3_000_001_000, &[9; 70]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn pcap_roundtrip() {
        let (frames, err) = read_all(&sample_pcap());
        assert!(err.is_none());
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], (1_000_000_000, 101, vec![0x45, 1, 2]));
        assert_eq!(frames[1].0, 2_500_000_000);
        assert!(frames[1].2.is_empty());
        assert_eq!(frames[2].0, 3_000_001_000);
    }

    #[test]
    fn pcap_big_endian_and_nanoseconds() {
        let mut f = Vec::new();
        f.extend_from_slice(&PCAP_NS.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&123u32.to_be_bytes());
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(&[7, 8]);
        let (frames, err) = read_all(&f);
        assert!(err.is_none());
        assert_eq!(frames, vec![(5_000_000_123, 1, vec![7, 8])]);
    }

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut b = btype.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    fn pcapng(tsresol: Option<u8>) -> Vec<u8> {
        let mut shb = PCAPNG_BOM.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut f = block(PCAPNG_SHB, &shb);
        let mut idb = 113u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        if let Some(r) = tsresol {
            idb.extend_from_slice(&9u16.to_le_bytes());
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&[r, 0, 0, 0]);
            idb.extend_from_slice(&[0, 0, 0, 0]);
        }
        f.extend(block(1, &idb));
        f.extend(block(0x0bad, &[1, 2, 3, 4]));
        let ts: u64 = 1_500;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&[1, 2, 3]);
        f.extend(block(6, &epb));
        let mut spb = 2u32.to_le_bytes().to_vec();
        spb.extend_from_slice(&[4, 5]);
        f.extend(block(3, &spb));
        // EPB on an interface that was never described.
        let mut bad = 7u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&[0; 8]);
        bad.extend_from_slice(&1u32.to_le_bytes());
        bad.extend_from_slice(&1u32.to_le_bytes());
        bad.push(9);
        f.extend(block(6, &bad));
        f
    }

    #[test]
    fn pcapng_blocks_and_resolution() {
        let (frames, err) = read_all(&pcapng(None));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], (1_500_000, 113, vec![1, 2, 3]));
        assert_eq!(frames[1], (1_500_000, 113, vec![4, 5]));
        assert_eq!(frames[2].1, UNKNOWN_INTERFACE);
        let (frames, _) = read_all(&pcapng(Some(9)));
        assert_eq!(frames[0].0, 1_500);
        let (frames, _) = read_all(&pcapng(Some(0x80 | 10)));
        assert_eq!(frames[0].0, 1_500 * 1_000_000_000 / 1024);
    }

    #[test]
    fn not_a_capture_and_empty() {
        assert!(matches!(read_all(b"").1, Some(CaptureError::Empty)));
        let e = read_all(b"hello world, this is text").1.unwrap();
        assert!(e.is_not_a_capture(), "{e}");
        assert!(read_all(b"ab").1.unwrap().is_not_a_capture());
    }

    #[test]
    fn truncated_inputs_keep_what_was_read() {
        let full = sample_pcap();
        for cut in 0..full.len() {
            let (frames, err) = read_all(&full[..cut]);
            if cut == 24 + 16 + 3 || cut == 24 + 32 + 3 {
                assert!(err.is_none());
            }
            if cut > 24 + 19 && cut < full.len() && err.is_some() {
                assert!(!frames.is_empty());
                assert!(matches!(err, Some(CaptureError::Truncated { .. })));
            }
        }
        let ng = pcapng(None);
        for cut in 0..ng.len() {
            let _ = read_all(&ng[..cut]);
        }
    }

    #[test]
    fn corrupt_lengths_stop_with_a_typed_error() {
        let mut f = sample_pcap();
        f[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let (frames, err) = read_all(&f);
        assert!(frames.is_empty());
        assert!(matches!(err, Some(CaptureError::Corrupt { .. })));
        let mut ng = pcapng(None);
        // Length of the IDB (second block, after a 28-byte SHB).
        ng[28 + 4..28 + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(
            read_all(&ng).1,
            Some(CaptureError::Corrupt { .. })
        ));
        let mut ng = pcapng(None);
        ng[28 + 4..28 + 8].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            read_all(&ng).1,
            Some(CaptureError::Corrupt { .. })
        ));
    }

    #[test]
    fn bit_flips_never_panic() {
        let mut inputs = vec![sample_pcap(), pcapng(Some(6))];
        for base in inputs.clone() {
            for i in 0..base.len() {
                for bit in [0x01u8, 0x80] {
                    let mut m = base.clone();
                    m[i] ^= bit;
                    inputs.push(m);
                }
            }
        }
        for input in inputs {
            let _ = read_all(&input);
        }
    }
}
