//! The datapath threads: one plain thread per TUN queue, reading a batch of packets per
//! wake-up into reused buffers, reading the clock once per batch, handing the packets to
//! the sans-IO pipeline and writing what it emits back into the TUN (the kernel routes
//! IPv4 to the LAN and IPv6 to the WAN). No allocation per packet once warm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{now_since, until};
use crate::counters::IoCounters;
use crate::pipeline::Shared;
use crate::tun::{TunQueue, Wake};

/// Packets read per wake-up at most: enough for the NAT engine's batched lookups to
/// overlap their cache misses (`cargo bench -p mape-nat --bench engine -- batch64`), few
/// enough that a batch costs microseconds.
const BATCH: usize = 64;
const MAX_PACKET: usize = 65_536;
/// Longest sleep between two wake-ups with no packet: the heartbeat's period, and how late
/// a timer with no deadline known yet (reassembly, rate-limit refill) can run.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Output packets of one batch, in one reused arena.
struct OutBatch {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl OutBatch {
    fn push(&mut self, p: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(p);
        self.spans.push((start, p.len()));
    }
}

/// What a worker shares with the control loop.
#[derive(Clone)]
pub struct WorkerCtx {
    /// Signalled on stop.
    pub wake: Arc<Wake>,
    /// Set on stop.
    pub stop: Arc<AtomicBool>,
    /// The pipeline.
    pub shared: Shared,
    /// The pipeline's clock origin (`control::Context::start`).
    pub start: Instant,
    /// io counters.
    pub counters: Arc<IoCounters>,
    /// Progress, one slot per worker (the watchdog pings only while all are fresh).
    pub heartbeats: Arc<crate::supervise::Heartbeats>,
}

/// Runs worker `index` on `queue` until `stop` is set and `wake` signalled. Returning
/// before that is a failure the control loop turns into an exit (the supervisor restarts
/// the daemon); a panic ends the process at once (crate::supervise).
pub fn worker(index: usize, queue: &TunQueue, ctx: WorkerCtx) {
    let WorkerCtx {
        wake,
        stop,
        shared,
        start,
        counters,
        heartbeats,
    } = ctx;
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_PACKET]).collect();
    let mut lens = [0usize; BATCH];
    let mut out = OutBatch {
        bytes: Vec::with_capacity(BATCH * 2048),
        spans: Vec::with_capacity(BATCH * 2),
    };
    let mut next_deadline = None;
    let mut sleep = IDLE_WAKE;
    while !stop.load(Ordering::Relaxed) {
        // Progress: every iteration, also after an idle poll timeout (at most IDLE_WAKE).
        heartbeats.beat(index);
        #[cfg(feature = "failpoints")]
        crate::failpoint::check(index, &stop);
        if let Err(e) = queue.wait(std::os::fd::AsFd::as_fd(&*wake), sleep_ms(sleep)) {
            tracing::error!(worker = index, error = %e, "poll on the TUN failed; worker stops");
            break;
        }
        let mut n = 0;
        while n < BATCH {
            match queue.read(&mut bufs[n]) {
                Ok(Some(len)) if len > 0 => {
                    lens[n] = len;
                    n += 1;
                }
                Ok(_) => break,
                Err(e) => {
                    counters.rx_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "TUN read");
                    break;
                }
            }
        }
        let now = now_since(start);
        let sweep = {
            let Ok(mut p) = shared.lock() else {
                tracing::error!(worker = index, "pipeline lock poisoned; worker stops");
                break;
            };
            // Idle, or a session timer fell due while packets kept coming.
            if n == 0 || next_deadline.is_some_and(|d| d <= now) {
                p.tick(now);
            }
            let mut batch: [&[u8]; BATCH] = [&[]; BATCH];
            for (slot, (buf, &len)) in batch.iter_mut().zip(bufs.iter().zip(&lens)).take(n) {
                *slot = &buf[..len];
            }
            p.process_batch(now, &batch[..n], &mut |pkt| out.push(pkt));
            // Sleep until the next session timer is due, not a fixed period past it.
            next_deadline = p.next_deadline();
            sleep = next_deadline.map_or(IDLE_WAKE, |d| until(now, d).min(IDLE_WAKE));
            p.sweep_job()
        };
        counters.rx_packets.fetch_add(n as u64, Ordering::Relaxed);
        for &(s, l) in &out.spans {
            match queue.write(&out.bytes[s..s + l]) {
                Ok(()) => counters.tx_packets.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.tx_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        out.bytes.clear();
        out.spans.clear();
        // The fast path's once-a-second read of its maps, with the lock released: the
        // other workers go on meanwhile; only the fold takes the lock again.
        if let Some(job) = sweep {
            let swept = job.run();
            let Ok(mut p) = shared.lock() else {
                tracing::error!(worker = index, "pipeline lock poisoned; worker stops");
                break;
            };
            p.sweep_done(now_since(start), swept);
        }
    }
}

/// A poll timeout in whole milliseconds, rounded up so that a timer due in 0.4 ms does not
/// turn into a busy loop of zero-length polls.
fn sleep_ms(d: Duration) -> i32 {
    let ms = d.as_micros().div_ceil(1000).max(1);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_and_never_spin() {
        assert_eq!(sleep_ms(Duration::ZERO), 1);
        assert_eq!(sleep_ms(Duration::from_micros(400)), 1);
        assert_eq!(sleep_ms(Duration::from_micros(1_200)), 2);
        assert_eq!(sleep_ms(IDLE_WAKE), 100);
        assert_eq!(sleep_ms(Duration::from_secs(1 << 40)), i32::MAX);
        let now = mape_nat::Timestamp::from_millis(5_000);
        assert_eq!(
            until(now, mape_nat::Timestamp::from_millis(5_250)),
            Duration::from_millis(250)
        );
        assert_eq!(
            until(now, mape_nat::Timestamp::from_millis(4_000)),
            Duration::ZERO
        );
    }
}
