//! What the daemon runs on each packet, as the datapath threads, the control socket and
//! the metrics scrape see it: the [`Pipeline`] trait, the lock it sits behind ([`Shared`]),
//! and its errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mape_control::reply::{Flow, Status};
use mape_control::{Request, SessionQuery};
use mape_dataplane::{CeError, DropCounters, FnSink, Sink};
use mape_nat::{Event, Nat, SessionInfo, Timestamp};
use serde_json::Value;

use crate::config::{FastPathMode, Settings};
use crate::fastpath::{FastPath, SweepJob, Swept};
use crate::metrics::Metrics;
use mape_control::reply::FastPathStatus;
use mape_fastpath::FastPathError;

/// What the daemon runs on each packet: the CE or the BR pipeline.
pub trait Pipeline: Send {
    /// Processes the packets of one read batch, in order; `emit` receives every packet to
    /// write back. A batch lets the pipeline overlap the cache misses of its NAT lookups.
    fn process_batch(&mut self, now: Timestamp, packets: &[&[u8]], emit: &mut dyn FnMut(&[u8]));
    /// Time passes with no packet (expiry, rate-limit refill).
    fn tick(&mut self, now: Timestamp);
    /// The read of the kernel fast path's maps a [`Pipeline::tick`] found due, for the
    /// caller to run with the lock released ([`SweepJob::run`]) and hand back to
    /// [`Pipeline::sweep_done`]; `None` when none is due.
    fn sweep_job(&mut self) -> Option<SweepJob> {
        None
    }
    /// Folds what a [`SweepJob`] read into the engine.
    fn sweep_done(&mut self, _now: Timestamp, _swept: Swept) {}
    /// When the next session timer falls due (`None`: none is pending); the datapath
    /// sleeps no longer than that before it calls [`Pipeline::tick`].
    fn next_deadline(&self) -> Option<Timestamp>;
    /// The status for the control socket. `uptime_s` and `io` are the io shell's to fill.
    fn status(&self, now: Timestamp) -> Status;
    /// Answers a request other than status, reload and failpoint (`None`: this pipeline
    /// has no answer to it).
    fn query(&mut self, now: Timestamp, req: &Request) -> Option<Value>;
    /// One bounded step of the `sessions` answer: at most `scan` slots of the session table
    /// from slot `from` on, their matching rows appended to `rows` (see
    /// [`mape_nat::Nat::sessions_page`]). `None`: this pipeline keeps no sessions.
    fn sessions_page(
        &self,
        _now: Timestamp,
        _q: &SessionQuery,
        _from: usize,
        _scan: usize,
        _rows: &mut Vec<SessionInfo>,
    ) -> Option<SessionsStep> {
        None
    }
    /// Applies a reloaded configuration file (SIGHUP); returns what changed. A refusal
    /// leaves the pipeline as it was.
    fn reload(&mut self, now: Timestamp, settings: &Settings) -> Result<String, ReloadRefusal>;
    /// Puts new MAP parameters in force in place (`crate::daemon` when a provisioning
    /// source gives another rule): see [`mape_dataplane::Ce::reprovision`]. The BR has no
    /// such change.
    fn reprovision(
        &mut self,
        _now: Timestamp,
        _settings: &Settings,
    ) -> Result<mape_dataplane::Reprovisioned, ReloadRefusal> {
        Err(ReloadRefusal::BrChanged)
    }
    /// MAP-E stops (`true`: the rule's source went away, the DHCPv6 lease ended) or runs
    /// again (`false`): the kernel fast path is detached meanwhile, so that no flow it holds
    /// goes on bypassing the removed routes, and comes back on resume. The BR has no such
    /// state.
    fn pause(&mut self, _paused: bool) {}
    /// Copies what a metrics scrape exports (bounded work: no per-session or
    /// per-destination walk), to be written out by the returned closure once the lock is
    /// released.
    fn metrics(&self, now: Timestamp) -> MetricsFill;
    /// Budget events to log (thresholds, culprits, ...), drained.
    fn drain_events(&mut self) -> Vec<Event>;
    /// The NAT engine whose session table outlives a restart (`crate::sessions_file`);
    /// `None` for a pipeline that keeps no sessions (the BR is stateless).
    fn nat(&self) -> Option<&Nat> {
        None
    }
    /// [`Pipeline::nat`], to restore into.
    fn nat_mut(&mut self) -> Option<&mut Nat> {
        None
    }
    /// Loads and attaches the kernel fast path as `plan` says (`crate::fastpath`); on
    /// error nothing stays attached and the pipeline runs the TUN path alone.
    fn start_fast_path(&mut self, plan: &FastPathPlan) -> Result<(), FastPathError>;
    /// Records why the pipeline runs no fast path.
    fn no_fast_path(&mut self, why: FastPath);
    /// Detaches the fast path (stop).
    fn stop_fast_path(&mut self);
    /// The fast path as `show status` tells it.
    fn fast_path_status(&self) -> FastPathStatus;
}

/// Where and how the fast path comes up.
#[derive(Debug, Clone)]
pub struct FastPathPlan {
    /// As configured.
    pub mode: FastPathMode,
    /// The Ethernet interfaces to attach to (name, index), WAN included.
    pub links: Vec<(String, u32)>,
    /// CE: the WAN interface's index.
    pub wan: Option<u32>,
    /// CLOCK_MONOTONIC (ns) at pipeline time 0.
    pub origin_ns: u64,
    /// Most flows (`[datapath] fast_path_entries`).
    pub entries: u32,
}

/// A scrape's numbers, copied under the lock, written into [`Metrics`] outside it.
pub type MetricsFill = Box<dyn FnOnce(&mut Metrics) + Send>;

/// Where a [`Pipeline::sessions_page`] step left the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsStep {
    /// More slots to look at, from this one.
    Next(usize),
    /// The table or the limit is done.
    Done,
}

/// The shared pipeline. Workers take the lock once per batch, not per packet.
pub type Shared = Arc<Mutex<Box<dyn Pipeline>>>;

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The dataplane refused the configuration.
    #[error("{0}")]
    Dataplane(#[from] CeError),
}

/// Why a pipeline refused a reloaded configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefusal {
    /// The file now asks for the other role.
    #[error("mode changed from {0}; restart the daemon")]
    RoleChanged(&'static str),
    /// The CE's MAP parameters changed.
    #[error("MAP parameters changed (prefix or rule); restart the daemon to apply")]
    MapChanged,
    /// The BR's address or rules changed.
    #[error("BR address or rules changed; restart the daemon")]
    BrChanged,
    /// The NAT engine refused the new policy.
    #[error("{0}")]
    Nat(#[from] mape_nat::ConfigError),
    /// The dataplane refused the new MAP parameters.
    #[error("{0}")]
    Dataplane(#[from] CeError),
}

/// A sink that writes every packet back into the TUN (the kernel routes IPv4 to the LAN
/// and IPv6 to the WAN, so the direction does not matter here).
pub(crate) fn tun_sink<'a>(emit: &'a mut dyn FnMut(&[u8])) -> impl Sink + 'a {
    FnSink(move |_dir, packet: &[u8]| emit(packet))
}

/// A dataplane traffic counter as the status shows it.
pub(crate) fn flow(t: mape_dataplane::Traffic) -> Flow {
    Flow {
        packets: t.packets,
        bytes: t.bytes,
    }
}

/// Non-zero drop counters by name (the same names as logs and metrics).
pub(crate) fn drops_by_name(d: &DropCounters) -> BTreeMap<String, u64> {
    d.nonzero()
        .map(|(r, n)| (r.as_str().to_string(), n))
        .collect()
}

/// Drops by reason, every reason, as the `mape_drops` counter.
pub(crate) fn drop_metrics(d: &DropCounters, m: &mut Metrics) {
    for r in mape_dataplane::DropReason::ALL {
        m.counter(
            "mape_drops",
            "Packets dropped, by reason",
            &[("reason", r.as_str())],
            d.get(r),
        );
    }
}

/// Packets and bytes by direction, as the `mape_packets` and `mape_bytes` counters.
pub(crate) fn traffic_metrics(dirs: [(&str, mape_dataplane::Traffic); 4], m: &mut Metrics) {
    for (dir, t) in dirs {
        m.counter(
            "mape_packets",
            "Packets by direction",
            &[("direction", dir)],
            t.packets,
        );
        m.counter(
            "mape_bytes",
            "Bytes by direction",
            &[("direction", dir)],
            t.bytes,
        );
    }
}
