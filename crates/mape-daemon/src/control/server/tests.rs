//! The server's bounds against real clients on a real Unix socket (in a temporary
//! directory, no root): the line reader on its own, then a huge line, slow and idle
//! clients, and a thousand clients at once, with the bounds made small for speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::config::tests::LAB as CE;
use crate::control::tests::{context, ConfigFile};

/// Each line `read_line` finds in `input` read through a buffer of `chunk` bytes.
fn lines(input: &'static [u8], chunk: usize, max: usize) -> Vec<(Line, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = tokio::io::BufReader::with_capacity(chunk, input);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let l = read_line(&mut r, &mut buf, max).await.unwrap();
            let end = l != Line::Complete;
            out.push((l, String::from_utf8(buf).unwrap()));
            if end {
                return out;
            }
        }
    })
}

#[test]
fn the_line_reader_stops_at_the_bound_whatever_the_chunks() {
    for chunk in [1, 2, 3, 7, 64] {
        let got = lines(b"ab\ncd\r\n\nefgh\nlast", chunk, 4);
        let want = [
            (Line::Complete, "ab"),
            (Line::Complete, "cd"),
            (Line::Complete, ""),
            (Line::Complete, "efgh"),
            (Line::Complete, "last"),
            (Line::End, ""),
        ];
        let want: Vec<_> = want.iter().map(|(l, s)| (*l, s.to_string())).collect();
        assert_eq!(got, want, "chunk {chunk}");
        // Five bytes with a bound of four: too long, whether a newline follows or not,
        // and never more than four bytes held.
        for input in [&b"abcde\n"[..], b"abcdefghijklmnop"] {
            let got = lines(input, chunk, 4);
            assert_eq!(got.len(), 1, "chunk {chunk}");
            assert_eq!(got[0].0, Line::TooLong);
            assert!(got[0].1.len() <= 4, "held {:?}", got[0].1);
        }
    }
}

/// A server on a socket of its own, with a CE pipeline behind it, stopped on drop.
struct Server {
    path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _config: ConfigFile,
}

impl Server {
    fn start(name: &str, limits: Limits) -> Self {
        let config = ConfigFile::new(&format!("server-{name}"), CE);
        let ctx = context(&config.0);
        let path = std::env::temp_dir().join(format!(
            "mape-control-server-{}-{name}.sock",
            std::process::id()
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let p = path.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = bind(&p).unwrap();
                ready.send(()).unwrap();
                tokio::select! {
                    () = serve_with(listener, ctx, limits) => {}
                    _ = stopped => {}
                }
            });
        });
        is_ready.recv().unwrap();
        Self {
            path,
            stop: Some(stop),
            thread: Some(thread),
            _config: config,
        }
    }

    fn connect(&self) -> StdStream {
        let s = StdStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// The server's connections still open: the socket's entries in /proc/net/unix (the
    /// listener and each accepted connection carry its path; clients carry none).
    fn open_connections(&self) -> usize {
        let table = std::fs::read_to_string("/proc/net/unix").unwrap();
        let path = self.path.display().to_string();
        table.lines().filter(|l| l.ends_with(&path)).count() - 1
    }

    /// Waits up to two seconds for the server to hold `n` connections.
    fn wait_for_connections(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.open_connections() != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.open_connections(), n);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

const STATUS: &[u8] = b"{\"v\":1,\"cmd\":\"status\"}\n";

/// One line of answer (empty at end of stream).
fn read_answer(s: &StdStream) -> String {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// The error of an answer line.
fn error_of(line: &str) -> String {
    let r: Response = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert!(!r.ok, "{line}");
    r.error.unwrap()
}

/// Whether the server closed the stream: end of stream or reset, not a timeout.
fn closed(s: &StdStream) -> bool {
    let mut b = [0u8; 1];
    match (&*s).read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn status_ok(server: &Server) -> bool {
    let s = server.connect();
    (&s).write_all(STATUS).unwrap();
    let line = read_answer(&s);
    serde_json::from_str::<Response>(&line).is_ok_and(|r| r.ok)
}

#[test]
fn a_huge_line_gets_an_error_and_is_closed_and_others_are_still_served() {
    let server = Server::start("huge", Limits::DEFAULT);
    let s = server.connect();
    // 100 MB without a newline, from another thread: the server must not take it all.
    let w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 100 << 20 {
            match (&w).write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let e = error_of(&read_answer(&s));
    assert_eq!(e, format!("request longer than {MAX_LINE} bytes; closing"));
    assert!(closed(&s));
    let sent = writer.join().unwrap();
    assert!(sent < 8 << 20, "the server read {sent} bytes of the line");
    // The daemon answers the next client.
    assert!(status_ok(&server));
    // A line right at the bound is read (and refused as JSON, not as too long).
    let s = server.connect();
    let mut line = vec![b' '; MAX_LINE];
    line.push(b'\n');
    (&s).write_all(&line).unwrap();
    assert!(error_of(&read_answer(&s)).starts_with("bad request: "));
    server.wait_for_connections(1);
    drop(s);
    server.wait_for_connections(0);
}

#[test]
fn slow_and_idle_clients_are_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(400);
    let server = Server::start(
        "slow",
        Limits {
            idle,
            ..Limits::DEFAULT
        },
    );
    // One byte every 100 ms: each faster than the timeout, the line far slower.
    let trickle = server.connect();
    let w = trickle.try_clone().unwrap();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        for b in STATUS {
            if (&w).write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // One byte, then nothing for longer than the timeout; and one that sends nothing.
    let slower = server.connect();
    (&slower).write_all(b"{").unwrap();
    let silent = server.connect();
    for s in [&trickle, &slower, &silent] {
        let e = error_of(&read_answer(s));
        assert_eq!(e, "no complete request within 400 ms; closing");
        assert!(closed(s));
    }
    let took = t0.elapsed();
    assert!(took >= idle && took < idle * 4, "closed after {took:?}");
    writer.join().unwrap();
    // A client that is quick is answered, twice on one connection.
    let s = server.connect();
    for _ in 0..2 {
        (&s).write_all(STATUS).unwrap();
        let r: Response = serde_json::from_str(&read_answer(&s)).unwrap();
        assert!(r.ok);
    }
    drop(s);
    server.wait_for_connections(0);
}

/// The soft limit on open files (a thousand clients and their thousand server ends do
/// not fit in the usual 1024).
fn nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn a_thousand_clients_at_once_the_cap_holds_and_nothing_leaks() {
    let nofile = nofile();
    if nofile < 2600 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the open files limit {nofile} is too low for the test (ulimit -n 4096)"
        );
        eprintln!("skipped: the open files limit {nofile} is below 2600 (ulimit -n 4096)");
        return;
    }
    let cap = 8;
    let server = Server::start(
        "thousand",
        Limits {
            max_clients: cap,
            ..Limits::DEFAULT
        },
    );
    // `cap` clients served and holding their connections open.
    let holders: Vec<_> = (0..cap)
        .map(|_| {
            let s = server.connect();
            (&s).write_all(STATUS).unwrap();
            let r: Response = serde_json::from_str(&read_answer(&s)).unwrap();
            assert!(r.ok);
            s
        })
        .collect();
    // A thousand more at once: every one told so and closed.
    let extra: Vec<_> = (0..1000).map(|_| server.connect()).collect();
    for s in &extra {
        assert_eq!(
            error_of(&read_answer(s)),
            format!("too many control clients (at most {cap} at once); try again")
        );
        assert!(closed(s));
    }
    server.wait_for_connections(cap);
    drop(extra);
    drop(holders);
    server.wait_for_connections(0);
    // A normal client is served afterwards.
    assert!(status_ok(&server));
    server.wait_for_connections(0);
}
