//! Fuzz the IPv4 view: every accessor after `new_checked`/`new_checked_header`, Repr
//! parse/emit round trip, TTL decrement, and the ICMPv4 error builder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_wire::{icmpv4, ipv4, ChecksumMode};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ipv4::Packet::new_checked_header(data) {
        let _ = (
            p.version(),
            p.ihl(),
            p.header_len(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.is_first_fragment(),
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (p.header(), p.options(), p.payload(), p.packet_bytes());
        let _ = p.verify_checksum();
        let _ = icmpv4::may_send_error(data);
        let mut out = [0u8; 600];
        let ip = ipv4::Repr::new(p.dst_addr(), p.src_addr(), 0, 0);
        if let Ok(n) =
            icmpv4::emit_error_packet(&mut out, &ip, &icmpv4::Repr::time_exceeded(0), data)
        {
            assert!(n <= ipv4::MIN_MTU);
            let e = ipv4::Packet::new_checked(&out[..n]).expect("built packet parses");
            assert!(e.verify_checksum());
        }
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        if let Ok(r) = ipv4::Repr::parse(&p, ChecksumMode::Disabled) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf, ChecksumMode::Enabled)
                .expect("emit fits buffer_len");
            let q = ipv4::Packet::new_checked(&buf[..]).expect("emitted header parses");
            assert_eq!(ipv4::Repr::parse(&q, ChecksumMode::Enabled), Ok(r));
        }
        let mut owned = data.to_vec();
        let mut m = ipv4::Packet::new_unchecked(&mut owned[..]);
        let was_ok = m.verify_checksum();
        m.decrement_ttl();
        if was_ok {
            assert!(m.verify_checksum());
        }
        m.payload_mut();
        m.options_mut();
        m.fill_checksum();
        assert!(m.verify_checksum());
    }
});
