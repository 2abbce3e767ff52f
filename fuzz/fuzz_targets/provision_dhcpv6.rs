//! DHCPv6 server-message parser (dhcproto framing behind mape's length guard) and the
//! RFC 7598 options it hands to mape-rules, on arbitrary bytes: never panics; the client
//! state machine takes the bytes as the Advertise and then as the Reply of its own
//! exchange (the transaction ID patched in) without panicking, and a lease it binds maps
//! (or fails cleanly). A stateless client takes them as the Reply to its
//! Information-request and its configuration maps (or fails cleanly) too.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mape_provision::dhcpv6::{message, Client, Config, Duid, Event};
use mape_rules::dhcpv6::decode_option_area;
use mape_rules::IidFormat;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn patched(data: &[u8], kind: u8, sent: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    if d.len() >= 4 && sent.len() >= 4 {
        d[0] = kind;
        d[1..4].copy_from_slice(&sent[1..4]);
    }
    d
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = message::parse(data) {
        if let Ok(cs) = decode_option_area(&m.s46) {
            for c in &cs {
                let _ = c.to_domain(IidFormat::Rfc7597);
            }
        }
    }
    let config = Config {
        duid: Duid::link_layer([2, 0, 0, 0, 0, 1]),
        iaid: 1,
        hint: None,
    };
    let mut info = Client::stateless(config.clone(), StdRng::seed_from_u64(0));
    info.start(Duration::ZERO);
    if let Some(t) = info.next_timer() {
        if let Some(ir) = info.on_timer(t).send {
            for e in info.on_packet(t, &patched(data, 7, &ir)).events {
                if let Event::Informed { info: i, .. } = e {
                    let end_user = "2001:db8:12:3400::/64".parse().expect("prefix");
                    let _ = i.provision(&end_user, None, &[]);
                    let _ = i.refresh_at();
                }
            }
            for _ in 0..4 {
                let Some(due) = info.next_timer() else { break };
                let _ = info.on_timer(due);
            }
        }
    }
    let mut c = Client::new(config, StdRng::seed_from_u64(0));
    c.start(Duration::ZERO);
    let Some(t) = c.next_timer() else { return };
    let Some(solicit) = c.on_timer(t).send else { return };
    // As the Advertise (preference 255 or after the first RT: a Request follows).
    let mut step = c.on_packet(t, &patched(data, 2, &solicit));
    if step.send.is_none() {
        if let Some(due) = c.next_timer() {
            step = c.on_timer(due);
        }
    }
    let Some(request) = step.send else { return };
    if request.first() != Some(&3) {
        return;
    }
    let now = c.next_timer().unwrap_or(t);
    for e in c.on_packet(now, &patched(data, 7, &request)).events {
        if let Event::Bound { lease, .. } = e {
            let _ = lease.provision(None, None, &[]);
            let _ = lease.t1_at();
            let _ = lease.expires_at();
        }
    }
    // Time runs on: timers keep their order and never panic.
    for _ in 0..8 {
        let Some(due) = c.next_timer() else { break };
        let _ = c.on_timer(due);
    }
});
