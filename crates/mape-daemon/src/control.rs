//! The daemon's side of the control socket (protocol and types: mape-control): binding
//! the Unix socket (mode 0600), serving one JSON response per request line, and the
//! IO-free handlers behind it — [`handle_line`], [`status`], [`reload`] (also what SIGHUP
//! runs). Bad requests get an error response; the daemon never stops for one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mape_control::reply::{Reloaded, Status};
use mape_control::{Request, Response, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::clock::now_since;
use crate::config::{ConfigError, Settings};
use crate::counters::IoCounters;
use crate::pipeline::api::ReloadRefusal;
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

fn query(ctx: &Context, req: &Request) -> Result<Response, HandleError> {
    let now = now_since(ctx.start);
    let mut p = ctx.shared.lock().map_err(|_| HandleError::Unavailable)?;
    p.query(now, req)
        .map(Response::ok)
        .ok_or(HandleError::Unknown(req.cmd()))
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

/// Binds the socket (creating its directory, removing a stale socket, mode 0600).
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A live daemon answers; a stale socket file does not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: tokio::net::UnixListener, ctx: Context) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let resp = if line.len() > MAX_LINE {
                    Response::err(format!("request longer than {MAX_LINE} bytes"))
                } else {
                    handle_line(&ctx, &line)
                };
                let mut text = resp.to_line();
                text.push('\n');
                if w.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
