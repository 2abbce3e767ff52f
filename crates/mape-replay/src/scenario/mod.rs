//! Built-in traffic scenarios, generated lazily and deterministically from a seed.
//!
//! A scenario is a set of *actors* (a browser, a QUIC stream, a mouse utility, a torrent
//! client...) on a small event heap: each actor wakes, schedules the packets of what it
//! does (both directions, answers included, timed by a round trip) and its next wake-up.
//! Packets come out in time order; memory holds only what is scheduled, never the whole
//! run. The same seed gives the same packets on every machine.
//!
//! The home LAN is 192.168.1.0/24; normal hosts are 192.168.1.10, .11, ... (skipping the
//! special hosts .23, .30, .40 and .211; the churning hosts .220 and .221 lie above the 200
//! normal hosts `--hosts` allows). Every internet address is a public one (documentation
//! ranges would be refused by mape's destination filter as special-purpose).
//!
//! | scenario | what it models | what `--rate-x` multiplies |
//! |---|---|---|
//! | `flow-storm` | the seed incident: 192.168.1.23 (Logitech Options+ "Flow") sends 2–4 UDP packets every 3 s, each from a new source port, to 192.168.1.211:59870 and :59781 — a private address of another network, never answered — beside a normal household | the storm's rate (bursts per second) |
//! | `dns-burst` | a browser on 192.168.1.30 resolving 150–400 names in 1–3 s bursts every ~2 min (new source port per name, A and AAAA, ~3 % unanswered, some names followed by an HTTPS connection) | the burst frequency |
//! | `p2p` | a torrent client on 192.168.1.40: DHT queries from UDP 6881 to a new peer every 0.5 s (half answered) and TCP connections to new peers every 2 s (40 % answered, the rest retransmit their SYN and give up) | both peer rates |
//! | `tcp-churn` | ordinary TCP churn (issue #18): 192.168.1.220 opens short connections to one server, 104.16.124.96:80, about 5 a second, each from the next ephemeral port (SYN, SYN-ACK, ACK, one request and response, FIN both ways), and every 8–12 s resolves a name and connects to another server (HTTPS) | the connection rate |
//! | `udp-churn` | ordinary UDP and ICMP churn (issue #18): 192.168.1.221 sends one datagram from the next ephemeral port to 104.16.124.96:7008, answered once ~20 ms later, 25 a second; pings the same server with a new echo identifier twice a second (answered); resolves a name every 3.6–5.4 s | the datagram and ping rates |
//! | `normal-home` | only the normal household | every actor's rate |
//!
//! The normal household, per host: web browsing (a DNS query to a public resolver with a
//! new source port, answered within milliseconds, then an HTTPS TCP connection with
//! SYN, SYN-ACK, a few request/response exchanges and FIN both ways), one long-lived QUIC
//! flow (UDP 443, answered, renewed every 2–15 minutes), and on the first host a ping every
//! minute.
//!
//! The churning hosts pick source ports as Linux does for `connect()` and unbound UDP
//! sockets in a loop: the next port of `ip_local_port_range` (32768–60999), so no port
//! comes back before the range wraps (after 28 232 flows: about 94 min at ×1 for
//! `tcp-churn`, 19 min for `udp-churn`). Rates above one flow per millisecond come in
//! bursts on the millisecond.
//!
//! Note for `flow-storm` written with `--write-pcap`: 192.168.1.211 lies inside
//! 192.168.1.0/24, so replaying it with `--lan 192.168.1.0/24` would count the storm as
//! LAN-local traffic; the default (private sources are the LAN) replays it as the router
//! saw it in the incident.

use core::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

use mape_nat::{Endpoint, TcpFlags};

use crate::packet::Packet;
use crate::rng::Rng;

mod params;

pub use params::{ScenarioError, ScenarioKind, ScenarioParams, DEFAULT_SEED};

/// One generated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioPacket {
    /// Milliseconds from the scenario start.
    pub at_ms: u64,
    /// The packet.
    pub packet: Packet,
    /// Payload bytes (for `--write-pcap`).
    pub payload: u16,
}

#[derive(Debug, Clone, Copy)]
enum Actor {
    Web {
        host: Ipv4Addr,
        mean_gap_ms: f64,
    },
    Quic {
        host: Ipv4Addr,
        flow: Option<(Endpoint, Endpoint)>,
        ends_at: u64,
        gap_scale: f64,
    },
    Ping {
        host: Ipv4Addr,
        id: u16,
        period_ms: u64,
    },
    Storm {
        host: Ipv4Addr,
        period_ms: f64,
    },
    DnsBurst {
        host: Ipv4Addr,
        period_ms: f64,
    },
    Dht {
        host: Ipv4Addr,
        gap_ms: f64,
    },
    PeerTcp {
        host: Ipv4Addr,
        gap_ms: f64,
    },
    /// `tcp-churn`: one short connection to [`CHURN_SERVER`]:80 per wake.
    TcpChurn {
        host: Ipv4Addr,
        gap_ms: f64,
        next_port: u16,
    },
    /// `udp-churn`: one datagram to [`CHURN_SERVER`]:7008 per wake, answered once.
    UdpChurn {
        host: Ipv4Addr,
        gap_ms: f64,
        next_port: u16,
    },
    /// `udp-churn`: a single ping (`ping -c1`) with a new identifier per wake.
    PingChurn {
        host: Ipv4Addr,
        gap_ms: f64,
        next_id: u16,
    },
    /// What shows the churning host locked out or not: a DNS lookup every
    /// `period_ms` (±20 %), then (`connect`) a connection to a web server.
    Probe {
        host: Ipv4Addr,
        period_ms: u64,
        connect: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Packet(Packet, u16),
    Wake(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on (time, sequence).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

const RESOLVERS: [Ipv4Addr; 2] = [Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)];
const WEB_SERVERS: [Ipv4Addr; 6] = [
    Ipv4Addr::new(142, 250, 196, 110),
    Ipv4Addr::new(151, 101, 1, 140),
    Ipv4Addr::new(104, 16, 132, 229),
    Ipv4Addr::new(13, 107, 42, 14),
    Ipv4Addr::new(17, 253, 144, 10),
    Ipv4Addr::new(157, 240, 22, 35),
];
const QUIC_SERVERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(142, 250, 196, 110),
    Ipv4Addr::new(172, 217, 175, 3),
    Ipv4Addr::new(104, 16, 133, 229),
];
/// First octets of public unicast space used for random peers.
const PUBLIC_FIRST: [u8; 16] = [
    24, 31, 37, 46, 58, 62, 77, 81, 84, 89, 95, 110, 121, 151, 185, 212,
];
/// The incident: the Logitech Options+ Flow host and its two destinations.
pub const STORM_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 23);
/// Where Flow sends (a private address of another network).
pub const STORM_DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 211);
/// The storm's destination ports.
pub const STORM_PORTS: [u16; 2] = [59870, 59781];
/// The browser of `dns-burst`.
pub const BURST_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 30);
/// The torrent client of `p2p`.
pub const P2P_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 40);
/// The churning host of `tcp-churn`.
pub const TCP_CHURN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 220);
/// The churning host of `udp-churn`.
pub const UDP_CHURN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 221);
/// The one server both churns talk to (a public address: a documentation range such as
/// 203.0.113.0/24 would be filtered by mape as special-purpose and never use a port).
pub const CHURN_SERVER: Ipv4Addr = Ipv4Addr::new(104, 16, 124, 96);
/// The churning TCP connections' server port.
pub const TCP_CHURN_PORT: u16 = 80;
/// The churning UDP datagrams' server port.
pub const UDP_CHURN_PORT: u16 = 7008;
/// `tcp-churn`'s connections per second at `--rate-x 1`.
pub const TCP_CHURN_PER_S: f64 = 5.0;
/// `udp-churn`'s datagrams per second at `--rate-x 1`.
pub const UDP_CHURN_PER_S: f64 = 25.0;
/// `udp-churn`'s single pings per second at `--rate-x 1`.
pub const PING_CHURN_PER_S: f64 = 2.0;
/// Linux's default `net.ipv4.ip_local_port_range`.
const LINUX_EPHEMERAL: (u16, u16) = (32768, 60999);

/// The address of normal host `i` (192.168.1.10 upwards, skipping the special hosts).
pub fn normal_host(i: u32) -> Ipv4Addr {
    let mut n = 10u32;
    let mut k = 0u32;
    loop {
        if ![23, 30, 40, 211, 220, 221].contains(&n) {
            if k == i {
                break;
            }
            k += 1;
        }
        n += 1;
    }
    Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 1, 0)) + n.min(254))
}

/// An initial sequence number for the connection `from → to` opened at `t0` (a hash, as in
/// RFC 6528, deterministic and without a draw from the scenario's generator).
fn isn(from: Endpoint, to: Endpoint, t0: u64) -> u32 {
    let key =
        u64::from(u32::from(from.addr)) << 32 | u64::from(from.port) << 16 | u64::from(to.port);
    let mut z = key ^ u64::from(u32::from(to.addr)).rotate_left(17) ^ t0.wrapping_mul(0x9e37_79b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// The next port of Linux's ephemeral range after `p` (wrapping at the top).
fn next_ephemeral(p: u16) -> u16 {
    let (lo, hi) = LINUX_EPHEMERAL;
    if p >= hi || p < lo {
        lo
    } else {
        p + 1
    }
}

/// A running scenario: an iterator of packets in time order.
#[derive(Debug)]
pub struct Scenario {
    params: ScenarioParams,
    end_ms: u64,
    rng: Rng,
    heap: BinaryHeap<Item>,
    actors: Vec<Actor>,
    seq: u64,
}

impl Scenario {
    /// Builds the actors of `params` (validated first).
    pub fn new(params: ScenarioParams) -> Result<Self, ScenarioError> {
        params.validate()?;
        let mut s = Self {
            end_ms: params.duration_s.saturating_mul(1000),
            rng: Rng::new(params.seed),
            heap: BinaryHeap::new(),
            actors: Vec::new(),
            seq: 0,
            params,
        };
        let x = s.params.rate_x;
        let kind = s.params.kind;
        let home_x = if kind == ScenarioKind::NormalHome {
            x
        } else {
            1.0
        };
        for i in 0..s.params.hosts.unwrap_or(kind.default_hosts()) {
            let host = normal_host(i);
            s.add(Actor::Web {
                host,
                mean_gap_ms: 20_000.0 / home_x,
            });
            s.add(Actor::Quic {
                host,
                flow: None,
                ends_at: 0,
                gap_scale: 1.0 / home_x,
            });
            if i == 0 {
                s.add(Actor::Ping {
                    host,
                    id: 0x1d00,
                    period_ms: ((60_000.0 / home_x) as u64).max(1),
                });
            }
        }
        match kind {
            ScenarioKind::FlowStorm => s.add(Actor::Storm {
                host: STORM_HOST,
                period_ms: 3000.0 / x,
            }),
            ScenarioKind::DnsBurst => s.add(Actor::DnsBurst {
                host: BURST_HOST,
                period_ms: 120_000.0 / x,
            }),
            ScenarioKind::P2p => {
                s.add(Actor::Dht {
                    host: P2P_HOST,
                    gap_ms: 500.0 / x,
                });
                s.add(Actor::PeerTcp {
                    host: P2P_HOST,
                    gap_ms: 2000.0 / x,
                });
            }
            ScenarioKind::NormalHome => {}
            ScenarioKind::TcpChurn => {
                let next_port = s.first_ephemeral();
                s.add(Actor::TcpChurn {
                    host: TCP_CHURN_HOST,
                    gap_ms: 1000.0 / (TCP_CHURN_PER_S * x),
                    next_port,
                });
                s.add(Actor::Probe {
                    host: TCP_CHURN_HOST,
                    period_ms: 10_000,
                    connect: true,
                });
            }
            ScenarioKind::UdpChurn => {
                let next_port = s.first_ephemeral();
                s.add(Actor::UdpChurn {
                    host: UDP_CHURN_HOST,
                    gap_ms: 1000.0 / (UDP_CHURN_PER_S * x),
                    next_port,
                });
                let next_id = s.rng.range(1, 65535) as u16;
                s.add(Actor::PingChurn {
                    host: UDP_CHURN_HOST,
                    gap_ms: 1000.0 / (PING_CHURN_PER_S * x),
                    next_id,
                });
                s.add(Actor::Probe {
                    host: UDP_CHURN_HOST,
                    period_ms: 4500,
                    connect: false,
                });
            }
        }
        Ok(s)
    }

    /// The parameters.
    pub fn params(&self) -> &ScenarioParams {
        &self.params
    }

    /// The scenario's length in milliseconds.
    pub fn end_ms(&self) -> u64 {
        self.end_ms
    }

    fn add(&mut self, a: Actor) {
        let i = self.actors.len();
        self.actors.push(a);
        let start = self.rng.range(0, 5000);
        self.wake(i, start);
    }

    fn wake(&mut self, actor: usize, at: u64) {
        self.push_ev(at, Ev::Wake(actor));
    }

    fn push_ev(&mut self, at: u64, ev: Ev) {
        if at >= self.end_ms {
            return;
        }
        self.seq += 1;
        self.heap.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn push(&mut self, at: u64, p: Packet, payload: u16) {
        self.push_ev(at, Ev::Packet(p, payload));
    }

    fn ephemeral(&mut self) -> u16 {
        self.rng.range(49152, 65535) as u16
    }

    /// Where a churning host's port counter starts.
    fn first_ephemeral(&mut self) -> u16 {
        let (lo, hi) = LINUX_EPHEMERAL;
        self.rng.range(u64::from(lo), u64::from(hi)) as u16
    }

    /// How many flows a churning actor starts at this wake and when it wakes next: one per
    /// `gap_ms` (uniform ±50 %), several on the same millisecond when the gap is shorter.
    fn churn_pace(&mut self, now: u64, gap_ms: f64) -> (u32, u64) {
        let burst = (1.0 / gap_ms).ceil().max(1.0);
        let jitter = 0.5 + self.rng.unit();
        let next = (now as f64 + gap_ms * burst * jitter).round() as u64;
        (burst as u32, next.max(now + 1))
    }

    fn public_peer(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.rng.pick(&PUBLIC_FIRST, 24),
            self.rng.range(1, 254) as u8,
            self.rng.range(0, 255) as u8,
            self.rng.range(1, 254) as u8,
        )
    }

    /// A DNS query from a new port at `t`; returns when the answer arrives (if any).
    fn dns(&mut self, t: u64, host: Ipv4Addr, answered: bool) -> u64 {
        let resolver = self.rng.pick(&RESOLVERS, RESOLVERS[0]);
        let q = Packet::udp(
            Endpoint::new(host, self.ephemeral()),
            Endpoint::new(resolver, 53),
        );
        self.push(t, q, 40);
        let rtt = self.rng.range(8, 40);
        if answered {
            self.push(t + rtt, q.reversed(0), 120);
        }
        t + rtt
    }

    /// A TCP connection from a new port at `t0`: handshake, `exchanges` request/response
    /// pairs, FIN both ways. Unanswered: the SYN is retransmitted at +1, +3 and +7 s.
    fn tcp(&mut self, t0: u64, host: Ipv4Addr, server: Endpoint, answered: bool, exchanges: u32) {
        let src = Endpoint::new(host, self.ephemeral());
        self.tcp_from(t0, src, server, answered, exchanges, (100, 2000));
    }

    /// [`Scenario::tcp`] from a given source endpoint; after each response the client
    /// thinks for `think_ms` (uniform) before its next request or its FIN.
    fn tcp_from(
        &mut self,
        t0: u64,
        src: Endpoint,
        server: Endpoint,
        answered: bool,
        exchanges: u32,
        think_ms: (u64, u64),
    ) {
        const SYN: u8 = TcpFlags::SYN;
        const ACK: u8 = TcpFlags::ACK;
        const FIN: u8 = TcpFlags::FIN;
        const PSH: u8 = 0x08;
        const REQUEST: u16 = 400;
        const RESPONSE: u16 = 1200;
        // Sequence numbers as a real stack numbers them: each side starts at its own initial
        // number, SYN and FIN count one, data its length; every ACK names the other side's
        // next number. The initial numbers are a hash of the connection (RFC 6528 style),
        // not draws from the generator, so numbering changed no other field of any scenario.
        let (mut c, mut s) = (isn(src, server, t0), isn(server, src, t0));
        let syn = Packet::tcp_numbered(src, server, SYN, c, 0);
        if !answered {
            for d in [0, 1000, 3000, 7000] {
                self.push(t0 + d, syn, 0);
            }
            return;
        }
        let rtt = self.rng.range(10, 60);
        let out = |f: u8, seq: u32, ack: u32| Packet::tcp_numbered(src, server, f, seq, ack);
        let inp = |f: u8, seq: u32, ack: u32| Packet::tcp_numbered(server, src, f, seq, ack);
        let mut t = t0;
        self.push(t, syn, 0);
        c = c.wrapping_add(1);
        self.push(t + rtt, inp(SYN | ACK, s, c), 0);
        s = s.wrapping_add(1);
        t += rtt + 1;
        self.push(t, out(ACK, c, s), 0);
        for _ in 0..exchanges {
            self.push(t, out(PSH | ACK, c, s), REQUEST);
            c = c.wrapping_add(u32::from(REQUEST));
            self.push(t + rtt, inp(PSH | ACK, s, c), RESPONSE);
            s = s.wrapping_add(u32::from(RESPONSE));
            self.push(t + rtt + 1, out(ACK, c, s), 0);
            t += rtt + self.rng.range(think_ms.0, think_ms.1);
        }
        self.push(t, out(FIN | ACK, c, s), 0);
        c = c.wrapping_add(1);
        self.push(t + rtt, inp(FIN | ACK, s, c), 0);
        s = s.wrapping_add(1);
        self.push(t + rtt + 1, out(ACK, c, s), 0);
    }

    fn step(&mut self, i: usize, now: u64) {
        let Some(actor) = self.actors.get(i).copied() else {
            return;
        };
        match actor {
            Actor::Web { host, mean_gap_ms } => {
                let t = self.dns(now, host, true);
                let server = Endpoint::new(self.rng.pick(&WEB_SERVERS, WEB_SERVERS[0]), 443);
                let n = self.rng.range(2, 6) as u32;
                self.tcp(t + 2, host, server, true, n);
                let next = now + self.rng.exp(mean_gap_ms);
                self.wake(i, next);
            }
            Actor::Quic {
                host,
                flow,
                ends_at,
                gap_scale,
            } => {
                let scale = |v: u64| ((v as f64 * gap_scale) as u64).max(1);
                let (flow, ends_at) = match flow {
                    Some(f) if now < ends_at => (f, ends_at),
                    _ => {
                        let src = Endpoint::new(host, self.ephemeral());
                        let dst = Endpoint::new(self.rng.pick(&QUIC_SERVERS, QUIC_SERVERS[0]), 443);
                        let life = self.rng.range(120_000, 900_000);
                        ((src, dst), now + life)
                    }
                };
                let p = Packet::udp(flow.0, flow.1);
                self.push(now, p, 1200);
                let rtt = self.rng.range(15, 40);
                self.push(now + rtt, p.reversed(0), 1200);
                let gap = scale(self.rng.range(500, 5000));
                if now + gap >= ends_at {
                    // This flow ends; the next one starts after a pause.
                    let pause = scale(self.rng.range(5000, 60_000));
                    self.actors[i] = Actor::Quic {
                        host,
                        flow: None,
                        ends_at: 0,
                        gap_scale,
                    };
                    self.wake(i, now + pause);
                } else {
                    self.actors[i] = Actor::Quic {
                        host,
                        flow: Some(flow),
                        ends_at,
                        gap_scale,
                    };
                    self.wake(i, now + gap);
                }
            }
            Actor::Ping {
                host,
                id,
                period_ms,
            } => {
                let dst = RESOLVERS[0];
                let p = Packet::echo_request(host, id, dst);
                self.push(now, p, 56);
                self.push(now + 12, p.reversed(0), 56);
                self.wake(i, now + period_ms);
            }
            Actor::Storm { host, period_ms } => {
                let n = self.rng.range(2, 4);
                let spacing = ((period_ms / 8.0) as u64).clamp(0, 5);
                for k in 0..n {
                    let port = STORM_PORTS[(k % 2) as usize];
                    let p = Packet::udp(
                        Endpoint::new(host, self.ephemeral()),
                        Endpoint::new(STORM_DST, port),
                    );
                    self.push(now + k * spacing, p, 30);
                }
                let next = (now as f64 + period_ms).round() as u64;
                self.wake(i, next.max(now + 1));
            }
            Actor::DnsBurst { host, period_ms } => {
                let names = self.rng.range(150, 400);
                let span = self.rng.range(1000, 3000);
                for k in 0..names {
                    let t = now + k * span / names;
                    let answered = !self.rng.chance(0.03);
                    let q = Packet::udp(
                        Endpoint::new(host, self.ephemeral()),
                        Endpoint::new(RESOLVERS[1], 53),
                    );
                    let rtt = self.rng.range(10, 80);
                    // A and AAAA from the same port.
                    self.push(t, q, 40);
                    self.push(t + 1, q, 40);
                    if answered {
                        self.push(t + rtt, q.reversed(0), 120);
                        self.push(t + rtt + 1, q.reversed(0), 140);
                        if self.rng.chance(0.15) {
                            let server = Endpoint::new(self.public_peer(), 443);
                            let n = self.rng.range(1, 4) as u32;
                            self.tcp(t + rtt + 3, host, server, true, n);
                        }
                    }
                }
                let jitter = 0.7 + 0.6 * self.rng.unit();
                let next = now + ((period_ms * jitter) as u64).max(span + 1);
                self.wake(i, next);
            }
            Actor::Dht { host, gap_ms } => {
                let peer = Endpoint::new(self.public_peer(), self.rng.range(1024, 65535) as u16);
                let p = Packet::udp(Endpoint::new(host, 6881), peer);
                self.push(now, p, 100);
                if self.rng.chance(0.5) {
                    let rtt = self.rng.range(50, 300);
                    self.push(now + rtt, p.reversed(0), 300);
                }
                let next = now + self.rng.exp(gap_ms);
                self.wake(i, next);
            }
            Actor::PeerTcp { host, gap_ms } => {
                let peer = Endpoint::new(self.public_peer(), self.rng.range(1024, 65535) as u16);
                let answered = self.rng.chance(0.4);
                let n = self.rng.range(5, 20) as u32;
                self.tcp(now, host, peer, answered, n);
                let next = now + self.rng.exp(gap_ms);
                self.wake(i, next);
            }
            Actor::TcpChurn {
                host,
                gap_ms,
                mut next_port,
            } => {
                let (n, next) = self.churn_pace(now, gap_ms);
                let server = Endpoint::new(CHURN_SERVER, TCP_CHURN_PORT);
                for _ in 0..n {
                    let src = Endpoint::new(host, next_port);
                    next_port = next_ephemeral(next_port);
                    // connect, one request, the response, close: no think time.
                    self.tcp_from(now, src, server, true, 1, (1, 5));
                }
                self.actors[i] = Actor::TcpChurn {
                    host,
                    gap_ms,
                    next_port,
                };
                self.wake(i, next);
            }
            Actor::UdpChurn {
                host,
                gap_ms,
                mut next_port,
            } => {
                let (n, next) = self.churn_pace(now, gap_ms);
                let server = Endpoint::new(CHURN_SERVER, UDP_CHURN_PORT);
                for _ in 0..n {
                    let p = Packet::udp(Endpoint::new(host, next_port), server);
                    next_port = next_ephemeral(next_port);
                    self.push(now, p, 64);
                    let rtt = self.rng.range(15, 25);
                    self.push(now + rtt, p.reversed(0), 64);
                }
                self.actors[i] = Actor::UdpChurn {
                    host,
                    gap_ms,
                    next_port,
                };
                self.wake(i, next);
            }
            Actor::PingChurn {
                host,
                gap_ms,
                mut next_id,
            } => {
                let (n, next) = self.churn_pace(now, gap_ms);
                for _ in 0..n {
                    let p = Packet::echo_request(host, next_id, CHURN_SERVER);
                    // A new `ping -c1` process, a new identifier (never 0).
                    next_id = next_id.checked_add(1).unwrap_or(1);
                    self.push(now, p, 56);
                    let rtt = self.rng.range(10, 30);
                    self.push(now + rtt, p.reversed(0), 56);
                }
                self.actors[i] = Actor::PingChurn {
                    host,
                    gap_ms,
                    next_id,
                };
                self.wake(i, next);
            }
            Actor::Probe {
                host,
                period_ms,
                connect,
            } => {
                let t = self.dns(now, host, true);
                if connect {
                    let server = Endpoint::new(self.rng.pick(&WEB_SERVERS, WEB_SERVERS[0]), 443);
                    let n = self.rng.range(1, 3) as u32;
                    self.tcp(t + 2, host, server, true, n);
                }
                let jitter = self.rng.range(period_ms * 4 / 5, period_ms * 6 / 5);
                self.wake(i, now + jitter.max(1));
            }
        }
    }
}

impl Iterator for Scenario {
    type Item = ScenarioPacket;

    fn next(&mut self) -> Option<ScenarioPacket> {
        while let Some(item) = self.heap.pop() {
            match item.ev {
                Ev::Packet(packet, payload) => {
                    return Some(ScenarioPacket {
                        at_ms: item.at,
                        packet,
                        payload,
                    })
                }
                Ev::Wake(i) => self.step(i, item.at),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mape_nat::Protocol;

    fn take(kind: ScenarioKind, secs: u64) -> Vec<ScenarioPacket> {
        let mut p = ScenarioParams::new(kind);
        p.duration_s = secs;
        Scenario::new(p).unwrap().collect()
    }

    #[test]
    fn packets_come_in_time_order_within_the_duration() {
        for kind in ScenarioKind::ALL {
            let v = take(kind, 300);
            assert!(!v.is_empty(), "{kind}");
            assert!(v.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{kind}");
            assert!(v.iter().all(|p| p.at_ms < 300_000), "{kind}");
        }
    }

    #[test]
    fn same_seed_same_packets_other_seed_other_packets() {
        let a = take(ScenarioKind::FlowStorm, 120);
        let b = take(ScenarioKind::FlowStorm, 120);
        assert_eq!(a, b);
        let mut p = ScenarioParams::new(ScenarioKind::FlowStorm);
        p.duration_s = 120;
        p.seed = 1;
        let c: Vec<_> = Scenario::new(p).unwrap().collect();
        assert_ne!(a, c);
    }

    #[test]
    fn flow_storm_rate_matches_the_incident() {
        let v = take(ScenarioKind::FlowStorm, 600);
        let storm: Vec<_> = v
            .iter()
            .filter(|p| p.packet.src.addr == STORM_HOST)
            .collect();
        // 2-4 packets every 3 s: 400-800 in 10 minutes.
        assert!((380..=820).contains(&storm.len()), "{}", storm.len());
        assert!(storm.iter().all(|p| p.packet.dst.addr == STORM_DST
            && STORM_PORTS.contains(&p.packet.dst.port)
            && p.packet.proto == Protocol::Udp));
        assert!(
            v.iter().all(|p| p.packet.src.addr != STORM_DST),
            "never answered"
        );
        // New source ports: almost all distinct.
        let mut ports: Vec<_> = storm.iter().map(|p| p.packet.src.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert!(ports.len() * 10 >= storm.len() * 9);
        // The household is there and answered.
        assert!(v
            .iter()
            .any(|p| p.packet.dst.addr == normal_host(0) && p.packet.src.port == 53));
    }

    #[test]
    fn rate_x_multiplies_the_bad_pattern_only() {
        let mut p = ScenarioParams::new(ScenarioKind::FlowStorm);
        p.duration_s = 60;
        p.rate_x = 100.0;
        let v: Vec<_> = Scenario::new(p).unwrap().collect();
        let storm = v.iter().filter(|p| p.packet.src.addr == STORM_HOST).count();
        assert!(storm > 5000, "{storm}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = ScenarioParams::new(ScenarioKind::P2p);
        p.rate_x = 0.0;
        assert!(Scenario::new(p.clone()).is_err());
        p.rate_x = 1.0;
        p.duration_s = 0;
        assert!(Scenario::new(p.clone()).is_err());
        p.duration_s = 10;
        p.hosts = Some(1000);
        assert!(Scenario::new(p).is_err());
        assert!("nope".parse::<ScenarioKind>().is_err());
        assert_eq!("p2p".parse::<ScenarioKind>(), Ok(ScenarioKind::P2p));
    }

    #[test]
    fn normal_hosts_skip_the_special_ones() {
        let hosts: Vec<_> = (0..20).map(normal_host).collect();
        assert_eq!(hosts[0], Ipv4Addr::new(192, 168, 1, 10));
        assert!(!hosts.contains(&STORM_HOST));
        assert!(!hosts.contains(&BURST_HOST));
        assert!(!hosts.contains(&P2P_HOST));
        assert_eq!(normal_host(199), Ipv4Addr::new(192, 168, 1, 213));
        assert!(!hosts.contains(&STORM_DST));
        let all: Vec<_> = (0..200).map(normal_host).collect();
        assert!(!all.contains(&TCP_CHURN_HOST));
        assert!(!all.contains(&UDP_CHURN_HOST));
    }

    #[test]
    fn churn_ports_walk_linux_ephemeral_range_and_wrap() {
        assert_eq!(next_ephemeral(32768), 32769);
        assert_eq!(next_ephemeral(60998), 60999);
        assert_eq!(next_ephemeral(60999), 32768);
        assert_eq!(next_ephemeral(1024), 32768);
        let mut s = Scenario::new(ScenarioParams::new(ScenarioKind::TcpChurn)).unwrap();
        for _ in 0..1000 {
            assert!((32768..=60999).contains(&s.first_ephemeral()));
        }
    }

    #[test]
    fn churn_servers_are_not_special_purpose() {
        let f = mape_nat::DestinationFilter::default();
        assert_eq!(f.blocked(CHURN_SERVER), None);
        for a in WEB_SERVERS.iter().chain(&RESOLVERS) {
            assert_eq!(f.blocked(*a), None, "{a}");
        }
    }
}
