//! `mape run --check` against a known configuration (RFC 7597 Appendix A, example 1, with
//! the RFC's default PSID offset 6), and the exit statuses and one-line errors of the CLI:
//! runs the built binary, needs no root and no daemon.

use serde_json::Value;

mod common;
use common::run as mape;

/// Appendix A, example 1: rule 2001:db8::/40 -> 192.0.2.0/24, EA 16 bits; End-user prefix
/// 2001:db8:12:3400::/56 gives EA bits 0x1234: IPv4 suffix 0x12 (192.0.2.18) and PSID
/// 0x34 = 52; offset 6 leaves 16 - 6 - 8 = 2 bits: 4 ports in each of 63 ranges (A = 1..63),
/// 252 ports, the first (1 << 10) | (52 << 2) = 1232..1235. The CE address: prefix, EA bits,
/// then the IID 0:c000:212:34 (RFC 7597 §6: 16 zero bits, the IPv4 address, the PSID).
const CE: &str = r#"mode = "ce"
[wan]
interface = "ce-wan"
[map]
prefix = "2001:db8:12:3400::/56"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 6
br = ["2001:db8:ffff::1"]
[lan]
prefixes = ["192.168.1.0/24"]
"#;

const BR: &str = r#"mode = "br"
[br]
address = "2001:db8:ffff::1"
[map]
prefix = "2001:db8:12:3400::/56"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 6
[tun]
queues = 2
"#;

/// A configuration file of its own for each test.
struct Config(std::path::PathBuf);

impl Config {
    fn new(name: &str, text: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("mape-run-check-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        Self(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_prints_the_plan_in_words() {
    let c = Config::new("ce", CE);
    let out = common::stdout_ok(&["run", "--check", "--config", c.path()]);
    let want = format!(
        "configuration {} is valid
  role         CE
  wan          ce-wan
  map address  routed
  rule         2001:db8::/40 -> 192.0.2.0/24 ea 16 (from explicit rule)
  ipv4         192.0.2.18/32
  psid         52 (8 bits, offset 6)
  ports        252 in 63 ranges
  ce ipv6      2001:db8:12:3400:0:c000:212:34
  br           2001:db8:ffff::1
  nat policy   mape
  tun          mape0: mtu 1500, one queue per core
  routes       0.0.0.0/0 mtu 1460, 2001:db8:12:3400:0:c000:212:34/128
  control      /run/mape/mape.sock
",
        c.path()
    );
    assert_eq!(out, want);
    let b = Config::new("br", BR);
    let out = common::stdout_ok(&["run", "br", "--check", "--config", b.path()]);
    let want = format!(
        "configuration {} is valid
  role         BR
  address      2001:db8:ffff::1
  rule         2001:db8::/40 -> 192.0.2.0/24 ea 16
  tun          mape0: mtu 1500, 2 queues
  control      /run/mape/mape.sock
",
        b.path()
    );
    assert_eq!(out, want);
}

#[test]
fn check_json_is_calc_json_plus_the_daemon_keys() {
    let c = Config::new("ce-json", CE);
    let text = common::stdout_ok(&["run", "--check", "--json", "--config", c.path()]);
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["role"], "ce");
    assert_eq!(d["config"], c.path());
    // The keys and values of `mape calc --json` for the same rule.
    assert_eq!(d["ipv4"], "192.0.2.18");
    assert_eq!(d["ipv4_len"], 32);
    assert_eq!(d["psid"], 52);
    assert_eq!(d["psid_len"], 8);
    assert_eq!(d["psid_offset"], 6);
    assert_eq!(d["port_count"], 252);
    assert_eq!(d["port_ranges"][0], serde_json::json!([1232, 1235]));
    assert_eq!(d["port_ranges"].as_array().unwrap().len(), 63);
    assert_eq!(d["ce_ipv6"], "2001:db8:12:3400:0:c000:212:34");
    assert_eq!(d["br"], "2001:db8:ffff::1");
    assert_eq!(d["rule"]["ipv6_prefix"], "2001:db8::/40");
    let calc = common::stdout_ok(&[
        "calc",
        "--prefix",
        "2001:db8:12:3400::/56",
        "--ipv6-prefix",
        "2001:db8::/40",
        "--ipv4-prefix",
        "192.0.2.0/24",
        "--ea-len",
        "16",
        "--psid-offset",
        "6",
        "--json",
    ]);
    let calc: Value = serde_json::from_str(&calc).unwrap();
    for k in [
        "ipv4",
        "psid",
        "port_ranges",
        "ce_ipv6",
        "ea_bits",
        "end_user_prefix",
    ] {
        assert_eq!(d[k], calc[k], "{k}");
    }
    // The daemon's own.
    assert_eq!(d["wan_interface"], "ce-wan");
    assert_eq!(d["map_address"], "routed");
    assert_eq!(d["lan_prefixes"], serde_json::json!(["192.168.1.0/24"]));
    assert_eq!(d["nat_policy"], "mape");
    assert_eq!(
        d["tun"],
        serde_json::json!({"name": "mape0", "queues": 0, "ipv4_mtu": 1460, "ipv6_mtu": 1500})
    );
    assert_eq!(d["control"], "/run/mape/mape.sock");
    assert_eq!(d["state_dir"], "/var/lib/mape");
    let b = Config::new("br-json", BR);
    let text = common::stdout_ok(&["run", "--check", "--json", "--config", b.path()]);
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["role"], "br");
    assert_eq!(d["address"], "2001:db8:ffff::1");
    assert_eq!(
        d["rules"],
        serde_json::json!([{"ipv6_prefix": "2001:db8::/40", "ipv4_prefix": "192.0.2.0/24", "ea_len": 16}])
    );
}

/// The status, stderr and stdout of `mape args`.
fn fails(args: &[&str]) -> (Option<i32>, String, String) {
    let o = mape(args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_missing_file_is_bad_input_and_its_cause_is_printed_once() {
    let (code, err, out) = fails(&["run", "--check", "--config", "/nonexistent/mape.toml"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "mape: /nonexistent/mape.toml: No such file or directory (os error 2)\n"
    );
    assert!(out.is_empty());
    // A bad value: 2 as well, one line.
    let c = Config::new("bad", &CE.replace("ea_len = 16", "ea_len = 99"));
    let (code, err, _) = fails(&["run", "--check", "--config", c.path()]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    // --json without --check is a usage error.
    let (code, _, _) = fails(&["run", "--json"]);
    assert_eq!(code, Some(2));
}

#[test]
fn a_daemon_not_running_has_its_own_status() {
    let sock =
        std::env::temp_dir().join(format!("mape-run-check-{}-none.sock", std::process::id()));
    let sock = sock.to_str().unwrap();
    for cmd in [&["show", "status"][..], &["show", "sessions"], &["top"]] {
        let mut args = cmd.to_vec();
        args.extend(["--socket", sock]);
        let (code, err, _) = fails(&args);
        assert_eq!(code, Some(69), "{args:?}: {err}");
        assert_eq!(
            err,
            format!(
                "mape: cannot reach the daemon at {sock} (No such file or directory (os error 2)); \
                 is `mape run` running? (--socket PATH to choose another)\n"
            ),
            "{args:?}"
        );
    }
}
