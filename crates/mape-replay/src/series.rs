//! Ports in use over time: one [`SamplePoint`] per sample interval, downsampled (the
//! maximum of each pair kept, so peaks survive) to stay under a bounded length. The
//! replayer fills it, the report carries it and the plot draws it.

/// At most this many policies run side by side (one column of a [`SamplePoint`] each).
pub const MAX_POLICIES: usize = 3;

/// One sample: ports in use per policy (max over the sample's bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SamplePoint {
    /// Milliseconds from the first packet.
    pub t_ms: u64,
    /// Ports in use (most pressed protocol), per policy in report order.
    pub used: [u32; MAX_POLICIES],
}

/// Ports in use over time, bounded in length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Samples in time order.
    pub points: Vec<SamplePoint>,
    /// Capture milliseconds one point covers.
    pub point_ms: u64,
    width: u64,
    acc: Option<SamplePoint>,
    acc_n: u64,
    max_points: usize,
}

impl Series {
    pub(crate) fn new(max_points: usize, sample_ms: u64) -> Self {
        Self {
            points: Vec::new(),
            point_ms: sample_ms,
            width: 1,
            acc: None,
            acc_n: 0,
            max_points: max_points.max(16),
        }
    }

    pub(crate) fn add(&mut self, t_ms: u64, used: [u32; MAX_POLICIES]) {
        let acc = self.acc.get_or_insert(SamplePoint { t_ms, used });
        for (a, u) in acc.used.iter_mut().zip(used) {
            *a = (*a).max(u);
        }
        self.acc_n += 1;
        if self.acc_n >= self.width {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some(p) = self.acc.take() {
            self.points.push(p);
        }
        self.acc_n = 0;
        if self.points.len() >= self.max_points {
            // Halve: keep the maximum of each pair so peaks survive.
            let merged = self
                .points
                .chunks(2)
                .map(|c| {
                    let mut p = c[0];
                    if let Some(q) = c.get(1) {
                        for (a, b) in p.used.iter_mut().zip(q.used) {
                            *a = (*a).max(b);
                        }
                    }
                    p
                })
                .collect();
            self.points = merged;
            self.width *= 2;
            self.point_ms *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_downsampling_keeps_peaks_and_bounds_length() {
        let mut s = Series::new(16, 1000);
        for t in 0..1000u64 {
            let v = if t == 500 { 99 } else { 1 };
            s.add(t * 1000, [v, 0, 0]);
        }
        s.flush();
        assert!(s.points.len() <= 16);
        assert_eq!(s.points.iter().map(|p| p.used[0]).max(), Some(99));
        assert!(s.points.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
    }
}
