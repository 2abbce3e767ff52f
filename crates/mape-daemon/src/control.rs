//! The daemon's side of the control socket (protocol and types: mape-control): the
//! socket server with its bounds ([`server`]: line length, clients, idle time), and the
//! IO-free handlers behind it — [`handle_line`], [`status`], [`reload`] (also what SIGHUP
//! runs). Bad requests get an error response; the daemon never stops for one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mape_control::reply::{Reloaded, Status};
use mape_control::{Request, Response, SessionQuery};
use mape_nat::Timestamp;

use crate::clock::now_since;
use crate::config::{ConfigError, Settings};
use crate::counters::IoCounters;
use crate::pipeline::api::{ReloadRefusal, SessionsStep};
use crate::pipeline::Shared;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct Context {
    /// The pipeline.
    pub shared: Shared,
    /// The pipeline's clock origin: the daemon's start, or earlier when a restored session
    /// table reaches back (`sessions_file::clock_origin`).
    pub start: Instant,
    /// The daemon's start (the uptime).
    pub up_since: Instant,
    /// io counters.
    pub counters: Arc<IoCounters>,
    /// Configuration file, for reload.
    pub config_path: PathBuf,
    /// Where the CE's rule came from (`crate::provisioning`); `None` for a BR.
    pub provisioning: Option<Arc<std::sync::Mutex<crate::provisioning::Tracker>>>,
    /// The port mapping servers' tallies (`crate::portmap::Stats`, shared with the IGD).
    pub portmap: Arc<crate::portmap::Stats>,
}

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A datapath worker panicked holding the pipeline (the process is ending).
    #[error("pipeline unavailable")]
    Unavailable,
    /// The configuration file does not load.
    #[error("reload refused, old configuration kept: {0}")]
    Config(#[from] ConfigError),
    /// The pipeline refused the new configuration.
    #[error("reload refused, old configuration kept: {0}")]
    Refused(#[from] ReloadRefusal),
    /// This daemon does not answer the command.
    #[error("unknown command {0:?} (status, snapshot, sessions, reload)")]
    Unknown(&'static str),
    /// A failpoint could not be armed.
    #[error("{0}")]
    Failpoint(String),
}

/// Answers one request line. Untrusted input: whatever the line holds, the answer is a
/// response, an error one if the line does not parse.
pub fn handle_line(ctx: &Context, line: &str) -> Response {
    match Request::from_line(line) {
        Ok(req) => handle(ctx, &req),
        Err(e) => Response::err(e),
    }
}

/// Answers one parsed request.
pub fn handle(ctx: &Context, req: &Request) -> Response {
    let answer = match req {
        Request::Status => status(ctx).map(|s| Response::ok_typed(&s)),
        Request::Reload => reload(ctx).map(|what| Response::ok_typed(&Reloaded { reloaded: what })),
        Request::Failpoint { name } => failpoint(name),
        _ => query(ctx, req),
    };
    answer.unwrap_or_else(Response::err)
}

/// Session table slots one `sessions` step looks at while it holds the datapath lock:
/// 16 Ki slots took at most 0.2 ms, where one pass over a 1 M-session table took 10 ms
/// (measured with a filter that matches nothing; a step also builds at most
/// [`crate::pipeline::ce::ROWS_PER_STEP`] rows). The workers take the lock between steps.
pub const SCAN_SLOTS: usize = 16 * 1024;

fn query(ctx: &Context, req: &Request) -> Result<Response, HandleError> {
    let now = now_since(ctx.start);
    if let Request::Sessions(q) = req {
        return sessions(ctx, now, q, SCAN_SLOTS);
    }
    // Snapshot and ports cost O(hosts + destinations) under the lock, as the once-a-second
    // metrics snapshot does: the engine caps destinations (8192); host records are bounded
    // only once the engine caps and expires them (#12 item 5).
    let mut p = ctx.shared.lock().map_err(|_| HandleError::Unavailable)?;
    p.query(now, req)
        .map(Response::ok)
        .ok_or(HandleError::Unknown(req.cmd()))
}

/// The `sessions` answer in steps of `scan` slots, the lock released between steps; the
/// rows are encoded after the last step, outside the lock.
fn sessions(
    ctx: &Context,
    now: Timestamp,
    q: &SessionQuery,
    scan: usize,
) -> Result<Response, HandleError> {
    let mut rows = Vec::new();
    let mut from = 0;
    loop {
        let step = {
            let p = ctx.shared.lock().map_err(|_| HandleError::Unavailable)?;
            p.sessions_page(now, q, from, scan, &mut rows)
        };
        match step.ok_or(HandleError::Unknown("sessions"))? {
            SessionsStep::Next(next) => from = next,
            SessionsStep::Done => break,
        }
    }
    Ok(Response::ok_typed(&rows))
}

#[cfg(feature = "failpoints")]
fn failpoint(name: &str) -> Result<Response, HandleError> {
    let effect = crate::failpoint::arm(name).map_err(HandleError::Failpoint)?;
    Ok(Response::ok(
        serde_json::json!({ "armed": name, "effect": effect }),
    ))
}

#[cfg(not(feature = "failpoints"))]
fn failpoint(_name: &str) -> Result<Response, HandleError> {
    Err(HandleError::Unknown("failpoint"))
}

/// The daemon's status: the pipeline's, with the uptime and the io counters.
pub fn status(ctx: &Context) -> Result<Status, HandleError> {
    let now = now_since(ctx.start);
    let p = ctx.shared.lock().map_err(|_| HandleError::Unavailable)?;
    let mut s = p.status(now);
    s.uptime_s = ctx.up_since.elapsed().as_secs();
    s.io = ctx.counters.snapshot();
    drop(p);
    s.provisioning = ctx
        .provisioning
        .as_ref()
        .and_then(|t| t.lock().ok().map(|t| t.status.clone()));
    s.mapping_asks_outside_set = ctx.portmap.outside_set();
    Ok(s)
}

/// Re-reads the configuration file and applies it (the `reload` request and SIGHUP); on
/// any error the running configuration stays as it was.
pub fn reload(ctx: &Context) -> Result<String, HandleError> {
    let settings = Settings::load(&ctx.config_path)?;
    reload_with(ctx, &settings)
}

/// Applies already loaded settings.
pub fn reload_with(ctx: &Context, settings: &Settings) -> Result<String, HandleError> {
    let now = now_since(ctx.start);
    let mut p = ctx.shared.lock().map_err(|_| HandleError::Unavailable)?;
    Ok(p.reload(now, settings)?)
}

mod server;

pub use server::{bind, serve, serve_with, Limits, IDLE_TIMEOUT, MAX_CLIENTS};

#[cfg(test)]
pub(crate) mod tests;
