//! One arbitrary frame of an arbitrary link type: decoding never panics, and a decoded
//! packet re-encoded decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_replay::packet::{decode, encode_ipv4, linktype};

fuzz_target!(|input: (u8, &[u8])| {
    let (sel, data) = input;
    let links = [
        linktype::NULL,
        linktype::ETHERNET,
        linktype::RAW,
        linktype::LOOP,
        linktype::LINUX_SLL,
        linktype::IPV4,
        linktype::IPV6,
        linktype::LINUX_SLL2,
        u32::from(sel),
    ];
    let link = links[usize::from(sel) % links.len()];
    if let Ok(p) = decode(link, data) {
        let mut buf = Vec::new();
        encode_ipv4(&p, 0, 1, &mut buf).expect("a decoded packet encodes");
        assert_eq!(decode(linktype::RAW, &buf), Ok(p));
    }
});
