//! Ordinary churn (issue #18): loops of short TCP connections, one-shot UDP exchanges from
//! new source ports, and the servers they talk to. The clients are small python3 scripts
//! run inside a LAN namespace; each loop is bounded in time and in count, keeps a fixed
//! concurrency, and prints one JSON object at the end. Used by the lab tests
//! (`crates/mape/tests/lab_churn.rs`) and by the `conn_240` row of `mape lab bench`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::topology::Lab;

/// The lab's UDP echo server (203.0.113.10): answers each datagram with itself.
pub const UDP_ECHO_PORT: u16 = 7008;
/// The lab's TCP listener that accepts and closes at once (203.0.113.10): every connection
/// is a full handshake plus teardown, the server closing first (as HTTP/1.0 does).
pub const TCP_CLOSE_PORT: u16 = 7009;

/// The internet host's TCP server that waits for the client's FIN before it closes:
/// with [`ConnMode::ClientFirst`] every connection is a full handshake plus teardown that
/// leaves no TIME_WAIT at the server (the client closes first), so a NAT that reuses an
/// external port soon is not answered by the server's old connection.
pub const TCP_WAIT_PORT: u16 = 7010;

/// Servers of the lab's internet host: `udp-echo HOST:PORT`, `tcp-close HOST:PORT` or
/// `tcp-wait HOST:PORT` (close after the client's FIN).
pub(crate) const SERVERS_PY: &str = r#"
import socket, sys
mode, addr = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(':', 1)
if mode == 'udp-echo':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)
elif mode == 'tcp-close':
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, int(port)))
    l.listen(4096)
    while True:
        try:
            c, _ = l.accept()
        except OSError:
            continue
        c.close()
elif mode == 'tcp-wait':
    import selectors
    sel = selectors.DefaultSelector()
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, int(port)))
    l.listen(4096)
    l.setblocking(False)
    sel.register(l, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is l:
                try:
                    c, _ = l.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            else:
                c = key.fileobj
                try:
                    d = c.recv(4096)
                except OSError:
                    d = b''
                if not d:
                    sel.unregister(c)
                    c.close()
else:
    sys.exit('unknown mode ' + mode)
"#;

/// TCP connect loop: `HOST PORT SECS THREADS TIMEOUT_MS MODE PAUSE_MS MAX`.
/// Each of THREADS workers, one connection at a time: connect (TIMEOUT_MS bounds every
/// socket operation), then MODE `eof` waits for the server's FIN or MODE `http` sends
/// `GET /index.html HTTP/1.0` and reads the 200 response to EOF; then close. After a
/// failure a worker pauses PAUSE_MS. Stops at SECS or after MAX connections (0: no cap).
pub(crate) const CONNLOOP_PY: &str = r#"
import errno, json, socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
secs, threads, tmo = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]) / 1000.0
mode, pause, cap = sys.argv[6], int(sys.argv[7]) / 1000.0, int(sys.argv[8])
req = b'GET /index.html HTTP/1.0\r\nHost: ' + host.encode() + b'\r\n\r\n'
lock = threading.Lock()
st = {'ok': 0, 'fail': 0, 'errors': {}, 'first_fail_after': None,
      'first_fail_at_s': None, 'first_error': None}
t0 = time.monotonic()
deadline = t0 + secs

def one():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(tmo)
        s.connect((host, port))
        if mode == 'http':
            s.sendall(req)
            data = b''
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            if b' 200 ' not in data.split(b'\r\n', 1)[0]:
                return 'bad-response'
        elif mode == 'client-first':
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) != b'':
                return 'data-instead-of-eof'
        elif s.recv(1) != b'':
            return 'data-instead-of-eof'
        return None
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()

def worker():
    while True:
        with lock:
            if time.monotonic() >= deadline or (cap and st['ok'] + st['fail'] >= cap):
                return
        err = one()
        with lock:
            if err is None:
                st['ok'] += 1
            else:
                st['fail'] += 1
                st['errors'][err] = st['errors'].get(err, 0) + 1
                if st['first_error'] is None:
                    st['first_fail_after'] = st['ok']
                    st['first_fail_at_s'] = round(time.monotonic() - t0, 3)
                    st['first_error'] = err
        if err is not None and pause:
            time.sleep(pause)

ws = [threading.Thread(target=worker) for _ in range(max(1, threads))]
for w in ws:
    w.start()
for w in ws:
    w.join()
st['secs'] = round(time.monotonic() - t0, 3)
print(json.dumps(st), flush=True)
"#;

/// One-shot UDP exchanges: `HOST PORT RATE SECS TIMEOUT_MS MAX BASE_PORT`. Exchange i is
/// due at i / RATE s: a new socket bound to source port BASE_PORT + i (so every exchange is
/// a new flow), connected, sends one datagram and waits up to TIMEOUT_MS for its echo, then
/// closes. Stops at SECS or after MAX exchanges.
pub(crate) const UDPX_PY: &str = r#"
import errno, json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
rate, secs, tmo = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]) / 1000.0
cap, base = int(sys.argv[6]), int(sys.argv[7])
st = {'sent': 0, 'replied': 0, 'fail': 0, 'errors': {}, 'first_fail_after': None,
      'first_fail_at_s': None, 'first_error': None}
t0 = time.monotonic()
deadline = t0 + secs
i = 0
while i < cap:
    due = t0 + i / rate
    now = time.monotonic()
    if due >= deadline or now >= deadline:
        break
    if due > now:
        time.sleep(due - now)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    err = None
    try:
        s.settimeout(tmo)
        s.bind(('0.0.0.0', base + i))
        s.connect((host, port))
        msg = b'mape-lab %d' % i
        s.send(msg)
        while s.recv(2048) != msg:
            pass
    except socket.timeout:
        err = 'timeout'
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()
    st['sent'] += 1
    if err is None:
        st['replied'] += 1
    else:
        st['fail'] += 1
        st['errors'][err] = st['errors'].get(err, 0) + 1
        if st['first_error'] is None:
            st['first_fail_after'] = st['replied']
            st['first_fail_at_s'] = round(time.monotonic() - t0, 3)
            st['first_error'] = err
    i += 1
st['secs'] = round(time.monotonic() - t0, 3)
print(json.dumps(st), flush=True)
"#;

/// What a client does on each TCP connection once it is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnMode {
    /// Wait for the server's FIN (for [`TCP_CLOSE_PORT`]), then close.
    Eof,
    /// `GET /index.html HTTP/1.0`, read the 200 response to EOF, close.
    Http,
    /// Send FIN first, wait for the server's (for [`TCP_WAIT_PORT`]), then close.
    ClientFirst,
}

/// A TCP connect loop.
#[derive(Debug, Clone)]
pub struct ConnLoop {
    /// Destination.
    pub target: (Ipv4Addr, u16),
    /// How long the loop runs.
    pub duration: Duration,
    /// Workers, each with one connection at a time.
    pub concurrency: u32,
    /// Bound on every socket operation (connect, each read).
    pub timeout: Duration,
    /// What each connection does.
    pub mode: ConnMode,
    /// Pause of a worker after a failed connection.
    pub fail_pause: Duration,
    /// At most this many connections (0: bounded by time only).
    pub max: u64,
}

/// What a loop counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnLoopResult {
    /// Connections that completed.
    pub ok: u64,
    /// Connections that failed.
    pub fail: u64,
    /// Failures by errno name (`ECONNREFUSED`, `EHOSTUNREACH`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Completed connections before the first failure.
    pub first_fail_after: Option<u64>,
    /// Seconds into the loop of the first failure.
    pub first_fail_at_s: Option<f64>,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds the loop ran.
    pub secs: f64,
}

impl ConnLoopResult {
    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// A loop of one-shot UDP exchanges.
#[derive(Debug, Clone)]
pub struct UdpExchanges {
    /// The echo server.
    pub target: (Ipv4Addr, u16),
    /// Exchanges per second.
    pub rate: u32,
    /// How long the loop runs.
    pub duration: Duration,
    /// How long each exchange waits for its reply.
    pub timeout: Duration,
    /// At most this many exchanges.
    pub max: u32,
    /// Source port of the first exchange; exchange i uses `base_port + i`.
    pub base_port: u16,
}

/// What the UDP loop counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UdpExchangesResult {
    /// Datagrams sent (one per exchange).
    pub sent: u64,
    /// Exchanges answered.
    pub replied: u64,
    /// Exchanges that failed.
    pub fail: u64,
    /// Failures by errno name.
    pub errors: BTreeMap<String, u64>,
    /// Answered exchanges before the first failure.
    pub first_fail_after: Option<u64>,
    /// Seconds into the loop of the first failure.
    pub first_fail_at_s: Option<f64>,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds the loop ran.
    pub secs: f64,
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

impl ConnLoop {
    fn args(&self, lab: &Lab) -> Vec<String> {
        vec![
            "python3".into(),
            lab.dir.join("connloop.py").display().to_string(),
            self.target.0.to_string(),
            self.target.1.to_string(),
            format!("{:.3}", self.duration.as_secs_f64()),
            self.concurrency.max(1).to_string(),
            ms(self.timeout),
            match self.mode {
                ConnMode::Eof => "eof".into(),
                ConnMode::Http => "http".into(),
                ConnMode::ClientFirst => "client-first".into(),
            },
            ms(self.fail_pause),
            self.max.to_string(),
        ]
    }

    /// Runs the loop in `ns` and waits for it.
    pub fn run(&self, lab: &Lab, ns: &str) -> Result<ConnLoopResult, LabError> {
        let args = self.args(lab);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lab.exec(ns, &argv)?;
        parse_last_json(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| LabError::Command {
            cmd: args.join(" "),
            detail: format!("no result: {}", String::from_utf8_lossy(&out.stderr).trim()),
        })
    }

    /// Starts the loop in `ns` in the background (log `name`); read it with [`result`].
    pub fn spawn(&self, lab: &mut Lab, ns: &str, name: &str) -> Result<u32, LabError> {
        let args = self.args(lab);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn(ns, name, &argv)
    }
}

impl UdpExchanges {
    fn args(&self, lab: &Lab) -> Vec<String> {
        vec![
            "python3".into(),
            lab.dir.join("udpx.py").display().to_string(),
            self.target.0.to_string(),
            self.target.1.to_string(),
            self.rate.max(1).to_string(),
            format!("{:.3}", self.duration.as_secs_f64()),
            ms(self.timeout),
            self.max.to_string(),
            self.base_port.to_string(),
        ]
    }

    /// Starts the loop in `ns` in the background (log `name`); read it with [`result`].
    pub fn spawn(&self, lab: &mut Lab, ns: &str, name: &str) -> Result<u32, LabError> {
        let args = self.args(lab);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn(ns, name, &argv)
    }
}

/// The result a background loop printed into its log (`None` if it printed none, e.g. it
/// was killed or is still running).
pub fn result<T: for<'de> Deserialize<'de>>(lab: &Lab, name: &str) -> Option<T> {
    parse_last_json(&lab.log(name))
}

fn parse_last_json<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    text.lines()
        .rev()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
}

/// Writes the churn scripts into the lab's directory.
pub(crate) fn write_scripts(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("servers.py"), SERVERS_PY)?;
    std::fs::write(dir.join("connloop.py"), CONNLOOP_PY)?;
    std::fs::write(dir.join("udpx.py"), UDPX_PY)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_json_line_of_a_log() {
        let log = "Traceback? no\n{\"ok\": 1}\n{\"ok\": 3, \"fail\": 2, \"errors\": {\"EHOSTUNREACH\": 2}, \"first_fail_after\": 3, \"first_fail_at_s\": 0.5, \"first_error\": \"EHOSTUNREACH\", \"secs\": 1.5}\n";
        let r: ConnLoopResult = parse_last_json(log).unwrap();
        assert_eq!((r.ok, r.fail), (3, 2));
        assert_eq!(r.errors["EHOSTUNREACH"], 2);
        assert!((r.rate() - 2.0).abs() < 1e-9);
        assert!(parse_last_json::<ConnLoopResult>("nothing\n").is_none());
    }
}
