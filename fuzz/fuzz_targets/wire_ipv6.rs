//! Fuzz the IPv6 view and the extension-header walker, the fragment header, and the
//! ICMPv6 error builder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_wire::{icmpv6, ipv6};

fuzz_target!(|data: &[u8]| {
    // The walker on raw bytes with the first byte as the first next-header value.
    if let Some((&nh, rest)) = data.split_first() {
        if let Ok(e) = ipv6::walk(nh, rest) {
            assert!(e.offset <= rest.len());
            assert!(usize::from(e.count) <= ipv6::MAX_EXT_HEADERS);
        }
        let _ = ipv6::FragmentHeader::parse(rest);
    }
    if let Ok(p) = ipv6::Packet::new_checked_header(data) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
            p.next_header(),
            p.hop_limit(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (p.payload(), p.packet_bytes());
        if let Ok(e) = p.ext_headers() {
            assert!(e.offset <= p.packet_bytes().len());
            let _ = e.has_upper_header();
        }
        let _ = p.upper_layer();
        let _ = icmpv6::may_send_error(data, icmpv6::msg_type::DEST_UNREACHABLE, 0);
        let mut out = [0u8; 1300];
        let ip = ipv6::Repr::new(p.dst_addr(), p.src_addr(), 0, 0);
        let rep = icmpv6::Repr::packet_too_big(1280);
        if let Ok(n) = icmpv6::emit_error_packet(&mut out, &ip, &rep, data) {
            assert!(n <= ipv6::MIN_MTU);
        }
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let r = ipv6::Repr::parse(&p).expect("checked packet parses");
        let mut buf = [0u8; ipv6::HEADER_LEN];
        r.emit(&mut buf).expect("40 bytes fit");
        assert_eq!(&buf[..], &data[..ipv6::HEADER_LEN]);
        if let Ok(e) = p.ext_headers() {
            if let Some(f) = e.fragment {
                let mut fb = [0u8; 8];
                f.emit(&mut fb).expect("8 bytes fit");
                assert_eq!(ipv6::FragmentHeader::parse(&fb), Ok(f));
            }
        }
    }
});
