//! The datapath threads: one plain thread per TUN queue, reading a batch of packets per
//! wake-up into reused buffers, reading the clock once per batch, handing the packets to
//! the sans-IO pipeline and writing what it emits back into the TUN (the kernel routes
//! IPv4 to the LAN and IPv6 to the WAN). No allocation per packet once warm.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mape_nat::Timestamp;

use crate::tun::{TunQueue, Wake};

/// What the daemon runs on each packet: the CE or the BR pipeline.
pub trait Pipeline: Send {
    /// Processes the packets of one read batch, in order; `emit` receives every packet to
    /// write back. A batch lets the pipeline overlap the cache misses of its NAT lookups.
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8]));
    /// Time passes with no packet (expiry, rate-limit refill).
    fn tick(&mut self, now: Timestamp);
    /// A JSON status for the control socket.
    fn status(&self, now: Timestamp) -> serde_json::Value;
    /// Answers a control request other than `status` (`None`: unknown command).
    fn query(
        &mut self,
        now: Timestamp,
        cmd: &str,
        args: &serde_json::Value,
    ) -> Option<serde_json::Value>;
    /// Applies a reloaded configuration file (SIGHUP); returns what changed.
    fn reload(
        &mut self,
        now: Timestamp,
        settings: &crate::config::Settings,
    ) -> Result<String, String>;
    /// Fills a metrics scrape.
    fn metrics(&self, now: Timestamp, m: &mut crate::metrics::Metrics);
    /// Events to log (budget thresholds, culprits, ...), drained.
    fn drain_events(&mut self) -> Vec<serde_json::Value>;
}

/// The shared pipeline. Workers take the lock once per batch, not per packet.
pub type Shared = Arc<Mutex<Box<dyn Pipeline>>>;

/// Counters of the io shell itself.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Packets read from the TUN.
    pub rx_packets: AtomicU64,
    /// Packets written to the TUN.
    pub tx_packets: AtomicU64,
    /// Writes the kernel refused.
    pub tx_errors: AtomicU64,
    /// Read errors.
    pub rx_errors: AtomicU64,
}

/// Milliseconds since the daemon's start: the pipeline's clock.
pub fn now_since(start: Instant) -> Timestamp {
    Timestamp::from_millis(start.elapsed().as_millis() as u64)
}

/// Packets read per wake-up at most: enough for the NAT engine's batched lookups to
/// overlap their cache misses (`cargo bench -p mape-nat --bench engine -- batch64`), few
/// enough that a batch costs microseconds.
const BATCH: usize = 64;
const MAX_PACKET: usize = 65_536;

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
    /// Daemon start: the pipeline's clock.
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
    while !stop.load(Ordering::Relaxed) {
        // Progress: every iteration, also after an idle poll timeout (at most 100 ms).
        heartbeats.beat(index);
        #[cfg(feature = "failpoints")]
        crate::failpoint::check(index, &stop);
        if let Err(e) = queue.wait(std::os::fd::AsFd::as_fd(&*wake), 100) {
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
        {
            let Ok(mut p) = shared.lock() else {
                tracing::error!(worker = index, "pipeline lock poisoned; worker stops");
                break;
            };
            if n == 0 {
                p.tick(now);
            }
            let mut batch: [&[u8]; BATCH] = [&[]; BATCH];
            for (slot, (buf, &len)) in batch.iter_mut().zip(bufs.iter().zip(&lens)).take(n) {
                *slot = &buf[..len];
            }
            p.process_batch(now, &batch[..n], &mut |pkt| out.push(pkt));
        }
        counters.rx_packets.fetch_add(n as u64, Ordering::Relaxed);
        for &(s, l) in &out.spans {
            match queue.write(&out.bytes[s..s + l]) {
                Ok(()) => counters.tx_packets.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.tx_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        out.bytes.clear();
        out.spans.clear();
    }
}
