//! The LAN-side port mapping server: PCP (RFC 6887) and NAT-PMP (RFC 6886) on UDP 5351
//! of the CE's LAN addresses, both answered from the same engine calls
//! (`Nat::request_mapping`, `delete_mapping`), so every mapping is inside the port set and
//! counted against the asking host's share.
//!
//! [`Responder::answer`] is IO-free (a datagram and its source in, the reply bytes and
//! what happened out); [`serve`] is the socket loop around it. Requests from outside the
//! LAN prefixes and floods beyond the rate limit are dropped and counted; malformed ones
//! get the protocol's error (or a counted drop where the RFC says to stay silent). The
//! internal address of a mapping is always the packet's source: NAT-PMP has no other, and
//! a PCP request naming another one is answered `ADDRESS_MISMATCH` (RFC 6887 §8.3).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mape_nat::{
    Endpoint, MappingOrigin, MappingRefusal, MappingRequest, Nat, Protocol, Timestamp, TokenBucket,
};
use mape_rules::Ipv4Net;
use mape_wire::{natpmp, pcp};

use crate::clock::now_since;
use crate::metrics::Metrics;
use crate::pipeline::Shared;

/// How long a PCP error that will not go away by itself holds (RFC 6887 §7.2: "long
/// lifetime" errors, e.g. 30 minutes).
const LONG_ERROR_S: u32 = 1800;
/// How long a PCP error that may clear holds (NO_RESOURCES and the like).
const SHORT_ERROR_S: u32 = 30;

/// Which protocol a datagram was (the `protocol` label of the request counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wire {
    /// PCP (version 2, or any version but 0).
    Pcp,
    /// NAT-PMP (version 0).
    NatPmp,
}

impl Wire {
    /// The label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Wire::Pcp => "pcp",
            Wire::NatPmp => "nat_pmp",
        }
    }
}

/// What one datagram came to: the protocol and a result label (the protocol's result
/// code in snake case, or why it was dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which protocol.
    pub wire: Wire,
    /// `success`, `no_resources`, ... or a drop: `not_lan`, `rate_limited`, `disabled`,
    /// `truncated`, `not_a_request`.
    pub result: String,
}

/// Requests by protocol and result, for the metrics scrape.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<(Wire, String), u64>>,
}

impl Stats {
    /// Counts one outcome.
    pub fn note(&self, o: &Outcome) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((o.wire, o.result.clone())).or_default() += 1;
        }
    }

    /// The count of one (protocol, result), for tests.
    pub fn count(&self, wire: Wire, result: &str) -> u64 {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(&(wire, result.to_owned())).copied())
            .unwrap_or(0)
    }

    /// Writes the `mape_port_mapping_requests` counter.
    pub fn metrics(&self, m: &mut Metrics) {
        let Ok(c) = self.counts.lock() else {
            return;
        };
        for ((wire, result), n) in c.iter() {
            m.counter(
                "mape_port_mapping_requests",
                "PCP and NAT-PMP requests, by protocol and result",
                &[("protocol", wire.as_str()), ("result", result)],
                *n,
            );
        }
    }
}

/// The IO-free server.
#[derive(Debug)]
pub struct Responder {
    pcp: bool,
    natpmp: bool,
    lan: Vec<Ipv4Net>,
    bucket: TokenBucket,
    /// The engine time of the server's start (the epoch of RFC 6887 §8.5 / RFC 6886 §3.6).
    epoch_start: Timestamp,
    /// The mapping nonce of each PCP mapping (RFC 6887 §11.3): a request for an existing
    /// mapping with another nonce is NOT_AUTHORIZED. Mappings made by NAT-PMP or IGD have
    /// none until a PCP request renews them; entries of mappings gone are pruned.
    nonces: BTreeMap<(Protocol, Endpoint), [u8; 12]>,
}

fn snake(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn v4_mapped(a: Ipv4Addr) -> Ipv6Addr {
    a.to_ipv6_mapped()
}

impl Responder {
    /// A server for the protocols switched on, answering hosts of `lan` at most
    /// `per_sec` requests a second, started at `now`.
    pub fn new(pcp: bool, natpmp: bool, lan: Vec<Ipv4Net>, per_sec: u32, now: Timestamp) -> Self {
        Self {
            pcp,
            natpmp,
            lan,
            bucket: TokenBucket::new(per_sec.max(1), per_sec.max(1)),
            epoch_start: now,
            nonces: BTreeMap::new(),
        }
    }

    fn epoch(&self, now: Timestamp) -> u32 {
        u32::try_from(now.millis().saturating_sub(self.epoch_start.millis()) / 1000)
            .unwrap_or(u32::MAX)
    }

    /// Answers the datagram `data` from `src` at `now` into `out` (at least
    /// [`pcp::MAX_MESSAGE_LEN`] bytes); returns the reply's length (0: no reply) and
    /// what happened.
    pub fn answer(
        &mut self,
        nat: &mut Nat,
        now: Timestamp,
        src: SocketAddrV4,
        data: &[u8],
        out: &mut [u8],
    ) -> (usize, Outcome) {
        // RFC 6887 §9: version 0 is NAT-PMP, anything else PCP.
        let wire = if data.first() == Some(&natpmp::VERSION) {
            Wire::NatPmp
        } else {
            Wire::Pcp
        };
        let drop = |why: &str| {
            (
                0,
                Outcome {
                    wire,
                    result: why.to_owned(),
                },
            )
        };
        if !self.lan.iter().any(|n| n.contains(*src.ip())) {
            return drop("not_lan");
        }
        if !self.bucket.try_take(now) {
            return drop("rate_limited");
        }
        // Which server answers: a NAT-PMP-only one answers PCP in NAT-PMP's terms
        // (unsupported version, RFC 6887 §9), which its parser gives for any version but
        // 0; a PCP-only one answers NAT-PMP with PCP's UNSUPP_VERSION.
        let server = match wire {
            _ if !self.pcp && !self.natpmp => return drop("disabled"),
            Wire::NatPmp if self.natpmp => Wire::NatPmp,
            _ if self.pcp => Wire::Pcp,
            _ => Wire::NatPmp,
        };
        let epoch = self.epoch(now);
        let (len, result) = match server {
            Wire::NatPmp => match natpmp::Request::parse(data) {
                Ok(req) => {
                    let resp = natpmp_answer(nat, now, *src.ip(), epoch, req);
                    let label = resp
                        .result_code()
                        .map_or_else(|| "other".to_owned(), |c| snake(c.as_str()));
                    (resp.emit(out).unwrap_or(0), label)
                }
                Err(e) => (
                    e.response(epoch)
                        .and_then(|r| r.emit(out).ok())
                        .unwrap_or(0),
                    e.as_str().to_owned(),
                ),
            },
            Wire::Pcp => match pcp::Request::parse(data) {
                Ok(req) => {
                    let (code, lifetime, op) = self.pcp_op(nat, now, src, &req);
                    let resp = pcp::Response {
                        result: code.as_u8(),
                        lifetime,
                        epoch,
                        op,
                        options: pcp::Options::empty(),
                    };
                    (resp.emit(out).unwrap_or(0), snake(code.as_str()))
                }
                Err(e) => (
                    e.response(LONG_ERROR_S, epoch)
                        .and_then(|r| r.emit(out).ok())
                        .unwrap_or(0),
                    e.as_str().to_owned(),
                ),
            },
        };
        (len, Outcome { wire, result })
    }

    /// The result code, lifetime and payload of the answer to a well-formed request.
    fn pcp_op(
        &mut self,
        nat: &mut Nat,
        now: Timestamp,
        src: SocketAddrV4,
        req: &pcp::Request<'_>,
    ) -> (pcp::ResultCode, u32, pcp::ResponseOp) {
        use pcp::ResultCode as R;
        let echo = match req.op {
            pcp::RequestOp::Announce => pcp::ResponseOp::Announce,
            pcp::RequestOp::Map(m) => pcp::ResponseOp::Map(m),
        };
        // §8.3: the client's address field must be the packet's source (no NAT between
        // the client and this server, no mapping for another host).
        if req.client_ip != v4_mapped(*src.ip()) {
            return (R::AddressMismatch, LONG_ERROR_S, echo);
        }
        // §7.3: an option in the mandatory range (0-127) this server does not process
        // fails the request; PREFER_FAILURE (§13.2) is processed; the optional ones are
        // ignored.
        let mut prefer_failure = false;
        for (code, _) in req.options.iter() {
            match code {
                pcp::option::PREFER_FAILURE => prefer_failure = true,
                c if c < 128 => return (R::UnsuppOption, LONG_ERROR_S, echo),
                _ => {}
            }
        }
        let map = match req.op {
            // §14.1: ANNOUNCE is answered SUCCESS with lifetime 0.
            pcp::RequestOp::Announce => return (R::Success, 0, echo),
            pcp::RequestOp::Map(m) => m,
        };
        let proto = match map.protocol {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            _ => return (R::UnsuppProtocol, LONG_ERROR_S, echo),
        };
        let internal = Endpoint::new(*src.ip(), map.internal_port);
        if map.internal_port == 0 {
            // §11.1: internal port 0 is for protocol 0 (all protocols) only.
            return (R::MalformedRequest, LONG_ERROR_S, echo);
        }
        // §11.3: "If the internal address, protocol, and internal port match an existing
        // mapping, but the mapping nonce does not match, the request MUST be rejected with
        // a NOT_AUTHORIZED error with the Lifetime of the error indicating duration of
        // that existing mapping" (a delete too, §15).
        let key = (proto, internal);
        if nat.mapping_of(proto, internal).is_some() {
            if let Some(n) = self.nonces.get(&key) {
                if *n != map.nonce {
                    let left = nat
                        .port_mappings(now)
                        .iter()
                        .find(|i| (i.proto, i.internal) == key)
                        .map_or(0, |i| u32::try_from(i.left_ms / 1000).unwrap_or(u32::MAX));
                    return (R::NotAuthorized, left, echo);
                }
            }
        } else {
            self.nonces.remove(&key);
        }
        let ours = v4_mapped(nat.external());
        let zero = [Ipv6Addr::UNSPECIFIED, v4_mapped(Ipv4Addr::UNSPECIFIED)];
        let mut assigned = map;
        assigned.external_ip = ours;
        if req.lifetime == 0 {
            // §15: delete; answered SUCCESS with lifetime 0 whether or not it existed.
            nat.delete_mapping(now, proto, internal);
            self.nonces.remove(&key);
            return (R::Success, 0, pcp::ResponseOp::Map(assigned));
        }
        if prefer_failure && !zero.contains(&map.external_ip) && map.external_ip != ours {
            return (R::CannotProvideExternal, SHORT_ERROR_S, echo);
        }
        let r = MappingRequest {
            proto,
            internal,
            suggested: map.external_port,
            lifetime_s: req.lifetime,
            exact: prefer_failure && map.external_port != 0,
            origin: MappingOrigin::Pcp,
        };
        match nat.request_mapping(now, &r) {
            Ok(g) => {
                self.remember_nonce(nat, key, map.nonce);
                assigned.external_port = g.external.port;
                (R::Success, g.lifetime_s, pcp::ResponseOp::Map(assigned))
            }
            Err(refusal) => {
                let (code, life) = pcp_code(&refusal);
                (code, life, echo)
            }
        }
    }
}

/// The NAT-PMP answer to a well-formed request from `src` (RFC 6886 §3.2, §3.3, §3.4).
fn natpmp_answer(
    nat: &mut Nat,
    now: Timestamp,
    src: Ipv4Addr,
    epoch: u32,
    req: natpmp::Request,
) -> natpmp::Response {
    match req {
        natpmp::Request::ExternalAddress => natpmp::Response {
            result: natpmp::ResultCode::Success.as_u16(),
            epoch,
            body: natpmp::ResponseBody::ExternalAddress(nat.external()),
        },
        natpmp::Request::Map {
            protocol,
            internal_port,
            suggested_external_port,
            lifetime,
        } => {
            let proto = match protocol {
                natpmp::MapProtocol::Udp => Protocol::Udp,
                natpmp::MapProtocol::Tcp => Protocol::Tcp,
            };
            let (result, external_port, lifetime) = if lifetime == 0 {
                // RFC 6886 §3.4: delete; internal port 0 deletes all of the client's.
                if internal_port == 0 {
                    nat.delete_host_mappings(now, src, Some(proto));
                } else {
                    nat.delete_mapping(now, proto, Endpoint::new(src, internal_port));
                }
                (natpmp::ResultCode::Success, 0, 0)
            } else {
                let req = MappingRequest {
                    proto,
                    internal: Endpoint::new(src, internal_port),
                    suggested: suggested_external_port,
                    lifetime_s: lifetime,
                    exact: false,
                    origin: MappingOrigin::NatPmp,
                };
                match nat.request_mapping(now, &req) {
                    Ok(g) => (natpmp::ResultCode::Success, g.external.port, g.lifetime_s),
                    Err(r) => (natpmp_code(&r), 0, 0),
                }
            };
            natpmp::Response {
                result: result.as_u16(),
                epoch,
                body: natpmp::ResponseBody::Map {
                    protocol,
                    internal_port,
                    external_port,
                    lifetime,
                },
            }
        }
    }
}

impl Responder {
    /// Keeps the nonce of a granted PCP mapping; past twice the engine's mapping count
    /// (plus slack) the entries of mappings that are gone (expired, deleted by another
    /// protocol) are dropped, so the table stays bounded by the live mappings.
    fn remember_nonce(&mut self, nat: &Nat, key: (Protocol, Endpoint), nonce: [u8; 12]) {
        self.nonces.insert(key, nonce);
        let live = usize::try_from(nat.mapping_count()).unwrap_or(usize::MAX);
        if self.nonces.len() > live.saturating_mul(2).saturating_add(64) {
            self.nonces
                .retain(|&(p, e), _| nat.mapping_of(p, e).is_some());
        }
    }
}

/// RFC 6886 §3.5's result code for a refusal.
fn natpmp_code(r: &MappingRefusal) -> natpmp::ResultCode {
    match r {
        MappingRefusal::Invalid | MappingRefusal::Protocol(_) => natpmp::ResultCode::NotAuthorized,
        _ => natpmp::ResultCode::OutOfResources,
    }
}

/// RFC 6887 §7.4's result code for a refusal, with how long it holds.
fn pcp_code(r: &MappingRefusal) -> (pcp::ResultCode, u32) {
    use pcp::ResultCode as R;
    match r {
        MappingRefusal::HostShare { .. }
        | MappingRefusal::NoFreePort
        | MappingRefusal::HostLimit => (R::NoResources, SHORT_ERROR_S),
        MappingRefusal::TooMany { .. } => (R::UserExQuota, SHORT_ERROR_S),
        MappingRefusal::OutsidePortSet { .. } | MappingRefusal::Conflict { .. } => {
            (R::CannotProvideExternal, SHORT_ERROR_S)
        }
        MappingRefusal::Protocol(_) => (R::UnsuppProtocol, LONG_ERROR_S),
        MappingRefusal::Invalid => (R::MalformedRequest, LONG_ERROR_S),
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PortmapError {
    /// A listen address could not be bound (not an address of this host, or in use).
    #[error("port mappings: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds UDP 5351 on each LAN address (never a wildcard address: the WAN side never
/// sees the server).
pub async fn bind(listen: &[Ipv4Addr]) -> Result<Vec<tokio::net::UdpSocket>, PortmapError> {
    let mut socks = Vec::with_capacity(listen.len());
    for &a in listen {
        let addr = SocketAddrV4::new(a, pcp::SERVER_PORT);
        let s = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| PortmapError::Bind { addr, source })?;
        socks.push(s);
    }
    Ok(socks)
}

/// Serves one socket until the task is dropped: each datagram answered under the
/// datapath lock (one engine call; the reply is sent after the lock is released).
pub async fn serve(
    sock: tokio::net::UdpSocket,
    responder: Arc<Mutex<Responder>>,
    shared: Shared,
    clock: Instant,
    stats: Arc<Stats>,
) {
    let mut buf = vec![0u8; pcp::MAX_MESSAGE_LEN + 4];
    let mut out = vec![0u8; pcp::MAX_MESSAGE_LEN];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "port mappings: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let SocketAddr::V4(src) = from else {
            continue;
        };
        let now = now_since(clock);
        let answered = {
            let (Ok(mut r), Ok(mut p)) = (responder.lock(), shared.lock()) else {
                return;
            };
            p.nat_mut()
                .map(|nat| r.answer(nat, now, src, &buf[..n], &mut out))
        };
        let Some((len, outcome)) = answered else {
            return;
        };
        stats.note(&outcome);
        tracing::debug!(client = %src, protocol = outcome.wire.as_str(), result = %outcome.result, "port mapping request");
        if len > 0 {
            if let Err(e) = sock.send_to(&out[..len], from).await {
                tracing::debug!(client = %src, error = %e, "port mappings: reply not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests;
