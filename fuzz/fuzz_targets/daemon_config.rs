//! Arbitrary text as the daemon's TOML configuration (`mape_daemon::config::Settings`):
//! parsing and validation never panic, an error is one line naming what is wrong, and the
//! same text always gives the same verdict. Most inputs are one of three valid files (the
//! shipped `dist/mape.toml`, an explicit CE rule, a BR) with one line replaced by the
//! input, so the fuzzer works on the checks behind the TOML syntax, not only on it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mape_daemon::config::{Role, Settings};

/// The packaged configuration: CE, v6plus profile.
const DIST: &str = include_str!("../../dist/mape.toml");

/// A CE with an explicit rule (RFC 7597 Appendix A, example 1) and a static forward.
const CE: &str = r#"mode = "ce"
[wan]
interface = "ce-wan"
[map]
prefix = "2001:db8:12:3400::/56"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 4
br = ["2001:db8:ffff::1"]
[lan]
prefixes = ["192.168.1.0/24"]
address = "192.0.2.18"
[tun]
ipv4_mtu = 1460
[nat]
allow_destinations = ["203.0.113.0/24"]
[nat.timeouts]
udp_unanswered = 20
[[nat.forward]]
proto = "tcp"
external_port = 4930
internal = "192.168.1.30:22"
"#;

/// A BR of the same domain.
const BR: &str = r#"mode = "br"
[br]
address = "2001:db8:ffff::1"
[map]
prefix = "2001:db8:12:3400::/56"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 4
"#;

/// Keys that make the parser read a file or directory the input names: left out, so that
/// a run never reads `/dev/zero` or the fuzzing host's own files.
const READS_FILES: [&str; 3] = ["dhcpv6_file", "profiles_dir", "signatures_dir"];

fn text(data: &[u8]) -> Option<String> {
    let (&mode, rest) = data.split_first()?;
    let input = std::str::from_utf8(rest).ok()?;
    let base = match mode % 4 {
        0 => return Some(input.to_string()),
        1 => DIST,
        2 => CE,
        _ => BR,
    };
    let lines: Vec<&str> = base.lines().collect();
    let at = usize::from(mode / 4) % lines.len();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(if i == at { input } else { l });
        out.push('\n');
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    if READS_FILES.iter().any(|k| text.contains(k)) {
        return;
    }
    let path = Path::new("fuzz.toml");
    match Settings::parse(&text, path) {
        Ok(s) => {
            assert!(Settings::parse(&text, path).is_ok(), "same text, other verdict");
            assert!((576..=9000).contains(&s.tun.ipv4_mtu));
            assert!((1280..=9000).contains(&s.tun.ipv6_mtu));
            if let Role::Ce(ce) = &s.role {
                // The share the rule gives this CE has ports (RFC 7597 §5.1).
                assert!(ce.map.mapping.share.port_set.count() > 0);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "an error of more than one line: {msg:?}");
            assert!(!msg.is_empty());
            assert!(Settings::parse(&text, path).is_err(), "same text, other verdict");
        }
    }
});
