//! Arbitrary bytes as what LAN hosts send the port mapping servers: split into datagrams
//! (at each `0xff 0xfe`), each answered by the PCP / NAT-PMP server from one of four LAN
//! hosts a second apart, then the whole input as a UPnP SOAP body and as an SSDP
//! datagram. Never a panic, a reply never longer than a PCP message, and the engine's
//! invariants (port slots, host shares, mapping indexes) hold after every step.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use mape_daemon::igd::{self, soap};
use mape_daemon::portmap::Responder;
use mape_nat::{MappingLimits, Nat, NatConfig, Timestamp};
use mape_rules::{Ipv4Net, PortSet};

fuzz_target!(|data: &[u8]| {
    let Ok(ports) = PortSet::new(0x34, 8, 4) else {
        return;
    };
    let Ok(mut nat) = Nat::new(NatConfig::mape(), Ipv4Addr::new(192, 0, 2, 18), ports) else {
        return;
    };
    // Small limits, so that shares and lifetimes run out within one input.
    nat.set_mapping_limits(MappingLimits {
        max_lifetime_s: 5,
        max_per_host: 8,
    });
    let lan = vec![Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 24).expect("prefix")];
    let mut server = Responder::new(true, true, lan, 1000, Timestamp::from_secs(1));
    let mut out = vec![0u8; 1100];
    let mut rest = data;
    for i in 0..64u64 {
        let (datagram, next) = match rest.windows(2).position(|w| w == [0xff, 0xfe]) {
            Some(at) => (&rest[..at], Some(&rest[at + 2..])),
            None => (rest, None),
        };
        let host = Ipv4Addr::new(192, 168, 1, 10 + (i % 4) as u8);
        let now = Timestamp::from_secs(2 + i);
        let (len, _) = server.answer(
            &mut nat,
            now,
            SocketAddrV4::new(host, 5350),
            datagram,
            &mut out,
        );
        assert!(len <= out.len());
        nat.expire(now);
        nat.check_invariants()
            .expect("engine invariants after a request");
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    if let Some(action) = soap::parse_action(data) {
        let now = Timestamp::from_secs(100);
        let _ = soap::control(&mut nat, now, Ipv4Addr::new(192, 168, 1, 10), 1, &action);
        nat.check_invariants()
            .expect("engine invariants after a SOAP action");
    }
    for answer in igd::ssdp_answers(data, "http://192.168.1.1:5000/rootDesc.xml") {
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    }
});
