//! The control socket server: binding the Unix socket (mode 0600) and serving one JSON
//! response per request line, within bounds a misbehaving or hostile local client cannot
//! push past — the line length while it is read ([`MAX_LINE`]), the clients at once
//! ([`MAX_CLIENTS`]: one more is told so and closed, it does not wait), the time a client
//! has for each request ([`IDLE_TIMEOUT`]) and for taking its answer. Handlers run on the
//! blocking pool, so a request that waits for the datapath lock never stalls the runtime
//! (signals, the watchdog, other clients).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mape_control::{Response, MAX_LINE};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::{handle_line, Context};

/// Clients served at once; one more gets an error line and is closed at once (it does not
/// wait: a waiting client would hold a file descriptor all the same). `mape show`, `top`,
/// `doctor` and a metrics exporter each hold one connection for one request, so sixteen is
/// far more than a router's operator opens; it keeps the descriptors the socket can take
/// far below the default soft limit of 1024 the daemon shares with its TUN queues and
/// netlink sockets, and the answers in memory at once (each at most
/// [`mape_control::SessionQuery::MAX_LIMIT`] rows) near 40 MB in the worst case.
pub const MAX_CLIENTS: usize = 16;

/// How long a client has to send each complete request line, counted from its connection
/// or its previous answer, and to take each answer. The clients are programs that write a
/// line of at most [`MAX_LINE`] bytes at once and read the answer straight away, so five
/// seconds is ample; a client idle that long, or trickling a line byte by byte, is closed
/// and its slot freed for another.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed accept (out of file descriptors, say), the pause before the next one, so
/// that the loop does not spin on an error that persists.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds of one server; [`Limits::DEFAULT`] in the daemon, smaller in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, in bytes, newline excluded.
    pub max_line: usize,
    /// Clients served at once.
    pub max_clients: usize,
    /// Time for each request line and for each answer.
    pub idle: Duration,
}

impl Limits {
    /// [`MAX_LINE`], [`MAX_CLIENTS`], [`IDLE_TIMEOUT`].
    pub const DEFAULT: Limits = Limits {
        max_line: MAX_LINE,
        max_clients: MAX_CLIENTS,
        idle: IDLE_TIMEOUT,
    };
}

/// Binds the socket (creating its directory, removing a stale socket, mode 0600).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
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
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves connections within [`Limits::DEFAULT`] until the task is dropped.
pub async fn serve(listener: UnixListener, ctx: Context) {
    serve_with(listener, ctx, Limits::DEFAULT).await;
}

/// Serves connections within `limits` until the task is dropped.
pub async fn serve_with(listener: UnixListener, ctx: Context, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_clients));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(stream, limits.max_clients);
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            client(stream, ctx, limits).await;
            drop(slot);
        });
    }
}

/// Tells a client over the cap why it is closed: one write straight on the socket (a
/// fresh socket's send buffer takes the line at once; if it did not, the client is closed
/// without it), then the close.
fn refuse(stream: UnixStream, max_clients: usize) {
    use std::io::Write;
    let resp = Response::err(format!(
        "too many control clients (at most {max_clients} at once); try again"
    ));
    if let Ok(s) = stream.into_std() {
        let _ = (&s).write(line_of(&resp).as_bytes());
    }
}

fn line_of(resp: &Response) -> String {
    let mut text = resp.to_line();
    text.push('\n');
    text
}

/// One client: request lines until it closes, breaks a bound, or cannot be written to.
async fn client(stream: UnixStream, ctx: Context, limits: Limits) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = tokio::time::timeout(limits.idle, read_line(&mut r, &mut buf, limits.max_line));
        let (resp, last) = match read.await {
            Err(_) => (
                Response::err(format!(
                    "no complete request within {} ms; closing",
                    limits.idle.as_millis()
                )),
                true,
            ),
            Ok(Err(_) | Ok(Line::End)) => return,
            Ok(Ok(Line::TooLong)) => (
                Response::err(format!(
                    "request longer than {} bytes; closing",
                    limits.max_line
                )),
                true,
            ),
            Ok(Ok(Line::Complete)) => (answer(&ctx, &buf).await, false),
        };
        let text = line_of(&resp);
        let sent = tokio::time::timeout(limits.idle, w.write_all(text.as_bytes()));
        // Written before `last` is looked at: the error line goes out before the close.
        let sent = sent.await;
        if last || !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

/// The answer to one line, worked out on the blocking pool.
async fn answer(ctx: &Context, line: &[u8]) -> Response {
    let Ok(line) = std::str::from_utf8(line) else {
        return Response::err("bad request: not UTF-8");
    };
    let (ctx, line) = (ctx.clone(), line.to_owned());
    tokio::task::spawn_blocking(move || handle_line(&ctx, &line))
        .await
        .unwrap_or_else(|_| Response::err("the request handler failed"))
}

/// What [`read_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A line is in the buffer (without its newline; a last line may lack one).
    Complete,
    /// The client closed before sending anything more.
    End,
    /// The line is longer than the bound; what was read of it is discarded.
    TooLong,
}

/// Reads one line into `buf` (newline, and a `\r` before it, removed), never holding more
/// than `max` bytes of it: a longer line is [`Line::TooLong`] as soon as its `max + 1`-th
/// byte arrives, whether or not a newline ever does.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Complete
            });
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > max {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take + usize::from(done));
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests;
