//! Packets produced by the CE and BR pipelines dissected by tshark (an independent
//! implementation) with checksum validation on: IPv6 next header 4, inner addresses and
//! ports, MSS, ICMP types/MTU, and every checksum "Good". The pcap (LINKTYPE_RAW = 101)
//! is written by hand. Without tshark the test is skipped with a note, or fails when
//! `CI=true` (CI installs it from .ci/apt-packages.txt).

mod common;

use std::process::Command;

use common::*;
use etherparse::{Icmpv6Type, PacketBuilder};
use mape_dataplane::*;

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microseconds
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

const FIELDS: &[&str] = &[
    "ipv6.nxt",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.options.mss_val",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "ip.checksum.status",
    "udp.checksum.status",
    "tcp.checksum.status",
    "icmp.checksum.status",
];

fn dissect(file: &std::path::Path) -> Vec<std::collections::HashMap<&'static str, String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file);
    for o in [
        "ip.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
    ] {
        cmd.args(["-o", o]);
    }
    cmd.args([
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-E",
        "separator=|",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            FIELDS
                .iter()
                .copied()
                .zip(l.split('|').map(str::to_owned))
                .collect()
        })
        .collect()
}

fn ptb(mtu: u32, quoted: &[u8]) -> Vec<u8> {
    let router: std::net::Ipv6Addr = "2001:db8:0:1::1".parse().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ipv6(router.octets(), ce6().octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut v, quoted)
        .unwrap();
    v
}

#[test]
fn tshark_dissects_pipeline_output() {
    if !tshark_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tshark is required in CI (apt-get install tshark)");
        }
        println!("SKIPPED: tshark not installed (apt-get install tshark)");
        return;
    }
    let mut c = ce(false);
    let mut b = br();
    let mut pkts = Vec::new();
    // 0: CE → WAN, UDP from a port outside the set (rewritten into the set).
    let (_, o) = run_ce(&mut c, 0, &udp4(LAN_HOST, 40000, REMOTE, 9999, 64, b"data"));
    let up = one(&o, Direction::Wan);
    let ext_port = u16::from_be_bytes([up[60], up[61]]);
    pkts.push(up.clone());
    // 1: CE → WAN, TCP SYN with MSS clamped to 1420.
    let (_, o) = run_ce(&mut c, 0, &tcp_syn4(LAN_HOST, 40001, REMOTE, 443, 64, 1460));
    let syn = one(&o, Direction::Wan);
    let syn_port = u16::from_be_bytes([syn[60], syn[61]]);
    pkts.push(syn);
    // 2: BR → internet (decapsulated).
    let (_, o) = run_br(&mut b, 0, &up);
    let inet = one(&o, Direction::INTERNET);
    pkts.push(inet);
    // 3: internet → BR → CE domain side (encapsulated to the CE).
    let (_, o) = run_br(&mut b, 1, &udp4(REMOTE, 9999, EXT, ext_port, 64, b"back"));
    let down = one(&o, Direction::DOMAIN);
    pkts.push(down.clone());
    // 4: CE → LAN (decapsulated, reverse translated).
    let (_, o) = run_ce(&mut c, 1, &down);
    pkts.push(one(&o, Direction::Lan));
    // 5: CE → LAN, frag needed translated from an ICMPv6 Packet Too Big.
    let (_, o) = run_ce(&mut c, 2, &ptb(1400, &up));
    pkts.push(one(&o, Direction::Lan));

    let dir = std::env::temp_dir().join(format!("mape-dataplane-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pipeline.pcap");
    std::fs::write(&file, pcap(&pkts)).unwrap();
    let rows = dissect(&file);
    assert_eq!(rows.len(), pkts.len());
    let good = |r: &std::collections::HashMap<&str, String>, f: &str| {
        let v = &r[f];
        assert!(
            !v.is_empty() && v.split(',').all(|s| s == "1"),
            "{f} = {v:?} (1 = Good) in {r:?}"
        );
    };
    // 0: IPv6 next header 4, inner source 192.0.2.18 and a port of the set.
    assert_eq!(rows[0]["ipv6.nxt"], "4");
    assert_eq!(rows[0]["ip.src"], "192.0.2.18");
    assert_eq!(rows[0]["udp.srcport"], ext_port.to_string());
    assert!(c.config().port_set.contains(ext_port));
    good(&rows[0], "ip.checksum.status");
    good(&rows[0], "udp.checksum.status");
    // 1: SYN.
    assert_eq!(rows[1]["ipv6.nxt"], "4");
    assert_eq!(rows[1]["tcp.srcport"], syn_port.to_string());
    assert_eq!(rows[1]["tcp.options.mss_val"], "1420");
    good(&rows[1], "ip.checksum.status");
    good(&rows[1], "tcp.checksum.status");
    // 2: BR decapsulated.
    assert_eq!(rows[2]["ipv6.nxt"], "");
    assert_eq!(rows[2]["ip.src"], "192.0.2.18");
    good(&rows[2], "udp.checksum.status");
    // 3: BR encapsulated toward the CE.
    assert_eq!(rows[3]["ipv6.nxt"], "4");
    assert_eq!(rows[3]["udp.dstport"], ext_port.to_string());
    good(&rows[3], "udp.checksum.status");
    // 4: CE → LAN.
    assert_eq!(rows[4]["ip.dst"], "192.168.1.10");
    assert_eq!(rows[4]["udp.dstport"], "40000");
    good(&rows[4], "ip.checksum.status");
    good(&rows[4], "udp.checksum.status");
    // 5: frag needed, MTU 1360, quoting the internal endpoint.
    assert_eq!(rows[5]["icmp.type"], "3");
    assert_eq!(rows[5]["icmp.code"], "4");
    assert_eq!(rows[5]["icmp.mtu"], "1360");
    assert_eq!(rows[5]["ip.dst"], "192.168.1.10,198.51.100.7");
    assert_eq!(rows[5]["udp.srcport"], "40000");
    good(&rows[5], "icmp.checksum.status");
    good(&rows[5], "ip.checksum.status");

    // Full dissection: nothing malformed or incorrect.
    let v = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-V",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-o", "udp.check_checksum:TRUE"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    for bad in ["[incorrect", "Malformed", "Status: Bad"] {
        assert!(!text.contains(bad), "tshark says {bad}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
