//! Flows survive a restart (issue #12, item 4), in network namespaces with a real TCP
//! client and server: one TCP connection from lan1 to a server on the internet host,
//! opened through the CE, carries data before and after
//! - a SIGTERM of the CE and a start with the same command (the table written on stop),
//! - a `kill -9` of the CE and a start (the table of the last periodic write: the test
//!   sets `[state] persist_interval_s = 1` and waits for one),
//!
//! on the same socket, and the server sees the same source address and port every time.
//! The TUN is recreated by each start and the connection lives only on the two hosts: it
//! survives because its mapping does and the outage is short (TCP retransmits).
//!
//! Needs root and the tools of scripts/install-deps.sh (python3). Without them the test
//! skips with a message, except under CI (CI=true), where that is a failure. Every wait is
//! bounded; every process is started through the lab and killed by PID at teardown, also
//! when an assertion fails (the lab tears down on drop).

use std::path::Path;
use std::time::{Duration, Instant};

use mape_lab::{Lab, LabOptions};

mod common;
use common::bin as mape;

/// The server's port on 203.0.113.10 (none of the lab's own servers use it).
const PORT: &str = "7407";

/// The client: one connection; for n = 0, 1, ... it waits for the file `go<n>` in the
/// directory, sends `msg<n>`, and writes the server's answer to `reply<n>` (renamed into
/// place when complete). Gives up after 60 s of waiting for anything.
const CLIENT: &str = r#"
import os, socket, sys, time
host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
s.settimeout(30)
f = s.makefile("rwb")
n = 0
while True:
    go = os.path.join(d, "go%d" % n)
    t0 = time.time()
    while not os.path.exists(go):
        if time.time() - t0 > 60:
            sys.exit("no go%d" % n)
        time.sleep(0.05)
    f.write(b"msg%d\n" % n)
    f.flush()
    line = f.readline().decode().strip()
    tmp = os.path.join(d, "reply%d.tmp" % n)
    with open(tmp, "w") as out:
        out.write(line)
    os.rename(tmp, os.path.join(d, "reply%d" % n))
    print("reply", n, line, flush=True)
    n += 1
"#;

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

/// Waits (bounded) for process `pid` to exit; whether it did.
fn wait_exit(lab: &mut Lab, pid: u32, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(st) = lab.exit_status(pid) {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Starts `mape run ce` with the lab's command under log `name`; waits until it answers.
fn start_ce(lab: &mut Lab, name: &str) -> u32 {
    let ce = lab.ns("ce");
    let argv = lab.ce_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let pid = lab.spawn(&ce, name, &argv).expect("spawn CE");
    if let Err(e) = lab.wait_ce() {
        panic!("{e}: {}", lab.log(name));
    }
    pid
}

/// Lets the client send message `n`; the server's answer ("address:port msg<n>").
fn exchange(lab: &Lab, dir: &Path, n: u32) -> String {
    std::fs::write(dir.join(format!("go{n}")), "").expect("go file");
    let reply = dir.join(format!("reply{n}"));
    let t0 = Instant::now();
    // TCP retransmits with backoff: the first try after a short outage may wait a few s.
    while t0.elapsed() < Duration::from_secs(40) {
        if let Ok(text) = std::fs::read_to_string(&reply) {
            assert!(text.ends_with(&format!(" msg{n}")), "{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no answer to msg{n} within 40 s\nclient: {}\nce logs: {}\n{}\n{}",
        lab.log("client"),
        lab.log("ce"),
        lab.log("ce-term"),
        lab.log("ce-kill")
    );
}

fn source_of(reply: &str) -> &str {
    reply.split(' ').next().unwrap_or_default()
}

#[test]
fn a_tcp_connection_survives_sigterm_and_kill_9_of_the_ce() {
    if !mape_lab::possible_or_skip("restart lab test") {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan1 = lab.ns("lan1");
    let dir = lab.dir.join("restart");
    std::fs::create_dir_all(&dir).expect("dir");
    let dir_s = dir.display().to_string();

    // A periodic write every second, so that the kill -9 case need not wait 30 s: the
    // lab's CE is restarted with it before the connection opens.
    let cfg = lab
        .ce_config()
        .replace("[state]\n", "[state]\npersist_interval_s = 1\n");
    assert!(cfg.contains("persist_interval_s = 1"));
    std::fs::write(lab.ce_config_path(), cfg).expect("config");
    let first = lab.ce_pid().expect("CE pid");
    signal(first, "-TERM");
    assert!(wait_exit(&mut lab, first, Duration::from_secs(10)).is_some());
    let ce = start_ce(&mut lab, "ce-1s");

    common::start_peer_echo_server(&mut lab, PORT);
    lab.spawn(
        &lan1,
        "client",
        &["python3", "-c", CLIENT, "203.0.113.10", PORT, &dir_s],
    )
    .expect("client");
    let before = exchange(&lab, &dir, 0);
    let src = source_of(&before).to_string();
    assert!(
        src.starts_with("192.0.2.18:"),
        "translated source: {before}"
    );

    // 1. SIGTERM, start: the table written on stop.
    signal(ce, "-TERM");
    let st = wait_exit(&mut lab, ce, Duration::from_secs(10)).expect("CE stops on SIGTERM");
    assert!(
        st.success(),
        "CE exit on SIGTERM: {st:?}: {}",
        lab.log("ce-1s")
    );
    assert!(
        lab.log("ce-1s").contains("session table saved"),
        "{}",
        lab.log("ce-1s")
    );
    let ce = start_ce(&mut lab, "ce-term");
    let log = lab.log("ce-term");
    assert!(log.contains("session table restored"), "{log}");
    let after_term = exchange(&lab, &dir, 1);
    assert_eq!(
        source_of(&after_term),
        src,
        "same source port after SIGTERM + start"
    );

    // 2. kill -9 after at least one periodic write, start: the table of that write.
    std::thread::sleep(Duration::from_millis(2500));
    signal(ce, "-KILL");
    assert!(wait_exit(&mut lab, ce, Duration::from_secs(5)).is_some());
    let _ce = start_ce(&mut lab, "ce-kill");
    let log = lab.log("ce-kill");
    assert!(log.contains("session table restored"), "{log}");
    let after_kill = exchange(&lab, &dir, 2);
    assert_eq!(
        source_of(&after_kill),
        src,
        "same source port after kill -9 + start"
    );
    eprintln!("server saw {src} before, after SIGTERM + start and after kill -9 + start");
}
