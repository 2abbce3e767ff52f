//! Requests and responses on the wire: the [`Envelope`] every line is (`{"v":1,"cmd":...,
//! "args":...}`), the typed [`Request`] it stands for, and the [`Response`] envelope.
//! Control-socket input is untrusted: every way a line can be wrong is a [`RequestError`]
//! with words for the client, never a panic.

use std::net::Ipv4Addr;

use mape_nat::Protocol;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Protocol version.
pub const VERSION: u32 = 1;
/// Longest request line the daemon accepts, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// One request line as sent: version, command name, arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version ([`VERSION`]).
    pub v: u32,
    /// Command.
    pub cmd: String,
    /// Arguments (`null` for commands without any).
    #[serde(default)]
    pub args: Value,
}

/// What a client asks the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// MAP parameters, budget, traffic, drops, io counters ([`crate::reply::Status`]).
    Status,
    /// The NAT engine's snapshot ([`crate::reply::Snapshot`]).
    Snapshot,
    /// The session table, filtered ([`crate::reply::SessionInfo`]s).
    Sessions(SessionQuery),
    /// The snapshot with each host's UDP port cap.
    Ports,
    /// The port mappings LAN applications hold ([`crate::reply::MappingInfo`]s).
    Mappings,
    /// Re-read the configuration file (as SIGHUP does).
    Reload,
    /// Test-only fault injection (daemons built with the `failpoints` feature).
    Failpoint {
        /// The failpoint to arm.
        name: String,
    },
}

/// The filters of [`Request::Sessions`]; each one absent matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionQuery {
    /// Only this LAN host.
    #[serde(default)]
    pub host: Option<Ipv4Addr>,
    /// Only this remote address or `address:port`.
    #[serde(default)]
    pub dst: Option<String>,
    /// Only this protocol.
    #[serde(default)]
    pub proto: Option<Protocol>,
    /// Only this state (`unanswered`, `established`, ...).
    #[serde(default)]
    pub state: Option<String>,
    /// At most this many rows (the daemon's default: [`SessionQuery::DEFAULT_LIMIT`]; more
    /// than [`SessionQuery::MAX_LIMIT`] is answered with that many).
    #[serde(default)]
    pub limit: Option<u64>,
}

impl SessionQuery {
    /// Rows answered when the request names no limit.
    pub const DEFAULT_LIMIT: u64 = 1000;
    /// The most rows one answer holds; a larger `limit` is clamped to it (not refused:
    /// `mape show sessions --limit 100000` means "all of them" and keeps working). A row is
    /// about 250 bytes of JSON, so an answer stays near 2.5 MB, built outside the datapath
    /// lock; ten thousand rows is more than a CE's port budget has sessions in practice
    /// (a /8 of ports per customer is 4096 ports).
    pub const MAX_LIMIT: u64 = 10_000;

    /// The rows to answer: the limit asked for, else the default, at most the maximum.
    pub fn rows(&self) -> usize {
        let rows = self
            .limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .min(Self::MAX_LIMIT);
        usize::try_from(rows).unwrap_or(usize::MAX)
    }
}

#[derive(Deserialize)]
struct FailpointArgs {
    name: String,
}

/// Why a request line is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, or not an envelope.
    #[error("bad request: {0}")]
    Parse(#[source] serde_json::Error),
    /// Another protocol version.
    #[error("unsupported protocol version {0} (this daemon speaks {VERSION})")]
    Version(u32),
    /// No such command.
    #[error("unknown command {0:?} (status, snapshot, sessions, reload)")]
    UnknownCommand(String),
    /// The command's arguments do not parse.
    #[error("bad arguments for {cmd}: {source}")]
    Args {
        /// The command.
        cmd: &'static str,
        /// What is wrong.
        #[source]
        source: serde_json::Error,
    },
}

fn args<T: for<'de> Deserialize<'de> + Default>(
    cmd: &'static str,
    v: Value,
) -> Result<T, RequestError> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v).map_err(|source| RequestError::Args { cmd, source })
}

impl Request {
    /// The command name on the wire.
    pub fn cmd(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Snapshot => "snapshot",
            Request::Sessions(_) => "sessions",
            Request::Ports => "ports",
            Request::Mappings => "mappings",
            Request::Reload => "reload",
            Request::Failpoint { .. } => "failpoint",
        }
    }

    /// Parses one request line.
    pub fn from_line(line: &str) -> Result<Self, RequestError> {
        let env: Envelope = serde_json::from_str(line).map_err(RequestError::Parse)?;
        Self::from_envelope(env)
    }

    /// The request an envelope stands for.
    pub fn from_envelope(env: Envelope) -> Result<Self, RequestError> {
        if env.v != VERSION {
            return Err(RequestError::Version(env.v));
        }
        Ok(match env.cmd.as_str() {
            "status" => Request::Status,
            "snapshot" => Request::Snapshot,
            "sessions" => Request::Sessions(args("sessions", env.args)?),
            "ports" => Request::Ports,
            "mappings" => Request::Mappings,
            "reload" => Request::Reload,
            "failpoint" => {
                let a: FailpointArgs =
                    serde_json::from_value(env.args).map_err(|source| RequestError::Args {
                        cmd: "failpoint",
                        source,
                    })?;
                Request::Failpoint { name: a.name }
            }
            _ => return Err(RequestError::UnknownCommand(env.cmd)),
        })
    }

    /// The envelope sent for this request.
    pub fn to_envelope(&self) -> Envelope {
        let args = match self {
            Request::Sessions(q) => serde_json::to_value(q).unwrap_or(Value::Null),
            Request::Failpoint { name } => serde_json::json!({ "name": name }),
            _ => Value::Null,
        };
        Envelope {
            v: VERSION,
            cmd: self.cmd().into(),
            args,
        }
    }
}

/// A response line.
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
    /// A success carrying `data`.
    pub fn ok(data: Value) -> Self {
        Self {
            v: VERSION,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A success carrying a typed reply (serialised through [`Value`], so object keys go out
    /// sorted, as they always have).
    pub fn ok_typed<T: Serialize>(data: &T) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => Self::ok(v),
            Err(e) => Self::err(format!("cannot encode the answer: {e}")),
        }
    }

    /// A failure, in words.
    pub fn err(e: impl std::fmt::Display) -> Self {
        Self {
            v: VERSION,
            ok: false,
            data: None,
            error: Some(e.to_string()),
        }
    }

    /// The line sent for this response (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"v":1,"ok":false,"error":"cannot encode the answer"}"#.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_of_each_request() {
        // The lines the CLI has always sent (keys sorted, args null when there are none).
        let status = serde_json::to_string(&Request::Status.to_envelope()).unwrap();
        assert_eq!(status, r#"{"v":1,"cmd":"status","args":null}"#);
        let q = Request::Sessions(SessionQuery {
            host: Some(Ipv4Addr::new(192, 168, 1, 23)),
            proto: Some(Protocol::Udp),
            limit: Some(100),
            ..SessionQuery::default()
        });
        let line = serde_json::to_string(&q.to_envelope()).unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"cmd":"sessions","args":{"dst":null,"host":"192.168.1.23","limit":100,"proto":"udp","state":null}}"#
        );
        assert_eq!(Request::from_line(&line).unwrap(), q);
        for r in [Request::Snapshot, Request::Ports, Request::Reload] {
            let line = serde_json::to_string(&r.to_envelope()).unwrap();
            assert_eq!(Request::from_line(&line).unwrap(), r);
        }
        let f = Request::Failpoint { name: "x".into() };
        let line = serde_json::to_string(&f.to_envelope()).unwrap();
        assert_eq!(Request::from_line(&line).unwrap(), f);
    }

    #[test]
    fn missing_args_mean_no_filter() {
        let r = Request::from_line(r#"{"v":1,"cmd":"sessions"}"#).unwrap();
        assert_eq!(r, Request::Sessions(SessionQuery::default()));
        let r = Request::from_line(r#"{"v":1,"cmd":"sessions","args":{"limit":5}}"#).unwrap();
        assert_eq!(
            r,
            Request::Sessions(SessionQuery {
                limit: Some(5),
                ..SessionQuery::default()
            })
        );
    }

    #[test]
    fn the_limit_defaults_and_is_clamped_to_the_maximum() {
        let q = |limit| SessionQuery {
            limit,
            ..SessionQuery::default()
        };
        assert_eq!(q(None).rows(), 1000);
        assert_eq!(q(Some(0)).rows(), 0);
        assert_eq!(q(Some(7)).rows(), 7);
        assert_eq!(q(Some(10_000)).rows(), 10_000);
        assert_eq!(q(Some(10_001)).rows(), 10_000);
        assert_eq!(q(Some(u64::MAX)).rows(), 10_000);
    }

    #[test]
    fn bad_lines_are_errors_in_words() {
        let cases = [
            ("{nonsense", "bad request: "),
            ("", "bad request: "),
            ("[1,2]", "bad request: "),
            (r#"{"cmd":"status"}"#, "bad request: missing field `v`"),
            (
                r#"{"v":2,"cmd":"status"}"#,
                "unsupported protocol version 2",
            ),
            (r#"{"v":1,"cmd":"dance"}"#, "unknown command \"dance\""),
            (
                r#"{"v":1,"cmd":"sessions","args":{"host":"bogus"}}"#,
                "bad arguments for sessions: ",
            ),
            (
                r#"{"v":1,"cmd":"sessions","args":{"proto":"sctp"}}"#,
                "bad arguments for sessions: unknown variant `sctp`",
            ),
            (
                r#"{"v":1,"cmd":"sessions","args":{"limit":-1}}"#,
                "bad arguments for sessions: ",
            ),
            (
                r#"{"v":1,"cmd":"failpoint"}"#,
                "bad arguments for failpoint: ",
            ),
        ];
        for (line, want) in cases {
            let e = Request::from_line(line).expect_err(line).to_string();
            assert!(e.starts_with(want), "{line}: {e}");
        }
    }
}
