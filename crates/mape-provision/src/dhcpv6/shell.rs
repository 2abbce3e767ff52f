//! The DHCPv6 client's IO: a UDP socket on port 546 of one interface (socket2: bound to the
//! device, multicast out of it to [ff02::1:2]:547), the interface's MAC and index from
//! /sys, the stored DUID, and a blocking run of the machine until an event or a deadline.

use std::fs;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use socket2::{Domain, Protocol, Socket as RawSocket, Type};

use super::machine::{hex, Client, Duid, DuidError, Event, Step};
use super::message::{self, ServerKind, ALL_SERVERS, CLIENT_PORT, SERVER_PORT};
use crate::machine::Time;

/// What the shell could not do.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The interface is unknown or unreadable in /sys/class/net.
    #[error("interface {name}: {detail}")]
    Interface {
        /// Interface name.
        name: String,
        /// What went wrong.
        detail: String,
    },
    /// A socket call failed.
    #[error("DHCPv6 socket on {interface}: {what}: {source}")]
    Socket {
        /// Interface name.
        interface: String,
        /// The call.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The stored DUID is unreadable or unwritable.
    #[error("DUID file {path}: {detail}")]
    DuidFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

fn sys(interface: &str, file: &str) -> Result<String, ShellError> {
    if interface.is_empty() || interface.contains('/') || interface.starts_with('.') {
        return Err(ShellError::Interface {
            name: interface.into(),
            detail: "not an interface name".into(),
        });
    }
    let p = Path::new("/sys/class/net").join(interface).join(file);
    fs::read_to_string(&p)
        .map(|s| s.trim().to_owned())
        .map_err(|e| ShellError::Interface {
            name: interface.into(),
            detail: format!("{}: {e}", p.display()),
        })
}

/// The interface's index.
pub fn ifindex(interface: &str) -> Result<u32, ShellError> {
    let s = sys(interface, "ifindex")?;
    s.parse().map_err(|_| ShellError::Interface {
        name: interface.into(),
        detail: format!("ifindex {s:?} is not a number"),
    })
}

/// The interface's Ethernet MAC.
pub fn mac(interface: &str) -> Result<[u8; 6], ShellError> {
    let s = sys(interface, "address")?;
    let bad = || ShellError::Interface {
        name: interface.into(),
        detail: format!("address {s:?} is not an Ethernet MAC"),
    };
    let bytes = mape_rules::provision::parse_hex(&s).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// An IAID stable for the interface (RFC 8415 §12: the same across restarts): the last
/// four bytes of its MAC.
pub fn iaid(mac: [u8; 6]) -> u32 {
    u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])
}

/// The DUID stored at `path`, or a new DUID-LLT (RFC 8415 §11.2) of `mac` made at
/// `unix` seconds and stored there (its directory must exist): the client keeps one
/// identity across restarts and MAC changes.
pub fn load_or_create_duid(path: &Path, mac: [u8; 6], unix: u64) -> Result<Duid, ShellError> {
    let err = |detail: String| ShellError::DuidFile {
        path: path.into(),
        detail,
    };
    match fs::read_to_string(path) {
        Ok(text) => Duid::from_hex(&text).map_err(|e: DuidError| err(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let duid = Duid::link_layer_time(mac, unix);
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, duid.to_hex() + "\n").map_err(|e| err(e.to_string()))?;
            fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(duid)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// The client's socket: [::]:546 bound to one interface.
#[derive(Debug)]
pub struct Socket {
    sock: UdpSocket,
    interface: String,
    ifindex: u32,
}

impl Socket {
    /// Opens it (needs CAP_NET_BIND_SERVICE for port 546 and CAP_NET_RAW for
    /// SO_BINDTODEVICE).
    pub fn open(interface: &str) -> Result<Self, ShellError> {
        let ifindex = ifindex(interface)?;
        let e = |what: &'static str| {
            let interface = interface.to_owned();
            move |source| ShellError::Socket {
                interface,
                what,
                source,
            }
        };
        let s =
            RawSocket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(e("socket"))?;
        s.set_only_v6(true).map_err(e("IPV6_V6ONLY"))?;
        // Another client on another interface may hold port 546 too.
        s.set_reuse_address(true).map_err(e("SO_REUSEADDR"))?;
        s.bind_device(Some(interface.as_bytes()))
            .map_err(e("SO_BINDTODEVICE"))?;
        s.set_multicast_if_v6(ifindex)
            .map_err(e("IPV6_MULTICAST_IF"))?;
        s.set_multicast_loop_v6(false)
            .map_err(e("IPV6_MULTICAST_LOOP"))?;
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0);
        s.bind(&SocketAddr::V6(any).into())
            .map_err(e("bind [::]:546"))?;
        Ok(Self {
            sock: s.into(),
            interface: interface.into(),
            ifindex,
        })
    }

    /// The interface.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Sends a client message to All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
    pub fn send(&self, bytes: &[u8]) -> Result<(), ShellError> {
        let to = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, self.ifindex);
        self.sock
            .send_to(bytes, to)
            .map(|_| ())
            .map_err(|source| ShellError::Socket {
                interface: self.interface.clone(),
                what: "send to [ff02::1:2]:547",
                source,
            })
    }

    /// Waits up to `timeout` for a datagram from port 547; `None` when none came.
    pub fn recv(&self, timeout: Duration, buf: &mut [u8]) -> Result<Option<usize>, ShellError> {
        let err = |source| ShellError::Socket {
            interface: self.interface.clone(),
            what: "recv",
            source,
        };
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(err)?;
        match self.sock.recv_from(buf) {
            Ok((n, from)) if from.port() == SERVER_PORT => Ok(Some(n)),
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// The std socket, e.g. for `tokio::net::UdpSocket::from_std` after
    /// `set_nonblocking(true)`.
    pub fn into_std(self) -> UdpSocket {
        self.sock
    }
}

/// What a run did: the events and one line per datagram sent or received.
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    /// The machine's events, in order.
    pub events: Vec<Event>,
    /// "send Solicit xid 1a2b3c", "recv Advertise xid 1a2b3c from 00:03:…".
    pub lines: Vec<String>,
}

fn describe_sent(bytes: &[u8]) -> String {
    let kind = match bytes.first() {
        Some(1) => "Solicit",
        Some(3) => "Request",
        Some(5) => "Renew",
        Some(6) => "Rebind",
        Some(11) => "Information-request",
        _ => "message",
    };
    format!(
        "send {kind} xid {}",
        hex(bytes.get(1..4).unwrap_or(&[])).replace(':', "")
    )
}

fn describe_received(bytes: &[u8]) -> String {
    match message::parse(bytes) {
        Ok(m) => {
            let kind = match m.kind {
                ServerKind::Advertise => "Advertise",
                ServerKind::Reply => "Reply",
            };
            let mut l = format!(
                "recv {kind} xid {} from {}",
                hex(&m.xid).replace(':', ""),
                hex(&m.server_id)
            );
            if let Some(s) = &m.status {
                l += &format!(" status {s}");
            }
            for ia in &m.ia_pd {
                for p in &ia.prefixes {
                    l += &format!(" prefix {} valid {}", p.prefix, p.valid);
                }
                if let Some(s) = &ia.status {
                    l += &format!(" ia-status {s}");
                }
            }
            if !m.s46.is_empty() {
                l += " s46-cont-mape";
            }
            if let Some(r) = m.refresh {
                l += &format!(" refresh {r}");
            }
            l
        }
        Err(e) => format!("recv ({e})"),
    }
}

/// Runs `client` (started by the caller) on `socket` until `stop` says an event is the
/// last one wanted, or until `deadline` (then the log ends without it). `now` is the
/// caller's clock.
pub fn run<R: Rng>(
    client: &mut Client<R>,
    socket: &Socket,
    now: impl Fn() -> Time,
    deadline: Time,
    mut stop: impl FnMut(&Event) -> bool,
) -> Result<RunLog, ShellError> {
    let mut log = RunLog::default();
    let mut buf = vec![0u8; 65_536];
    let mut step = Step::default();
    loop {
        if let Some(b) = step.send.take() {
            log.lines.push(describe_sent(&b));
            socket.send(&b)?;
        }
        for e in step.events.drain(..) {
            let done = stop(&e);
            log.events.push(e);
            if done {
                return Ok(log);
            }
        }
        let t = now();
        if t >= deadline {
            return Ok(log);
        }
        let wake = client.next_timer().unwrap_or(deadline).min(deadline);
        if wake <= t {
            step = client.on_timer(t);
            continue;
        }
        step = match socket.recv(wake - t, &mut buf)? {
            Some(n) => {
                let bytes = &buf[..n];
                log.lines.push(describe_received(bytes));
                client.on_packet(now(), bytes)
            }
            None => client.on_timer(now()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duid_is_created_once_then_read() {
        let dir = std::env::temp_dir().join(format!("mape-duid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("duid");
        let _ = fs::remove_file(&path);
        let mac = [2, 0, 0, 0, 0, 1];
        let a = load_or_create_duid(&path, mac, 946_684_800 + 86_400).unwrap();
        assert_eq!(a, Duid::link_layer_time(mac, 946_684_800 + 86_400));
        // Later, another MAC: the stored identity stays.
        let b = load_or_create_duid(&path, [2, 0, 0, 0, 0, 9], 2_000_000_000).unwrap();
        assert_eq!(a, b);
        fs::write(&path, "zz").unwrap();
        assert!(load_or_create_duid(&path, mac, 0).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn interface_names_and_loopback() {
        assert!(ifindex("../etc").is_err());
        assert!(ifindex("").is_err());
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert_eq!(iaid([2, 0, 0xa, 0xb, 0xc, 0xd]), 0x0a0b0c0d);
    }
}
