//! Never a silent outage (issue #12, items 1): a dead or stuck datapath must end the
//! process so that the supervisor (systemd `Restart=always`) brings IPv4 back.
//!
//! - **Panics.** [`install_panic_hook`] makes any panic, in any thread, log itself and end
//!   the process at once with [`EXIT_DATAPATH`]. A panicking datapath thread would
//!   otherwise poison the pipeline mutex, every other worker would stop, and the default
//!   route would go on pointing into a TUN nobody reads: a blackhole that looks healthy.
//!   Exiting from the hook (rather than `panic = "abort"` in the release profile) keeps a
//!   distinct exit status for the journal and for tests, applies only to `mape run` (not to
//!   `mape top`, which must restore the terminal, nor to the test harness), and works the
//!   same in debug and release builds. The TUN is not persistent, so the kernel removes it
//!   and every route through it when the process dies; what outlives the process (the
//!   `unreachable` route, proxy NDP entries, sysctls) is recorded in the state directory
//!   and removed by the next start.
//! - **Progress.** Each worker bumps its [`Heartbeats`] slot on every loop iteration,
//!   including an idle poll timeout (100 ms). The control loop sends the systemd watchdog
//!   ping (`WATCHDOG=1`, sd_notify(3), systemd.service(5) `WatchdogSec=`) only while every
//!   worker has beaten within the last half watchdog period, so a worker stuck in a loop or
//!   a deadlock makes systemd kill and restart the daemon after `WatchdogSec=`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Exit status after a panic or a datapath worker that stopped: EX_SOFTWARE of
/// sysexits(3), "an internal software error has been detected".
pub const EXIT_DATAPATH: u8 = 70;
/// Exit status of a start refused because another daemon owns the lock, the control
/// socket or the TUN (nothing was touched).
pub const EXIT_IN_USE: u8 = 3;

/// Makes every panic fatal for the whole process: the default hook prints the message
/// (and a backtrace under `RUST_BACKTRACE`), then one structured log line says why the
/// daemon stops, then the process exits with [`EXIT_DATAPATH`] without unwinding, so no
/// other thread ever sees a poisoned lock.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("?"),
            location = %location,
            exit = EXIT_DATAPATH,
            "panic: mape exits now so that its supervisor restarts it (no silent blackhole)"
        );
        std::process::exit(i32::from(EXIT_DATAPATH));
    }));
}

/// One progress counter per datapath worker: milliseconds since the daemon's start at the
/// worker's last loop iteration.
#[derive(Debug)]
pub struct Heartbeats {
    start: Instant,
    beats: Box<[AtomicU64]>,
}

impl Heartbeats {
    /// `workers` slots, all fresh now.
    pub fn new(workers: usize, start: Instant) -> Self {
        let now = start.elapsed().as_millis() as u64;
        Self {
            start,
            beats: (0..workers).map(|_| AtomicU64::new(now)).collect(),
        }
    }

    /// Worker `i` made progress.
    pub fn beat(&self, i: usize) {
        if let Some(b) = self.beats.get(i) {
            b.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// The worker that has gone longest without a beat, if that is longer than `max_age`:
    /// its index and how long.
    pub fn stalest(&self, max_age: Duration) -> Option<(usize, Duration)> {
        let now = self.start.elapsed().as_millis() as u64;
        self.beats
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    i,
                    Duration::from_millis(now.saturating_sub(b.load(Ordering::Relaxed))),
                )
            })
            .max_by_key(|&(_, age)| age)
            .filter(|&(_, age)| age > max_age)
    }
}

/// The service manager's notification socket (sd_notify(3)); all calls are no-ops when
/// `NOTIFY_SOCKET` is unset, e.g. outside systemd.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    /// `WATCHDOG_USEC` when the watchdog is on for this process.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC`/`WATCHDOG_PID` (sd_watchdog_enabled(3)).
    pub fn from_env() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// How often the control loop checks the workers and pings: half the watchdog period
    /// (sd_watchdog_enabled(3) recommends pinging at half of it), at least every 50 ms.
    pub fn period(&self) -> Option<Duration> {
        self.watchdog
            .map(|d| (d / 2).max(Duration::from_millis(50)))
    }

    fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// `READY=1` with a status line: set-up is complete and packets flow.
    pub fn ready(&self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// `WATCHDOG=1`.
    pub fn ping(&self) {
        self.send(&[sd_notify::NotifyState::Watchdog]);
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[sd_notify::NotifyState::Stopping]);
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_without_beats_is_the_stalest() {
        let start = Instant::now() - Duration::from_secs(10);
        let h = Heartbeats::new(3, start);
        // All slots were set "now" (10 s after start); age ~0.
        assert!(h.stalest(Duration::from_millis(500)).is_none());
        // Force slot 1 back to the start.
        h.beats[1].store(0, Ordering::Relaxed);
        let (i, age) = h.stalest(Duration::from_millis(500)).expect("stale");
        assert_eq!(i, 1);
        assert!(age >= Duration::from_secs(9), "{age:?}");
        h.beat(1);
        assert!(h.stalest(Duration::from_millis(500)).is_none());
        h.beat(99); // out of range: ignored
    }

    #[test]
    fn the_check_period_is_half_the_watchdog() {
        let n = Notifier {
            watchdog: Some(Duration::from_secs(4)),
        };
        assert_eq!(n.period(), Some(Duration::from_secs(2)));
        let n = Notifier {
            watchdog: Some(Duration::from_millis(20)),
        };
        assert_eq!(n.period(), Some(Duration::from_millis(50)));
        assert_eq!(Notifier { watchdog: None }.period(), None);
    }
}
