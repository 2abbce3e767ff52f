//! A small deterministic generator (SplitMix64) for the built-in scenarios: the same seed
//! gives the same traffic on every machine and every release.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for traffic models.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (returns `lo` when `hi < lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        lo + self.next_u64() % span
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with mean `mean` (same unit), at least 1.
    pub(crate) fn exp(&mut self, mean: f64) -> u64 {
        let u = self.unit().max(1e-12);
        ((-u.ln()) * mean).round().max(1.0) as u64
    }

    /// An element of a non-empty slice (the first one for an empty slice is never asked).
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        if items.is_empty() {
            return fallback;
        }
        let i = (self.next_u64() % items.len() as u64) as usize;
        items.get(i).copied().unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(8);
        assert_ne!(Rng::new(7).next_u64(), c.next_u64());
    }

    #[test]
    fn range_and_exp_stay_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let x = r.range(10, 20);
            assert!((10..=20).contains(&x));
            assert!(r.exp(5.0) >= 1);
        }
        assert_eq!(r.range(5, 5), 5);
        assert_eq!(r.range(6, 5), 6);
    }
}
