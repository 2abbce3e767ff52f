//! `mape run`: sets up the host, runs the datapath threads and the control plane (control
//! socket, signals, event logging) on a small current-thread runtime, and tears everything
//! down on SIGTERM/SIGINT. SIGHUP reloads timers, quotas, filters and forwards in place.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::{MapAddressMode, Role, Settings};
use crate::control::{self, Context};
use crate::datapath::{self, now_since, IoCounters, Pipeline, Shared};
use crate::plumbing::{Plumbing, PlumbingError};
use crate::tun::{self, Wake};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    Pipeline(String),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Builds the pipeline for the settings (the CE or BR of mape-dataplane).
pub type PipelineFactory = fn(&Settings) -> Result<Box<dyn Pipeline>, String>;

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(settings: Settings, factory: PipelineFactory) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(run_async(settings, factory))
}

fn state_file(settings: &Settings) -> PathBuf {
    let dir = settings
        .socket
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/run/mape"));
    dir.join(format!("{}.state", settings.tun.name))
}

async fn run_async(settings: Settings, factory: PipelineFactory) -> Result<(), RunError> {
    let start = Instant::now();
    let pipeline = factory(&settings).map_err(RunError::Pipeline)?;
    let shared: Shared = Arc::new(Mutex::new(pipeline));
    let mut plumbing = Plumbing::new(state_file(&settings)).await?;

    let queues = match settings.tun.queues {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let tun_name = settings.tun.name.clone();
    let result = async {
        let qs = tun::open(&tun_name, queues).map_err(RunError::Tun)?;
        setup(&mut plumbing, &settings).await?;
        Ok::<_, RunError>(qs)
    }
    .await;
    let qs = match result {
        Ok(q) => q,
        Err(e) => {
            plumbing.teardown().await;
            return Err(e);
        }
    };

    let listener = match control::bind(&settings.socket) {
        Ok(l) => l,
        Err(source) => {
            drop(qs);
            plumbing.teardown().await;
            return Err(RunError::Control {
                path: settings.socket.display().to_string(),
                source,
            });
        }
    };
    let counters = Arc::new(IoCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Wake::new().map_err(RunError::Tun)?);
    let mut workers = Vec::new();
    for (i, q) in qs.into_iter().enumerate() {
        let (wake, stop, shared, counters) =
            (wake.clone(), stop.clone(), shared.clone(), counters.clone());
        let h = std::thread::Builder::new()
            .name(format!("mape-q{i}"))
            .spawn(move || datapath::worker(q, wake, stop, shared, start, counters))
            .map_err(RunError::Tun)?;
        workers.push(h);
    }
    tracing::info!(
        tun = %tun_name,
        queues,
        socket = %settings.socket.display(),
        "mape running"
    );
    let ctx = Context {
        shared: shared.clone(),
        start,
        counters,
        config_path: settings.path.clone(),
    };
    let server = tokio::spawn(control::serve(listener, ctx.clone()));
    let metrics = match settings.metrics {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(listen = %addr, "metrics at http://{addr}/metrics");
                Some(tokio::spawn(crate::metrics::serve(
                    l,
                    Arc::new(ctx.clone()),
                )))
            }
            Err(e) => {
                tracing::error!(listen = %addr, error = %e, "metrics listener failed; continuing without");
                None
            }
        },
        None => None,
    };

    let mut term = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let hook_slots = Arc::new(tokio::sync::Semaphore::new(HOOK_SLOTS));
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                let resp = control::handle_line(&ctx, r#"{"v":1,"cmd":"reload"}"#);
                match (resp.ok, resp.error) {
                    (true, _) => tracing::info!(detail = ?resp.data, "SIGHUP: configuration reloaded"),
                    (false, e) => tracing::error!(error = e.unwrap_or_default(), "SIGHUP: reload refused"),
                }
            }
            _ = tick.tick() => {
                let events = match shared.lock() {
                    Ok(mut p) => {
                        p.tick(now_since(start));
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
    stop.store(true, Ordering::Relaxed);
    wake.signal();
    for w in workers {
        let _ = w.join();
    }
    server.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    let _ = std::fs::remove_file(&settings.socket);
    plumbing.teardown().await;
    tracing::info!("stopped; host left as found");
    Ok(())
}

/// Host set-up for the role (reference/linux-plumbing.md, "CE recipe").
async fn setup(p: &mut Plumbing, s: &Settings) -> Result<(), RunError> {
    let tun = s.tun.name.as_str();
    p.sysctl("net/ipv4/ip_forward", "1").await?;
    p.sysctl("net/ipv6/conf/all/forwarding", "1").await?;
    // The TUN stays at 1500 so full-size encapsulated packets from the BR fit (pitfall 1).
    p.link_up(tun, 1500).await?;
    match &s.role {
        Role::Ce(ce) => {
            let m = &ce.map.mapping;
            p.route4(
                Ipv4Addr::UNSPECIFIED,
                0,
                tun,
                Some(u32::from(s.tun.ipv4_mtu)),
            )
            .await?;
            p.route6(m.ce_ipv6, 128, tun).await?;
            if ce.map_address == MapAddressMode::Onlink {
                p.proxy_neighbour(&ce.wan_interface, m.ce_ipv6).await?;
            } else if m.end_user_prefix.len() < 128 {
                // The rest of the delegated prefix must not ping-pong with the ISP.
                p.unreachable6(m.end_user_prefix.addr(), m.end_user_prefix.len())
                    .await?;
            }
        }
        Role::Br(br) => {
            p.route6(br.address, 128, tun).await?;
            for rule in br.domain.rules() {
                let v4 = rule.ipv4_prefix();
                p.route4(v4.addr(), v4.len(), tun, None).await?;
            }
        }
    }
    Ok(())
}

/// Hooks running at once; more events while all run are logged and not passed on.
const HOOK_SLOTS: usize = 4;

/// Logs an event once, with its fields as structured fields (journald-friendly).
fn log_event(e: &serde_json::Value) {
    let field = |k: &str| {
        e.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    tracing::warn!(
        kind = %field("kind"),
        proto = %field("proto"),
        host = %field("host"),
        in_use = %field("in_use"),
        dst = %field("dst"),
        pattern = %field("summary"),
        seconds = %field("seconds"),
        driver = %field("driver"),
        at_ms = %field("at"),
        "budget event"
    );
}

/// Runs the user's hook with the event as JSON on stdin, bounded in number and time.
fn run_hook(hook: &std::path::Path, e: &serde_json::Value, slots: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::warn!(hook = %hook.display(), "event hook busy; event not passed on");
        return;
    };
    let hook = hook.to_path_buf();
    let mut body = e.to_string();
    body.push('\n');
    tokio::spawn(async move {
        let _permit = permit;
        let child = tokio::process::Command::new(&hook)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(hook = %hook.display(), error = %err, "event hook failed to start");
                return;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await {
            Ok(Ok(st)) if !st.success() => {
                tracing::warn!(hook = %hook.display(), status = %st, "event hook failed")
            }
            Err(_) => tracing::warn!(hook = %hook.display(), "event hook killed after 10 s"),
            _ => {}
        }
    });
}
