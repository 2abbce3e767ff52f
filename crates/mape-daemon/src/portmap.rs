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

use mape_control::reply::OutsideSetAsks;
use mape_nat::{
    Endpoint, MappingOrigin, MappingRefusal, MappingRequest, Nat, Protocol, Timestamp, TokenBucket,
};
use mape_rules::{Ipv4Net, PortSet};
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
    /// A MAP request's suggested external port when it is outside the port set.
    pub outside: Option<(Protocol, u16)>,
}

/// Requests by protocol and result, for the metrics scrape; and, per LAN host, the
/// requests for external ports outside the port set (PCP, NAT-PMP and the UPnP IGD, for
/// `show status` and `mape doctor`).
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<(Wire, String), u64>>,
    outside: Mutex<BTreeMap<Ipv4Addr, OutsideSetAsks>>,
}

/// Hosts the outside-set tally keeps; a LAN has fewer, a flood of sources does not grow it.
const OUTSIDE_HOSTS: usize = 256;

impl Stats {
    /// Counts a request of `host` (by `via`: `pcp`, `nat_pmp`, `upnp`) for the external
    /// port `port` outside the port set (see [`outside_set`]).
    pub fn note_outside(&self, host: Ipv4Addr, via: &str, proto: Protocol, port: u16) {
        if let Ok(mut o) = self.outside.lock() {
            let full = o.len() >= OUTSIDE_HOSTS;
            if let Some(a) = o.get_mut(&host) {
                a.requests += 1;
                (a.via, a.proto, a.port) = (via.to_owned(), proto, port);
            } else if !full {
                o.insert(
                    host,
                    OutsideSetAsks {
                        host,
                        requests: 1,
                        via: via.to_owned(),
                        proto,
                        port,
                    },
                );
            }
        }
    }

    /// The hosts that asked for ports outside the set, the most requests first.
    pub fn outside_set(&self) -> Vec<OutsideSetAsks> {
        let mut v: Vec<OutsideSetAsks> = self
            .outside
            .lock()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.host.cmp(&b.host)));
        v
    }

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

    /// Writes the `mape_port_mapping_requests` and
    /// `mape_port_mapping_outside_set_requests` counters.
    pub fn metrics(&self, m: &mut Metrics) {
        for a in self.outside_set() {
            m.counter(
                "mape_port_mapping_outside_set_requests",
                "Port mapping requests (PCP, NAT-PMP, UPnP IGD) for an external port outside the port set, by LAN host",
                &[("host", &a.host.to_string())],
                a.requests,
            );
        }
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

/// `Some((proto, port))` when a request of the LAN for external port `port` asks for one
/// outside the port set: 0 is "any port" (RFC 6886 §3.3, RFC 6887 §11.1, IGD's
/// AddAnyPortMapping), never outside.
pub fn outside_set(ports: PortSet, proto: Protocol, port: u16) -> Option<(Protocol, u16)> {
    (port != 0 && !ports.contains(port)).then_some((proto, port))
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
    /// The unsolicited announcements of this epoch (`announce`).
    announce: announce::Schedule,
    /// The external address the last announcement check saw.
    last_external: Option<Ipv4Addr>,
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
            // RFC 6886 §3.2.1, RFC 6887 §14.1.3: a (re)started server announces itself.
            announce: announce::Schedule::start(now),
            last_external: None,
        }
    }

    fn epoch(&self, now: Timestamp) -> u32 {
        u32::try_from(now.millis().saturating_sub(self.epoch_start.millis()) / 1000)
            .unwrap_or(u32::MAX)
    }

    /// The unsolicited datagrams due at `now` for the group [`announce::GROUP`]: NAT-PMP's
    /// external address response (RFC 6886 §3.2.1) and PCP's ANNOUNCE response with
    /// SUCCESS and lifetime 0 (RFC 6887 §14.1.3), for the protocols switched on, each with
    /// the epoch of now; empty when no round is due. A new external address starts a new
    /// epoch and a new episode: mappings made for the old address are worthless, which
    /// clients learn from the epoch starting over (RFC 6887 §8.5, RFC 6886 §3.6).
    pub fn announcements(&mut self, nat: &Nat, now: Timestamp) -> Vec<Vec<u8>> {
        let ext = nat.external();
        if self.last_external.is_some_and(|e| e != ext) {
            self.epoch_start = now;
            self.announce = announce::Schedule::start(now);
        }
        self.last_external = Some(ext);
        if !self.announce.due(now) {
            return Vec::new();
        }
        let epoch = self.epoch(now);
        let mut out = Vec::new();
        if self.natpmp {
            let r = natpmp::Response {
                result: natpmp::ResultCode::Success.as_u16(),
                epoch,
                body: natpmp::ResponseBody::ExternalAddress(ext),
            };
            let mut b = vec![0u8; pcp::MAX_MESSAGE_LEN];
            if let Ok(n) = r.emit(&mut b) {
                b.truncate(n);
                out.push(b);
            }
        }
        if self.pcp {
            let r = pcp::Response {
                result: pcp::ResultCode::Success.as_u8(),
                lifetime: 0,
                epoch,
                op: pcp::ResponseOp::Announce,
                options: pcp::Options::empty(),
            };
            let mut b = vec![0u8; pcp::HEADER_LEN];
            if let Ok(n) = r.emit(&mut b) {
                b.truncate(n);
                out.push(b);
            }
        }
        out
    }

    /// When the next announcement round is due (`None`: none planned; a change of the
    /// external address is noticed at the next call of [`Responder::announcements`]).
    pub fn next_announcement(&self) -> Option<Timestamp> {
        self.announce.next()
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
                    outside: None,
                },
            )
        };
        if !self.lan.iter().any(|n| n.contains(*src.ip())) {
            return drop("not_lan");
        }
        // RFC 6887 §8.3: an overloaded server MAY silently discard requests (clients
        // retry) rather than answer NO_RESOURCES; a flood gets no answers to amplify.
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
        let ports = nat.port_set();
        let mut outside = None;
        let (len, result) = match server {
            Wire::NatPmp => match natpmp::Request::parse(data) {
                Ok(req) => {
                    if let natpmp::Request::Map {
                        protocol,
                        suggested_external_port,
                        lifetime: 1..,
                        ..
                    } = &req
                    {
                        let proto = natpmp_proto(*protocol);
                        outside = outside_set(ports, proto, *suggested_external_port);
                    }
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
                    if let (pcp::RequestOp::Map(m), 1..) = (req.op, req.lifetime) {
                        outside = pcp_proto(m.protocol)
                            .and_then(|p| outside_set(ports, p, m.external_port));
                    }
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
        (
            len,
            Outcome {
                wire,
                result,
                outside,
            },
        )
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
        let Some(proto) = pcp_proto(map.protocol) else {
            return (R::UnsuppProtocol, LONG_ERROR_S, echo);
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
            let proto = natpmp_proto(protocol);
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

/// The engine's protocol of a NAT-PMP opcode (RFC 6886 §3.3: 1 UDP, 2 TCP).
const fn natpmp_proto(p: natpmp::MapProtocol) -> Protocol {
    match p {
        natpmp::MapProtocol::Udp => Protocol::Udp,
        natpmp::MapProtocol::Tcp => Protocol::Tcp,
    }
}

/// The engine's protocol of a PCP protocol number (RFC 6887 §11.1: IANA numbers), `None`
/// for any but TCP and UDP.
const fn pcp_proto(p: u8) -> Option<Protocol> {
    match p {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        _ => None,
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
/// sees the server); multicast from each socket leaves by its own address's interface
/// (the announcements, `announce`).
pub async fn bind(listen: &[Ipv4Addr]) -> Result<Vec<Arc<tokio::net::UdpSocket>>, PortmapError> {
    let mut socks = Vec::with_capacity(listen.len());
    for &a in listen {
        let addr = SocketAddrV4::new(a, pcp::SERVER_PORT);
        let s = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| PortmapError::Bind { addr, source })?;
        multicast_from(&s, a).map_err(|source| PortmapError::Bind { addr, source })?;
        socks.push(Arc::new(s));
    }
    Ok(socks)
}

/// IP_MULTICAST_IF: the socket's multicast leaves by the interface of `addr` (ip(7)).
#[allow(unsafe_code)]
fn multicast_from(s: &tokio::net::UdpSocket, addr: Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let a = libc::in_addr {
        s_addr: u32::from(addr).to_be(),
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::in_addr>())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: setsockopt reads `len` bytes from a live `in_addr` on the stack; the fd is
    // the socket's own, open for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            std::ptr::from_ref(&a).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends the announcements (`Responder::announcements`) from every socket when due,
/// until the task is dropped; wakes at the next planned round, and at least once a
/// second to notice a new external address.
pub async fn announce(
    socks: Vec<Arc<tokio::net::UdpSocket>>,
    responder: Arc<Mutex<Responder>>,
    shared: Shared,
    clock: Instant,
) {
    loop {
        let now = now_since(clock);
        let due = {
            let (Ok(mut r), Ok(mut p)) = (responder.lock(), shared.lock()) else {
                return;
            };
            p.nat_mut()
                .map(|nat| (r.announcements(nat, now), r.next_announcement()))
        };
        let Some((datagrams, next)) = due else {
            return;
        };
        for d in &datagrams {
            for s in &socks {
                if let Err(e) = s.send_to(d, announce::GROUP).await {
                    tracing::debug!(error = %e, "port mappings: announcement not sent");
                }
            }
        }
        if !datagrams.is_empty() {
            tracing::debug!(group = %announce::GROUP, "port mappings: announced");
        }
        let wait = next.map_or(1000, |t| t.millis().saturating_sub(now.millis()).min(1000));
        tokio::time::sleep(std::time::Duration::from_millis(wait.max(1))).await;
    }
}

/// Serves one socket until the task is dropped: each datagram answered under the
/// datapath lock (one engine call; the reply is sent after the lock is released).
pub async fn serve(
    sock: Arc<tokio::net::UdpSocket>,
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
        if let Some((proto, port)) = outcome.outside {
            stats.note_outside(*src.ip(), outcome.wire.as_str(), proto, port);
        }
        tracing::debug!(client = %src, protocol = outcome.wire.as_str(), result = %outcome.result, "port mapping request");
        if len > 0 {
            if let Err(e) = sock.send_to(&out[..len], from).await {
                tracing::debug!(client = %src, error = %e, "port mappings: reply not sent");
            }
        }
    }
}

pub mod announce;
#[cfg(test)]
mod tests;
