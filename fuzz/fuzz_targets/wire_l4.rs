//! Fuzz the TCP, UDP, ICMPv4 and ICMPv6 views over arbitrary bytes: every accessor after
//! `new_checked`, option iteration, MSS clamping (checksum must stay valid), checksum
//! helpers (incremental vs full).
#![no_main]

use core::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use mape_wire::checksum::{self, Delta, PseudoHeader};
use mape_wire::{icmpv4, icmpv6, tcp, udp, ChecksumMode};

fuzz_target!(|data: &[u8]| {
    let ph4 = PseudoHeader::V4 {
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::new(198, 51, 100, 2),
    };
    let s6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let d6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    let ph6 = PseudoHeader::V6 { src: s6, dst: d6 };

    // TCP
    let mut owned = data.to_vec();
    if let Ok(mut p) = tcp::Packet::new_checked(&mut owned[..]) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.data_offset(),
            p.header_len(),
            p.flags(),
            p.window_len(),
            p.checksum(),
            p.urgent_at(),
            p.payload().len(),
        );
        for o in p.options_iter() {
            let _ = o;
        }
        let _ = p.mss();
        let _ = tcp::Repr::parse(&p, &ph4, ChecksumMode::Enabled);
        if let Ok(r) = tcp::Repr::parse(&p, &ph4, ChecksumMode::Disabled) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf, &ph6, ChecksumMode::Enabled).expect("fits");
            let q = tcp::Packet::new_checked(&buf[..]).expect("emitted parses");
            assert_eq!(tcp::Repr::parse(&q, &ph6, ChecksumMode::Enabled), Ok(r));
        }
        p.fill_checksum(&ph4);
        let max = u16::from_be_bytes([data[0], data[1]]);
        p.clamp_mss(max);
        assert!(p.verify_checksum(&ph4));
        if let Some(m) = p.mss() {
            assert!(m <= max);
        }
    }

    // UDP
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload(),
            p.datagram(),
        );
        let _ = (p.verify_checksum(&ph4), p.verify_checksum(&ph6));
        let _ = udp::Repr::parse(&p, &ph4, ChecksumMode::Enabled);
        // NAPT rewrite: incremental update agrees with a full recomputation.
        let mut v = p.datagram().to_vec();
        let mut q = udp::Packet::new_unchecked(&mut v[..]);
        q.fill_checksum(&ph4);
        let old_port = q.src_port();
        let new_port = old_port.wrapping_add(12345);
        let new_src = Ipv4Addr::new(203, 0, 113, 9);
        let c = Delta::new()
            .replace(&[192, 0, 2, 1], &new_src.octets())
            .replace_16(old_port, new_port)
            .apply_udp(q.checksum());
        q.set_src_port(new_port);
        q.set_checksum(c);
        let nph = PseudoHeader::V4 {
            src: new_src,
            dst: Ipv4Addr::new(198, 51, 100, 2),
        };
        assert!(q.verify_checksum(&nph));
        q.fill_checksum(&nph);
        assert_eq!(q.checksum(), c);
    }

    // ICMPv4
    if let Ok(p) = icmpv4::Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.checksum(),
            p.rest_of_header(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.pointer(),
            p.is_error(),
            p.is_query(),
            p.data(),
            p.verify_checksum(),
        );
        if let Ok(e) = p.embedded() {
            let _ = (e.src_addr(), e.payload());
        }
        let _ = icmpv4::Repr::parse(&p, ChecksumMode::Enabled);
    }

    // ICMPv6
    if let Ok(p) = icmpv6::Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.checksum(),
            p.mtu(),
            p.pointer(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.ndp_target(),
            p.is_error(),
            p.is_query(),
            p.data(),
            p.verify_checksum(&s6, &d6),
        );
        if let Ok(e) = p.embedded() {
            let _ = (e.src_addr(), e.payload(), e.ext_headers());
        }
        let _ = icmpv6::Repr::parse(&p, &s6, &d6, ChecksumMode::Enabled);
    }

    // Checksum helpers: slice-based adjust equals recomputation on an even split.
    if data.len() >= 8 {
        let half = (data.len() / 2) & !1;
        let (a, b) = data.split_at(half);
        let n = a.len().min(b.len());
        let mut v = data.to_vec();
        let c0 = checksum::of(&v);
        let c1 = checksum::adjust(c0, &a[..n], &b[..n]);
        v[..n].copy_from_slice(&b[..n]);
        let full = checksum::of(&v);
        // Same value in one's complement (0x0000 and 0xFFFF are both zero).
        assert!(c1 == full || (c1 | full == 0xffff && c1 & full == 0));
    }
});
