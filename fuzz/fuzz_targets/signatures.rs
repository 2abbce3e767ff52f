//! Arbitrary bytes as a signature file (UTF-8, lossily): parsing and validation never panic;
//! an error is one line; an accepted file keeps every documented bound and invariant; a
//! catalogue built from it (alone and in front of the built-in one) answers `matches` like a
//! plain scan of its entries, over endpoints of every destination kind and around every
//! range edge.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use mape_nat::signatures::{Catalogue, DestinationKind, MAX_ENTRIES, MAX_RANGES};
use mape_nat::{Endpoint, Protocol};

const ADDRS: [Ipv4Addr; 8] = [
    Ipv4Addr::new(192, 168, 1, 211),
    Ipv4Addr::new(10, 0, 0, 255),
    Ipv4Addr::new(169, 254, 3, 4),
    Ipv4Addr::new(100, 64, 0, 1),
    Ipv4Addr::new(224, 0, 0, 251),
    Ipv4Addr::new(239, 255, 255, 250),
    Ipv4Addr::new(255, 255, 255, 255),
    Ipv4Addr::new(198, 51, 100, 99),
];

fn check(c: &Catalogue, ports: &[u16]) {
    assert!(c.len() <= MAX_ENTRIES);
    for proto in Protocol::ALL {
        for &addr in &ADDRS {
            for &port in ports {
                let dst = Endpoint::new(addr, port);
                let scan = c.entries().iter().find(|s| s.matches(proto, dst));
                let hit = c.matches(proto, dst);
                assert_eq!(hit, scan, "{proto} {dst}");
                if let Some(s) = hit {
                    assert_eq!(s.proto, proto);
                    assert!(s.destination.admits(addr));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries = match Catalogue::from_toml(&text, "fuzz.toml") {
        Ok(e) => e,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg:?}");
            assert!(msg.starts_with("fuzz.toml: "), "{msg}");
            return;
        }
    };
    assert!(entries.len() <= MAX_ENTRIES);
    let mut ports = vec![0u16, 1, 53, 1900, 5353, 59781, 59870, u16::MAX];
    for (i, s) in entries.iter().enumerate() {
        assert!(!s.name.is_empty() && s.name.len() <= 64);
        assert!(s
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert!(entries[..i].iter().all(|o| o.name != s.name));
        for t in [&s.application, &s.advice, &s.source] {
            assert!(!t.trim().is_empty() && !t.chars().any(char::is_control));
        }
        assert!(!s.ports.is_empty() && s.ports.len() <= MAX_RANGES);
        for &(lo, hi) in &s.ports {
            assert!(lo >= 1 && lo <= hi);
            if ports.len() < 512 {
                ports.extend([lo - 1, lo, hi, hi.saturating_add(1)]);
            }
        }
        let _ = s.ports_text();
        let _ = DestinationKind::of(ADDRS[i % ADDRS.len()]);
    }
    match Catalogue::default().with_toml(&text, "fuzz.toml") {
        Ok(c) => {
            assert_eq!(c.entries(), &entries[..]);
            check(&c, &ports);
        }
        Err(e) => panic!("from_toml accepted what with_toml refused: {e}"),
    }
    // In front of the built-in catalogue: a name clash or the size bound may refuse it.
    match Catalogue::builtin().with_toml(&text, "fuzz.toml") {
        Ok(c) => {
            assert_eq!(&c.entries()[..entries.len()], &entries[..]);
            check(&c, &ports);
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
