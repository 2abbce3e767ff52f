//! The control protocol of the mape daemon: a Unix socket (mode 0600), one JSON request per
//! line and one JSON response per line, versioned ([`VERSION`]). This crate holds the typed
//! requests ([`Request`]) and replies ([`reply`]) that the daemon and its clients (`mape
//! show`, `mape top`, `mape doctor`, the lab) share, and the blocking client
//! ([`request`]). It pulls in no async runtime and no netlink, so the lab and tests can use
//! it as they are.
//!
//! On the wire: `{"v":1,"cmd":"status"}`, `snapshot`, `sessions` (args: host, dst, proto,
//! state, limit), `ports`, `mappings`, `reload`; the answer is `{"v":1,"ok":true,"data":...}` or
//! `{"v":1,"ok":false,"error":"..."}`.
//!
//! The daemon bounds every client: a line longer than [`MAX_LINE`] bytes, or no complete
//! line within 5 s of connecting or of the previous answer, gets an error line and the
//! connection is closed; over 16 clients at once, the next one gets an error line and is
//! closed (it does not wait); `sessions` answers at most [`SessionQuery::MAX_LIMIT`]
//! rows, a larger `limit` is clamped.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
pub mod reply;
mod request;
pub mod words;

pub use client::{decode, request, request_typed, ClientError};
pub use request::{Envelope, Request, RequestError, Response, SessionQuery, MAX_LINE, VERSION};
