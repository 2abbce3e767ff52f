//! The port mapping server against request bytes built by hand from the RFC figures
//! (RFC 6886 §3.2/§3.3, RFC 6887 §7.1/§11.1), the replies read back field by field.

use std::net::{Ipv4Addr, SocketAddrV4};

use mape_nat::{Nat, NatConfig, Protocol, Timestamp};
use mape_rules::{Ipv4Net, PortSet};

use super::{Responder, Wire};

const EXT: Ipv4Addr = Ipv4Addr::new(14, 9, 26, 101);

/// PSID 161 of 8 bits, offset 4: ports A·4096 + 2576 + M (6672..=6687, 10768..=10783, ...).
fn nat() -> Nat {
    Nat::new(NatConfig::mape(), EXT, PortSet::new(161, 8, 4).unwrap()).unwrap()
}

fn responder(pcp: bool, natpmp: bool) -> Responder {
    let lan = vec![Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 24).unwrap()];
    Responder::new(pcp, natpmp, lan, 50, Timestamp::from_secs(10))
}

fn lan1() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 40000)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// RFC 6886 §3.3: version 0, opcode (1 UDP, 2 TCP), reserved 16 bits, internal port,
/// suggested external port, lifetime.
fn natpmp_map(op: u8, internal: u16, suggested: u16, lifetime: u32) -> Vec<u8> {
    let mut b = vec![0, op, 0, 0];
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&suggested.to_be_bytes());
    b.extend_from_slice(&lifetime.to_be_bytes());
    b
}

/// RFC 6887 Figure 2 (request header) + Figure 9 (MAP payload): version 2, R 0 opcode 1,
/// reserved 16, lifetime 32, client IP 128 (IPv4-mapped); nonce 96, protocol 8, reserved
/// 24, internal port 16, suggested external port 16, suggested external IP 128.
fn pcp_map(client: Ipv4Addr, proto: u8, internal: u16, suggested: u16, lifetime: u32) -> Vec<u8> {
    let mut b = vec![2, 1, 0, 0];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0xff, 0xff]);
    b.extend_from_slice(&client.octets());
    b.extend_from_slice(&[0x5a; 12]);
    b.extend_from_slice(&[proto, 0, 0, 0]);
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&suggested.to_be_bytes());
    b.extend_from_slice(&[0; 16]);
    assert_eq!(b.len(), 60);
    b
}

fn ask(r: &mut Responder, n: &mut Nat, now: Timestamp, req: &[u8]) -> (Vec<u8>, String) {
    let mut out = vec![0u8; 1100];
    let (len, o) = r.answer(n, now, lan1(), req, &mut out);
    out.truncate(len);
    (out, o.result)
}

#[test]
fn natpmp_external_address_map_and_delete() {
    let (mut r, mut n) = (responder(true, true), nat());
    let now = Timestamp::from_secs(25);
    // §3.2: [0, 0] → version 0, opcode 128, result 0, epoch, external address.
    let (b, result) = ask(&mut r, &mut n, now, &[0, 0]);
    assert_eq!(result, "success");
    assert_eq!(b.len(), 12);
    assert_eq!(&b[..4], &[0, 128, 0, 0]);
    assert_eq!(be32(&b, 4), 15, "seconds since the server started at 10 s");
    assert_eq!(&b[8..12], &EXT.octets());
    // §3.3: TCP 22 suggested 6680, 7200 s → 16 bytes, opcode 130.
    let (b, result) = ask(&mut r, &mut n, now, &natpmp_map(2, 22, 6680, 7200));
    assert_eq!(result, "success");
    assert_eq!(b.len(), 16);
    assert_eq!(&b[..4], &[0, 130, 0, 0]);
    assert_eq!((be16(&b, 8), be16(&b, 10), be32(&b, 12)), (22, 6680, 7200));
    let ep = "192.168.1.10:22".parse().unwrap();
    assert_eq!(n.mapping_of(Protocol::Tcp, ep).map(|e| e.port), Some(6680));
    // Outside the set: a port of the set instead (8000 → 6687, the nearest).
    let (b, _) = ask(&mut r, &mut n, now, &natpmp_map(1, 5000, 8000, 60));
    assert_eq!((b[1], be16(&b, 10)), (129, 6687));
    // §3.4: lifetime 0 deletes; external port and lifetime 0 in the answer.
    let (b, result) = ask(&mut r, &mut n, now, &natpmp_map(2, 22, 0, 0));
    assert_eq!(result, "success");
    assert_eq!((be16(&b, 8), be16(&b, 10), be32(&b, 12)), (22, 0, 0));
    assert_eq!(n.mapping_of(Protocol::Tcp, ep), None);
    // A response sent to the server (opcode ≥ 128): silence.
    let (b, result) = ask(&mut r, &mut n, now, &[0, 128]);
    assert!(b.is_empty());
    assert_eq!(result, "not_a_request");
    n.check_invariants().unwrap();
}

#[test]
fn pcp_map_in_set_out_of_set_and_refusals() {
    let (mut r, mut n) = (responder(true, true), nat());
    let now = Timestamp::from_secs(12);
    let me = *lan1().ip();
    let (b, result) = ask(&mut r, &mut n, now, &pcp_map(me, 6, 8080, 10770, 3600));
    assert_eq!(result, "success");
    assert_eq!(b.len(), 60);
    // Figure 3: version 2, R 1 opcode 1, reserved, result 0, lifetime, epoch, 96 reserved.
    assert_eq!(&b[..4], &[2, 0x81, 0, 0]);
    assert_eq!((be32(&b, 4), be32(&b, 8)), (3600, 2));
    assert_eq!(&b[24..36], &[0x5a; 12], "nonce echoed");
    assert_eq!((b[36], be16(&b, 40), be16(&b, 42)), (6, 8080, 10770));
    assert_eq!(&b[44..56], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    assert_eq!(&b[56..60], &EXT.octets());
    // Out of the set: the nearest in-set port (8000 → 6687).
    let (b, _) = ask(&mut r, &mut n, now, &pcp_map(me, 17, 8081, 8000, 3600));
    assert_eq!((b[3], be16(&b, 42)), (0, 6687));
    // Another host's address in the client field: ADDRESS_MISMATCH (12), no mapping.
    let other = Ipv4Addr::new(192, 168, 1, 99);
    let (b, result) = ask(&mut r, &mut n, now, &pcp_map(other, 6, 80, 0, 3600));
    assert_eq!((b[3], result.as_str()), (12, "address_mismatch"));
    assert_eq!(n.mapping_count(), 2);
    // Protocol 1 (ICMP): UNSUPP_PROTOCOL (9).
    let (b, _) = ask(&mut r, &mut n, now, &pcp_map(me, 1, 80, 0, 3600));
    assert_eq!(b[3], 9);
    // PEER (opcode 2): UNSUPP_OPCODE (4).
    let mut peer = pcp_map(me, 6, 80, 0, 3600);
    peer[1] = 2;
    let (b, result) = ask(&mut r, &mut n, now, &peer);
    assert_eq!((b[1], b[3], result.as_str()), (0x82, 4, "unsupp_opcode"));
    // ANNOUNCE (opcode 0, header only): SUCCESS, lifetime 0.
    let mut ann = pcp_map(me, 6, 80, 0, 0)[..24].to_vec();
    ann[1] = 0;
    let (b, _) = ask(&mut r, &mut n, now, &ann);
    assert_eq!((b.len(), b[1], b[3], be32(&b, 4)), (24, 0x80, 0, 0));
    // Delete (lifetime 0): SUCCESS, lifetime 0, the mapping gone.
    let (b, _) = ask(&mut r, &mut n, now, &pcp_map(me, 6, 8080, 0, 0));
    assert_eq!((b[3], be32(&b, 4)), (0, 0));
    assert_eq!(n.mapping_count(), 1);
    n.check_invariants().unwrap();
}

/// The mape policy caps a host at half the 240 ports while another host is active:
/// .10's 121st TCP mapping is NO_RESOURCES (8), with a short error lifetime.
#[test]
fn pcp_share_exhausted_is_no_resources() {
    let (mut r, mut n) = (responder(true, false), nat());
    n.set_mapping_limits(mape_nat::MappingLimits {
        max_per_host: 1000,
        ..Default::default()
    });
    let now = Timestamp::from_secs(12);
    let busy = mape_nat::MappingRequest {
        proto: Protocol::Udp,
        internal: "192.168.1.20:5000".parse().unwrap(),
        suggested: 0,
        lifetime_s: 600,
        exact: false,
        origin: mape_nat::MappingOrigin::Control,
    };
    n.request_mapping(now, &busy).unwrap();
    let me = *lan1().ip();
    for i in 0..120 {
        let (b, _) = ask(
            &mut r,
            &mut n,
            Timestamp::from_secs(12 + i),
            &pcp_map(me, 6, 1000 + i as u16, 0, 600),
        );
        assert_eq!(b[3], 0, "mapping {i}");
    }
    let (b, result) = ask(
        &mut r,
        &mut n,
        Timestamp::from_secs(200),
        &pcp_map(me, 6, 2000, 0, 600),
    );
    assert_eq!(
        (b[3], be32(&b, 4), result.as_str()),
        (8, 30, "no_resources")
    );
    // The same through NAT-PMP: result 4 (out of resources).
    let (mut r, _) = (responder(false, true), ());
    let (b, result) = ask(
        &mut r,
        &mut n,
        Timestamp::from_secs(201),
        &natpmp_map(2, 2001, 0, 600),
    );
    assert_eq!((be16(&b, 2), result.as_str()), (4, "out_of_resources"));
}

#[test]
fn foreign_sources_floods_and_switched_off_protocols_are_dropped() {
    let (mut r, mut n) = (responder(true, false), nat());
    let now = Timestamp::from_secs(12);
    let mut out = vec![0u8; 1100];
    let wan = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 7), 5351);
    let req = pcp_map(*wan.ip(), 6, 80, 0, 3600);
    let (len, o) = r.answer(&mut n, now, wan, &req, &mut out);
    assert_eq!((len, o.wire, o.result.as_str()), (0, Wire::Pcp, "not_lan"));
    // 50 a second with a burst of 50: the 51st at the same instant is dropped.
    let ann = {
        let mut a = pcp_map(*lan1().ip(), 6, 80, 0, 0)[..24].to_vec();
        a[1] = 0;
        a
    };
    for _ in 0..50 {
        assert_eq!(ask(&mut r, &mut n, now, &ann).1, "success");
    }
    let (b, result) = ask(&mut r, &mut n, now, &ann);
    assert!(b.is_empty());
    assert_eq!(result, "rate_limited");
    // PCP only: NAT-PMP gets PCP's UNSUPP_VERSION (1) in a PCP header.
    let (b, result) = ask(&mut r, &mut n, Timestamp::from_secs(20), &[0, 0]);
    assert_eq!((b[0], b[3], result.as_str()), (2, 1, "unsupp_version"));
    // Neither on: everything dropped as disabled.
    let mut off = responder(false, false);
    let (len, o) = off.answer(&mut n, now, lan1(), &ann, &mut out);
    assert_eq!((len, o.result.as_str()), (0, "disabled"));
    assert_eq!(n.mapping_count(), 0);
}

/// RFC 6887 §11.3 / §15: a MAP request (or delete) for an existing mapping with another
/// nonce is NOT_AUTHORIZED (2), the error's lifetime the mapping's remaining one, and the
/// mapping stays; with the mapping's own nonce it renews and deletes.
#[test]
fn pcp_other_nonce_is_not_authorized() {
    let (mut r, mut n) = (responder(true, false), nat());
    let me = *lan1().ip();
    let t0 = Timestamp::from_secs(12);
    let (b, _) = ask(&mut r, &mut n, t0, &pcp_map(me, 6, 8080, 10770, 3600));
    assert_eq!((b[3], be16(&b, 42)), (0, 10770));
    // 100 s later another nonce: NOT_AUTHORIZED, lifetime 3500, its payload echoed.
    let mut other = pcp_map(me, 6, 8080, 10770, 3600);
    other[24..36].copy_from_slice(&[0xa5; 12]);
    let t1 = Timestamp::from_secs(112);
    let (b, result) = ask(&mut r, &mut n, t1, &other);
    assert_eq!((b.len(), b[3], result.as_str()), (60, 2, "not_authorized"));
    assert_eq!(be32(&b, 4), 3500);
    assert_eq!(&b[24..36], &[0xa5; 12]);
    // Its delete is refused the same way; the mapping is still there.
    let mut del = other.clone();
    del[4..8].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(ask(&mut r, &mut n, t1, &del).0[3], 2);
    let ep = "192.168.1.10:8080".parse().unwrap();
    assert_eq!(n.mapping_of(Protocol::Tcp, ep).map(|e| e.port), Some(10770));
    // The right nonce deletes; then the other nonce may map it anew.
    assert_eq!(ask(&mut r, &mut n, t1, &pcp_map(me, 6, 8080, 0, 0)).0[3], 0);
    assert_eq!(n.mapping_of(Protocol::Tcp, ep), None);
    assert_eq!(ask(&mut r, &mut n, t1, &other).0[3], 0);
}

/// RFC 6887 §8.3's order: a version 2 request shorter than 24 octets is dropped silently;
/// a short one of another version is UNSUPP_VERSION; 24..=1100 but not a multiple of 4,
/// or too short for MAP, is MALFORMED_REQUEST (3).
#[test]
fn pcp_section_8_3_short_requests() {
    let (mut r, mut n) = (responder(true, false), nat());
    let now = Timestamp::from_secs(12);
    let req = pcp_map(*lan1().ip(), 6, 80, 0, 3600);
    let (b, result) = ask(&mut r, &mut n, now, &req[..20]);
    assert!(b.is_empty());
    assert_eq!(result, "truncated");
    let (b, result) = ask(&mut r, &mut n, now, &[1, 1, 0, 0]);
    assert_eq!(
        (b.len(), b[0], b[3], result.as_str()),
        (24, 2, 1, "unsupp_version")
    );
    let (b, _) = ask(&mut r, &mut n, now, &req[..58]);
    assert_eq!(b[3], 3);
    let (b, _) = ask(&mut r, &mut n, now, &req[..48]);
    assert_eq!((b.len(), b[1], b[3]), (24, 0x81, 3));
    assert_eq!(n.mapping_count(), 0);
}

/// RFC 6886 §3.2.1 / RFC 6887 §14.1.3 with a fake clock: a server started at 10 s
/// announces at once (NAT-PMP's 12-byte external address response, then PCP's 24-byte
/// ANNOUNCE response: SUCCESS, lifetime 0), each with the epoch of its sending, ten
/// rounds 250 ms apart and doubling; a new external address starts the epoch and the
/// rounds over.
#[test]
fn announcements_after_restart_and_address_change() {
    let (mut r, n) = (responder(true, true), nat());
    let t = |ms: u64| Timestamp::from_millis(10_000 + ms);
    let first = r.announcements(&n, t(0));
    assert_eq!(first.len(), 2);
    let mut natpmp = vec![0, 128, 0, 0, 0, 0, 0, 0];
    natpmp.extend_from_slice(&EXT.octets());
    assert_eq!(first[0], natpmp);
    let mut ann = vec![2, 0x80, 0, 0];
    ann.extend_from_slice(&[0; 20]);
    assert_eq!(first[1], ann);
    assert_eq!(r.next_announcement(), Some(t(250)));
    assert!(r.announcements(&n, t(249)).is_empty());
    let mut rounds = vec![0u64];
    for ms in (50..200_000).step_by(50) {
        let got = r.announcements(&n, t(ms));
        if !got.is_empty() {
            // The epoch field is the seconds since the start at 10 s.
            assert_eq!(be32(&got[0], 4), u32::try_from(ms / 1000).unwrap());
            assert_eq!(be32(&got[1], 8), u32::try_from(ms / 1000).unwrap());
            rounds.push(ms);
        }
    }
    assert_eq!(
        rounds,
        vec![0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750, 127750]
    );
    assert_eq!(r.next_announcement(), None);
    // The engine now has another external address (reprovisioned): a new epoch (0) and
    // the new address announced at once.
    let other = Ipv4Addr::new(14, 9, 26, 102);
    let n2 = Nat::new(NatConfig::mape(), other, PortSet::new(161, 8, 4).unwrap()).unwrap();
    let got = r.announcements(&n2, t(300_000));
    assert_eq!(got.len(), 2);
    assert_eq!((be32(&got[0], 4), &got[0][8..12]), (0, &other.octets()[..]));
    assert_eq!(be32(&got[1], 8), 0);
    // Only the protocols switched on are announced.
    let mut pcp_only = responder(true, false);
    let got = pcp_only.announcements(&n, t(0));
    assert_eq!((got.len(), got[0][0]), (1, 2));
}

/// The miniupnpd failure mode, counted: a MAP for an external port outside the set
/// (NAT-PMP 8000, PCP 8001) is answered with an in-set port and tallied per host (the
/// last one's protocol, port and server); "any port" (0), in-set ports and deletes are not.
#[test]
fn requests_outside_the_set_are_counted_per_host() {
    let (mut r, mut n) = (responder(true, true), nat());
    let stats = super::Stats::default();
    let now = Timestamp::from_secs(12);
    let me = *lan1().ip();
    let mut out = vec![0u8; 1100];
    for req in [
        natpmp_map(1, 5000, 8000, 60),
        natpmp_map(2, 5001, 0, 60),
        natpmp_map(2, 5002, 6680, 60),
        natpmp_map(2, 5003, 8000, 0),
        pcp_map(me, 6, 5004, 8001, 60),
        pcp_map(me, 6, 5005, 10770, 60),
    ] {
        let (_, o) = r.answer(&mut n, now, lan1(), &req, &mut out);
        if let Some((proto, port)) = o.outside {
            stats.note_outside(me, o.wire.as_str(), proto, port);
        }
    }
    let got = stats.outside_set();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].host,
            got[0].requests,
            got[0].via.as_str(),
            got[0].proto,
            got[0].port
        ),
        (me, 2, "pcp", Protocol::Tcp, 8001)
    );
    let mut m = crate::metrics::Metrics::default();
    stats.metrics(&mut m);
    let text = m.render();
    assert!(
        text.contains("mape_port_mapping_outside_set_requests_total{host=\"192.168.1.10\"} 2"),
        "{text}"
    );
}
