//! HB46PP answer parser (and the TXT record parser) on arbitrary bytes: never panics; a
//! parsed answer resolves (or fails cleanly) for any prefix, and the state machine takes it
//! as a 200 body without panicking.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mape_provision::machine::{HttpResult, TxtResult};
use mape_provision::request::ClientInfo;
use mape_provision::{answer, txt, Action, Client, Config};
use mape_rules::Ipv6Net;
use rand::rngs::StdRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = txt::parse(text);
    }
    if let Ok(offer) = answer::parse(data) {
        let _ = offer.unsupported();
        if let Some(m) = &offer.map_e {
            assert!(!m.domain.rules().is_empty() && m.domain.rules().len() <= answer::MAX_RULES);
            for r in m.domain.rules() {
                let _ = offer.provision(&r.ipv6_prefix());
            }
        }
        for p in ["2001:db8:12:3400::/56", "2001:db8::1", "::/0"] {
            let _ = offer.provision(&p.parse::<Ipv6Net>().expect("prefix"));
        }
    }
    let config = Config {
        info: ClientInfo::mape(),
        credentials: None,
    };
    let mut c = Client::new(config, StdRng::seed_from_u64(0), None, false);
    c.start();
    let record = b"v=v6mig-1 url=http://[2001:db8::80]/config t=a".to_vec();
    let now = Duration::from_secs(1000);
    assert!(matches!(
        c.on_txt(now, TxtResult::Records(vec![record])),
        Action::Get(_)
    ));
    let a = c.on_http(
        now,
        HttpResult::Response {
            status: 200,
            location: None,
            body: data.to_vec(),
        },
    );
    assert!(matches!(a, Action::Wait { until, .. } if until >= now + Duration::from_secs(60)));
});
