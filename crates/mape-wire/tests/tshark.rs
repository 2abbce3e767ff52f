//! Packets built by this crate (Repr emit, NAPT rewrite with incremental checksums, MSS
//! clamp, ICMP error builders, fragment header, MAP-E encapsulation) dissected by tshark as
//! an independent checker. Skipped with a message when tshark is not installed (CI
//! installs it via `.ci/apt-packages.txt`).

use core::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use mape_wire::checksum::{Delta, PseudoHeader};
use mape_wire::{
    icmpv4, icmpv6, ipv4, ipv6, tcp, udp, ChecksumMode, FragmentHeader, IpProtocol, TcpFlags,
};

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
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

const LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
const PUB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn tcp_syn() -> Vec<u8> {
    let t = tcp::Repr {
        src_port: 40000,
        dst_port: 443,
        seq_number: 0xabcdef01,
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: 64240,
        urgent_at: 0,
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1, 0)),
        payload_len: 0,
    };
    let ip = ipv4::Repr::new(LAN, WAN, IpProtocol::TCP, t.buffer_len());
    let mut b = vec![0u8; ip.buffer_len()];
    ip.emit(&mut b, ChecksumMode::Enabled).unwrap();
    let ph = PseudoHeader::V4 { src: LAN, dst: WAN };
    t.emit(&mut b[20..], &ph, ChecksumMode::Enabled).unwrap();
    b
}

fn napt_and_clamp(mut b: Vec<u8>) -> Vec<u8> {
    let mut ip = ipv4::Packet::new_checked(&mut b[..]).unwrap();
    let addr = Delta::new().replace(&ip.src_addr().octets(), &PUB.octets());
    ip.set_src_addr(PUB);
    let c = addr.apply(ip.checksum());
    ip.set_checksum(c);
    ip.decrement_ttl();
    let mut t = tcp::Packet::new_checked(ip.payload_mut()).unwrap();
    let d = addr.replace_16(t.src_port(), 4100);
    t.set_src_port(4100);
    let c = d.apply(t.checksum());
    t.set_checksum(c);
    t.clamp_mss(1400).unwrap();
    b
}

fn udp_v4() -> Vec<u8> {
    let payload = b"mape udp payload, odd length";
    let u = udp::Repr {
        src_port: 50000,
        dst_port: 7,
        payload_len: payload.len(),
    };
    let ip = ipv4::Repr::new(LAN, WAN, IpProtocol::UDP, u.buffer_len());
    let mut b = vec![0u8; ip.buffer_len()];
    ip.emit(&mut b, ChecksumMode::Enabled).unwrap();
    b[28..].copy_from_slice(payload);
    let ph = PseudoHeader::V4 { src: LAN, dst: WAN };
    u.emit(&mut b[20..], &ph, ChecksumMode::Enabled).unwrap();
    b
}

fn udp_v6() -> Vec<u8> {
    let (s, d) = (v6("2001:db8:1::10"), v6("2001:db8:2::20"));
    let u = udp::Repr {
        src_port: 50001,
        dst_port: 9,
        payload_len: 3,
    };
    let ip = ipv6::Repr::new(s, d, IpProtocol::UDP, u.buffer_len());
    let mut b = vec![0u8; ip.buffer_len()];
    ip.emit(&mut b).unwrap();
    b[48..].copy_from_slice(b"abc");
    u.emit(
        &mut b[40..],
        &PseudoHeader::V6 { src: s, dst: d },
        ChecksumMode::Enabled,
    )
    .unwrap();
    b
}

fn frag_echo_v6() -> Vec<u8> {
    let (s, d) = (v6("2001:db8:1::10"), v6("2001:db8:2::20"));
    let e = icmpv6::Repr::echo_request(7, 1, 5);
    let ip = ipv6::Repr::new(s, d, IpProtocol::IPV6_FRAG, 8 + e.buffer_len());
    let mut b = vec![0u8; ip.buffer_len()];
    ip.emit(&mut b).unwrap();
    FragmentHeader {
        next_header: IpProtocol::ICMPV6,
        offset: 0,
        more_fragments: false,
        ident: 42,
    }
    .emit(&mut b[40..])
    .unwrap();
    b[56..].copy_from_slice(b"hello");
    e.emit(&mut b[48..], &s, &d, ChecksumMode::Enabled).unwrap();
    b
}

#[test]
fn tshark_agrees_with_emitted_packets() {
    if !tshark_available() {
        println!("SKIPPED: tshark not installed (apt-get install tshark)");
        return;
    }
    let syn = tcp_syn();
    let natted = napt_and_clamp(syn.clone());
    let ip = ipv4::Repr {
        ttl: 255,
        dont_frag: false,
        ..ipv4::Repr::new(Ipv4Addr::new(192, 0, 2, 1), LAN, 0, 0)
    };
    let mut err4 = vec![0u8; 600];
    let n =
        icmpv4::emit_error_packet(&mut err4, &ip, &icmpv4::Repr::frag_needed(1400), &syn).unwrap();
    err4.truncate(n);
    let u6 = udp_v6();
    let r = v6("2001:db8:ffff::1");
    let hdr = ipv6::Repr::new(r, v6("2001:db8:1::10"), 0, 0);
    let mut err6 = vec![0u8; 1300];
    let n = icmpv6::emit_error_packet(&mut err6, &hdr, &icmpv6::Repr::packet_too_big(1280), &u6)
        .unwrap();
    err6.truncate(n);
    let mut mape = vec![0u8; 40 + natted.len()];
    ipv6::Repr::new(
        v6("2001:db8:12:3400:0:c633:6407:4"),
        r,
        IpProtocol::IPV4,
        natted.len(),
    )
    .emit(&mut mape)
    .unwrap();
    mape[40..].copy_from_slice(&natted);

    let packets = vec![syn, natted, udp_v4(), err4, u6, frag_echo_v6(), err6, mape];
    // Expected "Good" checksum statuses: 2 + 2 + 2 + 4 + 1 + 1 + 2 + 2.
    let expected_good = 16;

    let dir = std::env::temp_dir().join(format!("mape-wire-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emitted.pcap");
    std::fs::write(&path, pcap(&packets)).unwrap();
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-V",
            "-r",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lower = text.to_lowercase();
    for bad in ["incorrect", "status: bad", "malformed"] {
        assert!(!lower.contains(bad), "tshark says {bad}:\n{text}");
    }
    let good = lower.matches("status: good").count();
    assert_eq!(good, expected_good, "tshark output:\n{text}");
    assert!(text.contains("Maximum segment size: 1400 bytes"), "{text}");
    assert!(text.contains("MTU of next hop: 1400"), "{text}");
    assert!(text.contains("Identification: 0x0000002a"), "{text}");
}
