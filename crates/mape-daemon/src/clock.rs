//! The pipeline's clock: milliseconds since the daemon's start, read once per batch.

use std::time::{Duration, Instant};

use mape_nat::Timestamp;

/// Milliseconds since the daemon's start: the pipeline's clock.
pub fn now_since(start: Instant) -> Timestamp {
    Timestamp::from_millis(start.elapsed().as_millis() as u64)
}

/// How long from `now` until `deadline` (zero when it has passed).
pub fn until(now: Timestamp, deadline: Timestamp) -> Duration {
    Duration::from_millis(deadline.millis().saturating_sub(now.millis()))
}
