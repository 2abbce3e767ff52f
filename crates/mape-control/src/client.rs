//! The blocking client: one request, one response, over the daemon's Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::request::{Request, Response};

/// How long the client waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("cannot reach the daemon at {} ({source}); is `mape run` running? (--socket PATH to choose another)", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The request could not be sent.
    #[error("cannot send the request: {0}")]
    Send(#[source] std::io::Error),
    /// No answer came.
    #[error("no answer from the daemon: {0}")]
    NoAnswer(#[source] std::io::Error),
    /// The answer is not a response, or not the reply asked for.
    #[error("bad answer from the daemon: {0}")]
    BadAnswer(#[source] serde_json::Error),
    /// The daemon refused the request.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to the daemon at `socket`; its answer's data as JSON.
pub fn request(socket: &Path, req: &Request) -> Result<Value, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    // A socket that cannot take a timeout still answers; the wait is then unbounded.
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let mut text = serde_json::to_string(&req.to_envelope()).map_err(ClientError::BadAnswer)?;
    text.push('\n');
    (&stream)
        .write_all(text.as_bytes())
        .map_err(ClientError::Send)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(ClientError::NoAnswer)?;
    let resp: Response = serde_json::from_str(&line).map_err(ClientError::BadAnswer)?;
    if resp.ok {
        Ok(resp.data.unwrap_or(Value::Null))
    } else {
        Err(ClientError::Refused(
            resp.error.unwrap_or_else(|| "error".into()),
        ))
    }
}

/// [`request`], its answer read as `T` (e.g. [`crate::reply::Status`]).
pub fn request_typed<T: DeserializeOwned>(socket: &Path, req: &Request) -> Result<T, ClientError> {
    decode(request(socket, req)?)
}

/// Reads an answer as `T`.
pub fn decode<T: DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(ClientError::BadAnswer)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::reply::Reloaded;

    /// A one-shot server: reads one line, answers `answer`; returns what it read.
    fn serve(name: &str, answer: &'static str) -> (PathBuf, std::thread::JoinHandle<String>) {
        let path = std::env::temp_dir().join(format!(
            "mape-control-client-{}-{name}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            (&s).write_all(answer.as_bytes()).unwrap();
            line
        });
        (path, h)
    }

    #[test]
    fn one_request_one_answer() {
        let (p, h) = serve(
            "ok",
            "{\"v\":1,\"ok\":true,\"data\":{\"reloaded\":\"x\"}}\n",
        );
        let r: Reloaded = request_typed(&p, &Request::Reload).unwrap();
        assert_eq!(r.reloaded, "x");
        assert_eq!(
            h.join().unwrap(),
            "{\"v\":1,\"cmd\":\"reload\",\"args\":null}\n"
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn refusals_and_garbage_are_errors_in_words() {
        let (p, h) = serve(
            "refused",
            "{\"v\":1,\"ok\":false,\"error\":\"pipeline unavailable\"}\n",
        );
        let e = request(&p, &Request::Status).unwrap_err();
        assert_eq!(e.to_string(), "pipeline unavailable");
        h.join().unwrap();
        let _ = std::fs::remove_file(&p);
        let (p, h) = serve("garbage", "hello\n");
        let e = request(&p, &Request::Status).unwrap_err().to_string();
        assert!(e.starts_with("bad answer from the daemon: "), "{e}");
        h.join().unwrap();
        let _ = std::fs::remove_file(&p);
        let e = request(&p, &Request::Status).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot reach the daemon at {} (", p.display())),
            "{e}"
        );
    }
}
