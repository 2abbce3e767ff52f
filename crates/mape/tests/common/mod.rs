//! Helpers shared by the end-to-end tests of the `mape` binary (`mod common;` in each test
//! file; a file uses some of them, hence the `dead_code` allowance).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `mape` binary cargo built for these tests.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mape"))
}

/// Runs `mape args` in the C locale.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run mape")
}

/// The standard output of `mape args`, which must succeed.
pub(crate) fn stdout_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "mape {args:?}: exit {:?}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// What a process printed: standard output, then standard error.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The one JSON object a successful `mape provision` printed on one line; `context` is
/// added to the failure message (a server's log).
pub(crate) fn one_json_object(o: &Output, context: &str) -> serde_json::Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}{context}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// A failure's exit code, with one line on stderr holding `words` and nothing on stdout.
pub(crate) fn fails(o: &Output, code: i32, words: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(words), "{words:?} not in {err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// `mape show status --json --socket SOCK` run by `exec` (in a lab namespace), as JSON.
pub(crate) fn status_json(
    exec: impl Fn(&[&str]) -> Output,
    sock: &std::path::Path,
) -> serde_json::Value {
    let m = bin().display().to_string();
    let s = sock.display().to_string();
    let o = exec(&[&m, "show", "status", "--json", "--socket", &s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// Polls `status` (every 200 ms, at most `secs`) until `done` holds; the last status.
pub(crate) fn status_until(
    status: impl Fn() -> serde_json::Value,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = std::time::Instant::now();
    loop {
        let s = status();
        if done(&s) || t0.elapsed() > std::time::Duration::from_secs(secs) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The status after the lab's rule change in place (HB46PP or DHCPv6, both labs move the
/// rule from 192.0.2.0/24 to 198.51.100.0/24 with PSID 52 of the same End-user prefix):
/// the new MAP address, its interface ID computed by hand (RFC 7597 §6: 198.51.100.18 =
/// c633:6412, PSID 0x34), and the change's before/after in words.
pub(crate) fn assert_moved_to_198_51_100_18(s: &serde_json::Value) {
    assert_eq!(s["map"]["ipv4"], "198.51.100.18");
    assert_eq!(s["map"]["ce_ipv6"], "2001:db8:12:3400:0:c633:6412:34");
    let c = &s["provisioning"]["last_change"];
    let said = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    assert!(said("before").contains("ipv4 192.0.2.18 psid 52"), "{c}");
    assert!(said("after").contains("ipv4 198.51.100.18 psid 52"), "{c}");
}

/// A TCP server in Python (`python3 -c PEER_ECHO_SERVER ADDR PORT`): answers each line
/// with the address and port it saw the peer at and the line, and prints the same.
pub(crate) const PEER_ECHO_SERVER: &str = r#"
import socket, sys, threading
def serve(c, peer):
    f = c.makefile("rwb")
    for line in f:
        out = "%s:%d %s" % (peer[0], peer[1], line.decode().strip())
        print(out, flush=True)
        f.write((out + "\n").encode())
        f.flush()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen()
while True:
    c, peer = srv.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"#;

/// Starts [`PEER_ECHO_SERVER`] on the lab's internet host at 203.0.113.10:`port` (log
/// `server`) and waits (at most 10 s) until it listens.
pub(crate) fn start_peer_echo_server(lab: &mut mape_lab::Lab, port: &str) {
    let inet = lab.ns("inet");
    lab.spawn(
        &inet,
        "server",
        &["python3", "-c", PEER_ECHO_SERVER, "203.0.113.10", port],
    )
    .expect("echo server");
    let listening = format!("203.0.113.10:{port}");
    let t0 = std::time::Instant::now();
    while !lab
        .exec(&inet, &["ss", "-Hltn"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w == listening)
        })
        .unwrap_or(false)
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "echo server: {}",
            lab.log("server")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
