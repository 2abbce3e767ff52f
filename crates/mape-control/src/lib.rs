//! The control protocol of the mape daemon: a Unix socket (mode 0600), one JSON request per
//! line and one JSON response per line, versioned ([`VERSION`]). This crate holds the typed
//! requests ([`Request`]) and replies ([`reply`]) that the daemon and its clients (`mape
//! show`, `mape top`, `mape doctor`, the lab) share, and the blocking client
//! ([`request`]). It pulls in no async runtime and no netlink, so the lab and tests can use
//! it as they are.
//!
//! On the wire: `{"v":1,"cmd":"status"}`, `snapshot`, `sessions` (args: host, dst, proto,
//! state, limit), `ports`, `reload`; the answer is `{"v":1,"ok":true,"data":...}` or
//! `{"v":1,"ok":false,"error":"..."}`.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
pub mod reply;
mod request;

pub use client::{decode, request, request_typed, ClientError};
pub use request::{Envelope, Request, RequestError, Response, SessionQuery, MAX_LINE, VERSION};
