//! The flow index: a hash index from a flow's key hash to arena ids, laid out so that an
//! established-flow lookup costs one cache miss for the index and one for the session, and
//! so that a batch of lookups can overlap those misses (`FlowIndex::touch`).
//!
//! Each bucket is one 64-byte cache line holding twelve ids, a one-byte tag per id (eight
//! bits of the hash) and an overflow count. Buckets are chosen by multiply-shift range
//! reduction (any bucket count, not only powers of two), collisions probe the next bucket,
//! and the overflow count of every bucket an insert passed over (as in Folly's F14) lets a
//! lookup stop at the first bucket nothing overflowed from, and lets a removal leave no
//! tombstone behind. The index never stores keys: the caller compares the candidate ids
//! against its own arena, which it must read anyway.

use crate::list::NIL;

/// Ids per bucket: 12 × 4 bytes of id + 12 tag bytes + 4 bytes of control = 64 bytes.
const SLOTS: usize = 12;
/// The index grows when more than this share of the slots (numerator / 8) is in use.
const MAX_LOAD_EIGHTHS: usize = 7;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    ids: [u32; SLOTS],
    tags: [u8; SLOTS],
    /// Bit i set: slot i holds an id.
    used: u16,
    /// Items whose probe went on past this bucket (saturating: a saturated count is never
    /// decremented, which only makes lookups probe further than they must).
    overflow: u16,
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

const EMPTY: Bucket = Bucket {
    ids: [NIL; SLOTS],
    tags: [0; SLOTS],
    used: 0,
    overflow: 0,
};

impl Bucket {
    /// The slots whose tag is `tag` (never 0, the tag of an empty slot). The twelve tag
    /// bytes are compared in two words (SWAR): bytes equal to the tag become zero, and
    /// `!((x & 0x7f…) + 0x7f… | x) & 0x80…` marks exactly the zero bytes, with no false
    /// positives.
    #[inline]
    fn matches(&self, tag: u8) -> Matches {
        const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const HI1: u64 = 0x8080_8080_8080_8080;
        let zero_bytes = |x: u64| !(((x & LO7) + LO7) | x) & HI1;
        let splat = u64::from(tag) * 0x0101_0101_0101_0101;
        let mut lo = [0u8; 8];
        lo.copy_from_slice(&self.tags[..8]);
        let mut hi = [0u8; 8];
        hi[..4].copy_from_slice(&self.tags[8..]);
        // The four padding bytes of `hi` are 0 and the tag is not: they never match.
        Matches {
            lo: zero_bytes(u64::from_le_bytes(lo) ^ splat),
            hi: zero_bytes(u64::from_le_bytes(hi) ^ splat),
        }
    }

    #[inline]
    fn free_slot(&self) -> Option<usize> {
        let free = !self.used & ((1u16 << SLOTS) - 1);
        (free != 0).then(|| free.trailing_zeros() as usize)
    }
}

/// A hash → id index (see the module docs). Ids are the caller's arena indices; `NIL` is
/// never stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowIndex {
    buckets: Vec<Bucket>,
    len: usize,
}

/// Eight bits of the hash, 1..=255 (0 marks an empty slot).
#[inline]
fn tag_of(hash: u64) -> u8 {
    (hash as u8).max(1)
}

/// Matching slots of a bucket, lowest first: one marked byte (0x80) per slot in two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Matches {
    lo: u64,
    hi: u64,
}

impl Iterator for Matches {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.lo != 0 {
            let i = self.lo.trailing_zeros() / 8;
            self.lo &= self.lo - 1;
            Some(i as usize)
        } else if self.hi != 0 {
            let i = self.hi.trailing_zeros() / 8 + 8;
            self.hi &= self.hi - 1;
            Some(i as usize)
        } else {
            None
        }
    }
}

impl FlowIndex {
    /// Ids in the index.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the index holds (for the memory-per-session figure).
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    /// The bucket a hash starts its probe at: the high bits of `hash × buckets` (Lemire's
    /// multiply-shift range reduction).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// Reads the home bucket of `hash` and returns a word of it, so that a caller can load
    /// the buckets of a whole batch before it looks any of them up: the loads are
    /// independent and the CPU overlaps their cache misses (a portable, `unsafe`-free
    /// prefetch). Fold the results into a value passed to `std::hint::black_box`.
    #[inline]
    pub(crate) fn touch(&self, hash: u64) -> u32 {
        if self.buckets.is_empty() {
            return 0;
        }
        u32::from(self.buckets[self.home(hash)].used)
    }

    /// The first id in the home bucket of `hash` whose tag matches, without checking it: a
    /// candidate whose arena entry a batch can load early. `NIL` when there is none.
    #[inline]
    pub(crate) fn candidate(&self, hash: u64) -> u32 {
        if self.buckets.is_empty() {
            return NIL;
        }
        let b = &self.buckets[self.home(hash)];
        match b.matches(tag_of(hash)).next() {
            Some(i) => b.ids[i],
            None => NIL,
        }
    }

    /// The id stored under `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let tag = tag_of(hash);
        let mut b = self.home(hash);
        let mut left = self.buckets.len();
        while left > 0 {
            left -= 1;
            let bucket = &self.buckets[b];
            for i in bucket.matches(tag) {
                let id = bucket.ids[i];
                if eq(id) {
                    return Some(id);
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Adds `id` under `hash`. The caller guarantees the key is not present. `rehash` gives
    /// the hash of any id already stored (needed when the index grows).
    pub(crate) fn insert(&mut self, hash: u64, id: u32, rehash: impl Fn(u32) -> u64) {
        debug_assert_ne!(id, NIL);
        if (self.len + 1) * 8 > self.buckets.len() * SLOTS * MAX_LOAD_EIGHTHS {
            self.grow(rehash);
        }
        self.place(hash, id);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, id: u32) {
        let mut b = self.home(hash);
        // Terminates: the load factor keeps at least one free slot.
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(i) = bucket.free_slot() {
                bucket.ids[i] = id;
                bucket.tags[i] = tag_of(hash);
                bucket.used |= 1 << i;
                return;
            }
            bucket.overflow = bucket.overflow.saturating_add(1);
            b = self.next(b);
        }
    }

    fn grow(&mut self, rehash: impl Fn(u32) -> u64) {
        let want = (self.buckets.len() * 2).max(4);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; want]);
        for bucket in &old {
            let mut m = bucket.used;
            while m != 0 {
                let id = bucket.ids[m.trailing_zeros() as usize];
                self.place(rehash(id), id);
                m &= m - 1;
            }
        }
    }

    /// Removes `id`, stored under `hash`. Returns whether it was there.
    pub(crate) fn remove(&mut self, hash: u64, id: u32) -> bool {
        if self.len == 0 {
            return false;
        }
        let tag = tag_of(hash);
        let home = self.home(hash);
        let mut b = home;
        for _ in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            for i in bucket.matches(tag) {
                if bucket.ids[i] == id {
                    bucket.used &= !(1 << i);
                    bucket.ids[i] = NIL;
                    bucket.tags[i] = 0;
                    // Undo the overflow counts the insert left on its way here.
                    let mut p = home;
                    while p != b {
                        let c = &mut self.buckets[p].overflow;
                        if *c != u16::MAX {
                            *c -= 1;
                        }
                        p = self.next(p);
                    }
                    self.len -= 1;
                    return true;
                }
            }
            if bucket.overflow == 0 {
                return false;
            }
            b = self.next(b);
        }
        false
    }

    /// Every stored id (for invariant checks).
    #[cfg(test)]
    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| {
            (0..SLOTS)
                .filter(move |&i| b.used & (1 << i) != 0)
                .map(move |i| b.ids[i])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A weak hash on purpose: many equal tags and homes, so probing and overflow counts
    /// are exercised.
    fn weak(key: u32) -> u64 {
        u64::from(key % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(key % 5)
    }

    #[test]
    fn empty_index_finds_nothing() {
        let ix = FlowIndex::default();
        assert_eq!(ix.find(7, |_| true), None);
        assert_eq!(ix.candidate(7), NIL);
        assert_eq!(ix.touch(7), 0);
        assert_eq!(ix.len(), 0);
    }

    #[test]
    fn one_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn colliding_keys_probe_and_remove_without_tombstones() {
        // 2000 keys with at most 97 distinct hashes: long probe chains.
        let mut ix = FlowIndex::default();
        for k in 0..2000u32 {
            ix.insert(weak(k), k, weak);
        }
        assert_eq!(ix.len(), 2000);
        for k in 0..2000u32 {
            assert_eq!(ix.find(weak(k), |id| id == k), Some(k));
        }
        for k in (0..2000u32).step_by(2) {
            assert!(ix.remove(weak(k), k));
            assert!(!ix.remove(weak(k), k), "removed twice");
        }
        for k in 0..2000u32 {
            let want = (k % 2 == 1).then_some(k);
            assert_eq!(ix.find(weak(k), |id| id == k), want);
        }
        // After removing everything, every overflow count is back to zero.
        for k in (1..2000u32).step_by(2) {
            assert!(ix.remove(weak(k), k));
        }
        assert_eq!(ix.len(), 0);
        assert!(ix.buckets.iter().all(|b| b.overflow == 0 && b.used == 0));
    }

    #[test]
    fn load_stays_under_seven_eighths_and_memory_is_small() {
        let mut ix = FlowIndex::default();
        let h = |k: u32| {
            u64::from(k)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17)
        };
        for k in 0..100_000u32 {
            ix.insert(h(k), k, h);
        }
        let slots = ix.buckets.len() * SLOTS;
        assert!(ix.len() * 8 <= slots * 7);
        // 100 k ids in 2^14 buckets of 64 bytes: 10.5 bytes per id.
        assert_eq!(ix.buckets.len(), 1 << 14);
        assert!(ix.bytes() <= 11 * 100_000);
    }

    proptest! {
        #[test]
        fn swar_matches_agree_with_a_byte_loop(
            // Few distinct values, so that many bytes match; 0 (empty) and 0x80/0xff among them.
            tags in proptest::array::uniform12(prop_oneof![0u8..3, 0x7fu8..0x82, Just(0xffu8)]),
            tag in prop_oneof![1u8..3, 0x7fu8..0x82, Just(0xffu8)],
        ) {
            let b = Bucket { tags, ..EMPTY };
            let want: Vec<usize> = (0..SLOTS).filter(|&i| tags[i] == tag).collect();
            prop_assert_eq!(b.matches(tag).collect::<Vec<_>>(), want);
        }

        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec((any::<bool>(), 0u32..300), 0..600)) {
            let mut ix = FlowIndex::default();
            let mut model: HashMap<u32, ()> = HashMap::new();
            for (insert, k) in ops {
                if insert {
                    if model.insert(k, ()).is_none() {
                        ix.insert(weak(k), k, weak);
                    }
                } else {
                    prop_assert_eq!(ix.remove(weak(k), k), model.remove(&k).is_some());
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for k in 0..300u32 {
                prop_assert_eq!(ix.find(weak(k), |id| id == k).is_some(), model.contains_key(&k));
            }
            let mut ids: Vec<u32> = ix.ids().collect();
            ids.sort_unstable();
            let mut want: Vec<u32> = model.keys().copied().collect();
            want.sort_unstable();
            prop_assert_eq!(ids, want);
        }
    }
}
