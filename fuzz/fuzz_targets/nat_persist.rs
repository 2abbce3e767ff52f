//! Arbitrary bytes as a saved session table (`mape_nat::persist`): decoding never panics
//! and never allocates past the input; a table it accepts encodes back to the same bytes
//! (an older format's: to bytes that decode to the same table),
//! and restores into a fresh engine of its rule (with and without a forward, at several
//! clocks and downtimes) with the table's invariants intact and every restored session
//! found by both lookups. The first byte chooses whether the rest is sealed first (its
//! length and CRC fixed up), so the fuzzer also reaches the checks behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mape_nat::persist::{seal, VERSION};
use mape_nat::*;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 4 {
        bytes.truncate(bytes.len() - 4);
        seal(&mut bytes);
    }
    let table = match SavedTable::decode(&bytes) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            return;
        }
    };
    // A file of the current format encodes back to the same bytes; an older one (format
    // 1 is still read) is written in the current format, which decodes to the same table.
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version == VERSION {
        assert_eq!(table.encode(), bytes, "decode then encode is the identity");
    } else {
        let again = SavedTable::decode(&table.encode()).expect("its own encoding decodes");
        assert_eq!(again, table, "an older file re-encoded decodes to the same table");
    }
    let ports = table.port_set();
    let mut cfg = NatConfig::mape();
    cfg.max_sessions = 4096;
    if mode & 2 == 2 {
        if let Some(port) = ports.iter().find(|&p| p != 0) {
            cfg.forwards.push(StaticForward {
                proto: Protocol::Tcp,
                external_port: port,
                internal: Endpoint::new(std::net::Ipv4Addr::new(192, 168, 1, 30), 22),
            });
        }
    }
    let clock = Timestamp::from_millis(u64::from(mode >> 2) * 60_000);
    let downtime = u64::from(mode >> 4) * 7_000;
    let Ok(mut nat) = Nat::new(cfg, table.external(), ports) else {
        return;
    };
    let report = nat
        .restore(&table, clock, table.taken_wall_ms().saturating_add(downtime))
        .expect("the table's own rule");
    assert_eq!(
        report.restored
            + report.expired
            + report.outside_port_set
            + report.forward_gone
            + report.conflicting
            + report.over_limit,
        report.saved
    );
    assert_eq!(nat.session_count(), report.restored);
    if let Err(e) = nat.check_invariants() {
        panic!("{e}");
    }
    for s in nat.sessions(clock, usize::MAX) {
        assert_eq!(
            nat.translation_of(s.proto, s.internal, s.remote),
            Some(s.external)
        );
        assert_eq!(
            nat.inbound_icmp_error(s.proto, s.external, s.remote),
            Some(s.internal)
        );
    }
    nat.expire(clock.plus_millis(1 << 40));
    assert_eq!(nat.session_count(), 0);
    if let Err(e) = nat.check_invariants() {
        panic!("{e}");
    }
});
