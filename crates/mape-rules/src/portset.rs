//! The set of transport ports a CE may use on a shared IPv4 address (RFC 7597 §5.1).
//!
//! A 16-bit port is split as `A (a bits) | PSID (k bits) | j (m bits)` with
//! `m = 16 - a - k` (RFC 7597 §5.1, Figure 2). A CE owns every port whose PSID field equals
//! its PSID, except those with `A = 0` when `a > 0` (the well-known ports).

use core::fmt;

/// Why a port set could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortSetError {
    /// `a + k` exceeds 16 bits.
    #[error("PSID offset {offset} + PSID length {psid_len} exceed 16 bits")]
    TooManyBits {
        /// PSID offset `a`.
        offset: u8,
        /// PSID length `k`.
        psid_len: u8,
    },
    /// The PSID does not fit in `k` bits.
    #[error("PSID {psid} does not fit in {psid_len} bits")]
    PsidTooLarge {
        /// The PSID given.
        psid: u16,
        /// PSID length `k`.
        psid_len: u8,
    },
}

/// An inclusive range of ports, `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// A range always holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A MAP-E port set: PSID `psid` of length `k` at offset `a` (RFC 7597 §5.1).
///
/// The shifts and masks are computed once here, so per-packet checks are a shift, a mask and
/// a compare (as VPP's `map_domain_t` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSet {
    psid: u16,
    psid_len: u8,
    offset: u8,
    /// `m = 16 - a - k`: the number of contiguous bits `j` in each range.
    m: u8,
}

impl PortSet {
    /// Builds the port set of `psid` with PSID length `k = psid_len` and offset `a = offset`.
    pub fn new(psid: u16, psid_len: u8, offset: u8) -> Result<Self, PortSetError> {
        if u16::from(offset) + u16::from(psid_len) > 16 {
            return Err(PortSetError::TooManyBits { offset, psid_len });
        }
        if psid_len < 16 && u32::from(psid) >= (1u32 << psid_len) {
            return Err(PortSetError::PsidTooLarge { psid, psid_len });
        }
        Ok(Self {
            psid,
            psid_len,
            offset,
            m: 16 - offset - psid_len,
        })
    }

    /// Every port, 0–65535: an address that is not shared (k = 0, RFC 7597 §5.2, App. A ex. 4).
    pub fn all() -> Self {
        Self {
            psid: 0,
            psid_len: 0,
            offset: 0,
            m: 16,
        }
    }

    /// The PSID.
    pub fn psid(&self) -> u16 {
        self.psid
    }

    /// The PSID length `k`.
    pub fn psid_len(&self) -> u8 {
        self.psid_len
    }

    /// The PSID offset `a`.
    pub fn offset(&self) -> u8 {
        self.offset
    }

    /// Ports per contiguous range: `2^m`.
    pub fn range_len(&self) -> u32 {
        1u32 << self.m
    }

    /// Number of contiguous ranges: `2^a - 1` for `a > 0`, one for `a = 0`.
    pub fn range_count(&self) -> u32 {
        if self.offset == 0 {
            1
        } else {
            (1u32 << self.offset) - 1
        }
    }

    /// Number of ports in the set: `(2^a - 1) * 2^m` for `a > 0`, `2^m` for `a = 0`.
    pub fn count(&self) -> u32 {
        self.range_count() * self.range_len()
    }

    /// The PSID that `port` carries under this set's `a` and `k` (RFC 7597 §5.1).
    pub fn psid_of(&self, port: u16) -> u16 {
        if self.psid_len == 0 {
            return 0;
        }
        let mask = ((1u32 << self.psid_len) - 1) as u16;
        ((u32::from(port) >> self.m) as u16) & mask
    }

    /// Whether `port` belongs to this set. With `a > 0`, ports with `A = 0` are excluded.
    pub fn contains(&self, port: u16) -> bool {
        if self.offset > 0 && (port >> (16 - self.offset)) == 0 {
            return false;
        }
        self.psid_of(port) == self.psid
    }

    /// The `i`-th port of the set in ascending order, or `None` past the end.
    pub fn nth(&self, i: u32) -> Option<u16> {
        if i >= self.count() {
            return None;
        }
        let block = i >> self.m;
        let j = i & (self.range_len() - 1);
        let a_field = if self.offset == 0 { 0 } else { block + 1 };
        let port =
            (a_field << (16 - u32::from(self.offset))) | (u32::from(self.psid) << self.m) | j;
        Some(port as u16)
    }

    /// The position of `port` in ascending order (the inverse of [`PortSet::nth`]).
    pub fn index_of(&self, port: u16) -> Option<u32> {
        if !self.contains(port) {
            return None;
        }
        let j = u32::from(port) & (self.range_len() - 1);
        let block = if self.offset == 0 {
            0
        } else {
            (u32::from(port) >> (16 - u32::from(self.offset))) - 1
        };
        Some((block << self.m) | j)
    }

    /// The contiguous ranges of the set, in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = PortRange> + '_ {
        let len = self.range_len();
        (0..self.range_count()).filter_map(move |b| {
            let start = self.nth(b * len)?;
            let end = self.nth(b * len + len - 1)?;
            Some(PortRange { start, end })
        })
    }

    /// Every port of the set, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.count()).filter_map(move |i| self.nth(i))
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "psid {} (k={}, a={}): {} ports in {} ranges of {}",
            self.psid,
            self.psid_len,
            self.offset,
            self.count(),
            self.range_count(),
            self.range_len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7597 Appendix A, example 1: a = 6, k = 8, PSID 0x34 → 63 ranges of 4 ports.
    #[test]
    fn rfc7597_appendix_a_example_1_ports() {
        let set = PortSet::new(0x34, 8, 6).unwrap();
        assert_eq!(set.count(), 252);
        let ranges: Vec<_> = set.ranges().collect();
        assert_eq!(ranges.len(), 63);
        assert_eq!(
            ranges[0],
            PortRange {
                start: 1232,
                end: 1235
            }
        );
        assert_eq!(
            ranges[1],
            PortRange {
                start: 2256,
                end: 2259
            }
        );
        assert_eq!(
            ranges[61],
            PortRange {
                start: 63696,
                end: 63699
            }
        );
        assert_eq!(
            ranges[62],
            PortRange {
                start: 64720,
                end: 64723
            }
        );
    }

    /// The v6plus shape (mape-facts §4): a = 4, k = 8, PSID 161 → 15 ranges of 16.
    #[test]
    fn v6plus_shape() {
        let set = PortSet::new(161, 8, 4).unwrap();
        assert_eq!(set.count(), 240);
        let r: Vec<_> = set.ranges().collect();
        assert_eq!(r.len(), 15);
        assert_eq!(
            r[0],
            PortRange {
                start: 6672,
                end: 6687
            }
        );
        assert_eq!(
            r[1],
            PortRange {
                start: 10768,
                end: 10783
            }
        );
        assert_eq!(
            r[14],
            PortRange {
                start: 64016,
                end: 64031
            }
        );
    }

    #[test]
    fn all_ports() {
        let set = PortSet::all();
        assert_eq!(set.count(), 65536);
        assert!(set.contains(0) && set.contains(65535));
        assert_eq!(set.ranges().count(), 1);
    }

    #[test]
    fn offset_zero_has_one_range_and_may_hold_port_zero() {
        let set = PortSet::new(0, 4, 0).unwrap();
        assert_eq!(
            set.ranges().collect::<Vec<_>>(),
            vec![PortRange {
                start: 0,
                end: 4095
            }]
        );
        let set = PortSet::new(15, 4, 0).unwrap();
        assert_eq!(set.nth(0), Some(61440));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(
            PortSet::new(0, 12, 6),
            Err(PortSetError::TooManyBits {
                offset: 6,
                psid_len: 12
            })
        );
        assert_eq!(
            PortSet::new(256, 8, 4),
            Err(PortSetError::PsidTooLarge {
                psid: 256,
                psid_len: 8
            })
        );
        // k = 16, a = 0: one port per PSID, every PSID valid.
        let one = PortSet::new(65535, 16, 0).unwrap();
        assert_eq!(one.count(), 1);
        assert_eq!(one.nth(0), Some(65535));
    }

    fn shape() -> impl Strategy<Value = (u8, u8)> {
        (0u8..=8).prop_flat_map(|a| (Just(a), 0u8..=(16 - a).min(10)))
    }

    proptest! {
        #[test]
        fn count_formula((a, k) in shape(), psid_seed in any::<u16>()) {
            let psid = if k == 0 { 0 } else { psid_seed % (1u16 << k) };
            let set = PortSet::new(psid, k, a).unwrap();
            let m = 16 - u32::from(a) - u32::from(k);
            let want = if a > 0 { ((1u32 << a) - 1) << m } else { 1u32 << m };
            prop_assert_eq!(set.count(), want);
            prop_assert_eq!(set.iter().count() as u32, want);
        }

        #[test]
        fn contains_agrees_with_iteration_and_index((a, k) in shape(), psid_seed in any::<u16>()) {
            let psid = if k == 0 { 0 } else { psid_seed % (1u16 << k) };
            let set = PortSet::new(psid, k, a).unwrap();
            let mut members = vec![false; 65536];
            let mut prev: Option<u16> = None;
            for (i, p) in set.iter().enumerate() {
                if let Some(q) = prev { prop_assert!(p > q, "ascending"); }
                prev = Some(p);
                members[usize::from(p)] = true;
                prop_assert_eq!(set.index_of(p), Some(i as u32));
            }
            for port in 0..=u16::MAX {
                prop_assert_eq!(set.contains(port), members[usize::from(port)]);
            }
            let in_ranges: u32 = set.ranges().map(|r| r.len()).sum();
            prop_assert_eq!(in_ranges, set.count());
        }

        /// All PSIDs together are disjoint and cover every port ≥ 2^(16-a).
        #[test]
        fn psids_partition_the_ports((a, k) in (0u8..=6).prop_flat_map(|a| (Just(a), 0u8..=(8 - a / 2)))) {
            let mut owner = vec![0u32; 65536];
            for psid in 0..(1u32 << k) {
                let set = PortSet::new(psid as u16, k, a).unwrap();
                for p in set.iter() {
                    owner[usize::from(p)] += 1;
                }
            }
            let first = if a == 0 { 0 } else { 1usize << (16 - a) };
            for (port, n) in owner.iter().enumerate() {
                let want = u32::from(port >= first);
                prop_assert_eq!(*n, want, "port {}", port);
            }
        }
    }
}
