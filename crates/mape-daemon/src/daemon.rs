//! `mape run`: sets up the host, runs the datapath threads and the control plane (control
//! socket, signals, event logging, the systemd watchdog) on a small current-thread
//! runtime, and tears everything down on SIGTERM/SIGINT. SIGHUP reloads timers, quotas,
//! filters and forwards in place.
//!
//! Start order (issue #12): the instance lock, then the control socket, then the TUN
//! check — a live owner of any of them refuses the start before any plumbing is touched
//! ([`RunError::InUse`]) — then cleanup of a crashed run's leftovers, the TUN, routes,
//! workers, and `READY=1`. Stop order: workers, routes (deleted by interface while the
//! TUN still exists), the TUN, the socket, the lock.

mod services;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};

use crate::clock::now_since;
use crate::config::{FastPathMode, Role, Settings};
use crate::control::{self, Context};
use crate::counters::IoCounters;
use crate::datapath::{self, WorkerCtx};
use crate::events::{log_event, run_hook, HOOK_SLOTS};
use crate::fastpath::FastPath;
use crate::lock::{InstanceLock, LockError};
use crate::pipeline::{FastPathPlan, Pipeline, PipelineError, Shared};
use crate::plumbing::{Plumbing, PlumbingError};
use crate::provisioning::apply::{on_lease, on_report, setup_map, Apply};
use crate::provisioning::runner::RoundResult;
use crate::provisioning::settings::Source;
use crate::provisioning::{Run, Tracker, Update};
use crate::supervise::{Heartbeats, Notifier};
use crate::tun::{self, Wake};

use services::{scraper, start_portmap};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another daemon owns the lock, the control socket or the TUN; nothing was touched.
    #[error("in use: {0}")]
    InUse(String),
    /// The lock file could not be created.
    #[error("{0}")]
    Lock(LockError),
    /// Host set-up failed (everything created so far was removed).
    #[error("set-up: {0}")]
    Plumbing(#[from] PlumbingError),
    /// The TUN could not be opened.
    #[error("TUN: {0}")]
    Tun(std::io::Error),
    /// The control socket could not be bound.
    #[error("control socket {path}: {source}")]
    Control {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// The pipeline could not be built.
    #[error("pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// A datapath worker stopped while the daemon ran (the host was cleaned up).
    #[error("datapath: {0}")]
    Datapath(String),
    /// `[datapath] fast_path = "required"` and the kernel fast path could not start.
    #[error("fast path required but not available: {0}")]
    FastPath(String),
}

impl RunError {
    /// The process exit status for this error: [`crate::supervise::EXIT_IN_USE`] for a
    /// refused start, [`crate::supervise::EXIT_DATAPATH`] for a datapath failure, 2 for
    /// the rest (configuration and set-up problems).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::InUse(_) => crate::supervise::EXIT_IN_USE,
            RunError::Datapath(_) => crate::supervise::EXIT_DATAPATH,
            _ => 2,
        }
    }
}

/// Builds the pipeline for the settings (the CE or BR of mape-dataplane).
pub type PipelineFactory = fn(&Settings) -> Result<Box<dyn Pipeline>, PipelineError>;

/// Runs the daemon until SIGTERM/SIGINT. Installs the panic hook: from here on any panic
/// ends the process with [`crate::supervise::EXIT_DATAPATH`].
pub fn run(settings: Settings, factory: PipelineFactory) -> Result<(), RunError> {
    run_with(settings, factory, None)
}

/// [`run`] with the provisioning client (HB46PP or DHCPv6) whose first round gave the
/// settings ([`crate::provisioning::prepare`]): the daemon keeps it refreshing and puts a
/// changed rule in force in place.
pub fn run_with(
    settings: Settings,
    factory: PipelineFactory,
    hb46pp: Option<Run>,
) -> Result<(), RunError> {
    crate::supervise::install_panic_hook();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(run_async(settings, factory, hb46pp))
}

/// The provisioning status at start: the configured method, the source of the rule, and
/// the first round of its client.
fn initial_tracker(settings: &Settings, run: Option<&Run>) -> Tracker {
    let p = &settings.provisioning;
    let mut t = Tracker::new(p.method.map_or("map", |m| m.as_str()), p.source.as_str());
    let hb = match run {
        None => return t,
        Some(Run::Dhcpv6(d)) => {
            if let Some(l) = d.held() {
                t.lease_in_force(l, d.first.is_none());
            }
            if let (Some(i), Role::Ce(ce)) = (d.information(), &settings.role) {
                t.info_in_force(i, &ce.map.mapping.end_user_prefix, !d.first_informed);
            }
            return t;
        }
        Some(Run::Hb46pp(hb)) => hb,
    };
    let hb46pp = p.source == Source::Hb46pp;
    match &hb.first.result {
        RoundResult::Answer(lg) => {
            if let (true, Ok(o)) = (hb46pp, lg.offer()) {
                t.in_force(lg, &o, false);
            }
            t.succeeded(hb.first.at, hb.first.next);
        }
        RoundResult::Failed(f) => {
            if let Some((lg, Ok(o))) = hb.stored.as_ref().map(|l| (l, l.offer())) {
                if hb46pp {
                    t.in_force(lg, &o, true);
                }
            }
            t.round_failed(hb.first.at, hb.first.next, f);
        }
    }
    t
}

/// `<state dir>/<tun>.state`: what this daemon created on the host.
pub fn state_file(settings: &Settings) -> PathBuf {
    settings
        .state_dir
        .join(format!("{}.state", settings.tun.name))
}

/// `<state dir>/<tun>.lock`: held while the daemon runs.
pub fn lock_file(settings: &Settings) -> PathBuf {
    settings
        .state_dir
        .join(format!("{}.lock", settings.tun.name))
}

/// How long a worker may go without progress before it is reported when systemd's
/// watchdog is off (with it on, half of `WatchdogSec=` decides).
const STALL_REPORT: Duration = Duration::from_secs(5);

async fn run_async(
    settings: Settings,
    factory: PipelineFactory,
    hb46pp: Option<Run>,
) -> Result<(), RunError> {
    let start = Instant::now();
    let notifier = Notifier::from_env();
    // 1. One daemon per state: refuse before touching anything.
    let lock = match InstanceLock::acquire(&lock_file(&settings)) {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => return Err(RunError::InUse(e.to_string())),
        Err(e) => return Err(RunError::Lock(e)),
    };
    // 2. The control socket: a daemon with another state directory but this socket.
    let listener = control::bind(&settings.socket).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            RunError::InUse(source.to_string())
        } else {
            RunError::Control {
                path: settings.socket.display().to_string(),
                source,
            }
        }
    })?;
    let remove_socket = || {
        let _ = std::fs::remove_file(&settings.socket);
    };
    let pipeline = match factory(&settings) {
        Ok(p) => p,
        Err(e) => {
            remove_socket();
            return Err(RunError::Pipeline(e));
        }
    };
    // 3. The session table of the previous run, restored before any packet flows
    // (crate::sessions_file); a table refused is logged and the daemon starts empty.
    let mut pipeline = pipeline;
    let sessions_path = settings
        .persist_every
        .filter(|_| pipeline.nat().is_some())
        .map(|_| crate::sessions_file::path(&settings));
    let saved = match sessions_path.as_deref().map(crate::sessions_file::load) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::error!(error = %e, "saved session table refused; starting with an empty table");
            None
        }
        None => None,
    };
    let clock = crate::sessions_file::clock_origin(start, saved.as_ref());
    if let Some(t) = &saved {
        match crate::sessions_file::restore(&mut *pipeline, t, clock) {
            Some(Ok(r)) => tracing::info!(
                restored = r.restored,
                saved = r.saved,
                expired = r.expired,
                outside_port_set = r.outside_port_set,
                forward_gone = r.forward_gone,
                mapping_gone = r.mapping_gone,
                mappings_saved = r.mappings_saved,
                mappings_restored = r.mappings_restored,
                conflicting = r.conflicting,
                over_limit = r.over_limit,
                shortened = r.shortened,
                downtime_ms = r.downtime_ms,
                "session table restored"
            ),
            Some(Err(e)) => {
                tracing::error!(error = %e, "saved session table refused; starting with an empty table")
            }
            None => {}
        }
    }
    let shared: Shared = Arc::new(Mutex::new(pipeline));
    let tun_name = settings.tun.name.clone();
    // 4. Leftovers of a crashed run (the lock proves it is dead), then the TUN check: a
    // TUN of this name that exists now belongs to someone else (ours are not persistent
    // and vanish with their process).
    let mut plumbing = match Plumbing::new(state_file(&settings)).await {
        Ok(p) => p,
        Err(e) => {
            remove_socket();
            return Err(e.into());
        }
    };
    if plumbing.link_exists(&tun_name).await {
        remove_socket();
        return Err(RunError::InUse(format!(
            "interface {tun_name} already exists and is not this daemon's (another mape with another state directory, or a persistent TUN); choose another tun.name"
        )));
    }

    let queues = match settings.tun.queues {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let qs = match tun::open(&tun_name, queues) {
        Ok(q) => q,
        Err(e) => {
            plumbing.teardown().await;
            remove_socket();
            return Err(RunError::Tun(e));
        }
    };
    if let Err(e) = setup(&mut plumbing, &settings).await {
        // Routes first, while the TUN exists; then the TUN.
        plumbing.teardown().await;
        drop(qs);
        remove_socket();
        return Err(e);
    }
    // 5. The kernel fast path, once the routes it falls back to exist.
    if let Err(e) = start_fast_path(&plumbing, &settings, &shared, clock).await {
        plumbing.teardown().await;
        drop(qs);
        remove_socket();
        return Err(e);
    }

    let counters = Arc::new(IoCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeats = Arc::new(Heartbeats::new(qs.len(), start));
    let wake = match Wake::new() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            plumbing.teardown().await;
            drop(qs);
            remove_socket();
            return Err(RunError::Tun(e));
        }
    };
    let ctx_w = WorkerCtx {
        wake: wake.clone(),
        stop: stop.clone(),
        shared: shared.clone(),
        start: clock,
        counters: counters.clone(),
        heartbeats: heartbeats.clone(),
    };
    let mut workers = Vec::new();
    for (i, q) in qs.into_iter().enumerate() {
        let ctx = ctx_w.clone();
        // The worker hands its queue back, so the TUN outlives the route teardown.
        let spawned = std::thread::Builder::new()
            .name(format!("mape-q{i}"))
            .spawn(move || {
                datapath::worker(i, &q, ctx);
                q
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                wake.signal();
                let qs = join_workers(workers);
                plumbing.teardown().await;
                drop(qs);
                remove_socket();
                return Err(RunError::Tun(e));
            }
        }
    }
    tracing::info!(
        tun = %tun_name,
        queues,
        socket = %settings.socket.display(),
        state = %lock.path().display(),
        watchdog_ms = notifier.watchdog.map(|d| d.as_millis() as u64),
        "mape running"
    );
    let mut current_ce = match &settings.role {
        Role::Ce(ce) => Some(ce.clone()),
        Role::Br(_) => None,
    };
    let tracker = current_ce
        .as_ref()
        .map(|_| Arc::new(Mutex::new(initial_tracker(&settings, hb46pp.as_ref()))));
    let (prov_tx, mut prov_rx) = tokio::sync::mpsc::channel(4);
    let mut prov_live = hb46pp.is_some();
    let prov_task = hb46pp.map(|hb| tokio::spawn(hb.drive(prov_tx)));
    let ctx = Context {
        shared: shared.clone(),
        start: clock,
        up_since: start,
        counters,
        config_path: settings.path.clone(),
        provisioning: tracker.clone(),
        portmap: Arc::new(crate::portmap::Stats::default()),
    };
    let server = tokio::spawn(control::serve(listener, ctx.clone()));
    let portmap_stats = ctx.portmap.clone();
    let portmap = start_portmap(&settings, &ctx, &portmap_stats).await;
    let metrics = match settings.metrics {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(listen = %addr, "metrics at http://{addr}/metrics");
                Some(tokio::spawn(crate::metrics::serve(
                    l,
                    scraper(&ctx, portmap_stats.clone()),
                )))
            }
            Err(e) => {
                tracing::error!(listen = %addr, error = %e, "metrics listener failed; continuing without");
                None
            }
        },
        None => None,
    };
    // The LAN status page: a listener that cannot be bound (the LAN address not up yet,
    // the port taken) is logged and the daemon runs without it, as with the metrics: the
    // house's IPv4 matters more than the page.
    let web = match &settings.web {
        Some(w) => match crate::web::LanOnly::bind(w).await {
            Ok(l) => {
                tracing::info!(listen = %w.listen, "status page at http://{}/", w.listen);
                let state = crate::web::Web::new(ctx.clone(), w.password_hash.clone());
                Some(tokio::spawn(crate::web::serve(l, state)))
            }
            Err(e) => {
                tracing::error!(error = %e, "status page failed; continuing without");
                None
            }
        },
        None => None,
    };
    // sd_notify(3): set-up is complete, the datapath runs.
    notifier.ready(&format!("running: {tun_name}, {queues} queue(s)"));

    let mut term = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let wd_period = notifier.period();
    let mut wd_tick = tokio::time::interval(wd_period.unwrap_or(Duration::from_secs(3600)));
    let mut stalled = false;
    let hook_slots = Arc::new(tokio::sync::Semaphore::new(HOOK_SLOTS));
    let mut failure = None;
    let persist_every = sessions_path.as_ref().and(settings.persist_every);
    let mut persist_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + persist_every.unwrap_or(Duration::from_secs(3600)),
        persist_every.unwrap_or(Duration::from_secs(3600)),
    );
    let mut persisting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            r = prov_rx.recv(), if prov_live => {
                match (r, current_ce.as_mut(), tracker.as_ref()) {
                    (Some(r), Some(current), Some(tracker)) => {
                        let mut a = Apply {
                            settings: &settings,
                            current,
                            shared: &shared,
                            clock,
                            plumbing: &mut plumbing,
                            tracker,
                            hook_slots: &hook_slots,
                        };
                        match r {
                            Update::Hb46pp(r) => on_report(&mut a, r).await,
                            Update::Dhcpv6(r) => on_lease(&mut a, r).await,
                        }
                    }
                    _ => prov_live = false,
                }
            }
            _ = hup.recv() => {
                match control::reload(&ctx) {
                    Ok(what) => tracing::info!(detail = %what, "SIGHUP: configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload refused"),
                }
            }
            _ = wd_tick.tick(), if wd_period.is_some() => {
                // WATCHDOG=1 only while every worker made progress within the period.
                let period = wd_period.unwrap_or(STALL_REPORT);
                match heartbeats.stalest(period) {
                    None => {
                        if stalled {
                            tracing::info!("every datapath worker makes progress again");
                            notifier.status(&format!("running: {tun_name}, {queues} queue(s)"));
                            stalled = false;
                        }
                        notifier.ping();
                    }
                    Some((i, age)) => {
                        if !stalled {
                            tracing::error!(worker = i, stalled_ms = age.as_millis() as u64, "datapath worker makes no progress: watchdog ping withheld, systemd will restart mape");
                            notifier.status(&format!("datapath worker {i} stalled"));
                            stalled = true;
                        }
                    }
                }
            }
            _ = persist_tick.tick(), if persist_every.is_some() => {
                // The copy under the lock here; encoding and the write on a blocking
                // thread, one at a time (a slow disk skips a period rather than queue).
                if persisting.as_ref().is_none_or(|h| h.is_finished()) {
                    if let (Some(path), Some(taken)) = (sessions_path.clone(), crate::sessions_file::take(&shared, clock)) {
                        persisting = Some(tokio::task::spawn_blocking(move || {
                            crate::sessions_file::write_logged(&path, &taken, "periodic");
                        }));
                    }
                }
            }
            _ = tick.tick() => {
                if let Some(i) = workers.iter().position(|w| w.is_finished()) {
                    failure = Some(format!("datapath worker {i} stopped (see the log above); exiting so that the supervisor restarts mape"));
                    break;
                }
                if wd_period.is_none() {
                    match heartbeats.stalest(STALL_REPORT) {
                        Some((i, age)) if !stalled => {
                            tracing::error!(worker = i, stalled_ms = age.as_millis() as u64, "datapath worker makes no progress");
                            stalled = true;
                        }
                        None => stalled = false,
                        _ => {}
                    }
                }
                let events = match shared.lock() {
                    Ok(mut p) => {
                        p.tick(now_since(clock));
                        p.drain_events()
                    }
                    Err(_) => Vec::new(),
                };
                for e in events {
                    log_event(&e);
                    if let Some(hook) = &settings.events_hook {
                        run_hook(hook, &e, &hook_slots);
                    }
                }
            }
        }
    }
    notifier.stopping();
    stop.store(true, Ordering::Relaxed);
    wake.signal();
    let queues_back = join_workers(workers);
    // The programs go before the routes they fall back to.
    if let Ok(mut p) = shared.lock() {
        p.stop_fast_path();
    }
    // The last word on the session table, once no worker changes it.
    if let Some(path) = &sessions_path {
        if let Some(h) = persisting.take() {
            let _ = h.await;
        }
        crate::sessions_file::save_logged(&shared, clock, path, "stop");
    }
    server.abort();
    for t in prov_task.into_iter().chain(portmap) {
        t.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(w) = web {
        w.abort();
    }
    // Routes go while the TUN still exists (deleted by interface), then the TUN.
    plumbing.teardown().await;
    drop(queues_back);
    remove_socket();
    drop(lock);
    match failure {
        Some(f) => {
            tracing::error!("{f}");
            Err(RunError::Datapath(f))
        }
        None => {
            tracing::info!("stopped; host left as found");
            Ok(())
        }
    }
}

/// Joins the workers and collects the queues they hand back (a worker that panicked has
/// already ended the process; see crate::supervise).
fn join_workers(workers: Vec<std::thread::JoinHandle<tun::TunQueue>>) -> Vec<tun::TunQueue> {
    workers.into_iter().filter_map(|w| w.join().ok()).collect()
}

/// Brings the kernel fast path up as `[datapath] fast_path` says: `off` removes what a
/// killed daemon left and runs the TUN path alone; `auto` falls back to it, saying why;
/// `required` refuses to start without it. The filters of a killed daemon are replaced
/// (same handle and priority), never duplicated; the lock proves that daemon dead.
async fn start_fast_path(
    plumbing: &Plumbing,
    settings: &Settings,
    shared: &Shared,
    clock: Instant,
) -> Result<(), RunError> {
    let mode = settings.datapath.fast_path;
    let mut links = plumbing.ethernet_links().await;
    let wan = match &settings.role {
        Role::Ce(ce) => plumbing.index(&ce.wan_interface).await.ok(),
        Role::Br(_) => None,
    };
    if let Some(w) = wan {
        if !links.iter().any(|(_, i)| *i == w) {
            links.clear(); // the WAN is not Ethernet: nothing to attach to
        }
    }
    let Ok(mut p) = shared.lock() else {
        return Ok(());
    };
    if mode == FastPathMode::Off {
        for (name, i) in &links {
            if let Ok(true) = mape_fastpath::remove_ours(*i) {
                tracing::info!(interface = %name, "fast path filter of a previous run removed");
            }
        }
        p.no_fast_path(FastPath::off());
        return Ok(());
    }
    let refuse = |reason: String| -> Result<FastPath, RunError> {
        if mode == FastPathMode::Required {
            Err(RunError::FastPath(reason))
        } else {
            tracing::warn!(reason = %reason, "fast path not available: every packet takes the TUN path");
            Ok(FastPath::Inactive { mode, reason })
        }
    };
    if links.is_empty() || (wan.is_some() && links.len() < 2) {
        let why = refuse("no Ethernet interfaces to attach to (WAN and LAN)".into())?;
        p.no_fast_path(why);
        return Ok(());
    }
    let origin_ns = mape_fastpath::monotonic_ns()
        .saturating_sub(clock.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
    let plan = FastPathPlan {
        mode,
        links: links.clone(),
        wan,
        origin_ns,
        entries: settings.datapath.fast_path_entries,
    };
    match p.start_fast_path(&plan) {
        Ok(()) => {
            let names: Vec<&str> = links.iter().map(|(n, _)| n.as_str()).collect();
            tracing::info!(mode = mode.as_str(), interfaces = %names.join(","), "fast path attached");
        }
        Err(e) => {
            let why = refuse(e.to_string())?;
            p.no_fast_path(why);
        }
    }
    Ok(())
}

/// Host set-up for the role (docs/linux-plumbing.md, "The recipe").
async fn setup(p: &mut Plumbing, s: &Settings) -> Result<(), RunError> {
    let tun = s.tun.name.as_str();
    p.sysctl("net/ipv4/ip_forward", "1").await?;
    p.sysctl("net/ipv6/conf/all/forwarding", "1").await?;
    // The TUN stays at 1500 so full-size encapsulated packets from the BR fit (docs/linux-plumbing.md, "MTU on the route").
    p.link_up(tun, 1500).await?;
    match &s.role {
        Role::Ce(ce) => {
            // With forwarding on, Linux ignores RAs on a WAN left at accept_ra=1, and the
            // IPv6 default route learnt from them lapses at its lifetime (`ra` module):
            // 2 while we run (restored at stop); 0, a static set-up, is left alone.
            let ra = format!("net/ipv6/conf/{}/accept_ra", ce.wan_interface);
            let now = crate::plumbing::read_sysctl(&ra).unwrap_or_default();
            if let Some(v) = crate::ra::accept_ra_for_forwarding(&now) {
                p.sysctl(&ra, v).await?;
            }
            p.route4(
                Ipv4Addr::UNSPECIFIED,
                0,
                tun,
                Some(u32::from(s.tun.ipv4_mtu)),
            )
            .await?;
            setup_map(p, tun, ce).await?;
        }
        Role::Br(br) => {
            for a in br.addresses() {
                p.route6(a, 128, tun).await?;
            }
            for rule in br.domain.rules() {
                let v4 = rule.ipv4_prefix();
                p.route4(v4.addr(), v4.len(), tun, None).await?;
            }
        }
    }
    Ok(())
}
