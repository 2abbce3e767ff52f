//! The router's own traffic under an all-hosts storm (#15 §1): every LAN host storms a
//! silent public sink from new source ports at 100× the seed's rate, and the CE's own
//! `dig` through the tunnel still succeeds every time, on the ports the engine keeps for
//! the router (`nat.router_reserve_ports`, default 8); `show hosts` and the snapshot show
//! the router as its own line. A DNS forwarder on the CE (dnsmasq, as the README
//! recommends, with no cache so that every lookup goes upstream) answers lan1 every time
//! too: its upstream queries are the router's own flows.

use std::time::Duration;

use mape_lab::{addr, Lab, LabOptions};

mod common;
use common::{bin as mape, text as out};

/// Whether the lab can run here; panics under CI when it cannot.
fn lab_possible() -> bool {
    mape_lab::possible_or_skip("router tests")
}

/// One lookup of the lab zone from namespace `ns` through the resolver at `server`;
/// true when the answer came.
fn lookup(lab: &Lab, ns: &str, server: std::net::Ipv4Addr) -> bool {
    let ns = lab.ns(ns);
    let server = format!("@{server}");
    lab.exec(
        &ns,
        &["dig", "+time=2", "+tries=1", "+short", &server, addr::WWW],
    )
    .is_ok_and(|o| out(&o).contains(&addr::SERVER.to_string()))
}

/// The CE itself, through the tunnel to the internet's dnsmasq.
fn ce_lookup(lab: &Lab) -> bool {
    lookup(lab, "ce", addr::SERVER)
}

/// lan1 through the CE's forwarder (192.168.10.1, LAN side).
fn lan1_lookup_via_ce(lab: &Lab) -> bool {
    lookup(lab, "lan1", addr::CE_LAN)
}

#[test]
fn the_routers_own_dns_survives_every_host_storming() {
    if !lab_possible() {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let ce = lab.ns("ce");
    let upstream = format!("--server={}", addr::SERVER);
    let listen = format!("--listen-address={}", addr::CE_LAN);
    lab.spawn(
        &ce,
        "forwarder",
        &[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            &upstream,
            "--cache-size=0",
            "--log-facility=-",
            "--pid-file=",
            "--user=root",
        ],
    )
    .expect("forwarder");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        lan1_lookup_via_ce(&lab),
        "the forwarder answers before the storm"
    );
    let sink = format!("{}:59870", addr::SINK);
    let mut storms = Vec::new();
    for host in ["lan1", "lan2"] {
        let ns = lab.ns(host);
        storms.push(
            lab.storm(
                &ns,
                &format!("storm-{host}"),
                std::slice::from_ref(&sink),
                100,
                40,
            )
            .expect("storm"),
        );
    }
    // Long enough for the two hosts to take every port they may.
    std::thread::sleep(Duration::from_secs(8));
    let snap = lab
        .ce_query(&mape_control::Request::Snapshot)
        .expect("snapshot");
    let lan_ports: u64 = snap["hosts"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|x| x["router"] != true)
                .filter_map(|x| x["ports_by_proto"][1].as_u64())
                .sum()
        })
        .unwrap_or(0);
    let udp_in_use = snap["protocols"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["proto"] == "udp"))
        .and_then(|x| x["in_use"].as_u64())
        .unwrap_or(0);
    // The storm really spends the set: the LAN holds all it may, 240 − 8.
    assert_eq!(lan_ports, 232, "LAN UDP ports: {snap}");
    assert_eq!(snap["router"]["reserve_ports"], 8, "{}", snap["router"]);
    assert_eq!(
        snap["router"]["addresses"],
        serde_json::json!([addr::CE_LAN.to_string()]),
        "the CE's br-lan address is the router"
    );
    assert!(udp_in_use >= 232, "udp in use {udp_in_use}");

    let (mut ok, mut forwarded) = (0, 0);
    for _ in 0..20 {
        if ce_lookup(&lab) {
            ok += 1;
        }
        if lan1_lookup_via_ce(&lab) {
            forwarded += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let sock = lab.ce_socket().display().to_string();
    let hosts = std::process::Command::new(mape())
        .args(["show", "hosts", "--socket", &sock])
        .output()
        .unwrap();
    let text = out(&hosts);
    let snap = lab
        .ce_query(&mape_control::Request::Snapshot)
        .expect("snapshot");
    for pid in storms {
        lab.wait_pid(pid, Duration::from_secs(60));
    }
    lab.teardown();
    assert_eq!(ok, 20, "the CE's own dig failed during the storm");
    assert_eq!(
        forwarded, 20,
        "lan1's lookups through the CE's forwarder failed"
    );
    assert!(
        text.lines().any(|l| l.starts_with("router ")),
        "show hosts has no router line:\n{text}"
    );
    let router = snap["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|x| x["router"] == true))
        .cloned()
        .unwrap_or_default();
    assert_eq!(router["addr"], addr::CE_LAN.to_string(), "{snap}");
    assert_eq!(snap["router"]["refusals"], 0, "{}", snap["router"]);
}
