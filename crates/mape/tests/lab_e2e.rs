//! End to end in network namespaces (issue: daemon, lab, incident): real clients cross the
//! CE → BR → internet made of `mape run ce` and `mape run br`, and independent tools judge
//! the result (dig, curl, iperf3, tracepath, tshark, coturn's RFC 5780 discovery).
//!
//! Needs root and the tools of scripts/install-deps.sh. Without them the tests skip with a
//! message, except under CI (CI=true), where that is a failure.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use mape_lab::demo::{lan1_iteration, DemoOptions};
use mape_lab::{addr, Keep, Lab, LabOptions};

mod common;
use common::{bin as mape, text as out};

/// Whether the lab can run here; panics under CI when it cannot.
fn lab_possible() -> bool {
    mape_lab::possible_or_skip("end-to-end tests")
}

/// The 240 ports of the lab CE: PSID 0x34, a = 4, k = 8.
/// An event hook that appends each event (JSON on stdin) to a file: (its directory, the
/// hook, the file).
fn event_hook(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mape-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let hook = dir.join("hook.sh");
    std::fs::write(&hook, format!("#!/bin/sh\ncat >> {}\n", events.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, hook, events)
}

fn in_port_set(port: u16) -> bool {
    port >> 12 != 0 && (port >> 4) & 0xff == 0x34
}

#[test]
fn real_clients_cross_the_tunnel() {
    if !lab_possible() {
        return;
    }
    let mut opts = LabOptions::new(mape(), "mape");
    opts.nat_extra = r#"
[[nat.forward]]
proto = "tcp"
external_port = 4930
internal = "192.168.10.10:8080"
[[nat.forward]]
proto = "udp"
external_port = 4931
internal = "192.168.10.10:9000"
"#
    .into();
    let mut lab = Lab::up(opts).expect("lab up");
    let lan1 = lab.ns("lan1");
    let isp = lab.ns("isp");
    let inet = lab.ns("inet");

    // tshark on the ISP link for the whole test: every packet must be MAP-E (headers
    // only: the test's bulk transfers would make the whole packets gigabytes).
    let (cap, pcap) = lab
        .capture(
            &isp,
            "isp-ce",
            "isp-ce",
            "ip6 and not ip6 multicast and not icmp6",
            Keep::Headers,
        )
        .expect("tshark");
    let pcap = pcap.display().to_string();
    std::thread::sleep(Duration::from_secs(2));

    // ping
    let o = lab
        .exec(&lan1, &["ping", "-c", "3", "-W", "2", "203.0.113.10"])
        .unwrap();
    assert!(o.status.success(), "ping: {}", out(&o));

    // dig over UDP and TCP
    for tcp in [false, true] {
        let mut args = vec![
            "dig",
            "+time=2",
            "+tries=2",
            "+short",
            "@203.0.113.10",
            addr::WWW,
        ];
        if tcp {
            args.insert(1, "+tcp");
        }
        let o = lab.exec(&lan1, &args).unwrap();
        assert!(
            out(&o).contains("203.0.113.10"),
            "dig tcp={tcp}: {}",
            out(&o)
        );
    }

    // curl: a 10 MB download, checked by hash against the file the server holds.
    let o = lab
        .exec(
            &lan1,
            &[
                "sh",
                "-c",
                "curl -s -f -m 30 http://203.0.113.10/10mb.bin | sha256sum",
            ],
        )
        .unwrap();
    let want = std::process::Command::new("sha256sum")
        .arg(lab.dir.join("www/10mb.bin"))
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&want.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(!want.is_empty());
    assert!(
        out(&o).starts_with(&want),
        "10 MB download hash: {} vs {want}",
        out(&o)
    );

    // iperf3 TCP and UDP (short; figures are for the bench, here it must just work).
    let o = lab
        .exec(&lan1, &["iperf3", "-c", "203.0.113.10", "-t", "2", "-J"])
        .unwrap();
    assert!(o.status.success(), "iperf3 tcp: {}", out(&o));
    let o = lab
        .exec(
            &lan1,
            &[
                "iperf3",
                "-c",
                "203.0.113.10",
                "-u",
                "-b",
                "20M",
                "-t",
                "2",
                "-J",
            ],
        )
        .unwrap();
    assert!(o.status.success(), "iperf3 udp: {}", out(&o));

    // tracepath finds the 1460 path MTU (the route MTU inside the CE).
    let o = lab
        .exec(&lan1, &["tracepath", "-n", "-m", "5", "203.0.113.10"])
        .unwrap();
    assert!(out(&o).contains("pmtu 1460"), "tracepath: {}", out(&o));

    // A UDP datagram large enough to fragment (3000 bytes, DF clear) arrives whole: the
    // server side echoes its size back through a tiny python listener.
    let echo = lab
        .spawn(
            &inet,
            "udp-echo",
            &["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('203.0.113.10',7000))\nwhile True:\n d,a=s.recvfrom(65535)\n s.sendto(str(len(d)).encode(),a)"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = lab
        .exec(
            &lan1,
            &["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\ns.setsockopt(socket.IPPROTO_IP,10,0)\ns.sendto(b'x'*3000,('203.0.113.10',7000))\nprint(s.recvfrom(100)[0].decode())"],
        )
        .unwrap();
    assert_eq!(out(&o).trim(), "3000", "fragmented datagram");
    let _ = echo;

    // Inbound static forward: the internet reaches lan1:8080 through 192.0.2.18:4930.
    lab.spawn(
        &lan1,
        "fwd-server",
        &["python3", "-c", "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',8080))\ns.listen()\nwhile True:\n c,a=s.accept()\n c.sendall(('hello '+a[0]).encode())\n c.close()"],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = lab
        .exec(&inet, &["python3", "-c", "import socket\nc=socket.create_connection(('192.0.2.18',4930),timeout=3)\nprint(c.recv(100).decode())"])
        .unwrap();
    assert_eq!(out(&o).trim(), "hello 203.0.113.10", "static forward");

    // Hairpinning: lan2 sends to the external forward of lan1 and lan1 sees the *external*
    // address as the source (RFC 4787 REQ-9), checked by our own listener.
    lab.spawn(
        &lan1,
        "hairpin-listener",
        &["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',9000))\nd,a=s.recvfrom(100)\ns.sendto(a[0].encode(),a)"],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = lab
        .exec(
            &lab.ns("lan2"),
            &["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\ns.sendto(b'hi',('192.0.2.18',4931))\nprint(s.recvfrom(100)[0].decode())"],
        )
        .unwrap();
    assert_eq!(
        out(&o).trim(),
        "192.0.2.18",
        "hairpinned source must be the external address"
    );

    // Every captured packet on the ISP link: IPv6 next header 4, from the CE MAP address
    // (or the BR toward it), inner source port in the port set on the way out.
    lab.stop_capture(cap);
    let fields = std::process::Command::new("tshark")
        .args([
            "-r",
            &pcap,
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ipv6.nxt",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "udp.srcport",
            "-e",
            "icmp.ident",
            "-e",
            "ipv6.fraghdr.nxt",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fields.stdout).to_string();
    let mut outbound = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        // IPv4-in-IPv6, possibly in IPv6 fragments (RFC 7597 §8.3) whose next header is 4.
        let ipip = f[0] == "4" || (f[0] == "44" && f.get(7) == Some(&"4"));
        assert!(ipip, "not IPv4-in-IPv6: {line}");
        if f[1] == addr::CE_MAP {
            outbound += 1;
            assert_eq!(f[2], addr::BR, "{line}");
            assert!(f[3] == "192.0.2.18" || f[0] == "44", "inner source: {line}");
            let port = [f[4], f[5]]
                .iter()
                .find(|p| !p.is_empty())
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(p) = port {
                assert!(
                    in_port_set(p),
                    "inner source port {p} outside the port set: {line}"
                );
            }
        } else {
            assert_eq!(f[1], addr::BR, "{line}");
            assert_eq!(f[2], addr::CE_MAP, "{line}");
        }
    }
    assert!(outbound > 1000, "captured only {outbound} outbound packets");
    lab.teardown();
}

#[test]
fn nat_behaviour_by_an_independent_classifier() {
    if !lab_possible() {
        return;
    }
    if std::process::Command::new("sh")
        .args(["-c", "command -v turnutils_natdiscovery"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "coturn missing under CI"
        );
        eprintln!("skipping: coturn not installed");
        return;
    }
    for (filtering, want_filter) in [
        (
            "endpoint-independent",
            "NAT with Endpoint Independent Filtering",
        ),
        (
            "address-and-port-dependent",
            "NAT with Address and Port Dependent Filtering",
        ),
    ] {
        let mut opts = LabOptions::new(mape(), "mape");
        opts.turn = true;
        opts.nat_extra = format!("filtering = \"{filtering}\"");
        let mut lab = Lab::up(opts).expect("lab up");
        std::thread::sleep(Duration::from_secs(1));
        let lan1 = lab.ns("lan1");
        let run = |flag: &str| {
            let o = lab
                .exec(
                    &lan1,
                    &[
                        "turnutils_natdiscovery",
                        flag,
                        "-L",
                        "192.168.10.10",
                        "-p",
                        "3480",
                        "203.0.113.10",
                    ],
                )
                .unwrap();
            out(&o)
        };
        let m = run("-m");
        assert!(m.contains("NAT with Endpoint Independent Mapping"), "{m}");
        for line in m.lines().filter(|l| l.contains("UDP reflexive addr")) {
            let port: u16 = line
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            assert!(
                in_port_set(port),
                "reflexive port {port} outside the set: {line}"
            );
        }
        let f = run("-f");
        assert!(f.contains(want_filter), "filtering {filtering}: {f}");
        if filtering == "endpoint-independent" {
            let h = run("-H");
            assert!(h.contains("maybe a successful hairpinning"), "hairpin: {h}");
        }
        lab.teardown();
    }
}

fn demo_opts(target: (Ipv4Addr, u16)) -> DemoOptions {
    DemoOptions {
        mape: mape(),
        policies: vec![],
        duration: Duration::from_secs(60),
        rate_x: 100,
        iterations: 20,
        target,
    }
}

#[test]
fn the_incident_cannot_happen_under_mape_and_does_under_rtx830_like() {
    if !lab_possible() {
        return;
    }
    let private = (addr::PRIVATE_TARGET, 59870);
    let m = mape_lab::demo::run_policy(&demo_opts(private), "mape").expect("mape run");
    assert_eq!(m.lan1_failed, 0, "{m:?}");
    assert_eq!(m.lan1_ok, 20, "{m:?}");
    assert_eq!(m.storm_packets_into_tunnel, 0, "{m:?}");
    assert!(m.storm_packets_sent > 1000, "{m:?}");

    let r = mape_lab::demo::run_policy(&demo_opts(private), "rtx830-like").expect("rtx run");
    assert!(
        r.lan1_failed > 0,
        "the lab must really exhaust the budget under rtx830-like: {r:?}"
    );
    // Until the 240 ports are gone every storm packet takes one; after that they are refused.
    assert!(r.storm_packets_into_tunnel >= 200, "{r:?}");
    assert!(r.refusals > 1000, "{r:?}");
    assert_eq!(r.peak_ports, 240, "{r:?}");
}

#[test]
fn storm_to_a_silent_public_sink_stays_within_the_cap_and_lan2_hears_no() {
    if !lab_possible() {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan2 = lab.ns("lan2");
    // lan2 listens for ICMP admin-prohibited while storming the private target briefly.
    let (cap, pcap) = lab
        .capture(
            &lan2,
            "lan2-icmp",
            "eth0",
            "icmp[0] == 3 and icmp[1] == 13",
            Keep::Whole,
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let m = mape().display().to_string();
    lab.exec(
        &lan2,
        &[&m, "lab", "storm", "--rate-x", "100", "--duration", "5"],
    )
    .unwrap();
    lab.stop_capture(cap);
    let n = mape_lab::count_frames(&pcap);
    assert!(n > 0, "lan2 received no ICMP administratively prohibited");
    let sock = lab.ce_socket().display().to_string();
    let o = std::process::Command::new(mape())
        .args(["show", "culprits", "--socket", &sock])
        .output()
        .unwrap();
    let text = out(&o);
    assert!(
        // The storm alternates between :59870 and :59781; either may lead the vote.
        text.contains("192.168.10.23") && text.contains("192.168.1.211:59"),
        "{text}"
    );
    assert!(
        text.contains("blocked by the destination filter since"),
        "{text}"
    );

    // Now at the silent public sink: ports are spent, but lan2 stays within its cap and
    // lan1 keeps working.
    let sink = format!("{}:59870", addr::SINK);
    let storm = lab
        .storm(&lan2, "storm-sink", std::slice::from_ref(&sink), 100, 30)
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let mut ok = 0;
    for _ in 0..10 {
        if lan1_iteration(&lab) {
            ok += 1;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let snap = lab
        .ce_query(&mape_control::Request::Snapshot)
        .expect("snapshot");
    let lan2_ports = snap["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|x| x["addr"] == "192.168.10.23"))
        .and_then(|x| x["ports_held"].as_u64())
        .unwrap_or(0);
    assert!(
        lan2_ports > 0 && lan2_ports <= 120,
        "lan2 holds {lan2_ports} ports (cap 120)"
    );
    assert_eq!(ok, 10, "lan1 failed during the storm");
    lab.wait_pid(storm, Duration::from_secs(40));
    lab.teardown();
}

#[test]
fn daemon_lifecycle_leaves_the_host_as_found() {
    if !lab_possible() {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let ce = lab.ns("ce");
    let routes = |lab: &Lab| {
        let a = lab
            .exec(&ce, &["ip", "-4", "route"])
            .map(|o| out(&o))
            .unwrap_or_default();
        let b = lab
            .exec(&ce, &["ip", "-6", "route"])
            .map(|o| out(&o))
            .unwrap_or_default();
        format!("{a}{b}")
    };
    let running = routes(&lab);
    assert!(
        running.contains("default dev mape0") && running.contains("mtu 1460"),
        "{running}"
    );
    assert!(
        running.contains("unreachable 2001:db8:12:3400::/56"),
        "{running}"
    );
    // Reload without dropping sessions: a flow survives SIGHUP.
    assert!(lan1_iteration(&lab));
    let before = lab.ce_query(&mape_control::Request::Status).unwrap()["budget"]["sessions"]
        .as_u64()
        .unwrap_or(0);
    // This lab's CE by its PID: a name match would find other tests' daemons too (every
    // namespace shares the PID space), and signal them.
    let pid = lab.ce_pid().expect("the CE daemon's PID").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    std::thread::sleep(Duration::from_millis(500));
    let after = lab.ce_query(&mape_control::Request::Status).unwrap()["budget"]["sessions"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        after >= before.min(1),
        "sessions dropped by reload: {before} -> {after}"
    );
    // SIGTERM: routes, TUN and unreachable route gone.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    std::thread::sleep(Duration::from_secs(2));
    let gone = routes(&lab);
    assert!(
        !gone.contains("mape0") && !gone.contains("unreachable"),
        "left behind: {gone}"
    );
    // Garbage on the control socket never kills the daemon: tested on the BR's socket.
    let br_sock = lab.dir.join("br.sock");
    let s = std::os::unix::net::UnixStream::connect(&br_sock).unwrap();
    use std::io::{BufRead, Write};
    (&s).write_all(b"{nonsense\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":false"), "{line}");
    assert!(mape_control::request(&br_sock, &mape_control::Request::Status).is_ok());
    lab.teardown();
    let _ = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
}

/// The truth, shown: during a storm at the silent sink, `show ports`, `show hosts`,
/// `show culprits` (human and JSON), the metrics, the event log and `mape top` all name
/// lan2 with the right pattern and numbers.
#[test]
fn show_metrics_events_and_top_name_the_culprit() {
    if !lab_possible() {
        return;
    }
    let (hook_dir, hook, events_file) = event_hook("hook");
    // The lab's sink is a public (documentation) address, outside the built-in Flow
    // entry (private destinations): a user signature file names it, which also proves
    // `nat.signatures_dir` end to end.
    let sig_dir = hook_dir.join("signatures.d");
    std::fs::create_dir_all(&sig_dir).unwrap();
    std::fs::write(
        sig_dir.join("lab.toml"),
        r#"[[signature]]
name = "lab-flow-sink"
application = "Logitech Options+ Flow (lab sink)"
proto = "udp"
ports = ["59870"]
destination = "public"
changing_source_ports = true
advice = "Turn off Flow in Logitech Options+ on this PC."
source = "crates/mape/tests/lab_e2e.rs"
"#,
    )
    .unwrap();
    let mut opts = LabOptions::new(mape(), "mape");
    opts.nat_extra = format!(
        "signatures_dir = \"{}\"\n[events]\nhook = \"{}\"",
        sig_dir.display(),
        hook.display()
    );
    let mut lab = Lab::up(opts).expect("lab up");
    let (lan2, ce) = (lab.ns("lan2"), lab.ns("ce"));
    let sink = format!("{}:59870", addr::SINK);
    let storm = lab
        .storm(&lan2, "storm", std::slice::from_ref(&sink), 100, 12)
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let sock = lab.ce_socket().display().to_string();
    let show = |args: &[&str]| {
        let mut full = vec!["show"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--socket", &sock]);
        let o = std::process::Command::new(mape())
            .args(&full)
            .output()
            .unwrap();
        assert!(o.status.success(), "mape {full:?}: {}", out(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // show ports: in use equals what the sessions table holds; total is the set's size.
    let ports: serde_json::Value = serde_json::from_str(&show(&["ports", "--json"])).unwrap();
    let snap = &ports["snapshot"];
    assert_eq!(snap["budget"], 240);
    let sessions: serde_json::Value =
        serde_json::from_str(&show(&["sessions", "--json", "--limit", "100000"])).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for s in sessions.as_array().unwrap() {
        distinct.insert((
            s["proto"].as_str().unwrap().to_string(),
            s["external"].as_str().unwrap().to_string(),
        ));
    }
    let udp_in_use = snap["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["proto"] == "udp")
        .unwrap()["in_use"]
        .as_u64()
        .unwrap();
    let udp_distinct = distinct.iter().filter(|(p, _)| p == "udp").count() as u64;
    assert_eq!(
        udp_in_use, udp_distinct,
        "ports in use must equal the session table's distinct external ports"
    );
    let human = show(&["ports"]);
    assert!(human.contains("/240"), "{human}");
    // show hosts: lan2 on top, within its cap.
    let hosts = show(&["hosts"]);
    let first = hosts.lines().nth(1).unwrap_or("");
    assert!(first.starts_with("192.168.10.23"), "{hosts}");
    // show culprits, human and JSON.
    let culprits = show(&["culprits"]);
    assert!(
        culprits.contains("192.168.10.23") && culprits.contains("198.51.100.99:59870"),
        "{culprits}"
    );
    assert!(
        culprits.contains("Logitech Options+ Flow (lab sink)")
            && culprits.contains("advice: Turn off Flow in Logitech Options+ on this PC."),
        "{culprits}"
    );
    let cj: serde_json::Value = serde_json::from_str(&show(&["culprits", "--json"])).unwrap();
    assert_eq!(cj["culprit"]["host"], "192.168.10.23");
    let rtx = show(&["nat", "descriptor", "masquerade", "session", "summary"]);
    assert!(
        rtx.contains("Inner Address") && rtx.contains("/240"),
        "{rtx}"
    );
    // Metrics, parsed by an independent parser.
    let o = lab
        .exec(
            &ce,
            &[
                "curl",
                "-s",
                "-f",
                "-m",
                "3",
                "http://127.0.0.1:9469/metrics",
            ],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("exposition parses");
    let value = |name: &str, k: &str, v: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && (k.is_empty() || s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(x)
                | prometheus_parse::Value::Counter(x)
                | prometheus_parse::Value::Untyped(x) => x,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("mape_port_budget_ports", "proto", "udp"),
        Some(240.0),
        "{text}"
    );
    let held = value("mape_host_ports_held", "host", "192.168.10.23").unwrap_or(0.0);
    assert!(held > 0.0 && held <= 120.0, "lan2 ports held {held}");
    assert!(
        value("mape_events_total", "kind", "culprit_named").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    // Every metric the Grafana dashboard plots exists.
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/grafana-dashboard.json"
    ))
    .unwrap();
    for name in [
        "mape_ports_in_use",
        "mape_port_budget_ports",
        "mape_host_ports_held",
        "mape_refusals_total",
        "mape_drops_total",
        "mape_events_total",
        "mape_bytes_total",
        "mape_sessions",
        // The dashboard's router selector.
        "mape_build_info",
    ] {
        assert!(dash.contains(name), "dashboard lacks {name}");
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "exposition lacks {name}"
        );
    }
    // The hook got the events as JSON, the culprit among them.
    let hooked = std::fs::read_to_string(&events_file).unwrap_or_default();
    let named = hooked
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|e| e["kind"] == "culprit_named" && e["host"] == "192.168.10.23");
    assert!(named, "hook output: {hooked}");
    let _ = std::fs::remove_dir_all(&hook_dir);
    // The event log names the culprit once.
    let log = lab.log("ce");
    assert!(
        log.contains("mape_event=culprit_named") && log.contains("mape_host=192.168.10.23"),
        "{log}"
    );
    // mape top, driven in tmux at 80x24.
    let session = format!("{}-top", lab.prefix);
    let cmd = format!("{} top --socket {sock}", mape().display());
    let st = std::process::Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "80",
            "-y",
            "24",
            &cmd,
        ])
        .status();
    if st.map(|s| s.success()).unwrap_or(false) {
        std::thread::sleep(Duration::from_secs(3));
        let pane = std::process::Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&pane.stdout).to_string();
        let _ = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &session, "s"])
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &session, "q"])
            .status();
        std::thread::sleep(Duration::from_millis(800));
        let alive = std::process::Command::new("tmux")
            .args(["has-session", "-t", &session])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if alive {
            let _ = std::process::Command::new("tmux")
                .args(["kill-session", "-t", &session])
                .status();
        }
        assert!(
            screen.contains("/240")
                && screen.contains("192.168.10.23")
                && screen.contains("culprit"),
            "{screen}"
        );
        assert!(!alive, "mape top did not quit on q");
    } else {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "tmux missing under CI"
        );
    }
    lab.wait_pid(storm, Duration::from_secs(10));
    lab.teardown();
}

/// RA-only line: the MAP address lies in the WAN's on-link /64 and nothing routes a prefix
/// to the CE; the CE must answer neighbour discovery for it at once (proxy NDP, no delay).
/// `mape doctor` agrees that the machine and the line are fine; the RA-only WAN takes RAs
/// with forwarding on (accept_ra=2), and doctor names accept_ra=1 with the fix.
#[test]
fn onlink_map_address_answers_neighbour_discovery() {
    if !lab_possible() {
        return;
    }
    let mut opts = LabOptions::new(mape(), "mape");
    opts.onlink = true;
    let mut lab = Lab::up(opts).expect("lab up (on-link)");
    let (ce, isp) = (lab.ns("ce"), lab.ns("isp"));
    let proxies = lab
        .exec(&ce, &["ip", "-6", "neigh", "show", "proxy"])
        .map(|o| out(&o))
        .unwrap_or_default();
    assert!(proxies.contains(addr::CE_MAP), "no proxy entry: {proxies}");
    let delay = lab
        .exec(&ce, &["sysctl", "-n", "net.ipv6.neigh.ce-wan.proxy_delay"])
        .map(|o| out(&o))
        .unwrap_or_default();
    assert_eq!(delay.trim(), "0");
    // The ISP resolved the MAP address by neighbour discovery (Lab::up proved traffic flows).
    let neigh = lab
        .exec(&isp, &["ip", "-6", "neigh", "show", addr::CE_MAP])
        .map(|o| out(&o))
        .unwrap_or_default();
    assert!(
        neigh.contains("lladdr"),
        "ISP has no neighbour entry for the MAP address: {neigh}"
    );
    for _ in 0..5 {
        assert!(lan1_iteration(&lab));
    }
    let m = mape().display().to_string();
    let cfg = lab.dir.join("ce.toml").display().to_string();
    let o = lab
        .exec(&ce, &[&m, "doctor", "--config", &cfg, "--no-probe"])
        .unwrap();
    let text = out(&o);
    assert!(o.status.success(), "doctor: {text}");
    assert!(
        text.contains("ok   prefix") && text.contains("ok   daemon"),
        "{text}"
    );
    // An RA line: with forwarding on, the WAN must take RAs at accept_ra=2 (the daemon set
    // it; the namespace started at 1), and doctor says so.
    let accept_ra = |lab: &Lab| {
        lab.exec(&ce, &["sysctl", "-n", "net.ipv6.conf.ce-wan.accept_ra"])
            .map(|o| out(&o).trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(accept_ra(&lab), "2");
    assert!(text.contains("ok   accept_ra"), "{text}");
    lab.exec_ok(&ce, &["sysctl", "-qw", "net.ipv6.conf.ce-wan.accept_ra=1"])
        .unwrap();
    // A broken line: the WAN loses its address in the prefix → doctor fails with the fix.
    lab.exec_ok(
        &ce,
        &[
            "ip",
            "addr",
            "del",
            "2001:db8:12:3400::2/64",
            "dev",
            "ce-wan",
        ],
    )
    .unwrap();
    let o = lab
        .exec(
            &ce,
            &[&m, "doctor", "--config", &cfg, "--no-probe", "--json"],
        )
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let prefix = check("prefix");
    assert_eq!(prefix["level"], "fail");
    assert!(prefix["fix"].as_str().unwrap_or("").contains("map.prefix"));
    let ra = check("accept_ra");
    assert_eq!(ra["level"], "fail", "{ra}");
    assert!(
        ra["fix"]
            .as_str()
            .unwrap_or("")
            .contains("net.ipv6.conf.ce-wan.accept_ra=2"),
        "{ra}"
    );
    lab.teardown();
}

/// A capture taken on the CE's LAN side during a storm, replayed offline through the same
/// engine with the daemon's own configuration, gives the peak the live daemon showed,
/// within 5 % (issue: replay, acceptance).
#[test]
fn replay_of_a_lab_capture_matches_the_live_peak() {
    if !lab_possible() {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let (ce, lan2) = (lab.ns("ce"), lab.ns("lan2"));
    let (cap, pcap) = lab
        .capture(&ce, "lan-side", "br-lan", "ip", Keep::Whole)
        .unwrap();
    let pcap = pcap.display().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let sink = format!("{}:59870", addr::SINK);
    let storm = lab
        .storm(&lan2, "storm", std::slice::from_ref(&sink), 50, 10)
        .unwrap();
    for _ in 0..5 {
        lan1_iteration(&lab);
        std::thread::sleep(Duration::from_secs(1));
    }
    lab.wait_pid(storm, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    lab.stop_capture(cap);
    let live = lab.ce_query(&mape_control::Request::Status).unwrap()["budget"]["peak"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        live >= 100,
        "the storm should have taken lan2 to its cap: live peak {live}"
    );
    let cfg = lab.dir.join("ce.toml").display().to_string();
    let o = std::process::Command::new(mape())
        .args([
            "replay", &pcap, "--config", &cfg, "--policy", "mape", "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "replay: {}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let replayed = v["policies"][0]["peak_ports"].as_u64().unwrap_or(0);
    let diff = (replayed as f64 - live as f64).abs() / live as f64;
    assert!(
        diff <= 0.05,
        "replayed peak {replayed} vs live {live} ({:.1} %)",
        diff * 100.0
    );
    // The replay names the storm by its pattern (issue #17), typed.
    let p = &v["policies"][0];
    assert_eq!(p["culprit"], "192.168.10.23", "{p}");
    assert_eq!(
        p["culprit_pattern_kind"]["kind"], "new_port_each_flow",
        "{p}"
    );
    assert_eq!(p["culprit_pattern_kind"]["dst"], sink, "{p}");
    assert!(
        p["forecast_warned_at_s"].is_null(),
        "mape caps the storm: no forecast {p}"
    );
    lab.teardown();
}

/// Issue #17: under an RTX-like policy the seed's storm to a public sink exhausts the
/// budget; the forecast (event and metric) comes before it does.
#[test]
fn forecast_warns_before_the_budget_runs_out_under_rtx830_like() {
    if !lab_possible() {
        return;
    }
    let (hook_dir, hook, events_file) = event_hook("fc");
    let mut opts = LabOptions::new(mape(), "rtx830-like");
    opts.nat_extra = format!("\n[events]\nhook = \"{}\"", hook.display());
    let mut lab = Lab::up(opts).expect("lab up");
    let (lan2, ce) = (lab.ns("lan2"), lab.ns("ce"));
    let sink = format!("{}:59870", addr::SINK);
    // The seed's pattern at 10x: about 10 new ports a second, 240 gone in ~25 s.
    let storm = lab
        .storm(&lan2, "storm", std::slice::from_ref(&sink), 10, 40)
        .unwrap();
    let scrape = |lab: &Lab| {
        let o = lab
            .exec(
                &ce,
                &[
                    "curl",
                    "-s",
                    "-f",
                    "-m",
                    "2",
                    "http://127.0.0.1:9469/metrics",
                ],
            )
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let metric = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("mape_budget_exhaustion_forecast_seconds{proto=\"udp\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    // Poll (bounded: 60 s) until the metric shows a forecast; at that moment the budget
    // must not be exhausted yet.
    let mut seen = None;
    for _ in 0..240 {
        let text = scrape(&lab);
        if let Some(v) = metric(&text) {
            let status = lab.ce_query(&mape_control::Request::Status).unwrap();
            seen = Some((v, status["budget"]["refusals"].as_u64().unwrap_or(u64::MAX)));
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (secs, refused_then) = seen.expect("the forecast metric appeared");
    assert!(secs > 0.0 && secs < 600.0, "forecast {secs} s");
    assert_eq!(
        refused_then, 0,
        "the forecast came after the budget ran out"
    );
    lab.wait_pid(storm, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&events_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .and_then(|e| e["at"].as_u64())
    };
    let warned = at("exhaustion_forecast").expect("forecast event");
    let b80 = at("budget80").expect("80 % event");
    let exhausted = at("budget_exhausted").expect("exhaustion event");
    assert!(warned < b80 && b80 <= exhausted, "{events:?}");
    let fc = events
        .iter()
        .find(|e| e["kind"] == "exhaustion_forecast")
        .unwrap();
    assert_eq!(fc["driver"], "192.168.10.23", "{fc}");
    let _ = std::fs::remove_dir_all(&hook_dir);
}
