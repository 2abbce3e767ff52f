//! The control socket: a Unix socket (mode 0600), one JSON request per line and one JSON
//! response per line, versioned. Requests: `{"v":1,"cmd":"status"}`, `snapshot`,
//! `sessions` (args: host, dst, proto, state, limit), `reload`. Bad requests get an error
//! response; the daemon never stops for one.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::datapath::{now_since, IoCounters, Shared};

/// Protocol version.
pub const VERSION: u32 = 1;
/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version (1).
    pub v: u32,
    /// Command.
    pub cmd: String,
    /// Arguments.
    #[serde(default)]
    pub args: Value,
}

/// A response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// Whether it worked.
    pub ok: bool,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The error, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    fn ok(data: Value) -> Self {
        Self {
            v: VERSION,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    fn err(e: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            ok: false,
            data: None,
            error: Some(e.into()),
        }
    }
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct Context {
    /// The pipeline.
    pub shared: Shared,
    /// Daemon start.
    pub start: Instant,
    /// io counters.
    pub counters: Arc<IoCounters>,
    /// Configuration file, for reload.
    pub config_path: PathBuf,
}

/// Answers one request line.
pub fn handle_line(ctx: &Context, line: &str) -> Response {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return Response::err(format!("bad request: {e}")),
    };
    if req.v != VERSION {
        return Response::err(format!(
            "unsupported protocol version {} (this daemon speaks {VERSION})",
            req.v
        ));
    }
    let now = now_since(ctx.start);
    match req.cmd.as_str() {
        "status" => {
            let Ok(p) = ctx.shared.lock() else {
                return Response::err("pipeline unavailable");
            };
            let mut s = p.status(now);
            if let Value::Object(m) = &mut s {
                m.insert("uptime_s".into(), json!(ctx.start.elapsed().as_secs()));
                m.insert(
                    "io".into(),
                    json!({
                        "rx_packets": ctx.counters.rx_packets.load(Ordering::Relaxed),
                        "tx_packets": ctx.counters.tx_packets.load(Ordering::Relaxed),
                        "tx_errors": ctx.counters.tx_errors.load(Ordering::Relaxed),
                        "rx_errors": ctx.counters.rx_errors.load(Ordering::Relaxed),
                    }),
                );
            }
            Response::ok(s)
        }
        "reload" => match crate::config::Settings::load(&ctx.config_path) {
            Err(e) => Response::err(format!("reload refused, old configuration kept: {e}")),
            Ok(settings) => {
                let Ok(mut p) = ctx.shared.lock() else {
                    return Response::err("pipeline unavailable");
                };
                match p.reload(now, &settings) {
                    Ok(what) => Response::ok(json!({ "reloaded": what })),
                    Err(e) => Response::err(format!("reload refused, old configuration kept: {e}")),
                }
            }
        },
        #[cfg(feature = "failpoints")]
        "failpoint" => {
            let name = req.args.get("name").and_then(Value::as_str).unwrap_or("");
            match crate::failpoint::arm(name) {
                Ok(what) => Response::ok(json!({ "armed": name, "effect": what })),
                Err(e) => Response::err(e),
            }
        }
        cmd => {
            let Ok(mut p) = ctx.shared.lock() else {
                return Response::err("pipeline unavailable");
            };
            match p.query(now, cmd, &req.args) {
                Some(v) => Response::ok(v),
                None => Response::err(format!(
                    "unknown command {cmd:?} (status, snapshot, sessions, reload)"
                )),
            }
        }
    }
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
                let mut text = serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into());
                text.push('\n');
                if w.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Client side (for `mape show`): one request, one response.
pub fn request(socket: &Path, cmd: &str, args: Value) -> Result<Value, String> {
    let stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the daemon at {} ({e}); is `mape run` running? (--socket PATH to choose another)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = &stream;
    let req = Request {
        v: VERSION,
        cmd: cmd.into(),
        args,
    };
    let mut text = serde_json::to_string(&req).map_err(|e| e.to_string())?;
    text.push('\n');
    w.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("no answer from the daemon: {e}"))?;
    let resp: Response =
        serde_json::from_str(&line).map_err(|e| format!("bad answer from the daemon: {e}"))?;
    if resp.ok {
        Ok(resp.data.unwrap_or(Value::Null))
    } else {
        Err(resp.error.unwrap_or_else(|| "error".into()))
    }
}
