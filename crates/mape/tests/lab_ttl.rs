//! Hop counts and TTLs across the lab (issue #12 item 8): each router on the way — the CE
//! and the BR — decrements the IPv4 TTL exactly once (RFC 1812 §5.3.1), judged by
//! tracepath and ping from lan1, and an expiring TTL is answered by the router where it
//! expires (RFC 792 time exceeded).
//!
//! Hand-computed from the topology (`crates/mape-lab/src/topology.rs`): lan1 → CE
//! (192.168.10.1, router 1) → ISP namespace running the BR (203.0.113.1, router 2) →
//! inet 203.0.113.10. So tracepath reaches the server at hop 3, hop 1 answers from
//! 192.168.10.1 and hop 2 from the ISP; the echo reply leaves the server with TTL 64
//! (Linux's default) and crosses two routers: TTL 62 at lan1.
//!
//! Needs root and iputils-tracepath / iputils-ping (scripts/install-deps.sh,
//! .ci/apt-packages.txt). Without them the test skips, except under CI (CI=true).

use mape_lab::{Lab, LabOptions};

mod common;
use common::{bin as mape, text as out};

/// The TTL of the first echo reply `ping` printed.
fn reply_ttl(ping: &str) -> Option<u8> {
    let at = ping.find("ttl=")? + 4;
    let digits: String = ping[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// tracepath's "Resume: pmtu P hops H back B" line: (H, B).
fn resume(tp: &str) -> Option<(u32, u32)> {
    let line = tp.lines().find(|l| l.contains("Resume:"))?;
    let mut words = line.split_whitespace();
    let mut after = |w: &str| -> Option<u32> {
        words.by_ref().find(|x| *x == w)?;
        words.next()?.parse().ok()
    };
    let hops = after("hops")?;
    let back = after("back")?;
    Some((hops, back))
}

/// The addresses tracepath printed for hop `n` (lines "n:  addr ...", "n?: ..." skipped).
fn hop_addrs(tp: &str, n: u32) -> Vec<String> {
    let tag = format!("{n}:");
    tp.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == tag).then(|| w.next().map(str::to_string))?
        })
        .collect()
}

#[test]
fn each_router_decrements_the_ttl_once() {
    if !mape_lab::possible_or_skip("TTL tests") {
        return;
    }
    let lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan1 = lab.ns("lan1");

    let o = lab
        .exec(&lan1, &["ping", "-c", "1", "-W", "2", "203.0.113.10"])
        .unwrap();
    let ping = out(&o);
    assert!(o.status.success(), "ping: {ping}");
    eprintln!("ping: {ping}");

    let o = lab
        .exec(&lan1, &["tracepath", "-n", "-m", "8", "203.0.113.10"])
        .unwrap();
    let tp = out(&o);
    eprintln!("tracepath: {tp}");
    // 64 at the server, − 1 at the BR, − 1 at the CE.
    assert_eq!(reply_ttl(&ping), Some(62), "echo reply TTL: {ping}");
    // Three hops out (CE, BR, server), and tracepath's estimate of the hops back (from the
    // reply's TTL) is three as well.
    assert_eq!(resume(&tp), Some((3, 3)), "tracepath: {tp}");
    // Hop 1: the CE's LAN address; hop 2: the ISP namespace's BR (its IPv4 address toward
    // the internet); hop 3: the server.
    assert!(
        hop_addrs(&tp, 1).iter().all(|a| a == "192.168.10.1"),
        "hop 1: {tp}"
    );
    assert!(
        hop_addrs(&tp, 2).iter().any(|a| a == "203.0.113.1"),
        "hop 2: {tp}"
    );
    assert!(
        hop_addrs(&tp, 3).iter().any(|a| a == "203.0.113.10"),
        "hop 3: {tp}"
    );
}

#[test]
fn parsers_read_real_output() {
    let tp = " 1?: [LOCALHOST]                      pmtu 1500\n 1:  192.168.10.1                                          0.061ms \n 2:  203.0.113.1                                           0.130ms asymm  3 \n 3:  203.0.113.10                                          0.166ms reached\n     Resume: pmtu 1460 hops 3 back 3 \n";
    assert_eq!(resume(tp), Some((3, 3)));
    assert_eq!(hop_addrs(tp, 1), ["192.168.10.1"]);
    assert_eq!(hop_addrs(tp, 2), ["203.0.113.1"]);
    let ping = "64 bytes from 203.0.113.10: icmp_seq=1 ttl=60 time=0.2 ms";
    assert_eq!(reply_ttl(ping), Some(60));
}
