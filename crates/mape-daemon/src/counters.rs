//! Counters of the io shell itself (TUN reads and writes), shared by the datapath workers,
//! the control socket and the metrics scrape.

use std::sync::atomic::{AtomicU64, Ordering};

use mape_control::reply::IoStatus;

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

impl IoCounters {
    /// The counters as they are now.
    pub fn snapshot(&self) -> IoStatus {
        IoStatus {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_errors: self.tx_errors.load(Ordering::Relaxed),
            rx_errors: self.rx_errors.load(Ordering::Relaxed),
        }
    }
}
